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


@pytest.mark.parametrize("D", [2, 3])
def test_a_large_off_diagonal_entry_has_a_finite_gradient(D):
    # exp of every entry, then torch.where keeping exp only on the diagonal, overflowed on large
    # off-diagonal entries and gave the gradient 0 · inf = NaN there (NUTS with K = 500 found no
    # valid start); exp now sees the diagonal entries only
    transform = CholeskyPositiveDefiniteTransform()
    rows, cols = torch.tril_indices(D, D)
    x = torch.where(rows == cols, 0.0, 800.0).double().requires_grad_()
    y = transform(x)
    assert torch.isfinite(y).all()
    (gradient,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(gradient).all()
    # the off-diagonal entry L_10 = 800 enters y_11 = L_10² + L_11² and y_01 = y_10 = L_10 L_00
    assert float(gradient[(rows == 1) & (cols == 0)][0]) == 2 * 800.0 + 2 * 1.0 + (2 * 800.0 if D == 3 else 0.0)

