"""Figures: covariance ellipses, density contours, traces, error curves and BIC plots.

matplotlib is imported inside the functions (never at module import), with the
Agg backend when there is no display. Every plotting function draws on an ``ax``
it is given and returns it, so panels compose into one figure::

    from mixtures import plot
    fig, axes = plot.subplots(1, 2)
    plot.plot_mixture(axes[0], X, {"em": result.params}, truth=truth)
    plot.plot_traces(axes[1], {"em": result.history}, n_points=len(X))
    plot.save_figure(fig, "results/figures/em")      # -> [.../em.png]

:func:`subplots` builds figures without pyplot (no global figure registry to leak
memory in long experiment runs).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.params import MixtureParams
from mixtures.result import FitResult, History
from mixtures.validation import as_data

__all__ = [
    "subplots", "ellipse_geometry", "add_covariance_ellipse", "plot_mixture", "plot_density_contours",
    "plot_traces", "plot_kl_gap", "plot_metric_vs", "add_rate_guide", "plot_bic", "save_figure",
    "method_colors", "symlog_ticks",
]

#: one colour per covariance type, shared by every BIC plot
COVARIANCE_STYLES = {
    "full": ("tab:blue", "o"),
    "tied": ("tab:orange", "s"),
    "diag": ("tab:green", "^"),
    "spherical": ("tab:red", "D"),
}
TRUTH_STYLE = {"edgecolor": "black", "linestyle": "--", "linewidth": 1.5}
#: markers cycled per method where lines may coincide (EM and an unregularized MAP)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
#: line styles cycled with the markers
LINESTYLES = ("-", "--", "-.", ":")


def method_colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per name, in order (``C0``, ``C1``, ...): a run's method→colour map.

    Every figure of a run draws a method in the colour this gives it, whichever
    subset of methods the figure shows.
    """
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(str(n) for n in names))}


def _color(colors: Mapping[str, str] | None, name: str, index: int) -> str:
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


# -- matplotlib plumbing ---------------------------------------------------------------

def _matplotlib():
    """Import matplotlib, selecting Agg when no display is available."""
    import matplotlib

    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    # Only switch while pyplot is not in use: a user's interactive session is left alone.
    if headless and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return matplotlib


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             squeeze: bool = True, **kwargs: Any):
    """``(fig, axes)`` like ``pyplot.subplots`` but without pyplot's global state.

    ``figsize`` defaults to 4.5 x 3.6 inches per panel; other keyword arguments go
    to ``Figure.subplots`` (``sharex``, ``sharey``...).
    """
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if figsize is None:
        figsize = (4.5 * ncols, 3.6 * nrows)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _as_params(value: Any, name: str) -> MixtureParams:
    if isinstance(value, FitResult):
        return value.params
    if not isinstance(value, MixtureParams):
        raise TypeError(f"{name} must be a MixtureParams or a FitResult; got {type(value).__name__}.")
    return value


def _fits_dict(fits: Any) -> dict[str, MixtureParams]:
    if fits is None:
        return {}
    if isinstance(fits, (MixtureParams, FitResult)):
        return {"fit": _as_params(fits, "fits")}
    if not isinstance(fits, Mapping):
        raise TypeError("fits must be a dict {label: MixtureParams or FitResult}; "
                        f"got {type(fits).__name__}.")
    return {str(label): _as_params(value, f"fits[{label!r}]") for label, value in fits.items()}


def _marginal(params: MixtureParams, dims: Sequence[int]) -> MixtureParams:
    """The mixture's marginal over ``dims`` (sub-vectors of means, sub-blocks of covariances)."""
    index = torch.as_tensor(list(dims), dtype=torch.long, device=params.device)
    cov = params.covariances.index_select(-1, index).index_select(-2, index)
    return MixtureParams(params.weights, params.locs.index_select(-1, index), cov, "full")


# -- ellipses -------------------------------------------------------------------------

def ellipse_geometry(cov: Any, n_std: float = 2.0) -> tuple[float, float, float]:
    """Axes and orientation of the ``n_std``-sigma ellipse of a 2-D covariance.

    Args:
        cov: ``(2, 2)`` symmetric positive semi-definite matrix.
        n_std: Mahalanobis radius of the ellipse.

    Returns:
        ``(width, height, angle_degrees)``: full length ``2 n_std sqrt(λ_max)`` of the
        major axis, ``2 n_std sqrt(λ_min)`` of the minor axis, and the angle of the
        major axis from the x axis, counter-clockwise, in ``[0, 180)`` (0 for a
        circle, whose orientation is arbitrary). The values are matplotlib
        ``Ellipse``'s ``width``, ``height`` and ``angle``.
    """
    matrix = _numpy(cov)
    if matrix.shape != (2, 2):
        raise ValueError(f"cov must be a (2, 2) matrix; got shape {matrix.shape}. "
                         "Select two dimensions (cov[..., dims][dims, ...]) first.")
    if not np.isfinite(matrix).all():
        raise ValueError("cov contains NaN or inf.")
    a, b, c = matrix[0, 0], 0.5 * (matrix[0, 1] + matrix[1, 0]), matrix[1, 1]
    scale = max(abs(a), abs(c), abs(b), np.finfo(np.float64).tiny)
    if abs(matrix[0, 1] - matrix[1, 0]) > 1e-8 * scale:
        raise ValueError(
            f"cov must be symmetric; got off-diagonal entries {matrix[0, 1]} and {matrix[1, 0]}.")
    if not (n_std > 0 and math.isfinite(n_std)):
        raise ValueError(f"n_std must be a positive number; got {n_std!r}.")
    # Closed-form eigen-decomposition of a symmetric 2 x 2 matrix.
    mid, radius = 0.5 * (a + c), math.hypot(0.5 * (a - c), b)
    lam_max, lam_min = mid + radius, mid - radius
    if lam_min < -1e-12 * scale:
        raise ValueError(f"cov must be positive semi-definite; its smallest eigenvalue is {lam_min:.3g}.")
    lam_min = max(lam_min, 0.0)
    angle = math.degrees(0.5 * math.atan2(2.0 * b, a - c)) % 180.0
    return 2.0 * n_std * math.sqrt(lam_max), 2.0 * n_std * math.sqrt(lam_min), angle


def add_covariance_ellipse(ax: Any, mean: Any, cov: Any, n_std: float = 2.0, **kwargs: Any):
    """Add the ``n_std``-sigma ellipse of ``N(mean (2,), cov (2, 2))`` to ``ax``.

    Keyword arguments go to ``matplotlib.patches.Ellipse`` (default: no fill).
    Returns the ``Ellipse`` patch.
    """
    _matplotlib()
    from matplotlib.patches import Ellipse

    center = _numpy(mean).reshape(-1)
    if center.shape != (2,):
        raise ValueError(f"mean must have 2 entries; got shape {center.shape}.")
    width, height, angle = ellipse_geometry(cov, n_std)
    kwargs.setdefault("facecolor", "none")
    if "color" not in kwargs:
        kwargs.setdefault("edgecolor", "C0")
    patch = Ellipse(xy=(float(center[0]), float(center[1])), width=width, height=height, angle=angle,
                    **kwargs)
    ax.add_patch(patch)
    # Patches do not update the data limits; the ellipse's bounding box has half-sides
    # n_std sqrt(Σ_xx) and n_std sqrt(Σ_yy).
    half = n_std * np.sqrt(np.clip(np.diag(_numpy(cov)), 0.0, None))
    ax.update_datalim(np.stack([center - half, center + half]))
    ax.autoscale_view()
    return patch


def _draw_ellipses(ax, params: MixtureParams, n_std: float, **style) -> list:
    patches = []
    weights = _numpy(params.weights)
    for k in range(params.n_components):
        if weights[k] <= 0:
            continue  # an empty component has no mass to draw
        patches.append(add_covariance_ellipse(ax, params.locs[k], params.covariances[k], n_std, **style))
    return patches


# -- mixtures over data ------------------------------------------------------------------

def plot_mixture(ax: Any, X: Any, fits: Mapping[str, MixtureParams | FitResult] | MixtureParams | None,
                 truth: MixtureParams | None = None, labels: Any = None, title: str = "",
                 n_std: float = 2.0, dims: tuple[int, int] = (0, 1), bins: int | str = "auto", *,
                 colors: Mapping[str, str] | None = None, aspect: str = "auto",
                 feature_names: Sequence[str] | None = None, legend: bool = True):
    """Data with fitted (and true) mixtures on top.

    * 2-D data (or D > 2: the dimensions ``dims``, with the mixtures' marginals):
      scatter of ``X`` ``(N, D)`` (coloured by ``labels`` ``(N,)`` if given), each
      fit's ``n_std``-sigma covariance ellipses and means in its own colour, the
      truth dashed black.
    * 1-D data: density histogram of ``X`` and each mixture's density.

    ``fits`` maps a legend label to ``MixtureParams`` or ``FitResult``; ``colors``
    maps labels to colours (default ``C0``, ``C1``... in order). ``aspect="equal"``
    draws both axes to one scale (``adjustable="datalim"``: a circle looks round),
    right when the features share units; ``"auto"`` (default) fills the panel,
    for features on different scales. ``feature_names`` label the axes (default
    ``x_0``, ``x_1``...). Returns ``ax``.
    """
    if aspect not in ("auto", "equal"):
        raise ValueError(f"aspect must be 'auto' or 'equal'; got {aspect!r}.")
    X = as_data(X, name="X")
    fits = _fits_dict(fits)
    truth = None if truth is None else _as_params(truth, "truth")
    for name, params in list(fits.items()) + ([("truth", truth)] if truth is not None else []):
        if params.n_features != X.shape[1]:
            raise ValueError(f"{name} has D={params.n_features} features but X has {X.shape[1]}.")
    if feature_names is not None and len(feature_names) != X.shape[1]:
        raise ValueError(f"feature_names has {len(feature_names)} names but X has {X.shape[1]} features.")
    if X.shape[1] == 1:
        _plot_mixture_1d(ax, X, fits, truth, bins, colors)
        ax.set_xlabel(feature_names[0] if feature_names is not None else "$x$")
    else:
        dims = tuple(int(d) for d in dims)
        if len(dims) != 2 or len(set(dims)) != 2 or not all(0 <= d < X.shape[1] for d in dims):
            raise ValueError(f"dims must be two distinct dimensions of the {X.shape[1]}-D data; got {dims}.")
        points = _numpy(X[:, list(dims)])
        if labels is not None:
            label_array = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
            if label_array.shape != (X.shape[0],):
                raise ValueError(f"labels must have shape (N,) = ({X.shape[0]},); got {label_array.shape}.")
            codes = np.unique(label_array, return_inverse=True)[1].reshape(-1)
            ax.scatter(points[:, 0], points[:, 1], c=codes, cmap="tab10", s=6, alpha=0.5,
                       vmin=0, vmax=9, linewidths=0)
        else:
            ax.scatter(points[:, 0], points[:, 1], s=6, color="0.55", alpha=0.5, linewidths=0)
        for i, (name, params) in enumerate(fits.items()):
            color = _color(colors, name, i)
            marginal = _marginal(params, dims)
            _draw_ellipses(ax, marginal, n_std, edgecolor=color, linewidth=1.5)
            locs = _numpy(marginal.locs)
            ax.plot(locs[:, 0], locs[:, 1], "x", color=color, markersize=8, mew=2, label=name)
        if truth is not None:
            marginal = _marginal(truth, dims)
            _draw_ellipses(ax, marginal, n_std, **TRUTH_STYLE)
            locs = _numpy(marginal.locs)
            ax.plot(locs[:, 0], locs[:, 1], "+", color="black", markersize=9, mew=1.5, label="truth")
        names = feature_names if feature_names is not None else [f"$x_{d}$" for d in range(X.shape[1])]
        ax.set_xlabel(names[dims[0]])
        ax.set_ylabel(names[dims[1]])
        if aspect == "equal":
            ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    if legend and (fits or truth is not None):
        ax.legend(loc="best", fontsize="small")
    return ax


def _plot_mixture_1d(ax, X: Tensor, fits: dict[str, MixtureParams], truth, bins, colors=None) -> None:
    values = _numpy(X[:, 0])
    ax.hist(values, bins=bins, density=True, color="0.8", edgecolor="0.6", label="data")
    lo, hi = values.min(), values.max()
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    grid = torch.linspace(lo - pad, hi + pad, 400, dtype=torch.float64)
    for i, (name, params) in enumerate(fits.items()):
        density = params.log_prob(grid.to(params.dtype).unsqueeze(-1)).exp()
        ax.plot(grid.numpy(), _numpy(density), color=_color(colors, name, i), linewidth=1.8, label=name)
    if truth is not None:
        density = truth.log_prob(grid.to(truth.dtype).unsqueeze(-1)).exp()
        ax.plot(grid.numpy(), _numpy(density), color="black", linestyle="--", label="truth")
    ax.set_ylabel("density")


def plot_density_contours(ax: Any, X: Any, params: MixtureParams | FitResult,
                          masses: Sequence[float] = (0.5, 0.8, 0.95), *, per_component: bool = False,
                          dims: tuple[int, int] = (0, 1), grid_size: int = 200, n_samples: int = 20000,
                          seed: int = 0, scatter: bool = True, cmap: str = "viridis",
                          feature_names: Sequence[str] | None = None):
    """Contours of the fitted density over the data (seed notebook 003).

    Mixture contours (default) are highest-density regions: the contour labelled
    ``m`` encloses probability mass ``m`` of the mixture. Its level is the
    ``(1 − m)`` quantile of ``log p(x)`` for ``x ~ p`` (``n_samples`` draws with
    ``seed``), evaluated on a ``grid_size²`` grid covering the data.

    ``per_component=True`` draws each component's own contours instead (as the
    notebook did): for a Gaussian in 2-D the mass-``m`` region is the ellipse of
    Mahalanobis radius ``sqrt(−2 log(1 − m))``.

    D > 2 shows the marginal over ``dims``. ``feature_names`` label the axes
    (default ``x_0``, ``x_1``...). Returns ``ax``.
    """
    X = as_data(X, name="X")
    params = _as_params(params, "params")
    if X.shape[1] < 2:
        raise ValueError("density contours need data with at least 2 dimensions; "
                         "use plot_mixture for 1-D data.")
    if params.n_features != X.shape[1]:
        raise ValueError(f"params have D={params.n_features} features but X has {X.shape[1]}.")
    masses = sorted(float(m) for m in masses)
    if not masses or not all(0 < m < 1 for m in masses):
        raise ValueError(f"masses must be probabilities strictly between 0 and 1; got {masses}.")
    dims = tuple(int(d) for d in dims)
    marginal = _marginal(params, dims)
    points = _numpy(X[:, list(dims)])
    if scatter:
        ax.scatter(points[:, 0], points[:, 1], s=4, color="0.55", alpha=0.4, linewidths=0)
    if per_component:
        _matplotlib()
        from matplotlib import colormaps

        colors = colormaps["tab10"]
        for k in range(marginal.n_components):
            for m in masses:
                add_covariance_ellipse(ax, marginal.locs[k], marginal.covariances[k],
                                       n_std=math.sqrt(-2.0 * math.log1p(-m)),
                                       edgecolor=colors(k % 10), linewidth=1.2)
        ax.plot(*_numpy(marginal.locs).T, "x", color="black", markersize=7, mew=1.5)
    else:
        samples, _ = marginal.sample(n_samples, seed)
        sample_log_density = marginal.log_prob(samples)
        quantiles = torch.tensor([1.0 - m for m in masses], dtype=sample_log_density.dtype)
        levels = _numpy(torch.quantile(sample_log_density, quantiles))  # decreasing with mass
        levels_sorted = np.sort(levels)
        lo = np.minimum(points.min(0), _numpy(samples).min(0))
        hi = np.maximum(points.max(0), _numpy(samples).max(0))
        pad = 0.05 * (hi - lo)
        gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid_size)
        gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid_size)
        xx, yy = np.meshgrid(gx, gy)
        grid = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], -1), dtype=marginal.dtype)
        log_density = _numpy(marginal.log_prob(grid)).reshape(xx.shape)
        _matplotlib()
        from matplotlib import colormaps

        # the low-mass (inner) end of the map is kept off its lightest colours, which vanish on white
        shades = colormaps[cmap](np.linspace(0.0, 0.75, len(levels_sorted)))
        contours = ax.contour(xx, yy, log_density, levels=levels_sorted, colors=shades, linewidths=1.3)
        mass_of_level = {float(level): m for level, m in zip(levels, masses)}
        ax.clabel(contours, fmt=lambda level: f"{mass_of_level.get(float(level), float('nan')):.0%}",
                  fontsize="x-small")
    names = feature_names if feature_names is not None else [f"$x_{d}$" for d in range(X.shape[1])]
    ax.set_xlabel(names[dims[0]])
    ax.set_ylabel(names[dims[1]])
    return ax


# -- traces ---------------------------------------------------------------------------

def _history(value: Any, name: str) -> History:
    if isinstance(value, FitResult):
        return value.history
    if isinstance(value, History):
        return value
    if isinstance(value, Mapping):
        return History.from_dict(value)
    raise TypeError(f"histories[{name!r}] must be a History, FitResult or dict of columns; "
                    f"got {type(value).__name__}.")


def _divisor(per_point: bool, n_points: Any, name: str) -> float:
    if not per_point:
        return 1.0
    if isinstance(n_points, Mapping):
        n_points = n_points.get(name)
    if n_points is None:
        raise ValueError("per_point=True divides the history's totals by the number of data points: "
                         "pass n_points=N (or a dict {label: N}), or per_point=False for totals.")
    if isinstance(n_points, bool) or not int(n_points) == n_points or n_points < 1:
        raise ValueError(f"n_points must be a positive integer; got {n_points!r}.")
    return float(n_points)


def _x_values(history: History, x: str) -> np.ndarray:
    if x not in ("iteration", "time"):
        raise ValueError(f"x must be 'iteration' or 'time'; got {x!r}.")
    if x not in history:
        raise KeyError(f"the history has no {x!r} column; columns are {list(history.columns)}.")
    return _numpy(history[x])


def plot_traces(ax: Any, histories: Mapping[str, History | FitResult], column: str = "log_likelihood",
                x: str = "iteration", per_point: bool = True, *,
                n_points: int | Mapping[str, int] | None = None,
                logx: bool = False, title: str = "", colors: Mapping[str, str] | None = None,
                legend: bool = True):
    """One line per routine: ``column`` against ``x`` (``"iteration"`` or ``"time"``).

    History columns hold totals over the data (nats); ``per_point=True`` divides
    by ``n_points`` (an int, or a dict per label) to show nats per point, the
    scale on which routines fitted to different N compare. Histories without
    ``column`` are skipped (k-means has no ELBO, say); NaN entries leave gaps.
    ``colors`` maps labels to colours (default: ``C<i>`` by position, skipped
    histories included). Returns ``ax``.
    """
    histories = {str(k): _history(v, str(k)) for k, v in histories.items()}
    drawn = 0
    for i, (name, history) in enumerate(histories.items()):
        if column not in history or len(history) == 0:
            continue
        values = _numpy(history[column]) / _divisor(per_point, n_points, name)
        ax.plot(_x_values(history, x), values, color=_color(colors, name, i),
                marker="." if len(history) < 50 else None, linewidth=1.5, label=name)
        drawn += 1
    if histories and not drawn:
        raise KeyError(f"no history has a {column!r} column.")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("iteration" if x == "iteration" else "time (s)")
    label = {"log_likelihood": "log-likelihood", "elbo": "ELBO"}.get(column, column.replace("_", " "))
    ax.set_ylabel(f"{label} " + ("(nats per point)" if per_point else "(nats, total)"))
    if title:
        ax.set_title(title)
    if drawn and legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def kl_gap_values(history: History) -> np.ndarray:
    """The recorded gap ``log_likelihood − elbo`` per history row ``(T,)`` (the ``kl`` column,
    completed from its definition where it is missing or NaN; NaN where neither is known)."""
    gap = _numpy(history["kl"]) if "kl" in history else np.full(len(history), np.nan)
    if "log_likelihood" in history and "elbo" in history:
        gap = np.where(np.isnan(gap), _numpy(history["log_likelihood"]) - _numpy(history["elbo"]), gap)
    return gap


def gap_is_zero(history: History, rtol: float = 1e-12) -> bool:
    """Whether every recorded gap is 0 up to rounding (``|gap| <= rtol |log_likelihood|``).

    True for MAP and a delta-guide SVI with enumerated assignments: their ELBO is
    the log-likelihood itself.
    """
    gap = kl_gap_values(history)
    finite = np.isfinite(gap)
    if not finite.any():
        return False
    scale = np.abs(_numpy(history["log_likelihood"])) if "log_likelihood" in history else np.ones(len(gap))
    scale = np.where(np.isfinite(scale), scale, 1.0)
    return bool((np.abs(gap[finite]) <= rtol * np.maximum(scale[finite], 1.0)).all())


def plot_kl_gap(ax: Any, histories: Mapping[str, History | FitResult], x: str = "iteration", *,
                per_point: bool = False, n_points: int | Mapping[str, int] | None = None,
                log: bool = True, title: str = "", colors: Mapping[str, str] | None = None,
                legend: bool = True):
    """The recorded gap ``log_likelihood − elbo`` against ``x``, one line per routine.

    Uses the ``kl`` column (``log_likelihood − elbo`` where it is missing or NaN):
    ``KL(q_t || p(Z | X, θ_t)) ≥ 0`` for the ``q_t`` the routine's ELBO used at that
    row. The y axis is symmetric-log (``log=True``): logarithmic above a linear
    threshold at the smallest positive gap, linear through 0, so gaps of exactly
    0 (row 0 of a mean-field SVI; MAP throughout) stay on the plot instead of
    falling to −∞ as on a log axis: exactly-zero rows of a positive trace are dots
    on the 0 line (not joined to the curve), and a routine whose gap is 0 at every
    row (:func:`gap_is_zero`) is a dotted line at 0, labelled ``"<name> (≡ 0)"`` and
    named in a note on the axis.
    ``log=False`` keeps a linear axis. Returns ``ax``.
    """
    histories = {str(k): _history(v, str(k)) for k, v in histories.items()}
    drawn = 0
    positive: list[float] = []
    zero_names: list[str] = []
    has_zero = False
    for i, (name, history) in enumerate(histories.items()):
        if len(history) == 0:
            continue
        gap = kl_gap_values(history)
        if np.isnan(gap).all():
            continue
        color = _color(colors, name, i)
        xs = _x_values(history, x)
        if gap_is_zero(history):
            ax.plot(xs, np.where(np.isfinite(gap), 0.0, np.nan), color=color, linewidth=2.2, linestyle=":",
                    label=f"{name} (≡ 0)")
            zero_names.append(name)
            drawn += 1
            continue
        scale = np.abs(_numpy(history["log_likelihood"])) if "log_likelihood" in history else np.ones(len(gap))
        exact = np.isfinite(gap) & (np.abs(gap) <= 1e-12 * np.maximum(np.nan_to_num(scale, nan=1.0), 1.0))
        gap = np.where(exact, 0.0, gap) / _divisor(per_point, n_points, name)  # rounding zeros are zeros
        positive += [float(v) for v in gap[np.isfinite(gap) & (gap > 0)]]
        has_zero = has_zero or bool(exact.any())
        if log and exact.any() and not exact.all():
            # an exactly-zero row (a mean-field q at the exact posterior) is a dot on the 0 line: joined to
            # the curve, it would draw a slope across every decade of the symlog axis
            ax.plot(xs[exact], gap[exact], linestyle="none", marker="o", markersize=4, color=color, clip_on=False,
                    zorder=3)
            gap = np.where(exact, np.nan, gap)
        ax.plot(xs, gap, color=color, linewidth=1.5, label=name)
        drawn += 1
    if log and positive:
        low, high = min(positive), max(positive)
        linthresh = 10.0 ** math.floor(math.log10(max(low, high * 1e-12)))
        ax.set_yscale("symlog", linthresh=linthresh, linscale=0.6)
        top = 2.0 * high  # headroom above the largest gap (a factor 2 on the log part)
        symlog_ticks(ax, "y", linthresh, top)
        bottom, _ = ax.get_ylim()
        if zero_names or has_zero or min(positive) < 0:
            if bottom > -linthresh:  # rounding below 0 only: the axis starts (just below) 0
                ax.set_ylim(bottom=-0.25 * linthresh)
        else:  # nothing at 0: the axis looks like a log one, from the smallest decade
            ax.set_ylim(bottom=linthresh)
        ax.set_ylim(top=top)
    if zero_names:
        from matplotlib.transforms import blended_transform_factory

        ax.text(0.02, 0.0, f"  gap ≡ 0: {', '.join(zero_names)}", transform=blended_transform_factory(
            ax.transAxes, ax.transData), ha="left", va="bottom", fontsize="x-small", color="0.3")
    ax.set_xlabel("iteration" if x == "iteration" else "time (s)")
    ax.set_ylabel("log-likelihood − ELBO " + ("(nats per point)" if per_point else "(nats)"))
    if title:
        ax.set_title(title)
    if drawn and legend:
        ax.legend(loc="best", fontsize="small")
    return ax


# -- tables ---------------------------------------------------------------------------

def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def plot_metric_vs(ax: Any, table: Iterable[Mapping[str, Any]], x: str, y: str, group: str = "method", *,
                   logx: bool = False, logy: bool = False, symlogy: bool = False, title: str = "",
                   colors: Mapping[str, str] | None = None, markers: Mapping[str, str] | None = None,
                   dodge: float = 0.0, se: str | None = None, xlabel: str | None = None,
                   ylabel: str | None = None, legend: bool = True):
    """``y`` against ``x`` from a results table (list of row dicts), one line per ``group``.

    Rows sharing ``(group, x)`` (repeats over seeds) are summarized by their mean
    with ± one standard error bars. Rows whose ``y`` (or numeric ``x``) is missing
    or not finite are skipped. String ``x`` values (initializer names, say) are
    categories, placed in order of first appearance. Returns ``ax``.

    Styling: ``colors`` and ``markers`` map group names to a colour and a marker
    (defaults cycle; markers and line styles differ per group, so coinciding
    lines stay visible). ``dodge`` shifts group ``j`` of ``G`` sideways by
    ``(j − (G−1)/2) · dodge`` in units of the smallest gap between x values (a
    factor ``10**(that · log10 gap)`` on a log axis); the lines' data keep the
    dodged positions, the tick labels stay on the true x values.

    ``symlogy``: for estimates that can come out ≤ 0 like Monte Carlo KL: a
    symmetric-log y axis (logarithmic away from 0, linear near it) when some
    value is ≤ 0, a log axis when all are positive. ``se`` names a column of
    per-row standard errors of ``y`` (e.g. ``kl_truth_se``): a mean within two of
    its standard errors (``sqrt(Σ se²) / count``) of 0 is drawn as a hollow marker,
    indistinguishable from 0. ``xlabel``/``ylabel`` replace the column names.
    """
    rows = [row for row in table]
    for row in rows:
        if group is not None and group not in row:
            raise KeyError(f"table row has no {group!r} key (group); keys are {sorted(row)}.")
    categories: list[str] = list(dict.fromkeys(
        row[x] for row in rows if isinstance(row.get(x), str) and _finite(row.get(y))))
    if categories and logx:
        raise ValueError(f"x={x!r} has categorical (string) values; logx needs numbers.")
    cells: dict[Any, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    order: list[Any] = []
    for row in rows:
        if not _finite(row.get(y)):
            continue
        if categories:
            if not isinstance(row.get(x), str):
                continue
            position = float(categories.index(row[x]))
        elif _finite(row.get(x)):
            position = float(row[x])
        else:
            continue
        name = row[group] if group is not None else y
        if name not in order:
            order.append(name)
        error = float(row[se]) if se is not None and _finite(row.get(se)) else math.nan
        cells[name][position].append((float(row[y]), error))
    names = sorted(cells, key=str) if colors is None else \
        sorted(cells, key=lambda n: (list(colors).index(n) if n in colors else len(colors), str(n)))
    positions = sorted({v for by_x in cells.values() for v in by_x})
    gaps = np.diff(np.log10(positions) if logx else np.asarray(positions)) if len(positions) > 1 else []
    unit = float(np.min(gaps)) if len(gaps) else 1.0
    for j, name in enumerate(names):
        by_x = cells[name]
        xs = np.array(sorted(by_x))
        means = np.array([np.mean([v for v, _ in by_x[v_]]) for v_ in xs])
        errors = np.array([np.std([v for v, _ in by_x[v_]], ddof=1) / math.sqrt(len(by_x[v_]))
                           if len(by_x[v_]) > 1 else 0.0 for v_ in xs])
        shift = (j - (len(names) - 1) / 2) * dodge * unit
        shown = xs * 10.0 ** shift if logx else xs + shift
        color = _color(colors, str(name), j)
        marker = markers.get(name, MARKERS[j % len(MARKERS)]) if markers else MARKERS[j % len(MARKERS)]
        style = LINESTYLES[j % len(LINESTYLES)]
        line = ax.errorbar(shown, means, yerr=errors if errors.any() else None, color=color, marker=marker,
                           markersize=5, capsize=3, linewidth=1.4, linestyle=style, label=str(name))
        if se is not None:
            mc = np.array([math.sqrt(sum(e * e for _, e in by_x[v_])) / len(by_x[v_])
                           if all(math.isfinite(e) for _, e in by_x[v_]) else math.nan for v_ in xs])
            near_zero = np.isfinite(mc) & (np.abs(means) <= 2 * mc)
            if near_zero.any():
                line[0].set_markevery([i for i in range(len(xs)) if not near_zero[i]])
                ax.scatter(shown[near_zero], means[near_zero], marker=marker, s=30, facecolors="white",
                           edgecolors=color, linewidths=1.3, zorder=3)
    if categories:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
    if logx:
        ax.set_xscale("log")
    if not categories and dodge and positions:
        ax.set_xticks(positions)
        ax.set_xticklabels([f"{v:g}" for v in positions])
        ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    elif symlogy:
        signed = np.array([v for by_x in cells.values() for pairs in by_x.values() for v, _ in pairs])
        values = np.abs(signed)
        values = values[values > 0]
        if signed.size and (signed > 0).all():
            ax.set_yscale("log")  # nothing at or below 0: a plain log axis
        elif values.size:
            linthresh = 10.0 ** math.floor(math.log10(float(np.percentile(values, 10))))
            ax.set_yscale("symlog", linthresh=linthresh, linscale=0.5)
            symlog_ticks(ax, "y", linthresh, float(values.max()), max_ticks=6)
    ax.set_xlabel(xlabel if xlabel is not None else x.replace("_", " "))
    ax.set_ylabel(ylabel if ylabel is not None else y.replace("_", " "))
    if title:
        ax.set_title(title)
    if cells and legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def add_rate_guide(ax: Any, xs: Sequence[float], anchor: float, power: float = -0.5, *,
                   label: str = "∝ 1/√n", at: str = "first") -> Any:
    """A grey guide line ``y ∝ x**power`` through ``(x_at, anchor)`` over ``xs``.

    ``at="first"`` anchors it at the smallest x, ``"last"`` at the largest. The dash
    pattern depends on ``power`` (1/√n dashed, 1/n dotted...). Returns the line.
    """
    xs = np.asarray(sorted(float(v) for v in xs if _finite(v) and float(v) > 0))
    if xs.size < 2 or not (_finite(anchor) and anchor > 0):
        return None
    ref = xs[0] if at == "first" else xs[-1]
    dashes = (0, (4, 3)) if power == -0.5 else (0, (1, 2)) if power == -1.0 else (0, (6, 2, 1, 2))
    (line,) = ax.plot(xs, anchor * (xs / ref) ** power, color="0.45", linestyle=dashes, linewidth=1.1,
                      label=label, zorder=1)
    return line


def plot_bic(ax: Any, table: Iterable[Mapping[str, Any]], *, title: str = "", mark_best: bool = True,
             zoom: bool = True):
    """BIC against the number of components, mclust style.

    ``table`` rows have ``n_components``, ``covariance_type``, ``bic`` (our sign,
    lower is better) and optionally ``singular`` (a covariance collapsed onto the
    ``reg_covar`` floor, see :func:`mixtures.metrics.is_singular`). Plotted is
    ``−bic`` (mclust's sign: higher is better), one line per covariance type.
    Singular fits are hollow markers off the line, which breaks there (mclust
    reports them as NA and leaves a gap), and can never be "best"; failed fits
    (no BIC) leave a gap too. Where several rows share ``(covariance_type,
    n_components)`` (restarts), the best non-singular one is shown. The best fit
    gets a star.

    ``zoom``: the y axis covers the best models (the top 60% of the regular
    fits, at least five), so that K = 1 and spherical fits far below do not
    squash the differences that decide the choice; a note says when values lie
    below the axis, and types wholly below it are marked so in the legend.

    Returns ``ax``.
    """
    best_rows: dict[tuple[str, int], tuple[bool, float]] = {}
    for row in table:
        missing = {"n_components", "covariance_type", "bic"} - set(row)
        if missing:
            raise KeyError(f"plot_bic table rows need keys {sorted(missing)}; got {sorted(row)}.")
        if not _finite(row["bic"]):
            continue  # failed fit: nothing to plot
        key = (str(row["covariance_type"]), int(row["n_components"]))
        candidate = (bool(row.get("singular", False)), float(row["bic"]))
        # non-singular beats singular, then lower BIC
        if key not in best_rows or candidate < best_rows[key]:
            best_rows[key] = candidate
    types = sorted({key[0] for key in best_rows},
                   key=lambda name: (list(COVARIANCE_STYLES).index(name) if name in COVARIANCE_STYLES
                                     else len(COVARIANCE_STYLES), name))
    regular = sorted((-bic for bad, bic in best_rows.values() if not bad), reverse=True)
    low = None
    if zoom and len(regular) > 4:
        cut = regular[min(len(regular) - 1, max(4, math.ceil(0.6 * len(regular)) - 1))]
        span = max(regular[0] - cut, 1e-9)
        low = cut - 0.12 * span
        if low <= regular[-1]:
            low = None  # everything fits: no zoom needed
    all_ks = sorted({k for _, k in best_rows})
    best: tuple[float, int, str] | None = None
    for j, cov_type in enumerate(types):
        color, marker = COVARIANCE_STYLES.get(cov_type, (f"C{(4 + j) % 10}", "v"))
        ks = [k for k in range(min(all_ks), max(all_ks) + 1)]
        entries = [best_rows.get((cov_type, k)) for k in ks]
        scores = np.array([-e[1] if e is not None else np.nan for e in entries])
        singular = np.array([e is not None and e[0] for e in entries])
        line_scores = np.where(singular, np.nan, scores)  # mclust's NA: the line breaks there
        off_scale = low is not None and bool(np.all(scores[np.isfinite(scores)] < low))
        ax.plot(ks, line_scores, color=color, linewidth=1.3, marker=marker, markersize=5.5,
                label=cov_type + (" (below the axis)" if off_scale else ""))
        if singular.any():
            ax.scatter(np.array(ks)[singular], scores[singular], facecolors="none", edgecolors=color,
                       marker=marker, s=30, linewidths=1.3, zorder=3)
        for k, score, is_bad in zip(ks, scores, singular):
            if np.isfinite(score) and not is_bad and (best is None or score > best[0]):
                best = (float(score), k, cov_type)
    if any(flag for flag, _ in best_rows.values()):
        ax.scatter([], [], facecolors="none", edgecolors="0.3", marker="o", label="singular (excluded)")
    if mark_best and best is not None:
        ax.scatter([best[1]], [best[0]], marker="*", s=220, color="gold", edgecolors="black", zorder=4,
                   label=f"best: {best[2]}, K={best[1]}")
    if low is not None:
        top = regular[0] + 0.08 * (regular[0] - low)
        ax.set_ylim(low, top)
        ax.text(0.99, 0.01, "lower values below the axis", transform=ax.transAxes, ha="right", va="bottom",
                fontsize="x-small", color="0.35")
    if best_rows:
        ax.set_xticks(all_ks)
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("number of components K")
    ax.set_ylabel("BIC (mclust sign: −BIC, higher is better)")
    if title:
        ax.set_title(title)
    return ax


# -- output ---------------------------------------------------------------------------

_KNOWN_SUFFIXES = {".png", ".pdf", ".svg", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


def plot_posterior_ellipses(ax: Any, X: Any, posterior: Any, *, n_draws: int = 40, n_std: float = 2.0,
                            dims: Sequence[int] = (0, 1), color: str = "C3", title: str = "", seed: int = 0):
    """Data with the covariance ellipses of ``n_draws`` posterior draws (uncertainty of the fit).

    ``posterior`` is a :class:`~mixtures.posterior.Posterior` (or a result holding
    one). Draws are taken evenly through the stored ones; each draw's K ellipses
    are drawn faintly, so where the posterior is sure they pile up into one line.
    """
    posterior = getattr(posterior, "posterior", posterior)
    if posterior is None:
        raise ValueError("plot_posterior_ellipses needs a Posterior: fit with method 'vb', 'nuts' or "
                         "'svi' with a distributional guide on a model with a prior.")
    data = _numpy(X)
    data = data[:, None] if data.ndim == 1 else data
    if data.shape[1] < 2:
        raise ValueError("posterior ellipses need at least 2 features; use plot_weight_intervals for 1-D.")
    ax.scatter(data[:, dims[0]], data[:, dims[1]], s=6, alpha=0.35, color="0.4", linewidths=0)
    count = min(int(n_draws), posterior.n_draws)
    picks = np.linspace(0, posterior.n_draws - 1, count).round().astype(int)
    for index in picks:  # loop over draws (tens), not data points
        draw = _marginal(posterior.draw(int(index)), dims)
        for k in range(draw.n_components):
            if float(draw.weights[k]) < 1e-3:
                continue  # components a draw does not use
            add_covariance_ellipse(ax, draw.locs[k], draw.covariances[k], n_std, edgecolor=color,
                                   alpha=0.15, linewidth=0.8)
    if title:
        ax.set_title(title)
    return ax


def plot_weight_intervals(ax: Any, results: Mapping[str, Any], *, level: float = 0.9, title: str = "",
                          colors: Mapping[str, str] | None = None):
    """Mixing weights per routine: posterior mean with a ``level`` credible interval.

    ``results`` maps labels to results; point-estimate routines (no posterior) are
    drawn as plain markers. Components are shown sorted by weight within each
    routine (labels are arbitrary across routines). ``colors`` maps labels to colours.
    """
    labels = list(results)
    if not labels:
        raise ValueError("plot_weight_intervals needs at least one result.")
    for position, label in enumerate(labels):
        result = results[label]
        posterior = getattr(result, "posterior", None)
        if posterior is None:
            weights = np.sort(_numpy(_as_params(result, label).weights))[::-1]
            ax.scatter(np.full(weights.shape, position), weights, marker="o",
                       color=_color(colors, label, position))
            continue
        order = np.argsort(-_numpy(posterior.weights.mean(0)))
        low, high = (_numpy(bound)[order] for bound in posterior.credible_interval(level)["weights"])
        mean = _numpy(posterior.weights.mean(0))[order]
        offsets = np.linspace(-0.2, 0.2, len(mean)) if len(mean) > 1 else np.zeros(1)
        ax.errorbar(position + offsets, mean, yerr=[mean - low, high - mean], fmt="o", capsize=3,
                    color=_color(colors, label, position))
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(f"weight (posterior mean, {int(level * 100)}% interval)")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    return ax


def save_figure(fig: Any, path: str | os.PathLike, formats: Sequence[str] = ("png",), dpi: int = 150
                ) -> list[Path]:
    """Write ``fig`` as ``<path>.<format>`` for each format, atomically.

    Each file is rendered to a temporary file in the destination directory and
    renamed over the target, so readers never see a half-written figure. A
    suffix already on ``path`` that names an image format is dropped
    (``"fig.png"`` and ``"fig"`` give the same files). Parent directories are
    created. PDFs carry no creation date, so reruns give identical files.

    Returns:
        The written paths, in the order of ``formats``.
    """
    if isinstance(formats, str):
        formats = (formats,)
    path = Path(path)
    if path.suffix.lower() in _KNOWN_SUFFIXES:
        path = path.with_suffix("")
    supported = fig.canvas.get_supported_filetypes()
    for fmt in formats:
        if fmt not in supported:
            raise ValueError(f"unsupported figure format {fmt!r}; choose from {sorted(supported)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = path.parent / f"{path.name}.{fmt}"
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{fmt}.tmp", dir=path.parent)
        os.close(handle)
        try:
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            fig.savefig(temporary, format=fmt, dpi=dpi, metadata=metadata)
            os.replace(temporary, target)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        written.append(target)
    return written
