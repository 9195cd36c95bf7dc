"""One E-step pass over chunks for families whose statistics are not linear in fixed features.

The Gaussian and Poisson families compute their log densities and statistics with two
matrix products per chunk (:mod:`mixtures.kernels.fused_pass`): both are linear in features
of the point. A t mixture's statistics depend on the parameters through the latent scales
(``u_nk = (ν + D) / (ν + δ_nk)``), and a noise component adds a density that is no
family's own. :func:`responsibility_pass` is the pass they share: for every chunk of
``(n, D)`` points it asks the family for the log joint densities ``(n, K)``, turns them into
responsibilities (one-hot for hard EM), and asks for the chunk's additive statistics of
those responsibilities, which it sums in the accumulation dtype. Everything is vectorized
over the chunk's points and the components; memory is bounded by the chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mixtures.core.chunks import chunk_size_for
from mixtures.core.stream import iter_data
from mixtures.core.weights import weight_chunks

#: ``joint(chunk (n, D)) -> (log π_k + log p(x | k) (n, K), context)``
JointFunction = Callable[[Tensor], tuple[Tensor, Any]]
#: ``statistics(chunk (n, D), resp (n, K), context) -> additive tensors`` (a list, in a fixed order)
StatisticsFunction = Callable[[Tensor, Tensor, Any], list[Tensor]]


@dataclass
class PassTotals:
    """What :func:`responsibility_pass` returns.

    Attributes:
        nk: ``(K,)`` ``Σ_n r_nk``. sums: the statistics' tensors summed over chunks.
        log_likelihood: ``Σ_n log p(x_n)`` (accumulation dtype). entropy: ``-Σ r log r`` (0 when hard).
        n_points: points seen. labels: ``(N,)`` hard labels of in-memory data, else None.
        worst_point: ``(D,)`` the point with the lowest ``log p(x)`` (None for no points).
    """

    nk: Tensor
    sums: list[Tensor]
    log_likelihood: Tensor
    entropy: Tensor
    n_points: int
    labels: Tensor | None
    worst_point: Tensor | None


def responsibility_pass(X: Any, like: Tensor, n_components: int, joint: JointFunction, statistics: StatisticsFunction,
                        hard: bool = False, chunk_size: int | None = None,
                        accumulate_dtype: torch.dtype | None = None, sample_weight: Tensor | None = None
                        ) -> PassTotals:
    """One pass over ``X`` ``(N, D)`` (a tensor or streamed data); see the module docstring.

    Args:
        like: a tensor of the data's dtype and device (the totals' dtype unless ``accumulate_dtype``).
        n_components: ``K``, the columns of ``joint``.
        hard: one-hot responsibilities at the most probable component (ties: lowest index).
        chunk_size: points per chunk (default :func:`mixtures.core.chunks.chunk_size_for`).
        sample_weight: ``(N,)`` weights of in-memory points (:mod:`mixtures.core.weights`): each
            point's responsibilities (before ``statistics`` sees them, which must be linear in
            them), log-likelihood and entropy terms are multiplied by its weight.
    """
    K, D = n_components, like.shape[-1]
    chunk = chunk_size or chunk_size_for(K, D)
    dtype = accumulate_dtype or like.dtype
    nk = torch.zeros(K, dtype=dtype, device=like.device)
    log_likelihood = torch.zeros((), dtype=dtype, device=like.device)
    entropy = torch.zeros((), dtype=dtype, device=like.device)
    sums: list[Tensor] | None = None
    labels: list[Tensor] | None = [] if hard and isinstance(X, Tensor) else None
    n_points, worst_value, worst_point = 0, math.inf, None
    if sample_weight is not None and not isinstance(X, Tensor):
        raise ValueError("sample_weight needs the data in memory (a stream carries no weights).")
    for rows, weights in zip(iter_data(X, chunk), weight_chunks(sample_weight, chunk)):
        if rows.shape[0] == 0:
            continue
        n_points += rows.shape[0]
        log_joint, context = joint(rows)
        log_norm = torch.logsumexp(log_joint, -1)                         # (n,)
        candidates = log_norm if weights is None else log_norm.masked_fill(weights == 0, math.inf)
        chunk_worst = float(candidates.min())
        if chunk_worst < worst_value:
            worst_value, worst_point = chunk_worst, rows[int(candidates.argmin())]
        log_likelihood += _weighted(log_norm, weights).sum().to(dtype)
        if hard:
            chunk_labels = log_joint.argmax(-1)
            if labels is not None:
                labels.append(chunk_labels)
            resp = torch.nn.functional.one_hot(chunk_labels, K).to(log_joint.dtype)
        else:
            log_resp = log_joint - log_norm.unsqueeze(-1)
            resp = log_resp.exp()
            terms = torch.where(resp > 0, resp * log_resp, torch.zeros_like(resp))
            entropy -= (terms.sum() if weights is None else _weighted(terms.sum(-1), weights).sum()).to(dtype)
        if weights is not None:
            resp = resp * weights.unsqueeze(-1)
        nk += resp.sum(0).to(dtype)
        parts = [part.to(dtype) for part in statistics(rows, resp, context)]
        sums = parts if sums is None else [total + part for total, part in zip(sums, parts)]
    if sums is None:  # no points: the statistics of an empty chunk give the zeros' shapes
        empty = like.new_zeros(0, D)
        log_joint, context = joint(empty)
        sums = [part.to(dtype) for part in statistics(empty, like.new_zeros(0, K), context)]
    return PassTotals(nk, sums, log_likelihood, entropy, n_points, torch.cat(labels) if labels else None,
                      worst_point)


def _weighted(values: Tensor, weights: Tensor | None) -> Tensor:
    """``w_n v_n`` ``(n,)`` (``v`` without weights), exactly 0 at zero weights (a dropped row)."""
    return values if weights is None else (values * weights).masked_fill_(weights == 0, 0.0)
