"""Tests of mixtures.plot.style: one colour map per run, symlog ticks."""

from __future__ import annotations

import pytest

from mixtures import plot


def test_method_colors_are_one_map_for_every_plot(data, results, render):
    X, _ = data
    colors = plot.method_colors(["EM", "hard-EM", "k-means", "MAP"])
    assert colors == {"EM": "C0", "hard-EM": "C1", "k-means": "C2", "MAP": "C3"}
    fig, axes = plot.subplots(1, 3)
    # a figure showing a subset keeps each method's colour
    plot.plot_mixture(axes[0], X, {"hard-EM": results["hard_em"]}, colors=colors)
    assert axes[0].lines[0].get_color() == "C1"
    plot.plot_traces(axes[1], {"MAP": results["em"].history}, n_points=X.shape[0], colors=colors, legend=False)
    assert axes[1].lines[0].get_color() == "C3" and axes[1].get_legend() is None
    plot.plot_weight_intervals(axes[2], {"k-means": results["em"]}, colors=colors)
    assert tuple(axes[2].collections[0].get_facecolor()[0]) == pytest.approx(
        __import__("matplotlib").colors.to_rgba("C2"))
    render(fig, "colors")


def test_symlog_ticks_leave_room_between_zero_and_the_first_decade():
    fig, ax = plot.subplots()
    ax.plot([0, 1e-4, 1e-2, 3.0], [0, 1, 2, 3])
    ax.set_xscale("symlog", linthresh=1e-4)
    plot.symlog_ticks(ax, "x", 1e-4, 3.0)
    assert list(ax.get_xticks()) == pytest.approx([0.0, 1e-3, 1e-2, 1e-1, 1.0])  # none past the data
    plot.symlog_ticks(ax, "x", 1e-12, 1.0, max_ticks=5)  # many decades: thinned
    assert len(ax.get_xticks()) <= 6 and ax.get_xticks()[0] == 0.0


#: the styles BIC plots gave today's four covariance types when they were written out by hand
STYLES_OF_THE_FIRST_FOUR = {"full": ("tab:blue", "o"), "tied": ("tab:orange", "s"), "diag": ("tab:green", "^"),
                            "spherical": ("tab:red", "D")}


def test_covariance_styles_follow_the_registered_types():
    from mixtures.families.gaussian.covariance import COVARIANCE_TYPES

    assert list(plot.COVARIANCE_STYLES) == list(COVARIANCE_TYPES)
    assert {name: plot.COVARIANCE_STYLES[name] for name in STYLES_OF_THE_FIRST_FOUR} == STYLES_OF_THE_FIRST_FOUR
    assert len(set(plot.COVARIANCE_STYLES.values())) == len(COVARIANCE_TYPES)  # no two types look alike
    assert plot.COVARIANCE_STYLES.get("no such type") is None


def test_a_newly_registered_covariance_type_gets_a_style(monkeypatch, render):
    from mixtures.families.gaussian import covariance

    assert "banded" not in plot.COVARIANCE_STYLES
    # registered after mixtures.plot was imported: the styles are read from the registry, not copied
    monkeypatch.setitem(covariance.STRUCTURES, "banded", covariance.STRUCTURES["diag"])
    style = plot.COVARIANCE_STYLES["banded"]
    assert style not in [plot.COVARIANCE_STYLES[name] for name in plot.COVARIANCE_STYLES if name != "banded"]
    table = [{"n_components": k, "covariance_type": cov_type, "bic": 100.0 + 10 * k + offset}
             for cov_type, offset in (("banded", 0.0), ("full", 5.0), ("unregistered", 9.0)) for k in (1, 2, 3)]
    fig, ax = plot.subplots()
    plot.plot_bic(ax, table)
    lines = {line.get_label(): (line.get_color(), line.get_marker()) for line in ax.lines}
    assert lines["banded"] == style
    assert lines["full"] == STYLES_OF_THE_FIRST_FOUR["full"]
    # a type the registry does not know still gets its own style, after the registered ones in the legend
    assert lines["unregistered"] not in plot.COVARIANCE_STYLES.values()
    assert [label for label in lines] == ["full", "banded", "unregistered"]
    render(fig, "bic_new_type")
