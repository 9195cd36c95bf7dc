"""Guides of the Pyro routines: over the globals (point estimates or a posterior) and the assignments.

* :func:`choose_global_guide`: ``"delta"``, ``"normal"``, ``"mvn"`` or a callable, over the
  model's global sites (none at all without a prior: the globals are then ``pyro.param``
  sites of the model itself);
* :func:`mean_field_guide`: ``q(z_n) = Categorical(probs_n)`` with a per-point simplex
  ``pyro.param`` ``"assignment_probs"`` ``(N, K)``;
* :func:`guide_point` and :func:`guide_posterior`: the parameters a guide stands for (its
  median, or draws).

All of it works on any family's program (:class:`~mixtures.core.family.MixtureFamily`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as pdist
import pyro.poutine as poutine
import torch
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value
from torch import Tensor
from torch.distributions import constraints

from mixtures.core.family import ASSIGNMENT, DATA_PLATE, MixtureFamily
from mixtures.core.params import Params
from mixtures.core.posterior import Posterior
from mixtures.core.queries import empty_guide

#: the per-point simplex parameter of the mean-field local guide, ``(N, K)``
ASSIGNMENT_PROBS = "assignment_probs"
GLOBAL_GUIDES = ("delta", "normal", "mvn")
LOCAL_GUIDES = ("enumerate", "mean_field")
LOCAL_ESTIMATORS = ("enumerate", "sample")

Guide = Callable[..., Any]

__all__ = ["choose_global_guide", "guide_point", "guide_posterior", "mean_field_guide", "combine_guides",
           "store_params", "floored_probabilities", "empty_guide", "ASSIGNMENT_PROBS", "GLOBAL_GUIDES",
           "LOCAL_GUIDES", "LOCAL_ESTIMATORS"]


def choose_global_guide(model: MixtureFamily, guide: str | Guide,
                        program: Guide | None = None, init: Params | None = None) -> Guide | None:
    """The guide over the global sites, or ``None`` when there is none to fit.

    Args:
        model: the mixture specification.
        guide: ``"delta"`` (point estimates), ``"normal"`` (``AutoNormal``),
            ``"mvn"`` (``AutoMultivariateNormal``) or a callable taking the
            program's arguments (``guide(X)``).
        program: the program the guide approximates (used by autoguides).
        init: where autoguides start (their locations at ``model.site_values(init)``).

    Without a prior (``model.prior is None``) the globals are ``pyro.param``
    sites of the model: ``"delta"`` needs no guide at all (returns ``None``, the
    parameters are optimized directly) and ``"normal"``/``"mvn"`` have nothing to
    approximate (ValueError). With a prior the globals are ``pyro.sample`` sites
    and the autoguide sees only them, ``poutine.block(program, expose=model.global_sites)``,
    so the assignments stay enumerated in the model (this is also what lets an
    ``AutoContinuous`` guide such as ``AutoMultivariateNormal`` run under
    ``TraceEnum_ELBO``). ``AutoDelta`` then gives MAP (the mode in the sites'
    own parametrization, as MAP-EM's closed form).
    """
    if callable(guide) and not isinstance(guide, str):
        return guide
    if guide not in GLOBAL_GUIDES:
        raise ValueError(f"unknown guide {guide!r}; choose one of {list(GLOBAL_GUIDES)} or pass a "
                         "callable guide(X) over the global sites.")
    if model.prior is None:
        if guide == "delta":
            return None
        raise ValueError(
            f"guide={guide!r} approximates a posterior over the global sites, but this "
            "model has no prior: its weights, locs and covariances are pyro.param point estimates "
            "with no posterior. Use guide='delta' (maximum likelihood), or give the model a prior: "
            "GaussianMixture(K, covariance_type, prior=mixtures.GaussianPrior()).")
    exposed = poutine.block(program, expose=list(model.global_sites))
    options: dict[str, Any] = {}
    if init is not None:
        values = {name: value.detach().clone() for name, value in model.site_values(init).items()}
        options["init_loc_fn"] = init_to_value(values=values)
    if guide == "delta":
        return AutoDelta(exposed, **options)
    guide_type = AutoNormal if guide == "normal" else AutoMultivariateNormal
    return guide_type(exposed, init_scale=0.01, **options)


def guide_point(model: MixtureFamily, global_guide: Guide | None, X: Tensor) -> Params:
    """The current point estimate.

    Without a prior (or without a global guide): the param store's globals. With a
    prior: the guide's ``median(X)`` when it has one (autoguides), else the values
    one run of the guide gives its global sites (a draw, for a stochastic callable).
    """
    if model.prior is None or global_guide is None:
        return store_params(model)
    with torch.no_grad():
        values = global_guide.median(X) if hasattr(global_guide, "median") else _guide_values(global_guide, X)
    return model.params_from_sites(_global_site_values(model, values), X)


def guide_posterior(model: MixtureFamily, global_guide: Guide, X: Tensor, n_draws: int) -> Posterior:
    """``n_draws`` parameter draws from a global guide (inside its param scope)."""
    draws, log_density = [], []
    with torch.no_grad():
        for _ in range(n_draws):  # loop over draws, not data points
            trace = poutine.trace(global_guide).get_trace(X)
            values = {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "sample"}
            draws.append(model.params_from_sites(_global_site_values(model, values), X))
            # an autoguide's sites carry log q of the unconstrained draw plus the Jacobian to the
            # constrained value: together, log q(θ) on the model's own sites
            log_density.append(trace.log_prob_sum())
    return Posterior(model.params_type.stack(draws), kind="variational",
                     distribution=_guide_parameters(global_guide, model), log_density=torch.stack(log_density))


def _guide_parameters(global_guide: Guide, model: MixtureFamily) -> dict[str, Any]:
    """The variational distribution as its guide's class and parameters.

    ``{"guide": class name, "params": {store name: constrained value}}``: for
    ``AutoNormal`` the per-site ``locs``/``scales``, for ``AutoMultivariateNormal``
    the ``loc`` and ``scale_tril`` of the unconstrained latent vector (in Pyro's
    ``poutine.block``-ed site order), enough to rebuild ``q(θ)``. Per-point
    parameters (the mean-field ``assignment_probs``) are not part of it.
    """
    store = pyro.get_param_store()
    skip = {ASSIGNMENT_PROBS, *model.global_sites}
    params = {name: store[name].detach().clone() for name in store.keys() if name not in skip}
    return {"guide": type(global_guide).__name__, "params": params}


def _guide_values(global_guide: Guide, X: Tensor) -> dict[str, Tensor]:
    """The values of the sample sites of one run of ``global_guide(X)``."""
    trace = poutine.trace(global_guide).get_trace(X)
    return {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "sample"}


def _global_site_values(model: MixtureFamily, values: dict[str, Tensor]) -> dict[str, Tensor]:
    missing = [name for name in model.global_sites if name not in values]
    if missing:
        raise ValueError(f"the global guide samples no site(s) {missing}; a guide over the globals of "
                         f"this model must sample {list(model.global_sites)}.")
    return {name: values[name].detach() for name in model.global_sites}


def mean_field_guide(n_points: int, init_probs: Tensor, subsample_size: int | None,
                     enumerate_assignments: bool) -> Guide:
    """Local guide ``q(z_n) = Categorical(probs_n)``: a per-point simplex ``pyro.param``.

    Args:
        n_points: ``N``, the size of the data plate.
        init_probs: ``(N, K)`` initial probabilities (cloned into the store).
        subsample_size: minibatch size; the guide's plate shares its name with the
            model's, so the model replays the rows the guide drew and the guide
            indexes its parameters with them.
        enumerate_assignments: sum over ``q`` exactly (parallel enumeration in
            the guide, for ``TraceEnum_ELBO``) instead of drawing ``z_n``
            (score-function gradients through ``TraceEnum_ELBO``'s Dice estimator).
    """
    infer = {"enumerate": "parallel"} if enumerate_assignments else {}

    def guide(X: Tensor) -> None:
        probs = pyro.param(ASSIGNMENT_PROBS, lambda: init_probs.detach().clone(),
                           constraint=constraints.simplex)
        with pyro.plate(DATA_PLATE, n_points, subsample_size=subsample_size) as rows:
            pyro.sample(ASSIGNMENT, pdist.Categorical(probs[rows] if subsample_size else probs),
                        infer=infer)

    return guide


def combine_guides(*guides: Guide | None) -> Guide:
    """One guide running the given guides in order (``None`` entries skipped)."""
    active = [guide for guide in guides if guide is not None]
    if not active:
        return empty_guide

    def guide(*args: Any, **kwargs: Any) -> None:
        for part in active:
            part(*args, **kwargs)

    return guide


def store_params(model: MixtureFamily) -> Params:
    """The current globals of the param store as (cloned, detached) parameters."""
    store = pyro.get_param_store()
    values = {name: store[name].detach().clone() for name in model.global_sites}
    return model.params_from_values(values)


def floored_probabilities(probs: Tensor) -> Tensor:
    """Responsibilities ``(N, K)`` moved off exact zeros (the simplex transform needs interior points)."""
    tiny = 1e-12 if probs.dtype == torch.float64 else 1e-6
    probs = probs.clamp_min(tiny)
    return probs / probs.sum(-1, keepdim=True)
