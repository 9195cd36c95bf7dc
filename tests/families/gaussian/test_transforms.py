"""The positive-definite bijection used by Wishart sites (AutoDelta, AutoNormal, NUTS)."""

import pytest
import torch
from torch.distributions import biject_to, constraints

import mixtures  # noqa: F401  (registers the transform)
from mixtures.families.gaussian.transforms import CholeskyPositiveDefiniteTransform


@pytest.mark.parametrize("D", [1, 2, 3])
def test_round_trip_shapes_and_log_det_jacobian_against_autograd(D):
    transform = biject_to(constraints.positive_definite)
    assert isinstance(transform, CholeskyPositiveDefiniteTransform)
    n = D * (D + 1) // 2
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(D))
    y = transform(x)
    assert y.shape == (D, D) == transform.forward_shape(x.shape)
    assert transform.inverse_shape(y.shape) == (n,)
    assert torch.linalg.eigvalsh(y).min() > 0
    torch.testing.assert_close(transform.inv(y), x, rtol=1e-10, atol=1e-12)
    rows, cols = torch.tril_indices(D, D)
    jacobian = torch.autograd.functional.jacobian(lambda v: transform(v)[rows, cols], x)
    torch.testing.assert_close(transform.log_abs_det_jacobian(x, y), torch.linalg.slogdet(jacobian)[1],
                               rtol=1e-10, atol=1e-10)


def test_batched_values():
    transform = CholeskyPositiveDefiniteTransform()
    x = torch.randn(4, 3, 6, dtype=torch.float64)
    y = transform(x)
    assert y.shape == (4, 3, 3, 3)
    torch.testing.assert_close(transform.inv(y), x, rtol=1e-10, atol=1e-12)
    assert transform.log_abs_det_jacobian(x, y).shape == (4, 3)


def test_a_vector_that_is_no_triangle_is_refused():
    with pytest.raises(ValueError, match="length 4"):
        CholeskyPositiveDefiniteTransform()(torch.zeros(4))
