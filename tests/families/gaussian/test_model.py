"""The Pyro program ``model.model`` computes the same likelihood as the closed-form densities.

At EM's converged parameters, ``TraceEnum_ELBO``'s loss with an empty guide (the
assignment enumerated in parallel, no latent globals) is exactly
``-Σ_n log p(x_n | θ)`` as ``MixtureParams.log_prob`` computes it; and the
program has the structure the Pyro routines rely on.
"""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.core.family import fresh_param_store
from mixtures.core.queries import empty_guide

from conftest import COVARIANCE_TYPES, assert_close, true_params


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Small tensors: one thread avoids oversubscribing a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def one_dimensional_params(covariance_type: str) -> MixtureParams:
    """A 1-D, K=3 mixture (every covariance type has a D = 1 form)."""
    native = {"full": torch.tensor([[[1.0]], [[0.5]], [[2.0]]]), "tied": torch.tensor([[0.8]]),
              "diag": torch.tensor([[1.0], [0.5], [2.0]]), "spherical": torch.tensor([1.0, 0.5, 2.0])}
    return MixtureParams(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
                         torch.tensor([[-4.0], [0.0], [5.0]], dtype=torch.float64),
                         native[covariance_type].double(), covariance_type)


def pyro_loss(model: GaussianMixture, params: MixtureParams, X: torch.Tensor) -> float:
    with fresh_param_store():
        return TraceEnum_ELBO(max_plate_nesting=1).loss(model.model, empty_guide, X, params)


@pytest.mark.parametrize("n_features", [1, 2])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_enumerated_loss_is_exact_negative_log_likelihood(covariance_type, n_features):
    truth = true_params(covariance_type) if n_features == 2 else one_dimensional_params(covariance_type)
    X, _ = truth.sample(700, seed=5)
    model = GaussianMixture(3, covariance_type)
    result = mixtures.fit(model, X, "em", tol=1e-10, max_iter=500)
    expected = -float(result.params.log_prob(X).sum())
    assert_close(pyro_loss(model, result.params, X), expected, rtol=1e-8, atol=0.0)
    # the same identity away from the optimum (the k-means++ start)
    start = mixtures.init.initialize(model, X, "kmeans++", seed=2)
    assert_close(pyro_loss(model, start, X), -float(start.log_prob(X).sum()), rtol=1e-8, atol=0.0)


def test_loss_scales_a_minibatch_by_n_over_b():
    params = true_params("full")
    X, _ = params.sample(400, seed=1)
    model = GaussianMixture(3, "full")
    with fresh_param_store():
        trace = poutine.trace(poutine.enum(model.model, first_available_dim=-2)).get_trace(
            X, params, subsample_size=50)
    rows = trace.nodes["data"]["value"]
    assert rows.shape == (50,) and rows.unique().numel() == 50
    assert trace.nodes["obs"]["scale"] == pytest.approx(400 / 50)
    torch.testing.assert_close(trace.nodes["obs"]["value"], X[rows], rtol=0, atol=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_program_structure(covariance_type):
    params = true_params(covariance_type)
    X, _ = params.sample(50, seed=0)
    model = GaussianMixture(3, covariance_type)
    with fresh_param_store():
        trace = poutine.trace(model.model).get_trace(X, params)
        store_names = set(pyro.get_param_store().keys())
    assert store_names == set(model.global_sites)
    for name in model.global_sites:
        assert trace.nodes[name]["type"] == "param"
    assignment, obs = trace.nodes["assignment"], trace.nodes["obs"]
    assert assignment["type"] == "sample" and not assignment["is_observed"]
    assert assignment["infer"].get("enumerate") == "parallel"
    assert isinstance(assignment["fn"], pyro.distributions.Categorical)
    assert obs["type"] == "sample" and obs["is_observed"]
    torch.testing.assert_close(obs["value"], X, rtol=0, atol=0)
    for site in (assignment, obs):
        frames = site["cond_indep_stack"]
        assert [frame.name for frame in frames] == ["data"]
        assert frames[0].size == 50 and frames[0].dim == -1
    assert obs["fn"].event_shape == (2,)


def test_program_does_not_write_into_given_parameters():
    params = true_params("full")
    X, _ = params.sample(50, seed=0)
    before = [params.weights.clone(), params.locs.clone(), params.native.clone()]
    model = GaussianMixture(3, "full")
    with fresh_param_store():
        model.model(X, params)
        store = pyro.get_param_store()
        for name, tensor in zip(model.global_sites, (params.weights, params.locs, params.native)):
            assert store[name].data_ptr() != tensor.data_ptr()
            store[name].unconstrained().data.add_(1.0)  # what an optimizer step does
    for tensor, original in zip((params.weights, params.locs, params.native), before):
        assert torch.equal(tensor, original)


def test_given_parameters_are_never_silently_ignored():
    # pyro.param keeps a stored value and ignores its initial value: a second run of the
    # program with other params in the same store must say so instead of using the old ones
    first, second = true_params("full"), true_params("full").replace(locs=true_params("full").locs + 1.0)
    X, _ = first.sample(50, seed=0)
    model = GaussianMixture(3, "full")
    with fresh_param_store():
        model.model(X, first)
        model.model(X, first)  # the same values: fine
        with pytest.raises(mixtures.ParameterError, match="already holds other values for 'locs'"):
            model.model(X, second)
    with fresh_param_store():
        trace = poutine.trace(model.model).get_trace(X, second)
    assert_close(trace.nodes["locs"]["value"], second.locs)
