"""A process-wide on/off flag with a scoped override.

Fast paths that must equal a reference path (the matrix-product ``log_prob``, the fused ELBO,
the collapsed NUTS potential) each keep one, so benchmarks and tests can run the reference
with ``with module.enabled(False): ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Switch:
    """On (default) or off; ``bool(switch)`` reads it, :meth:`enabled` sets it for a ``with`` block."""

    def __init__(self, on: bool = True):
        self._on = bool(on)

    def __bool__(self) -> bool:
        return self._on

    @contextlib.contextmanager
    def enabled(self, flag: bool = True) -> Iterator[None]:
        """Set the switch to ``flag`` inside the block; the previous state comes back after it."""
        previous, self._on = self._on, bool(flag)
        try:
            yield
        finally:
            self._on = previous
