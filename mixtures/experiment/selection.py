"""Model selection over K x covariance type: ``mixtures select`` (and what configs/model_selection.yaml fits)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

from torch import Tensor
from tqdm.auto import tqdm

from mixtures import evaluation
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.inference import ROUTINES, fit


def iteration_options(method: str, tol: float, max_iter: int) -> dict[str, Any]:
    """``tol``/``max_iter`` under the routine's own option names (its record's ``tol_option`` and
    ``budget_option``; MAP/SVI take ``num_steps``, NUTS neither)."""
    routine = ROUTINES[method]
    options: dict[str, Any] = {}
    if routine.tol_option is not None:
        options[routine.tol_option] = tol
    if routine.budget_option is not None:
        options[routine.budget_option] = max_iter
    return options


def select_models(X: Any, k_max: int, covariance_types: Sequence[str], *, method: str = "em",
                  init: str = "kmeans", seed: int = 0, n_init: int = 1, reg_covar: float = 1e-6,
                  options: dict[str, Any] | None = None, progress: bool = False,
                  prior: GaussianPrior | None = None, labels: Tensor | None = None) -> list[dict[str, Any]]:
    """One row per (K, covariance type): the best of ``n_init`` starts (seeds ``seed``, ``seed + 1``...).

    The best start is the non-singular one with the highest log-likelihood (a
    singular one only when every start is singular), as the model_selection
    config's report keeps the best seed. Rows hold ``n_components``,
    ``covariance_type``, ``status`` (``ok``/``failed``), ``log_likelihood``,
    ``bic``, ``aic``, ``icl``, ``n_iter``, ``converged``, ``singular``, ``seed``
    (of the kept start), ``starts`` and ``starts_converged``; failed ones ``error``.
    ``prior``: the models' prior (vb, nuts, MAP-EM). With given class ``labels (N,)``, rows also
    hold ``ari`` and ``nmi`` of the kept start's components against them.
    """
    options = dict(options or {})
    grid = [(k, t) for t in covariance_types for k in range(1, k_max + 1)]
    rows = []
    for k, cov_type in tqdm(grid, disable=not progress, desc="select", unit="model", leave=False,
                            file=sys.stderr):
        row: dict[str, Any] = {"n_components": k, "covariance_type": cov_type, "status": "ok"}
        if k > X.shape[0]:
            row.update(status="failed", error=f"K={k} exceeds the {X.shape[0]} points")
            rows.append(row)
            continue
        starts, errors = [], []
        for start in range(n_init):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    result = fit(GaussianMixture(k, cov_type, prior=prior), X, method, init=init,
                                 seed=seed + start, reg_covar=reg_covar, **options)
                    candidate = dict(evaluation.information_criteria(result, X))
                    candidate.update(log_likelihood=float(result.params.log_prob(X).sum()),
                                     singular=evaluation.is_singular(result.params, reg_covar),
                                     n_iter=int(result.n_iter), converged=bool(result.converged),
                                     seed=seed + start)
                    if labels is not None:
                        predicted = result.predict(X)
                        candidate.update(ari=evaluation.adjusted_rand_index(labels, predicted),
                                         nmi=evaluation.normalized_mutual_info(labels, predicted))
                    starts.append(candidate)
                except (ValueError, FloatingPointError, RuntimeError) as error:
                    errors.append(" ".join(str(error).split())[:80])
        if not starts:
            row.update(status="failed", error=errors[0])
        else:
            best = max(starts, key=lambda c: (not c["singular"], c["log_likelihood"]))
            row.update(best, starts=len(starts), starts_converged=sum(c["converged"] for c in starts))
        rows.append(row)
    return rows
