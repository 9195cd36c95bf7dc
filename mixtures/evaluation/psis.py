"""Pareto smoothed importance sampling (PSIS), PSIS-LOO and WAIC.

Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR
25(72): the largest ``M = ceil(min(S/5, 3 sqrt(S / r_eff)))`` importance ratios are replaced by
the expected order statistics of a generalized Pareto distribution fitted to them (the
empirical Bayes estimate of Zhang & Stephens 2009, with the weakly informative prior on the
shape that shrinks towards 0.5 with weight 10), truncated at the largest raw ratio. The
fitted shape ``k̂`` says how far the estimate can be trusted: below ``min(1 − 1/log10(S), 0.7)``
the smoothed estimate is reliable; above 0.7 the importance ratios have too heavy a tail
(the proposal misses mass the target has), and above 1 the estimate is not even
asymptotically useful.

What it is for (building blocks: not yet wired into the routines' results or the experiment report):

* *the quality of a variational posterior* (Yao, Vehtari, Simpson & Gelman 2018, "Yes, but
  did it work?"): ``k̂`` of the ratios ``p(X, θ_s) / q(θ_s)`` over draws ``θ_s ~ q``;
* *leave-one-out cross-validation* (Vehtari, Gelman & Gabry 2017): ``elpd_loo`` from the ratios
  ``1 / p(x_n | θ_s)`` over posterior draws, and WAIC from the same pointwise log-likelihood.

The test suite checks :func:`psis`, :func:`loo` and :func:`waic` against ArviZ to 1e-10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp
from torch import Tensor

__all__ = ["psis", "gpd_fit", "good_k", "loo", "waic", "lppd", "LooResult", "WaicResult"]

#: Zhang & Stephens' prior on the GPD shape: weight 10 on k = 0.5
PRIOR_K_WEIGHT = 10
PRIOR_K = 0.5


def good_k(n_draws: int) -> float:
    """The k̂ below which PSIS with ``n_draws`` draws is reliable: ``min(1 − 1/log10(S), 0.7)``."""
    return min(1.0 - 1.0 / math.log10(n_draws), 0.7)


def gpd_fit(exceedances: np.ndarray) -> tuple[float, float]:
    """Shape ``k`` and scale ``σ`` of a generalized Pareto distribution fitted to sorted positive
    exceedances ``(M,)`` (ascending): Zhang & Stephens (2009)'s posterior mean of ``b = −k/σ`` on a
    grid, then ``k`` shrunk towards 0.5 as in Vehtari et al. (2024)."""
    n = exceedances.shape[0]
    grid_size = 30 + int(math.sqrt(n))
    b = 1.0 - np.sqrt(grid_size / (np.arange(1, grid_size + 1, dtype=float) - 0.5))
    b = b / (3.0 * exceedances[int(n / 4 + 0.5) - 1]) + 1.0 / exceedances[-1]
    k = np.log1p(-b[:, None] * exceedances).mean(axis=1)  # (grid,)
    profile = n * (np.log(-b / k) - k - 1.0)  # profile log-likelihood of each b
    weights = 1.0 / np.exp(profile - profile[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    b_mean = float(np.sum(b * weights / weights.sum()))
    k_mean = float(np.log1p(-b_mean * exceedances).mean())
    sigma = -k_mean / b_mean
    return (n * k_mean + PRIOR_K_WEIGHT * PRIOR_K) / (n + PRIOR_K_WEIGHT), sigma


def _gpd_quantiles(probs: np.ndarray, k: float, sigma: float) -> np.ndarray:
    """Quantiles of the generalized Pareto distribution at ``probs`` in (0, 1)."""
    if not sigma > 0:
        return np.full_like(probs, np.nan)
    if abs(k) < np.finfo(float).eps:
        return -sigma * np.log1p(-probs)
    return sigma * np.expm1(-k * np.log1p(-probs)) / k


def _smooth_one(log_ratios: np.ndarray, tail_length: int) -> tuple[np.ndarray, float]:
    """Smoothed, normalized log weights ``(S,)`` and ``k̂`` of one vector of log ratios."""
    x = log_ratios - log_ratios.max()
    order = np.argsort(x, kind="stable")
    cutoff = max(x[order[-tail_length - 1]], math.log(np.finfo(float).tiny))
    tail = np.flatnonzero(x > cutoff)
    if tail.shape[0] <= 4:  # too few draws above the cutoff to fit a tail
        return x - logsumexp(x), math.inf
    tail = tail[np.argsort(x[tail], kind="stable")]
    k, sigma = gpd_fit(np.exp(x[tail]) - math.exp(cutoff))
    if math.isfinite(k):
        probs = (np.arange(tail.shape[0]) + 0.5) / tail.shape[0]
        smoothed = np.log(_gpd_quantiles(probs, k, sigma) + math.exp(cutoff))
        x[tail] = np.minimum(smoothed, 0.0)  # truncated at the largest raw ratio (0 after the shift)
    return x - logsumexp(x), k


def psis(log_ratios: Tensor | np.ndarray, r_eff: float = 1.0) -> tuple[Tensor, Tensor]:
    """Pareto-smoothed log weights and ``k̂`` of importance ratios ``log_ratios`` ``(..., S)``.

    Args:
        log_ratios: ``log p(θ_s) − log q(θ_s)`` (any constant offset) for draws ``θ_s ~ q``,
            the draws along the last dimension.
        r_eff: relative efficiency of the draws (ESS / S; 1 for independent draws).

    Returns:
        ``(log_weights (..., S), k_hat (...))``: normalized (``logsumexp = 0``) smoothed log
        weights, and the fitted Pareto shape (``inf`` when the tail has 4 draws or fewer).
    """
    values = log_ratios.detach().cpu().double().numpy() if isinstance(log_ratios, Tensor) \
        else np.asarray(log_ratios, dtype=float)
    S = values.shape[-1]
    if S < 5:
        raise ValueError(f"PSIS needs at least 5 draws; got {S}.")
    tail_length = int(math.ceil(min(S / 5.0, 3.0 * math.sqrt(S / r_eff))))
    flat = values.reshape(-1, S)
    weights, shapes = np.empty_like(flat), np.empty(flat.shape[0])
    for row in range(flat.shape[0]):  # one tail fit per vector (per data point for LOO)
        weights[row], shapes[row] = _smooth_one(flat[row].copy(), tail_length)
    return (torch.as_tensor(weights.reshape(values.shape)),
            torch.as_tensor(shapes.reshape(values.shape[:-1])))


def lppd(log_likelihood: Tensor) -> Tensor:
    """Pointwise log predictive density ``log mean_s p(x_n | θ_s)`` ``(N,)`` of ``(S, N)`` values."""
    return torch.logsumexp(log_likelihood.double(), 0) - math.log(log_likelihood.shape[0])


@dataclass
class LooResult:
    """PSIS-LOO: ``elpd_loo = Σ_n log p(x_n | X₋ₙ)`` (estimated), its standard error, the effective
    number of parameters ``p_loo = lppd − elpd_loo``, and per point ``pointwise`` and ``k_hat``."""

    elpd_loo: float
    se: float
    p_loo: float
    pointwise: Tensor
    k_hat: Tensor
    good_k: float

    @property
    def n_bad(self) -> int:
        """Points whose ``k̂`` exceeds :attr:`good_k` (their LOO estimate is unreliable)."""
        return int((self.k_hat > self.good_k).sum())


def loo(log_likelihood: Tensor, r_eff: float = 1.0, log_ratios: Tensor | None = None) -> LooResult:
    """PSIS-LOO from the pointwise log-likelihood ``(S, N)`` of posterior draws.

    ``log_ratios`` ``(S,)``: when the draws come from an approximation ``q`` rather than the
    posterior, ``log p(X, θ_s) − log q(θ_s)``; they are added to every point's LOO ratios so that
    the estimate targets the posterior (Magnusson, Andersen, Jonasson & Vehtari 2019), and the
    ``k̂`` then also tells how far ``q`` is from it.
    """
    log_likelihood = log_likelihood.detach().cpu().double()
    S, N = log_likelihood.shape
    ratios = -log_likelihood.T  # (N, S)
    if log_ratios is not None:
        ratios = ratios + log_ratios.detach().cpu().double()
    log_weights, k_hat = psis(ratios, r_eff)
    pointwise = torch.logsumexp(log_weights + log_likelihood.T, -1)
    elpd = float(pointwise.sum())
    se = math.sqrt(N * float(pointwise.var(unbiased=False)))
    return LooResult(elpd, se, float(lppd(log_likelihood).sum()) - elpd, pointwise, k_hat, good_k(S))


@dataclass
class WaicResult:
    """WAIC on the log scale: ``elpd_waic = lppd − p_waic`` with ``p_waic = Σ_n Var_s log p(x_n | θ_s)``."""

    elpd_waic: float
    se: float
    p_waic: float


def waic(log_likelihood: Tensor) -> WaicResult:
    """WAIC from the pointwise log-likelihood ``(S, N)`` of posterior draws (Watanabe 2010;
    the variance over draws without the ``S − 1`` correction, as ArviZ)."""
    log_likelihood = log_likelihood.detach().cpu().double()
    N = log_likelihood.shape[1]
    penalty = log_likelihood.var(0, unbiased=False)
    pointwise = lppd(log_likelihood) - penalty
    return WaicResult(float(pointwise.sum()), math.sqrt(N * float(pointwise.var(unbiased=False))),
                      float(penalty.sum()))
