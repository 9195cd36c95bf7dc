"""Enumerated MAP (``method="map"``): same optimum as EM, exact traces, no leaked state."""

import math

import pyro
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, ParameterError
from mixtures.core.queries import map_assignments, marginal_probabilities, sample_assignments
from mixtures.core.validation import spawn_seeds
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.inference.pyro import fused_elbo
from mixtures.init import initialize

from conftest import COVARIANCE_TYPES, assert_close, true_params

N_POINTS = 1500
COLUMNS = ("iteration", "log_likelihood", "elbo", "kl", "time", "loss", "grad_norm")


@pytest.fixture(scope="module")
def fits():
    """Per covariance type: data, the shared k-means++ start, EM and MAP from it."""
    out = {}
    for covariance_type in COVARIANCE_TYPES:
        X, _ = true_params(covariance_type).sample(N_POINTS, seed=11)
        model = GaussianMixture(3, covariance_type)
        start = initialize(model, X, "kmeans++", seed=1)
        em = mixtures.fit(model, X, "em", init=start, tol=1e-10, max_iter=1000)
        fitted = mixtures.fit(model, X, "map", init=start)
        out[covariance_type] = (model, X, start, em, fitted)
    return out


def without_time(history):
    return {name: column for name, column in history.to_dict().items() if name != "time"}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_reaches_em_optimum(fits, covariance_type):
    model, X, start, em, fitted = fits[covariance_type]
    assert fitted.method == "map" and fitted.converged and 0 < fitted.n_iter < 1000
    assert abs(fitted.objective - em.objective) / N_POINTS < 1e-4
    # objective = final exact log-likelihood (not the initial loss)
    assert_close(fitted.objective, fitted.params.log_prob(X).sum(), rtol=1e-12)
    assert fitted.objective > float(start.log_prob(X).sum())
    assert_close(fitted.log_likelihood, fitted.objective, rtol=1e-12)
    agree = (fitted.extras["labels"] == em.predict(X)).double().mean()
    assert agree >= 0.99
    assert fitted.extras["labels"].shape == (N_POINTS,) and fitted.extras["labels"].dtype == torch.long
    assert_close(marginal_probabilities(model, fitted.params, X), em.predict_proba(X), rtol=0, atol=1e-3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_history_columns(fits, covariance_type):
    model, X, start, em, fitted = fits[covariance_type]
    history = fitted.history
    assert set(COLUMNS) <= set(history.columns)
    iteration = history["iteration"]
    assert torch.equal(iteration, torch.arange(len(history), dtype=torch.float64))  # eval_every=1
    assert iteration[-1] == fitted.n_iter
    # row 0 is the initialization, with the exact log-likelihood (reused from the loss)
    assert_close(history["log_likelihood"][0], start.log_prob(X).sum(), rtol=1e-10)
    assert_close(history["elbo"], -history["loss"], rtol=0, atol=0)
    assert_close(history["kl"], history["log_likelihood"] - history["elbo"], rtol=0, atol=1e-12)
    assert (history["kl"] >= -1e-6).all() and (history["kl"].abs() <= 1e-8 * N_POINTS).all()
    assert (history["grad_norm"] > 0).all() and history["grad_norm"][-1] < history["grad_norm"][1]
    assert history["time"][0] == 0 and (history["time"].diff() >= 0).all()
    # the trace ends where the EM trace ends
    assert abs(history["log_likelihood"][-1] - em.history["log_likelihood"][-1]) / N_POINTS < 1e-4


def test_map_labels_samples_and_marginals_at_given_parameters():
    params = true_params("full")
    X, _ = params.sample(800, seed=4)
    model = GaussianMixture(3, "full")
    assert torch.equal(map_assignments(model, params, X), params.joint_log_prob(X).argmax(-1))
    resp = params.responsibilities(X)
    assert_close(marginal_probabilities(model, params, X), resp, rtol=0, atol=1e-12)
    # posterior draws: reproducible, RNG-neutral, and distributed as the responsibilities
    flat = params.replace(locs=params.locs / 4)  # overlapping components: uncertain labels
    resp = flat.responsibilities(X)
    state = torch.get_rng_state()
    first = sample_assignments(model, flat, X, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, sample_assignments(model, flat, X, seed=3))
    assert not torch.equal(first, sample_assignments(model, flat, X, seed=4))
    counts = torch.nn.functional.one_hot(first, 3).double().sum(0)
    spread = (resp * (1 - resp)).sum(0).sqrt()
    assert ((counts - resp.sum(0)).abs() <= 5 * spread).all()
    # the same draws from any FitResult at those parameters (EM's too)
    em = mixtures.fit(model, X, init=flat, max_iter=0)
    assert torch.equal(em.sample_assignments(X, seed=3), first)


@pytest.mark.parametrize("standardize, prior", [(True, None), (False, None), (False, GaussianPrior())])
def test_init_tensors_are_not_modified(fits, standardize, prior):
    # standardize=False hands the caller's tensors straight to the program (without a prior)
    # or to AutoDelta's init_to_value (with one): both must clone, or Adam writes into them
    base, X, start, em, _ = fits["full"]
    model = GaussianMixture(base.n_components, "full", prior=prior)
    init = start.to(torch.float64)
    before = [init.weights.clone(), init.locs.clone(), init.native.clone()]
    options = {} if prior is not None else {"standardize": standardize}
    fitted = mixtures.fit(model, X, "map", init=init, num_steps=30, patience=None, **options)
    for tensor, original in zip((init.weights, init.locs, init.native), before):
        assert torch.equal(tensor, original)
    assert fitted.params.locs.data_ptr() != init.locs.data_ptr()
    assert not torch.equal(fitted.params.locs, init.locs)


def test_no_state_leaks_between_fits(fits):
    model, X, start, _, _ = fits["full"]
    other_model, other_X, other_start, _, _ = fits["diag"]
    outer = torch.tensor([1.0, 2.0])
    pyro.get_param_store().clear()
    pyro.param("user_param", outer.clone())
    rng = torch.get_rng_state()
    first = mixtures.fit(model, X, "map", init=start, num_steps=60, patience=None)
    mixtures.fit(other_model, other_X, "map", init=other_start, num_steps=20, patience=None)
    second = mixtures.fit(model, X, "map", init=start, num_steps=60, patience=None)
    assert without_time(first.history) == without_time(second.history)
    for a, b in zip((first.params.weights, first.params.locs, first.params.native),
                    (second.params.weights, second.params.locs, second.params.native)):
        assert torch.equal(a, b)
    assert list(pyro.get_param_store().keys()) == ["user_param"]
    assert torch.equal(pyro.param("user_param").detach(), outer)
    assert torch.equal(torch.get_rng_state(), rng)
    pyro.get_param_store().clear()


def test_jit_follows_the_eager_trajectory(fits):
    model, X, start, _, _ = fits["full"]
    # the eager *program* (JIT traces the program; the fused path agrees with it to rounding,
    # which Adam's sign-like first steps amplify on gradient entries that are zero but for rounding)
    with fused_elbo.enabled(False):
        eager = mixtures.fit(model, X, "map", init=start, num_steps=40, patience=None)
    compiled = mixtures.fit(model, X, "map", init=start, num_steps=40, patience=None, jit=True)
    for name in ("loss", "log_likelihood", "grad_norm"):
        assert_close(compiled.history[name], eager.history[name], rtol=1e-9, atol=0)
    assert_close(compiled.params.covariances, eager.params.covariances, rtol=1e-9, atol=1e-12)
    assert_close(compiled.params.locs, eager.params.locs, rtol=1e-9, atol=1e-12)


def test_restarts_keep_the_best_final_objective():
    # K=4 on 3 clusters: random starts end in different local optima
    X, _ = true_params("spherical").sample(400, seed=2)
    model = GaussianMixture(4, "spherical")
    # seed 42: the restart with the best *initial* log-likelihood (the 2nd) ends ~3 nats below
    # the 3rd; choosing by the initial loss would return the wrong one
    result = mixtures.fit(model, X, "map", init="random_from_data", n_init=3, seed=42, num_steps=60,
                          patience=None)
    objectives = result.extras["restart_objectives"]
    starts = [float(initialize(model, X, "random_from_data", seed=s).log_prob(X).sum()) for s in spawn_seeds(42, 3)]
    best_start = max(range(3), key=starts.__getitem__)
    best_end = max(range(3), key=objectives.__getitem__)
    assert best_start != best_end and objectives[best_end] > objectives[best_start] + 1.0
    assert result.objective == max(objectives)
    assert_close(result.init.locs, initialize(model, X, "random_from_data", seed=spawn_seeds(42, 3)[best_end]).locs)
    assert_close(result.objective, result.params.log_prob(X).sum(), rtol=1e-12)
    assert result.objective != -result.history["loss"][0]


def test_eval_every_and_early_stopping(fits):
    model, X, start, _, _ = fits["tied"]
    sparse = mixtures.fit(model, X, "map", init=start, num_steps=23, patience=None, eval_every=5)
    assert sparse.history["iteration"].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0, 23.0]
    assert not sparse.converged and sparse.n_iter == 23
    full = mixtures.fit(model, X, "map", init=start, num_steps=23, patience=None)
    kept = [0, 5, 10, 15, 20, 23]
    for name in ("loss", "grad_norm"):
        assert_close(sparse.history[name], full.history[name][kept], rtol=0, atol=0)
    # the final row is computed by MixtureParams.log_prob, the others reuse -loss
    assert_close(sparse.history["log_likelihood"], full.history["log_likelihood"][kept], rtol=1e-12)
    # early stopping: the last patience + 1 losses lie within tol * N
    stopped = mixtures.fit(model, X, "map", init=start, tol=1e-4, patience=5)
    loss = stopped.history["loss"]
    assert stopped.converged and stopped.n_iter < 1000
    assert float(loss[-6:].max() - loss[-6:].min()) <= 1e-4 * N_POINTS
    assert float(loss[-7:-1].max() - loss[-7:-1].min()) > 1e-4 * N_POINTS
    untouched = mixtures.fit(model, X, "map", init=start, num_steps=0)
    assert len(untouched.history) == 1 and untouched.n_iter == 0
    assert torch.equal(untouched.params.locs, start.locs)


def test_one_dimensional_data():
    X = torch.cat([torch.randn(300, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 4,
                   torch.randn(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 3])
    model = GaussianMixture(2, "spherical")
    start = initialize(model, X.unsqueeze(-1), "kmeans++", seed=0)
    em = mixtures.fit(model, X, "em", init=start, tol=1e-10)
    fitted = mixtures.fit(model, X, "map", init=start)
    assert fitted.params.n_features == 1
    assert abs(fitted.objective - em.objective) / 500 < 1e-4


def test_option_errors(fits):
    model, X, start, _, _ = fits["full"]
    for options in ({"num_steps": -1}, {"lr": 0.0}, {"eval_every": 0}, {"patience": 0},
                    {"tol": -1.0}, {"lr_decay": 1.5}):
        with pytest.raises(ValueError, match=next(iter(options))):
            mixtures.fit(model, X, "map", init=start, **options)
    with pytest.raises(TypeError):
        mixtures.fit(model, X, "map", init=start, local_guide="mean_field")  # an SVI option
    with pytest.raises(ParameterError, match="D=2"):
        mixtures.fit(model, X[:, :1], "map", init=start)


def test_lr_decay_still_converges(fits):
    model, X, start, em, _ = fits["diag"]
    fitted = mixtures.fit(model, X, "map", init=start, lr_decay=0.1, num_steps=400)
    assert abs(fitted.objective - em.objective) / N_POINTS < 1e-4
    assert math.isfinite(fitted.history.last("grad_norm"))


@pytest.mark.parametrize("n_points", [1, 3])
def test_one_component_and_one_point_queries(n_points):
    # Pyro enumerates no site with a single value, and compute_marginals fails on a plate of
    # size 1 (pyro#3102): both are answered without Pyro's help, with the same numbers
    X, _ = true_params().sample(200, seed=1)
    for K in (1, 3):
        result = mixtures.fit(GaussianMixture(K), X, "map", num_steps=3)
        query = X[:n_points]
        assert_close(result.predict_proba(query), result.params.responsibilities(query), rtol=0, atol=1e-10)
        assert result.sample_assignments(query).shape == (n_points,)
        assert torch.equal(map_assignments(result.model, result.params, query), result.predict(query))
    assert torch.equal(result.extras["labels"], result.predict(X))
