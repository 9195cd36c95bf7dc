"""Convergence diagnostics of Markov chains: rank-normalized split R-hat, bulk and tail ESS.

The definitions of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC", Bayesian
Analysis 16(2):667, which Stan, ArviZ and posterior use (the test suite checks these against
ArviZ to 1e-10):

* every chain is split in halves (``S // 2`` draws each; the middle draw of an odd chain is
  dropped), so a chain that drifts disagrees with itself;
* *rank normalization*: the draws pooled over all chains are replaced by normal scores of their
  average ranks, ``z = Φ⁻¹((r − 3/8) / (n + 1/4))`` (Blom), which makes R-hat and ESS finite and
  meaningful for heavy tails;
* ``r_hat = max(R̂(z), R̂(z_folded))`` with ``z_folded`` the normal scores of ``|x − median(x)|``
  (a difference in spread between chains shows there), and the classic
  ``R̂ = sqrt(((S − 1)/S · W + B/S) / W)``;
* the bulk ESS is the ESS of ``z``; the tail ESS the smaller ESS of the indicators
  ``x ≤ q₀.₀₅`` and ``x ≤ q₀.₉₅``; each ESS from the chains' FFT autocovariances, combined as
  in Stan with Geyer's initial positive and monotone sequences.

Thresholds (Vehtari et al. 2021): R-hat below 1.01 and bulk and tail ESS above 100 per chain
before the draws are trusted.

Entries that are constant over all draws have no R-hat (NaN) and an ESS equal to the number
of draws (as ArviZ): whether that is a fixed quantity or a chain that never moved is for the
caller to say.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import rankdata
from torch import Tensor

__all__ = ["split_chains", "rank_normalize", "r_hat", "ess", "ess_bulk", "ess_tail", "R_HAT_GOOD",
           "ESS_PER_CHAIN"]

#: R-hat below which chains are taken to agree (Vehtari et al. 2021)
R_HAT_GOOD = 1.01
#: bulk and tail ESS per chain above which the draws are taken to be enough (Vehtari et al. 2021)
ESS_PER_CHAIN = 100


def _as_array(draws: Any) -> np.ndarray:
    """``(C, S, E)`` float64 array of draws ``(C, S, ...)`` (entries flattened)."""
    values = draws.detach().cpu().double().numpy() if isinstance(draws, Tensor) else np.asarray(draws, dtype=float)
    if values.ndim < 2:
        raise ValueError(f"draws must be shaped (chains, draws, ...); got shape {values.shape}.")
    return values.reshape(values.shape[0], values.shape[1], -1)


def _as_output(values: np.ndarray, draws: Any) -> Tensor:
    shape = tuple(draws.shape[2:])
    return torch.as_tensor(values, dtype=torch.float64).reshape(shape)


def split_chains(values: np.ndarray) -> np.ndarray:
    """``(2C, S // 2, E)``: the first and last ``S // 2`` draws of every chain as separate chains."""
    half = values.shape[1] // 2
    return np.concatenate([values[:, :half], values[:, values.shape[1] - half:]], axis=0)


def rank_normalize(values: np.ndarray) -> np.ndarray:
    """Normal scores of the average ranks of ``values`` ``(C, S, E)`` pooled over chains and draws,
    per entry ``E`` (Blom's offset 3/8)."""
    C, S, E = values.shape
    flat = values.reshape(C * S, E)
    ranks = rankdata(flat, method="average", axis=0)
    return ndtri((ranks - 0.375) / (C * S + 0.25)).reshape(C, S, E)


def _classic_r_hat(values: np.ndarray) -> np.ndarray:
    """``sqrt((B/W + S − 1) / S)`` per entry of ``(C, S, E)`` (NaN where W = 0)."""
    S = values.shape[1]
    within = values.var(axis=1, ddof=1).mean(axis=0)
    between = S * values.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.sqrt((between / within + S - 1) / S)
    return np.where(within > 0, value, np.nan)


def _constant(values: np.ndarray) -> np.ndarray:
    """Entries of ``(C, S, E)`` that are the same in every draw (to float resolution) ``(E,)``."""
    return (values.max(axis=(0, 1)) - values.min(axis=(0, 1))) < np.finfo(float).resolution


def r_hat(draws: Any) -> Tensor:
    """Rank-normalized split R-hat (bulk and folded, the larger) per entry: ``(C, S, ...)`` → ``(...)``.

    Needs at least 4 draws per chain; one chain is compared with itself (its two halves).
    """
    values = _as_array(draws)
    if values.shape[1] < 4:
        raise ValueError(f"R-hat needs at least 4 draws per chain; got {values.shape[1]}.")
    split = split_chains(values)
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[2]), axis=0))
    bulk = _classic_r_hat(rank_normalize(split))
    tail = _classic_r_hat(rank_normalize(folded))
    value = np.fmax(bulk, tail)  # one NaN (a constant fold) leaves the other
    value[_constant(values)] = np.nan
    return _as_output(value, draws)


def _autocovariance(values: np.ndarray) -> np.ndarray:
    """Biased autocovariance per chain at every lag (FFT): ``(C, S, E)`` → ``(C, S, E)``."""
    S = values.shape[1]
    centred = values - values.mean(axis=1, keepdims=True)
    size = 1 << (2 * S - 1).bit_length()
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=1)[:, :S] / S


def _ess_of(values: np.ndarray) -> np.ndarray:
    """Stan's ESS per entry of ``(C, S, E)`` chains (Geyer's initial positive and monotone sequences)."""
    C, S, E = values.shape
    out = np.full(E, float(C * S))
    varying = ~_constant(values)
    if not varying.any():
        return out
    values = values[:, :, varying]
    acov = _autocovariance(values)
    mean_var = acov[:, 0].mean(axis=0) * S / (S - 1.0)
    var_plus = mean_var * (S - 1.0) / S
    if C > 1:
        var_plus = var_plus + values.mean(axis=1).var(axis=0, ddof=1)
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (S, E'): rho[0] = 1
    rho[0] = 1.0
    out[varying] = C * S / np.array([_geyer_tau(rho[:, e], S, C * S) for e in range(rho.shape[1])])
    return out


def _geyer_tau(rho: np.ndarray, S: int, total: int) -> float:
    """The integrated autocorrelation time of one entry from its autocorrelations ``rho`` ``(S,)``.

    Pairs ``Q_m = ρ_{2m} + ρ_{2m+1}`` are summed while positive (initial positive sequence,
    ``m`` up to the first ``Q_m ≤ 0`` or the last pair within ``S − 2`` lags), made non-increasing
    (initial monotone sequence), plus the first ``ρ`` after the last pair when it is positive;
    ``τ = −1 + 2 Σ Q_m (+ ρ_last)``, at least ``1 / log10(C S)``.
    """
    if not np.isfinite(rho).all():
        return math.nan
    pairs = [rho[0] + rho[1]]
    last_even, last_sum = rho[0], pairs[0]  # the pair the loop stopped at
    t = 1
    while t < S - 3 and last_sum > 0:
        last_even, last_sum = rho[t + 1], rho[t + 1] + rho[t + 2]
        pairs.append(last_sum)
        t += 2
    if len(pairs) == 1:  # no pair beyond lag 1 was looked at: τ = −1 + ρ₀
        return max(0.0, 1.0 / math.log10(total))
    kept = np.minimum.accumulate(np.array(pairs[:-1]))
    tail = last_even if (last_even > 0 or last_sum >= 0) else 0.0
    return max(-1.0 + 2.0 * kept.sum() + tail, 1.0 / math.log10(total))


def ess(draws: Any) -> Tensor:
    """Effective sample size of the mean (no rank normalization) per entry, on split chains."""
    return _as_output(_ess_of(split_chains(_as_array(draws))), draws)


def ess_bulk(draws: Any) -> Tensor:
    """Bulk ESS (of the rank-normalized split chains) per entry: ``(C, S, ...)`` → ``(...)``."""
    values = _as_array(draws)
    return _as_output(_ess_of(rank_normalize(split_chains(values))), draws)


def ess_tail(draws: Any, probs: tuple[float, float] = (0.05, 0.95)) -> Tensor:
    """Tail ESS: the smaller ESS of the indicators ``x ≤ q_p`` for the two quantiles ``probs``."""
    values = _as_array(draws)
    flat = values.reshape(-1, values.shape[2])
    out = None
    for prob in probs:
        below = (values <= np.quantile(flat, prob, axis=0)).astype(float)
        value = _ess_of(split_chains(below))
        out = value if out is None else np.minimum(out, value)
    return _as_output(out, draws)
