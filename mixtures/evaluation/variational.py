"""How good is a variational posterior? Pareto-smoothed importance sampling against the model's joint.

Draws ``θ_s ~ q`` of a VB or SVI fit, weighted by ``p(θ_s, x) / q(θ_s)``, are importance
sampling from ``q`` to the exact posterior. The Pareto shape ``k̂`` fitted to the largest
ratios (Yao, Vehtari, Simpson & Gelman 2018, "Yes, but did it work?") says how far ``q`` is
from the posterior in the way that matters: ``k̂ < 0.5`` — the importance-weighted estimate
converges fast and ``q`` is close; ``0.5 ≤ k̂ < 0.7`` — usable with care; ``k̂ ≥ 0.7`` — the
tails of ``q`` are too light, the variational posterior is unreliable (mean-field VB
typically lands here for overlapping components). ``k̂`` does not change when the ratios
shift by a constant, so neither ``p(x)`` nor a constant Jacobian matters.

``p(θ, x) = p(θ) Π_n Σ_k π_k p(x_n | θ_k)`` is the program's joint with the assignments
summed out; ``q(θ)`` is the density the draws came from, recorded at fit time in
:attr:`mixtures.core.posterior.Posterior.log_density` on the prior's sites.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mixtures.core.result import FitResult
from mixtures.core.validation import as_data
from mixtures.evaluation.psis import psis

__all__ = ["importance_log_ratios", "pareto_k", "k_verdict", "held_out_predictive_density"]

#: k̂ thresholds of Yao et al. (2018)
GOOD_K, USABLE_K = 0.5, 0.7


def k_verdict(k: float) -> str:
    """``"good"`` (``k̂ < 0.5``), ``"usable"`` (``< 0.7``), ``"unreliable"``; ``"unreliable (∞)"`` for ``inf``/NaN."""
    if not math.isfinite(k):
        return "unreliable (∞)"
    return "good" if k < GOOD_K else "usable" if k < USABLE_K else "unreliable"


def importance_log_ratios(result: FitResult, X: Any, max_draws: int | None = None) -> Tensor:
    """``log p(θ_s, x) − log q(θ_s)`` ``(S,)`` of a variational fit's posterior draws on data ``X`` ``(N, D)``.

    ``max_draws``: evenly spaced draws at most. Raises ``ValueError`` when the fit has no
    posterior, or its draws carry no density (MCMC draws; a truncated Dirichlet process's
    renormalized weights under VB).
    """
    posterior = result.posterior
    if posterior is None or posterior.log_density is None:
        what = "no posterior" if posterior is None else f"{posterior.kind} draws without a density log q(θ)"
        raise ValueError(f"importance ratios need a variational posterior whose draws carry log q(θ); this "
                         f"{result.method} fit has {what} (VB with a Dirichlet weight prior and SVI with guide "
                         "'normal' or 'mvn' record it).")
    X = as_data(X, dtype=posterior.draws.dtype, device=posterior.draws.device)
    S = posterior.n_draws
    if max_draws is not None and S > max_draws:
        posterior = posterior.subset(torch.linspace(0, S - 1, int(max_draws)).round().long().unique())
    log_joint = torch.stack([_log_joint(result.model, posterior.draw(s), X)
                             for s in range(posterior.n_draws)])  # a loop over draws: one data pass each
    return log_joint.double() - posterior.log_density.to(device=log_joint.device, dtype=torch.float64)


def _log_joint(model: Any, params: Any, X: Tensor) -> Tensor:
    """``log p(θ) + Σ_n log p(x_n | θ)``: the program's joint with the assignments summed out."""
    return model.log_prior(params, X) + params.log_prob(X).sum()


def pareto_k(result: FitResult, X: Any, max_draws: int | None = None) -> float:
    """The PSIS ``k̂`` of a variational fit's draws against the model's joint on ``X`` (module docstring)."""
    log_ratios = importance_log_ratios(result, X, max_draws)
    if not bool(torch.isfinite(log_ratios).all()):
        return math.inf  # a draw the model gives zero density: q is not even absolutely continuous w.r.t. p
    return float(psis(log_ratios)[1])


def held_out_predictive_density(result: FitResult, X_test: Any) -> float:
    """Mean held-out log predictive density per point of ``X_test`` ``(M, D)``.

    With a posterior: ``mean_n log mean_s p(x_n | θ_s)`` (the posterior predictive);
    without one: ``mean_n log p(x_n | θ̂)`` at the fitted parameters. The same number for
    every routine, so point estimates and posteriors compare on one scale.
    """
    if result.posterior is not None:
        return float(result.posterior.predictive_log_prob(X_test).mean())
    X_test = as_data(X_test, dtype=result.params.dtype, device=result.params.device)
    return float(result.params.log_prob(X_test).mean())
