"""VB with frozen groups: a point mass for each frozen group, exact CAVI updates of the others."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import mixtures
from mixtures.core.summary import floored_counts
from mixtures.families.gaussian import MixtureParams
from mixtures.families.gaussian.variational import bounds

X = mixtures.data.iris()[::3]  # 50 points, 4 features, float64
GROUPS = (("weights", "weights"), ("means", "locs"), ("covariances", "native"))


def start(covariance_type: str = "full") -> MixtureParams:
    return mixtures.fit(mixtures.GaussianMixture(3, covariance_type), X, "em", max_iter=3, warn=False).params


def model(covariance_type: str = "full") -> mixtures.GaussianMixture:
    return mixtures.GaussianMixture(3, covariance_type, prior=mixtures.GaussianPrior())


@pytest.mark.parametrize("groups", [("weights",), ("means",), ("covariances",), ("weights", "means"),
                                    ("means", "covariances")])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_frozen_values_are_bit_identical_and_the_elbo_monotone(groups, covariance_type):
    init = start(covariance_type)
    result = mixtures.fit(model(covariance_type), X, "vb", init=init, freeze=groups, reg_covar=0.0, max_iter=40,
                          tol=0.0, warn=False, posterior_samples=5, updates="model")
    draws = result.posterior.draws
    for group, name in GROUPS:
        held = getattr(init, name)
        assert torch.equal(getattr(result.params, name), held) == (group in groups), group
        if group in groups:  # the point mass: every draw is the given value
            assert torch.equal(getattr(draws, name), held.expand_as(getattr(draws, name)))
    assert result.posterior.log_density is None
    elbo = np.asarray(result.history["elbo"])
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[1:]))
    assert "sklearn_lower_bound" not in result.history


def _summary_and_q(groups: tuple[str, ...], init: MixtureParams):
    """The VB statistics of ``init``'s responsibilities and the update ``q`` from them (row 0 of a fit)."""
    m = model()
    cavi = m.variational(X, "model", 0.0).holding(init, groups)
    shift = m.statistics_shift(X)
    summary = m.e_step(X, init, shift)
    return summary, cavi.update(summary), cavi.prior


def _gradient_is_zero(summary, q, prior, **free: torch.Tensor) -> None:
    """The ELBO's gradient with respect to the free group's variational parameters vanishes (an optimum)."""
    leaves = {name: value.detach().clone().requires_grad_() for name, value in free.items()}
    elbo = bounds(summary, dataclasses.replace(q, **leaves), prior)["elbo"]
    for name, gradient in zip(leaves, torch.autograd.grad(elbo, list(leaves.values()))):
        assert float(gradient.detach().abs().max()) < 1e-8 * float(elbo.detach().abs()), (name, gradient)


def test_only_covariances_free_is_the_closed_form_wishart_given_the_frozen_means():
    init = start()
    summary, q, prior = _summary_and_q(("weights", "means"), init)
    resp = init.responsibilities(X)
    nk = floored_counts(resp.sum(0))
    centred = X[None] - init.locs[:, None]
    W = torch.einsum("nk,kni,knj->kij", resp, centred, centred)
    nu = prior.degrees_of_freedom + nk
    torch.testing.assert_close(q.degrees_of_freedom, nu, rtol=1e-14, atol=0)
    torch.testing.assert_close(q.covariances, (prior.covariance_prior + W) / nu[:, None, None], rtol=1e-11, atol=0)
    assert torch.equal(q.means, init.locs) and torch.isinf(q.mean_precision).all()
    _gradient_is_zero(summary, q, prior, native=q.native, degrees_of_freedom=q.degrees_of_freedom)


def test_only_means_free_is_the_closed_form_normal_given_the_frozen_covariances():
    init = start()
    summary, q, prior = _summary_and_q(("weights", "covariances"), init)
    resp = init.responsibilities(X)
    nk = floored_counts(resp.sum(0))
    beta = prior.mean_precision + nk
    torch.testing.assert_close(q.mean_precision, beta, rtol=1e-14, atol=0)
    means = (prior.mean_precision * prior.mean_prior + resp.T @ X) / beta[:, None]
    torch.testing.assert_close(q.means, means, rtol=1e-12, atol=0)
    # E[log |Λ|] of the point mass is log |Σ⁻¹| exactly
    torch.testing.assert_close(q.expected_log_det_precision(), -torch.logdet(init.covariances), rtol=1e-13, atol=0)
    _gradient_is_zero(summary, q, prior, means=q.means, mean_precision=q.mean_precision)


def test_only_weights_free_is_the_closed_form_dirichlet():
    init = start()
    summary, q, prior = _summary_and_q(("means", "covariances"), init)
    alpha = prior.weight_concentration + floored_counts(init.responsibilities(X).sum(0))
    torch.testing.assert_close(q.weight_concentration, alpha, rtol=1e-14, atol=0)
    _gradient_is_zero(summary, q, prior, weight_concentration=q.weight_concentration)


def test_means_frozen_at_the_truth_against_free_means():
    generator = torch.Generator().manual_seed(3)
    truth = torch.tensor([[-4.0, 0.0], [0.0, 3.0], [4.0, 0.0]], dtype=torch.float64)
    data = (truth.repeat_interleave(150, 0) + torch.randn(450, 2, generator=generator, dtype=torch.float64))
    init = mixtures.fit(mixtures.GaussianMixture(3, "full"), data, "em", max_iter=2, warn=False).params
    order = torch.cdist(truth, init.locs).argmin(1)
    init = MixtureParams.from_native(init.weights[order], truth, init.native[order], "full")
    prior_model = mixtures.GaussianMixture(3, "full", prior=mixtures.GaussianPrior())
    frozen = mixtures.fit(prior_model, data, "vb", init=init, freeze="means", posterior_samples=2)
    free = mixtures.fit(prior_model, data, "vb", init=init, posterior_samples=2)
    em = mixtures.fit(mixtures.GaussianMixture(3, "full"), data, "em", init=init, freeze="means")
    assert torch.equal(frozen.params.locs, truth) and not torch.equal(free.params.locs, truth)
    # EM's covariances of the scatter about the truth, up to the prior's pull (ν₀ = 2 pseudo-points
    # at Ψ₀, the data's covariance, against 150 points per component)
    torch.testing.assert_close(frozen.params.covariances, em.params.covariances, rtol=0, atol=0.1)
    # the conditional model's bound drops the means' KL term: above the full model's at the truth
    assert frozen.objective > free.objective
