"""k-means math on points, shared by initializers, the k-means routines and the families.

Nearest-centre assignment (L2 or L1), centre updates (means or coordinate-wise medians),
Lloyd's iterations over any data source (one pass per iteration, streamed or distributed),
and k-means++ seeding. Nothing here knows a mixture family: the routines turn a partition
into a mixture through the family (its ``partition_mixture`` capability).

Empty clusters are handled by one documented rule: the point farthest from its own
centre (taken from a cluster that keeps at least one other point) becomes the empty
cluster's centre and member, so no centre is ever undefined. Convergence: no assignment
changed, or the squared centre shift summed over clusters fell below ``tol`` times the
mean per-feature variance of the data (scikit-learn's rule).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.chunks import chunk_size_for, iter_chunks
from mixtures.core.stream import StreamingData, iter_data
from mixtures.core.weights import weight_chunks

METRICS = ("l2", "l1")


#: k-means++ seeds from a uniform sample (with replacement) of this many points when the data
#: have more: D² sampling over all N points keeps an ``(N,)`` vector of distances and a copy of
#: its probabilities (and ``torch.multinomial`` takes at most 2^24 categories), while the
#: seeding of a 131 072-point sample is as good for the K of a mixture; Lloyd's iterations and
#: the partition then see all the data.
SEEDING_SAMPLE = 1 << 17

#: rows per block of the seeding's distance computations (no ``(N, D)`` temporary)
_SEEDING_BLOCK = 1 << 16


def kmeans_plusplus(X: Tensor, n_clusters: int, generator: torch.Generator,
                    sample_weight: Tensor | None = None) -> Tensor:
    """k-means++ seeding: centres ``(K, D)`` drawn with probability ∝ squared distance.

    On more than :data:`SEEDING_SAMPLE` points the centres are seeded from a uniform sample of
    that many (the same algorithm on the sample); memory stays ``O(SEEDING_SAMPLE)``.
    With ``sample_weight`` ``(N,)`` every draw is ∝ weight (× squared distance): the seeding of
    the data with rows repeated, in distribution (a sample is drawn ∝ weight, then seeded unweighted).
    """
    N = X.shape[0]
    if sample_weight is not None and N > SEEDING_SAMPLE:
        # inverse-CDF draws ∝ weight (torch.multinomial takes at most 2^24 categories)
        cumulative = sample_weight.double().cpu().cumsum(0)
        uniform = torch.rand(SEEDING_SAMPLE, generator=generator, dtype=torch.float64) * cumulative[-1]
        rows = torch.searchsorted(cumulative, uniform, right=True).clamp_max(N - 1)
        X, N, sample_weight = X[rows.to(X.device)], SEEDING_SAMPLE, None
    elif N > SEEDING_SAMPLE:
        X = X[torch.randint(N, (SEEDING_SAMPLE,), generator=generator).to(X.device)]
        N = SEEDING_SAMPLE
    if sample_weight is None:
        first = int(torch.randint(N, (1,), generator=generator))
    else:
        first = int(torch.multinomial(sample_weight.cpu(), 1, generator=generator))
    weight = torch.ones(N, dtype=X.dtype, device=X.device) if sample_weight is None else sample_weight
    centers = [X[first]]
    closest = _squared_distances(X, X[first])
    for _ in range(1, n_clusters):  # loop over clusters, never over points
        mass = closest if sample_weight is None else closest * weight
        total = mass.sum()
        probabilities = mass / total if total > 0 else weight / weight.sum()
        index = int(torch.multinomial(probabilities.cpu(), 1, generator=generator))
        centers.append(X[index])
        closest = torch.minimum(closest, _squared_distances(X, X[index]))
    return torch.stack(centers)


def _squared_distances(X: Tensor, center: Tensor) -> Tensor:
    """``|x_n - c|²`` ``(N,)`` by blocks of rows."""
    if X.shape[0] <= _SEEDING_BLOCK:
        return (X - center).square().sum(-1)
    return torch.cat([(X[rows] - center).square().sum(-1) for rows in iter_chunks(X.shape[0], _SEEDING_BLOCK)])


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


def update_centers(X: Tensor, labels: Tensor, n_clusters: int, metric: str = "l2",
                   sample_weight: Tensor | None = None) -> Tensor:
    """Means (``"l2"``) or coordinate-wise medians (``"l1"``) of every cluster ``(K, D)``.

    Every cluster must be non-empty (see :func:`fill_empty_clusters`). The median
    of an even number of values is the average of the middle two, as numpy's.
    With ``sample_weight`` ``(N,)``: weighted means, and weighted medians
    (:func:`weighted_median`: the median of the data with rows repeated, for integer weights).
    """
    if sample_weight is not None:
        if metric == "l2":
            sums = X.new_zeros(n_clusters, X.shape[1]).index_add_(0, labels, X * sample_weight[:, None])
            return sums / X.new_zeros(n_clusters).index_add_(0, labels, sample_weight)[:, None]
        order = torch.argsort(labels, stable=True)
        sizes = torch.bincount(labels, minlength=n_clusters).tolist()
        groups = zip(torch.split(X[order], sizes), torch.split(sample_weight[order], sizes))
        return torch.stack([weighted_median(group, weights) for group, weights in groups])  # loop over K
    if metric == "l2":
        sums = X.new_zeros(n_clusters, X.shape[1]).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=n_clusters).to(X.dtype)
        return sums / counts[:, None]
    order = torch.argsort(labels, stable=True)
    groups = torch.split(X[order], torch.bincount(labels, minlength=n_clusters).tolist())
    return torch.stack([torch.quantile(group, 0.5, dim=0) for group in groups])  # loop over K


def weighted_median(values: Tensor, weights: Tensor) -> Tensor:
    """Coordinate-wise weighted median ``(D,)`` of ``values`` ``(n, D)`` with ``weights`` ``(n,)`` (sum W > 0).

    With cumulative weights ``c`` of the sorted values, the average of the first value with
    ``c ≥ W/2`` and the first with ``c > W/2``: for integer weights exactly numpy's median of
    the values repeated (the middle one, or the average of the middle two); zero weights never count.
    """
    sorted_values, order = values.sort(dim=0, stable=True)
    cumulative = weights[order].cumsum(0)                         # (n, D)
    half = 0.5 * cumulative[-1:]
    low = (cumulative < half).sum(0, keepdim=True)
    high = (cumulative <= half).sum(0, keepdim=True).clamp_max(values.shape[0] - 1)
    return 0.5 * (sorted_values.gather(0, low) + sorted_values.gather(0, high))[0]


def fill_empty_clusters(labels: Tensor, distances: Tensor, n_clusters: int,
                        sample_weight: Tensor | None = None) -> tuple[Tensor, list[int]]:
    """Give every empty cluster the farthest point of a cluster that can spare one.

    With ``sample_weight`` ``(N,)`` a cluster is empty when it holds no weight, and only a point of
    positive weight whose cluster keeps some weight without it can move.
    """
    if sample_weight is not None:
        return _fill_empty_weighted(labels, distances, n_clusters, sample_weight)
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


def _fill_empty_weighted(labels: Tensor, distances: Tensor, n_clusters: int,
                         sample_weight: Tensor) -> tuple[Tensor, list[int]]:
    """:func:`fill_empty_clusters` by weight (a moved point takes its weight along)."""
    counts = distances.new_zeros(n_clusters).index_add_(0, labels, sample_weight)
    empty = torch.nonzero(counts == 0).reshape(-1).tolist()
    if not empty:
        return labels, []
    labels, distances = labels.clone(), distances.clone()
    for cluster in empty:  # loop over (few) empty clusters, never over points
        spare = (sample_weight > 0) & (counts[labels] - sample_weight > 0)
        candidates = torch.where(spare, distances, torch.full_like(distances, -1.0))
        point = int(candidates.argmax())
        if candidates[point] < 0:
            raise ValueError(f"cannot fill empty cluster {cluster}: fewer points of positive weight than "
                             "clusters. Use fewer components.")
        counts[labels[point]] -= sample_weight[point]
        counts[cluster] += sample_weight[point]
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
               keep_labels: bool = True, distributed: bool = False, sample_weight: Tensor | None = None):
    """One pass of Lloyd's algorithm: assignments to ``centers`` and what the update needs.

    Returns ``(sums (K, D), counts (K,), inertia, farthest, labels)`` where
    ``farthest`` holds the K points farthest from their centres (for empty
    clusters), ``(points (K, D), distances (K,), labels (K,))`` by decreasing
    distance, and ``labels`` ``(N,)`` is None for streamed data.

    ``distributed``: ``X`` is this rank's shard; ``sums``, ``counts`` and
    ``inertia`` are summed over ranks and ``farthest`` is the K farthest points of
    all ranks (:func:`mixtures.core.comm.global_farthest`), identical on every
    rank; ``labels`` stay this rank's.

    ``sample_weight`` ``(N,)`` (in-memory data): weighted sums, counts and inertia; ``farthest``'s
    points then carry their weight as an extra last column ``(K, D + 1)`` and zero-weight points
    are never among them.
    """
    K, D = centers.shape
    sums = centers.new_zeros(K, D)
    counts = centers.new_zeros(K)
    inertia = 0.0
    farthest = None
    labels = [] if keep_labels and isinstance(X, Tensor) else None
    chunk = chunk_size or chunk_size_for(K, D)
    for part, weights in zip(iter_data(X, chunk), weight_chunks(sample_weight, chunk)):
        chunk_labels, distances = assign(part, centers)
        if weights is None:
            sums.index_add_(0, chunk_labels, part)
            counts += torch.bincount(chunk_labels, minlength=K).to(counts.dtype)
            inertia += float(distances.sum())
            farthest = _farthest(farthest, part, distances, chunk_labels, K)
        else:
            sums.index_add_(0, chunk_labels, part * weights[:, None])
            counts.index_add_(0, chunk_labels, weights)
            inertia += float((distances * weights).sum())
            farthest = _farthest(farthest, torch.cat([part, weights[:, None]], 1),
                                 distances.masked_fill(weights == 0, -math.inf), chunk_labels, K)
        if labels is not None:
            labels.append(chunk_labels)
    if distributed:
        sums, counts, total = comm.all_reduce_sum(
            sums, counts, torch.tensor(inertia, dtype=torch.float64, device=sums.device))
        inertia = float(total)
        like = centers if sample_weight is None else centers.new_zeros(1, D + 1)
        farthest = comm.global_farthest(farthest, K, like)
    return sums, counts, inertia, farthest, (torch.cat(labels) if labels is not None else None)


def _relocate_empty(sums: Tensor, counts: Tensor, farthest: tuple[Tensor, Tensor, Tensor]) -> list[int]:
    """Move the farthest points into empty clusters (in place), as scikit-learn does.

    ``farthest`` is ``(points (k, D), distances (k,), labels (k,))`` by decreasing
    distance; rows with distance ``-inf`` are padding (distributed runs), never used.
    A weighted pass's points carry their weight as a last column ``(k, D + 1)``: a moved
    point takes its whole weight along.
    """
    empty = torch.nonzero(counts == 0).reshape(-1).tolist()
    points, distances, labels = farthest
    weights = None
    if points.shape[-1] == sums.shape[-1] + 1:  # weighted pass: the weight is the last column
        points, weights = points[:, :-1], points[:, -1]
    available = int(torch.isfinite(distances).sum())  # padding sorts last
    candidate = 0
    for cluster in empty:  # loop over (few) empty clusters, never over points
        while candidate < available and not _can_spare(counts, labels, weights, candidate):
            candidate += 1
        if candidate == available:
            raise ValueError(f"cannot fill empty cluster {cluster}: fewer points than clusters. "
                             "Use fewer components.")
        donor = int(labels[candidate])
        mass = 1 if weights is None else weights[candidate]
        moved = points[candidate] if weights is None else points[candidate] * mass
        sums[donor] -= moved
        counts[donor] -= mass
        sums[cluster] = moved
        counts[cluster] = mass
        candidate += 1
    return empty


def _can_spare(counts: Tensor, labels: Tensor, weights: Tensor | None, candidate: int) -> bool:
    """Whether the cluster of the ``candidate``-th farthest point keeps some mass without it."""
    if weights is None:
        return bool(counts[labels[candidate]] > 1)
    return bool(counts[labels[candidate]] - weights[candidate] > 0)


def mean_variance(X: Tensor | StreamingData, distributed: bool = False, sample_weight: Tensor | None = None) -> float:
    """Mean per-feature variance of the data (scikit-learn's scale for ``tol``), in one pass.

    ``distributed``: of all ranks' data (moments about rank 0's shift, all-reduced).
    ``sample_weight`` ``(N,)``: the weighted variance ``Σ w (x - x̄_w)² / Σ w`` (in-memory data).
    """
    if sample_weight is not None:
        shift = comm.broadcast(X[:1].mean(0) if X.shape[0] else X.new_zeros(X.shape[1])) if distributed else X[0]
        centred = X - shift
        total, first = sample_weight.sum(), sample_weight @ centred
        second = sample_weight @ centred.square()
        if distributed:
            total, first, second = comm.all_reduce_sum(total, first, second)
        return float((second / total - (first / total).square()).mean())
    if distributed:
        n, _, first, second = comm.centred_moments(X)
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
          distributed: bool = False, keep_labels: bool = True,
          sample_weight: Tensor | None = None) -> tuple[Tensor, Tensor | None, float, int, bool]:
    """Lloyd iterations from ``centers`` ``(K, D)``.

    L2 runs one pass per iteration (any data source, scikit-learn's loop: assign
    and accumulate, relocate empty clusters to the farthest points, stop when the
    statistics are unchanged or the centre shift is below ``tol`` times the mean
    variance). L1 (k-medians) needs every cluster's members for its medians and
    runs in memory.

    Returns ``(centers, labels, objective, n_iter, converged)`` where ``objective``
    is the inertia (``"l2"``) or sum of L1 distances (``"l1"``) of the returned
    labels to the returned centres (labels None for streamed data, or with
    ``keep_labels=False``: L2 then holds nothing of size N).
    ``on_iteration(iteration, centers, labels, objective)`` is called after every update.

    ``distributed`` (L2 only): ``X`` is this rank's shard; every pass's sums,
    counts, inertia and farthest points are combined over ranks
    (:func:`lloyd_pass`), so every rank takes the same steps as one process on all
    the data, and returns the same centres (``labels`` of its own shard).

    ``sample_weight`` ``(N,)`` (in-memory data): weighted k-means / k-medians (weighted means or
    medians, weighted inertia and ``tol`` scale); integer weights take the steps of the data with
    rows repeated, zero weights those of the data without the rows (while no cluster empties: the
    empty-cluster rule moves a point with its whole weight, where repeated rows would move one copy).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    if distributed and metric != "l2":
        raise ValueError("distributed k-medians is not supported (medians do not add up over shards); "
                         "use k-means (metric='l2') or fit in one process.")
    if metric == "l1":
        if not isinstance(X, Tensor):
            raise ValueError("k-medians needs the data in memory (medians are not additive over chunks).")
        return _lloyd_l1(X, centers, max_iter, tol, on_iteration, sample_weight)
    threshold = tol * mean_variance(X, distributed, sample_weight)
    previous = None
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        sums, counts, _, farthest, _ = lloyd_pass(X, centers, chunk_size, keep_labels=False,
                                                  distributed=distributed, sample_weight=sample_weight)
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
    _, _, inertia, _, labels = lloyd_pass(X, centers, chunk_size, keep_labels=keep_labels, distributed=distributed,
                                          sample_weight=sample_weight)
    return centers, labels, inertia, iteration, converged


def _lloyd_l1(X: Tensor, centers: Tensor, max_iter: int, tol: float, on_iteration: Any,
              sample_weight: Tensor | None = None):
    K = centers.shape[0]
    threshold = tol * mean_variance(X, sample_weight=sample_weight)
    counted = None if sample_weight is None else sample_weight > 0  # zero-weight points are not in the data

    def total(distances: Tensor) -> float:
        return float(distances.sum() if sample_weight is None else (distances * sample_weight).sum())

    def unchanged(new: Tensor, old: Tensor) -> bool:
        return torch.equal(new, old) if counted is None else torch.equal(new[counted], old[counted])

    labels, distances = assign(X, centers, "l1")
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        labels, _ = fill_empty_clusters(labels, distances, K, sample_weight)
        new_centers = update_centers(X, labels, K, "l1", sample_weight)
        shift = float((new_centers - centers).square().sum())
        centers = new_centers
        new_labels, distances = assign(X, centers, "l1")
        if on_iteration is not None:
            on_iteration(iteration, centers, new_labels, total(distances))
        if unchanged(new_labels, labels) or shift <= threshold:
            labels = new_labels
            converged = True
            break
        labels = new_labels
    return centers, labels, total(distances), iteration, converged
