"""mclust's views (mixtures.plot.classification): the classification plot colours points by their MAP
component, the uncertainty plot's colours are exactly 1 − max responsibility (FitResult.uncertainty),
pairs plots for D > 2, and every view written as a non-empty figure file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, plot
from mixtures.data import iris
from mixtures.experiment.outputs import write_views
from mixtures.plot.classification import uncertainty_sizes


def test_uncertainty_is_one_minus_the_largest_responsibility(data, results):
    X, _ = data
    result = results["em"]
    resp = result.predict_proba(X)
    expected = 1.0 - resp.max(-1).values
    assert torch.equal(result.uncertainty(X), expected)
    assert float(expected.min()) >= 0.0 and float(expected.max()) <= 0.5  # K = 2: at most 1 - 1/K
    # by hand for one point: the joint's normalized maximum
    joint = result.params.joint_log_prob(X[:1])
    assert float(result.uncertainty(X[:1])[0]) == pytest.approx(1.0 - float(torch.softmax(joint, -1).max()),
                                                                abs=1e-15)


def test_plotted_uncertainty_and_classification_values(data, results):
    X, _ = data
    result = results["em"]
    fig, axes = plot.subplots(1, 2)
    plot.plot_uncertainty(axes[0], X, result)
    plotted = np.asarray(axes[0].collections[0].get_array())
    uncertainty = result.uncertainty(X).numpy()
    assert np.array_equal(np.sort(plotted), np.sort(uncertainty))  # drawn sorted, the uncertain on top
    order = np.argsort(uncertainty, kind="stable")
    assert np.array_equal(plotted, uncertainty[order])
    assert np.array_equal(axes[0].collections[0].get_offsets(), X.numpy()[order])
    sizes = axes[0].collections[0].get_sizes()
    assert sorted(set(sizes)) == [4.0, 14.0, 40.0]
    plot.plot_classification(axes[1], X, result)
    assert np.array_equal(np.asarray(axes[1].collections[0].get_array()), result.predict(X).numpy())
    assert len(axes[1].patches) == 2  # one ellipse per component


def test_uncertainty_sizes_follow_mclusts_quantile_groups():
    values = np.arange(100) / 100.0
    sizes = uncertainty_sizes(values)
    assert (sizes == 4.0).sum() == 75 and (sizes == 14.0).sum() == 20 and (sizes == 40.0).sum() == 5


def test_views_are_written_as_pairs_plots_for_more_than_two_features(tmp_path, data, results):
    for view in plot.VIEWS:  # 2-D: one panel
        assert plot.view_figure(view, data[0], results["em"])[1].shape == (1, 1)
    X = iris()[:, :3]
    result = mixtures.fit(GaussianMixture(2, "VEV"), X, "em", init="hc", max_iter=50)
    fig, axes = plot.view_figure("uncertainty", X, result, feature_names=["a", "b", "c"])
    assert axes.shape == (3, 3) and axes[2, 2].texts[0].get_text() == "c"
    # the panel in row i, column j shows feature j (x) against feature i (y), values 1 - max resp
    offsets = axes[2, 0].collections[0].get_offsets()
    order = np.argsort(result.uncertainty(X).numpy(), kind="stable")
    assert np.array_equal(offsets, X.numpy()[order][:, [0, 2]])
    assert np.array_equal(np.asarray(axes[0, 1].collections[0].get_array()), result.uncertainty(X).numpy()[order])
    paths = write_views(tmp_path, X, result, title="iris")
    assert [p.name for p in paths] == ["classification.png", "uncertainty.png", "density.png"]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000


def test_bad_views_are_refused(data, results):
    X, _ = data
    with pytest.raises(ValueError, match="unknown view 'pie'"):
        plot.plot_view(plot.subplots(1, 1)[1], "pie", X, results["em"])
    with pytest.raises(ValueError, match="at least 2 features"):
        plot.view_figure("classification", X[:, :1], results["em"])
    assert write_views(".", X[:, :1], results["em"]) == []
