"""Enumerated log-likelihoods whose backward pass is EM's statistics.

For a family whose log joint densities are linear in features of the point,
``log π_k + log p(x | θ_k) = (C F(x))_k`` with coefficients ``C`` ``(K, P)``
(:mod:`mixtures.kernels.fused_pass`), the log-likelihood with the assignments summed out is

    L(C) = Σ_n log Σ_k exp((C F)_kn),        ∂L/∂C_kp = Σ_n r_nk F_pn = (R Fᵀ)_kp,

the responsibility-weighted feature sums one fused pass computes anyway. So
:func:`log_likelihood` runs the chunked pass forward and returns those sums as the gradient:
a gradient step on ``L`` costs one EM pass, and autograd chains it through the small map from
the parameters to ``C`` (a family's business). Nothing of size ``N`` is kept for the backward
pass, only the ``(K, P)`` sums.

:func:`expected_log_joint` is the same for an explicit ``q(z_n) = probs_n`` (SVI's mean-field
local guide, expectation taken exactly):

    E(C, q) = Σ_n Σ_k q_nk ((C F)_kn - log q_nk),
    ∂E/∂C = Qᵀ Fᵀ summed by chunks,       ∂E/∂q_nk = (C F)_kn - log q_nk - 1,

whose backward pass needs the ``(N, K)`` log joint densities, kept from the forward pass
(the size of ``q`` itself).

Both take the data as they are given: ``X`` ``(N, D)`` in memory, in any dtype the pass takes
(float32 data give float32 results). The data never need a gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixtures.kernels import gemm
from mixtures.kernels.fused_pass import ExtraFeatures, fused_chunk_size, fused_pass


def log_likelihood(coefficients: Tensor, X: Tensor, shift: Tensor, write_extra: ExtraFeatures,
                   n_extra: int) -> Tensor:
    """``Σ_n log Σ_k exp((C F(x_n - shift))_k)`` ``()``, differentiable in ``coefficients`` ``(K, P)``.

    The forward pass is :func:`~mixtures.kernels.fused_pass.fused_pass` (chunked, on the pass
    workers); the backward pass returns its sums ``R Fᵀ`` times the incoming gradient.
    """
    return _LogLikelihood.apply(coefficients, X, shift, write_extra, n_extra)


class _LogLikelihood(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, coefficients: Tensor, X: Tensor, shift: Tensor, write_extra: ExtraFeatures,
                n_extra: int) -> Tensor:
        sums = fused_pass(X, coefficients.detach(), shift, write_extra, n_extra, entropy=False, worst_point=False)
        ctx.save_for_backward(sums.sums.to(coefficients.dtype))
        return sums.log_likelihood.to(coefficients.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (sums,) = ctx.saved_tensors
        return grad * sums, None, None, None, None


def expected_log_joint(coefficients: Tensor, probs: Tensor, X: Tensor, shift: Tensor,
                       write_extra: ExtraFeatures, n_extra: int) -> Tensor:
    """``Σ_n Σ_k q_nk ((C F(x_n - shift))_k - log q_nk)`` ``()`` with ``0 log 0 = 0``: the ELBO's local
    part under ``q(z_n) = probs_n`` ``(N, K)``, differentiable in ``coefficients`` and ``probs``."""
    return _ExpectedLogJoint.apply(coefficients, probs, X, shift, write_extra, n_extra)


class _ExpectedLogJoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, coefficients: Tensor, probs: Tensor, X: Tensor, shift: Tensor,
                write_extra: ExtraFeatures, n_extra: int) -> Tensor:
        K, P = coefficients.shape
        N, D = X.shape
        C = coefficients.detach()
        q = probs.detach()
        chunk = max(1, min(N, fused_chunk_size(K, D, n_extra, X.element_size())))
        features = X.new_empty(P, chunk)
        features[0] = 1.0
        joint = X.new_empty(N, K)  # (C F)ᵀ: the gradient of every q_nk, kept for the backward pass
        grad_C = X.new_zeros(K, P)
        value = X.new_zeros(())
        column_shift = shift.unsqueeze(-1)
        for start in range(0, N, chunk):
            rows = slice(start, min(start + chunk, N))
            n = rows.stop - rows.start
            F = features[:, :n]
            torch.sub(X[rows].T, column_shift, out=F[1:1 + D])
            write_extra(F[1:1 + D], F[1 + D:])()
            chunk_joint = gemm.matmul(F.T, C.T)  # (n, K)
            joint[rows] = chunk_joint
            q_rows = q[rows]
            grad_C += gemm.matmul(q_rows.T, F.T)
            value += (q_rows * chunk_joint).sum() - torch.special.xlogy(q_rows, q_rows).sum()
        ctx.save_for_backward(grad_C, joint, q)
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_C, joint, q = ctx.saved_tensors
        grad_q = None
        if ctx.needs_input_grad[1]:
            # ∂/∂q_nk of q (a - log q) = a - log q - 1; log 0 = -inf where q = 0 (Pyro's too)
            grad_q = (joint - q.log() - 1.0).mul_(grad)
        return grad * grad_C, grad_q, None, None, None, None
