"""The degrees of freedom ``ν_k``: how they are estimated (free, shared or fixed) and the CM step's root-find.

Given the E step's statistics of the latent scales (``N_k = Σ_n r_nk``, ``Σ_n r_nk E[u_nk]``
and ``Σ_n r_nk E[log u_nk]``), the expected complete-data log-likelihood is, in ``ν_k``,

    N_k (ν/2 log(ν/2) − lgamma(ν/2)) + ν/2 Σ_n r_nk (E[log u_nk] − E[u_nk]) + const,

concave in ``ν`` with derivative ``N_k/2 · f(ν)``,

    f(ν) = log(ν/2) + 1 − ψ(ν/2) + c_k,     c_k = Σ_n r_nk (E[log u_nk] − E[u_nk]) / N_k,

decreasing from ``+∞`` (``ν → 0``) to ``1 + c_k ≤ 0`` (``ν → ∞``; ``log u − u ≤ −1``): the maximizer
is the root of ``f`` (Peel & McLachlan 2000, ECM's second CM step). ``"shared"`` solves one
equation with the pooled ``c = Σ_k (…) / N``. The root is found by bisection on ``log ν``
within the family's bounds, vectorized over components, to the last bit; where ``f`` keeps
its sign over the whole interval (a component the data say is Gaussian, ``f(hi) > 0``) the
bound is the answer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: how ν is estimated: one per component, one shared by all, or a given value
DOF_MODES = ("free", "shared", "fixed")
#: where the root-find (and the Pyro program's ``"dof"`` site) keeps ν by default
DEFAULT_DOF_BOUNDS = (0.1, 1000.0)
#: the degrees of freedom of a free or shared start (a start from responsibilities has no scales)
INITIAL_DOF = 10.0
BISECTION_STEPS = 80


def parse_dof(dof: Any) -> tuple[str, float | None]:
    """``("free" | "shared", None)`` or ``("fixed", value)`` from the family's ``dof`` argument."""
    if isinstance(dof, str):
        if dof in ("free", "shared"):
            return dof, None
        try:
            value = float(dof)
        except ValueError:
            raise ValueError(f"dof must be 'free', 'shared' or a positive number (fixed); got {dof!r}.") from None
    elif isinstance(dof, (int, float)) and not isinstance(dof, bool):
        value = float(dof)
    else:
        raise ValueError(f"dof must be 'free', 'shared' or a positive number (fixed); got {dof!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"a fixed dof must be finite and positive; got {value!r}.")
    return "fixed", value


def parse_bounds(bounds: Any) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"dof_bounds must be two numbers (low, high); got {bounds!r}.") from None
    if not (0 < low < high < math.inf):
        raise ValueError(f"dof_bounds must satisfy 0 < low < high < inf; got {bounds!r}.")
    return low, high


def score(dof: Tensor, offset: Tensor) -> Tensor:
    """``f(ν) = log(ν/2) + 1 − ψ(ν/2) + offset`` (module docstring), elementwise."""
    half = 0.5 * dof
    return half.log() + 1.0 - torch.digamma(half) + offset


def solve(offset: Tensor, bounds: tuple[float, float]) -> Tensor:
    """The root ``ν`` of :func:`score` for every entry of ``offset`` (``c_k``), clamped to ``bounds``."""
    low = offset.new_full(offset.shape, math.log(bounds[0]))
    high = offset.new_full(offset.shape, math.log(bounds[1]))
    for _ in range(BISECTION_STEPS):  # the interval halves: 80 steps reach one ulp of log ν
        middle = 0.5 * (low + high)
        positive = score(middle.exp(), offset) > 0  # the root lies above
        low = torch.where(positive, middle, low)
        high = torch.where(positive, high, middle)
    return (0.5 * (low + high)).exp().clamp(*bounds)


def estimate(nk: Tensor, slogu: Tensor, su: Tensor, mode: str, bounds: tuple[float, float],
             fixed: float | None) -> Tensor:
    """The CM step's ``ν`` ``(K,)`` from ``N_k``, ``Σ r E[log u]``, ``Σ r E[u]`` (each ``(K,)``)."""
    if mode == "fixed":
        return nk.new_full(nk.shape, fixed)
    tiny = 10 * torch.finfo(nk.dtype).eps
    if mode == "shared":
        offset = (slogu.sum() - su.sum()) / nk.sum().clamp_min(tiny)
        return solve(offset.reshape(1), bounds).expand(nk.shape).clone()
    # an empty component (N_k = 0) has offset 0: f > 0 everywhere, ν at the upper bound
    return solve((slogu - su) / nk.clamp_min(tiny), bounds)
