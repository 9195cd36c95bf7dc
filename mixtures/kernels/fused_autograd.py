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
                   n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
    """``Σ_n log Σ_k exp((C F(x_n - shift))_k)`` ``()``, differentiable in ``coefficients`` ``(K, P)``.

    The forward pass is :func:`~mixtures.kernels.fused_pass.fused_pass` (chunked, on the pass
    workers); the backward pass returns its sums ``R Fᵀ`` times the incoming gradient. With
    ``sample_weight`` ``(N,)`` every point's term (and so its share of the sums) counts ``w_n`` times.
    """
    return _LogLikelihood.apply(coefficients, X, shift, write_extra, n_extra, sample_weight)


class _LogLikelihood(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, coefficients: Tensor, X: Tensor, shift: Tensor, write_extra: ExtraFeatures,
                n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
        sums = fused_pass(X, coefficients.detach(), shift, write_extra, n_extra, entropy=False, worst_point=False,
                          sample_weight=sample_weight)
        ctx.save_for_backward(sums.sums.to(coefficients.dtype))
        return sums.log_likelihood.to(coefficients.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (sums,) = ctx.saved_tensors
        return grad * sums, None, None, None, None, None


def expected_log_joint(coefficients: Tensor, probs: Tensor, X: Tensor, shift: Tensor,
                       write_extra: ExtraFeatures, n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
    """``Σ_n Σ_k q_nk ((C F(x_n - shift))_k - log q_nk)`` ``()``: the ELBO's local part under
    ``q(z_n) = probs_n`` ``(N, K)``, differentiable in ``coefficients`` and ``probs``.

    ``q`` is ``probs`` clamped to ``[eps, 1 - eps]``, as a ``Categorical``'s log-probabilities
    clamp them (the clamp's gradient, 0 outside, included). With ``sample_weight`` ``(N,)``
    point ``n``'s term counts ``w_n`` times.
    """
    return _ExpectedLogJoint.apply(coefficients, probs, X, shift, write_extra, n_extra, sample_weight)


class _ExpectedLogJoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, coefficients: Tensor, probs: Tensor, X: Tensor, shift: Tensor,
                write_extra: ExtraFeatures, n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
        K, P = coefficients.shape
        N, D = X.shape
        eps = torch.finfo(probs.dtype).eps
        q = probs.detach().clamp(min=eps, max=1 - eps)
        # the weighted q, w_n q_nk, multiplies every point's integrand and gradient
        qw = q if sample_weight is None else q * sample_weight.unsqueeze(-1)
        # a = (C F)ᵀ - log q: the integrand, and (minus 1) the gradient of every q_nk
        a = q.log()
        chunk = max(1, min(N, fused_chunk_size(K, D, n_extra, X.element_size())))
        features = X.new_empty(P * chunk)
        features[:chunk] = 1.0
        grad_C = X.new_zeros(K, P)
        column_shift = shift.unsqueeze(-1)
        C = coefficients.detach()
        for start in range(0, N, chunk):
            rows = slice(start, min(start + chunk, N))
            n = rows.stop - rows.start
            F = features[:P * n].view(P, n)
            torch.sub(X[rows].T, column_shift, out=F[1:1 + D])
            write_extra(F[1:1 + D], F[1 + D:])()
            torch.sub(gemm.matmul(C, F).T, a[rows], out=a[rows])
            grad_C += gemm.matmul(qw[rows].T, F.T)
        if sample_weight is None:
            value = torch.dot(q.reshape(-1), a.reshape(-1))
        else:  # a zero-weight point adds exactly 0 (a dropped row)
            value = (qw * a).sum(-1).masked_fill_(sample_weight == 0, 0.0).sum()
        ctx.save_for_backward(grad_C, a, probs.detach(), sample_weight)
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_C, a, probs, sample_weight = ctx.saved_tensors
        grad_q = None
        if ctx.needs_input_grad[1]:
            # ∂/∂q_nk of q (a - log q) with a fixed: a - log q - 1 = (the stored a) - 1; 0 where clamped
            eps = torch.finfo(probs.dtype).eps
            grad_q = (a - 1.0).masked_fill_((probs < eps) | (probs > 1 - eps), 0.0)
            if sample_weight is not None:
                grad_q.mul_(sample_weight.unsqueeze(-1))
            if not bool(grad == 1):
                grad_q.mul_(grad)
        return grad * grad_C, grad_q, None, None, None, None, None


def labelled_statistics(X: Tensor, labels: Tensor, n_components: int, shift: Tensor, write_extra: ExtraFeatures,
                        n_extra: int) -> Tensor:
    """``S`` ``(K, P)`` with ``S_k = Σ_{n: y_n = k} F(x_n - shift)``: the features of points whose component
    ``y_n`` ``(n,)`` is known, summed per component. Their log joint ``Σ_n (C F(x_n))_{y_n}`` is then
    ``(C * S).sum()``, linear in the coefficients (SVI's mean-field guide with observed assignments)."""
    N, D = X.shape
    P = 1 + D + n_extra
    chunk = max(1, min(N, fused_chunk_size(n_components, D, n_extra, X.element_size())))
    features = X.new_empty(P * chunk)
    features[:chunk] = 1.0
    sums = X.new_zeros(n_components, P)
    column_shift = shift.unsqueeze(-1)
    for start in range(0, N, chunk):
        rows = slice(start, min(start + chunk, N))
        n = rows.stop - rows.start
        F = features[:P * n].view(P, n)
        torch.sub(X[rows].T, column_shift, out=F[1:1 + D])
        write_extra(F[1:1 + D], F[1 + D:])()
        sums.index_add_(0, labels[rows], F.T)
    return sums
