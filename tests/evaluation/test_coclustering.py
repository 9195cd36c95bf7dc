"""The posterior similarity matrix: against a direct computation, label invariance, sure clusters."""

import pytest
import torch

import mixtures
from mixtures.core.posterior import Posterior
from mixtures.evaluation.coclustering import posterior_similarity, similarity_order
from mixtures.families.gaussian.priors import GaussianPrior


def _vb_posterior():
    generator = torch.Generator().manual_seed(3)
    X = torch.cat([torch.randn(30, 2, generator=generator, dtype=torch.float64),
                   torch.randn(25, 2, generator=generator, dtype=torch.float64) + torch.tensor([2.5, 0.0],
                                                                                         dtype=torch.float64)])
    result = mixtures.fit(mixtures.GaussianMixture(2, "full", prior=GaussianPrior()), X, method="vb", seed=0)
    return X, result.posterior.subset(torch.arange(12))


def test_equals_the_mean_over_draws_of_same_component_probabilities():
    X, posterior = _vb_posterior()
    expected = torch.zeros(X.shape[0], X.shape[0], dtype=torch.float64)
    for s in range(posterior.n_draws):  # the reference: torch.distributions, pair by pair over components
        draw = posterior.draw(s)
        log_joint = torch.stack([torch.distributions.MultivariateNormal(draw.locs[k], draw.covariances[k]).log_prob(X)
                                 + draw.weights[k].log() for k in range(2)], -1)
        resp = torch.softmax(log_joint, -1)
        expected += sum(resp[:, k, None] * resp[None, :, k] for k in range(2)) / posterior.n_draws
    similarity = posterior_similarity(posterior, X)
    torch.testing.assert_close(similarity, expected, rtol=0, atol=1e-12)
    assert torch.equal(similarity, similarity.T) and float(similarity.min()) >= 0 and float(similarity.max()) <= 1
    # thinning takes evenly spaced draws
    thinned = posterior_similarity(posterior, X, max_draws=3)
    torch.testing.assert_close(thinned, posterior_similarity(posterior.subset(torch.tensor([0, 6, 11])), X),
                               rtol=0, atol=1e-14)


def test_label_switching_does_not_change_it():
    X, posterior = _vb_posterior()
    draws = [posterior.draw(s) for s in range(posterior.n_draws)]
    switched = [d.permuted(torch.tensor([1, 0])) if s % 2 else d for s, d in enumerate(draws)]
    relabelled = Posterior(type(draws[0]).stack(switched), posterior.kind)
    torch.testing.assert_close(posterior_similarity(relabelled, X), posterior_similarity(posterior, X),
                               rtol=0, atol=1e-14)


def test_sure_clusters_give_blocks_and_the_order_groups_them():
    X = torch.tensor([[0.0, 0.0], [0.1, 0.0], [50.0, 0.0], [50.1, 0.0]], dtype=torch.float64)
    params = mixtures.MixtureParams(torch.tensor([0.5, 0.5], dtype=torch.float64),
                                    torch.tensor([[50.0, 0.0], [0.0, 0.0]], dtype=torch.float64),
                                    torch.eye(2, dtype=torch.float64).expand(2, 2, 2), "full")
    posterior = Posterior(type(params).stack([params, params]), "mcmc")
    similarity = posterior_similarity(posterior, X)
    blocks = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float64)
    torch.testing.assert_close(similarity, blocks, rtol=0, atol=1e-12)
    assert similarity_order(similarity, [1, 0, 1, 1]).tolist()[0] in (0, 2, 3)  # the larger group first


def test_refuses_what_is_not_a_posterior():
    with pytest.raises(ValueError, match="needs a Posterior"):
        posterior_similarity(None, torch.zeros(3, 2))
