"""Sample weights, partial labels, frozen groups and missing values, two (or three) at a time.

Each pair is checked against an identity: integer weights = rows repeated (with their labels, their
NaN entries), to 1e-10 from the same start for the closed-form routines, the same loss path for MAP
and the same potential energy and gradient for NUTS; labels with missing values where every point is
labelled = the per-class fits under missingness; frozen groups with missing values exact and monotone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from fit_checks import same_fit
from pyro import poutine
from pyro.infer.mcmc.util import initialize_model

import mixtures
from mixtures import GaussianMixture, GaussianPrior
from mixtures.core.family import MAX_PLATE_NESTING, fresh_param_store
from mixtures.core.labels import labelled_log_likelihood
from mixtures.core.missing import marginalizing
from mixtures.families.gaussian import MixtureParams
from mixtures.inference.pyro.nuts import held_sites, make_kernel, site_transforms

from conftest import assert_close

GENERATOR = torch.Generator().manual_seed(3)
X = torch.randn(60, 2, generator=GENERATOR, dtype=torch.float64)
X[:25] += torch.tensor([3.0, 1.0], dtype=torch.float64)
X[25:40] -= torch.tensor([2.0, -2.0], dtype=torch.float64)
W = torch.randint(0, 4, (60,), generator=GENERATOR).double()  # integer weights, some zero
LABELS = torch.full((60,), -1)
LABELS[:5], LABELS[25:30], LABELS[45:48] = 0, 1, 2
XM = X.clone()  # ~20 % of the entries missing, no row entirely
XM[torch.rand(60, 2, generator=GENERATOR) < 0.2] = float("nan")
XM[XM.isnan().all(1), 0] = 1.0
PRIOR = GaussianPrior(mean_prior=[0.0, 0.0], covariance_prior=torch.eye(2, dtype=torch.float64))


def repeated(t: torch.Tensor) -> torch.Tensor:
    return t.repeat_interleave(W.long(), 0)


def fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mixtures.fit(*args, **kwargs)


START = fit(GaussianMixture(3, "full"), X, "em", max_iter=0).params

#: name -> (data, options of the weighted fit, options of the repeated-rows fit)
PAIRS = {
    "weights+labels": (X, {"labels": LABELS}, {"labels": repeated(LABELS)}),
    "weights+freeze": (X, {"freeze": ("means",)}, {"freeze": ("means",)}),
    "weights+missing": (XM, {"missing": "marginalize"}, {"missing": "marginalize"}),
    "weights+labels+missing": (XM, {"labels": LABELS, "missing": "marginalize"},
                               {"labels": repeated(LABELS), "missing": "marginalize"}),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("method", ["em", "hard_em", "vb"])
def test_integer_weights_are_repeated_rows(method, pair):
    data, options, reference_options = PAIRS[pair]
    model = GaussianMixture(3, "full", prior=PRIOR if method == "vb" else None)
    common = dict(init=START, max_iter=15, tol=0.0) | ({"posterior_samples": 3} if method == "vb" else {})
    same_fit(fit(model, data, method, sample_weight=W, **common, **options),
          fit(model, repeated(data), method, **common, **reference_options))


def test_stepwise_full_batch_with_weights_and_missing_values_is_repeated_rows():
    """One minibatch of every point, step size 1: batch EM, so the identity is exact."""
    options = dict(batch_size=10_000, step_size=lambda t: 1.0, shuffle=False, num_epochs=4, warm_start_steps=2,
                   init=START, missing="marginalize")
    same_fit(fit(GaussianMixture(3, "full"), XM, "stepwise_em", sample_weight=W, **options),
          fit(GaussianMixture(3, "full"), repeated(XM), "stepwise_em", **options), columns=("log_likelihood",))


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("method", ["map", "svi"])
def test_map_and_svi_with_weights_follow_the_repeated_rows_path(method, pair):
    data, options, reference_options = PAIRS[pair]
    model = GaussianMixture(3, "full")
    weighted = fit(model, data, method, init=START, sample_weight=W, num_steps=6, standardize=False, **options)
    reference = fit(model, repeated(data), method, init=START, num_steps=6, standardize=False, **reference_options)
    assert_close(weighted.history["loss"], reference.history["loss"], rtol=1e-12, atol=1e-10)
    assert_close(weighted.params.covariances, reference.params.covariances, rtol=1e-10, atol=1e-10)
    # standardized (the default): the logged log-likelihood is the repeated data's in the data's units
    standardized = fit(model, data, method, init=START, sample_weight=W, num_steps=2, **options)
    assert_close(standardized.history["log_likelihood"][0], reference.history["log_likelihood"][0], rtol=1e-12)


def _energy(model, data, init, **options):
    """NUTS's potential energy and its gradient at a point near ``init`` (the kernel's own potential
    when fused, else Pyro's potential of the kernel's program)."""
    held = options.pop("held", {})
    with fresh_param_store(), marginalizing(bool(torch.isnan(data).any())):
        kernel = make_kernel(model, data, init, held=held, **options)
        transforms = site_transforms(model, data, init, tuple(held))
        start = {name: transforms[name](value) + 0.1 for name, value in model.site_values(init).items()
                 if name not in held}
        energy = kernel.potential_fn or initialize_model(kernel.model, model_args=(data,), transforms=transforms,
                                                         max_plate_nesting=MAX_PLATE_NESTING)[1]
        point = {name: value.detach().clone().requires_grad_() for name, value in start.items()}
        value = energy(point)
        return value.detach(), torch.autograd.grad(value, list(point.values()))


@pytest.mark.parametrize("pair", ["labels", "freeze", "missing", "labels+missing", "freeze+missing"])
def test_nuts_weighted_potential_is_the_repeated_rows(pair):
    model = GaussianMixture(3, "diag", prior=PRIOR.with_(covariance_prior=torch.ones(2, dtype=torch.float64)))
    init = fit(GaussianMixture(3, "diag"), X, "em", max_iter=0).params
    data = XM if "missing" in pair else X
    options = {"held": held_sites(model, init, ("covariances",))} if "freeze" in pair else {}
    labels = {"labels": LABELS} if "labels" in pair else {}
    value, grads = _energy(model, data, init, sample_weight=W, **options, **labels)
    expected, expected_grads = _energy(model, repeated(data), init, **options,
                                       **({"labels": repeated(LABELS)} if labels else {}))
    assert_close(value, expected, rtol=1e-12)
    for got, want in zip(grads, expected_grads):
        assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_nuts_program_with_labels_missing_and_freeze_is_the_conditioned_log_joint():
    """The program path (labels, NaN entries) conditioned on frozen sites: Pyro's potential of
    ``poutine.condition(model.model, held)`` equals the log prior plus the labelled observed-data
    log-likelihood computed directly."""
    model = GaussianMixture(3, "full", prior=PRIOR)
    held = held_sites(model, START, ("weights",))
    with fresh_param_store(), marginalizing():
        transforms = site_transforms(model, XM, START, tuple(held))
        program = lambda data: model.model(data, labels=LABELS)  # noqa: E731
        potential = initialize_model(poutine.condition(program, data=held), model_args=(XM,), transforms=transforms,
                                     max_plate_nesting=MAX_PLATE_NESTING)[1]
        values = model.site_values(START)
        point = {name: transforms[name](values[name]) for name in transforms}
        jacobian = sum(float(transforms[name].log_abs_det_jacobian(values[name], point[name]).sum())
                       for name in transforms)
        direct = float(model.log_prior(START, XM) + labelled_log_likelihood(START, XM, LABELS))
        assert_close(-float(potential(point)), direct - jacobian, rtol=1e-10)
        result = fit(model, XM, "nuts", init=START, labels=LABELS, freeze="weights", missing="marginalize",
                     num_chains=1, warmup=8, num_samples=4, warn=False)
    assert torch.equal(result.posterior.draws.weights, START.weights.expand(4, 3))


@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_all_labelled_with_missing_values_is_each_class_fitted_alone(method):
    """Every point labelled: component k's iterates are those of one Gaussian fitted (from the same
    start) to class k's points under missingness, and its weight the class's share."""
    labels = torch.repeat_interleave(torch.arange(3), torch.tensor([25, 15, 20]))
    result = fit(GaussianMixture(3, "full"), XM, method, init=START, labels=labels, missing="marginalize",
                 max_iter=12, tol=0.0, reg_covar=0.0)
    assert_close(result.params.weights, torch.tensor([25.0, 15.0, 20.0], dtype=torch.float64) / 60, rtol=1e-14)
    for k in range(3):
        alone = MixtureParams.from_native(torch.ones(1, dtype=torch.float64), START.locs[k:k + 1],
                                          START.native[k:k + 1], "full")
        reference = fit(GaussianMixture(1, "full"), XM[labels == k], "em", init=alone, missing="marginalize",
                        max_iter=12, tol=0.0, reg_covar=0.0)
        assert_close(result.params.locs[k], reference.params.locs[0], rtol=1e-10, atol=1e-12)
        assert_close(result.params.covariances[k], reference.params.covariances[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["em", "vb", "map"])
def test_partial_labels_with_missing_values_log_the_labelled_observed_likelihood(method):
    model = GaussianMixture(3, "full", prior=PRIOR if method == "vb" else None)
    options = {"map": {"num_steps": 20}, "em": {"max_iter": 20}, "vb": {"max_iter": 20, "posterior_samples": 2}}[method]
    result = fit(model, XM, method, init=START, labels=LABELS, missing="marginalize", **options)
    with marginalizing():
        direct = float(labelled_log_likelihood(result.params, XM, LABELS))
    assert_close(result.history["log_likelihood"][-1], direct, rtol=1e-10)
    if method == "em":
        assert np.all(np.diff(np.asarray(result.history["log_likelihood"])) >= -1e-9)
    if method == "map":  # its decoded assignments keep the labels
        assert torch.equal(result.extras["labels"][LABELS >= 0], LABELS[LABELS >= 0])


@pytest.mark.parametrize("groups", [("weights",), ("means",), ("covariances",), ("weights", "covariances")])
@pytest.mark.parametrize("method", ["em", "vb", "map"])
def test_frozen_groups_with_missing_values_stay_exact_and_the_objective_monotone(method, groups):
    model = GaussianMixture(3, "full", prior=PRIOR if method == "vb" else None)
    options = {"num_steps": 15, "lr": 0.01} if method == "map" else {"max_iter": 25, "reg_covar": 0.0}
    if method == "vb":
        options["posterior_samples"] = 2
    result = fit(model, XM, method, init=START, freeze=groups, missing="marginalize", **options)
    for group, name in (("weights", "weights"), ("means", "locs"), ("covariances", "native")):
        assert torch.equal(getattr(result.params, name), getattr(START, name)) == (group in groups), group
    column = {"em": "log_likelihood", "vb": "elbo", "map": "log_likelihood"}[method]
    trace = np.asarray(result.history[column])
    if method == "map":  # Adam is not monotone: it improves on the start
        assert trace[-1] > trace[0]
    else:
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_what_does_not_combine_says_which_routine_and_why():
    with pytest.raises(ValueError, match=r"svi: sample_weight with local_guide='mean_field'.*without NaN entries"):
        fit(GaussianMixture(3, "full"), XM, "svi", init=START, sample_weight=W, missing="marginalize",
            local_guide="mean_field", num_steps=2)
    with pytest.raises(ValueError, match=r"labels with local_guide='mean_field' need the fused pass.*no missing"):
        fit(GaussianMixture(3, "full"), XM, "svi", init=START, labels=LABELS, missing="marginalize",
            local_guide="mean_field", num_steps=2)
    with pytest.raises(ValueError, match="stepwise_em.*cannot fix labelled points"):
        fit(GaussianMixture(3, "full"), XM, "stepwise_em", init=START, labels=LABELS, sample_weight=W,
            missing="marginalize")
