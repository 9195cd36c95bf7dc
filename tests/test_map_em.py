"""MAP-EM under the conjugate prior: flat limit = EM, closed form, stationarity, monotone objective."""

import pytest
import torch
from torch.distributions import biject_to

import mixtures
from mixtures import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.priors import GaussianPrior

from conftest import COVARIANCE_TYPES, assert_close, true_params


@pytest.fixture(scope="module")
def data():
    X, _ = true_params().sample(400, seed=5)
    return X


def flat_prior(covariance_type: str, n_components: int, n_features: int) -> GaussianPrior:
    """The limit in which every posterior-mode denominator equals N_k (or N): ML."""
    tiny = 1e-12
    # tied would need ν₀ = D + 1 - K, below the Wishart's support (ν₀ > D - 1): take the boundary,
    # which leaves the tied denominator at N + K - 2 instead of N (checked to O(K/N) below).
    dof = {"full": n_features, "diag": 1.0, "tied": n_features - 1 + 1e-9,
           "spherical": max(2.0 - n_features, tiny)}[covariance_type]
    psi = {"full": tiny * torch.eye(n_features), "tied": tiny * torch.eye(n_features),
           "diag": torch.full((n_features,), tiny), "spherical": tiny}[covariance_type]
    return GaussianPrior(weight_concentration=1.0, mean_precision=tiny, degrees_of_freedom=dof,
                         covariance_prior=psi)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_flat_limit_prior_gives_plain_em(data, covariance_type):
    start = mixtures.fit(GaussianMixture(3, covariance_type), data, max_iter=0).params
    plain = mixtures.fit(GaussianMixture(3, covariance_type), data, init=start, reg_covar=0.0, tol=1e-10)
    flat = GaussianMixture(3, covariance_type, prior=flat_prior(covariance_type, 3, 2))
    mapem = mixtures.fit(flat, data, init=start, reg_covar=0.0, tol=1e-10)
    tolerance = 1e-8 if covariance_type != "tied" else 3.0 * 3 / len(data)
    if covariance_type != "tied":
        assert mapem.n_iter == plain.n_iter
    assert_close(mapem.params.locs, plain.params.locs, rtol=tolerance, atol=tolerance)
    assert_close(mapem.params.covariances, plain.params.covariances, rtol=tolerance, atol=tolerance)
    assert_close(mapem.params.weights, plain.params.weights, rtol=tolerance, atol=1e-10 + tolerance / 10)


def test_one_step_matches_the_closed_form_by_hand(data):
    prior = GaussianPrior(weight_concentration=3.0, mean_precision=50.0, degrees_of_freedom=10.0,
                          mean_prior=[1.0, -2.0], covariance_prior=[[4.0, 1.0], [1.0, 3.0]])
    model = GaussianMixture(3, "full", prior=prior)
    start = true_params()
    result = mixtures.fit(model, data, init=start, max_iter=1, reg_covar=0.0, warn=False)
    X = data
    r = start.responsibilities(X)
    nk = r.sum(0)
    xbar = r.T @ X / nk[:, None]
    m0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    psi0 = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    expected_locs = (50.0 * m0 + nk[:, None] * xbar) / (50.0 + nk[:, None])
    covs = []
    for k in range(3):
        d = X - xbar[k]
        scatter = (r[:, k, None] * d).T @ d
        e = (xbar[k] - m0)[:, None]
        psi = psi0 + scatter + 50.0 * nk[k] / (50.0 + nk[k]) * (e @ e.T)
        covs.append(psi / (10.0 + nk[k] - 2))
    weights = (nk + 2.0) / (nk + 2.0).sum()
    assert_close(result.params.locs, expected_locs, rtol=1e-10, atol=1e-12)
    assert_close(result.params.covariances, torch.stack(covs), rtol=1e-10, atol=1e-12)
    assert_close(result.params.weights, weights, rtol=1e-12, atol=1e-14)


def test_a_strong_prior_pulls_the_means_to_the_prior_mean(data):
    m0 = [10.0, 10.0]
    estimates = []
    for beta0 in (1e-3, 1e2, 1e8):
        model = GaussianMixture(3, "full", prior=GaussianPrior(mean_precision=beta0, mean_prior=m0,
                                                              weight_concentration=1.0))
        estimates.append(mixtures.fit(model, data, init=true_params(), max_iter=5, warn=False).params.locs)
    distances = [float((locs - torch.tensor(m0, dtype=torch.float64)).norm(dim=-1).max()) for locs in estimates]
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 1e-4


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weight_prior", ["dirichlet", "dirichlet_process"])
def test_map_em_fixed_point_is_a_stationary_point_of_the_posterior(data, covariance_type, weight_prior):
    prior = GaussianPrior(weight_prior=weight_prior, weight_concentration=2.0, degrees_of_freedom=5.0)
    model = GaussianMixture(3, covariance_type, prior=prior)
    result = mixtures.fit(model, data, init=true_params(covariance_type), tol=1e-13, max_iter=2000,
                          reg_covar=0.0)
    assert result.converged
    # gradient of log p(X | θ) + log p(θ) in the unconstrained coordinates of the Pyro sites
    from pyro import poutine

    site_values = model.site_values(result.params)
    trace = poutine.trace(model._sample_globals).get_trace(model.resolved_prior(data))
    unconstrained = {name: biject_to(trace.nodes[name]["fn"].support).inv(value).detach().requires_grad_()
                     for name, value in site_values.items()}
    constrained = {name: biject_to(trace.nodes[name]["fn"].support)(u) for name, u in unconstrained.items()}
    conditioned = poutine.trace(poutine.condition(model._sample_globals, data=constrained)).get_trace(
        model.resolved_prior(data))
    values = conditioned.nodes["_RETURN"]["value"]
    params = MixtureParams.from_native(values["weights"], values["locs"], values[model.cov_type.site],
                                       model.cov_type, validate=False)
    objective = conditioned.log_prob_sum() + params.log_prob(data).sum()
    gradients = torch.autograd.grad(objective, list(unconstrained.values()))
    # Jacobian terms of the transforms vanish at a stationary point: only the raw gradient matters
    for name, gradient in zip(unconstrained, gradients):
        assert gradient.abs().max() < 1e-6, (name, gradient)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_objective_is_monotone_and_history_is_complete(data, covariance_type):
    model = GaussianMixture(3, covariance_type, prior=GaussianPrior(weight_concentration=1.5))
    result = mixtures.fit(model, data, init="random", seed=2, tol=1e-10, max_iter=60, warn=False)
    history = result.history
    assert "log_prior" in history.columns and len(history) > 20
    objective = history["log_likelihood"] + history["log_prior"]
    assert (torch.diff(objective) >= -1e-9 * objective[1:].abs()).all()
    assert (history["kl"][1:] >= -1e-8 * objective[1:].abs()).all()
    assert result.objective == pytest.approx(float(objective[-1]), rel=1e-12)
    assert history["log_prior"][-1] == pytest.approx(float(model.log_prior(result.params, data)), rel=1e-12)


def test_nonconjugate_prior_is_refused_with_a_pointer(data):
    model = GaussianMixture(2, "full", prior=GaussianPrior(kind="nonconjugate"))
    with pytest.raises(ValueError, match="conjugate prior.*method='map'"):
        mixtures.fit(model, data)
