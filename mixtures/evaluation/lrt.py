"""The bootstrap likelihood-ratio test for K versus K + 1 components (mclust's ``mclustBootstrapLRT``).

For one covariance structure and K = 1, 2, ...: fit K and K + 1 components to the data
(EM from mclust's ``hc`` start, relative tolerance 1e-5, as :func:`mixtures.experiment.selection`
does), take the statistic ``LRTS = 2 (ℓ_{K+1} − ℓ_K)``, then B times: simulate N points from the
fitted K-component model (the null), refit both models on them by EM **started from the original
fits' parameters** (as mclust does), and record the replicate's statistic. The p-value is mclust's

    p = (1 + #{b : LRTS_b ≥ LRTS}) / (B + 1),

and K + 1 is preferred to K when ``p ≤ level``. Like mclust, with ``k_max=None`` the tests run
K = 1..8 (against 2..9) and **stop at the first K not rejected** (``p > level``), which is then
the chosen number of components; with ``k_max`` given every test up to K = ``k_max`` runs
(``stop=True`` makes it stop early too).

A simulated data set on which a refit fails (a singular covariance, a divergence) is redrawn
from the replicate's next seed, as mclust redraws a replicate whose statistic is NA; the counts
are in the table (``redrawn``), with the replicates whose refits stopped on their budget
(``unconverged``), and a replicate that failed all its draws is NaN and left out of ``replicates``.
The statistic of a replicate can be negative: the K + 1 refit is a local optimum from the
original K + 1 fit, as in mclust.

Replicates run in worker processes (``processes``), with the numbers of a sequential run:
:mod:`mixtures.evaluation.replicates`.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixtures.core.validation import as_data
from mixtures.evaluation.replicates import (
    FIT_ERRORS,
    attempt_seeds,
    check_replicates,
    map_replicates,
    replicate_seeds,
    resolve_processes,
)
from mixtures.families.gaussian.covariance import get_structure
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.gaussian.params import MixtureParams
from mixtures.inference import fit

__all__ = ["bootstrap_lrt", "LRTResult", "MAX_ATTEMPTS", "MCLUST_K_MAX"]

#: draws per replicate before it is given up (NaN): a data set on which a refit fails is redrawn
MAX_ATTEMPTS = 10
#: mclust's default: test K = 1..8 against K + 1 = 2..9
MCLUST_K_MAX = 8


@dataclass
class LRTResult:
    """What :func:`bootstrap_lrt` returns.

    Attributes:
        covariance_type: the structure tested (mclust's name where it has one).
        rows: one dict per test (the tidy table): ``n_components`` (K, the null),
            ``alternative`` (K + 1), ``log_likelihood_null``, ``log_likelihood_alternative``,
            ``statistic`` (``2 (ℓ_{K+1} − ℓ_K)``), ``p_value``, ``replicates`` (B used),
            ``redrawn``, ``unconverged``, ``failed`` (replicates given up), ``rejected``
            (``p ≤ level``; False when no replicate could be fitted: then ``p_value`` is NaN and the sequence stops).
        distribution: K -> ``(B,)`` the replicates' statistics (NaN for a failed replicate).
        level: the significance level.
        n_boot: B asked for.
        chosen: the first K not rejected (None if every test ran rejected K).
        stopped: why the sequence ended (``"not rejected"``, ``"k_max"``, or why a fit failed).
    """

    covariance_type: str
    rows: list[dict[str, Any]]
    distribution: dict[int, Tensor]
    level: float
    n_boot: int
    chosen: int | None
    stopped: str
    fits: dict[int, Any] = field(default_factory=dict, repr=False)

    def table(self) -> list[dict[str, Any]]:
        """The tidy table: one dict per test (see ``rows``)."""
        return [dict(row) for row in self.rows]

    def __str__(self) -> str:
        lines = [f"bootstrap sequential LRT for the number of components: {self.covariance_type}, "
                 f"B = {self.n_boot}, level {self.level:g}",
                 f"{'test':>8} {'LRTS':>12} {'p-value':>9} {'B used':>7} {'redrawn':>8} {'unconv.':>8}"]
        for row in self.rows:
            test = f"{row['n_components']} vs {row['alternative']}"
            lines.append(f"{test:>8} {row['statistic']:>12.4f} {row['p_value']:>9.4f} {row['replicates']:>7} "
                         f"{row['redrawn']:>8} {row['unconverged']:>8}")
        chosen = f"K = {self.chosen}" if self.chosen is not None else "none (every test rejected K)"
        lines.append(f"first K not rejected: {chosen}; stopped: {self.stopped}")
        return "\n".join(lines)


def _refit(K: int, covariance_type: str, X: Tensor, start: MixtureParams, options: dict[str, Any]) -> Any:
    """EM from ``start`` on ``X``, one thread, no warnings (the caller counts what went wrong)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(GaussianMixture(K, covariance_type), X, "em", init=start, threads=1, warn=False, **options)


def _lrt_replicate(null: MixtureParams, alternative: MixtureParams, n_points: int, options: dict[str, Any],
                   seed: int) -> tuple[float, int, bool]:
    """One replicate: ``(statistic, draws redrawn, both refits converged)``; NaN after ``MAX_ATTEMPTS``."""
    covariance_type = null.covariance_type
    for attempt, draw_seed in enumerate(attempt_seeds(seed, MAX_ATTEMPTS)):
        X, _ = null.sample(n_points, seed=draw_seed)
        try:
            fit_null = _refit(null.n_components, covariance_type, X, null, options)
            fit_alt = _refit(alternative.n_components, covariance_type, X, alternative, options)
        except FIT_ERRORS:
            continue
        statistic = 2.0 * (fit_alt.log_likelihood - fit_null.log_likelihood)
        if math.isfinite(statistic):
            return statistic, attempt, bool(fit_null.converged and fit_alt.converged)
    return math.nan, MAX_ATTEMPTS, False


def _check_arguments(covariance_type: str, n_boot: Any, level: Any, k_max: Any, n_points: int) -> int:
    """The tested structure's name and the largest null K, or a ``ValueError`` naming what is wrong."""
    check_replicates(n_boot)
    get_structure(covariance_type)  # unknown names: an error listing the known ones
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1 (e.g. 0.05); got {level!r}.")
    largest = MCLUST_K_MAX if k_max is None else k_max
    if isinstance(largest, bool) or not isinstance(largest, int) or largest < 1:
        raise ValueError(f"k_max (the largest K tested against K + 1) must be an integer >= 1; got {k_max!r}.")
    if largest + 1 > n_points:
        raise ValueError(f"k_max={largest} needs K + 1 = {largest + 1} components, more than the {n_points} points; "
                         f"use k_max <= {n_points - 1}.")
    return largest


def bootstrap_lrt(X: Any, covariance_type: str = "VVV", *, n_boot: int = 999, level: float = 0.05,
                  k_max: int | None = None, stop: bool | None = None, seed: int = 0, processes: int | None = None,
                  init: Any = "hc", reg_covar: float = 1e-6, rtol: float = 1e-5, max_iter: int = 1000) -> LRTResult:
    """Sequential bootstrap LRT of K versus K + 1 components (module docstring), as mclust's
    ``mclustBootstrapLRT(data, modelName, nboot, level, maxG)``.

    Args:
        X: ``(N, D)`` data (tensor, array, DataFrame).
        covariance_type: one structure (mclust's name, e.g. ``"EEE"``, or ours).
        n_boot: B replicates per test (mclust's default 999).
        level: significance level; K is rejected for K + 1 when ``p ≤ level``.
        k_max: the largest null K tested (``None``: mclust's 8, stopping at the first K not rejected).
        stop: stop at the first K not rejected (default: only when ``k_max`` is None, as mclust).
        seed: base seed; replicate ``b`` of the test at K uses its own child seed.
        processes: worker processes for the replicates (``None``: every usable core; 1: this
            process). The numbers do not depend on it.
        init, reg_covar, rtol, max_iter: the fits to the data (mclust's defaults); the refits use
            the same tolerance and budget.

    Returns:
        :class:`LRTResult`: the tidy table (``result.table()``), the bootstrap distributions and
        the first K not rejected.
    """
    X = as_data(X)
    largest = _check_arguments(covariance_type, n_boot, level, k_max, X.shape[0])
    stop = (k_max is None) if stop is None else bool(stop)
    seeds_of = replicate_seeds(seed, largest)  # one base seed per test, then one per replicate
    processes = resolve_processes(processes, n_boot)
    options = {"reg_covar": reg_covar, "rtol": rtol, "max_iter": max_iter}
    fits: dict[int, Any] = {}

    def fitted(K: int) -> Any:
        if K not in fits:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits[K] = fit(GaussianMixture(K, covariance_type), X, "em", init=init, seed=seed, **options)
        return fits[K]

    rows, distribution, chosen, stopped = [], {}, None, "k_max"
    for K in range(1, largest + 1):
        try:
            null, alternative = fitted(K), fitted(K + 1)
        except FIT_ERRORS as error:
            stopped = f"K={K} or K={K + 1} could not be fitted to the data: {' '.join(str(error).split())[:120]}"
            break
        task = functools.partial(_lrt_replicate, null.params, alternative.params, X.shape[0], options)
        outcomes = map_replicates(task, replicate_seeds(seeds_of[K - 1], n_boot), processes)
        statistics = torch.tensor([o[0] for o in outcomes], dtype=torch.float64)
        distribution[K] = statistics
        rows.append(_row(K, null, alternative, statistics, outcomes, level))
        if rows[-1]["replicates"] == 0:  # no p-value: the sequence cannot go on
            stopped = f"no replicate of {K} vs {K + 1} could be fitted ({MAX_ATTEMPTS} draws each)"
            break
        if not rows[-1]["rejected"] and chosen is None:
            chosen = K
            if stop:
                stopped = "not rejected"
                break
    return LRTResult(covariance_type=get_structure(covariance_type).mclust_name, rows=rows,
                     distribution=distribution, level=float(level), n_boot=n_boot,
                     chosen=chosen, stopped=stopped, fits=fits)


def _row(K: int, null: Any, alternative: Any, statistics: Tensor, outcomes: list[tuple[float, int, bool]],
         level: float) -> dict[str, Any]:
    """A test's row of the table: mclust's p-value over the replicates that could be fitted (NaN, and
    not rejected, when none could)."""
    observed = 2.0 * (alternative.log_likelihood - null.log_likelihood)
    usable = statistics[torch.isfinite(statistics)]
    p_value = (1.0 + float((usable >= observed).sum())) / (usable.numel() + 1.0) if usable.numel() else math.nan
    return {"n_components": K, "alternative": K + 1, "log_likelihood_null": null.log_likelihood,
            "log_likelihood_alternative": alternative.log_likelihood, "statistic": observed, "p_value": p_value,
            "replicates": int(usable.numel()), "redrawn": sum(o[1] for o in outcomes if math.isfinite(o[0])),
            "unconverged": sum(1 for o in outcomes if math.isfinite(o[0]) and not o[2]),
            "failed": int(statistics.numel() - usable.numel()), "rejected": bool(p_value <= level)}
