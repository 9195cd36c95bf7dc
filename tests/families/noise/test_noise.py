"""The noise component (mclust's Vinv) for any family: regions and volumes by hand, densities, the
program's exact loss (Pyro's TraceEnum_ELBO), EM's statistics and M step by hand, EM against MAP,
NUTS keeping the noise last, flags, saving and bad input."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO

import mixtures
from mixtures.core.family import fresh_param_store
from mixtures.core.queries import empty_guide, marginal_probabilities
from mixtures.errors import DataError
from mixtures.families import (
    GaussianMixture,
    GaussianPrior,
    NoiseRegion,
    NoisyMixture,
    NoisyParams,
    StudentTMixture,
    StudentTParams,
)

from conftest import assert_close, true_params

BOX = NoiseRegion("box", 18.0 * 17.0, (-7.0, -5.0), (11.0, 12.0))


def noisy_truth(family: str = "gaussian", structure: str = "full", epsilon: float = 0.1) -> NoisyParams:
    clusters = true_params(structure)
    if family == "student_t":
        clusters = StudentTParams.from_native(clusters.weights, clusters.locs, clusters.native,
                                              torch.tensor([4.0, 8.0, 20.0], dtype=torch.float64), structure)
    return NoisyParams.from_clusters(clusters, epsilon, BOX)


def clusters_model(family: str, structure: str = "full", **kwargs):
    return (GaussianMixture if family == "gaussian" else StudentTMixture)(3, structure, **kwargs)


# -- regions ------------------------------------------------------------------------------------
def test_box_and_hull_volumes_by_hand():
    square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 3.0], [0.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    assert NoiseRegion.box(square).volume == 6.0
    triangle = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    hull = NoiseRegion.hull(triangle)
    assert hull.volume == pytest.approx(6.0, rel=1e-12) and NoiseRegion.box(triangle).volume == 12.0
    inside = hull.contains(torch.tensor([[1.0, 1.0], [3.0, 2.0], [0.5, 0.1]], dtype=torch.float64))
    assert inside.tolist() == [True, False, True]
    draws = hull.sample(4000, torch.Generator().manual_seed(0))
    assert bool(hull.contains(draws).all())
    assert abs(float(draws.mean(0)[0]) - 4 / 3) < 0.05  # the triangle's centroid (4/3, 1)
    cube = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * 3) * 2
    assert NoiseRegion.hull(cube).volume == pytest.approx(8.0, rel=1e-12)


def test_region_errors_name_the_fix():
    with pytest.raises(DataError, match="constant"):
        NoiseRegion.box(torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64))
    with pytest.raises(DataError, match="convex hull"):
        NoiseRegion.hull(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="no region to draw"):
        NoiseRegion.given(5.0).sample(3)
    with pytest.raises(ValueError, match="needs its region"):
        NoisyMixture(GaussianMixture(2))
    with pytest.raises(TypeError, match="already has a noise"):
        NoisyMixture(NoisyMixture(GaussianMixture(2), BOX), BOX)
    X, _ = true_params().sample(50, seed=0)
    with pytest.raises(DataError, match="D=2"):
        mixtures.fit(NoisyMixture(GaussianMixture(2), BOX), torch.cat([X, X[:, :1]], 1), "em")


# -- densities and the program --------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_densities_and_the_programs_exact_loss(family):
    truth = noisy_truth(family)
    X, labels = truth.sample(400, seed=1)
    assert bool(BOX.contains(X[labels == 3]).all()) and int((labels == 3).sum()) > 20
    clusters = truth.clusters()
    expected = torch.logsumexp(torch.stack([clusters.log_prob(X) + math.log(0.9),
                                            torch.full((400,), math.log(0.1) - math.log(BOX.volume),
                                                       dtype=torch.float64)]), 0)
    assert_close(truth.log_prob(X), expected, rtol=1e-12, atol=1e-12)
    model = NoisyMixture(clusters_model(family), BOX)
    with fresh_param_store():
        loss = TraceEnum_ELBO(max_plate_nesting=1).loss(lambda data: model.model(data, truth), empty_guide, X)
    assert_close(-loss, truth.log_prob(X).sum(), rtol=1e-12, atol=1e-8)
    assert_close(marginal_probabilities(model, truth, X), truth.responsibilities(X), rtol=1e-9, atol=1e-12)
    pyro.clear_param_store()


def test_clusters_and_from_clusters_are_inverse():
    clusters = true_params("diag")
    noisy = NoisyParams.from_clusters(clusters, 0.25, BOX)
    assert_close(noisy.weights, torch.cat([0.75 * clusters.weights, torch.tensor([0.25], dtype=torch.float64)]))
    back = noisy.clusters()
    for name, value in clusters.tensors().items():
        assert_close(back.tensors()[name], value, rtol=1e-15, atol=0)


# -- EM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, structure", [("gaussian", "full"), ("gaussian", "tied"), ("student_t", "full")])
def test_em_statistics_and_m_step_by_hand(family, structure):
    truth = noisy_truth(family, structure)
    X, _ = truth.sample(500, seed=2)
    model = NoisyMixture(clusters_model(family, structure), BOX)
    shift = model.statistics_shift(X)
    summary = model.e_step(X, truth, shift, chunk_size=77)
    resp = truth.responsibilities(X)
    assert_close(summary.nk, resp.sum(0), rtol=1e-12)
    assert_close(summary.log_likelihood, truth.log_prob(X).sum(), rtol=1e-12)
    # q is the exact posterior after an E step: the ELBO is the log-likelihood
    assert_close(model.elbo(summary, truth), truth.log_prob(X).sum(), rtol=1e-11)
    new = model.m_step(summary, reg_covar=0.0)
    assert_close(new.weights, resp.mean(0), rtol=1e-11)  # the noise's ML weight is its mean responsibility
    if family == "gaussian":  # clusters: the Gaussian M step on the clusters' responsibilities alone
        r = resp[:, :3]
        means = (r.T @ X) / r.sum(0)[:, None]
        assert_close(new.clusters().locs, means, rtol=1e-10, atol=1e-12)
        centred = X.unsqueeze(1) - means                                      # (N, K, D)
        scatter = torch.einsum("nk,nkd,nke->kde", r, centred, centred)
        expected = scatter / r.sum(0)[:, None, None] if structure == "full" else scatter.sum(0) / r.sum()
        assert_close(new.clusters().covariances[0] if structure == "tied" else new.clusters().covariances,
                     expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_em_is_monotone_and_flags_the_planted_outliers(family):
    inliers, _ = true_params().sample(600, seed=3)
    outliers = BOX.sample(60, torch.Generator().manual_seed(4))
    X = torch.cat([inliers, outliers])
    result = mixtures.fit(NoisyMixture(clusters_model(family), BOX), X, "em", tol=1e-9, max_iter=500, seed=0,
                          warn=False)
    log_likelihood = result.history["log_likelihood"]
    assert (log_likelihood.diff() >= -1e-9 * log_likelihood.abs()[1:]).all()
    assert (result.history["kl"][1:] >= -1e-7).all()
    flagged = result.params.is_noise(X)
    # the true mixture's own rule (Bayes: noise wins) flags these points; the fit's flags agree with it
    # (a t's heavier tails keep a few more outliers in the clusters)
    truth = noisy_truth("gaussian", epsilon=60 / 660)
    assert (flagged == truth.is_noise(X)).double().mean() > 0.98
    assert int(flagged[600:].sum()) >= 40 and int(flagged[:600].sum()) <= 20, (flagged[600:].sum(), flagged[:600].sum())
    assert torch.equal(result.predict(X) == 3, flagged)
    assert abs(float(result.params.noise_weight) - 60 / 660) < 0.03


def test_em_reaches_the_optimum_map_reaches():
    X, _ = noisy_truth().sample(500, seed=5)
    model = NoisyMixture(GaussianMixture(3, "full"), BOX)
    start = mixtures.fit(model, X, "em", max_iter=3, seed=0).params
    em = mixtures.fit(model, X, "em", init=start, tol=1e-12, max_iter=5000)
    fitted = mixtures.fit(model, X, "map", init=start, num_steps=3000, lr=0.02, lr_decay=0.05, tol=1e-12,
                          patience=200)
    assert abs(em.log_likelihood - fitted.log_likelihood) / X.shape[0] < 1e-6
    assert_close(fitted.params.noise_weight, em.params.noise_weight, rtol=1e-3)


def test_hard_and_stepwise_em_and_streaming(tmp_path):
    X, _ = noisy_truth().sample(600, seed=6)
    model = NoisyMixture(GaussianMixture(3, "full"), BOX)
    start = mixtures.fit(model, X, "em", max_iter=0, seed=0).params
    whole = mixtures.fit(model, X, "em", init=start, tol=0.0, max_iter=10)
    chunked = mixtures.fit(model, X, "em", init=start, tol=0.0, max_iter=10, chunk_size=50)
    for name, value in whole.params.tensors().items():
        assert_close(chunked.params.tensors()[name], value, rtol=1e-10, atol=1e-12)
    assert mixtures.fit(model, X, "hard_em", seed=0).converged
    stepwise = mixtures.fit(model, X, "stepwise_em", seed=0, num_epochs=10, batch_size=100)
    assert math.isfinite(stepwise.log_likelihood)


def test_parameter_count_is_the_clusters_and_the_noise_weight():
    model = NoisyMixture(GaussianMixture(3, "full"), BOX)
    assert model.n_components == 4 and model.n_clusters == 3
    assert model.n_parameters(2) == GaussianMixture(3, "full").n_parameters(2) + 1
    t = StudentTMixture(2, "diag")
    assert NoisyMixture(t, BOX).n_parameters(2) == t.n_parameters(2) + 1


def test_nuts_relabels_the_clusters_and_never_the_noise(tmp_path):
    X, _ = noisy_truth().sample(300, seed=7)
    model = NoisyMixture(GaussianMixture(3, "full", prior=GaussianPrior()), BOX)
    result = mixtures.fit(model, X, "nuts", seed=0, warmup=30, num_samples=12, max_tree_depth=5)
    assert (result.extras["relabel_permutations"][:, -1] == 3).all()
    assert bool((result.posterior.draws.noise_weight > 0).all())
    loaded = mixtures.load(result.save(tmp_path / "noisy.pt"))
    assert loaded.model.spec() == model.spec() and loaded.model.prior == model.prior
    assert torch.equal(loaded.posterior.draws.weights, result.posterior.draws.weights)


def test_a_start_makes_the_most_likely_group_the_noise():
    """An initializer's K + 1 groups are unordered: the scattered outliers' group becomes the noise."""
    inliers, _ = true_params().sample(300, seed=8)
    outliers = BOX.sample(40, torch.Generator().manual_seed(9))
    X = torch.cat([inliers, outliers])
    labels = torch.cat([torch.full((300,), 0), torch.full((40,), 1)])
    labels[:300] = torch.where(inliers[:, 0] > 3, 2, torch.where(inliers[:, 1] > 3, 3, 0))
    start = NoisyMixture(GaussianMixture(3, "full"), BOX).params_from_responsibilities(
        X, torch.nn.functional.one_hot(labels, 4).to(X))
    assert_close(start.noise_weight, torch.tensor(40 / 340, dtype=torch.float64), rtol=1e-12)
