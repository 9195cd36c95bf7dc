"""Figures: covariance ellipses, density contours, traces, error curves and BIC plots.

matplotlib is imported on first use (never at import, and never pyplot), with the
Agg backend when there is no display. Every plotting function draws on an ``ax``
it is given and returns it, so panels compose into one figure::

    from mixtures import plot
    fig, axes = plot.subplots(1, 2)
    plot.plot_mixture(axes[0], X, {"em": result.params}, truth=truth)
    plot.plot_traces(axes[1], {"em": result.history}, n_points=len(X))
    plot.save_figure(fig, "results/figures/em")      # -> [.../em.png]

Drawing reads fitted parameters, histories and tables; it never fits a model.

Modules, each one idea:

* :mod:`~mixtures.plot.figure`: the lazy matplotlib import, :func:`subplots`, :func:`save_figure`;
* :mod:`~mixtures.plot.style`: colours, markers, line styles, covariance-type styles, symlog ticks;
* :mod:`~mixtures.plot.ellipses`: covariance ellipse geometry and patches;
* :mod:`~mixtures.plot.mixture`: mixtures over their data (ellipses, 1-D densities, density contours);
* :mod:`~mixtures.plot.uncertainty`: posterior-draw ellipses and weight intervals;
* :mod:`~mixtures.plot.classification`: mclust's classification, uncertainty and density views (pairs for D > 2);
* :mod:`~mixtures.plot.traces`: fit histories and the KL gap;
* :mod:`~mixtures.plot.sweeps`: a metric across a sweep, rate guides;
* :mod:`~mixtures.plot.selection`: the BIC plot;
* :mod:`~mixtures.plot.inputs`: conversions shared by the drawing modules (internal).
"""

from __future__ import annotations

from mixtures.plot.classification import VIEWS, plot_classification, plot_uncertainty, plot_view, view_figure
from mixtures.plot.ellipses import add_covariance_ellipse, ellipse_geometry
from mixtures.plot.figure import save_figure, subplots
from mixtures.plot.mixture import plot_density_contours, plot_mixture
from mixtures.plot.selection import plot_bic
from mixtures.plot.style import COVARIANCE_STYLES, LINESTYLES, MARKERS, TRUTH_STYLE, method_colors, symlog_ticks
from mixtures.plot.sweeps import add_rate_guide, plot_metric_vs
from mixtures.plot.traces import gap_is_zero, kl_gap_values, plot_kl_gap, plot_traces
from mixtures.plot.uncertainty import plot_posterior_ellipses, plot_weight_intervals

__all__ = [
    # figures
    "subplots", "save_figure",
    # style
    "method_colors", "symlog_ticks", "COVARIANCE_STYLES", "TRUTH_STYLE", "MARKERS", "LINESTYLES",
    # drawing
    "ellipse_geometry", "add_covariance_ellipse", "plot_mixture", "plot_density_contours",
    "plot_posterior_ellipses", "plot_weight_intervals",
    "plot_traces", "kl_gap_values", "gap_is_zero", "plot_kl_gap",
    "plot_metric_vs", "add_rate_guide", "plot_bic",
    "VIEWS", "plot_classification", "plot_uncertainty", "plot_view", "view_figure",
]
