"""PSIS k̂ of variational posteriors: log q of the draws against closed forms and Pyro's ELBO; held-out density."""

import math

import pytest
import torch

import mixtures
from mixtures.evaluation.psis import psis
from mixtures.evaluation.variational import held_out_predictive_density, importance_log_ratios, k_verdict, pareto_k
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.io.state import posterior_from_state, posterior_to_state


def _data(n=60, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.tensor([[1.0, 0, 0], [0.5, 1, 0], [0.2, 0.3, 1]], dtype=torch.float64)
    return torch.randn(n, 3, generator=generator, dtype=torch.float64) @ mixing


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_exact_one_component_posterior_has_constant_ratios_equal_to_the_evidence(covariance_type):
    """With K = 1 and exact conjugate updates q(θ) is the posterior, so log p(θ, x) − log q(θ) = log p(x)
    for every draw, and CAVI's bound is that evidence: both densities, term by term, to 1e-10."""
    X = _data()
    result = mixtures.fit(mixtures.GaussianMixture(1, covariance_type, prior=GaussianPrior()), X, "vb", seed=0,
                          reg_covar=0.0, updates="model")
    ratios = importance_log_ratios(result, X, max_draws=50)
    assert ratios.shape == (50,)
    torch.testing.assert_close(ratios, torch.full_like(ratios, result.history.last("elbo")), rtol=0, atol=1e-9)


def test_mean_field_vb_ratios_bound_its_elbo_and_give_a_finite_k():
    """E_q[log p(θ, x) − log q(θ)] ≥ CAVI's bound (which also pays for the factorized q(z))."""
    generator = torch.Generator().manual_seed(1)
    X = torch.cat([torch.randn(40, 2, generator=generator, dtype=torch.float64),
                   torch.randn(40, 2, generator=generator, dtype=torch.float64) + 1.5])
    result = mixtures.fit(mixtures.GaussianMixture(2, "full", prior=GaussianPrior()), X, "vb", seed=0)
    ratios = importance_log_ratios(result, X, max_draws=200)
    se = float(ratios.std() / math.sqrt(ratios.numel()))
    assert float(ratios.mean()) > result.history.last("elbo") - 4 * se
    k = pareto_k(result, X, max_draws=200)
    assert math.isfinite(k)


def test_svi_ratios_average_to_pyro_elbo():
    """For an autoguide the draws' log q comes from the guide's own trace; the mean ratio is the ELBO that
    Pyro's TraceEnum_ELBO estimates at the same guide (assignments enumerated: no other gap)."""
    X = _data(80, seed=2)
    model = mixtures.GaussianMixture(2, "diag", prior=GaussianPrior())
    result = mixtures.fit(model, X, "svi", guide="normal", num_steps=200, seed=0, posterior_samples=150)
    ratios = importance_log_ratios(result, X)
    tail = result.history["elbo"][-50:]  # one-particle estimates of the same expectation, near convergence
    se = float(ratios.std()) * math.sqrt(1 / ratios.numel() + 1 / tail.numel())
    assert abs(float(ratios.mean()) - float(tail.mean())) < 4 * se + 0.5
    assert math.isfinite(float(psis(ratios)[1]))


def test_refusals_and_held_out_density():
    X = _data()
    em = mixtures.fit(mixtures.GaussianMixture(2, "full"), X, "em", seed=0)
    with pytest.raises(ValueError, match="has no posterior"):
        pareto_k(em, X)
    assert held_out_predictive_density(em, X[:10]) == pytest.approx(float(em.params.log_prob(X[:10]).mean()),
                                                                     rel=1e-14)
    vb = mixtures.fit(mixtures.GaussianMixture(2, "full", prior=GaussianPrior()), X, "vb", seed=0)
    by_hand = torch.stack([vb.posterior.draw(s).log_prob(X[:10]) for s in range(vb.posterior.n_draws)])
    expected = float((torch.logsumexp(by_hand, 0) - math.log(vb.posterior.n_draws)).mean())
    assert held_out_predictive_density(vb, X[:10]) == pytest.approx(expected, rel=1e-12)
    dp = mixtures.fit(mixtures.GaussianMixture(3, "full", prior=GaussianPrior(weight_prior="dirichlet_process")), X,
                      "vb", seed=0)
    with pytest.raises(ValueError, match="without a density"):
        pareto_k(dp, X)


def test_log_density_follows_subsets_and_saving():
    X = _data()
    posterior = mixtures.fit(mixtures.GaussianMixture(2, "diag", prior=GaussianPrior()), X, "vb", seed=0).posterior
    picked = torch.tensor([3, 1, 4])
    assert torch.equal(posterior.subset(picked).log_density, posterior.log_density[picked])
    loaded = posterior_from_state(posterior_to_state(posterior, picked))
    assert torch.equal(loaded.log_density, posterior.log_density[picked])


def test_k_verdict_follows_yao_et_al():
    assert [k_verdict(k) for k in (0.2, 0.5, 0.69, 0.7, 3.0)] == ["good", "usable", "usable", "unreliable",
                                                                  "unreliable"]
    assert k_verdict(math.inf) == k_verdict(math.nan) == "unreliable (∞)"
