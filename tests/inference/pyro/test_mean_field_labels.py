"""SVI's mean-field local guide with partial labels: a labelled point's q(z) is the point mass at its label.

The reference is Pyro itself on the program: ``TraceEnum_ELBO`` of the model with the labelled points'
assignment site observed (``poutine.condition``) plus that of the model with the mean-field guide on the
unlabelled points (the globals are ``pyro.param`` sites, so the two losses add).
"""

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import TraceEnum_ELBO

import mixtures
from mixtures import GaussianMixture
from mixtures.core.family import ASSIGNMENT
from mixtures.inference.pyro.guides import floored_probabilities, mean_field_guide


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(200, 2, generator=generator, dtype=torch.float64)
    X[:80] += 3.0
    X[80:140, 0] -= 4.0
    truth = torch.cat([torch.zeros(80), torch.ones(60), torch.full((60,), 2.0)]).long()
    labels = torch.where(torch.arange(200) % 3 == 1, -1, truth)
    start = mixtures.fit(GaussianMixture(3, "full"), X, max_iter=2, warn=False).params
    return X, truth, labels, start


def _pyro_loss(model, X, labels, params, probs_unlabelled) -> float:
    """-ELBO of the program: labelled assignments observed, the mean-field guide on the unlabelled points."""
    known = labels >= 0
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    pyro.clear_param_store()
    program = lambda data: model.model(data, params)  # noqa: E731  (globals: pyro.param sites at params)
    observed = elbo.loss(poutine.condition(program, data={ASSIGNMENT: labels[known]}), lambda data: None, X[known])
    guide = mean_field_guide(int((~known).sum()), probs_unlabelled, None, enumerate_assignments=True)
    free = elbo.loss(program, guide, X[~known])
    pyro.clear_param_store()
    return observed + free


def test_loss_equals_pyro_with_the_labelled_assignments_observed(case):
    X, _, labels, start = case
    model = GaussianMixture(3, "full")
    result = mixtures.fit(model, X, "svi", init=start, labels=labels, local_guide="mean_field", num_steps=5,
                          patience=None)
    probs = result.extras["assignment_probs"]
    known = labels >= 0
    # labelled rows are exact point masses; the others moved from their start
    assert torch.equal(probs[known], torch.nn.functional.one_hot(labels[known], 3).double())
    start_probs = floored_probabilities(start.responsibilities(X))  # the guide's documented start
    # at the start (row 0) and after five Adam steps (the last row: the returned globals and q)
    for row, params, q in ((0, start, start_probs), (-1, result.params, probs)):
        expected = _pyro_loss(model, X, labels, params, q[~known])
        assert float(result.history["loss"][row]) == pytest.approx(expected, rel=1e-10, abs=0)
    assert float(result.history["loss"][-1]) < float(result.history["loss"][0])


def test_everything_labelled_reaches_the_per_class_maximum_likelihood(case):
    X, truth, _, start = case
    model = GaussianMixture(3, "full")
    svi = mixtures.fit(model, X, "svi", init=start, labels=truth, local_guide="mean_field", num_steps=400,
                       lr_decay=1e-3, patience=None)
    for k in range(3):  # the classes' closed-form Gaussians (maximum likelihood, no floor)
        points = X[truth == k]
        torch.testing.assert_close(svi.params.locs[k], points.mean(0), rtol=0, atol=1e-8)
        torch.testing.assert_close(svi.params.covariances[k], torch.cov(points.T, correction=0), rtol=0, atol=1e-8)
        assert float(svi.params.weights[k]) == pytest.approx(points.shape[0] / X.shape[0], abs=1e-9)
    # the loss is then -Σ log π_y p(x | y), the labelled log-likelihood (no entropy left)
    assert float(svi.history["loss"][-1]) == pytest.approx(-float(svi.history["log_likelihood"][-1]), rel=1e-12)


def test_minibatches_and_the_program_path(case):
    X, _, labels, start = case
    model = GaussianMixture(3, "full")
    result = mixtures.fit(model, X, "svi", init=start, labels=labels, local_guide="mean_field", num_steps=5,
                          subsample_size=50, patience=None)
    assert torch.isfinite(result.history["loss"]).all()
    with pytest.raises(ValueError, match="labels with local_guide='mean_field' need the fused pass"):
        mixtures.fit(model, X, "svi", init=start, labels=labels, local_guide="mean_field", num_steps=2,
                     validate=True)


def test_integer_weights_with_labels_are_the_rows_repeated(case):
    """Weights and labels together on the fused mean-field path: the weighted fit's loss at the start equals the
    fit of the rows repeated (with their labels) to 1e-10. Adam's steps then differ through its eps alone: a
    weighted row's logit gradient is w times each copy's, which Adam's update ignores except where a gradient
    is near eps (q ~ 0); the same 1e-5 drift shows without labels."""
    X, _, labels, start = case
    weights = (torch.arange(200) % 3 + 1).double()
    repeat = weights.long()
    model = GaussianMixture(3, "full")
    weighted = mixtures.fit(model, X, "svi", init=start, labels=labels, sample_weight=weights,
                            local_guide="mean_field", num_steps=3, patience=None)
    repeated = mixtures.fit(model, X.repeat_interleave(repeat, 0), "svi", init=start,
                            labels=labels.repeat_interleave(repeat), local_guide="mean_field", num_steps=3,
                            patience=None)
    assert float(weighted.history["loss"][0]) == pytest.approx(float(repeated.history["loss"][0]), rel=1e-10, abs=0)
    assert float(weighted.history["loss"][-1]) == pytest.approx(float(repeated.history["loss"][-1]), rel=1e-4)
