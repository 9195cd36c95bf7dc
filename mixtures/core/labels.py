"""Partial labels: points whose component is known (semi-supervised fitting).

``labels`` ``(N,)`` holds a component index ``0..K-1`` for a point whose component is known
and ``-1`` for an unknown one. A known point's assignment is observed: its responsibilities
are fixed to its one-hot component in EM-type routines, and in the Pyro program a factor
``log 1[z_n = y_n]`` restricts its enumerated assignment to its label (:meth:`MixtureFamily.model`),
so MAP, SVI and NUTS sum over that one value. The objective every routine then reports as its
log-likelihood is the log-likelihood of the observed data, labels included::

    ℓ(θ) = Σ_{n labelled} log π_{y_n} p(x_n | y_n, θ) + Σ_{n unlabelled} log Σ_k π_k p(x_n | k, θ)

which EM increases monotonically (the labelled points' complete data and the unlabelled
points' marginal). A start made by a named initializer has its components reordered to agree with
the labels (:func:`aligned_to_labels`); given parameters are used as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mixtures.core.missing import has_missing
from mixtures.core.params import Params
from mixtures.core.summary import Summary
from mixtures.errors import DataError

#: the Pyro factor site restricting labelled points' assignments (:meth:`MixtureFamily.model`)
LABELS_SITE = "labels"
UNKNOWN = -1


def check_labels(labels: Any, n_points: int, n_components: int, device: Any = None) -> Tensor | None:
    """``labels`` as a long tensor ``(N,)`` on ``device`` (``None`` stays ``None``), or a ``DataError``
    naming what is wrong: not integers, not one per point, or outside ``-1..K-1``."""
    if labels is None:
        return None
    if isinstance(labels, Tensor):
        array = labels.detach().cpu().numpy()
    else:
        try:
            array = np.asarray(labels)
        except (TypeError, ValueError):
            raise DataError(f"labels must be an array of component indices; got {type(labels).__name__}.") from None
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iub":
        raise DataError(f"labels must be integers (a component index 0..K-1, or -1 for unknown); got dtype "
                        f"{array.dtype}.")
    if array.shape != (n_points,):
        raise DataError(f"labels must have one entry per point, shape ({n_points},); got {array.shape}.")
    bad = (array < UNKNOWN) | (array >= n_components)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"labels must be -1 (unknown) or a component index in 0..{n_components - 1} for the "
                        f"model's K={n_components}; label {int(array[first])} at point {first} is out of range "
                        f"({int(bad.sum())} such point(s)).")
    return torch.as_tensor(array.astype(np.int64), device=device)


def aligned_to_labels(params: Params, X: Tensor, labels: Tensor) -> Params:
    """``params`` with its components reordered to agree best with the labelled points.

    An initializer knows nothing of the labels: its component 0 may sit where the points labelled 2
    are, and EM then starts far off (with few labels, in a worse optimum). Component ``j`` of the result
    is the start's component maximizing ``Σ_{n: y_n = j} log p(z_n = k | x_n)`` under one assignment of
    components (the Hungarian algorithm on a ``(K, K)`` table).
    """
    known = labels >= 0
    if not bool(known.any()):
        return params
    return permuted_by_score(params, label_scores(params, X, labels))


def label_scores(params: Params, X: Tensor, labels: Tensor) -> Tensor:
    """``score[j, k] = Σ_{n: y_n = j} log p(z_n = k | x_n)`` ``(K, K)`` over the labelled points of ``X``
    ``(n, D)`` (additive over chunks and ranks: :func:`mixtures.core.pointwise.aligned_start`)."""
    known = labels >= 0
    joint = params.joint_log_prob(X[known])  # (n, K)
    log_resp = (joint - torch.logsumexp(joint, -1, keepdim=True)).clamp_min(-1e30)
    K = params.n_components
    return log_resp.new_zeros(K, K).index_add_(0, labels[known], log_resp)


def permuted_by_score(params: Params, score: Tensor) -> Params:
    """``params`` with component ``j`` the one maximizing ``score`` ``(K, K)`` under one assignment."""
    _, columns = linear_sum_assignment(score.detach().cpu().numpy(), maximize=True)
    return params.permuted(torch.as_tensor(columns, device=params.weights.device))


def labelled_log_likelihood(params: Params, X: Tensor, labels: Tensor | None,
                            sample_weight: Tensor | None = None) -> Tensor:
    """``ℓ(θ)`` of the module docstring, a scalar (``log p(X | θ)`` summed when ``labels`` is None),
    each point's term counted ``w_n`` times with ``sample_weight`` ``(N,)`` (0 at a zero weight)."""
    joint = params.joint_log_prob(X)  # (N, K)
    terms = torch.logsumexp(joint, dim=-1)
    if labels is not None:
        complete = joint.gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
        terms = torch.where(labels >= 0, complete, terms)
    if sample_weight is None:
        return terms.sum()
    return torch.where(sample_weight > 0, sample_weight * terms, 0.0).sum()


def assignment_factor(z: Tensor, labels: Tensor, dtype: torch.dtype) -> Tensor:
    """``log 1[z_n = y_n]`` for labelled points, 0 for unlabelled ones: ``z``'s shape (enumeration
    dimensions on the left of the data's) broadcast against ``labels`` ``(N,)``, in ``dtype``."""
    excluded = (labels >= 0) & (z != labels)
    return torch.zeros(excluded.shape, dtype=dtype, device=labels.device).masked_fill(excluded, -torch.inf)


def with_labelled(family: Any, X: Tensor, params: Params, labels: Tensor, shift: Tensor,
                  unlabelled: Summary | None, hard: bool = False, sample_weight: Tensor | None = None) -> Summary:
    """The pass's statistics with the labelled points' responsibilities fixed to their one-hot component.

    ``unlabelled`` summarizes the E step of the unlabelled points ``X[labels < 0]`` at ``params``
    (``None`` when every point is labelled); the labelled points' statistics
    (:meth:`Statistics.summarize_at` at one-hot responsibilities, times their weights when
    ``sample_weight`` ``(N,)`` is given) are added to it, their complete-data log-likelihood
    ``log π_y p(x | y)`` (weighted) to its log-likelihood, and hard EM's assignments are put back in
    the data's order. Their assignments' entropy is 0; with NaN entries (missing values) the entropy
    of their missing coordinates' conditionals is added (what ``summarize_at`` gives there).
    """
    known = labels >= 0
    X_known, y_known = X[known], labels[known]
    w_known = None if sample_weight is None else sample_weight[known]
    resp = torch.nn.functional.one_hot(y_known, params.n_components).to(X.dtype)
    fixed = family.summarize_at(X_known, params, resp if w_known is None else resp * w_known[:, None], shift)
    complete = labelled_log_likelihood(params, X_known, y_known, w_known)
    entropy = fixed.entropy if has_missing(X_known) else fixed.nk.new_zeros(())
    if unlabelled is None:
        return fixed.replace(log_likelihood=complete.to(fixed.nk.dtype), entropy=entropy,
                             labels=labels.clone() if hard else None)
    total = unlabelled.with_additive([theirs + mine.to(theirs.dtype) for mine, theirs in
                                      zip(fixed.additive(), unlabelled.additive())])
    changes: dict[str, Any] = {"n_points": unlabelled.n_points + fixed.n_points,
                               "log_likelihood": unlabelled.log_likelihood + complete.to(unlabelled.nk.dtype),
                               "entropy": unlabelled.entropy + entropy.to(unlabelled.nk.dtype)}
    if hard and unlabelled.labels is not None:
        merged = labels.clone()
        merged[~known] = unlabelled.labels.to(labels.device)
        changes["labels"] = merged
    return total.replace(**changes)
