"""How data are cut into chunks: every temporary of a pass stays a few MiB, whatever N is."""

from __future__ import annotations

from collections.abc import Iterator

#: points per chunk are chosen so that one chunk's (n, K, D) work array stays near this many
#: elements: small enough to stay in cache-friendly buffers, large enough to amortize overhead.
CHUNK_ELEMENTS = 1 << 17


def chunk_size_for(n_components: int, n_features: int) -> int:
    """Points per chunk so that ``(chunk, K, D)`` temporaries stay a few MiB."""
    return max(256, CHUNK_ELEMENTS // max(1, n_components * n_features))


def iter_chunks(n: int, chunk: int) -> Iterator[slice]:
    """Slices ``[start, start + chunk)`` covering ``range(n)``."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))
