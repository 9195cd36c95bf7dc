"""Semi-supervised fitting: ``fit(model, X, labels=...)`` with -1 for unknown, in every routine that takes labels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

import mixtures
from mixtures.core.labels import labelled_log_likelihood
from mixtures.errors import DataError

X = mixtures.data.iris()
SPECIES = torch.repeat_interleave(torch.arange(3), 50)


def partial(every: int = 3) -> torch.Tensor:
    """The species with every ``every``-th point unknown (-1)."""
    labels = SPECIES.clone()
    labels[::every] = -1
    return labels


def by_hand(params, labels) -> float:
    """The labelled objective with torch.distributions:
    Σ_labelled log π_y N(x | y) + Σ_unlabelled log Σ_k π_k N(x | k)."""
    joint = torch.stack([params.weights[k].log() + MultivariateNormal(params.locs[k], params.covariances[k]).log_prob(X)
                         for k in range(params.n_components)], dim=1)
    known = labels >= 0
    return float(joint[known].gather(1, labels[known][:, None]).sum() + torch.logsumexp(joint[~known], 1).sum())


@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_all_labelled_is_the_closed_form_mle_of_the_classes(method):
    result = mixtures.fit(mixtures.GaussianMixture(3, "full"), X, method, labels=SPECIES, reg_covar=0.0)
    for k in range(3):
        points = X[SPECIES == k]
        torch.testing.assert_close(result.params.locs[k], points.mean(0), rtol=0, atol=1e-13)
        torch.testing.assert_close(result.params.covariances[k], torch.cov(points.T, correction=0), rtol=0, atol=1e-13)
    torch.testing.assert_close(result.params.weights, torch.full((3,), 1 / 3, dtype=X.dtype), rtol=0, atol=1e-15)
    assert result.objective == pytest.approx(by_hand(result.params, SPECIES), rel=1e-12)
    if method == "hard_em":
        assert torch.equal(result.extras["labels"], SPECIES)


def test_em_objective_is_the_labelled_likelihood_and_monotone():
    labels = partial()
    result = mixtures.fit(mixtures.GaussianMixture(3, "full"), X, "em", labels=labels, max_iter=300, tol=1e-10)
    trace = np.asarray(result.history["log_likelihood"])
    assert np.all(np.diff(trace) >= -1e-9), np.diff(trace).min()
    assert result.objective == pytest.approx(by_hand(result.params, labels), rel=1e-12)
    assert float(labelled_log_likelihood(result.params, X, labels)) == pytest.approx(result.objective, rel=1e-13)
    # the labelled points keep their component: at convergence their responsibilities are one-hot
    step = mixtures.EMStep(result.model, X, labels=labels)
    resp = step.responsibilities(result.params)
    assert torch.equal(resp[labels >= 0], torch.nn.functional.one_hot(labels[labels >= 0], 3).to(X))
    # the ELBO never exceeds the objective (its gap is a KL divergence)
    gap = np.asarray(result.history["kl"][1:])
    assert np.all(gap >= -1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_objective_equals_maps_loss_at_the_same_parameters(covariance_type):
    """MAP's loss is Pyro's TraceEnum_ELBO of the program with its "labels" factor (no fused path)."""
    labels = partial()
    model = mixtures.GaussianMixture(3, covariance_type)
    em = mixtures.fit(model, X, "em", labels=labels, max_iter=50)
    at_em = mixtures.fit(model, X, "map", init=em.params, labels=labels, num_steps=0)
    assert -float(at_em.history["loss"][0]) == pytest.approx(em.objective, rel=1e-10)
    assert at_em.objective == pytest.approx(em.objective, rel=1e-10)
    # a few steps from there: still the labelled objective, and the labelled points keep their label
    moved = mixtures.fit(model, X, "map", init=em.params, labels=labels, num_steps=10, patience=None)
    assert moved.history["log_likelihood"][-1] == pytest.approx(by_hand(moved.params, labels), rel=1e-10)
    assert torch.equal(moved.extras["labels"][labels >= 0], labels[labels >= 0])


def test_svi_minibatches_see_their_own_labels():
    labels = partial()
    model = mixtures.GaussianMixture(3, "full")
    em = mixtures.fit(model, X, "em", labels=labels, max_iter=50)
    result = mixtures.fit(model, X, "svi", init=em.params, labels=labels, num_steps=20, subsample_size=50, lr=1e-3)
    assert math.isfinite(result.objective)
    assert result.objective == pytest.approx(by_hand(result.params, labels), rel=1e-10)


def test_vb_with_every_point_labelled_is_one_update_from_the_labels():
    model = mixtures.GaussianMixture(3, "full", prior=mixtures.GaussianPrior())
    labelled = mixtures.fit(model, X, "vb", labels=SPECIES, max_iter=5)
    once = mixtures.fit(model, X, "vb", init=SPECIES, max_iter=0)
    for name, value in labelled.extras["variational"].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(value, once.extras["variational"][name], rtol=1e-12, atol=1e-12)
    partly = mixtures.fit(model, X, "vb", labels=partial(), max_iter=100, tol=1e-9)
    elbo = np.asarray(partly.history["elbo"][1:])
    assert np.all(np.diff(elbo) >= -1e-8)
    assert partly.history["log_likelihood"][-1] == pytest.approx(by_hand(partly.params, partial()), rel=1e-12)


def test_nuts_draws_keep_labels_and_are_not_relabelled():
    labels = partial()
    model = mixtures.GaussianMixture(3, "diag", prior=mixtures.GaussianPrior())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mixtures.fit(model, X, "nuts", labels=labels, warmup=10, num_samples=6, num_chains=1,
                              max_tree_depth=3)
    perms = result.extras["relabel_permutations"]
    assert torch.equal(perms, torch.arange(3).expand_as(perms))
    assert torch.equal(result.extras["labels"][labels >= 0], labels[labels >= 0])
    draws = result.posterior.draws
    first = draws.index(0)
    assert result.history["log_likelihood"][0] == pytest.approx(
        float(labelled_log_likelihood(first, X, labels)), rel=1e-12)


@pytest.mark.parametrize("labels, match", [
    (SPECIES + 1, "label 3 at point 100 is out of range"),
    (SPECIES - 2, "out of range"),
    (SPECIES[:10], r"shape \(150,\)"),
    (SPECIES.double() + 0.5, "must be integers"),
])
def test_bad_labels_are_clear_errors(labels, match):
    with pytest.raises(DataError, match=match):
        mixtures.fit(mixtures.GaussianMixture(3, "full"), X, "em", labels=labels)


@pytest.mark.parametrize("method", ["kmeans", "stepwise_em"])
def test_routines_that_cannot_honour_labels_say_which_can(method):
    routines = r"\['em', 'hard_em', 'map', 'nuts', 'svi', 'vb'\]"
    with pytest.raises(ValueError, match=r"cannot fix labelled points.*" + routines):
        mixtures.fit(mixtures.GaussianMixture(3, "full"), X, method, labels=SPECIES)


@pytest.mark.parametrize("order", [[1, 2, 0], [1, 0, 2]])
def test_an_initializers_start_follows_the_labels_order(order):
    """With 10 % labelled, k-means' components are reordered to the labels: any naming of the classes
    gives the same fit (unaligned, [1, 0, 2] ended at -309 nats with 30 % accuracy)."""
    def fit(names: torch.Tensor) -> mixtures.FitResult:
        labels = names.clone()
        labels[torch.arange(150) % 10 != 0] = -1
        return mixtures.fit(mixtures.GaussianMixture(3, "full"), X, "em", labels=labels, max_iter=500)

    reference, renamed = fit(SPECIES), fit(torch.tensor(order)[SPECIES])
    assert renamed.objective == pytest.approx(reference.objective, rel=1e-10)
    assert torch.equal(renamed.predict(X), torch.tensor(order)[reference.predict(X)])
    assert (reference.predict(X) == SPECIES).float().mean() > 0.95
