"""The Methods section's prior weight: shares worked by hand, and VB's exact posterior counts."""

import pytest
import torch

import mixtures
from mixtures.experiment.report.prior_weight import prior_shares
from mixtures.families.gaussian.priors import GaussianPrior


def _data():
    generator = torch.Generator().manual_seed(0)
    return torch.cat([torch.randn(80, 2, generator=generator, dtype=torch.float64),
                      torch.randn(20, 2, generator=generator, dtype=torch.float64) + 5])


def test_shares_worked_by_hand():
    X = _data()
    prior = GaussianPrior(weight_concentration=0.5, mean_precision=1.0, degrees_of_freedom=2.0,
                          covariance_prior=[[2.0, 0.0], [0.0, 2.0]])
    weights = torch.tensor([0.8, 0.2], dtype=torch.float64)
    covariances = torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    shares = prior_shares(prior.resolve(X, 2, "full"), weights, covariances, 100)
    # N_k = (80, 20); the smallest component: α/(α+20), β₀/(β₀+20), ν₀/(ν₀+20), tr Ψ₀/(tr Ψ₀ + 20·tr I)
    assert shares == pytest.approx({"weights": 0.5 / 20.5, "means": 1 / 21, "dof": 2 / 22, "scale": 4 / 44},
                                   rel=1e-14)
    # one shared covariance pools all N = 100 points
    tied = prior_shares(prior.resolve(X, 2, "tied"), weights, torch.eye(2, dtype=torch.float64)[None], 100)
    assert tied["dof"] == pytest.approx(2 / 102, rel=1e-14) and tied["scale"] == pytest.approx(4 / 204, rel=1e-14)
    # spherical: a scalar Ψ₀ counts once per dimension; diag: the variances add up
    spherical = prior_shares(GaussianPrior(covariance_prior=3.0).resolve(X, 2, "spherical"), weights,
                             covariances, 100)
    assert spherical["scale"] == pytest.approx(6 / (6 + 40), rel=1e-14)
    diag = prior_shares(GaussianPrior(covariance_prior=[1.0, 3.0]).resolve(X, 2, "diag"), weights, covariances, 100)
    assert diag["scale"] == pytest.approx(4 / 44, rel=1e-14)
    assert "weights" not in prior_shares(GaussianPrior(weight_prior="dirichlet_process").resolve(X, 2, "full"),
                                         weights, covariances, 100)


def test_mean_and_dof_shares_equal_vb_posterior_counts():
    """VB's q has β_k = β₀ + N_k and ν_k = ν₀ + N_k: the shares are β₀/β_k and ν₀/ν_k exactly."""
    X = _data()
    prior = GaussianPrior(weight_concentration=1.0, mean_precision=0.5, degrees_of_freedom=3.0)
    result = mixtures.fit(mixtures.GaussianMixture(2, "full", prior=prior), X, method="vb", seed=0)
    q = result.extras["variational"]
    counts = q["mean_precision"] - 0.5
    shares = prior_shares(prior.resolve(X, 2, "full"), counts / X.shape[0], result.params.covariances, X.shape[0])
    assert shares["means"] == pytest.approx(float((0.5 / q["mean_precision"]).max()), rel=1e-12)
    assert shares["dof"] == pytest.approx(float((3.0 / q["degrees_of_freedom"]).max()), rel=1e-12)
    assert shares["weights"] == pytest.approx(float((1.0 / q["weight_concentration"]).max()), rel=1e-12)
