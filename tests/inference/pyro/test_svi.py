"""SVI (``method="svi"``): guides, mean-field local guide, minibatches, traces on one scale."""

import pytest
import torch

import mixtures
from mixtures import GaussianMixture
from mixtures.inference.pyro import fused_elbo
from mixtures.init import initialize

from conftest import assert_close, true_params

N_POINTS = 600


@pytest.fixture(scope="module")
def setup():
    X, _ = true_params("full").sample(N_POINTS, seed=11)
    model = GaussianMixture(3, "full")
    start = initialize(model, X, "kmeans++", seed=1)
    em = mixtures.fit(model, X, "em", init=start, tol=1e-10, max_iter=1000)
    return model, X, start, em


def without_time(history):
    return {name: column for name, column in history.to_dict().items() if name != "time"}


def test_enumeration_with_delta_guide_is_map(setup):
    model, X, start, _ = setup
    options = dict(num_steps=80, lr=0.03, eval_every=3, seed=5)
    svi = mixtures.fit(model, X, "svi", init=start, **options)
    map_ = mixtures.fit(model, X, "map", init=start, **options)
    assert svi.method == "svi" and map_.method == "map"
    assert without_time(svi.history) == without_time(map_.history)
    assert torch.equal(svi.params.native, map_.params.native)
    assert torch.equal(svi.params.locs, map_.params.locs)
    assert torch.equal(svi.extras["labels"], map_.extras["labels"])
    assert (svi.n_iter, svi.converged, svi.objective) == (map_.n_iter, map_.converged, map_.objective)
    # num_particles averages identical exact particles, and a do-nothing callable guide is "delta"
    two = mixtures.fit(model, X, "svi", init=start, num_particles=2, **options)
    assert_close(two.history["loss"], svi.history["loss"], rtol=1e-13, atol=0)
    # a callable guide runs the program itself (TraceEnum_ELBO), so compare with the program's "delta"
    custom = mixtures.fit(model, X, "svi", init=start, guide=lambda data: None, **options)
    with fused_elbo.enabled(False):
        program = mixtures.fit(model, X, "svi", init=start, **options)
    assert_close(custom.history["log_likelihood"], program.history["log_likelihood"], rtol=1e-12, atol=0)
    assert_close(custom.params.covariances, program.params.covariances, rtol=1e-12, atol=0)


def test_mean_field_local_guide_reaches_the_same_optimum(setup):
    """Documented tolerance: from EM's start, the per-point log-likelihood within 1e-4 of EM's."""
    model, X, start, em = setup
    fitted = mixtures.fit(model, X, "svi", init=start, local_guide="mean_field", num_steps=500)
    assert fitted.converged
    assert abs(fitted.objective - em.objective) / N_POINTS < 1e-4
    probs = fitted.extras["assignment_probs"]
    assert probs.shape == (N_POINTS, 3)
    assert_close(probs, em.predict_proba(X), rtol=0, atol=1e-3)
    history = fitted.history
    # row 0: q = the start's responsibilities (floored at 1e-12), so the ELBO is the log-likelihood
    assert_close(history["elbo"][0], start.log_prob(X).sum(), rtol=1e-9, atol=0)
    # exact ELBO (enumerated over q): never above the log-likelihood; the gap closes at the end
    assert (history["kl"] >= -1e-9 * N_POINTS).all()
    assert history["kl"].max() > 1e-3 and history["kl"][-1] < 1e-4


def test_mean_field_guide_is_initialized_from_init_responsibilities(setup):
    model, X, start, _ = setup
    fitted = mixtures.fit(model, X, "svi", init=start, local_guide="mean_field", num_steps=0)
    assert_close(fitted.extras["assignment_probs"], start.responsibilities(X), rtol=0, atol=1e-11)


def test_elbo_never_exceeds_log_likelihood_beyond_noise(setup):
    model, X, start, em = setup
    # exact ELBO: enumeration + delta guide
    exact = mixtures.fit(model, X, "svi", init=start, num_steps=50, patience=None)
    assert (exact.history["kl"] >= -1e-9 * abs(exact.objective)).all()
    # noisy ELBOs, repeatedly estimated at (numerically) one point: lr=1e-12 keeps θ and q fixed,
    # so the kl column is i.i.d. noise around KL(q || posterior) = 0 (q = responsibilities there).
    # Its mean must not be significantly negative, nor significantly positive.
    for options in ({"subsample_size": 64},
                    {"subsample_size": 64, "local_guide": "mean_field"},
                    {"local_guide": "mean_field", "local_estimator": "sample"}):
        noisy = mixtures.fit(model, X, "svi", init=em.params, num_steps=150, lr=1e-12, seed=3, **options)
        assert_close(noisy.params.locs, em.params.locs, rtol=0, atol=1e-9)
        kl = noisy.history["kl"]
        standard_error = float(kl.std()) / len(kl) ** 0.5
        assert abs(float(kl.mean())) <= 4 * standard_error + 1e-6 * N_POINTS, options
        if "subsample_size" in options:
            assert kl.std() > 0  # the estimates really vary between minibatches


def test_minibatch_svi_improves_log_likelihood(setup):
    model, X, _, em = setup
    poor = initialize(model, X, "random_from_data", seed=3)
    for local_guide in ("enumerate", "mean_field"):
        fitted = mixtures.fit(model, X, "svi", init=poor, subsample_size=64, num_steps=150,
                              local_guide=local_guide, seed=0)
        log_likelihood = fitted.history["log_likelihood"]
        assert not fitted.converged and fitted.n_iter == 150  # noisy loss: no early stopping
        assert len(log_likelihood) == 151
        assert fitted.objective > log_likelihood[0] + 0.5 * N_POINTS, local_guide
        assert fitted.objective < em.objective + 1e-6
    # same seed, same minibatches; another seed, other minibatches
    again = mixtures.fit(model, X, "svi", init=poor, subsample_size=64, num_steps=150,
                         local_guide="mean_field", seed=0)
    assert without_time(again.history) == without_time(fitted.history)
    other = mixtures.fit(model, X, "svi", init=poor, subsample_size=64, num_steps=20, seed=1)
    assert not torch.equal(other.history["loss"], fitted.history["loss"][:21])


def test_minibatch_with_jit_draws_fresh_minibatches(setup):
    """Compiled minibatch losses: fresh random rows every step (not indices frozen at tracing).

    Compilation consumes random draws, so the minibatches differ from eager ones for the
    same seed; the estimates are still unbiased around KL = 0 at EM's optimum.
    """
    model, X, _, em = setup
    fitted = mixtures.fit(model, X, "svi", init=em.params, subsample_size=64, num_steps=100,
                          lr=1e-12, jit=True)
    kl = fitted.history["kl"]
    assert len(kl.unique()) > 90
    assert abs(float(kl.mean())) <= 4 * float(kl.std()) / len(kl) ** 0.5
    assert_close(fitted.params.locs, em.params.locs, rtol=0, atol=1e-9)


def test_guide_errors(setup):
    model, X, start, _ = setup
    with pytest.raises(ValueError, match="prior") as error:
        mixtures.fit(model, X, "svi", init=start, guide="normal")
    assert "guide='delta'" in str(error.value)
    with pytest.raises(ValueError, match="unknown guide"):
        mixtures.fit(model, X, "svi", init=start, guide="laplace")
    with pytest.raises(ValueError, match="local_guide"):
        mixtures.fit(model, X, "svi", init=start, local_guide="structured")
    with pytest.raises(ValueError, match="local_estimator"):
        mixtures.fit(model, X, "svi", init=start, local_guide="mean_field", local_estimator="exact")
    with pytest.raises(ValueError, match="subsample_size"):
        mixtures.fit(model, X, "svi", init=start, subsample_size=N_POINTS + 1)
    with pytest.raises(ValueError, match="num_particles"):
        mixtures.fit(model, X, "svi", init=start, num_particles=0)
