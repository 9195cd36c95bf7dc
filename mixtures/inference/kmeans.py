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
from mixtures.suffstats import default_shift, e_step, elbo, m_step, summarize
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


def lloyd(X: Tensor, centers: Tensor, metric: str = "l2", max_iter: int = 300, tol: float = 1e-4,
          on_iteration: Any = None) -> tuple[Tensor, Tensor, float, int, bool]:
    """Lloyd iterations from ``centers`` ``(K, D)``.

    Returns ``(centers, labels, objective, n_iter, converged)`` where ``objective``
    is the inertia (``"l2"``) or sum of L1 distances (``"l1"``) of the returned
    labels to the returned centres. ``on_iteration(iteration, centers, labels,
    objective)`` is called after every update.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    K = centers.shape[0]
    threshold = tol * float(X.var(0, unbiased=False).mean()) if X.shape[0] > 1 else 0.0
    labels, distances = assign(X, centers, metric)
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        labels, _ = fill_empty_clusters(labels, distances, K)
        new_centers = update_centers(X, labels, K, metric)
        shift = float((new_centers - centers).square().sum())
        centers = new_centers
        new_labels, distances = assign(X, centers, metric)
        if on_iteration is not None:
            on_iteration(iteration, centers, new_labels, float(distances.sum()))
        if torch.equal(new_labels, labels) or shift <= threshold:
            labels = new_labels
            converged = True
            break
        labels = new_labels
    return centers, labels, float(distances.sum()), iteration, converged


def induced_mixture(model: GaussianMixture, X: Tensor, labels: Tensor, reg_covar: float,
                    shift: Tensor | None = None):
    """The Gaussian mixture of a hard partition, with its summary: ``(params, summary)``."""
    resp = torch.nn.functional.one_hot(labels, model.n_components).to(X.dtype)
    summary = summarize(X, resp, model.cov_type, shift)
    return m_step(summary, model.cov_type, reg_covar), summary


def _run(model: GaussianMixture, X: Tensor, init: MixtureParams, metric: str, *,
         max_iter: int = 300, tol: float = 1e-4, reg_covar: float = 1e-6,
         track_likelihood: bool = True, warn: bool = True) -> FitResult:
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    shift = default_shift(X)
    history = History()
    start = time.perf_counter()

    def record(iteration: int, centers: Tensor, labels: Tensor, objective: float) -> None:
        row = {"iteration": iteration, "objective": objective}
        if track_likelihood:
            params, summary = induced_mixture(model, X, labels, reg_covar, shift)
            log_likelihood = float(e_step(X, params, shift).log_likelihood)
            lower_bound = float(elbo(summary, params))
            row.update(log_likelihood=log_likelihood, elbo=lower_bound, kl=log_likelihood - lower_bound)
        history.append(time=time.perf_counter() - start, **row)

    centers = init.locs
    initial_labels, initial_distances = assign(X, centers, metric)
    record(0, centers, initial_labels, float(initial_distances.sum()))
    if max_iter == 0:
        centers, labels, objective, n_iter, converged = centers, initial_labels, \
            float(initial_distances.sum()), 0, False
    else:
        centers, labels, objective, n_iter, converged = lloyd(
            X, centers, metric, max_iter=max_iter, tol=tol, on_iteration=record)
    if not converged and max_iter > 0 and warn:
        warnings.warn(f"{'k-means' if metric == 'l2' else 'k-medians'} did not converge in "
                      f"max_iter={max_iter} iterations; increase max_iter or tol.",
                      ConvergenceWarning, stacklevel=3)
    params, _ = induced_mixture(model, X, labels, reg_covar, shift)
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=n_iter, method="kmeans" if metric == "l2" else "kmedians",
                     objective=-objective, init=init,
                     extras={"centers": centers, "labels": labels, "inertia": objective})


@register("kmeans")
def fit_kmeans(model: GaussianMixture, X: Tensor, init: MixtureParams, seed: int | None = None,
               **options: Any) -> FitResult:
    """k-means (Lloyd). Options: ``max_iter``, ``tol``, ``reg_covar``, ``track_likelihood``."""
    return _run(model, X, init, "l2", **options)


@register("kmedians")
def fit_kmedians(model: GaussianMixture, X: Tensor, init: MixtureParams, seed: int | None = None,
                 **options: Any) -> FitResult:
    """k-medians (L1). Options as :func:`fit_kmeans`."""
    return _run(model, X, init, "l1", **options)
