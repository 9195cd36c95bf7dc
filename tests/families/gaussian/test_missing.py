"""Missing values (missing at random) in the Gaussian family, checked against direct computations.

References are written out point by point in numpy/scipy here (explicit inverses of small
blocks, loops over points): independent of the pattern-grouped, Cholesky-based code they check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import mixtures
from mixtures import GaussianMixture, GaussianPrior, MixtureParams, PoissonMixture
from mixtures.core.missing import marginalizing, mean_imputed
from mixtures.errors import DataError
from mixtures.families.gaussian import STRUCTURES
from mixtures.families.gaussian.missing import e_step, observed_log_prob, statistic_from_scatter

D = 3


def mixture(structure: str = "full") -> MixtureParams:
    covariances = torch.tensor([[[1.0, 0.6, 0.2], [0.6, 1.5, -0.3], [0.2, -0.3, 0.8]],
                                [[0.7, -0.2, 0.1], [-0.2, 0.5, 0.05], [0.1, 0.05, 1.2]]], dtype=torch.float64)
    full = MixtureParams([0.35, 0.65], [[0.0, 0.5, -1.0], [2.5, 2.0, 1.0]], covariances, "full")
    if structure == "full":
        return full
    # the structure's own M step from the full mixture's responsibilities gives a valid parameter set
    X, _ = full.sample(400, seed=7)
    model = GaussianMixture(2, structure)
    return model.params_from_responsibilities(X, full.responsibilities(X))


def with_missing(X: torch.Tensor, rate: float, seed: int = 0) -> torch.Tensor:
    """``X`` with entries removed at random (never a whole row)."""
    mask = torch.rand(X.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) < rate
    mask[mask.all(1), 0] = False
    return torch.where(mask, torch.tensor(float("nan"), dtype=X.dtype), X)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    X, _ = mixture().sample(240, seed=3)
    return X, with_missing(X, 0.2)


def brute_log_prob(params: MixtureParams, X: torch.Tensor) -> np.ndarray:
    """``log N(x_o | μ_o, Σ_oo)`` ``(N, K)``, one scipy call per point and component."""
    locs, covs = params.locs.numpy(), params.covariances.numpy()
    out = np.empty((X.shape[0], params.n_components))
    for n, x in enumerate(X.numpy()):
        o = ~np.isnan(x)
        for k in range(params.n_components):
            out[n, k] = multivariate_normal(locs[k][o], covs[k][np.ix_(o, o)]).logpdf(x[o])
    return out


def brute_expected_statistics(params: MixtureParams, X: torch.Tensor):
    """``Σ r``, ``Σ r E[x]``, ``Σ r E[x xᵀ]`` ``(K, D, D)`` and ``Σ log p(x_o)``, point by point."""
    locs, covs, weights = params.locs.numpy(), params.covariances.numpy(), params.weights.numpy()
    K = params.n_components
    nk, sx, sxx, total = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), 0.0
    for x in X.numpy():
        o, m = ~np.isnan(x), np.isnan(x)
        dens = np.array([weights[k] * multivariate_normal(locs[k][o], covs[k][np.ix_(o, o)]).pdf(x[o])
                         for k in range(K)])
        total += np.log(dens.sum())
        resp = dens / dens.sum()
        for k in range(K):
            inverse = np.linalg.inv(covs[k][np.ix_(o, o)])
            filled = x.copy()
            filled[m] = locs[k][m] + covs[k][np.ix_(m, o)] @ inverse @ (x[o] - locs[k][o])
            second = np.outer(filled, filled)
            second[np.ix_(m, m)] += covs[k][np.ix_(m, m)] - covs[k][np.ix_(m, o)] @ inverse @ covs[k][np.ix_(o, m)]
            nk[k] += resp[k]
            sx[k] += resp[k] * filled
            sxx[k] += resp[k] * second
    return nk, sx, sxx, total


def test_observed_log_prob_against_scipy(data):
    _, X = data
    params = mixture()
    expected = brute_log_prob(params, X)
    np.testing.assert_allclose(observed_log_prob(X, params.locs, params.covariances).numpy(), expected,
                               rtol=1e-12, atol=1e-12)
    with marginalizing():
        np.testing.assert_allclose(params.component_log_prob(X).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_expected_statistics_against_direct_computation(data):
    _, X = data
    params = mixture()
    shift = torch.zeros(D, dtype=torch.float64)
    summary = e_step(X, params, shift)
    nk, sx, sxx, total = brute_expected_statistics(params, X)
    np.testing.assert_allclose(summary.nk.numpy(), nk, rtol=1e-11)
    np.testing.assert_allclose(summary.sx.numpy(), sx, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(summary.sxx.numpy(), sxx, rtol=1e-11, atol=1e-11)
    assert float(summary.log_likelihood) == pytest.approx(total, rel=1e-13)
    # the M step from them is the maximizer of the expected complete-data log-likelihood (closed form)
    new = GaussianMixture(2, "full").m_step(summary, reg_covar=0.0)
    means = sx / nk[:, None]
    covs = sxx / nk[:, None, None] - np.einsum("kd,ke->kde", means, means)
    np.testing.assert_allclose(new.weights.numpy(), nk / nk.sum(), rtol=1e-12)
    np.testing.assert_allclose(new.locs.numpy(), means, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(new.covariances.numpy(), covs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_statistic_layout_matches_the_structure(structure):
    X, _ = mixture().sample(50, seed=1)
    resp = mixture().responsibilities(X)
    full = STRUCTURES["full"].second_moment(X, resp)
    cov_type = STRUCTURES[structure]
    torch.testing.assert_close(statistic_from_scatter(cov_type, full), cov_type.second_moment(X, resp),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_elbo_equals_observed_log_likelihood_after_the_e_step(data, structure):
    """``q(z, x_mis)`` of the E step is the exact posterior: expected log joint + entropy = log p(X_obs)."""
    _, X = data
    params, model = mixture(structure), GaussianMixture(2, structure)
    summary = model.e_step(X, params, model.statistics_shift(X))
    assert float(model.elbo(summary, params)) == pytest.approx(float(summary.log_likelihood), rel=1e-12)
    with marginalizing():
        assert float(summary.log_likelihood) == pytest.approx(float(params.log_prob(X).sum()), rel=1e-13)


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_em_is_monotone_with_20_percent_missing(data, structure):
    _, X = data
    result = mixtures.fit(GaussianMixture(2, structure), X, "em", missing="marginalize", max_iter=12, tol=0.0,
                          warn=False)
    log_likelihood = result.history["log_likelihood"]
    assert torch.isfinite(log_likelihood).all()
    assert (log_likelihood.diff() >= -1e-9 * log_likelihood.abs()[1:]).all()
    assert (result.history["kl"][1:] >= -1e-8).all()
    with marginalizing():
        assert result.log_likelihood == pytest.approx(float(result.params.log_prob(X).sum()), rel=1e-12)


@pytest.mark.parametrize("method", ["em", "hard_em"])
@pytest.mark.parametrize("structure", ["full", "tied", "diag", "VEV"])
def test_complete_data_fit_is_identical_with_the_option(data, method, structure):
    X, _ = data
    model = GaussianMixture(2, structure)
    plain = mixtures.fit(model, X, method, max_iter=20, warn=False)
    marginal = mixtures.fit(model, X, method, missing="marginalize", max_iter=20, warn=False)
    assert torch.equal(plain.params.locs, marginal.params.locs)
    assert torch.equal(plain.params.native, marginal.params.native)
    assert torch.equal(plain.history["log_likelihood"], marginal.history["log_likelihood"])


@pytest.mark.parametrize("structure", ["full", "tied", "diag", "spherical", "EVE"])
def test_map_loss_is_the_observed_data_log_likelihood(data, structure):
    """The Pyro program's masked observation site gives EM's observed-data log-likelihood."""
    _, X = data
    params, model = mixture(structure), GaussianMixture(2, structure)
    expected = float(model.e_step(X, params, model.statistics_shift(X)).log_likelihood)
    for standardize in (False, True):
        result = mixtures.fit(model, X, "map", init=params, missing="marginalize", num_steps=0,
                              standardize=standardize)
        assert -result.history["loss"][0] == pytest.approx(expected, rel=1e-12, abs=1e-10)
        assert result.history["log_likelihood"][0] == pytest.approx(expected, rel=1e-12, abs=1e-10)


def test_map_loss_with_a_prior_adds_the_log_prior(data):
    _, X = data
    model = GaussianMixture(2, "full", prior=GaussianPrior(mean_prior=torch.zeros(D, dtype=torch.float64),
                                                           covariance_prior=torch.eye(D, dtype=torch.float64)))
    params = mixture()
    expected = float(model.e_step(X, params, model.statistics_shift(X)).log_likelihood)
    result = mixtures.fit(model, X, "map", init=params, missing="marginalize", num_steps=0)
    log_prior = float(model.log_prior(params, X))
    assert -result.history["loss"][0] == pytest.approx(expected + log_prior, rel=1e-12, abs=1e-10)


def test_map_and_svi_improve_the_observed_data_likelihood(data):
    _, X = data
    model = GaussianMixture(2, "full")
    for method in ("map", "svi"):
        result = mixtures.fit(model, X, method, missing="marginalize", num_steps=25, init="kmeans")
        log_likelihood = result.history["log_likelihood"]
        assert log_likelihood[-1] > log_likelihood[0]
        with marginalizing():
            assert result.log_likelihood == pytest.approx(float(result.params.log_prob(X).sum()), rel=1e-12)
        # the program's decoding (compute_marginals on the masked site) equals the closed form
        torch.testing.assert_close(result.predict_proba(X), _closed_form_proba(result.params, X), rtol=1e-9,
                                   atol=1e-12)


def _closed_form_proba(params: MixtureParams, X: torch.Tensor) -> torch.Tensor:
    with marginalizing():
        return params.responsibilities(X)


def test_impute_one_component_is_the_conditional_mean():
    params = MixtureParams([1.0], [[0.5, -1.0, 2.0]], [[[1.0, 0.6, 0.2], [0.6, 1.5, -0.3], [0.2, -0.3, 0.8]]])
    X, _ = params.sample(40, seed=2)
    X = with_missing(X, 0.35, seed=4)
    imputed = params.impute(X).numpy()
    mu, sigma = params.locs[0].numpy(), params.covariances[0].numpy()
    for x, filled in zip(X.numpy(), imputed):
        o, m = ~np.isnan(x), np.isnan(x)
        expected = x.copy()
        expected[m] = mu[m] + sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], x[o] - mu[o])
        np.testing.assert_allclose(filled, expected, rtol=1e-12, atol=1e-12)


def test_impute_mixture_mean_and_draws(data):
    _, X = data
    params = mixture()
    rows = X[:30]
    means = params.impute(rows).numpy()
    locs, covs, weights = params.locs.numpy(), params.covariances.numpy(), params.weights.numpy()
    for x, filled in zip(rows.numpy(), means):
        o, m = ~np.isnan(x), np.isnan(x)
        dens = np.array([weights[k] * multivariate_normal(locs[k][o], covs[k][np.ix_(o, o)]).pdf(x[o])
                         for k in range(2)])
        resp = dens / dens.sum()
        expected = x.copy()
        expected[m] = sum(resp[k] * (locs[k][m] + covs[k][np.ix_(m, o)] @ np.linalg.solve(
            covs[k][np.ix_(o, o)], x[o] - locs[k][o])) for k in range(2))
        np.testing.assert_allclose(filled, expected, rtol=1e-12, atol=1e-12)
    draws = params.impute(rows, draws=4000, seed=0)
    assert draws.shape == (4000, 30, D)
    observed = ~torch.isnan(rows)
    assert torch.equal(draws[:, observed], rows[observed].expand(4000, -1))
    # Monte Carlo: the draws' mean is the conditional mean within 5 standard errors
    missing = torch.isnan(rows)
    spread = draws[:, missing].std(0) / 4000 ** 0.5
    assert ((draws[:, missing].mean(0) - torch.from_numpy(means)[missing]).abs() < 5 * spread + 1e-12).all()
    assert torch.equal(params.impute(rows, draws=3, seed=5), params.impute(rows, draws=3, seed=5))


def test_queries_accept_nan_when_the_fit_marginalized(data):
    X, Xm = data
    marginal = mixtures.fit(GaussianMixture(2), Xm, "em", missing="marginalize", max_iter=5, warn=False)
    expected = brute_log_prob(marginal.params, Xm[:20]) + marginal.params.weights.log().numpy()
    np.testing.assert_allclose(marginal.score_samples(Xm[:20]).numpy(),
                               np.logaddexp.reduce(expected, axis=1), rtol=1e-12)
    assert torch.equal(marginal.predict(Xm[:20]), torch.from_numpy(expected.argmax(1)))
    assert marginal.impute(Xm).isnan().sum() == 0
    total = float(marginal.score_samples(Xm).sum())
    assert marginal.score(Xm) * Xm.shape[0] == pytest.approx(total, rel=1e-14)
    assert marginal.bic(Xm) == pytest.approx(-2 * total + marginal.n_parameters() * np.log(Xm.shape[0]), rel=1e-14)
    plain = mixtures.fit(GaussianMixture(2), X, "em", max_iter=5, warn=False)
    with pytest.raises(DataError, match="missing='marginalize'"):
        plain.predict(Xm)
    assert torch.equal(plain.predict(Xm, missing="marginalize"),
                       plain.predict_proba(Xm, missing="marginalize").argmax(-1))


def test_errors_name_the_option_and_the_routines(data):
    X, Xm = data
    with pytest.raises(DataError, match=r"row\(s\).*missing='marginalize'"):
        mixtures.fit(GaussianMixture(2), Xm, "em")
    with pytest.raises(ValueError, match=r"method 'kmeans' cannot fit data with missing values yet; missing="
                                         r"'marginalize' works with \['em', 'hard_em', 'map', 'nuts', 'stepwise_em', "
                                         r"'svi', 'vb'\]"):
        mixtures.fit(GaussianMixture(2), Xm, "kmeans", missing="marginalize")
    with pytest.raises(ValueError, match="PoissonMixture cannot marginalize"):
        mixtures.fit(PoissonMixture(2), Xm.abs(), "em", missing="marginalize")
    with pytest.raises(ValueError, match="missing must be None"):
        mixtures.fit(GaussianMixture(2), Xm, "em", missing="drop")
    empty = Xm.clone()
    empty[4] = float("nan")
    with pytest.raises(DataError, match="1 row.*no observed value.*row 4"):
        mixtures.fit(GaussianMixture(2), empty, "em", missing="marginalize")
    infinite = Xm.clone()
    infinite[2, 1] = float("inf")
    with pytest.raises(DataError, match="row 2"):
        mixtures.fit(GaussianMixture(2), infinite, "em", missing="marginalize")


def test_start_is_computed_on_mean_imputed_data(data):
    _, Xm = data
    result = mixtures.fit(GaussianMixture(2), Xm, "em", missing="marginalize", max_iter=0)
    expected = mixtures.fit(GaussianMixture(2), mean_imputed(Xm), "em", max_iter=0)
    assert torch.equal(result.init.locs, expected.init.locs)
    assert result.extras["fit_settings"]["missing"] == "marginalize"


def test_remove_at_random_is_seeded_and_keeps_a_value_per_row():
    X = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    removed = mixtures.data.remove_at_random(X, 0.3, seed=1)
    assert torch.equal(removed.isnan(), mixtures.data.remove_at_random(X, 0.3, seed=1).isnan())
    assert not removed.isnan().all(1).any()
    assert abs(float(removed.isnan().double().mean()) - 0.3) < 0.02
    assert torch.equal(removed[~removed.isnan()], X[~removed.isnan()])
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        mixtures.data.remove_at_random(X, 1.0)


@pytest.mark.parametrize("structure, updates", [("full", "sklearn"), ("diag", "model"), ("tied", "model")])
def test_vb_elbo_is_monotone_with_20_percent_missing(data, structure, updates):
    _, X = data
    model = GaussianMixture(2, structure, prior=GaussianPrior())
    result = mixtures.fit(model, X, "vb", missing="marginalize", reg_covar=0.0, updates=updates, max_iter=15,
                          tol=0.0, warn=False)
    elbo = result.history["elbo"]
    assert torch.isfinite(elbo).all()
    assert (elbo.diff() >= -1e-9 * elbo.abs()[1:]).all()
    with marginalizing():
        assert result.log_likelihood == pytest.approx(float(result.params.log_prob(X).sum()), rel=1e-12)


@pytest.mark.parametrize("structure", ["full", "spherical"])
def test_vb_pass_of_the_missing_path_on_complete_data_equals_the_fused_pass(data, structure):
    """VB's E step through the pattern code (``log ρ = c_k + log N(x_obs | m_k, E[Λ_k]⁻¹)``) on data
    with nothing missing gives the fused pass's statistics, entropy and plug-in log-likelihood."""
    from mixtures.families.gaussian import missing, variational
    X, _ = data
    model = GaussianMixture(2, structure, prior=GaussianPrior())
    cavi = model.variational(X, "model", 1e-6)
    shift = model.statistics_shift(X)
    q = cavi.update(model.e_step(X, mixture(structure), shift))
    fused = variational.vb_pass(X, q, shift)
    constants = variational.expected_log_constants(q)
    plug_in = q.plug_in()
    patterned = missing.e_step(X, plug_in, shift, log_weights=constants,
                               likelihood_offsets=plug_in.weights.log() - constants)
    for name in ("nk", "sx", "sxx", "log_likelihood", "entropy"):
        torch.testing.assert_close(getattr(patterned, name), getattr(fused, name), rtol=1e-10, atol=1e-9)


@pytest.mark.filterwarnings("ignore:Singular sample detected")
def test_nuts_potential_carries_the_observed_data_likelihood(data):
    """Pyro's potential of the program on data with NaNs differs from the complete data's, at every point,
    by exactly the log-likelihood lost with the removed entries (prior and Jacobians are the same)."""
    from pyro.infer.mcmc.util import initialize_model

    from mixtures.core.family import MAX_PLATE_NESTING
    from mixtures.inference.pyro.nuts import site_transforms
    X, Xm = data
    # hyperparameters given: defaults would be resolved from each data set (the mean-imputed one with NaNs)
    model = GaussianMixture(2, "full", prior=GaussianPrior(kind="nonconjugate", mean_prior=[1.0, 1.0, 0.0],
                                                           covariance_prior=torch.eye(D, dtype=torch.float64)))
    init = mixture()
    transforms = site_transforms(model, X, init)
    start = {name: transforms[name](value) for name, value in model.site_values(init).items()}

    def potential_fn(data):
        return initialize_model(model.model, model_args=(data,), max_plate_nesting=MAX_PLATE_NESTING,
                                transforms=transforms, initial_params=start)[1]

    complete = potential_fn(X)
    generator = torch.Generator().manual_seed(0)
    with marginalizing():
        masked = potential_fn(Xm)
        for scale in (0.0, 0.1):
            point = {name: value + scale * torch.randn(value.shape, generator=generator, dtype=value.dtype)
                     for name, value in start.items()}
            sites = {name: transforms[name].inv(value) for name, value in point.items()}
            params = model.params_from_sites(sites, X)
            lost = float(params.log_prob(X).sum() - params.log_prob(Xm).sum())
            assert float(masked(point) - complete(point)) == pytest.approx(lost, rel=1e-10, abs=1e-9)


def test_stepwise_em_reaches_em_on_missing_data():
    X, _ = mixtures.data.random_mixture(2, 3, separation=2.0, seed=11).sample(1000, seed=0)
    Xm = mixtures.data.remove_at_random(X, 0.2, seed=1)
    model = GaussianMixture(2, "full")
    em = mixtures.fit(model, Xm, "em", missing="marginalize", tol=1e-8)
    stepwise = mixtures.fit(model, Xm, "stepwise_em", missing="marginalize", num_epochs=8, batch_size=200,
                            warn=False)
    with marginalizing():
        assert float(stepwise.params.log_prob(Xm).sum()) == pytest.approx(em.log_likelihood, abs=0.05)


def test_batched_patterns_equal_each_pattern_on_its_own():
    """Patterns are batched by their number of observed coordinates (pattern_groups): the pass over 6-D data
    with ~100 patterns equals the sum of passes over each pattern's rows alone, to 1e-10 in float64."""
    from mixtures.families.gaussian.pattern_groups import groups

    truth = mixtures.data.random_mixture(3, 6, separation=1.0, seed=5)
    X, _ = truth.sample(400, seed=6)
    X = mixtures.data.remove_at_random(X, 0.35, seed=7)
    found = groups(X)
    assert sum(group.obs.shape[0] for group in found) > 60 and len(found) >= 5
    assert sorted(torch.cat([group.rows for group in found]).tolist()) == list(range(400))
    shift = X.nan_to_num().mean(0)
    whole = e_step(X, truth, shift)
    hard = e_step(X, truth, shift, hard=True)
    observed = ~torch.isnan(X)
    parts = []
    labels = torch.empty(400, dtype=torch.long)
    for mask in torch.unique(observed, dim=0):
        rows = torch.nonzero((observed == mask).all(1)).reshape(-1)
        parts.append(e_step(X[rows].clone(), truth, shift))
        labels[rows] = e_step(X[rows].clone(), truth, shift, hard=True).labels
    for name in ("nk", "sx", "sxx", "log_likelihood", "entropy"):
        expected = sum(getattr(part, name) for part in parts)
        torch.testing.assert_close(getattr(whole, name), expected, rtol=1e-10, atol=1e-10)
    assert torch.equal(hard.labels, labels)
    np.testing.assert_allclose(observed_log_prob(X, truth.locs, truth.covariances)[:80].numpy(),
                               brute_log_prob(truth, X[:80]), rtol=1e-11, atol=1e-11)
    one_by_one = torch.cat([truth.impute(X[i:i + 1].clone()) for i in range(0, 400, 7)])
    torch.testing.assert_close(truth.impute(X)[::7], one_by_one, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("D", [5, 64])  # 64 > 62 columns: masks sorted as rows, not as integer codes
def test_pattern_groups_partition_the_rows(D):
    from mixtures.families.gaussian.pattern_groups import groups

    X = mixtures.data.remove_at_random(torch.randn(60, D, generator=torch.Generator().manual_seed(1),
                                                   dtype=torch.float64), 0.3, seed=2)
    found = groups(X)
    assert sorted(torch.cat([g.rows for g in found]).tolist()) == list(range(60))
    assert [g.obs.shape[1] for g in found] == sorted({g.obs.shape[1] for g in found}, reverse=True)
    for g in found:
        observed = ~torch.isnan(X[g.rows])  # each row's mask is its pattern's
        expected = torch.zeros_like(observed)
        expected.scatter_(1, g.obs[g.pattern], True)
        assert torch.equal(observed, expected) and bool((g.pattern[1:] >= g.pattern[:-1]).all())
        assert torch.equal(torch.sort(torch.cat([g.obs, g.mis], 1), 1).values, torch.arange(D).expand(len(g.obs), D))


@pytest.mark.parametrize("structure", ["full", "diag"])
def test_batched_patterns_with_weights_equal_repeated_rows(structure):
    """Point weights in the batched pass (EM's soft and hard passes, VB's constants and offsets, labelled points'
    statistics at given responsibilities): integer weights equal the rows repeated, weight 0 the row dropped; the
    re-seeding point is never a zero-weight row, even the worst-explained one."""
    from mixtures.families.gaussian.missing import summarize_at

    truth = mixtures.data.random_mixture(3, 5, separation=1.0, seed=5, covariance_type=structure)
    X, _ = truth.sample(300, seed=6)
    X = mixtures.data.remove_at_random(X, 0.3, seed=7)
    generator = torch.Generator().manual_seed(3)
    weights = torch.randint(0, 4, (300,), generator=generator)
    with marginalizing():
        log_p = torch.logsumexp(truth.component_log_prob(X) + truth.weights.log(), -1)
    weights[torch.argsort(log_p)[:3]] = 0  # the worst-explained points dropped
    repeated = X.repeat_interleave(weights, 0)
    shift = X.nan_to_num().mean(0)
    constants = torch.tensor([-1.5, -0.7, -1.2], dtype=torch.float64)
    offsets = truth.weights.log() - constants
    for options in ({}, {"hard": True}, {"log_weights": constants, "likelihood_offsets": offsets}, {"chunk_size": 41}):
        weighted = e_step(X, truth, shift, sample_weight=weights.double(), **options)
        expected = e_step(repeated, truth, shift, **options)
        for name in ("nk", "sx", "sxx", "log_likelihood", "entropy", "worst_point"):
            torch.testing.assert_close(getattr(weighted, name), getattr(expected, name), rtol=1e-10, atol=1e-9)
        assert float(weighted.log_likelihood) != pytest.approx(float(e_step(X, truth, shift, **options).log_likelihood))
    resp = torch.nn.functional.one_hot(torch.arange(300) % 3, 3).double()
    at = summarize_at(X, truth, resp * weights.double()[:, None], shift)
    expected = summarize_at(repeated, truth, resp.repeat_interleave(weights, 0), shift)
    parts = [summarize_at(X[rows].clone(), truth, resp[rows] * weights.double()[rows, None], shift)
             for rows in (torch.nonzero((~torch.isnan(X) == mask).all(1)).reshape(-1)
                          for mask in torch.unique(~torch.isnan(X), dim=0))]
    for name in ("nk", "sx", "sxx", "entropy"):
        torch.testing.assert_close(getattr(at, name), getattr(expected, name), rtol=1e-10, atol=1e-9)
        torch.testing.assert_close(getattr(at, name), sum(getattr(part, name) for part in parts), rtol=1e-10, atol=1e-9)
