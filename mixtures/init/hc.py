"""mclust's deterministic start, ``init="hc"``: model-based agglomerative hierarchical clustering.

The tree (Fraley 1998; mclust's ``hc(modelName = "VVV", use = "SVD")``, its default start):

1. *Scaled SVD* of the data (Scrucca & Raftery 2015): centre and scale every feature (sample
   standard deviation; constant features are dropped), then ``Z = X_s V diag(1/√d)`` with
   ``X_s = U diag(d) Vᵀ``. Directions of little variance are stretched, so the tree sees
   the data's shape rather than its units.
2. *Every point starts as its own group* (duplicated points then cost least to merge).
3. *Agglomeration*: every step merges the two groups whose merge raises mclust's VVV
   classification criterion least. A group of ``l`` points with scatter ``W`` contributes
   ``l · log( det(W/l)·[l > D] + β (tr W + α)/l )`` with ``β = 1`` and ``α = tr(Scatter(Z))/(N D)``
   (the average variance: it regularizes singletons and small groups, whose ``det`` is 0);
   a merge costs the merged group's term minus the two groups' terms. With ``N ≤ D`` the
   criterion is EII's (Ward's: the rise of the within-group sum of squares), as mclust does.
   Exact ties (duplicated points, equal distances) are broken as mclust breaks them (the last
   pair of its scan over the positions it gives the groups), which decides which of the tied
   groups grows first: faithful's tree equals mclust 6.0's at every cut.
4. The tree is *cut* at each K (:meth:`HCTree.partition`), and the partition's M step is the
   start. One tree serves every K and every structure (:func:`hc_tree` keeps the last few).

Above :data:`SUBSET` points (2000, mclust's ``mclust.options("subset")``) the tree is built on
a random subset of that many points (drawn with the fit's seed): the start is the M step on
the subset's partition, and the routine's first E step runs on all the data (mclust's
``mstep`` on the subset then ``estep`` on all points). One-dimensional data use mclust's
quantile classes (:func:`quantile_classes`) instead of a tree.

Cost: all pairwise merge costs once (in blocks of rows; a merge of two points needs no matrix,
its group has ``2 <= D`` points and only the trace enters), then one vectorized row of costs per
merge and a cached per-row minimum (rows are rescanned only when their cheapest partner was
merged), so ``N`` points take ``N`` steps of ``O(N D²)`` work plus determinants of the merged
groups larger than ``D``: 2000 points in 4 dimensions in about 2 seconds on one CPU core
(NumPy: the per-merge operations are small, where torch's per-call overhead dominates).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: points above which the tree is built on a random subset (mclust.options("subset"))
SUBSET = 2000
#: mclust's hcVVV defaults: alpha scales the regularizing trace term, beta weights it
ALPHA, BETA = 1.0, 1.0
#: cost entries computed at once when filling the initial cost matrix (rows x groups x D x D)
_BLOCK_ENTRIES = 1 << 22
#: trees kept for reuse across K and structures (keyed by the data's bytes and the settings)
_CACHE_SIZE = 8
_cache: OrderedDict[tuple, HCTree] = OrderedDict()


def scaled_svd(X: Tensor) -> Tensor:
    """mclust's ``"SVD"`` transformation of ``X`` ``(N, D)``: ``(N, D')`` float64, ``D'`` the
    non-constant features (module docstring)."""
    data = X.detach().to(device="cpu", dtype=torch.float64)
    centred = data - data.mean(0)
    scale = centred.std(0, correction=1) if data.shape[0] > 1 else torch.zeros(data.shape[1], dtype=torch.float64)
    keep = scale > 0
    standardized = centred[:, keep] / scale[keep]
    if standardized.shape[1] == 0:
        return standardized
    _, singular, right = torch.linalg.svd(standardized, full_matrices=False)
    rank = int((singular > singular[0] * standardized.shape[1] * torch.finfo(torch.float64).eps).sum())
    return standardized @ right[:rank].T / singular[:rank].sqrt()


@dataclass(frozen=True)
class HCTree:
    """A merge tree over ``n`` points.

    Attributes:
        initial: ``(n,)`` initial group of every point (duplicates share one), ``0..G-1``.
        merges: ``(G - 1, 2)`` the two groups (ids of their first initial group) merged at
            each stage, in order.
        points: ``(n,)`` indices of the tree's points in the data (all of them: ``None``).
        criterion: ``"VVV"`` or ``"EII"``.
    """

    initial: Tensor
    merges: Tensor
    points: Tensor | None
    criterion: str

    @property
    def n_groups(self) -> int:
        return int(self.merges.shape[0]) + 1

    def partition(self, n_components: int) -> Tensor:
        """Labels ``(n,)`` in ``0..K-1`` of the tree cut at ``K`` groups (numbered by first point)."""
        if not 1 <= n_components <= self.n_groups:
            raise ValueError(f"the tree has {self.n_groups} initial groups (points); it cannot be cut into "
                             f"{n_components}.")
        parent = list(range(self.n_groups))

        def root(group: int) -> int:
            while parent[group] != group:
                parent[group] = parent[parent[group]]
                group = parent[group]
            return group

        for left, right in self.merges[: self.n_groups - n_components].tolist():  # loop over merges, not points
            parent[root(right)] = root(left)
        roots = torch.tensor([root(group) for group in range(self.n_groups)])
        _, first = np.unique(roots[self.initial].numpy(), return_index=True)
        order = torch.as_tensor(np.argsort(np.argsort(first)))  # rank of each root by its first point
        numbering = torch.zeros(self.n_groups, dtype=torch.long)
        numbering[torch.as_tensor(np.unique(roots.numpy()))] = order
        return numbering[roots[self.initial]]


def _terms(counts: np.ndarray, traces: np.ndarray, determinants: np.ndarray, dim: int, alpha: float) -> np.ndarray:
    """mclust's VVV term ``l log(det(W/l)[l > D] + β (tr W + α)/l)`` of groups ``(...)``."""
    det = np.where(counts > dim, np.maximum(determinants, 0.0), 0.0)
    return counts * np.log(det + BETA * (traces + alpha) / counts)


class _Agglomeration:
    """The state of the agglomeration over ``G`` groups, in NumPy float64 (the per-merge work is
    a few small batched operations, where NumPy's overhead is a tenth of torch's on CPU).

    ``counts`` ``(G,)``, ``means`` ``(G, D)``, ``scatters`` ``(G, D, D)`` (within-group sums of
    squares ``W``), ``terms`` ``(G,)``, ``costs`` ``(G, G)`` merge costs (``inf`` on the diagonal
    and for merged groups), ``row_min``/``row_arg`` ``(G,)`` each row's cheapest partner.
    """

    def __init__(self, Z: np.ndarray, initial: np.ndarray, criterion: str):
        G, D = int(initial.max()) + 1, Z.shape[1]
        self.counts = np.bincount(initial, minlength=G).astype(np.float64)
        self.means = np.zeros((G, D))
        np.add.at(self.means, initial, Z)
        self.means /= self.counts[:, None]
        centred = Z - self.means[initial]
        self.scatters = np.zeros((G, D, D))
        np.add.at(self.scatters, initial, centred[:, :, None] * centred[:, None, :])
        self.dim, self.criterion = D, criterion
        self.alpha = max(ALPHA * float(np.square(Z - Z.mean(0)).sum()) / (Z.shape[0] * D), np.finfo(np.float64).eps)
        self.terms = self._terms(self.counts, self.scatters)
        self.active = np.ones(G, dtype=bool)
        # mclust's positions of the live groups, 0..g-1: it breaks exact ties (duplicate points
        # tie at every start) by the last pair in its scan order, and moves the last group into
        # the absorbed one's position after every merge; keeping the same positions keeps its tree
        self.position = np.arange(G)
        self.at_position = np.arange(G)
        self.costs = np.empty((G, G))
        block = max(1, _BLOCK_ENTRIES // max(1, G * D * D))
        everyone = np.arange(G)
        for start in range(0, G, block):  # blocks of rows: the (rows, G, D, D) scatters fit in memory
            rows = everyone[start:start + block]
            self.costs[rows] = self._costs(rows[:, None], everyone)
        np.fill_diagonal(self.costs, np.inf)
        self.row_arg = self.costs.argmin(1)
        self.row_min = self.costs[everyone, self.row_arg]

    def _terms(self, counts: np.ndarray, scatters: np.ndarray) -> np.ndarray:
        if self.criterion == "EII":
            return np.zeros_like(counts)
        traces = np.trace(scatters, axis1=-2, axis2=-1)
        return _terms(counts, traces, np.linalg.det(scatters / counts[..., None, None]), self.dim, self.alpha)

    def _merged_scatter(self, i, j) -> np.ndarray:
        """``W_ij = W_i + W_j + l_i l_j/(l_i + l_j) (m_j - m_i)(m_j - m_i)ᵀ`` of groups ``i``, ``j`` (broadcast)."""
        coefficient = self.counts[i] * self.counts[j] / (self.counts[i] + self.counts[j])
        delta = self.means[j] - self.means[i]
        return self.scatters[i] + self.scatters[j] + coefficient[..., None, None] * (
            delta[..., :, None] * delta[..., None, :])

    def _costs(self, i, others) -> np.ndarray:
        """Merge costs ``(...)`` of groups ``i`` with ``others`` (broadcast): the merged group's
        term minus the two groups' terms (EII: Ward's rise of the within-group sum of squares).

        ``tr W_ij`` needs no matrix; the ``(D, D)`` merged scatters are formed only for merged
        groups of more than ``D`` points, the ones whose determinant enters the term."""
        n = self.counts[i] + self.counts[others]
        ward = self.counts[i] * self.counts[others] / n * np.square(self.means[others] - self.means[i]).sum(-1)
        if self.criterion == "EII":
            return ward
        traces = np.trace(self.scatters, axis1=-2, axis2=-1)
        large = n > self.dim
        determinants = np.zeros(n.shape)
        if large.any():
            left, right = np.broadcast_arrays(i, others)
            left, right = left[large], right[large]
            determinants[large] = np.linalg.det(self._merged_scatter(left, right) / n[large][:, None, None])
        merged = _terms(n, traces[i] + traces[others] + ward, determinants, self.dim, self.alpha)
        return merged - self.terms[i] - self.terms[others]

    def merge(self) -> tuple[int, int]:
        """Merge the cheapest pair; returns ``(kept, absorbed)`` group ids."""
        i, j = self._cheapest()
        last = self.at_position[self.active.sum() - 1]  # mclust moves the last group into j's position
        self.position[last], self.at_position[self.position[j]] = self.position[j], last
        scatter, n = self._merged_scatter(i, j), self.counts[i] + self.counts[j]
        self.means[i] = (self.counts[i] * self.means[i] + self.counts[j] * self.means[j]) / n
        self.counts[i], self.scatters[i] = n, scatter
        self.terms[i] = self._terms(self.counts[i:i + 1], self.scatters[i:i + 1])[0]
        self.active[j] = False
        self.costs[j] = np.inf
        self.costs[:, j] = np.inf
        live = np.flatnonzero(self.active)
        row = np.full(len(self.counts), np.inf)
        row[live] = self._costs(i, live)
        row[i] = np.inf
        self.costs[i], self.costs[:, i] = row, row
        self.row_min[j] = np.inf
        stale = self.active & ((self.row_arg == i) | (self.row_arg == j))  # their cheapest partner changed
        stale[i] = True
        better = self.active & ~stale & (row < self.row_min)
        self.row_min[better], self.row_arg[better] = row[better], i
        rescan = np.flatnonzero(stale)
        if rescan.size:
            self.row_arg[rescan] = self.costs[rescan].argmin(1)
            self.row_min[rescan] = self.costs[rescan, self.row_arg[rescan]]
        return i, j


    def _cheapest(self) -> tuple[int, int]:
        """The cheapest pair ``(i, j)``, ``i`` at the lower position; among exact ties the one
        mclust takes (its scan runs over ``j`` then ``i < j`` and keeps the last minimum: the
        largest position ``j``, then the largest ``i``)."""
        cheapest = self.row_min.min()
        rows = np.flatnonzero(self.row_min == cheapest)
        left, right = np.nonzero(self.costs[rows] == cheapest)
        left = rows[left]
        low = np.minimum(self.position[left], self.position[right])
        high = np.maximum(self.position[left], self.position[right])
        pick = np.lexsort((low, high))[-1]
        i, j = int(left[pick]), int(right[pick])
        return (i, j) if self.position[i] < self.position[j] else (j, i)


def build_tree(Z: Tensor, criterion: str = "VVV", points: Tensor | None = None) -> HCTree:
    """The merge tree of transformed data ``Z`` ``(n, D)``, every point its own initial group (as
    mclust's ``hc``; duplicated points cost least to merge, ``-2 log 2`` for a pair)."""
    data = Z.detach().to(device="cpu", dtype=torch.float64).numpy()
    initial = np.arange(data.shape[0])
    state = _Agglomeration(data, initial, criterion)
    merges = torch.tensor([state.merge() for _ in range(len(state.counts) - 1)], dtype=torch.long).reshape(-1, 2)
    initial = torch.as_tensor(initial, dtype=torch.long)
    return HCTree(initial, merges, points, criterion)


def hc_tree(X: Tensor, subset: int = SUBSET, generator: torch.Generator | None = None) -> HCTree:
    """mclust's tree for data ``X`` ``(N, D)`` (module docstring), kept for reuse.

    ``subset``: build it on this many points drawn by ``generator`` when ``N`` is larger.
    """
    N = X.shape[0]
    points = None
    if N > subset:
        points = torch.randperm(N, generator=generator)[:subset].sort().values
    data = X.detach().to(device="cpu", dtype=torch.float64)
    key = (tuple(data.shape), hashlib.sha1(data.contiguous().numpy().tobytes()).hexdigest(),
           None if points is None else hashlib.sha1(points.numpy().tobytes()).hexdigest())
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    Z = scaled_svd(data if points is None else data[points])
    # as mclustBIC: VVV unless there are no more points than original features (then EII)
    tree = build_tree(Z, "VVV" if Z.shape[0] > data.shape[1] else "EII", points)
    _cache[key] = tree
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return tree


def quantile_classes(x: Tensor, n_components: int) -> Tensor:
    """mclust's ``qclass``: one-dimensional data ``x`` ``(N,)`` split at sample quantiles into ``K``
    classes ``(N,)`` in ``0..K-1`` (more quantiles are taken while ties merge some; surplus
    cut points at the smallest gaps are dropped)."""
    values = x.detach().to(device="cpu", dtype=torch.float64).reshape(-1).numpy()
    K = n_components
    eps = values.std(ddof=1) * math.sqrt(np.finfo(np.float64).eps) if values.size > 1 else 0.0
    count, cuts = K, np.array([np.nan])
    while cuts.size < K + 1:
        count += 1
        cuts = np.unique(np.quantile(values, np.linspace(0.0, 1.0, count)))
        if count > values.size + K + 1:
            raise ValueError(f"one-dimensional data with {np.unique(values).size} distinct values cannot be split "
                             f"into {K} quantile classes.")
    if cuts.size > K + 1:
        surplus = cuts.size - K - 1
        cuts = np.delete(cuts, np.argsort(np.diff(cuts), kind="stable")[:surplus])
    cuts[0], cuts[-1] = values.min() - eps, values.max() + eps
    return torch.as_tensor(np.searchsorted(cuts, values, side="right") - 1).clamp(0, K - 1)
