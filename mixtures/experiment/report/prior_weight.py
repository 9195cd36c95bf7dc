"""How much a conjugate prior weighs against the data: the Methods section's prior line.

A conjugate prior acts as pseudo-observations added to each component's data, so its
influence on a fit is a share that can be read off the fitted component sizes
``N_k = N π_k`` (Bishop PRML §10.2):

- weights, Dirichlet ``α_k``: the posterior counts are ``α_k + N_k``, share ``α_k / (α_k + N_k)``;
- means: ``m_k = (β₀ m₀ + N_k x̄_k) / (β₀ + N_k)``, share ``β₀ / (β₀ + N_k)``;
- covariances: the Wishart's degrees of freedom are ``ν₀ + N_k`` (share ``ν₀ / (ν₀ + N_k)``),
  and its inverse scale ``Ψ₀ + N_k S_k + …`` (share of the trace
  ``tr Ψ₀ / (tr Ψ₀ + N_k tr Σ_k)``, with the fitted ``Σ_k`` for ``S_k``). A shared
  covariance pools all ``N`` points.

The line reports the largest share over components (the smallest component is where a
prior decides most): a share of a few per cent is a weak prior; tens of per cent mean the
prior, not the data, shapes that component (the reason VB and EM can disagree on the
same data, e.g. VB's default prior on iris).
"""

from __future__ import annotations

import torch

from mixtures.experiment.config.methods import MethodConfig
from mixtures.experiment.store import RunState, params_from_record

__all__ = ["prior_shares", "prior_weight_text"]


def prior_shares(resolved, weights: torch.Tensor, covariances: torch.Tensor, n_points: int) -> dict[str, float]:
    """Largest prior share over components of each parameter group (module docstring).

    Args:
        resolved: a conjugate :class:`mixtures.priors.ResolvedPrior`.
        weights: fitted mixture weights ``(K,)``; covariances: fitted ``(K, D, D)``.
        n_points: ``N``.

    Returns ``{"weights", "means", "dof", "scale"}`` (``"weights"`` only for a Dirichlet
    prior) as fractions in ``[0, 1]``.
    """
    weights = weights.to(torch.float64)
    covariances = covariances.to(torch.float64)
    counts = n_points * weights                                             # (K,)
    shared = bool(resolved.cov_type.shared)
    pooled = torch.full_like(counts, float(n_points)) if shared else counts  # points behind each covariance
    beta, nu = float(resolved.mean_precision), float(resolved.degrees_of_freedom)
    psi = resolved.covariance_prior.to(torch.float64)
    D = covariances.shape[-1]
    prior_trace = float(psi.diagonal().sum() if psi.dim() == 2 else (psi.sum() if psi.dim() == 1 else D * psi))
    if shared:  # a shared covariance's scatter is the pooled within-component scatter N Σ
        data_trace = n_points * covariances[0].diagonal().sum()
        data_trace = data_trace.expand_as(counts)
    else:
        data_trace = counts * covariances.diagonal(dim1=-2, dim2=-1).sum(-1)
    shares = {
        "means": float((beta / (beta + counts)).max()),
        "dof": float((nu / (nu + pooled)).max()),
        "scale": float((prior_trace / (prior_trace + data_trace)).max()),
    }
    if resolved.weight_prior == "dirichlet":
        alpha = resolved.weight_concentration.to(torch.float64)
        shares["weights"] = float((alpha / (alpha + counts)).max())
    return shares


def prior_weight_text(state: RunState, method: MethodConfig) -> str:
    """``""`` or a clause for the Methods line: the prior's largest shares in this method's first ok fit."""
    if method.prior is None:
        return ""
    tasks = [t for t in state.tasks if t.method.name == method.name and state.ok(t)]
    if not tasks:
        return ""
    task = tasks[0]
    prior = method.gaussian_prior()
    params = params_from_record(state.records[task.key])
    if prior.kind != "conjugate" or params is None or not hasattr(params, "covariances"):
        return ""
    X = state.data.get(task).X
    try:
        resolved = prior.resolve(X, task.n_components, task.covariance_type)
    except (ValueError, RuntimeError):  # a family or structure the Gaussian prior does not describe
        return ""
    shares = prior_shares(resolved, params.weights, params.covariances, X.shape[0])
    parts = [f"means {shares['means']:.0%}", f"covariance degrees of freedom {shares['dof']:.0%}",
             f"covariance scale {shares['scale']:.0%}"]
    if "weights" in shares:
        parts.insert(0, f"weights {shares['weights']:.0%}")
    return ("; the prior's effective weight against the data (largest share over components, "
            f"{task.dataset.name}, seed {task.seed}): " + ", ".join(parts))
