"""Metrics that compare fitted mixtures with the truth, with each other and with data.

Label switching: a mixture is only identified up to a permutation of its
components, so parameter errors are computed after :func:`align_components`
matches fitted components to true ones (Hungarian algorithm on a divergence
between Gaussian components).

Signs: information criteria follow scikit-learn (``bic``/``aic``/``icl`` lower is
better); mclust reports the negation (higher is better).

Clustering scores (:func:`adjusted_rand_index`, :func:`normalized_mutual_info`)
are implemented here with numpy; scikit-learn is only the test-time reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.errors import ParameterError
from mixtures.params import MixtureParams
from mixtures.result import FitResult
from mixtures.validation import as_data, check_nonnegative_float, check_positive_int

__all__ = [
    "component_cost_matrix", "align_components", "align", "parameter_errors",
    "adjusted_rand_index", "normalized_mutual_info",
    "gaussian_kl", "kl_divergence", "held_out_log_likelihood", "information_criteria",
    "singular_components", "is_singular",
]

COSTS = ("jeffreys", "mahalanobis")


# -- alignment ------------------------------------------------------------------------

def _params(value: Any, name: str) -> MixtureParams:
    """Accept ``MixtureParams`` or a ``FitResult`` (its ``params``)."""
    if isinstance(value, FitResult):
        return value.params
    if not isinstance(value, MixtureParams):
        raise TypeError(f"{name} must be a MixtureParams or a FitResult; got {type(value).__name__}.")
    return value


def _check_comparable(fitted: MixtureParams, truth: MixtureParams) -> None:
    if fitted.n_features != truth.n_features:
        raise ParameterError(
            f"fitted mixture has D={fitted.n_features} features but the true one has "
            f"D={truth.n_features}; compare mixtures of the same data."
        )
    if fitted.n_components != truth.n_components:
        raise ParameterError(
            f"cannot align a fitted mixture with K={fitted.n_components} components to a true one "
            f"with K={truth.n_components}: alignment is a one-to-one matching. Fit with "
            f"n_components={truth.n_components}, or compare densities instead (kl_divergence, "
            "held_out_log_likelihood)."
        )


def component_cost_matrix(fitted: MixtureParams, truth: MixtureParams, cost: str = "jeffreys") -> Tensor:
    """Dissimilarity between every true and every fitted component: ``(K_true, K_fitted)``.

    ``cost="jeffreys"`` (default) is the symmetric KL divergence
    ``KL(N_t || N_f) + KL(N_f || N_t)`` between true component ``t`` and fitted
    component ``f``::

        ½ [tr(Σ_f⁻¹ Σ_t) + tr(Σ_t⁻¹ Σ_f) − 2D] + ½ Δᵀ (Σ_t⁻¹ + Σ_f⁻¹) Δ,   Δ = μ_t − μ_f

    (the log-determinants cancel). It separates components by their covariances
    when their means coincide (e.g. a narrow and a wide component at the same
    place), where a distance between means alone is blind. Traces and quadratic
    forms use triangular solves with the Cholesky factors, never inverses.

    ``cost="mahalanobis"`` is ``Δᵀ Σ_t⁻¹ Δ``, the squared distance of the means in
    the metric of the *true* covariance (ignores the fitted covariances).

    Both are ``(K, K)`` float tensors in the dtype of ``truth``.
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}; got {cost!r}.")
    fitted = fitted.to(dtype=truth.dtype, device=truth.device)
    L_t, L_f = truth.scale_tril, fitted.scale_tril            # (K, D, D) each
    K_t, K_f, D = truth.n_components, fitted.n_components, truth.n_features
    delta = truth.locs[:, None, :] - fitted.locs[None, :, :]  # (K_t, K_f, D)
    # L_t⁻¹ Δ for every pair: solve with L_t broadcast over fitted components.
    white_t = torch.linalg.solve_triangular(
        L_t[:, None].expand(K_t, K_f, D, D), delta.unsqueeze(-1), upper=False).squeeze(-1)
    maha_t = white_t.square().sum(-1)                          # Δᵀ Σ_t⁻¹ Δ: (K_t, K_f)
    if cost == "mahalanobis":
        return maha_t
    white_f = torch.linalg.solve_triangular(
        L_f[None].expand(K_t, K_f, D, D), delta.unsqueeze(-1), upper=False).squeeze(-1)
    maha_f = white_f.square().sum(-1)                          # Δᵀ Σ_f⁻¹ Δ
    # tr(Σ_f⁻¹ Σ_t) = ‖L_f⁻¹ L_t‖_F², and symmetrically.
    pair_t = L_t[:, None].expand(K_t, K_f, D, D)
    pair_f = L_f[None].expand(K_t, K_f, D, D)
    trace_ft = torch.linalg.solve_triangular(pair_f, pair_t, upper=False).square().sum((-2, -1))
    trace_tf = torch.linalg.solve_triangular(pair_t, pair_f, upper=False).square().sum((-2, -1))
    return 0.5 * (trace_ft + trace_tf - 2 * D) + 0.5 * (maha_t + maha_f)


def align_components(fitted: MixtureParams | FitResult, truth: MixtureParams,
                     cost: str = "jeffreys") -> Tensor:
    """Match fitted components to true ones (label switching).

    Solves the assignment problem (Hungarian algorithm,
    ``scipy.optimize.linear_sum_assignment``) on :func:`component_cost_matrix`
    (symmetric KL between Gaussian components by default).

    Args:
        fitted: fitted mixture (or a ``FitResult``), ``K`` components.
        truth: reference mixture with the same ``K`` and ``D``.
        cost: ``"jeffreys"`` or ``"mahalanobis"``, see :func:`component_cost_matrix`.

    Returns:
        ``perm`` ``(K,)`` LongTensor: fitted component ``perm[k]`` matches true
        component ``k``, so ``fitted.locs[perm]`` lines up with ``truth.locs``.

    Raises:
        ParameterError: different numbers of components or of features.
    """
    from scipy.optimize import linear_sum_assignment

    fitted, truth = _params(fitted, "fitted"), _params(truth, "truth")
    _check_comparable(fitted, truth)
    costs = component_cost_matrix(fitted, truth, cost).detach().cpu().double().numpy()
    if not np.isfinite(costs).all():
        raise ParameterError("the component cost matrix is not finite; check the covariances "
                             "(a component may be degenerate).")
    rows, cols = linear_sum_assignment(costs)
    perm = np.empty(truth.n_components, dtype=np.int64)
    perm[rows] = cols
    return torch.as_tensor(perm, dtype=torch.long)


def align(fitted: MixtureParams | FitResult, truth: MixtureParams, cost: str = "jeffreys"
          ) -> MixtureParams:
    """``fitted`` with its components reordered to line up with ``truth``'s."""
    fitted = _params(fitted, "fitted")
    perm = align_components(fitted, truth, cost)
    native = fitted.native if fitted.covariance_type == "tied" else fitted.native[perm]
    return MixtureParams.from_native(fitted.weights[perm], fitted.locs[perm], native,
                                     fitted.covariance_type, validate=False)


def parameter_errors(fitted: MixtureParams | FitResult, truth: MixtureParams,
                     perm: Tensor | None = None, cost: str = "jeffreys") -> dict[str, float]:
    """Errors of fitted parameters against the truth, after alignment.

    Args:
        fitted, truth: mixtures with the same ``K`` and ``D`` (any covariance types:
            errors are computed on full matrices).
        perm: alignment to use; by default :func:`align_components`.

    Returns:
        ``weights_l1`` = ``Σ_k |Δw_k|``; ``weights_max`` = ``max_k |Δw_k|``;
        ``means_rmse`` = root mean square over the ``K·D`` entries of ``Δμ``;
        ``means_max`` = largest ``|Δμ_kd|``; ``covariances_frobenius`` = mean over
        ``k`` of ``‖ΔΣ_k‖_F``; ``covariances_relative`` = mean over ``k`` of
        ``‖ΔΣ_k‖_F / ‖Σ_k‖_F`` (``Σ_k`` true).
    """
    fitted, truth = _params(fitted, "fitted"), _params(truth, "truth")
    _check_comparable(fitted, truth)
    if perm is None:
        perm = align_components(fitted, truth, cost)
    perm = torch.as_tensor(perm, dtype=torch.long, device=truth.device)
    if sorted(perm.tolist()) != list(range(truth.n_components)):
        raise ValueError(f"perm must be a permutation of 0..{truth.n_components - 1}; got {perm.tolist()}.")
    fitted = fitted.to(dtype=truth.dtype, device=truth.device)
    dw = fitted.weights[perm] - truth.weights          # (K,)
    dmu = fitted.locs[perm] - truth.locs               # (K, D)
    true_cov = truth.covariances                       # (K, D, D)
    dcov_norm = torch.linalg.matrix_norm(fitted.covariances[perm] - true_cov)  # (K,) Frobenius
    return {
        "weights_l1": float(dw.abs().sum()),
        "weights_max": float(dw.abs().max()),
        "means_rmse": float(dmu.square().mean().sqrt()),
        "means_max": float(dmu.abs().max()),
        "covariances_frobenius": float(dcov_norm.mean()),
        "covariances_relative": float((dcov_norm / torch.linalg.matrix_norm(true_cov)).mean()),
    }


# -- clustering agreement ---------------------------------------------------------------

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


# -- densities ------------------------------------------------------------------------

def gaussian_kl(loc_p: Tensor, cov_p: Tensor, loc_q: Tensor, cov_q: Tensor) -> Tensor:
    """Closed-form ``KL(N(μ_p, Σ_p) || N(μ_q, Σ_q))`` for batches ``(..., D)``, ``(..., D, D)``.

    ``½ [tr(Σ_q⁻¹ Σ_p) + Δᵀ Σ_q⁻¹ Δ − D + log det Σ_q − log det Σ_p]`` via Cholesky
    factors. Returns ``(...)``.
    """
    L_p, L_q = torch.linalg.cholesky(cov_p), torch.linalg.cholesky(cov_q)
    L_p, L_q = torch.broadcast_tensors(L_p, L_q)
    D = loc_p.shape[-1]
    trace = torch.linalg.solve_triangular(L_q, L_p, upper=False).square().sum((-2, -1))
    delta = (loc_p - loc_q).unsqueeze(-1)
    maha = torch.linalg.solve_triangular(L_q, delta.expand(*L_q.shape[:-1], 1), upper=False)
    maha = maha.square().sum((-2, -1))
    log_det_ratio = 2.0 * (L_q.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                           - L_p.diagonal(dim1=-2, dim2=-1).log().sum(-1))
    return 0.5 * (trace + maha - D + log_det_ratio)


def kl_divergence(p: MixtureParams | FitResult, q: MixtureParams | FitResult, n_samples: int = 10000,
                  seed: int | None = 0) -> tuple[float, float]:
    """Monte Carlo estimate of ``KL(p || q) = E_p[log p(x) − log q(x)]``.

    KL between mixtures has no closed form; ``n_samples`` points are drawn from
    ``p`` (reproducibly for a given ``seed``) and the log-density ratio averaged.

    Returns:
        ``(estimate, standard_error)`` with ``standard_error = std / sqrt(n)``
        (sample standard deviation of the log ratios). ``KL(p || p)`` is exactly
        ``(0.0, 0.0)``. The estimate can come out slightly negative when ``p`` and
        ``q`` are close; it is not clipped (clipping would bias it).
    """
    p, q = _params(p, "p"), _params(q, "q")
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    if p.n_features != q.n_features:
        raise ParameterError(f"p has D={p.n_features} features but q has D={q.n_features}.")
    X, _ = p.sample(n_samples, seed)
    ratio = p.log_prob(X) - q.to(dtype=p.dtype, device=p.device).log_prob(X)  # (n,)
    if not torch.isfinite(ratio).all():
        return math.inf, math.nan  # q has (numerically) no mass where p does
    return float(ratio.mean()), float(ratio.std() / math.sqrt(n_samples))


def held_out_log_likelihood(params: MixtureParams | FitResult, X: Any) -> float:
    """Mean log density per point ``(1/N) Σ_n log p(x_n)`` of data ``X`` ``(N, D)``."""
    params = _params(params, "params")
    return float(params.log_prob(as_data(X, n_features=params.n_features)).mean())


def information_criteria(result: FitResult, X: Any) -> dict[str, float]:
    """``bic``, ``aic`` and ``icl`` of a fit on data ``X`` ``(N, D)`` (lower is better).

    ``bic`` and ``aic`` are ``result.bic(X)`` and ``result.aic(X)``. ICL
    (integrated completed likelihood, Biernacki et al.) adds to BIC the entropy
    of the MAP classification::

        icl = bic − 2 Σ_n Σ_k ẑ_nk log r_nk = bic − 2 Σ_n log r_{n, ẑ_n}

    with ``r`` the responsibilities ``(N, K)`` and ``ẑ`` the one-hot MAP assignment
    (ties: lowest index, as ``FitResult.predict``). mclust writes
    ``ICL = BIC + 2 Σ ẑ log z`` with its higher-is-better BIC; ours has the
    opposite sign, hence the minus. ``icl >= bic``, equal for crisp posteriors.
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"result must be a FitResult; got {type(result).__name__}.")
    X = as_data(X, n_features=result.params.n_features, dtype=result.params.dtype,
                device=result.params.device)
    joint = result.params.joint_log_prob(X)                              # (N, K)
    # log r_{n, ẑ_n} = max_k joint_nk − logsumexp_k joint_nk, in log space.
    map_log_resp = joint.max(-1).values - torch.logsumexp(joint, -1)     # (N,)
    bic = result.bic(X)
    return {"bic": bic, "aic": result.aic(X), "icl": bic - 2.0 * float(map_log_resp.sum())}


# -- degenerate fits --------------------------------------------------------------------

def singular_components(params: MixtureParams | FitResult, reg_covar: float, rtol: float = 1e-3,
                        atol: float = 0.0) -> list[int]:
    """Components whose covariance collapsed onto the ``reg_covar`` floor.

    An M step adds ``reg_covar`` to every covariance diagonal, so a component that
    sits on points with (locally) no spread in some direction, e.g. a component
    of a diag fit of Old Faithful on the tied values ``waiting = 83``, ends with a
    smallest covariance eigenvalue of ``reg_covar`` (up to round-off). Such a fit
    has an unbounded likelihood in the limit and must not win a model selection.

    A component is flagged when ``λ_min(Σ_k) <= reg_covar (1 + rtol) + atol``
    (``atol`` covers ``reg_covar = 0``). For ``"tied"`` covariances the shared
    matrix collapses for every component at once, so all are returned.

    Returns:
        Sorted component indices.
    """
    params = _params(params, "params")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    rtol = check_nonnegative_float(rtol, "rtol")
    atol = check_nonnegative_float(atol, "atol")
    if params.covariance_type in ("diag", "spherical"):
        # the variances are the eigenvalues
        smallest = params.native.reshape(params.n_components, -1).min(-1).values
    else:
        smallest = torch.linalg.eigvalsh(params.covariances).min(-1).values  # (K,)
    threshold = reg_covar * (1.0 + rtol) + atol
    return torch.nonzero(smallest <= threshold).reshape(-1).tolist()


def is_singular(params: MixtureParams | FitResult, reg_covar: float, rtol: float = 1e-3,
                atol: float = 0.0) -> bool:
    """True when some component's covariance collapsed to the ``reg_covar`` floor.

    See :func:`singular_components` for the criterion.
    """
    return bool(singular_components(params, reg_covar, rtol, atol))
