"""Three routines, one posterior: NUTS, CAVI and SVI (mvn guide) on a small conjugate problem.

Tolerances: CAVI with ``updates="model"`` is exact CAVI for the declared model;
on well-separated data q(z) is nearly exact, so CAVI is close to the posterior.
NUTS (250 draws, ESS ~ 100-250) has Monte Carlo error ~0.1 posterior sd on
means; the SVI Gaussian in unconstrained space after 1500 Adam steps is within
~0.5 sd. Standard deviations agree within 30 %.
"""

import pytest
import torch

import mixtures
from mixtures.families.gaussian.priors import GaussianPrior


@pytest.mark.slow
def test_nuts_cavi_and_svi_see_the_same_posterior():
    truth = mixtures.MixtureParams([0.4, 0.6], [[-3.0], [3.0]], [1.0, 0.5], "diag")
    X, _ = truth.sample(120, seed=3)
    model = mixtures.GaussianMixture(2, "diag", prior=GaussianPrior(weight_concentration=1.0))
    vb = mixtures.fit(model, X, method="vb", init=truth, updates="model", tol=1e-10, max_iter=500,
                      reg_covar=0.0, posterior_samples=4000)
    nuts = mixtures.fit(model, X, method="nuts", init=truth, warmup=150, num_samples=250, seed=0)
    svi = mixtures.fit(model, X, method="svi", guide="mvn", init=truth, num_steps=1500, lr=0.01,
                       eval_every=500, posterior_samples=4000, seed=0)
    reference = vb.posterior
    for name, result, mean_tolerance in (("nuts", nuts, 0.35), ("svi", svi, 0.6)):
        posterior = result.posterior
        for field in ("locs", "native", "weights"):
            ref_values, values = getattr(reference, field), getattr(posterior, field)
            ref_sd = ref_values.std(0)
            z = ((values.mean(0) - ref_values.mean(0)) / ref_sd).abs().max()
            assert z < mean_tolerance, (name, field, float(z))
            ratio = values.std(0) / ref_sd
            assert ((ratio > 0.7) & (ratio < 1.3)).all(), (name, field, ratio)
    # expected number of components in use: both, under every routine
    for result in (vb, nuts, svi):
        assert result.posterior.expected_components(0.05) == pytest.approx(2.0)
    # posterior predictive densities agree (peak density ~0.3; NUTS Monte Carlo error ~0.01)
    grid = torch.linspace(-6, 6, 25, dtype=torch.float64)
    predictive = reference.predictive_log_prob(grid).exp()
    for result in (nuts, svi):
        assert (result.posterior.predictive_log_prob(grid).exp() - predictive).abs().max() < 0.02
