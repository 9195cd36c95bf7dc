"""The E step's matrix products: oneDNN where it cannot change the arithmetic, torch.mm elsewhere."""

import pytest
import torch

from mixtures.families.gaussian import statistics as suffstats
from mixtures.families.gaussian.params import MixtureParams
from mixtures.kernels import gemm
from tests.conftest import assert_close


@pytest.fixture
def fresh_probe():
    """Re-run the one-time oneDNN self-test around a test that changes its inputs."""
    gemm._onednn_works.cache_clear()
    yield
    gemm._onednn_works.cache_clear()


def _operands(dtype):
    generator = torch.Generator().manual_seed(0)
    C = torch.randn(8, 45, generator=generator, dtype=dtype)
    F = torch.randn(45, 1000, generator=generator, dtype=dtype)
    R = torch.rand(8, 1000, generator=generator, dtype=dtype)
    return C, F, R


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matmul_equals_float64_products_for_both_layouts_of_the_e_step(dtype):
    C, F, R = _operands(dtype)
    # (K, P) @ (P, n) and (K, n) @ (n, P) with the second operand a transposed view
    for a, b in ((C, F), (R, F.T)):
        expected = a.double() @ b.double()
        product = gemm.matmul(a, b)
        assert product.dtype == dtype and product.shape == expected.shape
        tol = 1e-12 if dtype == torch.float64 else 2e-5
        assert_close(product.double(), expected, rtol=tol, atol=tol * float(expected.abs().max()))


def test_empty_operands_give_empty_or_zero_products():
    # a stream may yield an empty chunk: (K, P) @ (P, 0) and (K, 0) @ (0, P)
    C, R = torch.randn(8, 45), torch.randn(8, 0)
    assert gemm.matmul(C, torch.randn(45, 0)).shape == (8, 0)
    assert_close(gemm.matmul(R, torch.randn(45, 0).T), torch.zeros(8, 45))


def test_matmul_writes_out_when_the_kernel_writes_in_place():
    C, F, _ = _operands(torch.float64)
    out = torch.empty(8, 1000, dtype=torch.float64)
    product = gemm.matmul(C, F, out=out)
    assert product.data_ptr() == out.data_ptr()
    assert_close(out, C @ F)


def test_backend_float64_is_torch_mm_and_float32_is_onednn_when_available():
    assert gemm.backend(torch.float64) == "torch"
    assert gemm.backend(torch.float32) == ("onednn" if gemm._onednn_works() else "torch")


def test_reduced_float32_matmul_precision_falls_back_to_torch_mm():
    # "high"/"medium" let oneDNN round float32 products to TF32/bfloat16: never behind the user's back
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert gemm.backend(torch.float32) == "torch"
    finally:
        torch.set_float32_matmul_precision(previous)


def test_environment_variable_forces_torch_mm(monkeypatch, fresh_probe):
    monkeypatch.setenv("MIXTURES_GEMM", "torch")
    gemm._onednn_works.cache_clear()
    assert gemm.backend(torch.float32) == "torch"


def test_missing_private_op_falls_back_to_torch_mm(monkeypatch, fresh_probe):
    class NoOps:
        pass

    monkeypatch.setattr(torch.ops, "mkldnn", NoOps(), raising=False)
    assert not gemm._onednn_works()


def test_products_that_need_gradients_go_through_torch_mm():
    C, F, _ = _operands(torch.float32)
    C.requires_grad_(True)
    product = gemm.matmul(C, F)
    assert product.grad_fn is not None
    product.sum().backward()
    assert_close(C.grad, F.double().sum(1).expand(8, -1), rtol=1e-5, atol=1e-4)


def test_e_step_float32_statistics_agree_across_backends(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    locs = 3.0 * torch.randn(4, 5, generator=generator, dtype=torch.float64)
    factors = torch.randn(4, 5, 5, generator=generator, dtype=torch.float64)
    covs = factors @ factors.transpose(-1, -2) / 5 + 0.5 * torch.eye(5, dtype=torch.float64)
    params64 = MixtureParams(torch.full((4,), 0.25, dtype=torch.float64), locs, covs)
    X64, _ = params64.sample(20000, seed=2)
    X, params = X64.float(), params64.to(torch.float32)
    shift = suffstats.default_shift(X)
    chosen = suffstats.e_step(X, params, shift)
    monkeypatch.setattr(gemm, "_use_onednn", lambda a, b: False)
    reference = suffstats.e_step(X, params, shift)
    exact = suffstats.e_step(X64, params64, shift.double())
    for ours in (chosen, reference):
        assert_close(ours.log_likelihood.double(), exact.log_likelihood, rtol=1e-5, atol=0)
        assert_close(ours.nk.double(), exact.nk, rtol=1e-4, atol=1e-2)
        assert_close(ours.sxx.double(), exact.sxx, rtol=1e-4, atol=1e-1)
