"""Tests of mixtures.plot.ellipses: the geometry of covariance ellipses and their patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mixtures import plot


def rotation(degrees: float) -> np.ndarray:
    """The ``(2, 2)`` counter-clockwise rotation by ``degrees``."""
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@pytest.mark.parametrize("n_std", [1.0, 2.0, 3.0])
def test_axis_aligned_ellipses(n_std):
    assert plot.ellipse_geometry(np.diag([4.0, 1.0]), n_std) == pytest.approx((4 * n_std, 2 * n_std, 0.0))
    width, height, angle = plot.ellipse_geometry(torch.diag(torch.tensor([1.0, 4.0])), n_std)
    assert (width, height, angle) == pytest.approx((4 * n_std, 2 * n_std, 90.0))


@pytest.mark.parametrize("degrees", [45.0, 135.0, 10.0, 170.0, 90.0, 0.0, 225.0, -45.0])
def test_rotated_ellipses_recover_their_angle_mod_180(degrees):
    R = rotation(degrees)
    cov = R @ np.diag([9.0, 1.0]) @ R.T
    width, height, angle = plot.ellipse_geometry(cov, n_std=2.0)
    assert width == pytest.approx(12.0, rel=1e-12)
    assert height == pytest.approx(4.0, rel=1e-12)
    assert 0.0 <= angle < 180.0
    assert angle == pytest.approx(degrees % 180.0, abs=1e-9)


def test_isotropic_and_degenerate_ellipses():
    width, height, angle = plot.ellipse_geometry(2.5 * np.eye(2), n_std=2.0)
    assert width == height == pytest.approx(4 * math.sqrt(2.5))
    assert angle == 0.0
    # rank one: a segment of length 2 n_std sqrt(λ) along (1, 1)
    width, height, angle = plot.ellipse_geometry(np.ones((2, 2)), n_std=1.0)
    assert (width, height, angle) == pytest.approx((2 * math.sqrt(2.0), 0.0, 45.0), abs=1e-12)


def test_geometry_agrees_with_an_eigendecomposition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        A = rng.normal(size=(2, 2))
        cov = A @ A.T + 0.1 * np.eye(2)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        width, height, angle = plot.ellipse_geometry(cov, n_std=1.5)
        assert width == pytest.approx(3.0 * math.sqrt(eigenvalues[1]), rel=1e-10)
        assert height == pytest.approx(3.0 * math.sqrt(eigenvalues[0]), rel=1e-10)
        direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        assert abs(direction @ eigenvectors[:, 1]) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("cov, message", [
    (np.eye(3), r"\(2, 2\)"),
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
    (np.array([[np.nan, 0.0], [0.0, 1.0]]), "NaN"),
])
def test_geometry_rejects_bad_matrices(cov, message):
    with pytest.raises(ValueError, match=message):
        plot.ellipse_geometry(cov)


def test_geometry_rejects_bad_n_std():
    with pytest.raises(ValueError, match="n_std"):
        plot.ellipse_geometry(np.eye(2), n_std=0.0)


def test_add_covariance_ellipse_patch(render):
    fig, ax = plot.subplots()
    R = rotation(30.0)
    cov = R @ np.diag([4.0, 0.25]) @ R.T
    patch = plot.add_covariance_ellipse(ax, torch.tensor([10.0, -5.0]), torch.as_tensor(cov), n_std=2.0,
                                        edgecolor="red")
    assert patch in ax.patches
    assert patch.center == pytest.approx((10.0, -5.0))
    assert patch.width == pytest.approx(8.0)
    assert patch.height == pytest.approx(2.0)
    assert patch.angle == pytest.approx(30.0)
    assert patch.get_facecolor()[3] == 0.0  # unfilled by default
    # the axes limits contain the whole ellipse
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    half = 2.0 * np.sqrt(np.diag(cov))
    assert x0 <= 10.0 - half[0] and x1 >= 10.0 + half[0]
    assert y0 <= -5.0 - half[1] and y1 >= -5.0 + half[1]
    render(fig, "ellipse")
    with pytest.raises(ValueError, match="mean must have 2 entries"):
        plot.add_covariance_ellipse(ax, [0.0, 0.0, 0.0], np.eye(2))
