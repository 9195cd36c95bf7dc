"""Uncertainty of a fit: covariance ellipses of posterior draws, and credible intervals of the weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixtures.plot.ellipses import add_covariance_ellipse
from mixtures.plot.inputs import as_params, marginal, to_numpy
from mixtures.plot.style import color_for

#: a posterior draw's component lighter than this is not drawn (a draw leaves unused components near 0)
_NEGLIGIBLE_WEIGHT = 1e-3


def plot_posterior_ellipses(ax: Any, X: Any, posterior: Any, *, n_draws: int = 40, n_std: float = 2.0,
                            dims: Sequence[int] = (0, 1), color: str = "C3", title: str = "", seed: int = 0):
    """Data ``X`` ``(N, D)`` with the covariance ellipses of ``n_draws`` posterior draws (uncertainty of the fit).

    ``posterior`` is a :class:`~mixtures.core.posterior.Posterior` (or a result holding
    one). Draws are taken evenly through the stored ones; each draw's K ellipses
    are drawn faintly, so where the posterior is sure they pile up into one line.
    """
    posterior = getattr(posterior, "posterior", posterior)
    if posterior is None:
        raise ValueError("plot_posterior_ellipses needs a Posterior: fit with method 'vb', 'nuts' or "
                         "'svi' with a distributional guide on a model with a prior.")
    data = to_numpy(X)
    data = data[:, None] if data.ndim == 1 else data
    if data.shape[1] < 2:
        raise ValueError("posterior ellipses need at least 2 features; use plot_weight_intervals for 1-D.")
    ax.scatter(data[:, dims[0]], data[:, dims[1]], s=6, alpha=0.35, color="0.4", linewidths=0)
    count = min(int(n_draws), posterior.n_draws)
    picks = np.linspace(0, posterior.n_draws - 1, count).round().astype(int)
    for index in picks:  # loop over draws (tens), not data points
        draw = marginal(posterior.draw(int(index)), dims)
        for k in range(draw.n_components):
            if float(draw.weights[k]) < _NEGLIGIBLE_WEIGHT:
                continue
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
        color = color_for(colors, label, position)
        posterior = getattr(result, "posterior", None)
        if posterior is None:
            weights = np.sort(to_numpy(as_params(result, label).weights))[::-1]
            ax.scatter(np.full(weights.shape, position), weights, marker="o", color=color)
        else:
            _draw_weight_intervals(ax, position, posterior, level, color)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(f"weight (posterior mean, {int(level * 100)}% interval)")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    return ax


def _draw_weight_intervals(ax: Any, position: int, posterior: Any, level: float, color: str) -> None:
    """Posterior mean weights ``(K,)``, heaviest first, with their ``level`` intervals, spread around x = position."""
    order = np.argsort(-to_numpy(posterior.weights.mean(0)))
    low, high = (to_numpy(bound)[order] for bound in posterior.credible_interval(level)["weights"])
    mean = to_numpy(posterior.weights.mean(0))[order]
    offsets = np.linspace(-0.2, 0.2, len(mean)) if len(mean) > 1 else np.zeros(1)
    ax.errorbar(position + offsets, mean, yerr=[mean - low, high - mean], fmt="o", capsize=3, color=color)
