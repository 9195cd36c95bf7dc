"""Per-point values that travel with streamed data: partial labels and sample weights, chunk by chunk.

A stream (:class:`~mixtures.core.stream.StreamingData`) holds one chunk in memory at a time; its
labels ``(N,)`` and weights ``(N,)`` must not be loaded whole either. :class:`Aligned` wraps an
array-like of one value per row of the stream (a numpy array, an ``np.memmap`` opened read-only, a
tensor, anything sliceable with a length) and hands out the slice of each chunk as it arrives,
validated then (:func:`mixtures.core.labels.check_labels`, :func:`mixtures.core.weights.check_weight_values`),
so a bad label in the 90th chunk is reported with its global row. :func:`chunks_with` walks the
stream and its aligned values in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.labels import check_labels, label_scores, permuted_by_score
from mixtures.core.params import Params
from mixtures.core.summary import Summary
from mixtures.core.weights import check_weight_values
from mixtures.errors import DataError


class Aligned:
    """``values`` ``(N,)``, one per row of a stream, read slice by slice (module docstring).

    Args:
        values: the array-like (``len(values)`` must be the stream's ``N``).
        name: what the values are (``"labels"``, ``"sample_weight"``), for error messages.
        check: ``(slice as a numpy array or tensor, first global row) -> validated tensor``.
    """

    def __init__(self, values: Any, name: str, check: Callable[[Any, int], Tensor]):
        if isinstance(values, Aligned):
            values = values.values
        if not hasattr(values, "__len__") or not hasattr(values, "__getitem__") or _ndim(values[:0]) != 1:
            raise DataError(f"{name} for streamed data must be a one-dimensional array aligned with the stream's rows "
                            f"(a numpy array, a read-only np.memmap or a tensor); got {type(values).__name__}.")
        self.values, self.name, self.check = values, name, check

    def __len__(self) -> int:
        return len(self.values)

    def take(self, start: int, stop: int) -> Tensor:
        """The validated values of rows ``start..stop-1`` ``(stop - start,)``."""
        piece = self.values[start:stop]
        if not isinstance(piece, Tensor):
            piece = np.array(piece)  # a copy: one chunk's values leave the map
        return self.check(piece, start)

    def chunks(self, size: int = 1 << 16) -> Iterator[Tensor]:
        """Every value, ``size`` at a time (validated)."""
        for start in range(0, len(self), size):
            yield self.take(start, min(start + size, len(self)))


def _ndim(piece: Any) -> int:
    """Dimensions of a slice (a tensor on any device, or anything numpy reads)."""
    return piece.dim() if isinstance(piece, Tensor) else np.ndim(piece)


def check_length(values: Aligned | None, n_points: int) -> None:
    """A ``DataError`` unless ``values`` has one entry per row of a stream of ``n_points`` rows."""
    if values is not None and len(values) != n_points:
        raise DataError(f"{values.name} must have one entry per row of the streamed data, {n_points}; got "
                        f"{len(values)}.")


def chunks_with(X: Any, chunk_size: int | None, *aligned: Aligned | None
                ) -> Iterator[tuple[Tensor, ...]]:
    """``(chunk (n, D), values of its rows (n,) or None, ...)`` for every chunk of the stream ``X``, with one
    slice per entry of ``aligned`` (``None`` stays ``None``)."""
    start = 0
    for chunk in X.chunks(chunk_size):
        stop = start + chunk.shape[0]
        yield (chunk, *(None if values is None else values.take(start, stop).to(chunk.device) for values in aligned))
        start = stop


def streamed_labels(labels: Any, n_points: int, n_components: int) -> Aligned:
    """Partial labels of a stream of ``n_points`` rows, checked chunk by chunk as :func:`check_labels` checks
    in-memory labels (errors name the global row)."""
    def check(piece: Any, start: int) -> Tensor:
        try:
            return check_labels(piece, len(piece), n_components)
        except DataError as error:
            raise DataError(f"{error} (point numbers counted from row {start} of the stream)") from None

    values = Aligned(labels, "labels", check)
    check_length(values, n_points)
    return values


def streamed_weights(sample_weight: Any, n_points: int, dtype: torch.dtype) -> Aligned:
    """Sample weights of a stream of ``n_points`` rows, checked chunk by chunk (finite, >= 0) and, in one pass
    here, of positive sum."""
    def check(piece: Any, start: int) -> Tensor:
        if isinstance(piece, np.ndarray) and piece.dtype.kind not in "iuf":
            raise DataError(f"sample_weight must be real numbers; got an array of dtype {piece.dtype}.")
        weights = piece.detach() if isinstance(piece, Tensor) else torch.as_tensor(piece)
        if weights.is_complex() or weights.dtype == torch.bool:
            raise DataError(f"sample_weight must be real numbers; got dtype {weights.dtype}.")
        return check_weight_values(weights.to(dtype), start)

    values = Aligned(sample_weight, "sample_weight", check)
    check_length(values, n_points)
    if not any(bool((chunk > 0).any()) for chunk in values.chunks()):
        raise DataError("sample_weight sums to zero (every weight is zero): at least one point needs a positive "
                        "weight.")
    return values


def streamed_total(values: Aligned, reduce: Callable[[Tensor], Tensor]) -> float:
    """``Σ reduce(slice)`` over every slice of ``values`` (e.g. the total weight, the positive count)."""
    return float(sum(float(reduce(chunk).sum()) for chunk in values.chunks()))


def weight_total(sample_weight: Tensor | Aligned) -> Tensor:
    """``Σ_n w_n`` ``()`` (float64) of in-memory weights or of a stream's."""
    if isinstance(sample_weight, Aligned):
        return torch.tensor(streamed_total(sample_weight, lambda w: w.to(torch.float64)), dtype=torch.float64)
    return sample_weight.sum().to(torch.float64)


def positive_count(sample_weight: Tensor | Aligned) -> int:
    """How many points have a positive weight."""
    if isinstance(sample_weight, Aligned):
        return int(streamed_total(sample_weight, lambda w: (w > 0).to(torch.float64)))
    return int(sample_weight.gt(0).sum())


def summed(parts: Iterator[Summary], params: Params) -> Summary:
    """One pass's statistics from its chunks' (``parts``, in order): the additive sums, point counts,
    log-likelihoods and entropies added; the worst point is the chunks' candidate with the lowest
    ``log p(x | params)``; hard assignments are not kept (a stream's would not fit in memory)."""
    total, candidates = None, []
    for part in parts:
        if part.worst_point is not None:
            candidates.append(part.worst_point)
        if total is None:
            total = part
            continue
        total = total.with_additive([mine + theirs.to(mine.dtype) for mine, theirs in
                                     zip(total.additive(), part.additive())]).replace(
            n_points=total.n_points + part.n_points,
            log_likelihood=total.log_likelihood + part.log_likelihood.to(total.log_likelihood.dtype),
            entropy=total.entropy + part.entropy.to(total.entropy.dtype))
    if total is None:
        raise DataError("the streaming source yielded no data.")
    worst = None
    if candidates:
        stacked = torch.stack(candidates).to(params.dtype)
        worst = stacked[int(params.log_prob(stacked).argmin())]
    return total.replace(labels=None, worst_point=worst)


def aligned_start(params: Params, X: Any, labels: Tensor | Aligned, distributed: bool = False) -> Params:
    """:func:`mixtures.core.labels.aligned_to_labels` on streamed data (chunk by chunk) or on every rank's
    shard (the score table all-reduced, so every rank reorders its broadcast start the same way)."""
    if isinstance(labels, Aligned):
        parts = [(label_scores(params, chunk, y), (y >= 0).sum()) for chunk, y in chunks_with(X, None, labels)]
    else:
        parts = [(label_scores(params, X, labels), (labels >= 0).sum())]
    score = sum(part[0] for part in parts)
    known = sum(float(part[1]) for part in parts)
    if distributed:
        score, known = comm.all_reduce_sum(score, torch.tensor(known, dtype=torch.float64, device=score.device))
    return params if float(known) == 0 else permuted_by_score(params, score)
