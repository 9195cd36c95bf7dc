"""MixtureParams: validation, conversions, densities against torch/Pyro references, sampling."""

import math

import numpy as np
import pytest
import torch

from mixtures import MixtureParams, ParameterError, SingularCovarianceError

from conftest import COVARIANCE_TYPES, assert_close, true_params


def test_covariances_are_full_matrices_for_every_type(covariance_type):
    params = true_params(covariance_type)
    cov = params.covariances
    assert cov.shape == (3, 2, 2)
    assert_close(cov, cov.transpose(-1, -2))
    assert_close(params.scale_tril @ params.scale_tril.transpose(-1, -2), cov)
    # a round trip through full matrices gives the same native tensor
    again = MixtureParams(params.weights, params.locs, cov if covariance_type != "tied" else cov[0],
                          covariance_type)
    assert_close(again.native, params.native)


def test_component_log_prob_matches_torch_multivariate_normal(covariance_type):
    params = true_params(covariance_type)
    X = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    reference = torch.distributions.MultivariateNormal(params.locs, covariance_matrix=params.covariances)
    expected = reference.log_prob(X.unsqueeze(1))
    assert_close(params.component_log_prob(X), expected, rtol=1e-12, atol=1e-12)
    mixture = expected + params.weights.log()
    assert_close(params.log_prob(X), torch.logsumexp(mixture, -1), rtol=1e-12, atol=1e-12)
    assert_close(params.responsibilities(X), torch.softmax(mixture, -1), rtol=1e-12, atol=1e-14)


def test_one_dimensional_density_by_hand():
    params = MixtureParams([0.25, 0.75], [[0.0], [2.0]], [1.0, 4.0], "spherical")
    x = 1.0
    by_hand = math.log(0.25 * math.exp(-0.5) / math.sqrt(2 * math.pi)
                       + 0.75 * math.exp(-0.5 * 1 / 4) / math.sqrt(2 * math.pi * 4))
    assert_close(params.log_prob([x]), [by_hand], rtol=1e-14)


def test_immutable():
    params = true_params()
    with pytest.raises(AttributeError, match="immutable"):
        params.weights = torch.ones(3) / 3


def test_inputs_are_copied():
    weights = torch.tensor([0.5, 0.5], dtype=torch.float64)
    params = MixtureParams(weights, torch.zeros(2, 1, dtype=torch.float64), torch.ones(2, 1, 1, dtype=torch.float64))
    weights[0] = 0.9
    assert params.weights[0] == 0.5


@pytest.mark.parametrize("weights, message", [
    ([0.5, 0.6], "sum to 1"),
    ([1.2, -0.2], "non-negative"),
    ([0.5, 0.25, 0.25], r"shape \(K,\)"),
    ([float("nan"), 1.0], "finite"),
])
def test_weights_validation(weights, message):
    with pytest.raises(ParameterError, match=message):
        MixtureParams(weights, [[0.0], [1.0]], [[[1.0]], [[1.0]]])


def test_covariance_validation_names_the_component():
    cov = torch.stack([torch.eye(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])]).double()
    with pytest.raises(SingularCovarianceError, match="component 1"):
        MixtureParams([0.5, 0.5], torch.zeros(2, 2, dtype=torch.float64), cov)
    with pytest.raises(ParameterError, match="symmetric"):
        MixtureParams([0.5, 0.5], torch.zeros(2, 2), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]] * 2))
    with pytest.raises(ParameterError, match="shape"):
        MixtureParams([0.5, 0.5], torch.zeros(2, 2), torch.eye(3).expand(2, 3, 3))
    with pytest.raises(SingularCovarianceError, match="component 0"):
        MixtureParams([0.5, 0.5], torch.zeros(2, 2), [[0.0, 1.0], [1.0, 1.0]], "diag")
    with pytest.raises(ParameterError, match="diagonal"):
        MixtureParams([0.5, 0.5], torch.zeros(2, 2), torch.tensor([[[1.0, 0.5], [0.5, 1.0]]] * 2), "diag")
    with pytest.raises(ParameterError, match="same matrix"):
        MixtureParams([0.5, 0.5], torch.zeros(2, 2), torch.stack([torch.eye(2), 2 * torch.eye(2)]), "tied")
    with pytest.raises(ValueError, match="unknown covariance_type"):
        MixtureParams([1.0], [[0.0]], [[[1.0]]], "banana")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampling_recovers_parameters(covariance_type):
    params = true_params(covariance_type)
    X, labels = params.sample(200_000, seed=3)
    assert X.shape == (200_000, 2) and labels.shape == (200_000,)
    frequencies = torch.bincount(labels, minlength=3).double() / labels.numel()
    assert_close(frequencies, params.weights, atol=5e-3, rtol=0)
    for k in range(3):
        members = X[labels == k]
        assert_close(members.mean(0), params.locs[k], atol=2e-2, rtol=0)
        assert_close(torch.cov(members.T), params.covariances[k], atol=3e-2, rtol=0)


def test_sampling_is_reproducible_and_seeded():
    params = true_params()
    a, la = params.sample(100, seed=5)
    b, lb = params.sample(100, seed=5)
    c, _ = params.sample(100, seed=6)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)


def test_float32_parameters_keep_dtype():
    params = true_params(dtype=torch.float32)
    X, _ = params.sample(50, seed=0)
    assert X.dtype == torch.float32
    assert params.log_prob(X).dtype == torch.float32


# -- dtypes ---------------------------------------------------------------------------------------
F32, F64 = torch.float32, torch.float64


@pytest.mark.parametrize("dtypes, odd", [
    ((F32, F64, F64), "weights.double()"),
    ((F64, F64, F32), "covariances.double()"),
    ((F64, F32, F64), "weights.float() and covariances.float()"),
], ids=["weights", "covariances", "locs"])
def test_mixed_dtypes_are_refused(dtypes, odd):
    weights, locs, covariances = (torch.tensor([0.5, 0.5]).to(dtypes[0]), torch.zeros(2, 2, dtype=dtypes[1]),
                                  torch.eye(2).expand(2, 2, 2).to(dtypes[2]))
    names = " ".join(f"{name} {str(d).replace('torch.', '')}" for name, d in
                     zip(("weights,", "locs,", "covariances"), dtypes))
    with pytest.raises(ParameterError, match="mixed dtypes") as info:
        MixtureParams(weights, locs, covariances)
    message = str(info.value)
    assert names.replace(",", "") in message.replace(",", ""), message   # every tensor and its dtype
    assert odd in message                                                # the fix
    with pytest.raises(ParameterError, match="mixed dtypes.*native"):
        MixtureParams.from_native(weights, locs, covariances, "full")


def test_one_dtype_from_tensors_lists_and_arrays():
    # lists, numpy arrays and integer tensors have no float dtype of their own: no conflict
    params = MixtureParams([0.5, 0.5], torch.zeros(2, 2, dtype=F32), torch.eye(2, dtype=F32).expand(2, 2, 2))
    assert params.dtype == F32 and params.weights.dtype == F32
    params = MixtureParams(np.array([0.5, 0.5]), torch.zeros(2, 2, dtype=F32), np.eye(2)[None].repeat(2, 0))
    assert params.dtype == F32 and params.native.dtype == F32
    params = MixtureParams(torch.tensor([1]), torch.zeros(1, 2, dtype=F32), [[1.0, 1.0]], "diag")
    assert params.dtype == F32
    params = MixtureParams([0.5, 0.5], [[0.0], [1.0]], torch.ones(2, dtype=F32), "spherical")
    assert params.dtype == F64  # locs (a list) decide: float64, as before
    # a coherent tensor set of either dtype
    for dtype in (F32, F64):
        params = MixtureParams(torch.tensor([0.5, 0.5], dtype=dtype), torch.zeros(2, 2, dtype=dtype),
                               torch.ones(2, 2, dtype=dtype), "diag")
        assert params.dtype == dtype
        assert MixtureParams.from_native(params.weights, params.locs, params.native, "diag").dtype == dtype


def test_replace_and_unvalidated_construction():
    params = true_params("diag")  # float64
    with pytest.raises(ParameterError, match=r"mixed dtypes \(weights float32, locs float64"):
        params.replace(weights=params.weights.float())
    assert params.replace(weights=params.weights.flip(0)).dtype == F64
    # routines building parameters by construction (validate=False) are not checked, not even dtypes
    fast = MixtureParams.from_native(params.weights, params.locs, params.native, "diag", validate=False)
    assert fast.native is params.native


def test_to_casts_every_tensor():
    params = true_params("full").to(F32)
    assert {params.weights.dtype, params.locs.dtype, params.native.dtype} == {F32}
