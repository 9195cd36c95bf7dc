"""``Summary``: the additive statistics of one pass over data, for any family with statistics.

EM-type routines (EM, hard EM, stepwise EM, VB, k-means' induced mixture) work on the
sufficient statistics of responsibilities: ``N_k = Σ_n r_nk`` and family-specific sums
(for a Gaussian ``Σ_n r_nk x_n`` and second moments). They add up over any split of the
data, which is what makes chunked, streamed, distributed and stepwise EM exact: the
routines only ever *add*, *scale* and *blend* summaries and hand them back to the family's
M step. This module knows nothing of what the moments mean; families name them
(``summary.sx``, ``summary.sxx`` for the Gaussian family) and interpret them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from mixtures.core.missing import has_missing, observed_means


@dataclass
class Summary:
    """Statistics of one pass.

    Attributes:
        nk: ``(K,)`` responsibility mass per component ``Σ_n r_nk``.
        moments: the family's other additive sums by name (e.g. ``"sx"`` ``(K, D)``),
            also readable as attributes (``summary.sx``).
        shift: ``(D,)`` the point the moments are taken about (not additive; the same for
            every part of a split), or None when the family takes none.
        n_points: number of points summarized.
        log_likelihood: ``Σ_n log p(x_n | θ)`` under the parameters of the pass (NaN if none).
        entropy: ``-Σ_n Σ_k r_nk log r_nk`` (0 for hard assignments).
        labels: ``(N,)`` hard assignments when the pass made and kept them, else None.
        worst_point: ``(D,)`` the point with the lowest ``log p(x | θ)`` (where a collapsed
            component is re-seeded), None when not tracked.
    """

    nk: Tensor
    moments: dict[str, Tensor] = field(default_factory=dict)
    shift: Tensor | None = None
    n_points: int = 0
    log_likelihood: Tensor | None = None
    entropy: Tensor | None = None
    labels: Tensor | None = None
    worst_point: Tensor | None = None

    def __post_init__(self):
        nan = self.nk.new_tensor(math.nan)
        if self.log_likelihood is None:
            self.log_likelihood = nan
        if self.entropy is None:
            self.entropy = self.nk.new_zeros(())

    def __getattr__(self, name: str) -> Tensor:
        # only reached for names that are not fields: the family's moments
        if name.startswith("__") or name == "moments":
            raise AttributeError(name)
        try:
            return self.moments[name]
        except KeyError:
            raise AttributeError(f"Summary has no field or moment {name!r}; moments: {list(self.moments)}") from None

    def replace(self, **changes: Any) -> Summary:
        """A copy with fields and moments (by name) replaced."""
        moments = {name: changes.pop(name) for name in list(changes) if name in self.moments}
        return replace(self, moments={**self.moments, **moments}, **changes)

    def additive(self) -> list[Tensor]:
        """The tensors that add up over a split of the data: ``nk``, then the moments in order."""
        return [self.nk, *self.moments.values()]

    def with_additive(self, tensors: list[Tensor]) -> Summary:
        """A copy with :meth:`additive` replaced by ``tensors`` (same order)."""
        return replace(self, nk=tensors[0], moments=dict(zip(self.moments, tensors[1:])))

    def scaled(self, factor: float) -> Summary:
        """``nk`` and the moments times ``factor`` (stepwise EM's per-point averages and back)."""
        return self.with_additive([factor * t for t in self.additive()])

    def blended(self, other: Summary, eta: float) -> Summary:
        """``(1 - η) self + η other`` on ``nk`` and the moments (``η = 1`` gives ``other`` exactly)."""
        return self.with_additive([(1.0 - eta) * mine + eta * theirs
                                   for mine, theirs in zip(self.additive(), other.additive())])


def default_shift(X: Any) -> Tensor:
    """A cheap centre for the moments ``(D,)``: the mean of (at most) the first 4096 points.

    ``X`` is an ``(N, D)`` tensor or anything with ``head(n)`` (streamed data).
    """
    head = X.head(4096) if hasattr(X, "head") else X[:4096]
    return observed_means(head) if has_missing(head) else head.mean(0)  # NaN: missing values


def floored_counts(nk: Tensor) -> Tensor:
    """``nk + 10 eps``: keeps empty components' divisions finite (scikit-learn's rule)."""
    return nk + 10 * torch.finfo(nk.dtype).eps
