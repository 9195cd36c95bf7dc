"""Stochastic VB: CAVI when a step is the whole data, the batch optimum from minibatches, clear refusals."""

import pytest
import torch

import mixtures
from mixtures.families.gaussian.priors import GaussianPrior


@pytest.fixture(scope="module")
def problem():
    generator = torch.Generator().manual_seed(0)
    X = torch.cat([torch.randn(600, 2, generator=generator, dtype=torch.float64),
                   torch.randn(400, 2, generator=generator, dtype=torch.float64) + 3])
    init = mixtures.fit(mixtures.GaussianMixture(2, "full"), X, "kmeans", seed=0).params
    return X, init, mixtures.GaussianMixture(2, "full", prior=GaussianPrior())


@pytest.mark.parametrize("updates", ["sklearn", "model"])
def test_one_full_batch_with_unit_steps_is_cavi(problem, updates):
    X, init, model = problem
    vb = mixtures.fit(model, X, "vb", init=init, max_iter=4, tol=0.0, updates=updates, warn=False)
    online = mixtures.fit(model, X, "online_vb", init=init, batch_size=len(X), num_epochs=4, shuffle=False,
                          step_size=lambda t: 1.0, updates=updates)
    for name in ("weights", "locs", "covariances"):
        torch.testing.assert_close(getattr(online.params, name), getattr(vb.params, name), rtol=1e-13, atol=1e-13)
    # the same q(θ) at every row: the same plug-in log-likelihood
    torch.testing.assert_close(online.history["log_likelihood"], vb.history["log_likelihood"], rtol=1e-13, atol=0)
    assert online.history["passes"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    # row t's ELBO takes q(Z) optimal under q_t, CAVI's the one before it: never lower
    assert bool((online.history["elbo"][1:] >= vb.history["elbo"][1:] - 1e-9).all())


def test_minibatches_reach_the_batch_optimum(problem):
    X, init, model = problem
    batch = mixtures.fit(model, X, "vb", init=init, tol=1e-8, max_iter=500)
    online = mixtures.fit(model, X, "online_vb", init=init, batch_size=100, num_epochs=25, kappa=0.7, seed=1)
    assert abs(online.history.last("elbo") - batch.history.last("elbo")) / len(X) < 5e-4
    assert online.history["passes"].tolist() == [float(p) for p in range(26)]
    assert online.posterior is not None and online.posterior.log_density is not None
    again = mixtures.fit(model, X, "online_vb", init=init, batch_size=100, num_epochs=25, kappa=0.7, seed=1)
    assert torch.equal(again.params.locs, online.params.locs)  # seeded permutations


def test_tol_stops_and_refusals(problem):
    X, init, model = problem
    stopped = mixtures.fit(model, X, "online_vb", init=init, batch_size=50, num_epochs=50, tol=1e-3, seed=0)
    assert stopped.converged and stopped.history.last("passes") < 50
    with pytest.raises(ValueError, match="prior"):
        mixtures.fit(mixtures.GaussianMixture(2, "full"), X, "online_vb", init=init)
    with pytest.raises(ValueError, match="kappa"):
        mixtures.fit(model, X, "online_vb", init=init, kappa=0.4)
    with pytest.raises(ValueError, match=r"step_size\(0\) = 2"):
        mixtures.fit(model, X, "online_vb", init=init, step_size=lambda t: 2)
    with pytest.raises(ValueError, match="either kappa"):
        mixtures.fit(model, X, "online_vb", init=init, kappa=0.7, step_size=lambda t: 0.5)
