"""Frozen parameters: hold weights, means or covariances at given values while fitting the rest.

``fit(model, X, method, init=params, freeze=("weights",))`` keeps each named group at its value in
``init`` (all of the group, never part of it) and fits the others:

* EM and hard EM: the M step maximizes over the free groups only, with the frozen ones at their
  values (frozen means: the covariances are the scatter about them), so the history stays monotone;
* MAP and SVI (no prior): the frozen sites are constants of the program, not trainable parameters;
* VB: a point mass for each frozen group, the others' CAVI updates exact given it, the ELBO that of
  the model conditional on the frozen values (:mod:`mixtures.families.gaussian.variational_frozen`);
* NUTS: the program conditioned on the frozen groups' prior sites (``poutine.condition``), which are
  not sample sites: the draws target ``p(θ_free | θ_frozen, X)`` and hold the frozen values.

Other routines refuse ``freeze`` naming those that take it. The groups are the family's
(:meth:`MixtureFamily.frozen_sites` maps each to its program site); the returned parameters hold the
given tensors bit for bit.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mixtures.core.params import Params

#: the parameter groups a fit can hold fixed
GROUPS = ("weights", "means", "covariances")


def check_freeze(freeze: Any) -> tuple[str, ...]:
    """``freeze`` as a tuple of group names (a single name is allowed), or a ``ValueError``."""
    if freeze is None:
        return ()
    names = (freeze,) if isinstance(freeze, str) else freeze
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"freeze must be a group name or a tuple of them, from {GROUPS}; got {freeze!r}.") from None
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise ValueError(f"freeze names unknown parameter group(s) {unknown}; choose from {GROUPS} "
                         "(each group is held whole: all weights, all means or all covariances).")
    if len(set(names)) == len(GROUPS):
        raise ValueError(f"freeze holds every group {GROUPS}: nothing is left to fit; evaluate the parameters "
                         "instead (result.params.log_prob(X)).")
    return tuple(dict.fromkeys(names))


def frozen_values(model: Any, params: Params, groups: tuple[str, ...]) -> dict[str, Tensor]:
    """The program sites of the frozen ``groups`` and their values in ``params`` (by site name)."""
    if not groups:
        return {}
    sites = model.frozen_sites(groups)
    values = model.values_from_params(params)
    return {sites[group]: values[sites[group]] for group in groups}


def with_frozen(model: Any, params: Params, frozen: dict[str, Tensor]) -> Params:
    """``params`` with the frozen sites' values put back exactly (the given tensors, cast to the dtype)."""
    if not frozen:
        return params
    values = model.values_from_params(params)
    for site, value in frozen.items():
        values[site] = value.to(dtype=values[site].dtype, device=values[site].device)
    return model.params_from_values(values)
