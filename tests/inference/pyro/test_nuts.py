"""``method="nuts"``: the collapsed potential, the sampler on every prior, relabelling, diagnostics.

Small problems throughout (N <= 150, K = 2, D <= 2, a few hundred NUTS steps at most).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from pyro.ops import stats

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.core.posterior import Posterior
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.families.gaussian.transforms import CholeskyPositiveDefiniteTransform
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.nuts import make_kernel, permute_components, relabel_draws
from mixtures.init import initialize

from conftest import COVARIANCE_TYPES, assert_close

KINDS = ("conjugate", "nonconjugate")
TINY = {"warmup": 10, "num_samples": 5, "max_tree_depth": 4}  # smoke runs: wiring, not accuracy


def two_blobs(D: int, n: int = 120, seed: int = 1) -> tuple[MixtureParams, torch.Tensor, torch.Tensor]:
    """Well-separated K=2 mixture in D dimensions (means -3 and +3 on every axis)."""
    locs = torch.tensor([[-3.0] * D, [3.0] * D], dtype=torch.float64)
    cov = torch.eye(D, dtype=torch.float64).expand(2, D, D).clone()
    truth = MixtureParams(torch.tensor([0.4, 0.6], dtype=torch.float64), locs, cov, "full")
    X, labels = truth.sample(n, seed=seed)
    return truth, X, labels


def prior_model(covariance_type: str, kind: str = "conjugate", **prior) -> GaussianMixture:
    return GaussianMixture(2, covariance_type, prior=GaussianPrior(kind=kind, **prior))


# -- the potential energy ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("D", [1, 2])
def test_potential_is_negative_log_prior_plus_log_likelihood(covariance_type, kind, D):
    _, X, _ = two_blobs(D, n=40)
    model = prior_model(covariance_type, kind)
    # an arbitrary point of the model's type (not the data's truth)
    point = initialize(model, X, "kmeans", seed=0, reg_covar=1e-3)
    point = point.replace(weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
                          locs=point.locs + torch.tensor([0.2, -0.1], dtype=torch.float64)[:, None])
    with potential.enabled(False):  # the program's own kernel (the fused one: test_potential.py)
        kernel = make_kernel(model, X, point)
    with torch.random.fork_rng():
        kernel.setup(0, X)
    # the assignments are enumerated in parallel (summed out), never sampled
    assignment = kernel._prototype_trace.nodes["assignment"]
    assert assignment["infer"]["enumerate"] == "parallel"
    assert assignment["value"].shape == (2, 1)
    values = model.site_values(point)
    assert set(values) == set(kernel.transforms)
    unconstrained = {name: kernel.transforms[name](value) for name, value in values.items()}
    # potential(u) = -(log p(θ) + log p(X | θ) + log |dθ/du|)
    log_jacobian = sum(kernel.transforms[name].inv.log_abs_det_jacobian(unconstrained[name], value).sum()
                       for name, value in values.items())
    expected = -(model.log_prior(point, X) + point.log_prob(X).sum() + log_jacobian)
    assert_close(kernel.potential_fn(unconstrained), expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("D", [1, 2, 3])
def test_positive_definite_transform_is_a_bijection_with_the_stated_jacobian(D):
    transform = CholeskyPositiveDefiniteTransform()
    x = torch.randn(D * (D + 1) // 2, dtype=torch.float64, generator=torch.Generator().manual_seed(D))
    matrix = transform(x)
    assert torch.linalg.cholesky_ex(matrix)[1] == 0
    torch.testing.assert_close(matrix, matrix.T, rtol=0, atol=0)
    assert_close(transform.inv(matrix), x)
    rows, cols = torch.tril_indices(D, D)
    # Lebesgue measure of a Wishart density: the lower-triangular entries
    jacobian = torch.autograd.functional.jacobian(lambda v: transform(v)[rows, cols], x)
    assert_close(transform.log_abs_det_jacobian(x, matrix), torch.linalg.slogdet(jacobian)[1])
    batch = torch.stack([x, 0.5 * x])
    assert_close(transform(batch)[1], transform(0.5 * x))


def test_a_model_without_a_prior_is_refused_with_a_pointer_to_priors():
    _, X, _ = two_blobs(1, n=20)
    with pytest.raises(ValueError, match="GaussianPrior"):
        mixtures.fit(GaussianMixture(2), X, "nuts", **TINY)


@pytest.mark.parametrize("options, message", [({"num_samples": 3}, "num_samples"),
                                              ({"warmup": -1}, "warmup"),
                                              ({"target_accept_prob": 1.0}, "target_accept_prob"),
                                              ({"num_chains": 0}, "num_chains")])
def test_bad_options_are_named(options, message):
    _, X, _ = two_blobs(1, n=20)
    with pytest.raises(ValueError, match=message):
        mixtures.fit(prior_model("full"), X, "nuts", **{**TINY, **options})


# -- sampling on every prior --------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampling_runs_on_every_prior(covariance_type, kind):
    _, X, _ = two_blobs(2, n=60)
    model = prior_model(covariance_type, kind)
    result = mixtures.fit(model, X, "nuts", seed=3, **TINY)
    S, K, D = TINY["num_samples"], 2, 2
    posterior = result.posterior
    assert isinstance(posterior, Posterior) and posterior.kind == "mcmc"
    assert posterior.weights.shape == (S, K) and posterior.locs.shape == (S, K, D)
    assert posterior.native.shape == (S,) + model.cov_type.native_shape(K, D)
    assert torch.isfinite(posterior.locs).all() and torch.isfinite(posterior.native).all()
    assert_close(posterior.weights.sum(-1), torch.ones(S))
    assert result.params.covariance_type == covariance_type and result.n_iter == S
    expected_sites = {"weights", "locs"} | set(model.global_sites) - {"stick_fractions"}
    assert set(posterior.diagnostics["r_hat"]) == expected_sites
    assert set(posterior.diagnostics["ess"]) == expected_sites
    assert result.extras["relabel_permutations"].shape == (S, K)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_sampling_in_one_dimension_with_a_nonconjugate_prior_has_no_correlation_site(covariance_type):
    _, X, _ = two_blobs(1, n=40)
    result = mixtures.fit(prior_model(covariance_type, "nonconjugate"), X, "nuts", seed=0, **TINY)
    assert set(result.posterior.diagnostics["r_hat"]) == {"weights", "locs", "scales"}
    assert torch.isfinite(result.posterior.native).all()


def test_stick_breaking_weights_are_sampled_and_diagnosed_as_weights():
    _, X, _ = two_blobs(1, n=40)
    model = prior_model("spherical", weight_prior="dirichlet_process")
    result = mixtures.fit(model, X, "nuts", seed=0, **TINY)
    assert "stick_fractions" not in result.posterior.diagnostics["r_hat"]
    assert result.posterior.diagnostics["r_hat"]["weights"].shape == (2,)
    assert_close(result.posterior.weights.sum(-1), torch.ones(TINY["num_samples"]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace's own notice
def test_jit_compiled_potential_samples():
    _, X, _ = two_blobs(2, n=40)
    result = mixtures.fit(prior_model("full"), X, "nuts", seed=0, jit_compile=True, **TINY)
    assert torch.isfinite(result.posterior.locs).all()


# -- determinism, RNG hygiene, chains --------------------------------------------------------------
def test_same_seed_same_draws_and_global_rng_untouched():
    _, X, _ = two_blobs(2, n=50)
    model = prior_model("diag")
    torch_state, numpy_state, python_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    first = mixtures.fit(model, X, "nuts", seed=7, **TINY)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    assert random.getstate() == python_state
    second = mixtures.fit(model, X, "nuts", seed=7, **TINY)
    other = mixtures.fit(model, X, "nuts", seed=8, **TINY)
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(first.posterior, name), getattr(second.posterior, name))
    assert not torch.equal(first.posterior.locs, other.posterior.locs)
    assert torch.equal(first.history["log_joint"], second.history["log_joint"])


def test_chains_run_one_after_another_with_child_seeds_and_combine():
    _, X, _ = two_blobs(1, n=50)
    S = 8
    result = mixtures.fit(prior_model("spherical"), X, "nuts", seed=2, num_chains=2, warmup=20,
                          num_samples=S, max_tree_depth=5)
    posterior, samples = result.posterior, result.extras["samples"]
    assert posterior.n_draws == 2 * S and len(result.history) == 2 * S
    assert len(set(result.extras["chain_seeds"])) == 2
    assert result.history["chain"].tolist() == [0.0] * S + [1.0] * S
    assert samples["locs"].shape == (2, S, 2, 1)
    assert not torch.equal(samples["locs"][0], samples["locs"][1])
    # the posterior is the chains one after another; R-hat is across chains
    assert torch.equal(posterior.locs, samples["locs"].reshape(2 * S, 2, 1))
    assert_close(posterior.diagnostics["r_hat"]["locs"],
                 stats.split_gelman_rubin(samples["locs"], chain_dim=0, sample_dim=1))
    assert_close(posterior.diagnostics["ess"]["locs"],
                 stats.effective_sample_size(samples["locs"], chain_dim=0, sample_dim=1))
    assert len(posterior.diagnostics["divergences"]) == 2


# -- relabelling --------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_relabelling_undoes_swapped_labels(covariance_type):
    K, D, S = 3, 2, 7
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    covariances = {"full": torch.eye(D, dtype=torch.float64) * scales[:, None, None],
                   "tied": torch.eye(D, dtype=torch.float64),
                   "diag": scales[:, None].expand(K, D), "spherical": scales}[covariance_type]
    means = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    reference = MixtureParams(weights, means, covariances, covariance_type)
    aligned_locs = reference.locs + 0.3 * torch.randn(S, K, D, dtype=torch.float64, generator=generator)
    aligned_weights = torch.softmax(torch.randn(S, K, dtype=torch.float64, generator=generator), -1)
    swaps = torch.stack([torch.randperm(K, generator=generator) for _ in range(S)])
    swaps[0] = torch.tensor([2, 0, 1])  # at least one non-trivial permutation
    # draw s holds aligned component swaps[s, j] in slot j
    swapped_locs = permute_components(aligned_locs, swaps, 0)
    swapped_weights = permute_components(aligned_weights, swaps, 0)
    assert torch.equal(swapped_locs[0, 0], aligned_locs[0, 2])
    native = reference.native.expand(S, *reference.native.shape)
    draws = MixtureParams.from_native(swapped_weights, swapped_locs, native, reference.cov_type, validate=False)
    perms = relabel_draws(draws, reference)
    assert perms.shape == (S, K) and perms.dtype == torch.long
    assert torch.equal(permute_components(swapped_locs, perms, 0), aligned_locs)
    assert torch.equal(permute_components(swapped_weights, perms, 0), aligned_weights)
    relabelled = draws.permuted(perms)  # the same permutation of every tensor of the draws
    assert torch.equal(relabelled.locs, aligned_locs) and torch.equal(relabelled.weights, aligned_weights)
    # perm undoes swap: swapped slot perm[s, k] holds aligned component k
    assert torch.equal(swaps.gather(1, perms), torch.arange(K).expand(S, K))


def test_relabelling_uses_the_reference_covariances():
    # reference means 0 (sd 0.1) and 3 (sd 10); draw means -0.6 and 0.5. Euclidean matching
    # would pair -0.6 with 0 (cost 0.36 + 6.25 < 0.25 + 12.96); under the reference
    # covariances 0.5 is the better match for the narrow component (25 + 0.13 < 36 + 0.06).
    reference = MixtureParams(torch.tensor([0.5, 0.5]), torch.tensor([[0.0], [3.0]]),
                              torch.tensor([0.01, 100.0]), "spherical").to(torch.float64)
    def draws(locs):
        return MixtureParams.from_native(reference.weights[None], torch.tensor([locs], dtype=torch.float64),
                                         reference.native[None], "spherical", validate=False)

    assert relabel_draws(draws([[-0.6], [0.5]]), reference).tolist() == [[1, 0]]
    assert relabel_draws(draws([[0.5], [2.9]]), reference).tolist() == [[0, 1]]


def test_fit_relabels_every_draw_and_records_the_permutations():
    _, X, _ = two_blobs(2, n=60)
    model = prior_model("full")
    options = dict(seed=4, warmup=20, num_samples=10, max_tree_depth=5)
    raw = mixtures.fit(model, X, "nuts", relabel=False, **options)
    aligned = mixtures.fit(model, X, "nuts", **options)
    perms = aligned.extras["relabel_permutations"]
    assert torch.equal(raw.extras["relabel_permutations"], torch.arange(2).expand(10, 2))
    assert_close(aligned.posterior.locs, permute_components(raw.posterior.locs, perms, 0), rtol=0, atol=0)
    assert_close(aligned.posterior.weights, permute_components(raw.posterior.weights, perms, 0),
                 rtol=0, atol=0)
    assert_close(aligned.posterior.native, permute_components(raw.posterior.native, perms, 0),
                 rtol=0, atol=0)
    # the reference draw has the highest log joint and is its own alignment
    reference = aligned.extras["relabel_reference"]
    assert reference == int(aligned.history["log_joint"].argmax())
    assert perms[reference].tolist() == [0, 1]
    # raw draws are the model's sites converted by params_from_sites
    for s in (0, 9):
        sites = {name: value[0, s] for name, value in raw.extras["samples"].items()}
        expected = model.params_from_sites(sites, X)
        draw = raw.posterior.draw(s)
        assert_close(draw.locs, expected.locs)
        assert_close(draw.covariances, expected.covariances)
        assert_close(draw.weights, expected.weights)


# -- the easy problem: posterior against the exact answer, diagnostics, history -----------------------
@pytest.fixture(scope="module")
def easy():
    """1-D, two components 10 standard deviations apart: p(z | X) is one labelling."""
    truth = MixtureParams(torch.tensor([0.4, 0.6]), torch.tensor([[-5.0], [5.0]]), torch.tensor([1.0, 1.0]),
                          "spherical").to(torch.float64)
    X, labels = truth.sample(150, seed=5)
    model = GaussianMixture(2, "spherical", prior=GaussianPrior())
    result = mixtures.fit(model, X, "nuts", seed=0, warmup=100, num_samples=150)
    return model, X, labels, result


def exact_normal_gamma_posterior(X, labels, model):
    """Posterior of (weights, μ_k, λ_k) given the labels (Normal–Gamma, Dirichlet)."""
    prior = model.resolved_prior(X)
    m0, beta0 = float(prior.mean_prior), float(prior.mean_precision)
    a0, b0 = 0.5 * float(prior.degrees_of_freedom), 0.5 * float(prior.covariance_prior)
    alpha = prior.weight_concentration
    out = {"mean": [], "mean_sd": [], "precision": [], "precision_sd": []}
    counts = []
    for k in range(2):
        x = X[labels == k, 0]
        n, xbar = x.numel(), float(x.mean())
        counts.append(n)
        beta_n = beta0 + n
        a_n = a0 + 0.5 * n
        b_n = b0 + 0.5 * float((x - xbar).square().sum()) + 0.5 * beta0 * n * (xbar - m0) ** 2 / beta_n
        out["mean"].append((beta0 * m0 + n * xbar) / beta_n)
        out["mean_sd"].append(math.sqrt(b_n / (beta_n * (a_n - 1))))
        out["precision"].append(a_n / b_n)
        out["precision_sd"].append(math.sqrt(a_n) / b_n)
    concentration = alpha + torch.tensor(counts, dtype=torch.float64)
    total = float(concentration.sum())
    out["weights"] = (concentration / total).tolist()
    out["weights_sd"] = (concentration * (total - concentration) / (total ** 2 * (total + 1))).sqrt().tolist()
    return {key: torch.tensor(value, dtype=torch.float64) for key, value in out.items()}


def test_posterior_agrees_with_the_exact_conjugate_posterior(easy):
    model, X, labels, result = easy
    # the truth labels are what any posterior-probable labelling is (10 sd apart)
    assert torch.equal(labels, (X[:, 0] > 0).long())
    exact = exact_normal_gamma_posterior(X, labels, model)
    posterior = result.posterior
    order = posterior.locs.mean(0)[:, 0].argsort()  # component 0 = the negative one
    locs = posterior.locs[:, order, 0]
    precisions = posterior.native[:, order].reciprocal()
    weights = posterior.weights[:, order]
    # Monte Carlo error of the means is ~0.1 posterior sd at this ESS (~100); allow 0.3 sd
    assert ((locs.mean(0) - exact["mean"]).abs() < 0.3 * exact["mean_sd"]).all()
    assert ((precisions.mean(0) - exact["precision"]).abs() < 0.3 * exact["precision_sd"]).all()
    assert ((weights.mean(0) - exact["weights"]).abs() < 0.3 * exact["weights_sd"]).all()
    assert_close(locs.std(0), exact["mean_sd"], rtol=0.2, atol=0)
    assert_close(precisions.std(0), exact["precision_sd"], rtol=0.2, atol=0)
    assert_close(weights.std(0), exact["weights_sd"], rtol=0.2, atol=0)
    # a single labelling throughout: no relabelling needed beyond the identity
    assert (result.extras["relabel_permutations"] == torch.arange(2)).all()


def test_diagnostics_on_the_easy_problem(easy):
    _, _, _, result = easy
    diagnostics = result.posterior.diagnostics
    assert set(diagnostics["r_hat"]) == {"weights", "locs", "precision"}
    for name, r_hat in diagnostics["r_hat"].items():
        assert ((r_hat - 1).abs() < 0.05).all(), (name, r_hat)
        assert (diagnostics["ess"][name] > 30).all(), (name, diagnostics["ess"][name])
    assert diagnostics["r_hat"]["locs"].shape == (2, 1)
    assert result.converged
    assert diagnostics["num_divergences"] == 0
    assert 0.5 < diagnostics["acceptance_rate"][0] <= 1.0 and diagnostics["step_size"][0] > 0
    assert 0.6 < diagnostics["mean_accept_prob"][0] < 1.0  # adapted towards target_accept_prob=0.8


def test_history_and_result_fields(easy):
    model, X, _, result = easy
    history, posterior = result.history, result.posterior
    S = 150
    assert len(history) == S and result.n_iter == S and result.method == "nuts"
    assert history["iteration"].tolist() == list(map(float, range(S)))
    assert torch.isnan(history["elbo"]).all() and torch.isnan(history["kl"]).all()
    assert (history["time"].diff() >= 0).all() and (history["divergent"] == 0).all()
    for s in (0, 57, S - 1):
        draw = posterior.draw(s)
        assert_close(history["log_likelihood"][s], draw.log_prob(X).sum())
        assert_close(history["log_prior"][s], model.log_prior(draw, X), rtol=1e-9)
    assert_close(history["log_joint"], history["log_prior"] + history["log_likelihood"])
    assert_close(result.objective, history["log_joint"].mean())
    mean = posterior.mean_params()
    assert_close(result.params.locs, mean.locs)
    assert_close(result.params.covariances, mean.covariances)
    assert_close(result.params.weights, mean.weights)
    assert result.extras["labels"].shape == (X.shape[0],)


def test_no_valid_start_is_a_divergence_error_with_the_fix(monkeypatch):
    # Pyro raises a bare ValueError when no start has a finite potential and gradient
    # (badly scaled data under the prior, float32 overflow): it becomes a DivergenceError
    import pyro.infer.mcmc.api

    def no_start(self, *args, **kwargs):
        raise ValueError("Model specification seems incorrect - cannot find valid initial params.")

    monkeypatch.setattr(pyro.infer.mcmc.api.MCMC, "run", no_start)
    X = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(mixtures.DivergenceError, match="Standardize the data, fit in float64"):
        mixtures.fit(prior_model("diag"), X, "nuts", seed=0, **TINY)
