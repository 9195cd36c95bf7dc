"""The matrix-product ``log_prob`` under ``torch.jit.trace`` equals the eager one at every call.

The regression this guards: the features were built into one buffer at offsets computed from
the data's shape, which the tracer recorded as tensors, so ``start += D - i`` became an
in-place add on a constant of the traced graph; every later call sliced other rows and read
uninitialized memory (NUTS with ``jit_compile=True``: 150 of 150 draws divergent, step size
2e-41). A traced function must give the eager values at its first *and later* calls, for
other inputs than the ones it was traced at, with the same gradients.
"""

import pytest
import torch

from mixtures.families.gaussian import distributions

from conftest import COVARIANCE_TYPES, true_params


def enumerated_log_prob(params, X):
    """The program's enumerated observation log density ``(K, N)`` summed: the traced quantity."""
    structure = params.cov_type
    index = torch.arange(params.n_components).reshape(-1, 1)

    def total(locs: torch.Tensor, native: torch.Tensor) -> torch.Tensor:
        return structure.component_distribution(locs, native, index).log_prob(X).sum()

    return total


@pytest.mark.parametrize("kind", ["pairs", "squares", "norm"])
def test_traced_features_equal_the_buffer_features(kind):
    X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    shift, F = distributions.build_features(X, kind)
    traced_shift, traced = torch.jit.trace(lambda x: distributions.build_features(x, kind), (X,))(X)
    torch.testing.assert_close(traced, F, rtol=0, atol=0)
    torch.testing.assert_close(traced_shift, shift, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_traced_log_prob_equals_eager_at_every_call(covariance_type):
    params = true_params(covariance_type)
    X, _ = params.sample(200, seed=1)
    total = enumerated_log_prob(params, X)
    start = (params.locs.clone().requires_grad_(), params.native.clone().requires_grad_())
    traced = torch.jit.trace(total, start, check_trace=False)
    generator = torch.Generator().manual_seed(2)
    for call in range(6):  # the profiling executor re-optimizes the graph over the first calls
        locs = (params.locs + 0.3 * torch.randn(params.locs.shape, dtype=torch.float64,
                                                generator=generator)).requires_grad_()
        native = (params.native * (1 + 0.1 * torch.rand(params.native.shape, dtype=torch.float64,
                                                        generator=generator))).requires_grad_()
        if covariance_type in ("full", "tied"):  # keep a Cholesky factor lower triangular
            native = native.detach().tril().requires_grad_()
        eager = total(locs, native)
        eager_grads = torch.autograd.grad(eager, (locs, native))
        value = traced(locs, native)
        grads = torch.autograd.grad(value, (locs, native))
        torch.testing.assert_close(value, eager, rtol=1e-13, atol=0, msg=f"call {call}")
        for got, expected in zip(grads, eager_grads):
            torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-11, msg=f"call {call}")
