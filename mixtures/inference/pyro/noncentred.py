"""Non-centred component means for NUTS: ``μ_k = loc_k + L_k z_k`` with ``z_k`` standard normal.

A conjugate prior declares ``μ_k | Λ_k ~ N(m₀, (β₀ Λ_k)⁻¹)``. A component the data leave
empty (most of a truncated Dirichlet process's) is sampled from that prior, a funnel: the
spread of ``μ_k`` follows ``Λ_k``, whose sparse default (``ν₀ = D``) spans orders of
magnitude, so no single step size fits and NUTS's trees run to ``max_tree_depth``. In the
coordinates ``z_k = L_k⁻¹ (μ_k - loc_k)``, where ``loc_k`` and the lower Cholesky factor
``L_k`` of the covariance are those of the ``"locs"`` site's own distribution given the
other sites (``m₀`` and ``(β₀ Λ_k)⁻¹`` for the conjugate prior; a fixed scale for the
non-conjugate one), an empty component's ``z_k`` is ``N(0, I)`` whatever ``Λ_k``.

The sampler's coordinates ``q`` are the model's unconstrained ones ``u`` (each site through
its transform to unconstrained space) with ``u_locs`` replaced by ``z``. The map ``g: q ↦ u``
changes only the ``"locs"`` block, which depends on the others only through ``loc_k, L_k``:
its Jacobian is block-triangular, and

    log |det ∂u/∂q| = Σ_k Σ_d log (L_k)_dd        (a diagonal-Normal site: Σ log scale).

:class:`NonCentring` is the Pyro messenger that, inside the prior program, sets the ``"locs"``
site to ``loc + L z`` from the site's own distribution and accumulates that log-determinant;
:func:`standard_coordinates` is the inverse map (for the start). The potential in ``q`` is
``U(g(q)) - log |det ∂u/∂q|`` (:class:`mixtures.inference.pyro.potential.CollapsedPotential`
with ``noncentred=True``). A site whose distribution is neither a Normal nor a multivariate
Normal is left centred (:func:`loc_scale` returns ``None``).
"""

from __future__ import annotations

import pyro.distributions as pdist
import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor
from torch.distributions import Independent, MultivariateNormal, Normal

__all__ = ["NONCENTRED_SITES", "NonCentring", "loc_scale", "standard_coordinates"]

#: the sites sampled in standard coordinates (when their distribution allows it)
NONCENTRED_SITES = ("locs",)


def loc_scale(fn) -> tuple[Tensor, Tensor, bool] | None:
    """``(loc, scale, is_matrix)`` of a (multivariate) Normal site's distribution, or ``None``.

    ``scale`` is the lower Cholesky factor ``(..., D, D)`` of a ``MultivariateNormal``
    (``is_matrix``) or the standard deviations ``(..., D)`` of an ``Independent(Normal)``,
    broadcast to the site's batch shape (a plate expands the distribution).
    """
    while isinstance(fn, (pdist.ExpandedDistribution, Independent)):
        fn = fn.base_dist
    if isinstance(fn, MultivariateNormal):
        return fn.loc, fn.scale_tril, True
    if isinstance(fn, Normal):
        return fn.loc, fn.scale, False
    return None


class NonCentring(Messenger):
    """Inside a program: every site of ``standard`` (name -> ``q``, shaped like the site ``(K, D)``)
    is set to ``loc + L q`` (its own distribution's ``loc``, ``L``) on the components of ``components``
    (``(K,)`` bool; ``None``: all) and to ``q`` itself on the others, and counts as observed;
    ``log_det`` accumulates ``log |det ∂value/∂q|``. A site whose distribution is not Normal is an
    error (check with :func:`loc_scale` first)."""

    def __init__(self, standard: dict[str, Tensor], components: Tensor | None = None):
        super().__init__()
        self.standard, self.components = standard, components
        self.log_det: Tensor | float = 0.0

    def _pyro_sample(self, msg) -> None:
        q = self.standard.get(msg["name"])
        if q is None:
            return
        loc, scale, is_matrix = _parts(msg["fn"], msg["name"])
        if is_matrix:
            value = loc + (scale @ q.unsqueeze(-1)).squeeze(-1)
            log_scale = scale.diagonal(dim1=-2, dim2=-1).log().expand(q.shape)
        else:
            value = loc + scale * q
            log_scale = scale.log().expand(q.shape)
        if self.components is not None:  # the centred components keep their own coordinates
            value = torch.where(self.components.unsqueeze(-1), value, q)
            log_scale = torch.where(self.components.unsqueeze(-1), log_scale, torch.zeros_like(log_scale))
        msg["value"] = value
        self.log_det = self.log_det + log_scale.sum()
        msg["is_observed"] = True


def _parts(fn, name: str) -> tuple[Tensor, Tensor, bool]:
    parts = loc_scale(fn)
    if parts is None:
        raise TypeError(f"site {name!r} is not a (multivariate) Normal: it cannot be non-centred.")
    return parts


def standard_coordinates(fn, value: Tensor, components: Tensor | None = None) -> Tensor:
    """``q = L⁻¹ (value - loc)`` on ``components`` (``(K,)`` bool, ``None``: all), ``value`` on the
    others, for a site's distribution ``fn`` (inverse of :class:`NonCentring`)."""
    loc, scale, is_matrix = _parts(fn, "locs")
    if is_matrix:
        q = torch.linalg.solve_triangular(scale, (value - loc).unsqueeze(-1), upper=False).squeeze(-1)
    else:
        q = (value - loc) / scale
    return q if components is None else torch.where(components.unsqueeze(-1), q, value)
