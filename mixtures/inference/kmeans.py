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
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch import Tensor

from mixtures.errors import ConvergenceWarning
from mixtures.inference.registry import register
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams, chunk_size_for, iter_chunks
from mixtures.result import FitResult, History
from mixtures.stream import StreamingData, iter_data
from mixtures.suffstats import Summary, default_shift, e_step, elbo, m_step
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
               keep_labels: bool = True):
    """One pass of Lloyd's algorithm: assignments to ``centers`` and what the update needs.

    Returns ``(sums (K, D), counts (K,), inertia, farthest, labels)`` where
    ``farthest`` holds the K points farthest from their centres (for empty
    clusters) and ``labels`` ``(N,)`` is None for streamed data.
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
    return sums, counts, inertia, farthest, (torch.cat(labels) if labels is not None else None)


def _relocate_empty(sums: Tensor, counts: Tensor, farthest: tuple[Tensor, Tensor, Tensor]) -> list[int]:
    """Move the farthest points into empty clusters (in place), as scikit-learn does."""
    empty = torch.nonzero(counts == 0).reshape(-1).tolist()
    points, _, labels = farthest
    candidate = 0
    for cluster in empty:  # loop over (few) empty clusters, never over points
        while candidate < points.shape[0] and counts[labels[candidate]] <= 1:
            candidate += 1
        if candidate == points.shape[0]:
            raise ValueError(f"cannot fill empty cluster {cluster}: fewer points than clusters. "
                             "Use fewer components.")
        donor = int(labels[candidate])
        sums[donor] -= points[candidate]
        counts[donor] -= 1
        sums[cluster] = points[candidate]
        counts[cluster] = 1
        candidate += 1
    return empty


def _mean_variance(X: Tensor | StreamingData) -> float:
    """Mean per-feature variance of the data (scikit-learn's scale for ``tol``), in one pass."""
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
          tol: float = 1e-4, on_iteration: Any = None, chunk_size: int | None = None
          ) -> tuple[Tensor, Tensor | None, float, int, bool]:
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
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    if metric == "l1":
        if not isinstance(X, Tensor):
            raise ValueError("k-medians needs the data in memory (medians are not additive over chunks).")
        return _lloyd_l1(X, centers, max_iter, tol, on_iteration)
    threshold = tol * _mean_variance(X)
    previous = None
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        sums, counts, _, farthest, _ = lloyd_pass(X, centers, chunk_size, keep_labels=False)
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
    _, _, inertia, _, labels = lloyd_pass(X, centers, chunk_size)
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
                      metric: str = "l2", chunk_size: int | None = None) -> tuple[Summary, float]:
    """Statistics of the nearest-centre partition (one pass): ``(summary, objective)``.

    ``objective`` is the inertia (L2) or the sum of L1 distances to the centres.
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
    nan = shift.new_tensor(math.nan)
    return Summary(shift, nk, sx, sxx, n_points, nan, shift.new_zeros(())), objective


def induced_mixture(model: GaussianMixture, X: Tensor | StreamingData, centers: Tensor, reg_covar: float,
                    shift: Tensor, metric: str = "l2", chunk_size: int | None = None):
    """The Gaussian mixture of the nearest-centre partition: ``(params, summary, objective)``."""
    summary, objective = partition_summary(X, centers, model.cov_type, shift, metric, chunk_size)
    return m_step(summary, model.cov_type, reg_covar), summary, objective


def _run(model: GaussianMixture, X: Tensor | StreamingData, init: MixtureParams, metric: str, *,
         max_iter: int = 300, tol: float = 1e-4, reg_covar: float = 1e-6,
         track_likelihood: bool = True, warn: bool = True, chunk_size: int | None = None) -> FitResult:
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    shift = default_shift(X)
    history = History()
    start = time.perf_counter()

    def record(iteration: int, centers: Tensor, *_: Any) -> None:
        params, summary, objective = induced_mixture(model, X, centers, reg_covar, shift, metric, chunk_size)
        row = {"iteration": iteration, "objective": objective}
        if track_likelihood:
            log_likelihood = float(e_step(X, params, shift, chunk_size=chunk_size).log_likelihood)
            lower_bound = float(elbo(summary, params))
            row.update(log_likelihood=log_likelihood, elbo=lower_bound, kl=log_likelihood - lower_bound)
        history.append(time=time.perf_counter() - start, **row)

    centers = init.locs
    record(0, centers)
    if max_iter == 0:
        n_iter, converged = 0, False
    else:
        centers, _, _, n_iter, converged = lloyd(X, centers, metric, max_iter=max_iter, tol=tol,
                                                 on_iteration=record, chunk_size=chunk_size)
    if not converged and max_iter > 0 and warn:
        warnings.warn(f"{'k-means' if metric == 'l2' else 'k-medians'} did not converge in "
                      f"max_iter={max_iter} iterations; increase max_iter or tol.",
                      ConvergenceWarning, stacklevel=3)
    params, _, objective = induced_mixture(model, X, centers, reg_covar, shift, metric, chunk_size)
    labels = assign(X, centers, metric)[0] if isinstance(X, Tensor) else None
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=n_iter, method="kmeans" if metric == "l2" else "kmedians",
                     objective=-objective, init=init,
                     extras={"centers": centers, "labels": labels, "inertia": objective})


@register("kmeans")
def fit_kmeans(model: GaussianMixture, X: Tensor, init: MixtureParams, seed: int | None = None,
               **options: Any) -> FitResult:
    """k-means (Lloyd). Options: ``max_iter``, ``tol``, ``reg_covar``, ``track_likelihood``,
    ``chunk_size``."""
    return _run(model, X, init, "l2", **options)


fit_kmeans.supports_streaming = True


@register("kmedians")
def fit_kmedians(model: GaussianMixture, X: Tensor, init: MixtureParams, seed: int | None = None,
                 **options: Any) -> FitResult:
    """k-medians (L1). Options as :func:`fit_kmeans`."""
    return _run(model, X, init, "l1", **options)
