"""MAP-EM under the conjugate prior: flat limit = EM, closed form, stationarity, monotone objective,
and the rule for components whose posterior mode does not exist."""

import math
import warnings

import pytest
import torch
from torch.distributions import biject_to

import mixtures
from mixtures import GaussianMixture
from mixtures.errors import DivergenceError, PosteriorModeError
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior, inverse_stick_breaking, stick_breaking

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
def test_a_strong_prior_pulls_covariances_and_weights_to_the_prior(data, covariance_type):
    # As ν₀ grows with Ψ₀ = ν₀ T (scaled per type so that the mode's limit is T), the posterior-mode
    # covariances tend to T; as α grows, the weights tend to 1/K (the Dirichlet's mode).
    target = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    native_target = {"full": target, "tied": target, "diag": target.diagonal(),
                     "spherical": target.diagonal().mean()}[covariance_type]
    expected = {"full": target, "tied": target, "diag": torch.diag(target.diagonal()),
                "spherical": target.diagonal().mean() * torch.eye(2, dtype=torch.float64)}[covariance_type]
    distances, weight_gaps = [], []
    for strength in (10.0, 1e3, 1e7):
        prior = GaussianPrior(degrees_of_freedom=strength, covariance_prior=(strength * native_target).tolist(),
                              weight_concentration=strength)
        fitted = mixtures.fit(GaussianMixture(3, covariance_type, prior=prior), data, init=true_params(covariance_type),
                              max_iter=5, reg_covar=0.0, warn=False).params
        distances.append(float((fitted.covariances - expected).abs().max()))
        weight_gaps.append(float((fitted.weights - 1 / 3).abs().max()))
    assert distances[0] > distances[1] > distances[2] and distances[2] < 1e-4
    assert weight_gaps[0] > weight_gaps[1] > weight_gaps[2] and weight_gaps[2] < 1e-5


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
    trace = poutine.trace(model.sample_globals).get_trace(model.resolved_prior(data))
    unconstrained = {name: biject_to(trace.nodes[name]["fn"].support).inv(value).detach().requires_grad_()
                     for name, value in site_values.items()}
    constrained = {name: biject_to(trace.nodes[name]["fn"].support)(u) for name, u in unconstrained.items()}
    conditioned = poutine.trace(poutine.condition(model.sample_globals, data=constrained)).get_trace(
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


# --- more components than the data support: the posterior mode may not exist ----------------
@pytest.fixture(scope="module")
def three_clusters():
    """600 points from 3 well-separated 2-D clusters (to be fitted with K = 10)."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    return torch.cat([c + torch.randn(200, 2, generator=g, dtype=torch.float64) for c in centres])


def fit_quietly(model, X, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence / re-seeding notices
        return mixtures.fit(model, X, **options)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sparse_default_prior_with_too_many_components_names_the_component(three_clusters, covariance_type):
    # α = 1/K < 1: the Dirichlet posterior is unbounded as an emptying weight → 0 (no MAP)
    model = GaussianMixture(10, covariance_type, prior=GaussianPrior())
    with pytest.raises(PosteriorModeError, match=r"component \d+.*N_k = .* < 1 point.*weight_concentration "
                       r"α_k = 0\.1 < 1.*method='vb'.*fewer components.*weight_concentration >= 1") as info:
        fit_quietly(model, three_clusters, max_iter=200)
    error = info.value
    assert 0 <= error.component < 10 and 0 <= error.n_k < 1
    assert error.fields[0] == "weight_concentration"
    assert ("degrees_of_freedom" in error.fields) == (covariance_type == "full")  # ν₀ = D: no empty Σ mode
    assert ("on_collapse='reseed'" in str(error)) == (covariance_type != "tied")  # tied cannot re-seed


def test_full_covariance_with_dof_equal_to_d_has_no_mode_for_an_emptying_component(three_clusters):
    # the weights have a mode (α = 1), the covariance does not: Σ_k = Ψ_k / (ν₀ + N_k - D) = Ψ_k / N_k
    model = GaussianMixture(10, "full", prior=GaussianPrior(weight_concentration=1.0))
    with pytest.raises(PosteriorModeError, match=r"degrees_of_freedom ν₀ = 2 <= D = 2.*"
                       r"degrees_of_freedom >= D \+ 2 = 4") as info:
        fit_quietly(model, three_clusters, max_iter=200)
    assert info.value.fields == ("degrees_of_freedom",) and info.value.n_k < 1


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_readme_dirichlet_process_prior_under_map_em_names_the_tail(three_clusters, covariance_type):
    prior = GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.1)
    with pytest.raises(PosteriorModeError, match=r"component \d+.*method='vb'") as info:
        fit_quietly(GaussianMixture(10, covariance_type, prior=prior), three_clusters, max_iter=200)
    if covariance_type != "full":  # full stops first on its covariance (ν₀ = D)
        assert info.value.component == 9 and "dirichlet_process" in str(info.value)
        assert info.value.fields == ("weight_concentration",)
    # variational Bayes handles the same sparse prior: it switches the surplus components off
    result = fit_quietly(GaussianMixture(10, covariance_type, prior=prior), three_clusters, method="vb",
                         max_iter=300)
    assert math.isfinite(result.objective)
    assert int((result.params.weights > 0.05).sum()) == 3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_prior_with_a_mode_for_empty_components_runs_on(three_clusters, covariance_type):
    # α = 1 and ν₀ = D + 2: an emptied component has the finite mode (weight 0, m₀, Ψ₀ / denominator)
    X = three_clusters
    model = GaussianMixture(10, covariance_type, prior=GaussianPrior(weight_concentration=1.0,
                                                                     degrees_of_freedom=4.0))
    result = mixtures.fit(model, X, tol=1e-10, max_iter=2000, reg_covar=0.0)
    assert result.converged and math.isfinite(result.objective)
    objective = result.history["log_likelihood"] + result.history["log_prior"]
    assert torch.isfinite(objective).all()
    assert (torch.diff(objective) >= -1e-9 * objective[1:].abs()).all()
    empty = result.params.weights < 1e-12
    assert empty.any(), "the test needs a component the data emptied"
    assert int((result.params.weights > 0.05).sum()) == 3
    if covariance_type != "tied":
        assert_close(result.params.locs[empty], X.mean(0).expand(int(empty.sum()), 2), rtol=0, atol=1e-8)
        psi0 = torch.cov(X.T)
        denominator = {"full": 4.0 - 2, "diag": 4.0 - 1, "spherical": 4.0 + 2 - 2}[covariance_type]
        expected = {"full": psi0, "diag": torch.diag(psi0.diagonal()),
                    "spherical": psi0.diagonal().mean() * torch.eye(2, dtype=torch.float64)}[covariance_type]
        assert_close(result.params.covariances[empty], (expected / denominator).expand(int(empty.sum()), 2, 2),
                     rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_reseed_restarts_components_without_a_mode(three_clusters, covariance_type):
    model = GaussianMixture(10, covariance_type, prior=GaussianPrior())
    result = fit_quietly(model, three_clusters, on_collapse="reseed", max_iter=100)
    assert result.extras["reseeded"], "an emptying component was expected and re-seeded"
    assert math.isfinite(result.objective)
    assert torch.isfinite(result.history["log_prior"]).all()


def test_restarts_all_failing_raise_the_error_instead_of_scoring_inf(three_clusters):
    model = GaussianMixture(10, "diag", prior=GaussianPrior())
    with pytest.warns(UserWarning, match="restart with seed"), pytest.raises(PosteriorModeError):
        mixtures.fit(model, three_clusters, init="kmeans++", n_init=2, max_iter=200, warn=False)


def test_an_infinite_log_prior_is_never_run_on(three_clusters):
    # a zero weight under α = 1/K < 1 has log prior +inf: the objective cannot be compared
    start = MixtureParams([0.5, 0.5, 0.0], [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]],
                          torch.ones(3, 2, dtype=torch.float64), "diag")
    with pytest.raises(DivergenceError, match="log prior log p\\(θ\\) is inf at iteration 0"):
        fit_quietly(GaussianMixture(3, "diag", prior=GaussianPrior()), three_clusters, init=start)


def test_hard_em_under_a_prior_keeps_an_empty_component_and_uses_its_mode_weight():
    X = torch.tensor([0.0, 0.5, 1.0, 1.5, 10.0, 10.5, 11.0, 11.7], dtype=torch.float64).unsqueeze(-1)
    start = MixtureParams(torch.full((3,), 1 / 3, dtype=torch.float64), [[0.5], [10.5], [100.0]],
                          torch.ones(3, 1, dtype=torch.float64), "diag")
    prior = GaussianPrior(weight_concentration=2.0, degrees_of_freedom=3.0)
    result = fit_quietly(GaussianMixture(3, "diag", prior=prior), X, method="hard_em", init=start, reg_covar=0.0)
    assert result.extras["empty_components"] == [2]
    assert float(result.params.locs[2, 0]) == 100.0 and float(result.params.native[2, 0]) == 1.0
    mode = torch.tensor([5.0, 5.0, 1.0], dtype=torch.float64) / 11  # ∝ N_k + α - 1
    assert_close(result.params.weights, mode, rtol=1e-12, atol=0)
    with pytest.raises(PosteriorModeError, match="component 2"):  # α < 1: the empty weight has no mode
        fit_quietly(GaussianMixture(3, "diag", prior=GaussianPrior(weight_concentration=0.5)), X,
                    method="hard_em", init=start, reg_covar=0.0)


# --- the prior's own parametrization ---------------------------------------------------------
@pytest.mark.parametrize("field, value", [("mean_prior", [float("nan"), 0.0]), ("mean_precision", float("inf")),
                                          ("covariance_prior", [[1.0, 0.0], [0.0, float("inf")]])])
def test_a_non_finite_prior_field_is_named_not_blamed_on_reg_covar(data, field, value):
    # (mean_prior=[nan, 0] became a SingularCovarianceError advising more reg_covar)
    prior = GaussianPrior(**{field: value})
    with pytest.raises(ValueError, match=f"GaussianPrior.{field} must be finite"):
        prior.resolve(data, 3, "full")
    with pytest.raises(ValueError, match=f"GaussianPrior.{field} must be finite"):
        mixtures.fit(GaussianMixture(3, prior=prior), data, "vb", max_iter=2)


def test_dirichlet_concentration_of_the_wrong_length_is_named(data):
    with pytest.raises(ValueError, match=r"weight_concentration.*n_components = 10.*got shape \(3,\)"):
        GaussianPrior(weight_concentration=[1.0, 2.0, 3.0]).resolve(data, 10, "full")
    resolved = GaussianPrior(weight_concentration=[1.0, 2.0, 3.0]).resolve(data, 3, "full")
    assert resolved.weight_concentration.tolist() == [1.0, 2.0, 3.0]
    assert GaussianPrior(weight_concentration=[2.0]).resolve(data, 4, "diag").weight_concentration.tolist() == [2.0] * 4


def test_inverse_stick_breaking_stays_in_the_support():
    # 1 - Σ_{j<k} w_j rounds below w_k here: the old inverse gave the fraction 1 + 2⁻⁵²
    weights = torch.tensor([0.44912734310174574, 0.5508726568982544, 0.0, 0.0], dtype=torch.float64)
    fractions = inverse_stick_breaking(weights)
    assert fractions.tolist() == [0.44912734310174574, 1.0, 0.0]  # an exhausted stick breaks off nothing
    assert_close(stick_breaking(fractions), weights, rtol=1e-15, atol=0)
    model = GaussianMixture(4, "diag", prior=GaussianPrior(weight_prior="dirichlet_process", weight_concentration=1.0))
    X = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    params = MixtureParams(weights, torch.zeros(4, 2, dtype=torch.float64), torch.ones(4, 2, dtype=torch.float64),
                           "diag")
    assert math.isfinite(float(model.log_prior(params, X)))
    random = torch.distributions.Dirichlet(torch.ones(6, dtype=torch.float64)).sample((200,))
    assert_close(stick_breaking(inverse_stick_breaking(random)), random, rtol=1e-12, atol=1e-15)
