"""Data that does not fit in memory: passes over chunks, with memory bounded by the chunk.

:class:`StreamingData` wraps

* a numpy array, including a memory-mapped ``.npy`` (``np.load(path, mmap_mode="r")``):
  each chunk is copied from the map when it is needed;
* a callable returning a *fresh* iterator of ``(n_i, D)`` chunks on every call
  (data spread over many files, a ``torch.utils.data.DataLoader``...).

Every chunk is validated as it arrives (:func:`mixtures.core.validation.as_data`),
so a NaN in the 90th file is reported with its chunk and row. EM's sufficient
statistics add up over chunks, so a streamed fit equals the in-memory fit
(to rounding: 1e-10 in float64) while holding one chunk at a time.

Initialization of a streamed fit (``"kmeans++"``, ``"kmeans"``, ``"random_from_data"``,
``"random"``) runs on a uniform reservoir sample of ``init_sample_size`` points
drawn in one pass (Vitter's algorithm R, vectorized per chunk); the resulting
parameters then start EM on all the data.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.validation import as_data, check_chunk_size
from mixtures.errors import DataError

DEFAULT_CHUNK = 1 << 16


class StreamingData:
    """A data source read in chunks.

    Args:
        source: numpy array / memmap ``(N, D)``, or a callable returning an iterator
            of chunks (arrays or tensors ``(n_i, D)``).
        dtype: dtype of the chunks handed to routines (default: float64, or the
            array's float dtype).
        device: device of the chunks.
        chunk_size: rows per chunk for array sources.
    """

    def __init__(self, source: np.ndarray | Callable[[], Iterable[Any]], *, dtype: torch.dtype | None = None,
                 device: Any = None, chunk_size: int | None = None):
        if isinstance(source, StreamingData):
            raise TypeError("source is already StreamingData")
        if isinstance(source, np.ndarray):
            if source.ndim not in (1, 2):
                raise DataError(f"streamed data must have shape (N, D); got {source.shape}.")
            if dtype is None:
                dtype = torch.float32 if source.dtype == np.float32 else torch.float64
        elif not callable(source):
            raise TypeError("StreamingData needs a numpy array/memmap or a callable returning an "
                            f"iterator of chunks; got {type(source).__name__}.")
        self.source = source
        self.dtype = dtype or torch.float64
        self.device = device
        self._n_points: int | None = len(source) if isinstance(source, np.ndarray) else None
        chunk = check_chunk_size(chunk_size) or DEFAULT_CHUNK
        # no buffer larger than the data (an array's length is known without a pass)
        self.chunk_size = max(1, min(chunk, self._n_points)) if self._n_points else chunk
        self._n_features: int | None = (1 if source.ndim == 1 else source.shape[1]) \
            if isinstance(source, np.ndarray) else None

    # -- facts (a callable source needs one pass to learn them) -----------------------
    @property
    def n_points(self) -> int:
        if self._n_points is None:
            sum(1 for _ in self.chunks())  # counts while validating
        return self._n_points

    @property
    def n_features(self) -> int:
        if self._n_features is None:
            next(iter(self.chunks()))
        return self._n_features

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_points, self.n_features)

    def chunks(self, chunk_size: int | None = None) -> Iterator[Tensor]:
        """One pass: validated chunks ``(n_i, D)`` of the data, in order (``chunk_size`` rows each,
        default :attr:`chunk_size`; a callable source yields its own chunks)."""
        step = check_chunk_size(chunk_size) or self.chunk_size
        if _readable_map(self.source):
            yield from self._file_chunks(step)
            return
        if isinstance(self.source, np.ndarray):
            for start in range(0, len(self.source), step):
                block = np.array(self.source[start:start + step], dtype=_numpy_dtype(self.dtype))
                yield self._validate(block, start)
            return
        total = 0
        iterator = self.source()
        if not isinstance(iterator, Iterable):
            raise TypeError("a streaming source callable must return an iterator of chunks.")
        for block in iterator:
            chunk = self._validate(block, total)
            total += chunk.shape[0]
            if chunk.shape[0]:  # empty chunks (a filtered file, a last batch) are checked, then skipped
                yield chunk
        if total == 0:
            raise DataError("the streaming source yielded no data.")
        self._n_points = total

    def _file_chunks(self, step: int) -> Iterator[Tensor]:
        # Pages of a memory map stay resident once touched, so a pass over a map larger
        # than memory would grow the process to the file's size: read with plain file I/O.
        source = self.source
        width = 1 if source.ndim == 1 else source.shape[1]
        row_bytes = width * source.itemsize
        with open(source.filename, "rb") as handle:
            for start in range(0, len(source), step):
                rows = min(step, len(source) - start)
                handle.seek(source.offset + start * row_bytes)
                block = np.fromfile(handle, dtype=source.dtype, count=rows * width).reshape(rows, width)
                yield self._validate(block.astype(_numpy_dtype(self.dtype), copy=False), start)

    def _validate(self, block: Any, offset: int) -> Tensor:
        chunk = as_data(block, name=f"chunk starting at row {offset}", dtype=self.dtype, device=self.device,
                        n_features=self._n_features, min_points=0)
        if self._n_features is None:
            self._n_features = chunk.shape[1]
        return chunk

    def head(self, n: int) -> Tensor:
        """The first ``n`` points (or fewer) as one tensor."""
        pieces, count = [], 0
        for chunk in self.chunks():
            pieces.append(chunk[: n - count])
            count += pieces[-1].shape[0]
            if count >= n:
                break
        return torch.cat(pieces)

    def reservoir_sample(self, n: int, generator: torch.Generator) -> Tensor:
        """A uniform sample of ``min(n, N)`` points without replacement, in one pass."""
        reservoir: Tensor | None = None
        seen = 0
        for chunk in self.chunks():
            rows = chunk.shape[0]
            if reservoir is None or reservoir.shape[0] < n:
                take = chunk[: n - (0 if reservoir is None else reservoir.shape[0])]
                reservoir = take.clone() if reservoir is None else torch.cat([reservoir, take])
                chunk = chunk[take.shape[0]:]
                seen += take.shape[0]
                rows = chunk.shape[0]
            if rows:
                # algorithm R: point i (0-based, global) replaces a random slot with prob n / (i + 1)
                positions = torch.arange(seen, seen + rows, dtype=torch.float64)
                slots = (torch.rand(rows, generator=generator, dtype=torch.float64) * (positions + 1)).long()
                keep = slots < n
                # several points of a chunk may pick one slot: the latest wins, as in the
                # sequential algorithm
                winner = torch.full((n,), -1, dtype=torch.long).scatter_reduce(
                    0, slots[keep], torch.nonzero(keep).reshape(-1), reduce="amax")
                filled = winner >= 0
                reservoir[filled] = chunk[winner[filled]]
                seen += rows
        return reservoir

    def __repr__(self) -> str:
        kind = "array" if isinstance(self.source, np.ndarray) else "callable"
        return f"StreamingData({kind}, n_points={self._n_points}, n_features={self._n_features})"


def _readable_map(source: Any) -> bool:
    """A whole, C-ordered ``np.memmap`` (not a view into one), readable as a file."""
    return (isinstance(source, np.memmap) and isinstance(getattr(source, "base", None), mmap.mmap)
            and source.filename is not None and source.flags.c_contiguous)


def _numpy_dtype(dtype: torch.dtype) -> Any:
    return {torch.float32: np.float32, torch.float64: np.float64}.get(dtype, np.float64)


def is_streaming_source(X: Any) -> bool:
    """Whether ``fit`` should stream ``X`` rather than load it."""
    return isinstance(X, (StreamingData, np.memmap)) or (callable(X) and not isinstance(X, (Tensor, np.ndarray)))


def as_stream(X: Any, dtype: Any = None, device: Any = None, chunk_size: int | None = None) -> StreamingData:
    return X if isinstance(X, StreamingData) else StreamingData(X, dtype=dtype, device=device,
                                                                chunk_size=chunk_size)


def bounded_chunk_size(chunk_size: int | None, X: Tensor | StreamingData) -> int | None:
    """``chunk_size`` checked (a positive int, or None for the routine's default) and capped at
    the number of points, so that no pass allocates buffers for more rows than the data hold
    (``chunk_size=10**9`` on 300 points allocates 300 rows)."""
    chunk_size = check_chunk_size(chunk_size)
    if chunk_size is None:
        return None
    n_points = X.n_points if isinstance(X, StreamingData) else X.shape[0]
    return max(1, min(chunk_size, n_points))


def iter_data(X: Tensor | StreamingData, chunk_size: int) -> Iterator[Tensor]:
    """Chunks of in-memory or streamed data."""
    if isinstance(X, StreamingData):
        yield from X.chunks(chunk_size)
        return
    step = check_chunk_size(chunk_size) or max(1, X.shape[0])
    for start in range(0, X.shape[0], step):
        yield X[start:start + step]


def predict_chunks(result: Any, X: Any, out: np.ndarray | None = None,
                   chunk_size: int | None = None) -> Iterator[Tensor] | np.ndarray:
    """Labels of streamed data, chunk by chunk.

    With ``out`` (an integer array of length N, e.g. an ``np.memmap`` opened for
    writing) the labels are written there and ``out`` is returned; otherwise a
    generator of ``(n_i,)`` label tensors is returned.
    """
    stream = as_stream(X, dtype=result.params.dtype)

    def generate() -> Iterator[Tensor]:
        for chunk in stream.chunks(chunk_size):
            yield result.params.joint_log_prob(chunk).argmax(-1)

    if out is None:
        return generate()
    position = 0
    for labels in generate():
        out[position:position + labels.shape[0]] = labels.cpu().numpy()
        position += labels.shape[0]
    return out


def score_stream(params: Any, X: Any, chunk_size: int | None = None) -> float:
    """Total log-likelihood of streamed data under ``params`` (one pass)."""
    stream = as_stream(X, dtype=params.dtype)
    total = 0.0
    for chunk in stream.chunks(chunk_size):
        total += float(params.log_prob(chunk).sum())
    return total
