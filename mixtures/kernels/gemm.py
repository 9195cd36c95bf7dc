"""The two skinny matrix products of the fused E step, on the fastest CPU kernel torch has.

``torch.mm`` on CPU calls MKL, whose single-precision GEMM takes its AVX2 path on
AMD processors; the oneDNN library bundled with torch dispatches on the
instruction set instead and runs AVX-512 there. On this project's benchmark
machine (AMD EPYC, torch 2.13) the E step's float32 products ``(K, P) @ (P, n)``
and ``(K, n) @ (n, P)`` at K = 8, P = 45 take 6-9 ms per 10⁶ points through
oneDNN against 12-18 ms through MKL, and a square 1024 product reaches 210 against
92 GFLOP/s.

oneDNN is reached through ``torch.ops.mkldnn._linear_pointwise`` (``x @ wᵀ``), the
op torch's own compiler emits for linear layers. It is private, so it is used only
when it exists, reproduces ``torch.mm`` on a test product, and cannot change the
arithmetic: float32, CPU, no autograd, and matmul precision ``"highest"`` (lower
precisions let oneDNN round to bfloat16 or TF32). Everything else, and float64
(which oneDNN does not take), goes to ``torch.mm``. Set the environment variable
``MIXTURES_GEMM=torch`` to always use ``torch.mm``.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor


def matmul(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b`` ``(m, n)`` for ``a`` ``(m, k)`` and ``b`` ``(k, n)`` (either may be a transposed view).

    ``out`` ``(m, n)`` is written when the kernel writes in place (``torch.mm``); oneDNN
    returns a new tensor, which is cheaper than copying it into ``out``. Use the result.
    """
    if _use_onednn(a, b):
        return torch.ops.mkldnn._linear_pointwise(a, b.T, None, "none", [], "")
    return torch.mm(a, b, out=out) if out is not None else torch.mm(a, b)


def backend(dtype: torch.dtype, device: torch.device | str = "cpu") -> str:
    """Which kernel :func:`matmul` uses for ``dtype`` on ``device``: ``"onednn"`` or ``"torch"``."""
    probe = torch.ones(1, 1, dtype=dtype, device=device)
    return "onednn" if _use_onednn(probe, probe) else "torch"


def _use_onednn(a: Tensor, b: Tensor) -> bool:
    # oneDNN has no primitive for empty operands (a stream may yield an empty chunk)
    return (a.dtype == torch.float32 and b.dtype == torch.float32 and a.numel() > 0 and b.numel() > 0
            and a.device.type == "cpu" and b.device.type == "cpu"
            and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
            and _full_precision() and _onednn_works())


def _full_precision() -> bool:
    """True when float32 products must be computed in float32 (torch's default)."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    setting = getattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision", "none")
    return setting in ("none", "ieee")


@functools.cache
def _onednn_works() -> bool:
    """The private op exists, is wanted, and agrees with ``torch.mm`` on a small product."""
    if os.environ.get("MIXTURES_GEMM", "").lower() == "torch":
        return False
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(8, 45, generator=generator)
    b = torch.randn(45, 300, generator=generator)
    try:
        product = op(a, b.T, None, "none", [], "")
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    reference = torch.mm(a.double(), b.double())
    return product.shape == (8, 300) and bool(torch.allclose(product.double(), reference,
                                                                rtol=1e-5, atol=1e-4))
