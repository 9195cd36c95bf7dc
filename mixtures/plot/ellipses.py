"""Covariance ellipses: the geometry of a 2 x 2 covariance and the patch that draws it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mixtures.families.gaussian.params import MixtureParams
from mixtures.plot.figure import load_matplotlib
from mixtures.plot.inputs import to_numpy


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
    matrix = to_numpy(cov)
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
    ellipse_class = load_matplotlib("patches").Ellipse
    center = to_numpy(mean).reshape(-1)
    if center.shape != (2,):
        raise ValueError(f"mean must have 2 entries; got shape {center.shape}.")
    width, height, angle = ellipse_geometry(cov, n_std)
    kwargs.setdefault("facecolor", "none")
    if "color" not in kwargs:
        kwargs.setdefault("edgecolor", "C0")
    patch = ellipse_class(xy=(float(center[0]), float(center[1])), width=width, height=height, angle=angle,
                          **kwargs)
    ax.add_patch(patch)
    # Patches do not update the data limits; the ellipse's bounding box has half-sides
    # n_std sqrt(Σ_xx) and n_std sqrt(Σ_yy).
    half = n_std * np.sqrt(np.clip(np.diag(to_numpy(cov)), 0.0, None))
    ax.update_datalim(np.stack([center - half, center + half]))
    ax.autoscale_view()
    return patch


def draw_component_ellipses(ax: Any, params: MixtureParams, n_std: float, **style: Any) -> list:
    """One ellipse per component of a 2-D mixture (means ``(K, 2)``, covariances ``(K, 2, 2)``)
    with non-zero weight, in ``style``; returns the patches."""
    patches = []
    weights = to_numpy(params.weights)
    for k in range(params.n_components):
        if weights[k] <= 0:
            continue  # an empty component has no mass to draw
        patches.append(add_covariance_ellipse(ax, params.locs[k], params.covariances[k], n_std, **style))
    return patches
