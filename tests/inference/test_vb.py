"""Variational Bayes (method="vb"): equal to scikit-learn's BayesianGaussianMixture from the same
responsibilities, exact ELBO (checked against the Pyro program's log prior and by Monte Carlo),
monotone, Dirichlet-process pruning, posterior draws, clear errors."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.distributions as td
from sklearn import mixture as sklearn_mixture

import mixtures
from mixtures import ConvergenceWarning, GaussianMixture
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.families.gaussian.statistics import summarize
from mixtures.families.gaussian.variational import VariationalParameters, bounds, update, vb_pass

from conftest import COVARIANCE_TYPES, assert_close, true_params

WEIGHT_PRIORS = ("dirichlet", "dirichlet_process")
SKLEARN_WEIGHT_PRIOR = {"dirichlet": "dirichlet_distribution", "dirichlet_process": "dirichlet_process"}


@pytest.fixture(scope="module")
def offset_data():
    """Three overlapping 3-D clusters far from the origin, and random starting responsibilities."""
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]])
    X = np.concatenate([rng.normal(0, 1, (300, 3)), rng.normal(2.5, 0.7, (200, 3)) @ mixing,
                        rng.normal(-2, 1.5, (150, 3))]) + 40.0
    resp = rng.uniform(size=(len(X), 3))
    return X, resp / resp.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def small_data():
    """200 points of the well-separated 2-D mixture of conftest (full covariances)."""
    X, _ = true_params("full").sample(200, seed=3)
    return X


def sklearn_vb(X, resp, covariance_type, weight_prior, **kwargs):
    """scikit-learn's BayesianGaussianMixture started from the responsibilities ``resp``."""
    reference = sklearn_mixture.BayesianGaussianMixture(
        n_components=resp.shape[1], covariance_type=covariance_type,
        weight_concentration_prior_type=SKLEARN_WEIGHT_PRIOR[weight_prior], **kwargs)
    # scikit-learn computes responsibilities from its initializer, then runs its M step.
    reference._initialize_parameters = lambda X, random_state, xp=None: reference._initialize(X, resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when max_iter is small
        reference.fit(X)
    return reference


def fit_vb(X, covariance_type, weight_prior, K=3, **options):
    model = GaussianMixture(K, covariance_type, prior=GaussianPrior(weight_prior=weight_prior))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mixtures.fit(model, X, method="vb", **options)


# -- scikit-learn equality ---------------------------------------------------------------------
@pytest.mark.parametrize("weight_prior", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 500])
def test_vb_equals_sklearn_from_the_same_responsibilities(offset_data, covariance_type, weight_prior,
                                                          max_iter):
    X, resp = offset_data
    reference = sklearn_vb(X, resp, covariance_type, weight_prior, max_iter=max_iter, tol=1e-3,
                           reg_covar=1e-6)
    result = fit_vb(X, covariance_type, weight_prior, init=resp, max_iter=max_iter, tol=1e-3,
                    reg_covar=1e-6, posterior_samples=10)
    q = result.posterior.distribution
    assert result.n_iter == reference.n_iter_
    assert result.converged == reference.converged_
    if max_iter > 1:
        assert result.converged  # the comparison is at convergence
    # parameters: 1e-10 relative (observed ≤ 1e-11); rounding differences grow slowly with the
    # iterations, so the one slow run (tied, Dirichlet process: ~230 iterations, 5e-11) gets 3e-10
    tight = dict(rtol=1e-10 if reference.n_iter_ <= 100 else 3e-10, atol=0)
    if weight_prior == "dirichlet":
        assert_close(q["weight_concentration"], reference.weight_concentration_, **tight)
    else:
        assert_close(q["weight_concentration"][0], reference.weight_concentration_[0], **tight)
        assert_close(q["weight_concentration"][1], reference.weight_concentration_[1], **tight)
    assert_close(q["mean_precision"], reference.mean_precision_, **tight)
    assert_close(q["means"], reference.means_, **tight)
    assert_close(q["degrees_of_freedom"], reference.degrees_of_freedom_, **tight)
    assert_close(q["covariances"], reference.covariances_, **tight)
    assert_close(q["precisions_cholesky"], reference.precisions_cholesky_, **tight)
    # the plug-in parameters are scikit-learn's weights_, means_, covariances_
    assert_close(result.params.weights, reference.weights_, **tight)
    assert_close(result.params.locs, reference.means_, **tight)
    assert_close(result.params.precisions_cholesky, reference.precisions_cholesky_, **tight)
    # lower bound of every iteration (history row 0 is the initial update, which sklearn does not score)
    sklearn_bounds = np.asarray(reference.lower_bounds_, dtype=float).reshape(-1)
    assert_close(result.history["sklearn_lower_bound"][1:], sklearn_bounds, rtol=1e-10, atol=0)
    # our exact (regularized) ELBO differs from sklearn's bound by a constant
    gap = result.history["regularized_elbo"] - result.history["sklearn_lower_bound"]
    assert float(gap.max() - gap.min()) <= 1e-12 * float(result.history["elbo"].abs().max())


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_exact_elbo_minus_sklearn_bound_is_constant_without_regularization(offset_data, covariance_type,
                                                                         weight_prior):
    X, resp = offset_data
    result = fit_vb(X, covariance_type, weight_prior, init=resp, max_iter=30, tol=0.0, reg_covar=0.0,
                    posterior_samples=10)
    history = result.history
    assert_close(history["regularized_elbo"], history["elbo"], rtol=0, atol=0)
    gap = history["elbo"] - history["sklearn_lower_bound"]
    assert float(gap.max() - gap.min()) <= 1e-12 * float(history["elbo"].abs().max())
    # with reg_covar > 0 only the regularized ELBO keeps a constant gap (checked above); the exact
    # ELBO then moves by about reg_covar N tr E[Λ] relative to it
    regularized = fit_vb(X, covariance_type, weight_prior, init=resp, max_iter=30, tol=0.0,
                         reg_covar=1e-3, posterior_samples=10).history
    drift = regularized["elbo"] - regularized["sklearn_lower_bound"]
    assert float(drift.max() - drift.min()) > 1e-9 * float(regularized["elbo"].abs().max())


# -- the ELBO is exact ---------------------------------------------------------------------------
def _log_q_at_sites(q, model, sites):
    """log q(θ) at the declared model's site values (``model.site_values``), with torch.distributions."""
    cov_type, cov = q.cov_type.name, q.covariances
    nu, beta, means = q.degrees_of_freedom, q.mean_precision, q.means
    if q.weight_prior == "dirichlet":
        log_q = td.Dirichlet(q.weight_concentration).log_prob(sites["weights"])
    else:
        a, b = q.weight_concentration
        log_q = td.Beta(a, b).log_prob(sites["stick_fractions"]).sum()
    precision = sites["precision"]
    if cov_type in ("full", "tied"):
        log_q = log_q + td.Wishart(nu, precision_matrix=nu[..., None, None] * cov).log_prob(precision).sum()
        locs = td.MultivariateNormal(means, precision_matrix=beta[:, None, None] * precision)
        return log_q + locs.log_prob(sites["locs"]).sum()
    shape = 0.5 * nu if cov_type == "spherical" else (0.5 * nu)[:, None].expand_as(cov)
    log_q = log_q + td.Gamma(shape, shape * cov).log_prob(precision).sum()
    lam = precision if cov_type == "diag" else precision[:, None].expand_as(means)
    return log_q + td.Normal(means, (beta[:, None] * lam).rsqrt()).log_prob(sites["locs"]).sum()


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_updates_elbo_equals_the_pyro_programs_joint(small_data, covariance_type, weight_prior):
    """``updates="model"`` is exact CAVI for the declared sites: given r, q(θ) is the exact posterior
    ∝ p(θ) Π p(x, z | θ)^r, so log p(θ) + E_r log p(X, Z | θ) − log q(θ) + H(r) is the ELBO at every θ.
    Checked at two θ with the Pyro program's own log prior."""
    X = small_data
    K = 3
    model = GaussianMixture(K, covariance_type, prior=GaussianPrior(weight_prior=weight_prior))
    prior = model.resolved_prior(X)
    resp = true_params(covariance_type).responsibilities(X) * 0.9 + 0.1 / K  # any q(Z) will do
    summary = summarize(X, resp, model.cov_type)
    q = update(summary, prior, model.cov_type, updates="model", reg_covar=0.0)
    elbo = bounds(summary, q, prior)["elbo"]
    entropy = -torch.special.xlogy(resp, resp).sum()
    draws = mixtures.fit(model, X, method="vb", init=resp, max_iter=0, reg_covar=0.0, updates="model",
                         posterior_samples=3, seed=1).posterior
    for params in (q.plug_in(), draws.draw(0)):
        sites = model.site_values(params)
        joint = (resp * params.joint_log_prob(X)).sum() + model.log_prior(params, X)
        assert_close(joint - _log_q_at_sites(q, model, sites) + entropy, elbo, rtol=1e-11, atol=0)


def _monte_carlo_elbo(q, prior, resp, X, n_draws=4000):
    """Monte Carlo ELBO of scikit-learn's updates for the model they are CAVI for (module docstring of
    mixtures.inference.vb): full-covariance Normal-Wishart, q(Λ_k) Wishart with restricted scale (one
    independent draw per component, also for tied), K Beta sticks of the untruncated stick-breaking prior."""
    K, D = q.means.shape
    name, cov = q.cov_type.name, q.covariances
    eye = torch.eye(D, dtype=X.dtype)
    full_cov = {"full": lambda: cov, "tied": lambda: cov.expand(K, D, D),
                "diag": lambda: torch.diag_embed(cov), "spherical": lambda: cov[:, None, None] * eye}[name]()
    psi0 = prior.covariance_prior
    psi0 = psi0 if psi0.dim() == 2 else torch.diag(psi0) if psi0.dim() == 1 else psi0 * eye
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's Wishart warns on nearly singular draws
        torch.manual_seed(0)
        if q.weight_prior == "dirichlet":
            weights = td.Dirichlet(q.weight_concentration).sample((n_draws,))
            log_q = td.Dirichlet(q.weight_concentration).log_prob(weights)
            log_p = td.Dirichlet(prior.weight_concentration).log_prob(weights)
            log_weights = weights.log()
        else:
            a, b = q.weight_concentration
            sticks = td.Beta(a, b).sample((n_draws,))
            log_q = td.Beta(a, b).log_prob(sticks).sum(-1)
            stick_prior = td.Beta(torch.ones_like(a), prior.weight_concentration.expand_as(a))
            log_p = stick_prior.log_prob(sticks).sum(-1)
            before = torch.cumsum(torch.log1p(-sticks), -1)[:, :-1]
            log_weights = sticks.log() + torch.cat([torch.zeros_like(before[:, :1]), before], -1)
        nu = q.degrees_of_freedom.expand(K)
        q_precision = td.Wishart(nu, precision_matrix=nu[:, None, None] * full_cov)
        precision = q_precision.sample((n_draws,))
        precision = 0.5 * (precision + precision.transpose(-1, -2))
        log_q = log_q + q_precision.log_prob(precision).sum(-1)
        p_precision = td.Wishart(prior.degrees_of_freedom, precision_matrix=psi0)
        log_p = log_p + p_precision.log_prob(precision).sum(-1)
        q_locs = td.MultivariateNormal(q.means, precision_matrix=q.mean_precision[:, None, None] * precision)
        locs = q_locs.sample()
        log_q = log_q + q_locs.log_prob(locs).sum(-1)
        p_locs = td.MultivariateNormal(prior.mean_prior, precision_matrix=prior.mean_precision * precision)
        log_p = log_p + p_locs.log_prob(locs).sum(-1)
        components = td.MultivariateNormal(locs[:, None], precision_matrix=precision[:, None])
        log_lik = components.log_prob(X[None, :, None])  # (S, N, K)
    integrand = (resp * (log_lik + log_weights[:, None])).sum((1, 2)) + log_p - log_q
    entropy = -torch.special.xlogy(resp, resp).sum()
    return float(integrand.mean() + entropy), float(integrand.std() / math.sqrt(n_draws))


@pytest.mark.parametrize("covariance_type, weight_prior", [
    ("tied", "dirichlet"), ("diag", "dirichlet"), ("spherical", "dirichlet"),
    ("full", "dirichlet_process"), ("diag", "dirichlet_process")])
def test_sklearn_updates_elbo_matches_monte_carlo(small_data, covariance_type, weight_prior):
    X = small_data
    model = GaussianMixture(3, covariance_type, prior=GaussianPrior(weight_prior=weight_prior))
    prior = model.resolved_prior(X)
    result = mixtures.fit(model, X, method="vb", init="kmeans", max_iter=5, reg_covar=0.0,
                          posterior_samples=2, warn=False)
    q = VariationalParameters.from_dict(result.extras["variational"])
    resp = q.plug_in().responsibilities(X)  # any q(Z) will do; one close to q(θ) keeps the variance low
    exact = float(bounds(summarize(X, resp, model.cov_type), q, prior)["elbo"])
    estimate, standard_error = _monte_carlo_elbo(q, prior, resp, X)
    assert standard_error < 0.3
    assert abs(exact - estimate) < 5 * standard_error + 1e-6 * abs(exact)


# -- monotonicity ---------------------------------------------------------------------------------
@pytest.mark.parametrize("updates", ["sklearn", "model"])
@pytest.mark.parametrize("weight_prior", WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_elbo_never_decreases(offset_data, covariance_type, weight_prior, updates):
    X, resp = offset_data
    result = fit_vb(X[:400], covariance_type, weight_prior, init=resp[:400], max_iter=60, tol=0.0,
                    reg_covar=0.0, updates=updates, posterior_samples=10)
    elbo = result.history["elbo"]
    assert len(elbo) == 61
    assert (torch.diff(elbo) >= -1e-12 * elbo.abs()[1:]).all(), torch.diff(elbo)
    assert float(elbo[-1] - elbo[0]) > 1.0  # it did move


def test_full_dirichlet_model_updates_are_sklearns(offset_data):
    X, resp = offset_data
    ours = fit_vb(X, "full", "dirichlet", init=resp, max_iter=20, tol=0.0, updates="model",
                  posterior_samples=10)
    theirs = fit_vb(X, "full", "dirichlet", init=resp, max_iter=20, tol=0.0, posterior_samples=10)
    assert_close(ours.history["elbo"], theirs.history["elbo"], rtol=1e-13, atol=0)
    assert_close(ours.params.covariances, theirs.params.covariances, rtol=1e-13, atol=0)


def test_model_updates_of_tied_spherical_and_sticks(small_data):
    """The exact updates for the declared sites differ from sklearn's where the docstring says."""
    X = small_data
    N, D = X.shape
    resp = true_params().responsibilities(X)
    summary = summarize(X, resp, GaussianMixture(3, "tied").cov_type)
    cases = [("tied", 2 + N, 2 + N / 3), ("spherical", 2 + D * summary.nk, 2 + summary.nk)]
    for name, nu_model, nu_sklearn in cases:
        model = GaussianMixture(3, name, prior=GaussianPrior(weight_prior="dirichlet_process"))
        summary = summarize(X, resp, model.cov_type)
        prior = model.resolved_prior(X)
        exact = update(summary, prior, model.cov_type, "model", 0.0)
        sklearn = update(summary, prior, model.cov_type, "sklearn", 0.0)
        assert_close(exact.degrees_of_freedom, nu_model, rtol=1e-12, atol=0)
        assert_close(sklearn.degrees_of_freedom, nu_sklearn, rtol=1e-12, atol=0)
        assert exact.weight_concentration[0].shape == (2,) and sklearn.weight_concentration[0].shape == (3,)
        assert_close(exact.weights().sum(), 1.0)


# -- history, fit() integration -------------------------------------------------------------------
def test_history_columns_identities_and_start(small_data):
    X = small_data
    model = GaussianMixture(3, "full", prior=GaussianPrior())
    labels = true_params().joint_log_prob(X).argmax(-1)
    result = mixtures.fit(model, X, method="vb", init=labels, posterior_samples=10)
    history = result.history
    assert {"iteration", "log_likelihood", "elbo", "kl", "time", "regularized_elbo",
            "sklearn_lower_bound"} <= set(history.columns)
    assert len(history) == result.n_iter + 1 and result.converged and result.method == "vb"
    assert history["iteration"].tolist() == list(range(result.n_iter + 1))
    assert_close(history["kl"], history["log_likelihood"] - history["elbo"], rtol=1e-12, atol=1e-9)
    assert result.objective == history.last("elbo")
    assert result.log_likelihood == pytest.approx(float(result.params.log_prob(X).sum()), rel=1e-12)
    assert (history["elbo"] < history["log_likelihood"]).all()  # the prior costs something
    # labels start from their one-hot responsibilities, exactly as the explicit array
    one_hot = torch.nn.functional.one_hot(labels, 3).double()
    same = mixtures.fit(model, X, method="vb", init=one_hot, posterior_samples=10)
    assert torch.equal(same.history["elbo"], history["elbo"])
    # MixtureParams start from their responsibilities
    start = true_params()
    from_params = mixtures.fit(model, X, method="vb", init=start, max_iter=3, posterior_samples=10)
    from_resp = mixtures.fit(model, X, method="vb", init=start.responsibilities(X), max_iter=3,
                             posterior_samples=10)
    assert_close(from_params.history["elbo"], from_resp.history["elbo"], rtol=1e-13, atol=0)
    # max_iter=0: the update from the starting responsibilities, scored at its plug-in parameters
    initial = mixtures.fit(model, X, method="vb", init=one_hot, max_iter=0, posterior_samples=10)
    assert len(initial.history) == 1 and initial.n_iter == 0 and not initial.converged
    assert initial.history.last("elbo") == history["elbo"][0]
    assert initial.log_likelihood == pytest.approx(float(initial.params.log_prob(X).sum()), rel=1e-12)


def test_result_saves_and_loads_without_stringified_fields(small_data, tmp_path):
    X = small_data
    model = GaussianMixture(3, "tied", prior=GaussianPrior(weight_prior="dirichlet_process"))
    result = mixtures.fit(model, X, method="vb", posterior_samples=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # io warns when it must stringify a field
        path = result.save(tmp_path / "vb.pt")
    loaded = mixtures.load(path)
    assert torch.equal(loaded.posterior.locs, result.posterior.locs)
    q = VariationalParameters.from_dict(loaded.extras["variational"])
    assert_close(q.plug_in().covariances, result.params.covariances, rtol=0, atol=0)
    assert torch.equal(loaded.history["sklearn_lower_bound"], result.history["sklearn_lower_bound"])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunking_does_not_change_the_result(small_data, covariance_type):
    X = small_data
    whole = fit_vb(X, covariance_type, "dirichlet_process", init="kmeans", max_iter=10, posterior_samples=10)
    chunked = fit_vb(X, covariance_type, "dirichlet_process", init="kmeans", max_iter=10, chunk_size=37,
                     posterior_samples=10)
    assert_close(chunked.history["elbo"], whole.history["elbo"], rtol=1e-12, atol=0)
    assert_close(chunked.params.covariances, whole.params.covariances, rtol=1e-11, atol=1e-14)


def test_vb_pass_statistics_equal_explicit_responsibilities(small_data):
    X = small_data
    model = GaussianMixture(3, "diag", prior=GaussianPrior())
    prior = model.resolved_prior(X)
    resp0 = true_params().responsibilities(X)
    q = update(summarize(X, resp0, model.cov_type), prior, model.cov_type)
    # E step written out: log ρ = E log π + ½ E log|Λ| − D/2 log 2π − ½ (D/β + (x − m)ᵀ E[Λ] (x − m))
    D = X.shape[1]
    precision = 1.0 / q.covariances
    maha = ((X[:, None, :] - q.means) ** 2 * precision).sum(-1)
    log_rho = (q.expected_log_weights() + 0.5 * q.expected_log_det_precision()
               - 0.5 * D * math.log(2 * math.pi) - 0.5 * (D / q.mean_precision + maha))
    resp = torch.softmax(log_rho, -1)
    summary = vb_pass(X, q, X.mean(0), chunk_size=50)
    explicit = summarize(X, resp, model.cov_type, shift=X.mean(0))
    assert_close(summary.nk, explicit.nk, rtol=1e-12, atol=1e-12)
    assert_close(summary.sx, explicit.sx, rtol=1e-12, atol=1e-10)
    assert_close(summary.sxx, explicit.sxx, rtol=1e-12, atol=1e-10)
    assert_close(summary.entropy, explicit.entropy, rtol=1e-12, atol=1e-10)
    assert_close(summary.log_likelihood, q.plug_in().log_prob(X).sum(), rtol=1e-13, atol=0)


# -- Dirichlet process, posterior draws -------------------------------------------------------------
def test_dirichlet_process_uses_about_three_of_ten_components():
    X, _ = true_params("full").sample(1500, seed=11)
    model = GaussianMixture(10, "full", prior=GaussianPrior(weight_prior="dirichlet_process"))
    result = mixtures.fit(model, X, method="vb", init="kmeans", seed=0, max_iter=500)
    assert result.converged
    assert 2.5 <= result.posterior.expected_components(0.01) <= 3.5
    assert float(result.params.weights.sort(descending=True).values[:3].sum()) > 0.95


@pytest.mark.parametrize("updates", ["sklearn", "model"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posterior_draws_have_the_variational_means(small_data, covariance_type, updates):
    X = small_data
    S = 2000
    weight_prior = "dirichlet" if updates == "sklearn" else "dirichlet_process"
    options = dict(init="kmeans", updates=updates, posterior_samples=S, seed=5)
    result = fit_vb(X, covariance_type, weight_prior, **options)
    posterior, q = result.posterior, VariationalParameters.from_dict(result.extras["variational"])
    K, D = 3, X.shape[1]
    assert posterior.kind == "variational" and posterior.n_draws == S
    assert posterior.weights.shape == (S, K) and posterior.locs.shape == (S, K, D)
    assert posterior.native.shape == (S,) + tuple(result.params.native.shape)
    assert_close(posterior.weights.sum(-1), torch.ones(S), rtol=0, atol=1e-12)

    def close_in_mean(draws, expected):
        standard_error = draws.std(0) / math.sqrt(S)
        assert ((draws.mean(0) - expected).abs() <= 5 * standard_error + 1e-12).all()

    # E[π] is the plug-in weight (exactly for Dirichlet and the K-1 sticks of updates="model")
    close_in_mean(posterior.weights, result.params.weights)
    close_in_mean(posterior.locs, q.means)
    # E[Λ] = covariances_⁻¹
    if q.cov_type.site == "scale_tril":
        precision = torch.cholesky_inverse(posterior.native)
        expected = torch.cholesky_inverse(result.params.native)
    else:
        precision, expected = posterior.native.reciprocal(), result.params.native.reciprocal()
    close_in_mean(precision, expected)
    # reproducible from the seed
    again = fit_vb(X, covariance_type, weight_prior, **options)
    assert torch.equal(again.posterior.locs, posterior.locs)
    assert set(posterior.distribution) >= {"weight_concentration", "mean_precision", "means",
                                           "degrees_of_freedom", "covariances", "precisions_cholesky"}


# -- errors ---------------------------------------------------------------------------------------
def test_clear_errors(small_data):
    X = small_data
    with pytest.raises(ValueError, match="needs a prior.*GaussianPrior"):
        mixtures.fit(GaussianMixture(3), X, method="vb")
    with pytest.raises(ValueError, match="method='svi' or method='nuts'"):
        mixtures.fit(GaussianMixture(3, prior=GaussianPrior(kind="nonconjugate")), X, method="vb")
    with pytest.raises(ValueError, match="updates must be one of"):
        mixtures.fit(GaussianMixture(3, prior=GaussianPrior()), X, method="vb", updates="exact")
    noise = torch.randn(len(X), 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    X3 = torch.cat([X, X[:, :1]], 1) + 0.1 * noise
    low_dof = GaussianMixture(3, "diag", prior=GaussianPrior(degrees_of_freedom=1.5))
    with pytest.raises(ValueError, match="degrees_of_freedom=1.5 must exceed D - 1 = 2"):
        mixtures.fit(low_dof, X3, method="vb")
    assert mixtures.fit(low_dof, X3, method="vb", updates="model", posterior_samples=10).converged
    with pytest.raises(ValueError, match="posterior_samples"):
        mixtures.fit(GaussianMixture(3, prior=GaussianPrior()), X, method="vb", posterior_samples=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        mixtures.fit(GaussianMixture(3, prior=GaussianPrior()), X, method="vb", init="random", max_iter=2,
                     tol=0.0, posterior_samples=10)


# -- ill-posed default priors: documented errors, never a raw LinAlgError --------------------------
def _vb(X, covariance_type="full", K=2, prior=None, **options):
    model = GaussianMixture(K, covariance_type, prior=prior or GaussianPrior())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mixtures.fit(model, X, method="vb", posterior_samples=8, **options)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_constant_feature_with_the_default_prior_is_a_data_error(small_data, covariance_type, dtype):
    # The default covariance_prior is the empirical covariance, singular along a constant feature:
    # the ELBO's log|Ψ₀| is -inf. Before: a raw torch LinAlgError (full, tied) or an ELBO of -inf
    # (DivergenceError, diag). Now a DataError naming the feature, covariance_prior and the fix.
    # (reg_covar=1e-2 in float32: the initializer's full / tied start needs it, see test_hardening)
    reg_covar = 1e-2 if dtype == torch.float32 else 1e-6
    X = torch.cat([small_data, torch.full((len(small_data), 1), 3.0, dtype=torch.float64)], 1).to(dtype)
    with pytest.raises(mixtures.DataError, match=r"covariance_prior.*feature\(s\) \[2\] of X is constant.*"
                                                 r"[Rr]emove the constant feature"):
        _vb(X, covariance_type, reg_covar=reg_covar)
    # "spherical" averages the variances (Ψ₀ > 0) and fits; so does every type with Ψ₀ given
    assert torch.isfinite(_vb(X, "spherical").params.covariances).all()
    psi = {"full": np.eye(3), "tied": np.eye(3), "diag": np.ones(3)}[covariance_type]
    result = _vb(X, covariance_type, prior=GaussianPrior(covariance_prior=psi), reg_covar=reg_covar)
    assert result.params.dtype == dtype and torch.isfinite(result.params.covariances).all()
    assert torch.isfinite(result.history["elbo"]).all()


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_collinear_features_with_the_default_prior_is_a_data_error(small_data, covariance_type):
    X = torch.cat([small_data, 2.0 * small_data[:, :1]], 1)  # third feature = 2 x first
    with pytest.raises(mixtures.DataError, match="covariance_prior.*collinear"):
        _vb(X, covariance_type)
    # diag / spherical priors only need positive variances
    for other in ("diag", "spherical"):
        assert torch.isfinite(_vb(X, other).params.locs).all()


def test_one_point_with_the_default_prior_is_a_data_error():
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    with pytest.raises(mixtures.DataError, match="at least 2 points.*covariance_prior"):
        _vb(x, K=1)
    fitted = _vb(x, K=1, prior=GaussianPrior(covariance_prior=np.eye(2)))
    assert torch.isfinite(fitted.params.covariances).all()
    # two distinct points in one dimension: a proper default prior, a fit
    assert torch.isfinite(_vb(torch.tensor([[0.0], [1.0]], dtype=torch.float64), K=1).params.locs).all()


def test_numerically_singular_given_covariance_prior_is_a_parameter_error(small_data):
    # accepted by GaussianPrior (its Cholesky succeeds) but singular to working precision
    psi = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-14]])
    with pytest.raises(mixtures.ParameterError, match="given covariance_prior.*singular"):
        _vb(small_data, prior=GaussianPrior(covariance_prior=psi))
