"""Tests of mixtures.plot.mixture: mixtures over 1-D, 2-D and 3-D data, aspect, and density contours."""

from __future__ import annotations

import math

import pytest
import torch

from mixtures import MixtureParams, plot

DT = torch.float64


def test_plot_mixture_2d(truth, data, results, render):
    X, labels = data
    fig, axes = plot.subplots(1, 2)
    ax = plot.plot_mixture(axes[0], X, {"em": results["em"], "hard": results["hard_em"].params},
                           truth=truth, labels=labels, title="two fits")
    assert ax is axes[0]
    # two components per fit plus the truth
    assert len(ax.patches) == 6
    assert ax.get_title() == "two fits"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["em", "hard", "truth"]
    plot.plot_mixture(axes[1], X.numpy(), results["em"].params)
    render(fig, "mixture2d")


def test_plot_mixture_1d_and_3d(render):
    one_d = MixtureParams(torch.tensor([0.4, 0.6], dtype=DT), torch.tensor([[-2.0], [2.0]], dtype=DT),
                          torch.tensor([0.5, 1.0], dtype=DT), "spherical")
    X1, _ = one_d.sample(200, seed=1)
    three_d = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT),
                            torch.tensor([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]], dtype=DT),
                            torch.tensor([[1.0, 2.0, 0.5], [0.5, 0.5, 2.0]], dtype=DT), "diag")
    X3, _ = three_d.sample(200, seed=2)
    fig, axes = plot.subplots(1, 2)
    plot.plot_mixture(axes[0], X1, {"fit": one_d}, truth=one_d)
    assert len(axes[0].lines) == 2  # fitted and true densities
    plot.plot_mixture(axes[1], X3, {"fit": three_d}, dims=(0, 2))
    # marginal over dims (0, 2): variances (1, 0.5) and (0.5, 2): axis-aligned 2-sigma ellipses
    geometry = sorted((p.width, p.height, p.angle) for p in axes[1].patches)
    assert geometry[0] == pytest.approx((4.0, 4 * math.sqrt(0.5), 0.0))
    assert geometry[1] == pytest.approx((4 * math.sqrt(2.0), 4 * math.sqrt(0.5), 90.0))
    render(fig, "mixture1d3d")
    with pytest.raises(ValueError, match="D=2 features but X has 3"):
        wrong = MixtureParams(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
        plot.plot_mixture(axes[1], X3, {"wrong": wrong})


def test_plot_mixture_without_fits(render):
    fig, ax = plot.subplots()
    plot.plot_mixture(ax, torch.zeros(3, 2) + torch.arange(3.0)[:, None], None, title="points only")
    render(fig, "points")


def test_equal_aspect_keeps_a_circle_round(render):
    """A unit circle (covariance I) drawn with aspect="equal" has the same extent in display units both ways."""
    circle = MixtureParams(torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT), torch.eye(2, dtype=DT)[None])
    X = torch.tensor([[-10.0, -0.5], [10.0, 0.5]], dtype=DT)  # data 20 wide, 1 tall
    fig, axes = plot.subplots(1, 2, figsize=(8.0, 4.0))
    plot.plot_mixture(axes[0], X, {"fit": circle}, aspect="equal", feature_names=["width (m)", "height (m)"])
    plot.plot_mixture(axes[1], X, {"fit": circle})
    fig.canvas.draw()
    patch = axes[0].patches[0]
    assert patch.width == pytest.approx(4.0) and patch.height == pytest.approx(4.0)
    extent = patch.get_window_extent()
    assert extent.width == pytest.approx(extent.height, rel=0.01)
    assert axes[0].get_aspect() == 1.0 and axes[0].get_adjustable() == "datalim"
    assert axes[0].get_xlabel() == "width (m)" and axes[0].get_ylabel() == "height (m)"
    auto = axes[1].patches[0].get_window_extent()
    assert auto.height > 1.5 * auto.width  # auto aspect: the same circle drawn as a tall ellipse
    assert axes[1].get_xlabel() == "$x_0$"
    render(fig, "aspect")
    with pytest.raises(ValueError, match="aspect"):
        plot.plot_mixture(axes[0], X, {"fit": circle}, aspect="square")
    with pytest.raises(ValueError, match="feature_names"):
        plot.plot_mixture(axes[0], X, {"fit": circle}, feature_names=["one"])


def test_plot_density_contours(truth, data, results, render):
    X, _ = data
    fig, axes = plot.subplots(1, 2)
    ax = plot.plot_density_contours(axes[0], X, results["em"], masses=(0.5, 0.9))
    assert ax is axes[0]
    plot.plot_density_contours(axes[1], X, truth, per_component=True)
    assert len(axes[1].patches) == 2 * 3  # one ellipse per component and mass
    # per-component 50% region of a unit Gaussian in 2-D: radius sqrt(2 log 2)
    first = axes[1].patches[0]
    assert first.width == pytest.approx(2 * math.sqrt(2 * math.log(2.0)))
    render(fig, "contours")
    with pytest.raises(ValueError, match="masses"):
        plot.plot_density_contours(axes[0], X, truth, masses=(0.5, 1.0))


def test_hpd_contour_levels_enclose_their_mass():
    # single standard Gaussian: the 50% region is the disc of radius sqrt(2 log 2)
    gaussian = MixtureParams(torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT),
                             torch.eye(2, dtype=DT)[None])
    X, _ = gaussian.sample(50, seed=0)
    fig, ax = plot.subplots()
    plot.plot_density_contours(ax, X, gaussian, masses=(0.5,), n_samples=200_000)
    contour = [c for c in ax.collections if hasattr(c, "levels")][0]
    expected = -math.log(2 * math.pi) - math.log(2.0)  # log density at r² = 2 log 2
    assert contour.levels[0] == pytest.approx(expected, abs=0.01)
