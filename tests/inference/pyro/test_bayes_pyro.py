"""Pyro routines on a model with a prior: AutoDelta MAP equals closed-form MAP-EM; SVI posteriors."""

import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
from torch.distributions import constraints

import mixtures
from mixtures import GaussianMixture
from mixtures.core.queries import map_assignments, marginal_probabilities
from mixtures.families.gaussian.priors import GaussianPrior

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
    # equal-tailed intervals: ~90% of the draws inside each, the 50% interval nested in the 90% one
    low, high = posterior.credible_interval(0.9)["locs"]
    inside = ((posterior.locs >= low) & (posterior.locs <= high)).double().mean(0)
    assert ((inside >= 0.85) & (inside <= 0.95)).all()
    low50, high50 = posterior.credible_interval(0.5)["locs"]
    assert (low <= low50).all() and (low50 < high50).all() and (high50 <= high).all()
    # the variational distribution itself is kept: the guide's class and parameters
    assert posterior.distribution["guide"] == {"normal": "AutoNormal", "mvn": "AutoMultivariateNormal"}[guide]
    params = posterior.distribution["params"]
    if guide == "normal":  # locs are an unconstrained site: draws = loc + scale * ε
        loc, scale = params["AutoNormal.locs.locs"], params["AutoNormal.scales.locs"]
        assert ((posterior.locs.mean(0) - loc).abs() <= 5 * scale / 8).all()
        assert_close(posterior.locs.std(0), scale, rtol=0.45, atol=0)
    else:
        assert params["AutoMultivariateNormal.scale_tril"].shape[-1] == params["AutoMultivariateNormal.loc"].shape[-1]
    again = mixtures.fit(model, data, method="svi", guide=guide, init=true_params("diag"), num_steps=200,
                         eval_every=50, posterior_samples=64, seed=1)
    assert torch.equal(again.posterior.locs, posterior.locs)


def test_distributional_guides_need_a_prior(data):
    with pytest.raises(ValueError, match="has no prior"):
        mixtures.fit(GaussianMixture(3), data, method="svi", guide="mvn", num_steps=2)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("method", ["map", "svi"])
def test_membership_of_one_or_two_query_points_needs_no_prior_defaults(data, covariance_type, method):
    # a fitted prior model decodes new points at its fixed parameters: the prior's data-scaled
    # defaults (an empirical covariance) must not be re-resolved on one or two query points
    model = GaussianMixture(3, covariance_type, prior=GaussianPrior())
    result = mixtures.fit(model, data, method=method, init=true_params(covariance_type), num_steps=3)
    for n in (1, 2):
        expected = result.params.responsibilities(data[:n])
        assert_close(result.predict_proba(data[:n]), expected, rtol=0, atol=1e-10)
        assert torch.equal(result.predict(data[:n]), expected.argmax(-1))


def test_one_query_point_without_a_prior(data):
    # pyro-ppl/pyro#3102: compute_marginals fails on a plate of size 1
    result = mixtures.fit(GaussianMixture(3), data, method="map", init=true_params(), num_steps=3)
    assert_close(result.predict_proba(data[:1]), result.params.responsibilities(data[:1]), rtol=0, atol=1e-10)


def test_a_reused_model_resolves_its_prior_on_each_new_tensor():
    # The defaults are cached per tensor. A new tensor allocated where a freed one lived
    # (same address, shape, dtype and version) is new data and must be resolved anew.
    model = GaussianMixture(2, "full", prior=GaussianPrior())
    generator = torch.Generator().manual_seed(0)
    for scale in range(1, 13):
        X = scale * torch.randn(40, 2, dtype=torch.float64, generator=generator)
        fresh = GaussianMixture(2, "full", prior=GaussianPrior()).resolved_prior(X)
        reused = model.resolved_prior(X)
        assert torch.equal(reused.mean_prior, fresh.mean_prior)
        assert torch.equal(reused.covariance_prior, fresh.covariance_prior)
        del X  # frees the storage the next draw will likely reuse
    X = torch.randn(40, 2, dtype=torch.float64, generator=generator)
    before = model.resolved_prior(X).mean_prior.clone()
    X.add_(10.0)  # in place: the version counter changes
    assert_close(model.resolved_prior(X).mean_prior, before + 10.0)


def test_a_callable_global_guide_on_a_prior_model(data):
    # a hand-written point-mass guide over the conjugate diag sites: its values are the point
    # estimate, every posterior draw equals it, and the objective is the ELBO (the log joint here)
    model = GaussianMixture(3, "diag", prior=GaussianPrior())
    start = true_params("diag")
    sites = model.site_values(start)

    def point_guide(X):
        values = {name: pyro.param(f"q_{name}", value.clone(), constraint=constraints.positive
                                   if name == "precision" else constraints.real)
                  for name, value in sites.items() if name != "weights"}
        weights = pyro.param("q_weights", sites["weights"].clone(), constraint=constraints.simplex)
        pyro.sample("weights", pdist.Delta(weights, event_dim=1))
        with pyro.plate("components", 3):
            pyro.sample("precision", pdist.Delta(values["precision"], event_dim=1))
            pyro.sample("locs", pdist.Delta(values["locs"], event_dim=1))

    result = mixtures.fit(model, data, method="svi", guide=point_guide, init=start, num_steps=30,
                          posterior_samples=4)
    assert result.posterior.n_draws == 4
    for draw in range(4):
        assert torch.equal(result.posterior.locs[draw], result.params.locs)
    last = result.history.records()[-1]
    assert result.objective == pytest.approx(last["elbo"])
    assert last["elbo"] == pytest.approx(last["log_likelihood"] + last["log_prior"], rel=1e-12)
    first = result.history.records()[0]
    assert last["elbo"] > first["log_likelihood"] + first["log_prior"]  # the guide's params were trained

    def incomplete(X):
        pyro.sample("weights", pdist.Dirichlet(torch.ones(3, dtype=X.dtype)))

    with pytest.raises(ValueError, match=r"samples no site\(s\) \['locs', 'precision'\]"):
        mixtures.fit(model, data, method="svi", guide=incomplete, init=start, num_steps=2)


@pytest.mark.parametrize("scale_prior", ["half_cauchy", "lognormal"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_nonconjugate_log_prior_by_hand(data, covariance_type, scale_prior):
    # log p(θ) of the LKJ / half-Cauchy or log-normal prior, summed site by site with
    # torch.distributions, equals what the program's sample sites give (the MAP/SVI log_prior column)
    prior = GaussianPrior(kind="nonconjugate", scale_prior=scale_prior, lkj_concentration=2.0,
                          weight_concentration=1.5, mean_precision=0.5)
    model = GaussianMixture(3, covariance_type, prior=prior)
    params = true_params(covariance_type)
    resolved = model.resolved_prior(data)
    s, m0 = resolved.scale_prior_scale, resolved.mean_prior
    dists = torch.distributions

    def scale_density(scale):
        if scale_prior == "half_cauchy":
            return dists.HalfCauchy(scale)
        return dists.LogNormal(scale.log(), torch.ones_like(scale))

    expected = dists.Dirichlet(torch.full((3,), 1.5, dtype=torch.float64)).log_prob(params.weights)
    expected = expected + dists.Normal(m0, s / 0.5 ** 0.5).log_prob(params.locs).sum()
    if covariance_type in ("full", "tied"):
        covariances = params.covariances if covariance_type == "full" else params.covariances[:1]
        scales = covariances.diagonal(dim1=-2, dim2=-1).sqrt()
        corr_chol = torch.linalg.cholesky(covariances / (scales.unsqueeze(-1) * scales.unsqueeze(-2)))
        expected = expected + dists.LKJCholesky(2, torch.tensor(2.0, dtype=torch.float64)).log_prob(corr_chol).sum()
        expected = expected + scale_density(s).log_prob(scales).sum()
    elif covariance_type == "diag":
        expected = expected + scale_density(s).log_prob(params.native.sqrt()).sum()
    else:
        expected = expected + scale_density(s.mean()).log_prob(params.native.sqrt()).sum()
    assert_close(model.log_prior(params, data), expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("scale_prior", ["half_cauchy", "lognormal"])
def test_svi_with_a_nonconjugate_prior(data, scale_prior):
    model = GaussianMixture(3, "full", prior=GaussianPrior(kind="nonconjugate", scale_prior=scale_prior))
    start = true_params("full")
    result = mixtures.fit(model, data, method="svi", guide="normal", init=start, num_steps=150, eval_every=50,
                          posterior_samples=32, seed=2)
    assert result.posterior is not None and (result.posterior.weights.sum(-1) - 1).abs().max() < 1e-12
    # 300 points of well-separated clusters: the variational means sit near the truth
    assert (result.posterior.mean()["locs"] - start.locs).abs().max() < 0.5
    last = result.history.records()[-1]
    assert math.isfinite(last["log_prior"]) and math.isfinite(last["elbo"])
