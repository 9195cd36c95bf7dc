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

:func:`mean_field_term` is the same for an explicit ``q(z_n) = softmax(u_n)`` (SVI's mean-field
local guide, expectation taken exactly, ``u`` ``(N, K)`` the tensor behind the guide's simplex
parameter):

    E(C, u) = Σ_n Σ_k q_nk ((C F)_kn - log q_nk),
    ∂E/∂C = Qᵀ Fᵀ summed by chunks,       ∂E/∂u_n = q_n ⊙ (g_n - Σ_k q_nk g_nk),  g_nk = (C F)_kn - log q_nk - 1,

the last formed in the forward pass, chunk by chunk (the one ``(N, K)`` tensor it makes).

Both take the data as they are given: ``X`` ``(N, D)`` in memory, in any dtype the pass takes
(float32 data give float32 results). The data never need a gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy
import torch
from torch import Tensor

from mixtures.kernels import gemm
from mixtures.kernels.fused_pass import (
    LOG2_E,
    UNDERFLOW,
    ExtraFeatures,
    exp2_floor,
    fused_chunk_size,
    fused_pass,
    weighted_sum,
)


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


def mean_field_term(coefficients: Tensor, logits: Tensor, X: Tensor, shift: Tensor, write_extra: ExtraFeatures,
                    n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
    """``Σ_n w_n Σ_k q_nk ((C F(x_n - shift))_k - log q_nk)`` ``()`` with ``q = softmax(logits)``: the
    ELBO's local part under the mean-field guide, differentiable in ``coefficients`` ``(K, P)`` and
    ``logits`` ``(N, K)`` (``w_n`` = ``sample_weight`` ``(N,)``, 1 without; a zero weight drops the row).

    ``q`` is clamped to ``[eps, 1 - eps]`` as a ``Categorical``'s log-probabilities clamp it (the
    clamp's gradient, 0 outside, included).

    ``softmax`` is how Pyro's parameter store maps a simplex-constrained parameter's unconstrained
    value to it (``transform_to(simplex)``), so this is the mean-field guide's local term as a
    function of the tensor Adam moves, with the softmax's own passes over ``(N, K)`` folded in.
    Everything runs chunk by chunk on ``(K, chunk)`` buffers (points contiguous, as in the fused
    pass), and the gradient of ``logits`` is formed in the forward pass by the chain rule through
    the softmax, ``∂E/∂u = q ⊙ (g - Σ_k q_k g_k)`` with ``g = ∂E/∂q`` (0 where the clamp is
    active). Where no ``q`` of a chunk is clamped, ``g = a - 1`` and the ``-1`` cancels
    (``Σ_k q_k = 1``), so ``∂E/∂u = q ⊙ (a - Σ_k q_k a_k)``; ``log q = u - max u - log Σ`` takes
    one ``log`` per point, not per entry.
    """
    return _MeanFieldTerm.apply(coefficients, logits, X, shift, write_extra, n_extra, sample_weight)


class _MeanFieldTerm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, coefficients: Tensor, logits: Tensor, X: Tensor, shift: Tensor,
                write_extra: ExtraFeatures, n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
        K, P = coefficients.shape
        N, D = X.shape
        chunk = max(1, min(N, fused_chunk_size(K, D, n_extra, X.element_size())))
        storage = _Storage(X, chunk, K, P)
        C, u = coefficients.detach(), logits.detach()
        grad_u = torch.empty_like(u)
        grad_C = X.new_zeros(K, P)
        value = X.new_zeros(())
        column_shift = shift.unsqueeze(-1)
        for start in range(0, N, chunk):
            rows = slice(start, min(start + chunk, N))
            F, q, a, scratch, top, total = storage.views(rows.stop - rows.start)
            torch.sub(X[rows].T, column_shift, out=F[1:1 + D])
            write_extra(F[1:1 + D], F[1 + D:])()
            weights = None if sample_weight is None else sample_weight[rows].reshape(1, -1)
            _transpose(u[rows], out=scratch)
            _softmax_and_log(scratch, q, a, top, total)  # q, and a = log q
            clamped = _clamp(q, a)
            a.addmm_(C, F, beta=-1.0)  # a = C F - log q
            point_values = torch.sum(torch.mul(q, a, out=scratch), 0, keepdim=True, out=top)  # Σ_k q a (1, n)
            grad_C += gemm.matmul(q if weights is None else q * weights, F.T)
            value += weighted_sum(point_values, weights)
            if clamped is None:  # the chain rule through the softmax, in place of a
                a.sub_(point_values)
            else:
                q, mask = clamped
                a.sub_(1.0).masked_fill_(mask, 0.0)
                a.sub_(torch.sum(torch.mul(q, a, out=scratch), 0, keepdim=True, out=top))
            a.mul_(q)
            if weights is not None:
                a.mul_(weights)
            _transpose(a, out=grad_u[rows])
        ctx.grad_C = grad_C
        # handed over (not saved): one backward pass, which scales it in place and gives it away,
        # so autograd takes it as the parameter's gradient without another (N, K) copy
        ctx.grad_u = grad_u
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_u, ctx.grad_u = ctx.grad_u, None
        if grad_u is None:
            raise RuntimeError("mean_field_term's graph was already back-propagated (it does not retain its graph).")
        if not bool(grad == 1):
            grad_u.mul_(grad)
        return grad * ctx.grad_C, grad_u, None, None, None, None, None


class _Storage:
    """Flat buffers of one pass: features ``(P, n)`` (row 0 the constant), three ``(K, n)`` and
    two ``(1, n)``; views for a chunk of ``n`` points."""

    def __init__(self, like: Tensor, chunk: int, K: int, P: int):
        self.K, self.P = K, P
        self.features = like.new_empty(P * chunk)
        self.features[:chunk] = 1.0
        self.blocks = like.new_empty(3, K * chunk)
        self.rows = like.new_empty(2, chunk)

    def views(self, n: int) -> tuple[Tensor, ...]:
        K, P = self.K, self.P
        return (self.features[:P * n].view(P, n), *(block[:K * n].view(K, n) for block in self.blocks),
                *(row[:n].view(1, n) for row in self.rows))


def _transpose(value: Tensor, out: Tensor) -> None:
    """``out`` ← ``value.T`` (contiguous ``(n, K)`` ↔ ``(K, n)``). On the CPU through numpy, whose
    strided copy of these shapes is 2-3x torch's (``copy_`` of a transposed view)."""
    if value.device.type == "cpu" and value.dtype in (torch.float32, torch.float64):
        numpy.copyto(out.numpy(), value.numpy().T)
    else:
        out.copy_(value.T)


def _softmax_and_log(logits: Tensor, q: Tensor, log_q: Tensor, top: Tensor, total: Tensor) -> None:
    """``q`` ← the softmax of ``logits`` ``(K, n)`` over components, as torch's ``SoftmaxTransform``
    (``exp(u - max u) / Σ``, here as ``exp2((u - max u) log₂ e)``, within 1e-13 relative: exp2 is
    2-3x faster than exp, see :mod:`mixtures.kernels.fused_pass`); ``log_q`` ← ``u - max u - log Σ``.
    Arguments below the fused pass's floor go to exactly 0 (as there: a subnormal result is 4-13x
    slower; such a ``q`` is clamped to ``eps`` anyway)."""
    torch.amax(logits, 0, keepdim=True, out=top)
    torch.sub(logits, top, out=log_q)
    torch.mul(log_q, LOG2_E, out=q)
    torch.nn.functional.threshold(q, exp2_floor(q.dtype, q.shape[0]), UNDERFLOW, inplace=True)
    torch.exp2(q, out=q)
    torch.sum(q, 0, keepdim=True, out=total)
    q.div_(total)
    log_q.sub_(total.log_())


def _clamp(q: Tensor, log_q: Tensor) -> tuple[Tensor, Tensor] | None:
    """Clamp ``q`` to ``[eps, 1 - eps]`` in place (and ``log_q`` with it), as a ``Categorical``'s
    log-probabilities clamp it. ``None`` when nothing was clamped; else the unclamped ``q`` (a
    new tensor) and the mask of clamped entries (their gradient is 0)."""
    eps = torch.finfo(q.dtype).eps
    lowest, highest = torch.aminmax(q)
    if float(lowest) >= eps and float(highest) <= 1 - eps:
        return None
    probs = q.clone()
    mask = torch.lt(probs, eps)
    if float(highest) > 1 - eps:  # (rare: only a point's dominant component can be that close to 1)
        mask.logical_or_(probs > 1 - eps)
    q.clamp_(eps, 1 - eps)
    log_q.clamp_(math.log(eps), math.log1p(-eps))
    return probs, mask


def labelled_statistics(X: Tensor, labels: Tensor, n_components: int, shift: Tensor, write_extra: ExtraFeatures,
                        n_extra: int, sample_weight: Tensor | None = None) -> Tensor:
    """``S`` ``(K, P)`` with ``S_k = Σ_{n: y_n = k} w_n F(x_n - shift)``: the features of points whose component
    ``y_n`` ``(n,)`` is known, weighted by ``sample_weight`` ``(n,)`` (1 without) and summed per component.
    Their log joint ``Σ_n w_n (C F(x_n))_{y_n}`` is then ``(C * S).sum()``, linear in the coefficients (SVI's
    mean-field guide with observed assignments)."""
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
        sums.index_add_(0, labels[rows], F.T if sample_weight is None else F.T * sample_weight[rows, None])
    return sums
