"""Agreement of two clusterings: adjusted Rand index, normalized mutual information and the
confusion table after matching clusters to classes.

Implemented with numpy; scikit-learn is only the test-time reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def _contingency(labels_true: Any, labels_pred: Any, values: bool = False) -> Any:
    """Contingency table ``(C_true, C_pred)`` of int64 counts of two labelings ``(N,)``
    (with ``values``, also the sorted distinct labels of each side)."""
    arrays = []
    for name, labels in (("labels_true", labels_true), ("labels_pred", labels_pred)):
        if isinstance(labels, Tensor):
            labels = labels.detach().cpu().numpy()
        array = np.asarray(labels)
        if array.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of labels (N,); got shape {array.shape}.")
        arrays.append(array)
    if arrays[0].shape[0] != arrays[1].shape[0]:
        raise ValueError(f"labels_true has {arrays[0].shape[0]} entries but labels_pred has "
                         f"{arrays[1].shape[0]}; they must label the same points.")
    true_values, true_codes = np.unique(arrays[0], return_inverse=True)
    pred_values, pred_codes = np.unique(arrays[1], return_inverse=True)
    true_codes, pred_codes = true_codes.reshape(-1), pred_codes.reshape(-1)
    n_true, n_pred = len(true_values), len(pred_values)
    flat = np.bincount(true_codes * n_pred + pred_codes, minlength=n_true * n_pred)
    table = flat.astype(np.int64).reshape(n_true, n_pred)
    return (table, true_values, pred_values) if values else table


def adjusted_rand_index(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted Rand index of two labelings ``(N,)`` (1 = same partition, ~0 = chance).

    Label values are arbitrary (only the partitions matter). Computed from the
    pair confusion counts in exact integer arithmetic::

        ARI = 2 (tp·tn − fn·fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn))

    over ordered pairs of distinct points; identical partitions (including the
    degenerate all-in-one and all-singletons cases, where the formula is 0/0)
    score 1, as in scikit-learn.
    """
    table = _contingency(labels_true, labels_pred)
    n = int(table.sum())
    sum_cells = int((table * table).sum())               # Σ n_ij²
    sum_true = int(np.square(table.sum(1)).sum())        # Σ a_i²
    sum_pred = int(np.square(table.sum(0)).sum())        # Σ b_j²
    # Python ints: the products below overflow int64 for N beyond ~10⁵.
    tp = sum_cells - n                  # same cluster in both
    fp = sum_pred - sum_cells           # same predicted cluster, different true ones
    fn = sum_true - sum_cells           # same true cluster, different predicted ones
    tn = n * n - sum_true - sum_pred + sum_cells
    if fp == 0 and fn == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _entropy(counts: np.ndarray, n: int) -> float:
    counts = counts[counts > 0].astype(np.float64)
    return float(-(counts / n * (np.log(counts) - math.log(n))).sum())


def normalized_mutual_info(labels_true: Any, labels_pred: Any) -> float:
    """Normalized mutual information of two labelings ``(N,)``, in ``[0, 1]``.

    ``NMI = I(T; P) / ((H(T) + H(P)) / 2)`` (arithmetic mean normalization,
    scikit-learn's default). Two single-cluster labelings score 1; when only one
    of them has a single cluster the mutual information is 0 and so is NMI.
    """
    table = _contingency(labels_true, labels_pred)
    n_true, n_pred = table.shape
    if n_true == n_pred and n_true <= 1:  # nothing is split (or no points): same partition
        return 1.0
    if n_true == 1 or n_pred == 1:  # one side does not split the data: I(T; P) = 0 exactly
        return 0.0
    n = int(table.sum())
    a, b = table.sum(1), table.sum(0)
    i, j = np.nonzero(table)
    n_ij = table[i, j].astype(np.float64)
    # I = Σ (n_ij / n) log(n n_ij / (a_i b_j)), each term in log space.
    terms = n_ij / n * (np.log(n_ij) + math.log(n) - np.log(a[i].astype(np.float64))
                        - np.log(b[j].astype(np.float64)))
    mutual_info = max(float(terms.sum()), 0.0)  # clip round-off below 0
    if mutual_info == 0.0:
        return 0.0
    normalizer = 0.5 * (_entropy(a, n) + _entropy(b, n))
    return mutual_info / normalizer


def aligned_confusion(labels_true: Any, labels_pred: Any) -> dict[str, Any]:
    """Confusion table of classes ``labels_true (N,)`` against clusters ``labels_pred (N,)``, its
    columns reordered so that each class faces the cluster matched to it.

    Clusters are matched one-to-one to classes to maximize the points on the diagonal
    (Hungarian algorithm); matched clusters come first in class order, unmatched ones (more
    clusters than classes) after them, largest first. With fewer clusters than classes, the
    columns follow the classes they were matched to (some classes face none).

    Returns:
        ``{"table": (C, P) int64 counts (row i: class classes[i]; column j: cluster clusters[j]),
        "classes": (C,) the class labels, "clusters": (P,) the cluster labels in column order,
        "accuracy": the fraction of points on the diagonal}``.
    """
    table, classes, clusters = _contingency(labels_true, labels_pred, values=True)
    rows, cols = linear_sum_assignment(table, maximize=True)
    matched = cols[np.argsort(rows)]
    rest = [j for j in np.argsort(-table.sum(0), kind="stable") if j not in set(matched.tolist())]
    order = np.concatenate([matched, np.asarray(rest, dtype=np.int64)]).astype(np.int64)
    n = int(table.sum())
    accuracy = float(table[rows, cols].sum()) / n if n else 1.0
    return {"table": table[:, order], "classes": classes, "clusters": clusters[order], "accuracy": accuracy}
