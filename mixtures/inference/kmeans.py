"""k-means (Lloyd, L2) and k-medians (L1 distance, coordinate-wise median updates).

Both start from ``init.locs`` as centres. Empty clusters are handled by one
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
leniently (:func:`induced_params`). A *degenerate* cluster, one whose own
covariance + ``reg_covar`` is singular (a singleton, identical points, fewer
points than dimensions: ``reg_covar=0`` makes these common) or that is empty,
takes the pooled within-cluster covariance ``Σ_k S_k / N`` of the partition
instead (the "tied" estimate, in the model's covariance type), + ``reg_covar``;
an empty cluster's mean is its centre, its weight ≈ 0. When the pooled
covariance is singular too (every cluster degenerate along a common direction,
e.g. a constant feature), it is raised on the diagonal by
``max(1e-6, 1000 D eps)`` times its largest variance (times the data's mean
variance when that is 0, or 1 for constant data): a floor relative to the
clusters' scale that passes the Cholesky test in any dtype. Centres and labels
are untouched. ``extras["degenerate_clusters"]`` lists the degenerate clusters
of the final partition and ``extras["covariance_floor"]`` the floor (0.0: none).

Distributed k-means (``fit(..., method="kmeans", distributed=True)``, option
``distributed`` of :func:`lloyd` and friends): every pass's sums, counts and
inertia are all-reduced; the empty-cluster rule picks among the K farthest
points of all ranks (each rank contributes its K farthest, padded with ``-inf``
distances, gathered by :func:`mixtures.distributed.global_farthest`), so it
chooses the same point as one process on all the data; ``tol``'s scale and the
induced mixture's statistics are global. ``extras["labels"]`` are the rank's own
shard's. k-medians does not run distributed (medians do not add up over shards).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mixtures import distributed as dist_utils
from mixtures.errors import ConvergenceWarning, SingularCovarianceError
from mixtures.inference.registry import register
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams, chunk_size_for, iter_chunks
from mixtures.result import FitResult, History
from mixtures.stream import StreamingData, iter_data
from mixtures.suffstats import Summary, default_shift, e_step, elbo, floored_counts, m_step
from mixtures.validation import check_nonnegative_float, check_positive_int

METRICS = ("l2", "l1")


def assign(X: Tensor, centers: Tensor, metric: str = "l2") -> tuple[Tensor, Tensor]:
    """Nearest centre of every point: ``(labels (N,), distances (N,))``.

    ``distances`` are squared Euclidean for ``"l2"`` and L1 for ``"l1"``.
    """
    K, D = centers.shape
    labels = torch.empty(X.shape[0], dtype=torch.long, device=X.device)
    distances = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    center_norms = centers.square().sum(-1)
    for rows in iter_chunks(X.shape[0], chunk_size_for(K, D)):
        x = X[rows]
        if metric == "l2":
            d = (x.square().sum(-1, keepdim=True) - 2.0 * x @ centers.T + center_norms).clamp_min_(0)
        else:
            d = torch.cdist(x, centers, p=1)
        distances[rows], labels[rows] = d.min(-1)
    return labels, distances


def update_centers(X: Tensor, labels: Tensor, n_clusters: int, metric: str = "l2") -> Tensor:
    """Means (``"l2"``) or coordinate-wise medians (``"l1"``) of every cluster ``(K, D)``.

    Every cluster must be non-empty (see :func:`fill_empty_clusters`). The median
    of an even number of values is the average of the middle two, as numpy's.
    """
    if metric == "l2":
        sums = X.new_zeros(n_clusters, X.shape[1]).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=n_clusters).to(X.dtype)
        return sums / counts[:, None]
    order = torch.argsort(labels, stable=True)
    groups = torch.split(X[order], torch.bincount(labels, minlength=n_clusters).tolist())
    return torch.stack([torch.quantile(group, 0.5, dim=0) for group in groups])  # loop over K


def fill_empty_clusters(labels: Tensor, distances: Tensor, n_clusters: int) -> tuple[Tensor, list[int]]:
    """Give every empty cluster the farthest point of a cluster that can spare one."""
    counts = torch.bincount(labels, minlength=n_clusters)
    empty = torch.nonzero(counts == 0).reshape(-1).tolist()
    if not empty:
        return labels, []
    labels = labels.clone()
    distances = distances.clone()
    for cluster in empty:  # loop over (few) empty clusters, never over points
        spare = counts[labels] > 1
        candidates = torch.where(spare, distances, torch.full_like(distances, -1.0))
        point = int(candidates.argmax())
        if candidates[point] < 0:
            raise ValueError(
                f"cannot fill empty cluster {cluster}: fewer points than clusters. "
                "Use fewer components."
            )
        counts[labels[point]] -= 1
        counts[cluster] += 1
        labels[point] = cluster
        distances[point] = -1.0
    return labels, empty


def _farthest(candidates: tuple[Tensor, Tensor, Tensor] | None, points: Tensor, distances: Tensor,
              labels: Tensor, keep: int) -> tuple[Tensor, Tensor, Tensor]:
    """Merge a chunk into the running top-``keep`` farthest points ``(points, distances, labels)``."""
    if candidates is not None:
        points = torch.cat([candidates[0], points])
        distances = torch.cat([candidates[1], distances])
        labels = torch.cat([candidates[2], labels])
    top = torch.topk(distances, min(keep, distances.shape[0])).indices
    return points[top], distances[top], labels[top]


def lloyd_pass(X: Tensor | StreamingData, centers: Tensor, chunk_size: int | None = None,
               keep_labels: bool = True, distributed: bool = False):
    """One pass of Lloyd's algorithm: assignments to ``centers`` and what the update needs.

    Returns ``(sums (K, D), counts (K,), inertia, farthest, labels)`` where
    ``farthest`` holds the K points farthest from their centres (for empty
    clusters), ``(points (K, D), distances (K,), labels (K,))`` by decreasing
    distance, and ``labels`` ``(N,)`` is None for streamed data.

    ``distributed``: ``X`` is this rank's shard; ``sums``, ``counts`` and
    ``inertia`` are summed over ranks and ``farthest`` is the K farthest points of
    all ranks (:func:`mixtures.distributed.global_farthest`), identical on every
    rank; ``labels`` stay this rank's.
    """
    K, D = centers.shape
    sums = centers.new_zeros(K, D)
    counts = centers.new_zeros(K)
    inertia = 0.0
    farthest = None
    labels = [] if keep_labels and isinstance(X, Tensor) else None
    for chunk in iter_data(X, chunk_size or chunk_size_for(K, D)):
        chunk_labels, distances = assign(chunk, centers)
        sums.index_add_(0, chunk_labels, chunk)
        counts += torch.bincount(chunk_labels, minlength=K).to(counts.dtype)
        inertia += float(distances.sum())
        farthest = _farthest(farthest, chunk, distances, chunk_labels, K)
        if labels is not None:
            labels.append(chunk_labels)
    if distributed:
        sums, counts, total = dist_utils.all_reduce_sum(
            sums, counts, torch.tensor(inertia, dtype=torch.float64, device=sums.device))
        inertia = float(total)
        farthest = dist_utils.global_farthest(farthest, K, centers)
    return sums, counts, inertia, farthest, (torch.cat(labels) if labels is not None else None)


def _relocate_empty(sums: Tensor, counts: Tensor, farthest: tuple[Tensor, Tensor, Tensor]) -> list[int]:
    """Move the farthest points into empty clusters (in place), as scikit-learn does.

    ``farthest`` is ``(points (k, D), distances (k,), labels (k,))`` by decreasing
    distance; rows with distance ``-inf`` are padding (distributed runs), never used.
    """
    empty = torch.nonzero(counts == 0).reshape(-1).tolist()
    points, distances, labels = farthest
    available = int(torch.isfinite(distances).sum())  # padding sorts last
    candidate = 0
    for cluster in empty:  # loop over (few) empty clusters, never over points
        while candidate < available and counts[labels[candidate]] <= 1:
            candidate += 1
        if candidate == available:
            raise ValueError(f"cannot fill empty cluster {cluster}: fewer points than clusters. "
                             "Use fewer components.")
        donor = int(labels[candidate])
        sums[donor] -= points[candidate]
        counts[donor] -= 1
        sums[cluster] = points[candidate]
        counts[cluster] = 1
        candidate += 1
    return empty


def _mean_variance(X: Tensor | StreamingData, distributed: bool = False) -> float:
    """Mean per-feature variance of the data (scikit-learn's scale for ``tol``), in one pass.

    ``distributed``: of all ranks' data (moments about rank 0's shift, all-reduced).
    """
    if distributed:
        n, _, first, second = dist_utils.centred_moments(X)
        return float((second / n - (first / n).square()).mean()) if n > 1 else 0.0
    if isinstance(X, Tensor):
        return float(X.var(0, unbiased=False).mean()) if X.shape[0] > 1 else 0.0
    total, first, second = 0, 0.0, 0.0
    shift = X.head(1)[0]  # centring avoids cancellation in E[x²] - E[x]²
    for chunk in iter_data(X, 1 << 16):
        centred = chunk - shift
        total += chunk.shape[0]
        first = first + centred.sum(0)
        second = second + centred.square().sum(0)
    return float((second / total - (first / total).square()).mean())


def lloyd(X: Tensor | StreamingData, centers: Tensor, metric: str = "l2", max_iter: int = 300,
          tol: float = 1e-4, on_iteration: Any = None, chunk_size: int | None = None,
          distributed: bool = False) -> tuple[Tensor, Tensor | None, float, int, bool]:
    """Lloyd iterations from ``centers`` ``(K, D)``.

    L2 runs one pass per iteration (any data source, scikit-learn's loop: assign
    and accumulate, relocate empty clusters to the farthest points, stop when the
    statistics are unchanged or the centre shift is below ``tol`` times the mean
    variance). L1 (k-medians) needs every cluster's members for its medians and
    runs in memory.

    Returns ``(centers, labels, objective, n_iter, converged)`` where ``objective``
    is the inertia (``"l2"``) or sum of L1 distances (``"l1"``) of the returned
    labels to the returned centres (labels None for streamed data).
    ``on_iteration(iteration, centers, labels, objective)`` is called after every update.

    ``distributed`` (L2 only): ``X`` is this rank's shard; every pass's sums,
    counts, inertia and farthest points are combined over ranks
    (:func:`lloyd_pass`), so every rank takes the same steps as one process on all
    the data, and returns the same centres (``labels`` of its own shard).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    if distributed and metric != "l2":
        raise ValueError("distributed k-medians is not supported (medians do not add up over shards); "
                         "use k-means (metric='l2') or fit in one process.")
    if metric == "l1":
        if not isinstance(X, Tensor):
            raise ValueError("k-medians needs the data in memory (medians are not additive over chunks).")
        return _lloyd_l1(X, centers, max_iter, tol, on_iteration)
    threshold = tol * _mean_variance(X, distributed)
    previous = None
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        sums, counts, _, farthest, _ = lloyd_pass(X, centers, chunk_size, keep_labels=False,
                                                  distributed=distributed)
        _relocate_empty(sums, counts, farthest)
        new_centers = sums / counts[:, None]
        shift = float((new_centers - centers).square().sum())
        # unchanged assignments give bit-identical sums: the strict fixed point
        fixed_point = (previous is not None and torch.equal(counts, previous[0])
                       and torch.equal(sums, previous[1]))
        previous = (counts, sums)
        centers = new_centers
        if on_iteration is not None:
            on_iteration(iteration, centers, None, math.nan)
        if fixed_point or shift <= threshold:
            converged = True
            break
    _, _, inertia, _, labels = lloyd_pass(X, centers, chunk_size, distributed=distributed)
    return centers, labels, inertia, iteration, converged


def _lloyd_l1(X: Tensor, centers: Tensor, max_iter: int, tol: float, on_iteration: Any):
    K = centers.shape[0]
    threshold = tol * _mean_variance(X)
    labels, distances = assign(X, centers, "l1")
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        labels, _ = fill_empty_clusters(labels, distances, K)
        new_centers = update_centers(X, labels, K, "l1")
        shift = float((new_centers - centers).square().sum())
        centers = new_centers
        new_labels, distances = assign(X, centers, "l1")
        if on_iteration is not None:
            on_iteration(iteration, centers, new_labels, float(distances.sum()))
        if torch.equal(new_labels, labels) or shift <= threshold:
            labels = new_labels
            converged = True
            break
        labels = new_labels
    return centers, labels, float(distances.sum()), iteration, converged


def partition_summary(X: Tensor | StreamingData, centers: Tensor, cov_type, shift: Tensor,
                      metric: str = "l2", chunk_size: int | None = None,
                      distributed: bool = False) -> tuple[Summary, float]:
    """Statistics of the nearest-centre partition (one pass): ``(summary, objective)``.

    ``objective`` is the inertia (L2) or the sum of L1 distances to the centres.
    ``distributed``: every sum (``nk``, ``sx``, ``sxx``, the point count and
    ``objective``) is all-reduced over ranks in one collective (``shift`` must be
    the same on every rank).
    """
    K, D = centers.shape
    nk, sx, sxx, objective = shift.new_zeros(K), shift.new_zeros(K, D), None, 0.0
    n_points = 0
    for chunk in iter_data(X, chunk_size or chunk_size_for(K, D)):
        labels, distances = assign(chunk, centers, metric)
        objective += float(distances.sum())
        resp = torch.nn.functional.one_hot(labels, K).to(chunk.dtype)
        centred = chunk - shift
        nk += resp.sum(0)
        sx += resp.T @ centred
        moment = cov_type.second_moment(centred, resp)
        sxx = moment if sxx is None else sxx + moment
        n_points += chunk.shape[0]
    if sxx is None:  # an empty shard
        sxx = cov_type.second_moment(shift.new_zeros(0, D), shift.new_zeros(0, K))
    if distributed:
        totals = torch.tensor([float(n_points), objective], dtype=torch.float64, device=shift.device)
        nk, sx, sxx, totals = dist_utils.all_reduce_sum(nk, sx, sxx, totals)
        n_points, objective = int(round(float(totals[0]))), float(totals[1])
    nan = shift.new_tensor(math.nan)
    return Summary(shift, nk, sx, sxx, n_points, nan, shift.new_zeros(())), objective


#: relative size of the induced mixture's covariance floor (module docstring)
INDUCED_FLOOR = 1e-6


def _pooled_within(summary: Summary, cov_type) -> Tensor:
    """Pooled within-cluster covariance ``Σ_k S_k / N`` in the form of the type's statistic:
    ``(D, D)`` for full and tied, per-dimension variances ``(D,)`` for diag and spherical."""
    counts = floored_counts(summary.nk)
    means = summary.sx / counts[:, None]  # (K, D), shifted frame
    if cov_type.name == "tied":
        pooled = summary.sxx - (counts[:, None] * means).T @ means
    elif cov_type.name == "full":
        pooled = (summary.sxx - counts[:, None, None] * means.unsqueeze(-1) * means.unsqueeze(-2)).sum(0)
    else:
        return ((summary.sxx - counts[:, None] * means.square()).sum(0) / counts.sum()).clamp_min(0)
    pooled = pooled / counts.sum()
    return 0.5 * (pooled + pooled.T)


def _lenient_statistics(summary: Summary, cov_type, degenerate: set[int], floor: float) -> Summary:
    """Statistics in which every ``degenerate`` cluster has the pooled covariance (+ ``floor``).

    Such a cluster keeps its count; its scatter is the pooled covariance about the shift
    (mean 0 in the shifted frame, so ``E[x²] - E[x]²`` does not cancel; the caller puts
    the cluster's mean back). For tied the floor is added to the shared statistic.
    """
    if not degenerate and floor == 0.0:
        return summary
    K, D = summary.sx.shape
    counts = floored_counts(summary.nk)
    eye = torch.eye(D, dtype=summary.sx.dtype, device=summary.sx.device)
    if cov_type.name == "tied":
        return replace(summary, sxx=summary.sxx + counts.sum() * floor * eye)
    pooled = _pooled_within(summary, cov_type)
    pooled = pooled + floor * (eye if pooled.dim() == 2 else 1.0)
    chosen = torch.zeros(K, dtype=torch.bool, device=summary.sx.device)
    chosen[sorted(degenerate)] = True
    scatter = counts.reshape((-1,) + (1,) * pooled.dim()) * pooled  # (K, D, D) or (K, D)
    mask = chosen.reshape((-1,) + (1,) * pooled.dim())
    return replace(summary, sx=torch.where(chosen[:, None], torch.zeros_like(summary.sx), summary.sx),
                   sxx=torch.where(mask, scatter, summary.sxx))


def _covariance_floor(summary: Summary, cov_type, data_variance: Callable[[], float]) -> float:
    """``max(1e-6, 1000 D eps)`` times the pooled covariance's largest variance (module docstring)."""
    pooled = _pooled_within(summary, cov_type)
    variances = pooled.diagonal() if pooled.dim() == 2 else pooled
    scale = float(variances.max())
    if not scale > 0:  # every cluster is identical points: fall back to the data's spread
        scale = data_variance()
    if not scale > 0:  # constant data: no scale at all
        scale = 1.0
    D = summary.sx.shape[1]
    return max(INDUCED_FLOOR, 1000 * D * torch.finfo(summary.sx.dtype).eps) * scale


def induced_params(summary: Summary, cov_type, reg_covar: float, centers: Tensor,
                   data_variance: Callable[[], float]) -> tuple[MixtureParams, list[int], float]:
    """The induced mixture of a partition, built leniently (module docstring).

    Args:
        summary: the partition's statistics (:func:`partition_summary`).
        centers: ``(K, D)`` the clusters' centres (the means of empty clusters).
        data_variance: returns the data's mean per-feature variance (called only when
            every cluster is identical points: it may cost a pass).

    Returns ``(params, degenerate, floor)``: ``degenerate`` the sorted clusters that took
    the pooled covariance, ``floor`` what was added to it (0.0: nothing).
    """
    K = summary.nk.shape[0]
    degenerate = set(torch.nonzero(summary.nk == 0).reshape(-1).tolist())  # empty: no scatter of its own
    floor = 0.0
    for _ in range(K + 2):  # each failure adds a degenerate cluster, or sets the floor once
        try:
            params = m_step(_lenient_statistics(summary, cov_type, degenerate, floor), cov_type, reg_covar)
            break
        except SingularCovarianceError as error:
            if error.component is not None and error.component not in degenerate:
                degenerate.add(error.component)
            elif floor == 0.0:  # the pooled (or tied) covariance itself is singular
                floor = _covariance_floor(summary, cov_type, data_variance)
            else:
                raise
    else:  # pragma: no cover - the floor makes the pooled covariance positive definite
        raise SingularCovarianceError("the induced mixture has no positive definite covariance.")
    if degenerate:
        chosen = torch.zeros(K, dtype=torch.bool, device=centers.device)
        chosen[sorted(degenerate)] = True
        means = summary.sx / floored_counts(summary.nk)[:, None] + summary.shift
        means = torch.where((summary.nk > 0)[:, None], means, centers.to(means.dtype))
        params = MixtureParams.from_native(params.weights, torch.where(chosen[:, None], means, params.locs),
                                           params.native, cov_type, validate=False)
    return params, sorted(degenerate), floor


def induced_mixture(model: GaussianMixture, X: Tensor | StreamingData, centers: Tensor, reg_covar: float,
                    shift: Tensor, metric: str = "l2", chunk_size: int | None = None,
                    distributed: bool = False):
    """The Gaussian mixture of the nearest-centre partition, built leniently (module docstring).

    Returns ``(params, summary, objective, flags)`` with ``flags`` the
    ``degenerate_clusters`` and ``covariance_floor`` of :func:`induced_params`.
    """
    summary, objective = partition_summary(X, centers, model.cov_type, shift, metric, chunk_size, distributed)
    params, degenerate, floor = induced_params(summary, model.cov_type, reg_covar, centers,
                                               lambda: _mean_variance(X, distributed))
    return params, summary, objective, {"degenerate_clusters": degenerate, "covariance_floor": floor}


def _run(model: GaussianMixture, X: Tensor | StreamingData, init: MixtureParams, metric: str, *,
         max_iter: int = 300, tol: float = 1e-4, reg_covar: float = 1e-6,
         track_likelihood: bool = True, warn: bool = True, chunk_size: int | None = None,
         distributed: bool = False) -> FitResult:
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    if distributed and metric != "l2":
        raise ValueError("distributed k-medians is not supported (medians do not add up over shards); "
                         "use method='kmeans' or fit in one process.")
    # every rank takes the moments about the same point
    shift = dist_utils.broadcast(default_shift(X)) if distributed else default_shift(X)
    history = History()
    start = time.perf_counter()

    def record(iteration: int, centers: Tensor, *_: Any) -> None:
        params, summary, objective, _ = induced_mixture(model, X, centers, reg_covar, shift, metric, chunk_size,
                                                        distributed)
        row = {"iteration": iteration, "objective": objective}
        if track_likelihood:
            log_likelihood = float(e_step(X, params, shift, chunk_size=chunk_size).log_likelihood)
            if distributed:
                log_likelihood = dist_utils.all_reduce_float(log_likelihood, shift.device)
            lower_bound = float(elbo(summary, params))
            row.update(log_likelihood=log_likelihood, elbo=lower_bound, kl=log_likelihood - lower_bound)
        history.append(time=time.perf_counter() - start, **row)

    centers = init.locs
    record(0, centers)
    if max_iter == 0:
        n_iter, converged = 0, False
    else:
        centers, _, _, n_iter, converged = lloyd(X, centers, metric, max_iter=max_iter, tol=tol,
                                                 on_iteration=record, chunk_size=chunk_size,
                                                 distributed=distributed)
    if not converged and max_iter > 0 and warn:
        warnings.warn(f"{'k-means' if metric == 'l2' else 'k-medians'} did not converge in "
                      f"max_iter={max_iter} iterations; increase max_iter or tol.",
                      ConvergenceWarning, stacklevel=3)
    params, _, objective, flags = induced_mixture(model, X, centers, reg_covar, shift, metric, chunk_size,
                                                  distributed)
    labels = assign(X, centers, metric)[0] if isinstance(X, Tensor) else None
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=n_iter, method="kmeans" if metric == "l2" else "kmedians",
                     objective=-objective, init=init,
                     extras={"centers": centers, "labels": labels, "inertia": objective, **flags})


@register("kmeans", summary="Lloyd's k-means (L2); the result is the Gaussian mixture the partition induces",
          requires=frozenset({"partition"}), prior="rejected", streaming=True, distributed=True,
          starts_from_centres=True,
          gap="k-means: the same for its hard assignments under the mixture it implies")
def fit_kmeans(model: GaussianMixture, X: Tensor, init: MixtureParams, *, seed: int | None = None,
               reg_covar: float = 1e-6, max_iter: int = 300, tol: float = 1e-4, track_likelihood: bool = True,
               warn: bool = True, chunk_size: int | None = None, distributed: bool = False) -> FitResult:
    """k-means (Lloyd). Options: ``max_iter``, ``tol``, ``track_likelihood``, ``warn``,
    ``chunk_size`` (module docstring)."""
    return _run(model, X, init, "l2", max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                track_likelihood=track_likelihood, warn=warn, chunk_size=chunk_size, distributed=distributed)


@register("kmedians", summary="k-medians (L1 distance, coordinate-wise medians)",
          requires=frozenset({"partition"}), prior="rejected", starts_from_centres=True,
          gap="k-medians: the same for its hard assignments")
def fit_kmedians(model: GaussianMixture, X: Tensor, init: MixtureParams, *, seed: int | None = None,
                 reg_covar: float = 1e-6, max_iter: int = 300, tol: float = 1e-4, track_likelihood: bool = True,
                 warn: bool = True, chunk_size: int | None = None) -> FitResult:
    """k-medians (L1). Options as :func:`fit_kmeans`."""
    return _run(model, X, init, "l1", max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                track_likelihood=track_likelihood, warn=warn, chunk_size=chunk_size)
