"""Tests of mixtures.plot.uncertainty: posterior-draw ellipses and weight intervals."""

from __future__ import annotations

import pytest
import torch

import mixtures
from mixtures import MixtureParams


def test_posterior_uncertainty_plots(tmp_path):
    from mixtures.families.gaussian.priors import GaussianPrior
    from mixtures.plot import plot_posterior_ellipses, plot_weight_intervals, save_figure, subplots

    truth = MixtureParams([0.5, 0.5], [[0.0, 0.0], [4.0, 4.0]], torch.eye(2).expand(2, 2, 2).double())
    X, _ = truth.sample(200, seed=0)
    model = mixtures.GaussianMixture(2, "full", prior=GaussianPrior())
    vb = mixtures.fit(model, X, method="vb", init=truth, posterior_samples=50)
    em = mixtures.fit(mixtures.GaussianMixture(2), X, init=truth)
    fig, axes = subplots(1, 2)
    plot_posterior_ellipses(axes[0], X, vb, n_draws=10)
    assert len(axes[0].patches) == 20  # 10 draws x 2 components
    plot_weight_intervals(axes[1], {"VB": vb, "EM": em})
    paths = save_figure(fig, tmp_path / "uncertainty")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="needs a Posterior"):
        plot_posterior_ellipses(axes[0], X, em)
