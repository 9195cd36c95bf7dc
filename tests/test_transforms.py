"""The positive-definite bijection used by Wishart sites."""

import math

import pytest
import torch
from torch.distributions import biject_to, constraints

import mixtures  # noqa: F401  (registers the transform)
from mixtures.transforms import CholeskyPositiveDefiniteTransform


@pytest.mark.parametrize("D", [1, 2, 3])
def test_round_trip_and_log_det_jacobian_against_autograd(D):
    transform = biject_to(constraints.positive_definite)
    assert isinstance(transform, CholeskyPositiveDefiniteTransform)
    x = torch.randn(D, D, dtype=torch.float64, generator=torch.Generator().manual_seed(D)).tril()
    y = transform(x)
    assert torch.linalg.eigvalsh(y).min() > 0
    torch.testing.assert_close(transform.inv(y), x, rtol=1e-10, atol=1e-12)
    rows, cols = torch.tril_indices(D, D)

    def free_map(v):  # free lower-triangular coordinates -> free coordinates of y
        m = torch.zeros(D, D, dtype=v.dtype).index_put((rows, cols), v)
        return transform(m)[rows, cols]

    jacobian = torch.autograd.functional.jacobian(free_map, x[rows, cols])
    expected = torch.linalg.slogdet(jacobian)[1]
    torch.testing.assert_close(transform.log_abs_det_jacobian(x, y), expected, rtol=1e-10, atol=1e-10)
    assert not math.isnan(float(expected))
