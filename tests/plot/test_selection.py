"""Tests of mixtures.plot.selection: the mclust-style BIC plot."""

from __future__ import annotations

import numpy as np
import pytest

from mixtures import plot


def test_plot_bic_excludes_singular_fits_from_best(render):
    table = []
    for cov_type, offset in (("full", 0.0), ("diag", 30.0), ("spherical", 60.0)):
        for k in range(1, 6):
            table.append({"n_components": k, "covariance_type": cov_type,
                          "bic": 1000.0 - 40 * min(k, 3) + 5 * k + offset, "singular": False})
    # diag K=5 collapsed onto tied values: the lowest BIC of all, but singular
    table = [row for row in table if (row["covariance_type"], row["n_components"]) not in (("diag", 4),
                                                                                            ("diag", 5))]
    table.append({"n_components": 5, "covariance_type": "diag", "bic": 500.0, "singular": True})
    table.append({"n_components": 4, "covariance_type": "diag", "bic": float("nan"), "singular": False})
    # a restart of full K=2 that collapsed: the non-singular restart is the one shown
    table.append({"n_components": 2, "covariance_type": "full", "bic": 400.0, "singular": True})
    fig, ax = plot.subplots()
    plot.plot_bic(ax, table, title="BIC")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "best: full, K=3" in texts
    assert "singular (excluded)" in texts
    # the plotted values are -bic; the line breaks (NaN, mclust's NA) at diag K=4 (a failed fit, no BIC)
    # and at diag K=5 (singular: a hollow marker off the line)
    diag_line = [line for line in ax.lines if line.get_label() == "diag"][0]
    assert list(diag_line.get_xdata()) == [1, 2, 3, 4, 5]
    assert diag_line.get_ydata()[0] == pytest.approx(-(1000.0 - 40 + 5 + 30.0))
    assert np.isnan(diag_line.get_ydata()[3:]).all()
    hollow = [c for c in ax.collections if len(c.get_offsets()) and c.get_facecolor().size == 0]
    assert [list(c.get_offsets()[0]) for c in hollow] == [[5.0, -500.0]]
    full_line = [line for line in ax.lines if line.get_label() == "full"][0]
    assert full_line.get_ydata()[1] == pytest.approx(-(1000.0 - 80 + 10))
    assert "mclust" in ax.get_ylabel()
    render(fig, "bic")


def test_plot_bic_zooms_on_the_best_models(render):
    # K=1 and spherical far below the rest (as on Old Faithful): the y axis covers the best models
    table = []
    for cov_type, offset in (("full", 0.0), ("tied", 3.0), ("diag", 12.0), ("spherical", 900.0)):
        for k in range(1, 10):
            bic = 2314.0 + offset + (300.0 if k == 1 else 4.0 * abs(k - 3))
            table.append({"n_components": k, "covariance_type": cov_type, "bic": bic, "singular": False})
    fig, axes = plot.subplots(1, 2)
    plot.plot_bic(axes[0], table)
    low, high = axes[0].get_ylim()
    assert high > -2314.0 and low > -2400.0  # zoomed: K=1 (-2614) and spherical (-3214...) are below
    assert "spherical (below the axis)" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert any("below the axis" in t.get_text() for t in axes[0].texts)
    plot.plot_bic(axes[1], table, zoom=False)
    assert axes[1].get_ylim()[0] < -3214.0
    render(fig, "bic_zoom")


def test_plot_bic_hollow_marker_for_a_singular_only_cell(render):
    table = [{"n_components": 1, "covariance_type": "diag", "bic": 100.0, "singular": False},
             {"n_components": 2, "covariance_type": "diag", "bic": 50.0, "singular": True}]
    fig, ax = plot.subplots()
    plot.plot_bic(ax, table)
    hollow = [c for c in ax.collections if len(c.get_offsets()) and c.get_facecolor().size == 0
              and c.get_edgecolor().size]
    assert len(hollow) == 1 and list(hollow[0].get_offsets()[0]) == [2.0, -50.0]
    assert "best: diag, K=1" in [t.get_text() for t in ax.get_legend().get_texts()]
    render(fig, "bic_hollow")
