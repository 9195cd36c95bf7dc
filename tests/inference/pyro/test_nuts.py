"""``method="nuts"``: the collapsed potential (eager and traced), the sampler on every prior, chains
in parallel, relabelling, diagnostics, and runs that did not explore flagged as invalid.

Small problems throughout (N <= 150, K = 2, D <= 2, a few hundred NUTS steps at most).
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.core import convergence
from mixtures.core.posterior import Posterior
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.families.gaussian.transforms import CholeskyPositiveDefiniteTransform
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.labels import invariant_quantities
from mixtures.inference.pyro.nuts import make_kernel, permute_components, relabel_draws
from mixtures.inference.pyro.recording import RecordingNUTS
from mixtures.inference.pyro.sampler_checks import chain_problems, mixing_problems, sampler_problems
from mixtures.init import initialize

from conftest import COVARIANCE_TYPES, assert_close

KINDS = ("conjugate", "nonconjugate")
# smoke runs: wiring, not accuracy (one chain, in this process; such runs are flagged invalid)
TINY = {"warmup": 10, "num_samples": 5, "max_tree_depth": 4, "num_chains": 1, "warn": False}


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
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_jit_compiled_potential_equals_the_eager_one_at_every_call(covariance_type, kind):
    # The shipped bayes.yaml had jit_compile: true and drew 150/150 divergent transitions: the
    # traced potential read uninitialized memory from its second call on. HMC uses potential
    # differences and gradients, so those must agree at many points, over many calls. (Traced,
    # torch's MultivariateNormal computes D log 2π in float32: a constant offset, no force.)
    _, X, _ = two_blobs(2, n=40)
    model = prior_model(covariance_type, kind)
    point = initialize(model, X, "kmeans", seed=0, reg_covar=1e-3)
    kernels = {}
    for jit in (False, True):
        kernels[jit] = make_kernel(model, X, point, jit_compile=jit)
        with torch.random.fork_rng(), model.fitting():
            kernels[jit].setup(0, X)
    values = model.site_values(point)
    base = {name: kernels[False].transforms[name](value) for name, value in values.items()}
    generator = torch.Generator().manual_seed(1)
    energies = {False: [], True: []}
    for _ in range(6):
        z = {name: (value + 0.05 * torch.randn(value.shape, dtype=value.dtype, generator=generator))
             for name, value in base.items()}
        for jit, kernel in kernels.items():
            with model.fitting():
                leaves = {name: value.clone().requires_grad_() for name, value in z.items()}
                energy = kernel.potential_fn(leaves)
                grads = torch.autograd.grad(energy, list(leaves.values()))
            energies[jit].append((float(energy.detach()), grads))
    for (eager, eager_grads), (traced, traced_grads) in zip(energies[False][1:], energies[True][1:]):
        assert_close(traced - energies[True][0][0], eager - energies[False][0][0], rtol=1e-10, atol=1e-9)
        for got, expected in zip(traced_grads, eager_grads):
            assert_close(got, expected, rtol=1e-10, atol=1e-9)


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


@pytest.mark.parametrize("processes", [1, 2])
def test_chains_with_child_seeds_combine_and_parallel_chains_equal_sequential_ones(processes):
    _, X, _ = two_blobs(1, n=50)
    S = 8
    options = dict(seed=2, num_chains=3, warmup=20, num_samples=S, max_tree_depth=5, warn=False)
    result = mixtures.fit(prior_model("spherical"), X, "nuts", chain_processes=processes, **options)
    assert result.extras["chain_processes"] == processes
    posterior, samples = result.posterior, result.extras["samples"]
    assert posterior.n_draws == 3 * S and len(result.history) == 3 * S
    assert len(set(result.extras["chain_seeds"])) == 3
    assert result.history["chain"].tolist() == [0.0] * S + [1.0] * S + [2.0] * S
    assert (result.history["time"] > 0).all()
    assert samples["locs"].shape == (3, S, 2, 1)
    assert not torch.equal(samples["locs"][0], samples["locs"][1])
    # the posterior is the chains one after another; R-hat and ESS are across chains
    assert torch.equal(posterior.locs, samples["locs"].reshape(3 * S, 2, 1))
    assert_close(posterior.diagnostics["r_hat"]["locs"], convergence.r_hat(samples["locs"]))
    assert_close(posterior.diagnostics["ess"]["locs"], convergence.ess_bulk(samples["locs"]))
    assert_close(posterior.diagnostics["ess_tail"]["locs"], convergence.ess_tail(samples["locs"]))
    assert len(posterior.diagnostics["divergences"]) == 3
    # one chain by itself is the same chain: in this process and in workers, bit for bit
    alone = mixtures.fit(prior_model("spherical"), X, "nuts", chain_processes=1, **options)
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(alone.posterior, name), getattr(posterior, name))
    assert torch.equal(alone.history["log_joint"], result.history["log_joint"])


def test_progress_bars_only_when_asked_or_on_a_terminal(capsys):
    from mixtures.inference.pyro.chains import show_progress

    assert show_progress(None) is False  # under pytest (and CI, and redirected stderr): never
    assert show_progress(True) is True and show_progress(False) is False
    _, X, _ = two_blobs(1, n=30)
    for processes in (1, 2):
        mixtures.fit(prior_model("spherical"), X, "nuts", seed=0, chain_processes=processes,
                     progress_bar=True, **{**TINY, "num_chains": 2})
        err = capsys.readouterr().err
        assert "chain 0" in err and "chain 1" in err, err
    mixtures.fit(prior_model("spherical"), X, "nuts", seed=0, **TINY)
    assert capsys.readouterr().err == ""


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
    options = dict(seed=4, warmup=20, num_samples=10, max_tree_depth=5, num_chains=1, warn=False)
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
    # the defaults' 4 chains, in parallel where there are cores
    result = mixtures.fit(model, X, "nuts", seed=0, warmup=150, num_samples=EASY_DRAWS)
    return model, X, labels, result


EASY_DRAWS = 250


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
    # Monte Carlo error of the means is ~0.05 posterior sd at this ESS (> 400); allow 0.3 sd
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
    # the reference's thresholds (Vehtari et al. 2021): R-hat < 1.01, bulk and tail ESS > 100 per chain
    for name, r_hat in {**diagnostics["r_hat"], **diagnostics["invariant_r_hat"]}.items():
        assert (r_hat < 1.01).all(), (name, r_hat)
    for name, ess in {**diagnostics["ess"], **diagnostics["ess_tail"], **diagnostics["invariant_ess"]}.items():
        assert (ess > 400).all(), (name, ess)
    assert diagnostics["r_hat"]["locs"].shape == (2, 1)
    # label-invariant quantities: the two components never get close, so no pair of points is uncertain
    assert set(diagnostics["invariant_r_hat"]) == {"log_likelihood", "sorted_weights"}
    assert diagnostics["co_clustering_pairs"].shape == (0, 2)
    assert result.converged and result.extras["problems"] == [] and diagnostics["problems"] == []
    assert diagnostics["num_divergences"] == 0
    for c in range(4):
        assert 0.5 < diagnostics["acceptance_rate"][c] <= 1.0 and diagnostics["step_size"][c] > 0
        assert 0.6 < diagnostics["mean_accept_prob"][c] < 1.0  # adapted towards target_accept_prob=0.8


def test_history_and_result_fields(easy):
    model, X, _, result = easy
    history, posterior = result.history, result.posterior
    S = 4 * EASY_DRAWS
    assert len(history) == S and result.n_iter == EASY_DRAWS and result.method == "nuts"
    assert history["iteration"].tolist() == list(map(float, range(S)))
    assert torch.isnan(history["elbo"]).all() and torch.isnan(history["kl"]).all()
    assert (history["time"].reshape(4, EASY_DRAWS).diff() >= 0).all() and (history["divergent"] == 0).all()
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
    # the log prior and log-likelihood at the start were checked finite: the gradient is blamed
    with pytest.raises(mixtures.DivergenceError, match="log prior and log-likelihood at the start are finite, but "
                                                       "the gradient.*fit in float64"):
        mixtures.fit(prior_model("diag"), X, "nuts", seed=0, **TINY)


# -- runs that did not explore are invalid, and say why -----------------------------------------------
def test_the_jit_failure_is_named_by_every_check_it_fails():
    # what the shipped bayes.yaml's JIT run reported as valid: 150/150 divergent, acceptance 0,
    # step size 2.4e-41, every chain stuck (R-hat and ESS undefined)
    stuck = torch.zeros(1, 150, 2, 2)
    r_hat = {"locs": convergence.r_hat(stuck)}
    diagnostics = {"divergences": [list(range(150))], "step_size": [2.4e-41], "acceptance_rate": [0.0],
                   "mean_accept_prob": [0.0], "r_hat": r_hat, "ess": {"locs": convergence.ess_bulk(stuck)},
                   "ess_tail": {"locs": convergence.ess_tail(stuck)}}
    problems = sampler_problems(diagnostics, {}, num_samples=150, target_accept_prob=0.8)
    text = " | ".join(problems)
    assert "150 of 150 post-warmup transitions diverged" in text
    assert "step size collapsed to 2.4e-41" in text
    assert "no kept iteration moved" in text
    assert "never changed" in text


def test_chain_checks_pass_a_healthy_run_and_name_the_rest():
    healthy = chain_problems([[], []], [0.5, 0.6], [0.9, 0.92], [0.81, 0.79], 100, 0.8)
    assert healthy == []
    problems = chain_problems([[], [3, 7]], [0.5, 1e-7], [0.9, 0.5], [0.81, 0.3], 100, 0.8)
    assert any("2 of 200 post-warmup transitions diverged (chain 1: 2)" in p for p in problems)
    assert any("chain 1: the step size collapsed" in p for p in problems)
    assert any("chain 1: mean acceptance probability 0.300" in p for p in problems)
    # R-hat and ESS against their thresholds, naming the worst entry
    values = {"locs": torch.tensor([1.003, 1.02])}
    ess = {"locs": torch.tensor([900.0, 350.0])}
    mixing = mixing_problems(values, ess, ess, {}, num_chains=4, what="relabelled")
    assert any("R-hat of locs (relabelled) is 1.0200 across 4 chains" in p for p in mixing)
    assert any("bulk ESS of locs (relabelled) is 350 (needs 400" in p for p in mixing)
    assert mixing_problems({"locs": torch.tensor([1.003])}, {"locs": torch.tensor([500.0])},
                           {"locs": torch.tensor([500.0])}, {}, num_chains=4) == []


class _BrokenPotential(RecordingNUTS):
    """NUTS whose potential energy is the model's plus noise: what a broken potential looks like."""

    def setup(self, warmup_steps, *args, **kwargs):
        super().setup(warmup_steps, *args, **kwargs)
        potential, generator = self.potential_fn, torch.Generator().manual_seed(0)
        self.potential_fn = lambda z: potential(z) + 50.0 * torch.randn((), dtype=torch.float64, generator=generator)


def _broken_kernel(model, X, init, **options):
    kernel = make_kernel(model, X, init, **options)
    kernel.__class__ = _BrokenPotential
    return kernel


def test_a_broken_sampler_is_invalid_in_the_result_with_a_warning(monkeypatch):
    from mixtures.inference.pyro import nuts

    _, X, _ = two_blobs(1, n=60)
    monkeypatch.setattr(nuts, "make_kernel", _broken_kernel)
    with pytest.warns(mixtures.ConvergenceWarning, match="NUTS did not produce a valid posterior"):
        result = mixtures.fit(prior_model("spherical"), X, "nuts", seed=0, warmup=30, num_samples=20,
                              num_chains=2, chain_processes=1, max_tree_depth=4)
    assert result.converged is False
    problems = result.extras["problems"]
    assert problems and problems == result.posterior.diagnostics["problems"]
    assert any("diverged" in p or "acceptance" in p or "R-hat" in p for p in problems), problems


def test_label_invariant_diagnostics_see_through_switched_labels():
    # chain 1 carries the components in swapped slots: per-component R-hat of the raw draws is
    # huge, the label-invariant quantities agree across the chains
    generator = torch.Generator().manual_seed(3)
    S = 200
    locs = torch.tensor([[-2.0], [2.0]], dtype=torch.float64) + 0.1 * torch.randn(2, S, 2, 1, generator=generator,
                                                                                    dtype=torch.float64)
    weights = torch.tensor([0.3, 0.7], dtype=torch.float64) + 0.01 * torch.randn(2, S, 2, generator=generator,
                                                                                  dtype=torch.float64)
    locs[1], weights[1] = locs[1].flip(-2), weights[1].flip(-1)
    weights = weights / weights.sum(-1, keepdim=True)
    draws = MixtureParams.from_native(weights.reshape(2 * S, 2), locs.reshape(2 * S, 2, 1),
                                      torch.ones(2 * S, 2, dtype=torch.float64), "spherical", validate=False)
    X = torch.linspace(-3, 3, 25, dtype=torch.float64).unsqueeze(-1)
    log_likelihood = torch.stack([draws.index(s).log_prob(X).sum() for s in range(2 * S)])
    invariants, pairs = invariant_quantities(draws, X, log_likelihood, num_chains=2)
    assert convergence.r_hat(locs).min() > 1.5  # rank-normalized: bounded (~1.83) for fully separated chains
    assert (convergence.r_hat(invariants["sorted_weights"]) < 1.02).all()
    assert convergence.r_hat(invariants["log_likelihood"]) < 1.02
    # co-clustering of pairs near the middle is uncertain; the values are Σ_k r_ik r_jk
    assert pairs.shape[1] == 2 and 0 < pairs.shape[0] <= 20
    i, j = int(pairs[0, 0]), int(pairs[0, 1])
    resp = draws.index(5).responsibilities(X)
    assert_close(invariants["co_clustering"][0, 5, 0], (resp[i] * resp[j]).sum())


def _one_dimensional_blobs():
    truth = MixtureParams(torch.tensor([0.4, 0.6]), torch.tensor([[-5.0], [5.0]]), torch.tensor([1.0, 1.0]),
                          "spherical").to(torch.float64)
    X, _ = truth.sample(150, seed=5)
    return GaussianMixture(2, "spherical", prior=GaussianPrior()), X


# the easy problem's fixture is the control: the same model, default settings, valid
CRIPPLED = {"seed": 0, "warmup": 40, "num_samples": 60, "num_chains": 2, "chain_processes": 1,
            "min_ess_per_chain": 20}


def test_a_real_run_with_a_tiny_tree_depth_cannot_pass():
    # one leapfrog step per iteration: a random walk that does not explore in 60 draws
    model, X = _one_dimensional_blobs()
    with pytest.warns(mixtures.ConvergenceWarning, match="NUTS did not produce a valid posterior"):
        result = mixtures.fit(model, X, "nuts", max_tree_depth=1, **CRIPPLED)
    assert result.converged is False
    assert any("R-hat" in p or "ESS" in p for p in result.extras["problems"]), result.extras["problems"]


def test_a_real_run_with_a_fixed_tiny_step_size_cannot_pass(monkeypatch):
    # no step-size adaptation and a step size far too small: the chains stay where they start
    from mixtures.inference.pyro import nuts

    model, X = _one_dimensional_blobs()
    crippled = functools.partial(RecordingNUTS, step_size=1e-3, adapt_step_size=False)
    monkeypatch.setattr(nuts, "RecordingNUTS", crippled)  # the program's kernel
    monkeypatch.setattr(potential, "RecordingNUTS", crippled)  # the collapsed potential's kernel
    result = mixtures.fit(model, X, "nuts", max_tree_depth=3, warn=False, **CRIPPLED)
    assert result.posterior.diagnostics["step_size"] == [pytest.approx(1e-3)] * 2
    assert result.converged is False
    assert any("R-hat" in p for p in result.extras["problems"]), result.extras["problems"]
