"""A fit whose components are copies of each other (a saddle) must not read as converged."""

import warnings

import pytest
import torch

import mixtures
from mixtures.families.gaussian.priors import GaussianPrior


def _two_clusters():
    generator = torch.Generator().manual_seed(0)
    return torch.cat([torch.randn(300, 2, generator=generator, dtype=torch.float64),
                      torch.randn(300, 2, generator=generator, dtype=torch.float64) + 4])


def test_em_stopped_at_the_symmetric_saddle_is_flagged():
    X = _two_clusters()
    with pytest.warns(UserWarning, match="stopped at a saddle"):
        stuck = mixtures.fit(mixtures.GaussianMixture(3, "full"), X, "em", init="random", seed=0)
    good = mixtures.fit(mixtures.GaussianMixture(3, "full"), X, "em", seed=0)
    assert good.history.last("log_likelihood") - stuck.history.last("log_likelihood") > 100  # far below
    assert not stuck.converged and stuck.extras["indistinguishable_components"]
    assert any("copies of each other" in p for p in stuck.extras["problems"])
    assert good.converged and good.extras["indistinguishable_components"] == []


def test_overlapping_components_of_one_blob_are_not_copies():
    """Two components fitted to one Gaussian blob overlap, but their odds vary over the data."""
    generator = torch.Generator().manual_seed(1)
    X = torch.randn(500, 2, generator=generator, dtype=torch.float64) * torch.tensor([3.0, 1.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = mixtures.fit(mixtures.GaussianMixture(2, "full"), X, "em", seed=0)
    assert result.extras["indistinguishable_components"] == []


def test_posteriors_and_sparse_spare_components_are_not_checked():
    X = _two_clusters()
    sparse = GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.01)
    result = mixtures.fit(mixtures.GaussianMixture(6, "full", prior=sparse), X, "vb", seed=0)
    assert "indistinguishable_components" not in result.extras
