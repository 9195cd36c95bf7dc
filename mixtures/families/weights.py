"""Priors over the mixing weights, shared by every family.

``weight_prior="dirichlet"``: ``weights ~ Dirichlet(α)`` (site ``"weights"``).
``weight_prior="dirichlet_process"``: truncated stick-breaking, ``v_k ~ Beta(1, γ)`` for
``k < K`` (site ``"stick_fractions"``, ``(K-1,)``), ``weights_k = v_k Π_{j<k} (1 - v_j)``
with the last stick taking the rest.

A family's prior declares its weights with :func:`sample_weights`, inverts them with
:func:`weight_site_values`, and MAP-EM finds their posterior mode with :func:`mode_weights`.
"""

from __future__ import annotations

from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor

WEIGHT_PRIORS = ("dirichlet", "dirichlet_process")


def weight_sites(weight_prior: str) -> tuple[str, ...]:
    """The weights' latent site under ``weight_prior``."""
    return ("weights",) if weight_prior == "dirichlet" else ("stick_fractions",)


def resolve_concentration(value: Any, weight_prior: str, n_components: int, like: Tensor) -> Tensor:
    """``α`` ``(K,)`` (Dirichlet) or ``γ`` ``()`` (stick-breaking); ``None`` gives ``1/K``
    (scikit-learn's default). Shapes and positivity are checked with messages naming the fix."""
    K = n_components
    if value is None:
        concentration = like.new_full((K,) if weight_prior == "dirichlet" else (), 1.0 / K)
    else:
        concentration = torch.as_tensor(value, dtype=like.dtype, device=like.device)
        if weight_prior == "dirichlet":
            if concentration.dim() > 1 or (concentration.dim() == 1 and concentration.shape[0] not in (1, K)):
                raise ValueError(
                    "a dirichlet weight_concentration is one positive number or a vector of "
                    f"n_components = {K} of them; got shape {tuple(concentration.shape)}. Give one "
                    f"number (a symmetric prior) or {K} values, or change n_components.")
            concentration = concentration.expand(K).clone()
        elif concentration.dim() != 0:
            raise ValueError("a dirichlet_process weight_concentration is one positive number.")
    if not bool((concentration > 0).all()):
        raise ValueError("weight_concentration must be positive.")
    return concentration


def sample_weights(weight_prior: str, concentration: Tensor, n_components: int) -> Tensor:
    """The weights' ``pyro.sample`` statement; returns the weights ``(K,)``."""
    if weight_prior == "dirichlet":
        return pyro.sample("weights", pdist.Dirichlet(concentration))
    K = n_components
    fractions = pyro.sample("stick_fractions", pdist.Beta(torch.ones_like(concentration).expand(K - 1),
                                                          concentration.expand(K - 1)).to_event(1))
    return stick_breaking(fractions)


def weight_site_values(weights: Tensor, weight_prior: str) -> dict[str, Tensor]:
    """The weights' site value for given weights (inverse of :func:`sample_weights`)."""
    if weight_prior == "dirichlet":
        return {"weights": weights}
    return {"stick_fractions": inverse_stick_breaking(weights)}


def stick_breaking(fractions: Tensor) -> Tensor:
    """Weights ``(..., K)`` from stick fractions ``(..., K-1)``; the last stick takes the rest."""
    remaining = torch.cumprod(1 - fractions, dim=-1)
    ones = torch.ones_like(fractions[..., :1])
    return torch.cat([fractions, ones], -1) * torch.cat([ones, remaining], -1)


def inverse_stick_breaking(weights: Tensor) -> Tensor:
    """Stick fractions ``(..., K-1)`` of weights ``(..., K)`` (inverse of :func:`stick_breaking`).

    ``v_k = w_k / Σ_{j≥k} w_j``: the share component ``k`` takes of the stick left to
    it. The tails are summed from the end rather than as ``1 - Σ_{j<k} w_j``, which
    cancels to rounding noise (even below 0) once the weights left are tiny, so every
    fraction lies in ``[0, 1]`` (the support of the ``Beta`` sites). A stick already
    used up (all later weights 0) breaks off nothing: ``v_k = 0``, where the Beta
    density is finite; any value reproduces the same weights.
    """
    tails = torch.flip(torch.cumsum(torch.flip(weights, (-1,)), -1), (-1,))  # Σ_{j>=k} w_j
    fractions = torch.where(tails > 0, weights / tails.clamp_min(torch.finfo(weights.dtype).tiny),
                            torch.zeros_like(weights))
    return fractions[..., :-1].clamp(0, 1)


def mode_weights(nk: Tensor, weight_prior: str, concentration: Tensor) -> Tensor:
    """Posterior-mode weights ``(K,)`` for responsibility masses ``nk`` ``(K,)``.

    Dirichlet: ``π_k ∝ N_k + α_k - 1``; stick-breaking: ``v_k = N_k / (N_k + γ - 1 + Σ_{j>k} N_j)``.
    (Whether the mode exists is the caller's check: see the Gaussian family's conjugate M step.)
    """
    if weight_prior == "dirichlet":
        mass = (nk + concentration - 1).clamp_min(0)
        if not mass.sum() > 0:
            raise ValueError("the Dirichlet posterior has no interior mode (all N_k + α_k - 1 <= 0); "
                             "use weight_concentration >= 1 for MAP-EM.")
        return mass / mass.sum()
    tail = torch.flip(torch.cumsum(torch.flip(nk, (0,)), 0), (0,))  # Σ_{j>=k} N_j
    after = torch.cat([tail[1:], nk.new_zeros(1)])[:-1]  # Σ_{j>k} N_j for k < K
    head = nk[:-1]
    denominator = head + concentration - 1 + after
    fractions = torch.where(denominator > 0, head / denominator.clamp_min(torch.finfo(nk.dtype).tiny),
                            torch.ones_like(head)).clamp(0, 1)
    return stick_breaking(fractions)
