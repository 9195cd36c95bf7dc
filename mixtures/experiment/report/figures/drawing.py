"""Shared pieces of the figures: one colour per method, one legend, axis scales, atomic saving."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mixtures import plot
from mixtures.core.history import History
from mixtures.experiment.datasets import DataBundle
from mixtures.experiment.store import RunState
from mixtures.plot.paper import PAPER_FORMATS


def method_colors(state: RunState) -> dict[str, str]:
    """The run's method→colour map (config order), used by every figure."""
    return plot.method_colors(m.name for m in state.config.methods)


def group_colors(state: RunState, groups: Iterable[str]) -> dict[str, str]:
    """Colours for plot groups named ``"<method>"`` or ``"<method>, <init>"``: the method's."""
    colors = method_colors(state)
    return {group: colors.get(group if group in colors else group.split(", ")[0], "0.3") for group in groups}


def method_markers(state: RunState) -> dict[str, str]:
    return {m.name: plot.MARKERS[i % len(plot.MARKERS)] for i, m in enumerate(state.config.methods)}


def figure_legend(fig: Any, axes: Iterable[Any], ncols: int | None = None) -> None:
    """One legend for the figure (below the panels) from the labelled artists of ``axes``."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                handles.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    for last in [label for label in handles if label == "truth" or label.startswith("∝")]:
        handles[last] = handles.pop(last)  # references (the truth, rate guides) after the methods
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=ncols or min(len(handles), 6), fontsize="small", frameon=False)


def same_units(bundle: DataBundle, dims: tuple[int, int] = (0, 1)) -> bool:
    """Whether two features can share one axis scale: synthetic data always (drawn in one
    unit), real data when their spreads are within a factor 3 of each other."""
    if bundle.truth is not None:
        return True
    X = bundle.X.detach().cpu().double().numpy()
    if X.shape[1] < 2:
        return True
    spread = X[:, list(dims)].std(0)
    return bool(spread.min() > 0 and spread.max() / spread.min() <= 3.0)


def feature_names(bundle: DataBundle) -> list[str] | None:
    return list(bundle.feature_names) if bundle.feature_names else None


def scale_note(bundle: DataBundle) -> str:
    """Caption sentence on the axis scales of a 2-D data figure."""
    if same_units(bundle):
        return " Both axes are drawn to the same scale, so circles look round."
    spread = bundle.X.detach().cpu().double().numpy()[:, :2].std(0)
    names = feature_names(bundle) or ["x_0", "x_1"]
    return (f" The axes have independent scales (the standard deviations of {names[0]} and {names[1]} are "
            f"{max(spread) / min(spread):.0f}× apart; one scale would flatten the data to a line), so "
            "shapes are stretched: a circle would look like an ellipse.")


def data_box(bundle: DataBundle, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners ``(2,)`` of the first two features, padded by ``pad`` × their range."""
    data = bundle.X[:, :2].detach().cpu().double().numpy()
    low, high = data.min(0), data.max(0)
    margin = pad * np.maximum(high - low, 1e-12)
    return low - margin, high + margin


def common_limits(axes: list) -> None:
    """The same data limits on every panel, by autoscaling (not fixed limits, which an equal
    aspect with ``adjustable="datalim"`` would have to override) and without shared axes."""
    corners = np.array([[min(ax.dataLim.x0 for ax in axes), min(ax.dataLim.y0 for ax in axes)],
                        [max(ax.dataLim.x1 for ax in axes), max(ax.dataLim.y1 for ax in axes)]])
    for ax in axes:
        ax.update_datalim(corners)
        ax.autoscale_view()


def spread_x(ax: Any, histories: dict[str, History], x: str) -> None:
    """Symmetric-log x axis when routines end decades apart (EM in 10 iterations, SVI in 1000).

    ``symlog`` keeps row 0 (iteration 0, time 0), which a log axis would drop. Ticks:
    0 and whole decades from ten times the linear threshold on, so that the labels
    "0" and "10⁻⁴" never sit on top of each other.
    """
    ends = [float(h[x][-1]) for h in histories.values() if len(h) and float(h[x][-1]) > 0]
    if len(ends) < 2 or max(ends) / min(ends) < 20:
        return
    if x == "iteration":  # 0, 1, 10, 100... as plain counts
        from matplotlib.ticker import FuncFormatter  # matplotlib only where a figure is drawn

        ax.set_xscale("symlog", linthresh=1.0, linscale=1.0)
        ax.set_xticks([0.0] + [10.0 ** e for e in range(0, math.floor(math.log10(max(ends)) + 1e-9) + 1)])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    else:
        firsts = [float(v) for h in histories.values() for v in h[x].tolist() if float(v) > 0]
        linthresh = 10.0 ** math.floor(math.log10(max(min(firsts) if firsts else min(ends) / 2, 1e-6)))
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
        plot.symlog_ticks(ax, "x", linthresh, max(ends))
    ax.set_xlim(left=0, right=max(ends) * 1.15)  # iterations and times are never negative


def save(state: RunState, fig: Any, name: str) -> list[Path]:
    """Save a run's figure under ``figures/<name>`` as PNG, PDF and SVG (and the config's other formats),
    then free it. Smoke runs write the config's formats only, at low resolution (vector files cost
    about as much as the PNG each)."""
    dpi = state.config.output.dpi
    formats = list(dict.fromkeys(PAPER_FORMATS + tuple(state.config.output.formats)))
    if state.smoke:  # smoke runs check the pipeline, not the pictures
        dpi, formats = min(dpi, 60), list(state.config.output.formats)
    paths = plot.save_figure(fig, state.out_dir / "figures" / name, formats=formats, dpi=dpi)
    fig.clear()
    return paths
