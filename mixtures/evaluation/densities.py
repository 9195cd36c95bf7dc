"""Densities compared: KL between Gaussians and (by Monte Carlo) between mixtures, held-out
log-likelihood, and information criteria (BIC, AIC, ICL).

Signs: information criteria follow scikit-learn (``bic``/``aic``/``icl`` lower is better);
mclust reports the negation (higher is better).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mixtures.core.params import Params
from mixtures.core.result import FitResult, params_of
from mixtures.core.validation import as_data, check_nonnegative_float, check_positive_int
from mixtures.errors import ParameterError


def gaussian_kl(loc_p: Tensor, cov_p: Tensor, loc_q: Tensor, cov_q: Tensor) -> Tensor:
    """Closed-form ``KL(N(μ_p, Σ_p) || N(μ_q, Σ_q))`` for batches ``(..., D)``, ``(..., D, D)``.

    ``½ [tr(Σ_q⁻¹ Σ_p) + Δᵀ Σ_q⁻¹ Δ − D + log det Σ_q − log det Σ_p]`` via Cholesky
    factors. Returns ``(...)``.
    """
    L_p, L_q = torch.linalg.cholesky(cov_p), torch.linalg.cholesky(cov_q)
    L_p, L_q = torch.broadcast_tensors(L_p, L_q)
    D = loc_p.shape[-1]
    trace = torch.linalg.solve_triangular(L_q, L_p, upper=False).square().sum((-2, -1))
    delta = (loc_p - loc_q).unsqueeze(-1)
    maha = torch.linalg.solve_triangular(L_q, delta.expand(*L_q.shape[:-1], 1), upper=False)
    maha = maha.square().sum((-2, -1))
    log_det_ratio = 2.0 * (L_q.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                           - L_p.diagonal(dim1=-2, dim2=-1).log().sum(-1))
    return 0.5 * (trace + maha - D + log_det_ratio)


def kl_divergence(p: Params | FitResult, q: Params | FitResult, n_samples: int = 10000,
                  seed: int | None = 0) -> tuple[float, float]:
    """Monte Carlo estimate of ``KL(p || q) = E_p[log p(x) − log q(x)]``.

    KL between mixtures has no closed form; ``n_samples`` points are drawn from
    ``p`` (reproducibly for a given ``seed``) and the log-density ratio averaged.

    Returns:
        ``(estimate, standard_error)`` with ``standard_error = std / sqrt(n)``
        (sample standard deviation of the log ratios). ``KL(p || p)`` is exactly
        ``(0.0, 0.0)``. The estimate can come out slightly negative when ``p`` and
        ``q`` are close; it is not clipped (clipping would bias it).
    """
    p, q = params_of(p, "p"), params_of(q, "q")
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    if p.n_features != q.n_features:
        raise ParameterError(f"p has D={p.n_features} features but q has D={q.n_features}.")
    X, _ = p.sample(n_samples, seed)
    ratio = p.log_prob(X) - q.to(dtype=p.dtype, device=p.device).log_prob(X)  # (n,)
    if not torch.isfinite(ratio).all():
        return math.inf, math.nan  # q has (numerically) no mass where p does
    return float(ratio.mean()), float(ratio.std() / math.sqrt(n_samples))


def held_out_log_likelihood(params: Params | FitResult, X: Any) -> float:
    """Mean log density per point ``(1/N) Σ_n log p(x_n)`` of data ``X`` ``(N, D)``."""
    params = params_of(params, "params")
    return float(params.log_prob(as_data(X, n_features=params.n_features)).mean())


def information_criteria(result: FitResult, X: Any, sample_weight: Any = None) -> dict[str, float]:
    """``bic``, ``aic`` and ``icl`` of a fit on data ``X`` ``(N, D)`` (lower is better); with ``sample_weight``
    ``(N,)``, those of the data with each row counted ``w_n`` times (every sum over points weighted, N = Σ w).

    ``bic`` and ``aic`` are ``result.bic(X)`` and ``result.aic(X)``. ICL
    (integrated completed likelihood, Biernacki et al.) adds to BIC the entropy
    of the MAP classification::

        icl = bic − 2 Σ_n Σ_k ẑ_nk log r_nk = bic − 2 Σ_n log r_{n, ẑ_n}

    with ``r`` the responsibilities ``(N, K)`` and ``ẑ`` the one-hot MAP assignment
    (ties: lowest index, as ``FitResult.predict``). mclust writes
    ``ICL = BIC + 2 Σ ẑ log z`` with its higher-is-better BIC; ours has the
    opposite sign, hence the minus. ``icl >= bic``, equal for crisp posteriors.
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"result must be a FitResult; got {type(result).__name__}.")
    X = as_data(X, n_features=result.params.n_features, dtype=result.params.dtype,
                device=result.params.device)
    joint = result.params.joint_log_prob(X)                              # (N, K)
    # log r_{n, ẑ_n} = max_k joint_nk − logsumexp_k joint_nk, in log space.
    map_log_resp = joint.max(-1).values - torch.logsumexp(joint, -1)     # (N,)
    bic = result.bic(X, sample_weight=sample_weight)
    if sample_weight is not None:
        map_log_resp = map_log_resp * torch.as_tensor(sample_weight).to(map_log_resp)
    return {"bic": bic, "aic": result.aic(X, sample_weight=sample_weight),
            "icl": bic - 2.0 * float(map_log_resp.sum())}


def singular_components(params: Params | FitResult, reg_covar: float, rtol: float = 1e-3,
                        atol: float = 0.0) -> list[int]:
    """Components whose covariance collapsed onto the ``reg_covar`` floor.

    An M step adds ``reg_covar`` to every covariance diagonal, so a component that
    sits on points with (locally) no spread in some direction, e.g. a component
    of a diag fit of Old Faithful on the tied values ``waiting = 83``, ends with a
    smallest covariance eigenvalue of ``reg_covar`` (up to round-off). Such a fit
    has an unbounded likelihood in the limit and must not win a model selection.

    A component is flagged when ``λ_min(Σ_k) <= reg_covar (1 + rtol) + atol``
    (``atol`` covers ``reg_covar = 0``). For ``"tied"`` covariances the shared
    matrix collapses for every component at once, so all are returned.

    Returns:
        Sorted component indices.
    """
    params = params_of(params, "params")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    rtol = check_nonnegative_float(rtol, "rtol")
    atol = check_nonnegative_float(atol, "atol")
    return params.collapsed_components(reg_covar, rtol, atol)


def is_singular(params: Params | FitResult, reg_covar: float, rtol: float = 1e-3,
                atol: float = 0.0) -> bool:
    """True when some component's covariance collapsed to the ``reg_covar`` floor.

    See :func:`singular_components` for the criterion.
    """
    return bool(singular_components(params, reg_covar, rtol, atol))
