"""Starts that cannot stay dead, and results that say when a component died.

A component is *dead* at the start when it holds (numerically) no responsibility: a weight
of 0, a density negligible at every point (a mean at 1e300, a spread far too small), or a
responsibility column of zeros. No routine can revive it: EM's and VB's statistics of it
stay 0, MAP's and SVI's gradients vanish with its responsibilities, and NUTS finds no finite
log density to start from. :func:`checked_start` (called by :func:`mixtures.fit` on every
restart's start, for every routine and family) finds such components with one pass over
the data and

* *repairs* them when the routine was asked to re-seed collapses (``on_collapse="reseed"``)
  or when the start came from a named initializer (``"kmeans"``...: the caller did not
  choose it): the component restarts at the worst-explained point of the start with the
  data's own spread (the family's ``params_from_centres``) and weight ``1/K``, as EM's
  re-seeding rule restarts a collapsed one; it is listed in ``extras["reseeded"]`` as
  ``(0, k)``, with a warning;
* otherwise raises :class:`~mixtures.errors.DegenerateStartError` naming each dead
  component, why it is dead and how to fix the start.

EM and hard EM find empty components themselves and list them in their result (with a
warning), so a start given to them is passed as is unless it is to be repaired; k-means and
k-medians move an empty centre to the farthest point, and their starts are not checked.

A start with a point that no component explains (``log p(x) = -inf``) is degenerate too;
it is repaired the same way when a dead component can move there, else refused.

:func:`flag_degenerate` is the other half: after a fit it lists in ``extras`` the
components that ended empty (``"empty_components"``: less than one point's worth of
weight) and, for routines with a covariance floor, those on the ``reg_covar`` floor
(``"collapsed_components"``), with a ``UserWarning``, for every routine that did not
flag them itself (EM and hard EM do). Routines that require a prior (VB, NUTS) are not
flagged for empty components: a sparse prior switches surplus components off on purpose.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.chunks import chunk_size_for
from mixtures.core.family import MixtureFamily
from mixtures.core.params import Params
from mixtures.core.stream import StreamingData, iter_data
from mixtures.errors import DegenerateStartError

#: a component holding less responsibility than this many points at the start is dead
DEAD_MASS = 1e-6


@dataclass
class StartFacts:
    """What one pass over the data says about a start.

    Attributes:
        mass: ``(K,)`` responsibility mass ``N_k`` of every component.
        n_points: ``N``.
        unexplained: points whose density is 0 under every component (``log p(x) = -inf``).
        worst_point: ``(D,)`` the point with the lowest ``log p(x)`` (an unexplained one first).
        broken: components whose log density is NaN or ``+inf`` at some point.
    """

    mass: Tensor
    n_points: int
    unexplained: int
    worst_point: Tensor | None
    broken: list[int]

    def dead(self) -> list[int]:
        """Components holding less than :data:`DEAD_MASS` points, or with broken densities."""
        holding = self.mass >= DEAD_MASS  # NaN compares False: dead
        return sorted(set(torch.nonzero(~holding).reshape(-1).tolist()) | set(self.broken))


def start_facts(params: Params, X: Tensor | StreamingData) -> StartFacts:
    """One pass over ``X`` ``(N, D)`` (in memory or streamed) at the parameters ``params``."""
    K = params.n_components
    mass = torch.zeros(K, dtype=torch.float64, device=params.device)
    broken = torch.zeros(K, dtype=torch.bool, device=params.device)
    n_points = unexplained = 0
    worst_value, worst_point = math.inf, None
    for chunk in iter_data(X, chunk_size_for(K, params.n_features)):
        joint = params.joint_log_prob(chunk)  # (n, K)
        bad = torch.isnan(joint) | (joint == math.inf)
        broken |= bad.any(0)
        joint = joint.masked_fill(bad, -math.inf)
        log_norm = torch.logsumexp(joint, -1)  # (n,)
        explained = torch.isfinite(log_norm)
        resp = torch.where(explained[:, None], (joint - log_norm[:, None]).exp(), 0.0)
        mass += resp.sum(0).to(mass.dtype)
        unexplained += int((~explained).sum())
        n_points += chunk.shape[0]
        lowest = float(log_norm.amin()) if chunk.shape[0] else math.inf
        if lowest < worst_value or worst_point is None:
            worst_value, worst_point = lowest, chunk[int(log_norm.argmin())]
    return StartFacts(mass, n_points, unexplained, worst_point, torch.nonzero(broken).reshape(-1).tolist())


def checked_start(model: MixtureFamily, X: Tensor | StreamingData, start: Params, *, repair: bool,
                  reg_covar: float, method: str, sample: Any = None,
                  responsibilities: Tensor | None = None) -> tuple[Params, list[int]]:
    """``start`` without dead components: returned as is, repaired, or refused (module docstring).

    Args:
        model: the family (its ``params_from_centres`` gives a repaired component the data's spread).
        X: the data ``(N, D)``, in memory or streamed.
        start: the routine's starting parameters.
        repair: restart dead components instead of raising.
        reg_covar: for the repaired component's covariance.
        method: the routine's name (for messages).
        sample: in-memory points ``(M, D)`` whose spread a repaired component takes (default
            ``X``; a callable returning them for streamed data).
        responsibilities: a routine's starting ``q(Z)`` ``(N, K)`` (VB): a column holding less
            than :data:`DEAD_MASS` points is a dead component too (never repaired: the routine
            starts from it exactly).

    Returns:
        The start and the components repaired (in order).
    """
    if responsibilities is not None:
        empty = torch.nonzero(~(responsibilities.sum(0) >= DEAD_MASS)).reshape(-1).tolist()
        if empty:
            raise DegenerateStartError(
                f"method {method!r}: the initial responsibilities give component(s) {empty} no mass (column "
                f"{empty[0]} sums to {float(responsibilities[:, empty[0]].sum()):.3g}), so the routine, which starts "
                "from them exactly, can never revive them. Give every component some responsibility, or start "
                "from labels with exactly K groups or an initializer such as init='kmeans'.", empty)
    repaired: list[int] = []
    for _ in range(start.n_components + 1):
        facts = start_facts(start, X)
        dead = [k for k in facts.dead() if k not in repaired]
        if not dead and not facts.unexplained:
            return start, repaired
        if not repair or not dead or facts.worst_point is None:
            raise DegenerateStartError(_dead_message(start, facts, dead, method), dead)
        points = sample() if callable(sample) else (X if sample is None else sample)
        start = revived(model, start, dead[0], facts.worst_point, points, facts.n_points, reg_covar)
        repaired.append(dead[0])
    raise DegenerateStartError(_dead_message(start, facts, facts.dead(), method), facts.dead())


def check_distributed_start(start: Params, X: Tensor, method: str, responsibilities: Tensor | None = None) -> None:
    """:func:`checked_start` for a distributed run (every rank calls it with its shard): the masses are
    summed over ranks, so every rank takes the same decision; a dead start is refused on every rank
    (repairing would need the worst point of all ranks)."""
    facts = start_facts(start, X)
    local = torch.cat([facts.mass, facts.mass.new_tensor([facts.unexplained, facts.n_points])])
    if responsibilities is not None:
        local = torch.cat([local, responsibilities.sum(0).to(local)])
    (total,) = comm.all_reduce_sum(local)
    K = start.n_components
    facts.mass, facts.unexplained, facts.n_points = total[:K], int(total[K]), int(total[K + 1])
    dead = facts.dead()
    empty = torch.nonzero(~(total[K + 2:] >= DEAD_MASS)).reshape(-1).tolist()
    if dead or facts.unexplained or empty:
        facts.worst_point = facts.worst_point if facts.unexplained else None
        raise DegenerateStartError(_dead_message(start, facts, sorted(set(dead) | set(empty)), method),
                                   sorted(set(dead) | set(empty)))


def revived(model: MixtureFamily, start: Params, component: int, point: Tensor, X: Tensor, n_points: int,
            reg_covar: float) -> Params:
    """``start`` with ``component`` restarted at ``point`` ``(D,)`` with the spread of ``X`` and weight
    ``1/K`` (the other weights rescaled); every other component, and any shared tensor, unchanged.

    (EM's re-seeding mid-fit gives weight ``1/N``, a small perturbation of fitted components; at the
    start nothing is fitted yet, so the restarted component competes on equal terms.)"""
    fresh = model.params_from_centres(X, point.reshape(1, -1).to(X), reg_covar, "pool")  # one component
    axes = type(start).component_axes(start.spec())
    tensors = {}
    for name, value in start.tensors().items():
        axis = axes.get(name)
        if name == "weights" or axis is None:  # a shared tensor (a tied covariance) stays the start's
            tensors[name] = value
            continue
        value = value.clone()
        value.select(axis, component).copy_(fresh.tensors()[name].select(axis, 0).to(value))
        tensors[name] = value
    weights = start.weights.clone()
    weight = 1.0 / start.n_components  # a fresh component competes on equal terms with the others
    others = torch.ones_like(weights, dtype=torch.bool)
    others[component] = False
    rest = weights[others].sum()
    weights[others] = weights[others] * ((1.0 - weight) / rest) if rest > 0 else (1.0 - weight) / others.sum()
    weights[component] = weight
    tensors["weights"] = weights
    return type(start).from_tensors(tensors, start.spec(), validate=False)


def _dead_message(start: Params, facts: StartFacts, dead: list[int], method: str) -> str:
    """What is dead in the start, why, and how to fix it."""
    reasons = []
    for k in dead[:5]:
        weight = float(start.weights[k])
        if k in facts.broken:
            why = "its log density is NaN or +inf at some points (parameters out of range)"
        elif weight == 0.0:
            why = "its weight is 0"
        else:
            why = (f"its weight is {weight:.3g} but its density is negligible at every point (a mean far from "
                   "the data, or a spread far too small)")
        reasons.append(f"component {k}: {why}; it holds {float(facts.mass[k]):.3g} of {facts.n_points} points "
                       "of responsibility")
    text = f"method {method!r}: the start is degenerate"
    if reasons:
        text += " (" + "; ".join(reasons) + ("; ..." if len(dead) > 5 else "") + ")"
        text += (", and no routine can revive a component that explains no point (its responsibilities, "
                 "statistics and gradients stay 0)")
    if facts.unexplained:
        text += (f"; {facts.unexplained} point(s) have zero density under every component (log p(x) = -inf), "
                 "e.g. {}".format([round(v, 6) for v in facts.worst_point.tolist()[:5]]))
    return (text + ". Give every component a positive weight and a mean within the data, start from an "
            "initializer such as init='kmeans', or (em, hard_em, stepwise_em) pass on_collapse='reseed' to "
            "restart dead components at the worst-explained point.")


def flag_degenerate(result: Any, X: Tensor | StreamingData, *, n_points: int, reg_covar: float, floor: bool,
                    flag_empty: bool) -> None:
    """Add ``extras["empty_components"]`` / ``["collapsed_components"]`` to a result that lacks them,
    warning when either is non-empty (module docstring); ``floor``: the routine's covariances carry
    ``reg_covar``; ``flag_empty``: empty components are a failure for this routine."""
    extras = result.extras
    params = result.params
    new: dict[str, list[int]] = {}
    if flag_empty and "empty_components" not in extras:
        new["empty_components"] = torch.nonzero(params.weights * n_points < 1.0).reshape(-1).tolist()
    if floor and "collapsed_components" not in extras:  # reg_covar = 0: numerically singular ones
        new["collapsed_components"] = params.collapsed_components(reg_covar)
    extras.update(new)
    flagged = {name: value for name, value in new.items() if value}
    if not flagged:
        return
    parts = []
    if "empty_components" in flagged:
        parts.append(f"empty (weight below one point) {flagged['empty_components']}")
    if "collapsed_components" in flagged:
        parts.append(f"collapsed (covariance on the reg_covar = {reg_covar:g} floor, or numerically singular) "
                     f"{flagged['collapsed_components']}")
    warnings.warn(f"{result.method} ended with degenerate component(s): {'; '.join(parts)}. "
                  f"{_fix_hint(X, reg_covar, 'collapsed_components' in flagged)}", UserWarning, stacklevel=2)


def _fix_hint(X: Tensor | StreamingData, reg_covar: float, collapsed: bool) -> str:
    """The likely fix: reg_covar on the data's scale when it exceeds every feature's variance."""
    if collapsed and isinstance(X, Tensor) and X.shape[0] > 1:
        largest = float(X.var(0, correction=0).amax())
        if 0 < largest <= reg_covar:
            return (f"reg_covar={reg_covar:g} exceeds the variance of every feature of X (largest {largest:.3g}), "
                    f"so every covariance sits on that floor and components merge: scale reg_covar with the data "
                    f"(e.g. reg_covar={reg_covar:g} * {largest:.3g}) or standardize X.")
    return "Use fewer components, another initialization, or (em, hard_em, stepwise_em) on_collapse='reseed'."


#: components whose log-density ratio varies less than this (sd over the data, nats) are one density
INDISTINGUISHABLE_SD = 0.1
#: points the check reads at most (the first ones)
INDISTINGUISHABLE_ROWS = 20_000


def flag_indistinguishable(result: Any, X: Tensor | StreamingData, *, n_points: int) -> None:
    """Mark a point estimate whose components are copies of each other as not converged.

    From a symmetric start (e.g. ``init="random"``: near-uniform responsibilities) EM moves
    the components apart by tiny amounts per iteration, and an absolute ``tol`` stops it at
    the saddle where they coincide, hundreds of nats below the optimum. Two components
    ``j, k`` are indistinguishable when ``log p_j(x) − log p_k(x)`` varies by less than
    :data:`INDISTINGUISHABLE_SD` nats (sd over the data): no point's odds between them
    differ, so they are one density split in two, which is a saddle of the likelihood, not
    an optimum. Components holding less than one point are left out (a sparse prior's
    spare ones); fits with a posterior are not checked (its mean can merge switched labels).
    Lists the pairs in ``extras["indistinguishable_components"]``; when the routine reported
    convergence, also adds a sentence to ``extras["problems"]``, sets ``converged=False`` and warns.
    """
    if result.posterior is not None or not isinstance(X, Tensor) or result.params.n_components < 2:
        return
    params = result.params
    rows = X[:INDISTINGUISHABLE_ROWS]
    used = torch.nonzero(params.weights * n_points >= 1.0).reshape(-1)
    if used.numel() < 2 or rows.shape[0] < 3:
        return
    log_densities = params.component_log_prob(rows)[:, used].double()          # (M, K_used)
    covariance = torch.cov(log_densities.T)
    variances = covariance.diagonal()
    spread = (variances[:, None] + variances[None, :] - 2 * covariance).clamp_min(0).sqrt()
    if not bool(torch.isfinite(spread).all()):
        return
    pairs = [[int(used[j]), int(used[k])] for j, k in torch.nonzero(spread < INDISTINGUISHABLE_SD).tolist() if j < k]
    result.extras["indistinguishable_components"] = pairs
    if not pairs or not result.converged:  # a fit stopped by its budget already says it did not converge
        return
    text = (f"{result.method} stopped at a saddle: components {pairs} are copies of each other (their log-density "
            f"ratio varies by less than {INDISTINGUISHABLE_SD} nats over the data), far below an optimum; start from "
            "another initialization (e.g. init='kmeans'), use more restarts (n_init) or a smaller tol")
    result.extras.setdefault("problems", []).append(text)
    result.converged = False
    warnings.warn(text + ".", UserWarning, stacklevel=4)  # the caller of mixtures.fit
