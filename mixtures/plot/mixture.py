"""Mixtures over their data: ellipses and means on a scatter (2-D), densities on a histogram (1-D),
and highest-density contours."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.result import FitResult
from mixtures.core.validation import as_data
from mixtures.families.gaussian.params import MixtureParams
from mixtures.plot.ellipses import add_covariance_ellipse, draw_component_ellipses
from mixtures.plot.figure import load_matplotlib
from mixtures.plot.inputs import as_params, fits_dict, marginal, to_numpy
from mixtures.plot.style import TRUTH_STYLE, color_for


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
    fits = fits_dict(fits)
    truth = None if truth is None else as_params(truth, "truth")
    _check_features(X.shape[1], fits, truth, feature_names)
    if X.shape[1] == 1:
        _plot_mixture_1d(ax, X, fits, truth, bins, colors)
        ax.set_xlabel(feature_names[0] if feature_names is not None else "$x$")
    else:
        dims = _checked_dims(dims, X.shape[1])
        _scatter_data(ax, to_numpy(X[:, list(dims)]), labels)
        for i, (name, params) in enumerate(fits.items()):
            color = color_for(colors, name, i)
            _draw_mixture_2d(ax, marginal(params, dims), n_std, {"edgecolor": color, "linewidth": 1.5},
                             "x", color=color, markersize=8, mew=2, label=name)
        if truth is not None:
            _draw_mixture_2d(ax, marginal(truth, dims), n_std, TRUTH_STYLE,
                             "+", color="black", markersize=9, mew=1.5, label="truth")
        _label_axes(ax, feature_names, X.shape[1], dims)
        if aspect == "equal":
            ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    if legend and (fits or truth is not None):
        ax.legend(loc="best", fontsize="small")
    return ax


def _check_features(n_features: int, fits: dict[str, MixtureParams], truth: MixtureParams | None,
                    feature_names: Sequence[str] | None) -> None:
    for name, params in list(fits.items()) + ([("truth", truth)] if truth is not None else []):
        if params.n_features != n_features:
            raise ValueError(f"{name} has D={params.n_features} features but X has {n_features}.")
    if feature_names is not None and len(feature_names) != n_features:
        raise ValueError(f"feature_names has {len(feature_names)} names but X has {n_features} features.")


def _checked_dims(dims: Sequence[int], n_features: int) -> tuple[int, int]:
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or len(set(dims)) != 2 or not all(0 <= d < n_features for d in dims):
        raise ValueError(f"dims must be two distinct dimensions of the {n_features}-D data; got {dims}.")
    return dims


def _scatter_data(ax: Any, points: np.ndarray, labels: Any) -> None:
    """The data ``points`` ``(N, 2)``, grey, or coloured by ``labels`` ``(N,)`` (any hashable values)."""
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, color="0.55", alpha=0.5, linewidths=0)
        return
    label_array = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if label_array.shape != (points.shape[0],):
        raise ValueError(f"labels must have shape (N,) = ({points.shape[0]},); got {label_array.shape}.")
    codes = np.unique(label_array, return_inverse=True)[1].reshape(-1)
    ax.scatter(points[:, 0], points[:, 1], c=codes, cmap="tab10", s=6, alpha=0.5, vmin=0, vmax=9, linewidths=0)


def _draw_mixture_2d(ax: Any, params: MixtureParams, n_std: float, ellipse_style: Mapping[str, Any],
                     mean_marker: str, **mean_style: Any) -> None:
    """A 2-D mixture's ellipses, then its means ``(K, 2)`` as ``mean_marker`` (the legend entry)."""
    draw_component_ellipses(ax, params, n_std, **ellipse_style)
    locs = to_numpy(params.locs)
    ax.plot(locs[:, 0], locs[:, 1], mean_marker, **mean_style)


def _label_axes(ax: Any, feature_names: Sequence[str] | None, n_features: int, dims: Sequence[int]) -> None:
    names = feature_names if feature_names is not None else [f"$x_{d}$" for d in range(n_features)]
    ax.set_xlabel(names[dims[0]])
    ax.set_ylabel(names[dims[1]])


def _plot_mixture_1d(ax: Any, X: Tensor, fits: dict[str, MixtureParams], truth: MixtureParams | None,
                     bins: int | str, colors: Mapping[str, str] | None = None) -> None:
    """Density histogram of ``X`` ``(N, 1)`` with each mixture's density over a grid covering it."""
    values = to_numpy(X[:, 0])
    ax.hist(values, bins=bins, density=True, color="0.8", edgecolor="0.6", label="data")
    lo, hi = values.min(), values.max()
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    grid = torch.linspace(lo - pad, hi + pad, 400, dtype=torch.float64)
    for i, (name, params) in enumerate(fits.items()):
        density = params.log_prob(grid.to(params.dtype).unsqueeze(-1)).exp()
        ax.plot(grid.numpy(), to_numpy(density), color=color_for(colors, name, i), linewidth=1.8, label=name)
    if truth is not None:
        density = truth.log_prob(grid.to(truth.dtype).unsqueeze(-1)).exp()
        ax.plot(grid.numpy(), to_numpy(density), color="black", linestyle="--", label="truth")
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
    params = as_params(params, "params")
    if X.shape[1] < 2:
        raise ValueError("density contours need data with at least 2 dimensions; "
                         "use plot_mixture for 1-D data.")
    if params.n_features != X.shape[1]:
        raise ValueError(f"params have D={params.n_features} features but X has {X.shape[1]}.")
    masses = sorted(float(m) for m in masses)
    if not masses or not all(0 < m < 1 for m in masses):
        raise ValueError(f"masses must be probabilities strictly between 0 and 1; got {masses}.")
    dims = _checked_dims(dims, X.shape[1])
    shown = marginal(params, dims)
    points = to_numpy(X[:, list(dims)])
    if scatter:
        ax.scatter(points[:, 0], points[:, 1], s=4, color="0.55", alpha=0.4, linewidths=0)
    if per_component:
        _draw_component_mass_ellipses(ax, shown, masses)
    else:
        _draw_mass_contours(ax, shown, points, masses, grid_size, n_samples, seed, cmap)
    _label_axes(ax, feature_names, X.shape[1], dims)
    return ax


def _draw_component_mass_ellipses(ax: Any, params: MixtureParams, masses: Sequence[float]) -> None:
    """Each component's mass-``m`` ellipse, for each ``m``: a 2-D Gaussian's mass-``m`` region has
    Mahalanobis radius ``sqrt(−2 log(1 − m))``."""
    palette = load_matplotlib().colormaps["tab10"]
    for k in range(params.n_components):
        for m in masses:
            add_covariance_ellipse(ax, params.locs[k], params.covariances[k], n_std=math.sqrt(-2.0 * math.log1p(-m)),
                                   edgecolor=palette(k % 10), linewidth=1.2)
    ax.plot(*to_numpy(params.locs).T, "x", color="black", markersize=7, mew=1.5)


def _draw_mass_contours(ax: Any, params: MixtureParams, points: np.ndarray, masses: Sequence[float],
                        grid_size: int, n_samples: int, seed: int, cmap: str) -> None:
    """Highest-density contours of a 2-D mixture over ``points`` ``(N, 2)``, labelled by mass."""
    samples, _ = params.sample(n_samples, seed)
    sample_log_density = params.log_prob(samples)
    quantiles = torch.tensor([1.0 - m for m in masses], dtype=sample_log_density.dtype)
    levels = to_numpy(torch.quantile(sample_log_density, quantiles))  # decreasing with mass
    xx, yy = _grid_covering(np.concatenate([points, to_numpy(samples)]), grid_size)
    grid = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], -1), dtype=params.dtype)
    log_density = to_numpy(params.log_prob(grid)).reshape(xx.shape)
    levels_sorted = np.sort(levels)  # contour wants increasing levels
    # the low-mass (inner) end of the map is kept off its lightest colours, which vanish on white
    shades = load_matplotlib().colormaps[cmap](np.linspace(0.0, 0.75, len(levels_sorted)))
    contours = ax.contour(xx, yy, log_density, levels=levels_sorted, colors=shades, linewidths=1.3)
    mass_of_level = {float(level): m for level, m in zip(levels, masses)}
    ax.clabel(contours, fmt=lambda level: f"{mass_of_level.get(float(level), float('nan')):.0%}",
              fontsize="x-small")


def _grid_covering(points: np.ndarray, grid_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Meshgrid ``(grid_size, grid_size)`` x 2 over the bounding box of ``points`` ``(M, 2)``, padded by 5%."""
    lo, hi = points.min(0), points.max(0)
    pad = 0.05 * (hi - lo)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid_size)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid_size)
    return np.meshgrid(gx, gy)
