"""ECM for t mixtures: the E step's latent scales by hand, CM steps that maximize the expected complete-data
log-likelihood (autograd and scipy's brentq as references), the ELBO, EM against MAP on the program, the
Gaussian limit ν → ∞, and statistics that add up over chunks (streamed and stepwise EM)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import digamma

import mixtures
from mixtures.core.stream import StreamingData
from mixtures.families import GaussianMixture, StudentTMixture, StudentTParams, StudentTPrior
from mixtures.families.student_t import statistics

from conftest import COVARIANCE_TYPES, assert_close, true_params


def t_params(structure: str = "full", dof=(3.0, 7.5, 40.0)) -> StudentTParams:
    gaussian = true_params(structure)
    return StudentTParams.from_native(gaussian.weights, gaussian.locs, gaussian.native,
                                      torch.tensor(dof, dtype=torch.float64), structure)


@pytest.fixture(scope="module")
def t_data():
    return t_params().sample(800, seed=7)[0]


@pytest.mark.parametrize("structure", COVARIANCE_TYPES)
def test_e_step_statistics_by_hand(structure):
    params = t_params(structure)
    X, _ = params.sample(400, seed=3)
    model = StudentTMixture(3, structure)
    shift = model.statistics_shift(X)
    summary = model.e_step(X, params, shift, chunk_size=97)  # chunks of a ragged size
    resp = params.responsibilities(X)
    D = 2
    delta = (X.unsqueeze(1) - params.locs).unsqueeze(-1)                                   # (N, K, D, 1)
    maha = (delta.transpose(-1, -2) @ torch.linalg.inv(params.scale_matrices) @ delta)[..., 0, 0]
    a, b = (params.dof + D) / 2, (params.dof + maha) / 2
    u = a / b
    w = resp * u
    assert_close(summary.nk, resp.sum(0), rtol=1e-12)
    assert_close(summary.su, w.sum(0), rtol=1e-11)
    assert_close(summary.sux, w.T @ (X - shift), rtol=1e-11, atol=1e-11)
    assert_close(summary.slogu, (resp * (torch.digamma(a) - b.log())).sum(0), rtol=1e-11, atol=1e-10)
    entropy = a - b.log() + torch.lgamma(a) + (1 - a) * torch.digamma(a)
    assert_close(summary.hu, (resp * entropy).sum(0), rtol=1e-11, atol=1e-10)
    assert_close(summary.log_likelihood, params.log_prob(X).sum(), rtol=1e-12)
    # q(z, u) after an E step is the exact posterior: the closed-form ELBO is the log-likelihood
    assert_close(model.elbo(summary, params), params.log_prob(X).sum(), rtol=1e-11)


def test_cm_steps_maximize_the_expected_complete_log_likelihood(t_data):
    model = StudentTMixture(3, "full")
    start = t_params()
    summary = model.e_step(t_data, start, model.statistics_shift(t_data))
    new = model.m_step(summary, reg_covar=0.0)
    assert_close(new.weights, summary.nk / summary.nk.sum(), rtol=1e-12)
    locs = new.locs.clone().requires_grad_(True)
    native = new.native.clone().requires_grad_(True)
    dof = new.dof.clone().requires_grad_(True)
    moving = StudentTParams.from_native(new.weights, locs, native, dof, "full", validate=False)
    statistics.expected_log_joint(summary, moving).backward()
    scale = float(summary.nk.sum())
    for grad in (locs.grad, native.grad.tril(), dof.grad):
        assert float(grad.abs().max()) < 1e-9 * scale, grad
    assert float(model.elbo(summary, new)) >= float(model.elbo(summary, start))


def test_degrees_of_freedom_root_equals_brentq(t_data):
    model = StudentTMixture(3, "full")
    summary = model.e_step(t_data, t_params(), model.statistics_shift(t_data))
    new = model.m_step(summary, reg_covar=0.0)
    for k in range(3):
        offset = float((summary.slogu[k] - summary.su[k]) / summary.nk[k])

        def f(nu, offset=offset):
            return math.log(nu / 2) + 1 - digamma(nu / 2) + offset

        expected = brentq(f, 0.1, 1000.0, xtol=1e-14, rtol=1e-15) if f(1000.0) < 0 else 1000.0
        assert_close(new.dof[k], expected, rtol=1e-10)
    shared = StudentTMixture(3, "full", dof="shared").m_step(summary, reg_covar=0.0)
    pooled = float((summary.slogu.sum() - summary.su.sum()) / summary.nk.sum())
    expected = brentq(lambda nu: math.log(nu / 2) + 1 - digamma(nu / 2) + pooled, 0.1, 1000.0, xtol=1e-14)
    assert_close(shared.dof, torch.full((3,), expected, dtype=torch.float64), rtol=1e-10)
    assert StudentTMixture(3, "full", dof=5.5).m_step(summary, 0.0).dof.tolist() == [5.5] * 3


@pytest.mark.parametrize("structure", COVARIANCE_TYPES)
def test_em_never_decreases_the_log_likelihood_and_the_gap_is_a_kl(structure, t_data):
    result = mixtures.fit(StudentTMixture(3, structure), t_data, "em", tol=1e-9, max_iter=300, seed=0)
    history = result.history
    assert (history["log_likelihood"].diff() >= -1e-9 * history["log_likelihood"].abs()[1:]).all()
    assert (history["kl"][1:] >= -1e-7).all()
    assert_close(history["log_likelihood"][-1], result.params.log_prob(t_data).sum(), rtol=1e-12)


def test_em_recovers_the_degrees_of_freedom():
    truth = StudentTParams([0.5, 0.5], [[0.0, 0.0], [8.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]] * 2, [3.0, 15.0])
    X, _ = truth.sample(20_000, seed=5)
    result = mixtures.fit(StudentTMixture(2, "full"), X, "em", tol=1e-10, max_iter=2000, seed=0)
    perm = result.params.locs[:, 0].argsort()
    dof = result.params.dof[perm]
    assert abs(float(dof[0]) - 3.0) < 0.3 and abs(float(dof[1]) - 15.0) < 6.0, dof


@pytest.mark.slow
@pytest.mark.parametrize("structure", ["full", "spherical"])
def test_em_reaches_the_optimum_map_reaches_from_the_same_start(structure):
    """EM (on the completed model) and MAP (Adam on the program's exact log-likelihood, ν a site)
    from the same start end at the same log-likelihood per point to 1e-6."""
    X, _ = t_params(structure, (3.0, 6.0, 10.0)).sample(400, seed=9)
    model = StudentTMixture(3, structure)
    start = mixtures.fit(model, X, "em", max_iter=5, seed=0).params
    em = mixtures.fit(model, X, "em", init=start, tol=1e-13, max_iter=20_000)
    fitted = mixtures.fit(model, X, "map", init=start, num_steps=6000, lr=0.02, lr_decay=0.02, tol=1e-12,
                          patience=200)
    n = X.shape[0]
    assert abs(em.log_likelihood - fitted.log_likelihood) / n < 1e-6
    assert_close(fitted.params.dof, em.params.dof, rtol=2e-2)
    # the EM optimum is a stationary point of the exact log-likelihood (autograd on log_prob)
    locs = em.params.locs.clone().requires_grad_(True)
    moving = StudentTParams.from_native(em.params.weights, locs, em.params.native, em.params.dof, structure,
                                        validate=False)
    moving.log_prob(X).sum().backward()
    assert float(locs.grad.abs().max()) < 1e-4


def test_the_fit_tends_to_the_gaussian_fit_as_dof_grows():
    X, _ = true_params("full").sample(600, seed=12)
    start = mixtures.fit(GaussianMixture(3, "full"), X, "em", max_iter=0, seed=0).params
    gaussian = mixtures.fit(GaussianMixture(3, "full"), X, "em", init=start, tol=1e-12, max_iter=2000)
    errors = []
    for dof in (1e2, 1e3, 1e4, 1e5):
        t_start = StudentTParams.from_native(start.weights, start.locs, start.native,
                                             torch.full((3,), dof, dtype=torch.float64), "full")
        fit = mixtures.fit(StudentTMixture(3, "full", dof=dof), X, "em", init=t_start, tol=1e-12, max_iter=2000)
        errors.append(max(float((fit.params.locs - gaussian.params.locs).abs().max()),
                          float((fit.params.scale_matrices - gaussian.params.covariances).abs().max()),
                          abs(fit.log_likelihood - gaussian.log_likelihood) / X.shape[0]))
    assert all(later < earlier / 5 for earlier, later in zip(errors, errors[1:])), errors  # ∝ 1/ν
    assert errors[-1] < 1e-4


def test_on_gaussian_data_the_gaussian_fit_is_nearly_a_t_optimum():
    """The t family nests the Gaussian (ν → ∞): started at the Gaussian fit with ν at its upper bound,
    free-ν EM stays there (ν large, the same means) and can only gain likelihood."""
    X, _ = true_params("full").sample(1500, seed=13)
    gaussian = mixtures.fit(GaussianMixture(3, "full"), X, "em", tol=1e-10, max_iter=500, seed=0).params
    start = StudentTParams.from_native(gaussian.weights, gaussian.locs, gaussian.native,
                                       torch.full((3,), 1000.0, dtype=torch.float64), "full")
    fit = mixtures.fit(StudentTMixture(3, "full"), X, "em", init=start, tol=1e-10, max_iter=100, warn=False)
    assert (fit.params.dof > 100).all(), fit.params.dof
    assert fit.log_likelihood >= float(gaussian.log_prob(X).sum()) - 1.0  # ν = 1000 is within a nat of ν = ∞
    assert float((fit.params.locs - gaussian.locs).abs().max()) < 0.02


def test_streamed_and_chunked_em_equal_the_in_memory_fit(t_data):
    model = StudentTMixture(3, "diag")
    start = mixtures.fit(model, t_data, "em", max_iter=0, seed=0).params
    in_memory = mixtures.fit(model, t_data, "em", init=start, tol=0.0, max_iter=15)
    chunked = mixtures.fit(model, t_data, "em", init=start, tol=0.0, max_iter=15, chunk_size=64)
    streamed = mixtures.fit(model, StreamingData(t_data.numpy(), chunk_size=101), "em", init=start, tol=0.0,
                            max_iter=15)
    for other in (chunked, streamed):
        for name, value in in_memory.params.tensors().items():
            assert_close(other.params.tensors()[name], value, rtol=1e-10, atol=1e-12)


def test_hard_and_stepwise_em_run_on_the_statistics(t_data):
    hard = mixtures.fit(StudentTMixture(3, "full"), t_data, "hard_em", seed=0, max_iter=200)
    assert hard.converged and hard.extras["labels"].shape == (t_data.shape[0],)
    stepwise = mixtures.fit(StudentTMixture(3, "full"), t_data, "stepwise_em", seed=0, num_epochs=20,
                            batch_size=100)
    em = mixtures.fit(StudentTMixture(3, "full"), t_data, "em", seed=0, tol=1e-8, max_iter=500)
    assert abs(stepwise.log_likelihood - em.log_likelihood) / t_data.shape[0] < 5e-3


def test_em_with_a_prior_says_what_to_use_instead(t_data):
    with pytest.raises(ValueError, match="method='map', 'svi' or 'nuts'"):
        mixtures.fit(StudentTMixture(3, "full", prior=StudentTPrior()), t_data, "em")


@pytest.mark.parametrize("dof", ["free", "shared", 4.0])
def test_save_and_load_rebuild_the_family(dof, t_data, tmp_path):
    result = mixtures.fit(StudentTMixture(3, "tied", dof=dof, dof_bounds=(0.5, 200.0)), t_data, "em", seed=0)
    loaded = mixtures.load(result.save(tmp_path / "t.pt"))
    assert type(loaded.model) is StudentTMixture and loaded.model.spec() == result.model.spec()
    assert loaded.model.dof_bounds == (0.5, 200.0)
    for name, value in result.params.tensors().items():
        assert torch.equal(loaded.params.tensors()[name], value)
    assert loaded.bic(t_data) == result.bic(t_data)


def test_nuts_samples_the_degrees_of_freedom_with_their_prior(t_data):
    model = StudentTMixture(3, "full", prior=StudentTPrior(dof_shape=2.0, dof_rate=0.1))
    result = mixtures.fit(model, t_data[:300], "nuts", seed=0, warmup=40, num_samples=20, max_tree_depth=5,
                          num_chains=1)
    draws = result.posterior.draws
    assert draws.dof.shape == (20, 3) and bool((draws.dof > 0).all())
    assert "dof" in result.posterior.diagnostics["r_hat"]
    assert np.isfinite(result.history["log_prior"].numpy()).all()
    # the log prior holds Gamma(2, rate 0.1) at ν: changing ν changes it by the Gamma's log densities
    params = result.posterior.draw(0)
    other = StudentTParams.from_native(params.weights, params.locs, params.native, params.dof * 1.7, "full")
    gamma = torch.distributions.Gamma(torch.tensor(2.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64))
    expected = float((gamma.log_prob(other.dof) - gamma.log_prob(params.dof)).sum())
    X = t_data[:300]
    assert_close(model.log_prior(other, X) - model.log_prior(params, X), expected, rtol=1e-10, atol=1e-10)
