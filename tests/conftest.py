"""Shared fixtures: one parametrised set of model configurations, reference data, helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixtures import MixtureParams
from mixtures.families.gaussian import get_structure

# One intra-op thread: the suite's tensors are small, and on a busy 2-core machine a second
# thread spins on tiny LAPACK calls (measured 20 ms instead of 4 us per 2x2 Cholesky).
torch.set_num_threads(1)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=""):
    """``torch.testing.assert_close`` on anything array-like, in float64."""
    actual = torch.as_tensor(np.array(actual) if isinstance(actual, np.ndarray) else actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=msg or None)


def true_params(covariance_type: str = "full", dtype=torch.float64) -> MixtureParams:
    """A well-separated 2-D, K=3 mixture of the given covariance type."""
    weights = torch.tensor([0.5, 0.3, 0.2])
    locs = torch.tensor([[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]])
    full = torch.tensor([[[1.0, 0.4], [0.4, 0.8]], [[0.6, -0.2], [-0.2, 1.2]], [[1.5, 0.0], [0.0, 0.5]]])
    native = {
        "full": full,
        "tied": full[0],
        "diag": torch.tensor([[1.0, 0.8], [0.6, 1.2], [1.5, 0.5]]),
        "spherical": torch.tensor([1.0, 0.6, 1.5]),
    }.get(covariance_type)
    if native is None:  # another structure: the M step of its own kind from the full covariances' scatters
        structure = get_structure(covariance_type)
        nk = (100.0 * weights).double()
        second = nk[:, None, None] * full.double()
        if structure.statistic == "diagonal":
            second = second.diagonal(dim1=-2, dim2=-1)
        if structure.shared:
            second = second.sum(0)
        native = structure.estimate(nk, torch.zeros(3, 2, dtype=torch.float64), second, 0.0)
        return MixtureParams.from_native(weights.double(), locs.double(), native, structure).to(dtype)
    return MixtureParams(weights, locs, native, covariance_type).to(dtype)


@pytest.fixture(params=COVARIANCE_TYPES)
def covariance_type(request) -> str:
    return request.param


@pytest.fixture
def separated_data(covariance_type):
    params = true_params(covariance_type)
    X, labels = params.sample(1500, seed=11)
    return params, X, labels
