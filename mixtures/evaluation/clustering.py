"""Agreement of two clusterings: adjusted Rand index and normalized mutual information.

Implemented with numpy; scikit-learn is only the test-time reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import Tensor


def _contingency(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """Contingency table ``(C_true, C_pred)`` of int64 counts of two labelings ``(N,)``."""
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
    true_codes = np.unique(arrays[0], return_inverse=True)[1].reshape(-1)
    pred_codes = np.unique(arrays[1], return_inverse=True)[1].reshape(-1)
    n_true = int(true_codes.max()) + 1 if true_codes.size else 0
    n_pred = int(pred_codes.max()) + 1 if pred_codes.size else 0
    flat = np.bincount(true_codes * n_pred + pred_codes, minlength=n_true * n_pred)
    return flat.astype(np.int64).reshape(n_true, n_pred)


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
