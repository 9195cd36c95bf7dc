"""k-means (Lloyd, L2) and k-medians (L1 distance, coordinate-wise median updates) as routines.

Both start from the initial parameters' component means as centres (the Lloyd math is
:mod:`mixtures.kernels.kmeans`); the family turns the partition into a mixture
(capability ``"partition"``: for the Gaussian family,
:mod:`mixtures.families.gaussian.partition`). Empty clusters are handled by one
documented rule: the point farthest from its own centre (taken from a cluster
that keeps at least one other point) becomes the empty cluster's centre and
member, so no centre is ever undefined.

Convergence: no assignment changed, or the squared centre shift summed over
clusters fell below ``tol`` times the mean per-feature variance of the data
(scikit-learn's rule).

The result's ``params`` is the *induced Gaussian mixture* of the final
partition: the model's covariance type fitted by one hard M step (weights =
cluster fractions, means = cluster means, covariances = within-cluster scatter
+ ``reg_covar``). The history records its log-likelihood and classification
ELBO at every iteration, on the same scale as EM, plus ``objective``: the
inertia (sum of squared L2 distances) or the sum of L1 distances. ``extras``
holds ``centers`` ``(K, D)`` (the medians for k-medians), ``labels`` ``(N,)``
and ``inertia``.

The clustering never fails for want of a Gaussian: the induced mixture is built
leniently (degenerate clusters take the pooled covariance; see the family's partition
module). ``extras["degenerate_clusters"]`` lists the degenerate clusters of the final
partition and ``extras["covariance_floor"]`` the floor (0.0: none).

Distributed k-means (``fit(..., method="kmeans", distributed=True)``, option
``distributed`` of :func:`lloyd` and friends): every pass's sums, counts and
inertia are all-reduced; the empty-cluster rule picks among the K farthest
points of all ranks (each rank contributes its K farthest, padded with ``-inf``
distances, gathered by :func:`mixtures.distributed.global_farthest`), so it
chooses the same point as one process on all the data; ``tol``'s scale and the
induced mixture's statistics are global. ``extras["labels"]`` are the rank's own
shard's. k-medians does not run distributed (medians do not add up over shards).

Weights (``sample_weight`` ``(N,)``): weighted means (k-means) or weighted medians (k-medians),
weighted inertia / L1 objective, ``tol`` scaled by the weighted variance, and the induced mixture
of the weighted partition; integer weights give the fit of the data with rows repeated while no
cluster empties (see :func:`mixtures.kernels.kmeans.lloyd`).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from torch import Tensor

from mixtures.core import comm
from mixtures.core.family import MixtureFamily
from mixtures.core.history import History
from mixtures.core.params import Params
from mixtures.core.result import FitResult
from mixtures.core.stream import StreamingData, bounded_chunk_size
from mixtures.core.validation import check_nonnegative_float, check_positive_int
from mixtures.errors import ConvergenceWarning
from mixtures.inference.registry import register
from mixtures.kernels.kmeans import assign, lloyd


def _run(model: MixtureFamily, X: Tensor | StreamingData, init: Params, metric: str, *,
         max_iter: int = 300, tol: float = 1e-4, reg_covar: float = 1e-6,
         track_likelihood: bool = True, warn: bool = True, chunk_size: int | None = None,
         distributed: bool = False, sample_weight: Tensor | None = None) -> FitResult:
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    chunk_size = bounded_chunk_size(chunk_size, X)  # buffers of at most N rows
    if distributed and metric != "l2":
        raise ValueError("distributed k-medians is not supported (medians do not add up over shards); "
                         "use method='kmeans' or fit in one process.")
    # every rank takes the moments about the same point
    shift = comm.broadcast(model.statistics_shift(X)) if distributed else model.statistics_shift(X)
    history = History()
    start = time.perf_counter()
    weighted = {} if sample_weight is None else {"sample_weight": sample_weight}

    def record(iteration: int, centers: Tensor, *_: Any) -> None:
        params, summary, objective, _ = model.partition_mixture(X, centers, reg_covar, shift, metric, chunk_size,
                                                                distributed, **weighted)
        row = {"iteration": iteration, "objective": objective}
        if track_likelihood:
            log_likelihood = float(model.e_step(X, params, shift, chunk_size=chunk_size, **weighted).log_likelihood)
            if distributed:
                log_likelihood = comm.all_reduce_float(log_likelihood, shift.device)
            lower_bound = float(model.elbo(summary, params))
            row.update(log_likelihood=log_likelihood, elbo=lower_bound, kl=log_likelihood - lower_bound)
        history.append(time=time.perf_counter() - start, **row)

    centers = model.partition_centres(init)
    record(0, centers)
    if max_iter == 0:
        n_iter, converged = 0, False
    else:
        centers, _, _, n_iter, converged = lloyd(X, centers, metric, max_iter=max_iter, tol=tol,
                                                 on_iteration=record, chunk_size=chunk_size,
                                                 distributed=distributed, sample_weight=sample_weight)
    if not converged and max_iter > 0 and warn:
        warnings.warn(f"{'k-means' if metric == 'l2' else 'k-medians'} did not converge in "
                      f"max_iter={max_iter} iterations; increase max_iter or tol.",
                      ConvergenceWarning, stacklevel=3)
    params, _, objective, flags = model.partition_mixture(X, centers, reg_covar, shift, metric, chunk_size,
                                                          distributed, **weighted)
    labels = assign(X, centers, metric)[0] if isinstance(X, Tensor) else None
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=n_iter, method="kmeans" if metric == "l2" else "kmedians",
                     objective=-objective, init=init,
                     extras={"centers": centers, "labels": labels, "inertia": objective, **flags})


@register("kmeans", summary="Lloyd's k-means (L2); the result is the Gaussian mixture the partition induces",
          requires=frozenset({"statistics", "partition"}), prior="rejected", streaming=True, distributed=True,
          starts_from_centres=True,
          gap="k-means: the same for its hard assignments under the mixture it implies")
def fit_kmeans(model: MixtureFamily, X: Tensor, init: Params, *, seed: int | None = None,
               reg_covar: float = 1e-6, max_iter: int = 300, tol: float = 1e-4, track_likelihood: bool = True,
               warn: bool = True, chunk_size: int | None = None, distributed: bool = False,
               sample_weight: Tensor | None = None) -> FitResult:
    """k-means (Lloyd). Options: ``max_iter``, ``tol``, ``track_likelihood``, ``warn``,
    ``chunk_size`` (module docstring)."""
    return _run(model, X, init, "l2", max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                track_likelihood=track_likelihood, warn=warn, chunk_size=chunk_size, distributed=distributed,
                sample_weight=sample_weight)


@register("kmedians", summary="k-medians (L1 distance, coordinate-wise medians)",
          requires=frozenset({"statistics", "partition"}), prior="rejected", starts_from_centres=True,
          gap="k-medians: the same for its hard assignments")
def fit_kmedians(model: MixtureFamily, X: Tensor, init: Params, *, seed: int | None = None,
                 reg_covar: float = 1e-6, max_iter: int = 300, tol: float = 1e-4, track_likelihood: bool = True,
                 warn: bool = True, chunk_size: int | None = None, sample_weight: Tensor | None = None) -> FitResult:
    """k-medians (L1). Options as :func:`fit_kmeans`."""
    return _run(model, X, init, "l1", max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                track_likelihood=track_likelihood, warn=warn, chunk_size=chunk_size, sample_weight=sample_weight)
