"""Matching fitted components to true ones (label switching), then parameter errors.

A mixture is only identified up to a permutation of its components, so parameter errors
are computed after :func:`align_components` matches fitted components to true ones
(Hungarian algorithm on a divergence between Gaussian components).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mixtures.core.result import FitResult, params_of
from mixtures.errors import ParameterError
from mixtures.families.gaussian import MixtureParams

COSTS = ("jeffreys", "mahalanobis")


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
    fitted, truth = params_of(fitted, "fitted"), params_of(truth, "truth")
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
    fitted = params_of(fitted, "fitted")
    return fitted.permuted(align_components(fitted, truth, cost).to(fitted.device))


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
    fitted, truth = params_of(fitted, "fitted"), params_of(truth, "truth")
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
