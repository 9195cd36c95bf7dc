"""Variational Bayes with frozen parameter groups: a point mass for each frozen group.

``fit(model, X, "vb", init=params, freeze=("means",))`` holds a group (all weights, all means or
all covariances, :mod:`mixtures.core.freeze`) at its value ``v`` in ``init``. The frozen group is a
fixed parameter, not a random variable: ``q(θ_frozen) = δ(v)``. The CAVI updates of the free groups
use ``v`` where they used the group's expectations, and each one is the exact optimum given the rest:

* frozen weights ``w``: ``E[log π_k] = log w_k`` (the plug-in weights are ``w``);
* frozen means ``μ⁰``: ``E[μ_k] = μ⁰_k`` with no variance term (``β_k = ∞``: the ``−½ D/β_k`` of the
  E step vanishes); ``q(Λ_k)`` takes the scatter about ``μ⁰_k``, ``W_k = Σ_n r_nk (x_n − μ⁰_k)(x_n − μ⁰_k)ᵀ``
  (expected statistics with missing values), in the structure's own update (``ν_k = ν₀ + N_k``,
  ``Ψ_k = Ψ₀ + W_k + N_k reg_covar I`` for full covariances);
* frozen covariances ``Σ``: ``E[Λ_k] = Σ_k⁻¹`` through its Cholesky factor and ``E[log |Λ_k|] =
  log |Σ_k⁻¹|`` exactly; ``q(μ_k) = N(m_k, (β_k Σ_k⁻¹)⁻¹)`` with the usual ``β_k``, ``m_k``.

The bound. A point mass has no density, so the frozen group's KL term is dropped: the recorded
``elbo`` is the ELBO of the model *conditional on the frozen values*, in which the free groups keep
their own priors — ``μ_k | Λ_k ~ N(m₀, (β₀ Λ_k)⁻¹)`` at the frozen ``Λ_k = Σ_k⁻¹``; and, with frozen
means, the covariances' marginal prior ``Λ_k ~ Wishart(ν₀, Ψ₀⁻¹)`` (the conjugate prior's
``μ | Λ`` factor goes with the means; NUTS, which conditions the program, keeps it as
``p(μ⁰ | Λ)``: the two targets differ by that factor). It bounds ``log p(X | frozen values)`` of that
model and is non-decreasing under the updates (``reg_covar = 0``). In ``result.posterior`` the
frozen group's draws are the given values in every draw (``log_density`` is None: no density).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from mixtures.core.summary import Summary, floored_counts
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.statistics import about_means


def update_holding(summary: Summary, held: MixtureParams, groups: tuple[str, ...], update: Callable[..., Any],
                   prior: Any, cov_type: Any, updates: str, reg_covar: float) -> Any:
    """``q(θ)`` from the statistics of ``q(Z)`` with ``groups`` held at ``held``'s values (module docstring).

    ``update(summary)`` is the unfrozen update (:func:`mixtures.families.gaussian.variational.update`);
    its fields are replaced for the frozen groups (the returned values are ``held``'s tensors).
    """
    dtype = summary.sx.dtype
    if "means" in groups:  # the statistics whose scatter is about the frozen means
        summary = about_means(summary, cov_type, held.locs.to(dtype))
    q = update(summary)
    changes: dict[str, Any] = {}
    if "weights" in groups:
        changes.update(weight_prior="fixed", weight_concentration=held.weights.to(dtype))
    if "means" in groups:
        nk = floored_counts(summary.nk)
        beta = torch.full_like(nk, math.inf)
        zeros = torch.zeros_like(summary.sx)
        xbar = summary.sx / nk[:, None]  # the frozen means about the shift (about_means)
        nu, covariances = cov_type.variational_update(nk, xbar, zeros, torch.zeros_like(nk), summary.sxx, beta,
                                                      prior, reg_covar, updates == "sklearn")
        changes.update(mean_precision=beta, means=held.locs.to(dtype), degrees_of_freedom=nu,
                       covariances=covariances,
                       native=cov_type.native_from_estimate(covariances, "its variational covariance is not "
                                                                         "positive definite"))
    if "covariances" in groups:
        native = held.native.to(dtype)
        changes.update(precision_family="fixed", covariances=cov_type.sklearn_covariances(native)[0], native=native)
    return dataclasses.replace(q, **changes)
