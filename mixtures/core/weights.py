"""Sample weights: one non-negative number per point, validated once and carried to every pass.

A weight ``w_n`` multiplies point ``n``'s log-likelihood term ``log p(x_n | θ)`` (and, in
EM-type routines, its responsibilities before they are summed into statistics). An integer
weight is therefore the same as repeating the row ``w_n`` times, and a zero weight the same
as dropping it: every objective, statistic and trace in the history is the weighted one.

The seams are :func:`mixtures.kernels.fused_pass.fused_pass` and
:func:`mixtures.families.passes.responsibility_pass` (EM, hard EM, VB, k-means' mixture, the
fused MAP/SVI/NUTS path), the data plate of :meth:`mixtures.core.family.MixtureFamily.model`
(``poutine.scale``: Pyro's program path) and the Lloyd passes of :mod:`mixtures.kernels.kmeans`.

"N" with weights is the total weight ``Σ_n w_n`` wherever a count of points enters a formula
(EM's per-point tolerance, BIC's ``log N``, empty-component thresholds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.errors import DataError


def check_sample_weight(sample_weight: Any, X: Tensor) -> Tensor | None:
    """``sample_weight`` as a tensor ``(N,)`` of ``X``'s dtype and device, or ``None`` for none.

    Raises ``DataError`` unless the weights are numbers of shape ``(N,)`` (``N = X.shape[0]``),
    finite, non-negative and of positive sum.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, Tensor):
        weights = sample_weight.detach()
    else:
        try:
            array = np.asarray(sample_weight)
        except ValueError as error:  # ragged nested lists
            raise DataError(f"sample_weight is not a flat array of numbers: {error}.") from None
        if array.dtype.kind not in "biuf":
            raise DataError(f"sample_weight must be numbers; got an array of dtype {array.dtype}.")
        weights = torch.as_tensor(np.array(array))  # a copy: read-only arrays (pandas) stay untouched
    if weights.is_complex() or weights.dtype == torch.bool:
        raise DataError(f"sample_weight must be real numbers; got dtype {weights.dtype}.")
    N = X.shape[0]
    if tuple(weights.shape) != (N,):
        raise DataError(f"sample_weight must have shape (N,) = ({N},), one weight per row of X; "
                        f"got shape {tuple(weights.shape)}.")
    weights = check_weight_values(weights.to(dtype=X.dtype, device=X.device))
    if not bool(weights.sum() > 0):
        raise DataError("sample_weight sums to zero (every weight is zero): at least one point needs a positive "
                        "weight.")
    return weights


def check_weight_values(weights: Tensor, offset: int = 0) -> Tensor:
    """``weights`` ``(n,)`` unchanged, or a ``DataError`` naming the first NaN, infinite or negative one
    (positions counted from ``offset``: a chunk of a stream)."""
    bad = torch.nonzero(~torch.isfinite(weights)).reshape(-1)
    if bad.numel():
        raise DataError(f"sample_weight has {bad.numel()} NaN or infinite value(s), the first at position "
                        f"{offset + int(bad[0])}; every weight must be a finite number >= 0.")
    negative = torch.nonzero(weights < 0).reshape(-1)
    if negative.numel():
        raise DataError(f"sample_weight has {negative.numel()} negative value(s), the first "
                        f"{float(weights[negative[0]]):g} at position {offset + int(negative[0])}; weights must be "
                        ">= 0 (0 drops a point).")
    return weights


def total_weight(X: Any, sample_weight: Tensor | None) -> float:
    """``Σ_n w_n``, or the number of points without weights (what ``N`` means with weights)."""
    if sample_weight is not None:
        return float(sample_weight.sum())
    return X.n_points if hasattr(X, "n_points") else X.shape[0]


def weighted_mean_cov(X: Tensor, sample_weight: Tensor, distributed: bool = False) -> tuple[float, Tensor, Tensor]:
    """``(Σ w, mean (D,), covariance (D, D))`` of ``X`` ``(N, D)`` with weights ``(N,)``: the moments of
    the data with rows repeated (``ddof=1`` on the total weight, as ``torch.cov`` of the repeated rows);
    ``distributed``: over every rank's shard."""
    total, first = sample_weight.sum(), sample_weight @ X
    if distributed:
        total, first = comm.all_reduce_sum(total, first)
        total, first = total.to(X.dtype), first.to(X.dtype)
    mean = first / total
    centred = X - mean
    scatter = (centred * sample_weight[:, None]).T @ centred
    if distributed:
        scatter = comm.all_reduce_sum(scatter)[0].to(X.dtype)
    cov = scatter / (total - 1) if float(total) > 1 else torch.full_like(scatter, float("nan"))
    return float(total), mean, 0.5 * (cov + cov.T)


def weight_chunks(sample_weight: Tensor | None, chunk: int) -> Any:
    """The weights ``(n,)`` of consecutive chunks of ``chunk`` rows (``None`` forever without weights)."""
    if sample_weight is None:
        while True:
            yield None
    yield from sample_weight.split(chunk)
