"""mclust's views of a fitted mixture: classification, uncertainty and density, one pair of features
per panel, or every pair for D > 2 (mclust's pairs plots).

* classification: points coloured by their MAP component, with the components' ellipses and means;
* uncertainty: each point's ``1 − max_k r_nk`` (:meth:`~mixtures.core.result.FitResult.uncertainty`)
  as its colour, and as its size in mclust's three groups (below the 75% quantile of the
  uncertainties, up to the 95% quantile, above it);
* density: highest-density contours of the fitted mixture (:func:`~mixtures.plot.mixture.plot_density_contours`).

Drawing reads the parameters (or a result's ``predict_proba``); it never fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from mixtures.core.result import FitResult
from mixtures.core.validation import as_data
from mixtures.kernels import parallel
from mixtures.plot.ellipses import add_covariance_ellipse, draw_component_ellipses
from mixtures.plot.figure import subplots
from mixtures.plot.inputs import as_params, marginal, to_numpy
from mixtures.plot.mixture import plot_density_contours

#: the views :func:`plot_view` and :func:`view_figure` draw
VIEWS = ("classification", "uncertainty", "density")
#: mclust's uncertainty groups: quantiles of the uncertainties where the point size steps up
UNCERTAINTY_QUANTILES = (0.75, 0.95)
#: point sizes of the three groups (below, between, above the quantiles)
UNCERTAINTY_SIZES = (4.0, 14.0, 40.0)


def responsibilities_of(fitted: Any, X: Tensor) -> Tensor:
    """``(N, K)`` memberships of ``X`` ``(N, D)``: a result's ``predict_proba`` (its own decoder), or the
    parameters' ``responsibilities``."""
    if isinstance(fitted, FitResult):
        return fitted.predict_proba(X)
    return as_params(fitted, "fitted").responsibilities(X)


def uncertainty_sizes(uncertainty: np.ndarray) -> np.ndarray:
    """Point sizes ``(N,)`` from uncertainties ``(N,)`` in mclust's three quantile groups."""
    if uncertainty.size == 0:
        return np.zeros(0)
    cuts = np.quantile(uncertainty, UNCERTAINTY_QUANTILES)
    return np.asarray(UNCERTAINTY_SIZES)[np.searchsorted(cuts, uncertainty, side="right")]


def plot_classification(ax: Any, X: Any, fitted: Any, *, dims: Sequence[int] = (0, 1), n_std: float = 2.0,
                        resp: Tensor | None = None, feature_names: Sequence[str] | None = None, title: str = ""):
    """Points of ``X`` ``(N, D)`` coloured by their most probable component, with each component's
    ``n_std``-sigma ellipse and mean (×) in the same colour; ``fitted`` is a ``FitResult`` or
    ``MixtureParams``. ``resp`` ``(N, K)``: memberships already computed. Returns ``ax``."""
    X, params, resp = _inputs(X, fitted, resp)
    labels = to_numpy(resp.argmax(-1)).astype(int)
    points = to_numpy(X[:, list(dims)])
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=8, linewidths=0)
    shown = marginal(params, dims)
    for k in range(shown.n_components):
        colour = f"C{k % 10}"
        add_covariance_ellipse(ax, shown.locs[k], shown.covariances[k], n_std, edgecolor=colour, linewidth=1.4)
        ax.plot(*to_numpy(shown.locs[k]), "x", color="black", markersize=7, mew=1.5)
    _label(ax, feature_names, X.shape[1], dims, title)
    return ax


def plot_uncertainty(ax: Any, X: Any, fitted: Any, *, dims: Sequence[int] = (0, 1), n_std: float = 2.0,
                     resp: Tensor | None = None, feature_names: Sequence[str] | None = None, title: str = "",
                     colorbar: bool = True):
    """mclust's uncertainty plot: every point of ``X`` ``(N, D)`` coloured by its uncertainty
    ``1 − max_k r_nk`` (the scatter's colour array holds exactly those values) and sized by mclust's
    quantile groups (:data:`UNCERTAINTY_QUANTILES`), over the components' ellipses. Returns ``ax``."""
    X, params, resp = _inputs(X, fitted, resp)
    uncertainty = to_numpy(1.0 - resp.max(-1).values)
    points = to_numpy(X[:, list(dims)])
    order = np.argsort(uncertainty, kind="stable")  # the uncertain points on top
    top = max(float(uncertainty.max(initial=0.0)), 1e-12)
    scatter = ax.scatter(points[order, 0], points[order, 1], c=uncertainty[order], cmap="Greys", vmin=0.0, vmax=top,
                         s=uncertainty_sizes(uncertainty)[order], edgecolors="0.3", linewidths=0.3)
    draw_component_ellipses(ax, marginal(params, dims), n_std, edgecolor="C0", linewidth=1.0, alpha=0.7)
    if colorbar:
        ax.figure.colorbar(scatter, ax=ax, label="uncertainty 1 − max resp")
    _label(ax, feature_names, X.shape[1], dims, title)
    return ax


def plot_view(ax: Any, view: str, X: Any, fitted: Any, *, dims: Sequence[int] = (0, 1), resp: Tensor | None = None,
              feature_names: Sequence[str] | None = None, title: str = "", **options: Any):
    """One of :data:`VIEWS` on ``ax`` over the features ``dims``."""
    if view == "classification":
        return plot_classification(ax, X, fitted, dims=dims, resp=resp, feature_names=feature_names, title=title,
                                   **options)
    if view == "uncertainty":
        return plot_uncertainty(ax, X, fitted, dims=dims, resp=resp, feature_names=feature_names, title=title,
                                **options)
    if view == "density":
        plot_density_contours(ax, X, as_params(fitted, "fitted"), dims=tuple(dims), feature_names=feature_names,
                              **options)
        if title:
            ax.set_title(title)
        return ax
    raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}.")


def view_figure(view: str, X: Any, fitted: Any, *, feature_names: Sequence[str] | None = None, title: str = "",
                panel_size: float = 2.2, **options: Any):
    """A figure of one view: one panel for 2-D data, mclust's pairs plot for D > 2 (the panel in row
    ``i``, column ``j`` shows feature ``j`` against feature ``i``; the diagonal names the feature).
    1-D data have no pairs: use :func:`~mixtures.plot.mixture.plot_mixture`. Returns ``(fig, axes)``."""
    X = as_data(X, name="X")
    D = X.shape[1]
    if D < 2:
        raise ValueError(f"the {view} view needs at least 2 features; X has 1: use plot.plot_mixture for 1-D data.")
    with parallel.one_torch_thread():  # small tensors: torch's spinning threads cost more than the work
        return _view_figure(view, X, fitted, D, feature_names, title, panel_size, options)


def _view_figure(view: str, X: Tensor, fitted: Any, D: int, feature_names: Sequence[str] | None, title: str,
                 panel_size: float, options: dict[str, Any]) -> tuple[Any, np.ndarray]:
    resp = responsibilities_of(fitted, X) if view != "density" else None
    names = list(feature_names) if feature_names is not None else [f"x_{d}" for d in range(D)]
    if D == 2:
        fig, ax = subplots(1, 1, figsize=(5.8, 4.6))
        plot_view(ax, view, X, fitted, resp=resp, feature_names=names, title=title, **options)
        return fig, np.array([[ax]])
    fig, axes = subplots(D, D, squeeze=False, figsize=(panel_size * D, panel_size * D))
    if view == "uncertainty":
        options.setdefault("colorbar", False)
    if view == "density":
        options = {"grid_size": 80, "n_samples": 4000, **options}
    for i in range(D):
        for j in range(D):
            ax = axes[i, j]
            if i == j:
                ax.text(0.5, 0.5, names[i], ha="center", va="center", transform=ax.transAxes, fontsize="large")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            plot_view(ax, view, X, fitted, dims=(j, i), resp=resp, feature_names=names, **options)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(labelsize="x-small")
    if title:
        fig.suptitle(title)
    return fig, axes


def _inputs(X: Any, fitted: Any, resp: Tensor | None) -> tuple[Tensor, Any, Tensor]:
    X = as_data(X, name="X")
    params = as_params(fitted, "fitted")
    if params.n_features != X.shape[1]:
        raise ValueError(f"the fit has D={params.n_features} features but X has {X.shape[1]}.")
    if resp is None:
        resp = responsibilities_of(fitted, X)
    if resp.shape != (X.shape[0], params.n_components):
        raise ValueError(f"resp must be (N, K) = ({X.shape[0]}, {params.n_components}); got {tuple(resp.shape)}.")
    return X, params, resp


def _label(ax: Any, feature_names: Sequence[str] | None, n_features: int, dims: Sequence[int], title: str) -> None:
    names = feature_names if feature_names is not None else [f"$x_{d}$" for d in range(n_features)]
    ax.set_xlabel(names[dims[0]])
    ax.set_ylabel(names[dims[1]])
    if title:
        ax.set_title(title)
