"""mclust's deterministic start (``init="hc"``): the merge tree against a brute-force agglomeration
that re-scores every candidate partition from the raw points, mclust's criterion by hand, the
scaled-SVD transform, quantile classes, and the start on every structure."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import mixtures
from mixtures.data import diabetes, iris, old_faithful
from mixtures.families.gaussian.covariance import MCLUST_NAMES
from mixtures.init import hc_start, hc_tree, initialize, params_from_labels, quantile_classes, scaled_svd
from mixtures.init.hc import HCTree, _Agglomeration, build_tree


def _criterion(Z: np.ndarray, groups: list[list[int]], alpha: float, kind: str) -> float:
    """mclust's classification criterion of a whole partition, from the points (no updates)."""
    total = 0.0
    D = Z.shape[1]
    for group in groups:
        points = Z[group]
        centred = points - points.mean(0)
        W = centred.T @ centred
        size = len(group)
        if kind == "EII":
            total += np.trace(W)
            continue
        det = np.linalg.det(W / size) if size > D else 0.0
        total += size * math.log(det + (np.trace(W) + alpha) / size)
    return total


def _brute_force_partitions(Z: np.ndarray, kind: str) -> dict[int, set[frozenset[int]]]:
    """Greedy agglomeration scoring every pair of groups by the whole partition's criterion."""
    alpha = float(np.square(Z - Z.mean(0)).sum()) / Z.size
    _, inverse = np.unique(Z, axis=0, return_inverse=True)
    groups = [list(np.flatnonzero(inverse.reshape(-1) == g)) for g in np.unique(inverse)]
    cuts = {len(groups): {frozenset(g) for g in groups}}
    while len(groups) > 1:
        best = None
        for a, b in itertools.combinations(range(len(groups)), 2):
            candidate = [g for k, g in enumerate(groups) if k not in (a, b)] + [groups[a] + groups[b]]
            score = _criterion(Z, candidate, alpha, kind)
            if best is None or score < best[0]:
                best = (score, candidate)
        groups = best[1]
        cuts[len(groups)] = {frozenset(g) for g in groups}
    return cuts


def _tree_partitions(Z: np.ndarray, kind: str) -> dict[int, set[frozenset[int]]]:
    tree = build_tree(torch.as_tensor(Z), kind)
    cuts = {}
    for K in range(1, tree.n_groups + 1):
        labels = tree.partition(K).numpy()
        assert sorted(set(labels.tolist())) == list(range(K))
        cuts[K] = {frozenset(np.flatnonzero(labels == k).tolist()) for k in range(K)}
    return cuts


@pytest.mark.parametrize("n, D, seed", [(14, 2, 0), (12, 3, 1), (13, 2, 2)])
def test_vvv_tree_matches_brute_force_agglomeration(n, D, seed):
    rng = np.random.default_rng(seed)
    Z = np.concatenate([rng.normal(size=(n // 2, D)), rng.normal(size=(n - n // 2, D)) * 0.5 + 3.0])
    assert _tree_partitions(Z, "VVV") == _brute_force_partitions(Z, "VVV")


MCLUST_PAIRS = Path(__file__).parent / "data" / "faithful_hc_pairs_mclust6.csv"


def test_faithful_tree_is_mclusts_at_every_cut():
    """Old Faithful has 16 duplicated rows and many equal distances: the exact ties decide
    which group grows first, so this checks mclust's tie rule as well as its criterion."""
    pairs = torch.as_tensor(np.loadtxt(MCLUST_PAIRS, delimiter=",", skiprows=2, dtype=np.int64) - 1)
    X = old_faithful().double()
    reference = HCTree(torch.arange(X.shape[0]), pairs, None, "VVV")
    tree = hc_tree(X)
    for K in range(1, X.shape[0] + 1):
        assert torch.equal(tree.partition(K), reference.partition(K)), f"cut at K={K}"
    assert np.bincount(tree.partition(3).numpy()).tolist() == [40, 97, 135]


#: mclustBIC of mclust 6.0.0 (R), default settings (hc start, EM to relative tolerance 1e-5), mclust's
#: sign, to 10 decimals: faithful's best three and more cells, iris' and diabetes' best three
MCLUST_BIC = {
    ("faithful", "EEE", 3): -2314.31629566578, ("faithful", "VEE", 3): -2322.10348993553,
    ("faithful", "VVV", 2): -2322.19195930296, ("faithful", "EEE", 4): -2331.222561,
    ("faithful", "VII", 6): -3038.171130, ("faithful", "VVV", 4): -2351.493229,
    ("iris", "VEV", 2): -561.7284621151, ("iris", "VEV", 3): -562.5522369059, ("iris", "VVV", 2): -574.0178322698,
    ("diabetes", "VVV", 3): -4751.3163998185, ("diabetes", "VVV", 4): -4784.3221314597,
    ("diabetes", "EVE", 6): -4785.2459061858,
}
DATA = {"faithful": old_faithful, "iris": iris, "diabetes": diabetes}


@pytest.mark.parametrize("data, structure, K", list(MCLUST_BIC))
def test_hc_start_and_relative_tolerance_reproduce_mclusts_bic(data, structure, K):
    """mclust reports the log-likelihood of its last E step, i.e. of the parameters before its final
    M step: our history's second-to-last row. Ours ends one M step further, never lower.
    EVE's inner MM loop stops on its own tolerance, not mclust's: 3e-5 apart there."""
    X = DATA[data]()
    N, D = X.shape
    model = mixtures.GaussianMixture(K, structure)
    result = mixtures.fit(model, X, "em", init="hc", reg_covar=0.0, rtol=1e-5, max_iter=5000)
    penalty = model.n_parameters(D) * math.log(N)
    mclust_sign = [2 * ll - penalty for ll in result.history.to_dict()["log_likelihood"]]
    expected = MCLUST_BIC[data, structure, K]
    assert mclust_sign[-2] == pytest.approx(expected, abs=5e-5 if structure == "EVE" else 2e-6)
    assert -result.bic(X) >= expected - 1e-4


def test_readme_quotes_mclusts_bic_as_mclust_prints_it():
    # issue #19: the README once quoted EEE,3 as −2314.386; mclust 6.0 prints −2314.316
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    eee3 = MCLUST_BIC[("faithful", "EEE", 3)]
    assert f"{eee3:.6f}" in readme and f"mclust's −{abs(eee3):.3f} for EEE,3" in readme
    assert "2314.386" not in readme


def test_eii_tree_is_ward_and_matches_brute_force():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(6, 8))  # N <= D: mclust agglomerates by EII
    assert _tree_partitions(Z, "EII") == _brute_force_partitions(Z, "EII")
    assert hc_tree(torch.as_tensor(Z)).criterion == "EII"


def test_merge_cost_of_two_points_is_mclusts_closed_form():
    """Two singletons: l = 2 <= D, so the merged term is 2 log((tr W + α)/2) with tr W = |δ|²/2,
    and a singleton's term is log α (β = 1)."""
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(7, 3))
    state = _Agglomeration(Z, np.arange(7), "VVV")
    alpha = float(np.square(Z - Z.mean(0)).sum()) / Z.size
    for i, j in [(0, 1), (2, 6), (5, 3)]:
        trace = float(np.square(Z[i] - Z[j]).sum()) / 2
        expected = 2 * math.log((trace + alpha) / 2) - 2 * math.log(alpha)
        assert state.costs[i, j] == pytest.approx(expected, rel=1e-13)
        assert state.costs[i, j] == state.costs[j, i]


def test_scaled_svd_whitens_to_the_singular_values_and_ignores_units():
    rng = np.random.default_rng(6)
    X = torch.as_tensor(rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3)))
    Z = scaled_svd(X)
    standardized = (X - X.mean(0)) / X.std(0)
    singular = torch.linalg.svdvals(standardized)
    torch.testing.assert_close(Z.T @ Z, torch.diag(singular), rtol=1e-10, atol=1e-10)
    rescaled = X * torch.tensor([1000.0, 0.001, 7.0]) + torch.tensor([5.0, -3.0, 1e4])
    torch.testing.assert_close(scaled_svd(rescaled).abs(), Z.abs(), rtol=1e-6, atol=1e-8)
    constant = torch.cat([X, torch.full((50, 1), 2.0)], 1)
    assert scaled_svd(constant).shape == (50, 3)  # the constant feature is dropped


def test_tree_is_invariant_to_units_and_cached():
    X = old_faithful().double()
    tree = hc_tree(X)
    assert hc_tree(X) is tree  # reused across K and structures
    rescaled = hc_tree(X * torch.tensor([60.0, 1.0 / 60]))
    for K in (2, 3, 5):
        assert torch.equal(rescaled.partition(K), tree.partition(K))


def test_cut_refuses_more_groups_than_points():
    tree = build_tree(torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [5.0, 1.0]]))
    assert tree.n_groups == 4
    assert tree.partition(3).tolist()[:2] == [0, 0]  # the duplicated pair merges first
    with pytest.raises(ValueError, match="4 initial groups"):
        tree.partition(5)


def test_quantile_classes():
    x = torch.arange(12.0)
    assert quantile_classes(x, 3).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    ties = torch.tensor([1.0, 1, 1, 1, 1, 2, 3, 4, 5, 6])
    labels = quantile_classes(ties, 3)
    assert sorted(set(labels.tolist())) == [0, 1, 2]
    assert len(set(labels[:5].tolist())) == 1  # ties never split
    assert torch.all(labels[1:] >= labels[:-1])  # classes are intervals


@pytest.mark.parametrize("structure", MCLUST_NAMES)
def test_hc_start_on_every_structure_is_the_m_step_of_the_cut(structure):
    X = old_faithful().double()
    model = mixtures.GaussianMixture(3, structure)
    start = initialize(model, X, "hc", seed=0, reg_covar=0.0)
    expected = params_from_labels(model, X, hc_tree(X).partition(3), 0.0)
    for name, value in expected.tensors().items():
        torch.testing.assert_close(start.tensors()[name], value, rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = mixtures.fit(model, X, "em", init="hc", seed=0, reg_covar=0.0, max_iter=50)
        again = mixtures.fit(model, X, "em", init="hc", seed=7, reg_covar=0.0, max_iter=50)
    assert first.objective == again.objective  # deterministic: no seed enters below the subset size
    assert math.isfinite(first.objective)


def test_hc_start_on_a_subset_and_in_one_dimension():
    rng = np.random.default_rng(7)
    X = torch.as_tensor(np.concatenate([rng.normal(size=(150, 2)), rng.normal(size=(150, 2)) + 4]))
    model = mixtures.GaussianMixture(2, "VVV")
    tree = hc_tree(X, subset=100, generator=torch.Generator().manual_seed(0))
    assert tree.points is not None and tree.points.shape == (100,) and tree.n_groups == 100
    start = hc_start(model, X, torch.Generator().manual_seed(0), reg_covar=0.0, subset=100)
    expected = params_from_labels(model, X[tree.points], tree.partition(2), 0.0)
    torch.testing.assert_close(start.locs, expected.locs, rtol=0, atol=0)
    x = torch.cat([torch.as_tensor(rng.normal(size=40)), torch.as_tensor(rng.normal(size=60)) + 6]).reshape(-1, 1)
    one_d = mixtures.GaussianMixture(2, "VVV")
    start = initialize(one_d, x, "hc", reg_covar=0.0)
    expected = params_from_labels(one_d, x, quantile_classes(x[:, 0], 2), 0.0)
    torch.testing.assert_close(start.locs, expected.locs, rtol=0, atol=0)


def test_bundled_iris_and_diabetes():
    X = iris()
    assert X.shape == (150, 4)
    torch.testing.assert_close(X.mean(0), torch.tensor([5.843333, 3.057333, 3.758, 1.199333], dtype=torch.float64),
                               rtol=0, atol=1e-6)  # R's colMeans(iris[, 1:4])
    Y = diabetes()
    assert Y.shape == (145, 3) and Y.dtype == torch.float64
    assert Y[0].tolist() == [80.0, 356.0, 124.0] and torch.equal(Y, Y.round())
