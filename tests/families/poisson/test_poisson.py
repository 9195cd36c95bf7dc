"""The Poisson family: a second family written only against the protocol, checked against
independent references (torch's Poisson, Pyro's own TraceEnum_ELBO, closed forms by hand)."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO

import mixtures
from mixtures import DataError, PoissonMixture, PoissonParams, PoissonPrior
from mixtures.core.family import fresh_param_store
from mixtures.core.queries import empty_guide

from conftest import assert_close


@pytest.fixture
def truth() -> PoissonParams:
    return PoissonParams(torch.tensor([0.3, 0.7], dtype=torch.float64),
                         torch.tensor([[2.0, 10.0, 0.5], [8.0, 1.0, 3.0]], dtype=torch.float64))


@pytest.fixture
def counts(truth):
    return truth.sample(1500, seed=3)


def test_log_density_equals_torch_poisson(truth, counts):
    X, _ = counts
    component = torch.distributions.Poisson(truth.rates.unsqueeze(1)).log_prob(X).sum(-1).T  # (N, K)
    assert_close(truth.component_log_prob(X), component, rtol=1e-13, atol=1e-12)
    expected = torch.logsumexp(component + truth.weights.log(), -1)
    assert_close(truth.log_prob(X), expected, rtol=1e-13, atol=1e-12)


def test_the_programs_enumerated_loss_is_the_exact_log_likelihood(truth, counts):
    X, _ = counts
    model = PoissonMixture(2)
    with fresh_param_store():
        loss = TraceEnum_ELBO(max_plate_nesting=1).loss(lambda data: model.model(data, truth), empty_guide, X)
    assert_close(-loss, truth.log_prob(X).sum(), rtol=1e-12, atol=1e-8)
    pyro.clear_param_store()


def test_e_step_statistics_and_m_step_by_hand(truth, counts):
    X, _ = counts
    model = PoissonMixture(2)
    shift = model.statistics_shift(X)
    summary = model.e_step(X, truth, shift)
    resp = truth.responsibilities(X)
    assert_close(summary.nk, resp.sum(0), rtol=1e-12)
    assert_close(summary.sx, resp.T @ X, rtol=1e-12)
    assert_close(summary.log_likelihood, truth.log_prob(X).sum(), rtol=1e-12)
    params = model.m_step(summary, reg_covar=0.0)
    assert_close(params.rates, (resp.T @ X) / resp.sum(0)[:, None], rtol=1e-11)
    assert_close(params.weights, resp.mean(0), rtol=1e-11)
    # the closed-form ELBO right after an E step is the log-likelihood (q is the exact posterior)
    assert_close(model.elbo(summary, truth), truth.log_prob(X).sum(), rtol=1e-12)


def test_statistics_add_up_over_chunks(truth, counts):
    X, _ = counts
    model = PoissonMixture(2)
    shift = model.statistics_shift(X)
    whole = model.e_step(X, truth, shift)
    chunked = model.e_step(X, truth, shift, chunk_size=97)
    for mine, theirs in zip(chunked.additive(), whole.additive()):
        assert_close(mine, theirs, rtol=1e-12, atol=1e-9)


def test_em_is_monotone_and_reaches_the_map_optimum_from_the_same_start(truth, counts):
    X, _ = counts
    model = PoissonMixture(2)
    start = mixtures.fit(model, X, "em", max_iter=0, seed=1).init
    em = mixtures.fit(model, X, "em", init=start, tol=1e-10, max_iter=1000, reg_covar=0.0)
    assert em.converged
    assert (em.history["log_likelihood"].diff() >= -1e-9).all()
    gradient = mixtures.fit(model, X, "map", init=start, num_steps=3000, lr=0.05, tol=1e-10)
    assert_close(gradient.log_likelihood / len(X), em.log_likelihood / len(X), rtol=0, atol=1e-6)
    order = torch.argsort(em.params.rates[:, 0])
    assert_close(gradient.params.rates[torch.argsort(gradient.params.rates[:, 0])], em.params.rates[order],
                 rtol=1e-3, atol=1e-3)


def test_hard_and_stepwise_em_run_on_the_statistics(truth, counts):
    X, _ = counts
    for method in ("hard_em", "stepwise_em"):
        result = mixtures.fit(PoissonMixture(2), X, method, seed=0)
        assert torch.isfinite(result.params.rates).all() and result.log_likelihood < 0


def test_map_em_with_a_prior_is_the_posterior_mode_pyro_finds(counts):
    X, _ = counts
    model = PoissonMixture(2, prior=PoissonPrior(weight_concentration=2.0, rate_shape=2.0, rate_rate=0.5))
    start = mixtures.fit(model.with_prior(None), X, "em", max_iter=0, seed=1).init
    closed = mixtures.fit(model, X, "em", init=start, tol=1e-12, max_iter=2000, reg_covar=0.0)
    gradient = mixtures.fit(model, X, "map", init=start, num_steps=4000, tol=1e-12)
    assert_close(gradient.objective / len(X), closed.objective / len(X), rtol=0, atol=1e-6)


def test_nuts_samples_the_posterior_of_the_program(counts):
    X, _ = counts
    model = PoissonMixture(2, prior=PoissonPrior())
    result = mixtures.fit(model, X[:300], "nuts", seed=0, warmup=60, num_samples=60, max_tree_depth=5,
                          num_chains=1)
    em = mixtures.fit(model.with_prior(None), X[:300], "em", seed=0)
    order = torch.argsort(result.params.rates[:, 0])
    reference = em.params.rates[torch.argsort(em.params.rates[:, 0])]
    assert_close(result.params.rates[order], reference, rtol=0.15, atol=0.3)
    assert result.posterior.n_draws == 60 and result.posterior.draws.rates.shape == (60, 2, 3)


def test_routines_the_family_cannot_serve_are_refused_by_name(counts):
    X, _ = counts
    for method, capability in (("vb", "variational"), ("kmeans", "partition")):
        with pytest.raises(ValueError, match=rf"{method}.*{capability}.*PoissonMixture.*em"):
            mixtures.fit(PoissonMixture(2), X, method)


@pytest.mark.parametrize("bad, where", [(-1.0, "X\\[4, 1\\] = -1.0"), (2.5, "X\\[4, 1\\] = 2.5")])
def test_counts_must_be_non_negative_integers(counts, bad, where):
    X = counts[0].clone()
    X[4, 1] = bad
    with pytest.raises(DataError, match=f"non-negative integer counts; {where}"):
        mixtures.fit(PoissonMixture(2), X, "em")
