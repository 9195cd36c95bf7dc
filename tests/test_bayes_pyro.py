"""Pyro routines on a model with a prior: AutoDelta MAP equals closed-form MAP-EM; SVI posteriors."""

import pytest
import torch

import mixtures
from mixtures import GaussianMixture
from mixtures.inference.pyro_common import map_assignments, marginal_probabilities
from mixtures.priors import GaussianPrior

from conftest import assert_close, true_params


@pytest.fixture(scope="module")
def data():
    X, _ = true_params().sample(300, seed=5)
    return X


@pytest.mark.parametrize("covariance_type, weight_prior", [
    ("full", "dirichlet"), ("tied", "dirichlet"), ("diag", "dirichlet_process"), ("spherical", "dirichlet"),
])
def test_autodelta_map_reaches_the_closed_form_map_em_optimum(data, covariance_type, weight_prior):
    prior = GaussianPrior(weight_prior=weight_prior, weight_concentration=2.0, degrees_of_freedom=5.0)
    model = GaussianMixture(3, covariance_type, prior=prior)
    start = true_params(covariance_type)
    closed_form = mixtures.fit(model, data, init=start, tol=1e-12, max_iter=3000, reg_covar=0.0)
    pyro_map = mixtures.fit(model, data, method="map", init=start, num_steps=1500, lr=0.02, eval_every=100)
    # the same objective, log p(X | θ) + log p(θ), from two implementations of the same model
    assert abs(closed_form.objective - pyro_map.objective) / len(data) < 1e-6
    assert_close(pyro_map.params.locs, closed_form.params.locs, rtol=0, atol=1e-3)
    assert "log_prior" in pyro_map.history.columns
    last = pyro_map.history.records()[-1]
    assert last["kl"] == pytest.approx(last["log_likelihood"] + last["log_prior"] - last["elbo"], abs=1e-9)
    assert abs(last["kl"]) < 1e-6 * len(data)  # delta guide, enumerated: the ELBO is the log joint


def test_decoding_a_prior_model_conditions_its_globals(data):
    model = GaussianMixture(3, "full", prior=GaussianPrior())
    params = true_params()
    assert torch.equal(map_assignments(model, params, data), params.joint_log_prob(data).argmax(-1))
    assert_close(marginal_probabilities(model, params, data), params.responsibilities(data), rtol=0, atol=1e-10)


@pytest.mark.parametrize("guide", ["normal", "mvn"])
def test_svi_with_a_distributional_guide_returns_a_posterior(data, guide):
    model = GaussianMixture(3, "diag", prior=GaussianPrior())
    result = mixtures.fit(model, data, method="svi", guide=guide, init=true_params("diag"), num_steps=200,
                          eval_every=50, posterior_samples=64, seed=1)
    posterior = result.posterior
    assert posterior is not None and posterior.n_draws == 64 and posterior.kind == "variational"
    assert posterior.weights.shape == (64, 3) and posterior.locs.shape == (64, 3, 2)
    assert_close(posterior.weights.sum(-1), torch.ones(64, dtype=torch.float64))
    assert (posterior.native > 0).all()
    # the point estimate is near the posterior mean (a concentrated posterior at n = 300)
    assert (posterior.mean()["locs"] - result.params.locs).abs().max() < 0.3
    assert result.objective == pytest.approx(-result.extras["final_loss"])
    low, high = posterior.credible_interval(0.9)["locs"]
    assert (low <= high).all()
    again = mixtures.fit(model, data, method="svi", guide=guide, init=true_params("diag"), num_steps=200,
                         eval_every=50, posterior_samples=64, seed=1)
    assert torch.equal(again.posterior.locs, posterior.locs)


def test_distributional_guides_need_a_prior(data):
    with pytest.raises(ValueError, match="has no prior"):
        mixtures.fit(GaussianMixture(3), data, method="svi", guide="mvn", num_steps=2)
