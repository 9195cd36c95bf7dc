"""Tests of mixtures.metrics: alignment, parameter errors, ARI/NMI, KL, criteria, collapse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from mixtures import FitResult, GaussianMixture, History, MixtureParams
from mixtures.errors import ParameterError
from mixtures.evaluation import (
    adjusted_rand_index,
    align,
    align_components,
    component_cost_matrix,
    gaussian_kl,
    held_out_log_likelihood,
    information_criteria,
    is_singular,
    kl_divergence,
    normalized_mutual_info,
    parameter_errors,
    singular_components,
)
from mixtures.init import params_from_labels

DT = torch.float64


def random_spd(D: int, g: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    A = torch.randn(D, D, generator=g, dtype=DT)
    return scale * (A @ A.T / D + 0.5 * torch.eye(D, dtype=DT))


def random_params(K: int, D: int, seed: int, spread: float = 5.0) -> MixtureParams:
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=g, dtype=DT) + 0.2
    locs = spread * torch.randn(K, D, generator=g, dtype=DT)
    covs = torch.stack([random_spd(D, g) for _ in range(K)])
    return MixtureParams(weights / weights.sum(), locs, covs)


def permuted(params: MixtureParams, order: list[int]) -> MixtureParams:
    order_t = torch.tensor(order)
    return MixtureParams(params.weights[order_t], params.locs[order_t], params.covariances[order_t])


def make_result(params: MixtureParams) -> FitResult:
    model = GaussianMixture(params.n_components, params.covariance_type)
    return FitResult(model, params, History(), converged=True, n_iter=0, method="em", objective=0.0)


# -- alignment ------------------------------------------------------------------------

@pytest.mark.parametrize("cost", ["jeffreys", "mahalanobis"])
def test_align_recovers_a_permutation(cost):
    truth = random_params(5, 3, seed=1)
    order = [3, 0, 4, 1, 2]                 # fitted component j is true component order[j]
    g = torch.Generator().manual_seed(2)
    noisy = permuted(truth, order)
    noisy = noisy.replace(locs=noisy.locs + 0.05 * torch.randn(5, 3, generator=g, dtype=DT))
    perm = align_components(noisy, truth, cost=cost)
    assert perm.dtype == torch.long and perm.shape == (5,)
    # fitted perm[k] is true k: order[perm[k]] == k
    assert [order[j] for j in perm.tolist()] == list(range(5))
    assert_close(noisy.locs[perm], truth.locs, atol=0.2, rtol=0)
    assert_close(align(noisy, truth).locs, noisy.locs[perm])
    assert align_components(make_result(noisy), truth).tolist() == perm.tolist()


def test_align_separates_components_with_the_same_mean():
    # Same mean, different covariances: only the covariance term can tell them apart.
    loc = torch.zeros(2, 2, dtype=DT)
    covs = torch.stack([torch.eye(2, dtype=DT), torch.diag(torch.tensor([9.0, 0.2], dtype=DT))])
    truth = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT), loc, covs)
    fitted = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT), loc + 1e-3,
                           torch.stack([covs[1] * 1.1, covs[0] * 0.9]))
    assert align_components(fitted, truth).tolist() == [1, 0]
    assert parameter_errors(fitted, truth)["covariances_relative"] < 0.11


def test_align_across_covariance_types_and_tied():
    truth = MixtureParams(torch.tensor([0.2, 0.3, 0.5], dtype=DT),
                          torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], dtype=DT),
                          torch.tensor([[1.0, 2.0], [0.5, 0.5], [2.0, 1.0]], dtype=DT), "diag")
    fitted_full = permuted(truth, [2, 0, 1])
    assert align_components(fitted_full, truth).tolist() == [1, 2, 0]
    tied = MixtureParams(truth.weights[[1, 2, 0]], truth.locs[[1, 2, 0]], torch.eye(2, dtype=DT), "tied")
    assert align_components(tied, truth).tolist() == [2, 0, 1]
    aligned = align(tied, truth)
    assert aligned.covariance_type == "tied"
    assert_close(aligned.locs, truth.locs)


def test_jeffreys_cost_matches_closed_form_kl_both_ways():
    truth, fitted = random_params(3, 4, seed=3), random_params(3, 4, seed=4)
    cost = component_cost_matrix(fitted, truth)
    assert cost.shape == (3, 3)
    for t in range(3):
        for f in range(3):
            p = torch.distributions.MultivariateNormal(truth.locs[t], truth.covariances[t])
            q = torch.distributions.MultivariateNormal(fitted.locs[f], fitted.covariances[f])
            expected = torch.distributions.kl_divergence(p, q) + torch.distributions.kl_divergence(q, p)
            assert_close(cost[t, f], expected, rtol=1e-12, atol=1e-12)
    maha = component_cost_matrix(fitted, truth, cost="mahalanobis")
    delta = truth.locs[1] - fitted.locs[2]
    assert_close(maha[1, 2], delta @ torch.linalg.solve(truth.covariances[1], delta), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="cost must be one of"):
        component_cost_matrix(fitted, truth, cost="euclid")


def test_gaussian_kl_matches_torch_distributions():
    a, b = random_params(3, 3, seed=5), random_params(3, 3, seed=6)
    expected = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(a.locs, a.covariances),
        torch.distributions.MultivariateNormal(b.locs, b.covariances))
    assert_close(gaussian_kl(a.locs, a.covariances, b.locs, b.covariances), expected,
                 rtol=1e-12, atol=1e-12)
    assert_close(gaussian_kl(a.locs, a.covariances, a.locs, a.covariances), torch.zeros(3, dtype=DT),
                 rtol=0, atol=1e-13)


def test_align_rejects_different_k_and_d():
    with pytest.raises(ParameterError, match="K=3 components to a true one with K=2"):
        align_components(random_params(3, 2, 0), random_params(2, 2, 0))
    with pytest.raises(ParameterError, match="D=3 features"):
        align_components(random_params(2, 3, 0), random_params(2, 2, 0))
    with pytest.raises(ParameterError, match="K=3"):
        parameter_errors(random_params(3, 2, 0), random_params(2, 2, 0))
    with pytest.raises(TypeError, match="mixture parameters or a FitResult"):
        align_components({"locs": 1}, random_params(2, 2, 0))


# -- parameter errors ------------------------------------------------------------------

def test_parameter_errors_hand_computed():
    truth = MixtureParams(torch.tensor([0.3, 0.7], dtype=DT),
                          torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=DT),
                          torch.stack([torch.eye(2, dtype=DT), 0.5 * torch.eye(2, dtype=DT)]))
    # fitted component 0 is true component 1 and vice versa
    fitted = MixtureParams(torch.tensor([0.75, 0.25], dtype=DT),
                           torch.tensor([[-1.0, -1.3], [1.4, 1.0]], dtype=DT),
                           torch.stack([torch.tensor([[0.5, 0.1], [0.1, 0.5]], dtype=DT),
                                        torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=DT)]))
    errors = parameter_errors(fitted, truth)
    expected = {
        "weights_l1": 0.1,
        "weights_max": 0.05,
        "means_rmse": math.sqrt((0.4**2 + 0.3**2) / 4),
        "means_max": 0.4,
        # ΔΣ_0 = diag(0, 2): ‖·‖ = 2; ΔΣ_1 = offdiag 0.1: ‖·‖ = sqrt(0.02)
        "covariances_frobenius": (2.0 + math.sqrt(0.02)) / 2,
        "covariances_relative": (2.0 / math.sqrt(2.0) + math.sqrt(0.02) / math.sqrt(0.5)) / 2,
    }
    assert set(expected) <= set(errors)
    for key, value in expected.items():
        assert errors[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    # an explicit (wrong) alignment is honoured
    unaligned = parameter_errors(fitted, truth, perm=torch.tensor([0, 1]))
    assert unaligned["weights_l1"] == pytest.approx(0.9, rel=1e-12)
    with pytest.raises(ValueError, match="permutation"):
        parameter_errors(fitted, truth, perm=torch.tensor([0, 0]))


def test_parameter_errors_zero_for_a_permuted_copy():
    truth = random_params(4, 3, seed=8)
    errors = parameter_errors(permuted(truth, [1, 3, 0, 2]), truth)
    for key, value in errors.items():
        assert value == pytest.approx(0.0, abs=1e-12), key


# -- clustering scores against scikit-learn ----------------------------------------------

def _random_labelings():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 400))
        k_true, k_pred = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        yield rng.integers(0, k_true, n), rng.integers(0, k_pred, n)
    # correlated labelings (the interesting regime)
    for _ in range(20):
        a = rng.integers(0, 4, 300)
        b = np.where(rng.random(300) < 0.8, a, rng.integers(0, 5, 300))
        yield a, b


def test_ari_and_nmi_match_sklearn_on_random_labelings():
    from sklearn import metrics as sk
    for a, b in _random_labelings():
        assert adjusted_rand_index(a, b) == pytest.approx(sk.adjusted_rand_score(a, b), abs=1e-12)
        assert normalized_mutual_info(a, b) == pytest.approx(
            sk.normalized_mutual_info_score(a, b), abs=1e-12)


@pytest.mark.parametrize("a, b", [
    ([0, 0, 1, 1, 2], [0, 0, 1, 1, 2]),          # identical
    ([0, 0, 1, 1, 2], [7, 7, 3, 3, -1]),         # same partition, permuted label values
    ([0, 0, 0, 0], [0, 0, 0, 0]),                # one cluster each
    ([0, 0, 0, 0], [0, 1, 2, 3]),                # one cluster vs singletons
    ([0, 1, 2, 3], [0, 0, 0, 0]),
    ([0, 1, 2, 3], [3, 2, 1, 0]),                # all singletons
    ([0, 0, 1, 1], [0, 1, 0, 1]),                # independent: MI = 0 exactly
    ([5], [2]),                                  # one point
    (["a", "b", "b", "c"], [1, 2, 2, 2]),        # string labels
])
def test_ari_and_nmi_edge_cases_match_sklearn(a, b):
    from sklearn import metrics as sk
    assert adjusted_rand_index(a, b) == pytest.approx(sk.adjusted_rand_score(a, b), abs=1e-12)
    assert normalized_mutual_info(a, b) == pytest.approx(sk.normalized_mutual_info_score(a, b), abs=1e-12)


def test_ari_and_nmi_on_tensors_permuted_labels_and_large_n():
    from sklearn import metrics as sk
    rng = np.random.default_rng(1)
    labels = torch.as_tensor(rng.integers(0, 5, 1000))
    relabelled = torch.tensor([3, 0, 4, 1, 2])[labels]
    assert adjusted_rand_index(labels, relabelled) == 1.0
    assert normalized_mutual_info(labels, relabelled) == pytest.approx(1.0, abs=1e-12)
    # N large enough that tp·tn overflows int64: exact Python integers are needed
    a = rng.integers(0, 3, 200_000)
    b = np.where(rng.random(200_000) < 0.6, a, rng.integers(0, 3, 200_000))
    assert adjusted_rand_index(a, b) == pytest.approx(sk.adjusted_rand_score(a, b), abs=1e-12)
    assert normalized_mutual_info(a, b) == pytest.approx(sk.normalized_mutual_info_score(a, b), abs=1e-12)


def test_label_scores_reject_bad_input():
    with pytest.raises(ValueError, match="3 entries but labels_pred has 2"):
        adjusted_rand_index([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        normalized_mutual_info(np.zeros((2, 2)), np.zeros((2, 2)))


# -- densities --------------------------------------------------------------------------

def test_kl_of_a_mixture_with_itself_is_exactly_zero():
    p = random_params(3, 2, seed=9)
    assert kl_divergence(p, p, n_samples=2000, seed=3) == (0.0, 0.0)


def test_kl_matches_closed_form_for_single_gaussians():
    g = torch.Generator().manual_seed(10)
    p = MixtureParams(torch.ones(1, dtype=DT), torch.tensor([[0.0, 1.0, -1.0]], dtype=DT),
                      random_spd(3, g).unsqueeze(0))
    q = MixtureParams(torch.ones(1, dtype=DT), torch.tensor([[0.5, 0.5, 0.0]], dtype=DT),
                      random_spd(3, g, scale=2.0).unsqueeze(0))
    exact = float(gaussian_kl(p.locs[0], p.covariances[0], q.locs[0], q.covariances[0]))
    for seed in range(3):
        estimate, se = kl_divergence(p, q, n_samples=20000, seed=seed)
        assert se > 0
        assert abs(estimate - exact) < 4 * se, (seed, estimate, exact, se)


def test_kl_is_reproducible_and_seed_dependent():
    p, q = random_params(3, 2, seed=11), random_params(3, 2, seed=12)
    first = kl_divergence(p, q, n_samples=3000, seed=5)
    assert kl_divergence(p, q, n_samples=3000, seed=5) == first
    assert kl_divergence(p, q, n_samples=3000, seed=6) != first
    assert first[0] > 0
    # relabelling q's components changes nothing but round-off
    estimate, _ = kl_divergence(p, permuted(p, [2, 0, 1]), n_samples=3000, seed=5)
    assert abs(estimate) < 1e-12


def test_held_out_log_likelihood_matches_scipy():
    from scipy import stats
    p = random_params(3, 2, seed=13)
    X, _ = p.sample(500, seed=0)
    density = sum(float(w) * stats.multivariate_normal(m.numpy(), c.numpy()).pdf(X.numpy())
                  for w, m, c in zip(p.weights, p.locs, p.covariances))
    expected = float(np.mean(np.log(density)))
    assert held_out_log_likelihood(p, X) == pytest.approx(expected, rel=1e-12)
    assert held_out_log_likelihood(make_result(p), X.numpy()) == pytest.approx(expected, rel=1e-12)


# -- information criteria --------------------------------------------------------------

def test_information_criteria_hand_computed():
    # 1-D, two unit-variance components at 0 and 2, equal weights; x = -1, 1, 3.
    params = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT), torch.tensor([[0.0], [2.0]], dtype=DT),
                           torch.tensor([1.0, 1.0], dtype=DT), "spherical")
    result = make_result(params)
    X = torch.tensor([[-1.0], [1.0], [3.0]], dtype=DT)

    def log_density(x: float) -> float:
        return math.log(0.5 * math.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
                        + 0.5 * math.exp(-0.5 * (x - 2) ** 2) / math.sqrt(2 * math.pi))

    log_lik = sum(log_density(x) for x in (-1.0, 1.0, 3.0))
    p = 5  # 1 weight + 2 means + 2 variances
    bic = -2 * log_lik + p * math.log(3)
    aic = -2 * log_lik + 2 * p
    # MAP responsibilities: 1/(1+e^-4) at x = -1 and x = 3; 1/2 at the tie x = 1.
    sum_log_map = -2 * math.log1p(math.exp(-4.0)) + math.log(0.5)
    criteria = information_criteria(result, X)
    assert criteria["bic"] == pytest.approx(bic, rel=1e-12)
    assert criteria["aic"] == pytest.approx(aic, rel=1e-12)
    assert criteria["icl"] == pytest.approx(bic - 2 * sum_log_map, rel=1e-12)
    assert criteria["bic"] == result.bic(X) and criteria["aic"] == result.aic(X)


def test_icl_equals_bic_for_crisp_posteriors_and_exceeds_it_otherwise():
    far = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT),
                        torch.tensor([[0.0, 0.0], [100.0, 0.0]], dtype=DT),
                        torch.eye(2, dtype=DT).expand(2, 2, 2))
    X, _ = far.sample(200, seed=1)
    crisp = information_criteria(make_result(far), X)
    assert crisp["icl"] == pytest.approx(crisp["bic"], abs=1e-9)
    near = far.replace(locs=torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=DT))
    fuzzy = information_criteria(make_result(near), X)
    assert fuzzy["icl"] > fuzzy["bic"] + 1.0


# -- collapsed components ------------------------------------------------------------------

REG = 1e-6


def test_singular_diag_component_is_flagged():
    params = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT), torch.zeros(2, 2, dtype=DT),
                           torch.tensor([[0.5, 0.3], [0.2, REG]], dtype=DT), "diag")
    assert singular_components(params, REG) == [1]
    assert is_singular(params, REG)
    assert is_singular(make_result(params), REG)


def test_healthy_mixture_is_not_singular():
    params = random_params(4, 3, seed=14)
    assert singular_components(params, REG) == []
    assert not is_singular(params, REG)


def test_rotated_full_component_collapsed_in_one_direction():
    angle = 0.7
    R = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=DT)
    collapsed = R @ torch.diag(torch.tensor([2.0, REG], dtype=DT)) @ R.T
    params = MixtureParams(torch.tensor([0.4, 0.6], dtype=DT), torch.zeros(2, 2, dtype=DT),
                           torch.stack([torch.eye(2, dtype=DT), collapsed]))
    assert singular_components(params, REG) == [1]
    # the criterion is relative to the floor: 1.0005 reg is flagged, 1.002 reg is not
    near = MixtureParams(torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT),
                         torch.tensor([[1.0, 1.0005 * REG]], dtype=DT), "diag")
    above = MixtureParams(torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT),
                          torch.tensor([[1.0, 1.002 * REG]], dtype=DT), "diag")
    assert is_singular(near, REG) and not is_singular(above, REG)
    assert is_singular(above, REG, rtol=3e-3)
    # reg_covar = 0: only an absolute tolerance can flag anything
    assert not is_singular(near, 0.0) and is_singular(near, 0.0, atol=1e-5)


def test_tied_collapse_flags_every_component():
    params = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT),
                           torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=DT),
                           torch.diag(torch.tensor([1.0, REG], dtype=DT)), "tied")
    assert singular_components(params, REG) == [0, 1]


def test_component_on_tied_values_collapses_like_old_faithful_diag():
    # A cluster whose points all have waiting = 83 (tied integer values): its M-step
    # variance in that direction is exactly the reg_covar floor.
    g = torch.Generator().manual_seed(0)
    spread = torch.stack([3.0 + torch.randn(100, generator=g, dtype=DT),
                          70 + 10 * torch.randn(100, generator=g, dtype=DT)], -1)
    tied = torch.stack([4.0 + 0.3 * torch.rand(8, generator=g, dtype=DT),
                        torch.full((8,), 83.0, dtype=DT)], -1)
    X = torch.cat([spread, tied])
    labels = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(8, dtype=torch.long)])
    diag = params_from_labels(GaussianMixture(2, "diag"), X, labels, reg_covar=REG)
    assert singular_components(diag, REG) == [1]
    full = params_from_labels(GaussianMixture(2, "full"), X, labels, reg_covar=REG)
    assert singular_components(full, REG) == [1]
    spherical = params_from_labels(GaussianMixture(2, "spherical"), X, labels, reg_covar=REG)
    assert not is_singular(spherical, REG)  # the eruptions spread keeps the average variance up


def test_is_singular_rejects_negative_reg_covar():
    with pytest.raises(ValueError, match="reg_covar"):
        is_singular(random_params(2, 2, 0), -1.0)
