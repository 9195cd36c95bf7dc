"""``NoiseRegion``: where a noise component's uniform density lives, and its volume.

mclust's noise component (``Vinv``) is a uniform density ``1/V`` over the data's region. The
region is part of the model (a constant, never estimated):

* ``NoiseRegion.box(X)``: the data's axis-aligned bounding box, ``V = Π_d (max_d − min_d)``;
* ``NoiseRegion.hull(X)``: the data's convex hull (Qhull, through ``scipy.spatial.ConvexHull``),
  ``V`` its volume (smaller than the box's; 2 ≤ D ≤ ~8 in practice);
* ``NoiseRegion.given(volume, lower, upper)``: a volume of your own (mclust's ``Vinv = 1/V``),
  with an optional box to sample from.

As in mclust, the density is the constant ``1/V`` at every point, inside the region or not
(a new point far outside is still explained by the noise rather than forced into a cluster);
:meth:`NoiseRegion.sample` draws uniformly from the region itself (rejection from the box for a hull).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError
from torch import Tensor

from mixtures.core.validation import as_data
from mixtures.errors import DataError, ParameterError

REGIONS = ("box", "hull", "given")


@dataclass(frozen=True)
class NoiseRegion:
    """A region of volume ``volume`` (module docstring).

    Attributes:
        kind: ``"box"``, ``"hull"`` or ``"given"``.
        volume: ``V`` (the noise density is ``1/V``).
        lower, upper: the bounding box ``(D,)`` (empty for a given volume without one).
        facets: a hull's facets ``(F, D + 1)`` as rows ``(a, c)`` with ``a·x + c ≤ 0`` inside.
    """

    kind: str
    volume: float
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    facets: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self):
        if self.kind not in REGIONS:
            raise ValueError(f"a noise region's kind is one of {REGIONS}; got {self.kind!r}.")
        if not (isinstance(self.volume, (int, float)) and math.isfinite(self.volume) and self.volume > 0):
            raise ValueError(f"a noise region's volume must be finite and positive; got {self.volume!r}.")
        if len(self.lower) != len(self.upper) or any(lo > hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError("a noise region's box needs lower <= upper, of one length.")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def box(cls, X: Any) -> NoiseRegion:
        """The bounding box of ``X`` ``(N, D)``."""
        X = _points(X)
        lower, upper = X.min(0), X.max(0)
        flat = np.flatnonzero(upper <= lower)
        if flat.size:
            raise DataError(f"feature(s) {flat.tolist()[:10]} of X are constant: the bounding box has no volume, so a "
                            "uniform noise density is undefined. Remove them, or give NoiseRegion.given(volume).")
        return cls("box", float(np.prod(upper - lower)), tuple(lower.tolist()), tuple(upper.tolist()))

    @classmethod
    def hull(cls, X: Any) -> NoiseRegion:
        """The convex hull of ``X`` ``(N, D)`` (D ≥ 2; for D = 1 the hull is the box)."""
        X = _points(X)
        if X.shape[1] == 1:
            return cls.box(X)
        try:
            hull = ConvexHull(X)
        except (QhullError, ValueError) as error:
            raise DataError(f"the convex hull of X cannot be computed ({str(error).splitlines()[0]}): the points are "
                            "too few or lie in a lower-dimensional subspace. Use NoiseRegion.box(X) or give the "
                            "volume.") from None
        facets = tuple(tuple(row) for row in hull.equations.tolist())
        return cls("hull", float(hull.volume), tuple(X.min(0).tolist()), tuple(X.max(0).tolist()), facets)

    @classmethod
    def given(cls, volume: float, lower: Any = (), upper: Any = ()) -> NoiseRegion:
        """A volume of your own; ``lower``/``upper`` (a box of that volume) only for sampling."""
        lower, upper = tuple(float(v) for v in lower), tuple(float(v) for v in upper)
        if lower and not math.isclose(float(np.prod(np.subtract(upper, lower))), float(volume), rel_tol=1e-9):
            raise ValueError("a given volume's box must have that volume; omit the box, or give its own volume.")
        return cls("given", float(volume), lower, upper)

    @classmethod
    def of(cls, X: Any, kind: str = "box") -> NoiseRegion:
        """``box`` or ``hull`` of ``X``."""
        if kind not in ("box", "hull"):
            raise ValueError(f"a region computed from data is 'box' or 'hull'; got {kind!r}.")
        return cls.box(X) if kind == "box" else cls.hull(X)

    # -- state ----------------------------------------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        """Primitives (what a model's and a parameter container's spec hold)."""
        spec: dict[str, Any] = {"kind": self.kind, "volume": self.volume}
        if self.lower:
            spec.update(lower=list(self.lower), upper=list(self.upper))
        if self.facets:
            spec["facets"] = [list(row) for row in self.facets]
        return spec

    @classmethod
    def from_spec(cls, spec: Any) -> NoiseRegion:
        if isinstance(spec, NoiseRegion):
            return spec
        if not isinstance(spec, dict) or "kind" not in spec or "volume" not in spec:
            raise ParameterError(f"a noise region is a NoiseRegion or its to_spec() dict; got {spec!r}.")
        facets = tuple(tuple(float(v) for v in row) for row in spec.get("facets", ()))
        return cls(str(spec["kind"]), float(spec["volume"]), tuple(float(v) for v in spec.get("lower", ())),
                   tuple(float(v) for v in spec.get("upper", ())), facets)

    # -- use ------------------------------------------------------------------------------
    @property
    def log_volume(self) -> float:
        return math.log(self.volume)

    @property
    def n_features(self) -> int | None:
        return len(self.lower) if self.lower else None

    def contains(self, X: Tensor) -> Tensor:
        """Whether each point of ``X`` ``(n, D)`` lies in the region: ``(n,)`` bool (all True without a box)."""
        if not self.lower:
            return torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
        lower, upper = (X.new_tensor(bound) for bound in (self.lower, self.upper))
        inside = ((X >= lower) & (X <= upper)).all(-1)
        if self.facets:
            facets = X.new_tensor(self.facets)
            scale = X.abs().amax().clamp_min(1.0)  # Qhull's equations hold to rounding
            inside &= (X @ facets[:, :-1].T + facets[:, -1] <= 1e-10 * scale).all(-1)
        return inside

    def sample(self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
               device: Any = None) -> Tensor:
        """``n`` points ``(n, D)`` uniform in the region (rejection from the box for a hull)."""
        if not self.lower:
            raise ValueError("this noise region is only a volume (NoiseRegion.given without a box): there is no "
                             "region to draw noise points from. Give its box, or use NoiseRegion.box(X).")
        lower = torch.tensor(self.lower, dtype=torch.float64)
        width = torch.tensor(self.upper, dtype=torch.float64) - lower
        kept: list[Tensor] = []
        count = 0
        while count < n:  # a hull keeps a fraction V_hull / V_box of each batch of box draws
            batch = max(64, 2 * (n - count))
            draws = lower + width * torch.rand(batch, lower.shape[0], dtype=torch.float64, generator=generator)
            draws = draws[self.contains(draws)]
            kept.append(draws)
            count += draws.shape[0]
        points = torch.cat(kept)[:n] if kept else torch.zeros(0, lower.shape[0], dtype=torch.float64)
        return points.to(dtype=dtype, device=device)


def _points(X: Any) -> np.ndarray:
    X = as_data(X, dtype=torch.float64)
    return X.detach().cpu().numpy()
