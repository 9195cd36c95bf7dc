"""Tests of mixtures.plot.sweeps: a metric across a sweep (repeats, categories, dodging) and rate guides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixtures import plot


def test_plot_metric_vs_averages_repeats(render):
    table = []
    for method, slope in (("em", 1.0), ("svi", 2.0)):
        for n in (100, 1000, 10000):
            for seed in range(3):
                table.append({"method": method, "n": n, "seed": seed,
                              "means_rmse": slope / math.sqrt(n) * (1 + 0.1 * seed)})
    table.append({"method": "em", "n": 50, "means_rmse": float("nan")})  # skipped
    fig, ax = plot.subplots()
    plot.plot_metric_vs(ax, table, x="n", y="means_rmse", logx=True, logy=True)
    em_line = ax.lines[0]
    np.testing.assert_allclose(em_line.get_xdata(), [100, 1000, 10000])
    np.testing.assert_allclose(em_line.get_ydata(), 1.1 / np.sqrt([100, 1000, 10000]), rtol=1e-12)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["em", "svi"]
    render(fig, "metric")
    with pytest.raises(KeyError, match="group"):
        plot.plot_metric_vs(ax, [{"n": 1, "y": 2}], x="n", y="y")


def test_plot_metric_vs_categorical_x(render):
    table = [{"method": "em", "init": init, "ll": value}
             for init, value in (("kmeans", 1.0), ("random", 3.0), ("kmeans", 2.0), ("kmeans++", 0.5))]
    fig, ax = plot.subplots()
    plot.plot_metric_vs(ax, table, x="init", y="ll")
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.5, 3.0, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["kmeans", "random", "kmeans++"]
    render(fig, "metric_categorical")


def test_plot_metric_vs_dodges_coinciding_methods_and_marks_estimates_near_zero(render):
    table = []
    for method in ("EM", "MAP"):  # identical values: EM would hide behind MAP without dodging
        for n in (100, 1000, 10000):
            for seed in range(2):
                table.append({"method": method, "n": n, "kl_truth": 1.0 / n if n < 10000 else 1e-5 * (-1) ** seed,
                              "kl_truth_se": 1e-4})
    fig, ax = plot.subplots()
    plot.plot_metric_vs(ax, table, "n", "kl_truth", logx=True, symlogy=True, dodge=0.1, se="kl_truth_se",
                        colors={"EM": "C0", "MAP": "C3"}, markers={"EM": "o", "MAP": "s"},
                        xlabel="training points n", ylabel="KL(truth ‖ fit) (nats)")
    em, map_ = (container.lines[0] for container in ax.containers)
    assert em.get_marker() == "o" and map_.get_marker() == "s" and em.get_linestyle() != map_.get_linestyle()
    assert em.get_color() == "C0" and map_.get_color() == "C3"
    ratio = np.asarray(map_.get_xdata()) / np.asarray(em.get_xdata())
    np.testing.assert_allclose(ratio, 10 ** 0.1)  # multiplicative dodge on a log axis: one decade x 0.1
    np.testing.assert_allclose(np.sort([t for t in ax.get_xticks() if 50 < t < 20000]), [100, 1000, 10000])
    assert ax.get_yscale() == "symlog" and ax.get_xlabel() == "training points n"
    # n = 10000: mean 0 with Monte Carlo se 1e-4/sqrt(2): within 2 SE of 0, drawn hollow
    hollow = [c for c in ax.collections if len(c.get_offsets()) and len(c.get_facecolor())
              and np.allclose(c.get_facecolor()[0][:3], 1.0)]
    assert len(hollow) == 2 and all(c.get_offsets()[0][0] > 5000 for c in hollow)
    line = plot.add_rate_guide(ax, [100, 1000, 10000], 1e-2, -1.0, label="∝ 1/n")
    np.testing.assert_allclose(line.get_ydata(), [1e-2, 1e-3, 1e-4])
    assert plot.add_rate_guide(ax, [100], 1.0) is None
    render(fig, "dodge")
