"""The numbers printed by the seed notebooks (../shared/seeds), reproduced by the package."""

import pytest
import torch

import mixtures
from mixtures import EMStep, GaussianMixture, MixtureParams
from mixtures.families.gaussian.statistics import e_step, elbo
from mixtures.init import initialize

from conftest import assert_close

# --- seed 000: one EM step of a 1-D two-component mixture --------------------------------
X000 = torch.tensor([-1.0, 0.0, 4.0, 5.0, 6.0], dtype=torch.float64).unsqueeze(-1)
PARAMS000 = MixtureParams([0.5, 0.5], [[6.0], [7.0]], [1.0, 4.0], "diag")


def test_seed000_posteriors_and_updated_means():
    step = EMStep(GaussianMixture(2, "diag"), X000, reg_covar=0.0)
    printed_posteriors = [[1.36512049e-07, 9.99999863e-01], [1.39244156e-05, 9.99986076e-01],
                          [4.54661673e-01, 5.45338327e-01], [6.66666667e-01, 3.33333333e-01],
                          [6.93842896e-01, 3.06157104e-01]]
    resp = step.responsibilities(PARAMS000)
    assert_close(resp, printed_posteriors, rtol=1e-8, atol=1e-9)
    new = step.m_step(step.e_step(PARAMS000))
    assert_close(new.locs.squeeze(-1), [5.13172803, 1.47103149], rtol=0, atol=1e-8)


def test_seed000_variances_use_the_updated_means():
    # The notebook printed variances [0.63780375, 5.09310884]. They do not follow from its own
    # printed posteriors: its Sigma2_posterior centred the scatter on stale means (the line
    # recomputing them was commented out, and the kernel held older values), and no choice of
    # centre reproduces component 2's 5.09 (the scatter about the weighted mean, 6.967, is the
    # minimum). The correct M step centres the scatter on the *updated* means; we check that
    # against a direct numpy computation.
    step = EMStep(GaussianMixture(2, "diag"), X000, reg_covar=0.0)
    new = step.m_step(step.e_step(PARAMS000))
    x = X000.squeeze(-1).numpy()
    r = step.responsibilities(PARAMS000).numpy()
    means = (r * x[:, None]).sum(0) / r.sum(0)
    correct = (r * (x[:, None] - means) ** 2).sum(0) / r.sum(0)
    assert_close(new.native.squeeze(-1), correct, rtol=1e-12, atol=0)
    assert_close(correct, [0.6155625, 6.9670221], rtol=0, atol=1e-7)
    assert_close(new.weights, r.mean(0), rtol=1e-12, atol=0)


def test_seed000_kmedians_from_given_centres():
    X = torch.tensor([[0.0, -6.0], [4.0, 4.0], [0.0, 0.0], [-5.0, 2.0]], dtype=torch.float64)
    result = mixtures.fit(GaussianMixture(2), X, method="kmedians", init={"locs": [[-5.0, 2.0], [0.0, -6.0]]})
    assert result.converged
    assert_close(result.extras["centers"], [[-0.5, 3.0], [0.0, -3.0]])
    # the notebook's clusters: {[4, 4], [-5, 2]} and {[0, -6], [0, 0]}
    assert result.extras["labels"].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_seed000_kmedians_without_reg_covar_gives_its_clusters(covariance_type):
    # Both clusters hold two points in 2-D: their own covariances are singular (rank 1, or a zero
    # variance for diag's second cluster). The clustering must not fail: the induced mixture gives
    # such a cluster the pooled within-cluster covariance and flags it.
    X = torch.tensor([[0.0, -6.0], [4.0, 4.0], [0.0, 0.0], [-5.0, 2.0]], dtype=torch.float64)
    result = mixtures.fit(GaussianMixture(2, covariance_type), X, method="kmedians",
                          init={"locs": [[-5.0, 2.0], [0.0, -6.0]]}, reg_covar=0.0)
    assert result.converged
    assert torch.equal(result.extras["centers"], torch.tensor([[-0.5, 3.0], [0.0, -3.0]], dtype=torch.float64))
    assert result.extras["labels"].tolist() == [1, 0, 1, 0]
    # pooled: (S_0 + S_1) / 4 with S_0 = 2 (4.5, 1)(4.5, 1)ᵀ and S_1 = 2 (0, 3)(0, 3)ᵀ
    pooled = torch.tensor([[10.125, 2.25], [2.25, 5.0]], dtype=torch.float64)
    assert result.extras["covariance_floor"] == 0.0
    if covariance_type == "full":
        assert result.extras["degenerate_clusters"] == [0, 1]
        assert_close(result.params.covariances, pooled.expand(2, 2, 2), rtol=1e-12, atol=1e-14)
    else:  # cluster 0's variances (20.25, 1) are its own; cluster 1 is constant along x
        assert result.extras["degenerate_clusters"] == [1]
        assert_close(result.params.covariances, torch.stack([torch.diag(torch.tensor([20.25, 1.0])),
                                                             torch.diag(pooled.diagonal())]).double(),
                     rtol=1e-12, atol=1e-14)
    assert_close(result.params.locs, [[-0.5, 3.0], [0.0, -3.0]], rtol=0, atol=1e-14)
    assert_close(result.params.weights, [0.5, 0.5], rtol=1e-14, atol=0)
    assert torch.isfinite(result.history["log_likelihood"]).all()


# --- seed 002: 1-D EM initialised from a partition ---------------------------------------
X002 = torch.tensor([-3.3, -4.4, -1.9, 3.3, 2.5, 3.2, 0.3, 0.1, -0.1, -0.5], dtype=torch.float64)
PARTITION1 = [1, 1, 1, 2, 2, 2, 2, 2, 1, 1]
PARTITION2 = [1, 3, 2, 1, 3, 2, 1, 3, 2, 1]


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full"])
def test_seed002_initialisation_from_partition(covariance_type):
    model = GaussianMixture(3, covariance_type)
    X = X002.unsqueeze(-1)
    params = initialize(model, X, torch.tensor(PARTITION2), reg_covar=0.0)
    assert_close(params.weights, [0.4, 0.3, 0.3], rtol=1e-12, atol=0)
    assert_close(params.locs.squeeze(-1), [-0.05, 0.4, -0.6], rtol=1e-12, atol=1e-15)
    assert_close(params.covariances.reshape(3), [5.5275, 4.46, 8.18], rtol=1e-12, atol=0)
    assert float(params.log_prob(X).sum()) == pytest.approx(-23.314947226151602, rel=1e-13)


def test_seed002_elbo_equals_log_likelihood_after_an_e_step():
    # The notebook got ELBO -23.54 vs log-likelihood -23.31 ("almost??") because its E step
    # used a log-normal pdf. With the right E step the two are equal.
    X = X002.unsqueeze(-1)
    params = initialize(GaussianMixture(3, "diag"), X, PARTITION2, reg_covar=0.0)
    summary = e_step(X, params, X.mean(0))
    assert float(elbo(summary, params)) == pytest.approx(-23.314947226151602, rel=1e-12)


def test_seed002_em_with_relative_tolerance():
    result = mixtures.fit(GaussianMixture(2, "diag"), X002, init=PARTITION1, rtol=1e-6,
                          max_iter=500, reg_covar=0.0)
    assert result.converged
    ll = result.history["log_likelihood"]
    assert (torch.diff(ll) >= -1e-12).all()  # the notebook's trace went down: its E step was wrong
    assert abs(ll[-2] - ll[-3]) <= 1e-6 * abs(ll[-2])
    records = result.history.records()  # the trace as a table
    assert records[0]["iteration"] == 0 and "elbo" in records[-1]
