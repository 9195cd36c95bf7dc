"""How figures look: colours per method and per covariance type, markers, line styles, symlog ticks.

Nothing here draws data; the drawing modules take their styles from here so that
every figure of a run shows a method (or a covariance type) the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mixtures.families.gaussian import covariance

#: the true mixture: dashed black outlines
TRUTH_STYLE = {"edgecolor": "black", "linestyle": "--", "linewidth": 1.5}
#: markers cycled per method where lines may coincide (EM and an unregularized MAP)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
#: line styles cycled with the markers
LINESTYLES = ("-", "--", "-.", ":")
#: colours cycled over the covariance types (matplotlib's tab10, named: the cycle of rcParams may differ)
_COVARIANCE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                      "tab:gray", "tab:olive", "tab:cyan")


def covariance_style(position: int) -> tuple[str, str]:
    """``(colour, marker)`` of the covariance type at ``position`` in registration order.

    Each lap of the colour cycle shifts the marker by one, so no two of the first
    ``len(colours) * len(markers)`` positions look alike (mclust's fourteen structures and more).
    """
    lap = position // len(_COVARIANCE_COLORS)
    return _COVARIANCE_COLORS[position % len(_COVARIANCE_COLORS)], MARKERS[(position + lap) % len(MARKERS)]


class _CovarianceStyles(Mapping[str, tuple[str, str]]):
    """``{covariance type: (colour, marker)}`` over the registered covariance structures
    (:data:`mixtures.families.gaussian.covariance.STRUCTURES`).

    Read from the registry on every access (not copied at import), so a covariance
    type registered there gets the next style of the cycle without a change here.
    """

    def __getitem__(self, name: str) -> tuple[str, str]:
        names = list(covariance.STRUCTURES)
        if name not in names:
            raise KeyError(name)
        return covariance_style(names.index(name))

    def __iter__(self) -> Iterator[str]:
        return iter(list(covariance.STRUCTURES))

    def __len__(self) -> int:
        return len(covariance.STRUCTURES)

    def __repr__(self) -> str:
        return repr(dict(self))


#: one (colour, marker) per registered covariance type, shared by every BIC plot
COVARIANCE_STYLES: Mapping[str, tuple[str, str]] = _CovarianceStyles()


def method_colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per name, in order (``C0``, ``C1``, ...): a run's method→colour map.

    Every figure of a run draws a method in the colour this gives it, whichever
    subset of methods the figure shows.
    """
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(str(n) for n in names))}


def color_for(colors: Mapping[str, str] | None, name: str, index: int) -> str:
    """``colors[name]`` if given there, else the ``index``-th colour of the default cycle."""
    if colors is not None and name in colors:
        return colors[name]
    return f"C{index % 10}"


def symlog_ticks(ax: Any, axis: str, linthresh: float, vmax: float, max_ticks: int = 7) -> None:
    """Major ticks ``0, 10^a, 10^(a+s), ... <= vmax`` on a symlog axis, none in ``(0, 10·linthresh)``.

    matplotlib's default symlog ticks put ``linthresh`` itself next to ``0``, and
    the two labels overlap when the axis spans many decades. ``s`` thins the
    decades to at most ``max_ticks`` labels.
    """
    if not (vmax > 0 and linthresh > 0):
        return
    first = math.floor(math.log10(linthresh)) + 1
    last = math.floor(math.log10(vmax) + 1e-9)  # ticks within the data: none beyond vmax
    if last < first:
        return
    step = max(1, math.ceil((last - first + 1) / max(max_ticks - 1, 1)))
    ticks = [0.0] + [10.0 ** e for e in range(first, last + 1, step)]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks)
