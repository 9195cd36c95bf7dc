"""Devices and dtypes: ``fit(..., device=..., dtype=...)`` and data already on a device.

* ``device="cpu"`` (or ``torch.device("cpu")``) is the default made explicit: same bits.
* Data already on a device stays there: the result's parameters, predictions and
  scores live on the data's device (CPU always; CUDA/MPS when available).
* ``device="cuda"`` fits on the GPU and agrees with the CPU fit to 1e-6 (float64).
* An unknown or unavailable device is a ``ValueError`` naming it.
* float32 and float64 are both supported by every routine and kept; anything
  else that is not floating (integers, booleans, lists) becomes float64;
  ``dtype=`` overrides, and half precision is refused there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mixtures import GaussianMixture, fit
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.inference import ROUTINES

from conftest import COVARIANCE_TYPES, true_params

METHODS = [m for m in ("em", "hard_em", "kmeans", "kmedians", "map", "svi", "stepwise_em", "vb", "nuts")
           if m in ROUTINES]
OPTIONS = {"map": {"num_steps": 6}, "svi": {"num_steps": 6, "local_guide": "mean_field"},
           "stepwise_em": {"num_epochs": 1, "batch_size": 100}, "vb": {"max_iter": 5},
           "nuts": {"warmup": 3, "num_samples": 4, "max_tree_depth": 3}}
#: Bayesian routines run on a model with the default conjugate prior
NEEDS_PRIOR = ("vb", "nuts")
CUDA = torch.cuda.is_available()
AVAILABLE_DEVICES = ["cpu"] + (["cuda"] if CUDA else [])


def run(X, method="em", covariance_type="full", n_components=3, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence notices
        prior = GaussianPrior() if method in NEEDS_PRIOR else None
        return fit(GaussianMixture(n_components, covariance_type, prior=prior), X, method,
                   **{**OPTIONS.get(method, {}), **kwargs})


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    """Three well-separated 2-D clusters, 600 points, float64 on CPU."""
    return true_params("full").sample(600, seed=4)[0]


def result_tensors(result) -> dict[str, torch.Tensor]:
    params = result.params
    return {"weights": params.weights, "locs": params.locs, "native": params.native,
            "covariances": params.covariances}


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")], ids=["str", "torch.device"])
@pytest.mark.parametrize("method", METHODS)
def test_explicit_cpu_equals_default(data, device, method):
    explicit = run(data, method, device=device)
    default = run(data, method)
    for name, value in result_tensors(explicit).items():
        assert value.device.type == "cpu", name
        assert torch.equal(value, result_tensors(default)[name]), name


@pytest.mark.parametrize("device", AVAILABLE_DEVICES)
@pytest.mark.parametrize("method", METHODS)
def test_data_on_a_device_stays_there(data, device, method):
    X = data.to(device)
    result = run(X, method)
    for name, value in result_tensors(result).items():
        assert value.device == X.device, f"{name} is on {value.device}, data on {X.device}"
    assert result.predict(X).device == X.device
    assert result.score_samples(X).device == X.device
    assert result.init.locs.device == X.device


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("method", METHODS)
def test_cuda_fit_matches_cpu(data, covariance_type, method):
    on_cpu = run(data, method, covariance_type)
    on_gpu = run(data, method, covariance_type, device="cuda")
    assert on_gpu.params.device.type == "cuda"
    for name, value in result_tensors(on_gpu).items():
        torch.testing.assert_close(value.cpu(), result_tensors(on_cpu)[name], rtol=1e-6, atol=1e-6, msg=name)
    assert abs(on_gpu.log_likelihood - on_cpu.log_likelihood) <= 1e-6 * abs(on_cpu.log_likelihood)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_init_params_follow_the_data(data):
    start = run(data, "kmeans").params                  # on CPU
    result = run(data.cuda(), "em", init=start)
    assert result.params.device.type == "cuda"
    back = run(data.cuda(), "em", init=start.to(device="cuda"), device="cpu")
    assert back.params.device.type == "cpu"


@pytest.mark.skipif(CUDA, reason="CUDA is available here")
def test_unavailable_device_is_a_clear_error(data):
    with pytest.raises(ValueError, match=r"cannot move X to device 'cuda'"):
        fit(GaussianMixture(2), data, device="cuda")


def test_unknown_device_name(data):
    with pytest.raises(ValueError, match=r"device 'gpu0'.*Check the device name"):
        fit(GaussianMixture(2), data, device="gpu0")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("method", METHODS)
def test_float32_and_float64_supported(data, dtype, covariance_type, method):
    X = data.to(dtype)
    result = run(X, method, covariance_type)
    reference = run(data, method, covariance_type)
    for name, value in result_tensors(result).items():
        assert value.dtype == dtype, name
        assert torch.isfinite(value).all(), name
        if method in ("map", "svi", "nuts") and dtype == torch.float32:
            # Adam's first steps are ±lr wherever a gradient is ~0, whose sign rounding decides:
            # a few steps from the same start differ by ~1e-2 between dtypes (not a precision loss);
            # a few NUTS draws are a different chain once rounding changes one accept decision
            continue
        # well-separated clusters: float32 lands on the float64 optimum up to its rounding
        tolerance = 1e-12 if dtype == torch.float64 else 2e-4
        torch.testing.assert_close(value.double(), result_tensors(reference)[name], rtol=tolerance,
                                   atol=tolerance, msg=name)
    assert result.predict(X).dtype == torch.long
    assert result.score_samples(X).dtype == dtype


@pytest.mark.parametrize("convert", [
    lambda X: X.round().long(), lambda X: X.round().int(), lambda X: X > 0,
    lambda X: X.round().long().numpy(), lambda X: (X > 0).numpy(), lambda X: X.tolist(),
    lambda X: X.numpy().astype(np.float64)],
    ids=["int64", "int32", "bool", "numpy-int64", "numpy-bool", "list", "numpy-float64"])
def test_float64_is_the_default_for_non_float_input(data, convert):
    result = run(convert(data), "kmeans")
    assert result.params.dtype == torch.float64


def test_numpy_float32_is_kept(data):
    assert run(data.numpy().astype(np.float32), "kmeans").params.dtype == torch.float32


@pytest.mark.parametrize("dtype, expected", [
    (torch.float32, torch.float32), ("float32", torch.float32), (np.float32, torch.float32),
    (torch.float64, torch.float64), ("float64", torch.float64), (np.dtype("float64"), torch.float64)])
@pytest.mark.parametrize("source", ["float32", "float64", "int64"])
def test_dtype_argument_casts_the_data(data, dtype, expected, source):
    X = {"float32": data.float(), "float64": data, "int64": data.round().long()}[source]
    result = run(X, "kmeans", dtype=dtype)
    assert result.params.dtype == expected
    assert result.score_samples(data).dtype == expected  # scoring casts to the fit's dtype


def test_dtype_argument_matches_a_manual_cast(data):
    cast = run(data, "em", dtype=torch.float32)
    manual = run(data.float(), "em")
    assert torch.equal(cast.params.locs, manual.params.locs)
    assert torch.equal(cast.params.native, manual.params.native)
