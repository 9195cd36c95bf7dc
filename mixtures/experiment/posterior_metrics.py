"""The Bayesian columns of a result row: how a fit's posterior compares with the exact one and predicts.

- ``held_out_lpd``: held-out log predictive density per point, for every routine (the
  posterior predictive when the fit has draws, the plug-in density otherwise), so EM, VB,
  SVI and NUTS compare on one scale (:func:`mixtures.evaluation.variational.held_out_predictive_density`);
- ``pareto_k``: PSIS ``k̂`` of a variational posterior against the model's joint (Yao et al.
  2018; below 0.5 good, 0.5–0.7 usable, above 0.7 unreliable);
- ``elpd_loo``: PSIS-LOO expected log predictive density per point of a fit with draws (for
  variational draws corrected by their importance ratios, Magnusson et al. 2019), with
  ``loo_bad_k`` points whose LOO estimate is unreliable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import torch

from mixtures.core.result import FitResult
from mixtures.evaluation.psis import loo, psis
from mixtures.evaluation.variational import held_out_predictive_density, importance_log_ratios
from mixtures.experiment.datasets import DataBundle

__all__ = ["POSTERIOR_METRIC_COLUMNS", "posterior_metrics"]

POSTERIOR_METRIC_COLUMNS = ("held_out_lpd", "pareto_k", "elpd_loo", "loo_bad_k")
#: draws used for k̂, LOO and the predictive density at most (evenly spaced): each draw's log prior
#: costs a trace of the prior program (milliseconds)
MAX_DRAWS = 200


def posterior_metrics(result: FitResult, bundle: DataBundle) -> dict[str, Any]:
    """The columns of :data:`POSTERIOR_METRIC_COLUMNS` that apply to ``result`` on ``bundle``."""
    out: dict[str, Any] = {}
    posterior = result.posterior
    if posterior is not None and posterior.n_draws > MAX_DRAWS:
        posterior = posterior.subset(torch.linspace(0, posterior.n_draws - 1, MAX_DRAWS).round().long().unique())
        result = replace(result, posterior=posterior)
    if bundle.X_test is not None:
        out["held_out_lpd"] = held_out_predictive_density(result, bundle.X_test)
    if posterior is None or posterior.n_draws < 5:
        return out
    log_ratios = None
    if posterior.log_density is not None:
        log_ratios = importance_log_ratios(result, bundle.X)
        out["pareto_k"] = float(psis(log_ratios)[1]) if bool(torch.isfinite(log_ratios).all()) else math.inf
    X = bundle.X.to(posterior.draws.dtype)
    log_likelihood = torch.stack([posterior.draw(s).log_prob(X) for s in range(posterior.n_draws)])  # (S, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a flat tail's GPD fit: its k̂ says so
        result_loo = loo(log_likelihood, log_ratios=log_ratios)
    out["elpd_loo"] = result_loo.elpd_loo / X.shape[0]
    out["loo_bad_k"] = result_loo.n_bad
    return out

