"""The bundled CYG OB1 stars (a real data set with known outliers) and the t family's outlier rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mixtures
from mixtures.experiment.config.data import DATA_KINDS
from mixtures.experiment.config.loading import parse_config
from mixtures.experiment.datasets import make_data
from mixtures.experiment.runner import flagged_outliers
from mixtures.families import StudentTParams


def test_stars_cyg_matches_the_published_values():
    X = mixtures.data.stars_cyg()
    assert X.shape == (47, 2) and X.dtype == torch.float64
    assert X.sum(0).tolist() == pytest.approx([202.57, 235.57], abs=1e-9)
    assert X.std(0).tolist() == pytest.approx([0.2908234187, 0.5712493409], abs=1e-9)  # R's sd
    assert X[0].tolist() == [4.37, 5.23] and X[-1].tolist() == [4.42, 4.50]
    giants = X[list(mixtures.data.STARS_CYG_GIANTS)]
    assert giants.tolist() == [[3.49, 5.73], [3.49, 5.89], [3.48, 6.05], [3.49, 6.29]]
    assert int((X[:, 0] < 3.5).sum()) == 4  # the giants are the only stars this cool
    # the least-squares line of log light on log temperature (Rousseeuw & Leroy; R's lm)
    design = np.column_stack([np.ones(47), X[:, 0].numpy()])
    coefficients = np.linalg.lstsq(design, X[:, 1].numpy(), rcond=None)[0]
    assert coefficients.tolist() == pytest.approx([6.79346730, -0.41330386], abs=1e-7)


def test_the_experiment_reads_its_labels_and_known_outliers():
    assert "stars_cyg" in DATA_KINDS
    parsed = parse_config({"name": "t", "data": [{"kind": "stars_cyg"}], "model": {"n_components": 1},
                           "methods": [{"name": "EM", "method": "em"}]}, source="<test>")
    bundle = make_data(parsed.data[0], None, None)
    assert torch.equal(bundle.X, mixtures.data.stars_cyg())
    assert torch.nonzero(bundle.outliers).flatten().tolist() == [10, 19, 29, 33]
    assert torch.equal(bundle.labels, bundle.outliers.long()) and bundle.label_names == ("main sequence", "giant")


def test_is_outlying_is_the_chi_square_rule_by_hand():
    # one component, unit scale, D = 2: the 0.99 quantile of chi-square(2) is -2 log(0.01) in closed form
    threshold = -2 * math.log(0.01)
    params = StudentTParams([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]], [3.0])
    radii = torch.tensor([0.0, math.sqrt(threshold) - 1e-6, math.sqrt(threshold) + 1e-6, 10.0], dtype=torch.float64)
    X = torch.stack([radii, torch.zeros(4, dtype=torch.float64)], -1)
    assert params.is_outlying(X).tolist() == [False, False, True, True]
    # E[u | x] = (nu + D) / (nu + delta)
    expected = (3.0 + 2.0) / (3.0 + radii ** 2)
    assert torch.allclose(params.precision_weights(X)[:, 0], expected, rtol=1e-14, atol=0)
    # a point takes its most probable component's distance: (5, 0) is inside the second component
    two = StudentTParams([0.5, 0.5], [[0.0, 0.0], [5.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]] * 2, [3.0, 3.0])
    assert two.is_outlying(torch.tensor([[5.0, 0.0], [2.5, 8.0]], dtype=torch.float64)).tolist() == [False, True]
    with pytest.raises(ValueError, match="level"):
        params.is_outlying(X, level=1.0)


def test_fits_flag_the_four_giants():
    X = mixtures.data.stars_cyg()
    giants = torch.zeros(47, dtype=torch.bool)
    giants[list(mixtures.data.STARS_CYG_GIANTS)] = True
    gaussian = mixtures.fit(mixtures.GaussianMixture(1), X, "em", tol=1e-8)
    noisy = mixtures.fit(mixtures.NoisyMixture.over(X, mixtures.GaussianMixture(1)), X, "em", tol=1e-8, max_iter=500)
    t = mixtures.fit(mixtures.StudentTMixture(1), X, "em", tol=1e-6, max_iter=300)
    assert not flagged_outliers(gaussian, X).any()
    for result in (noisy, t):
        flagged = flagged_outliers(result, X)
        assert bool(flagged[giants].all()) and int(flagged.sum()) <= 7, torch.nonzero(flagged).flatten().tolist()
    assert torch.equal(flagged_outliers(noisy, X), noisy.is_noise(X))
    assert float(t.params.dof[0]) < 3  # the giants make the main sequence's t heavy-tailed


def test_the_robust_families_are_top_level_exports():
    from mixtures import families
    for name in ("StudentTMixture", "StudentTParams", "StudentTPrior", "NoisyMixture", "NoisyParams", "NoiseRegion"):
        assert getattr(mixtures, name) is getattr(families, name) and name in mixtures.__all__
