"""Sufficient statistics of a Gaussian mixture: one fused E-step pass, the M step, the ELBO.

EM's statistics ``Σ_n r_nk``, ``Σ_n r_nk x_n`` (moment ``"sx"``) and ``Σ_n r_nk x_n x_nᵀ``
(moment ``"sxx"``, or the covariance structure's reduction of it) add up over any split
of the data, so one pass over chunks computes them exactly with every temporary of size
``O(chunk × (K + D²))`` (:func:`mixtures.kernels.fused_pass.fused_pass`). The pass also
yields the log-likelihood of the parameters it used and the entropy of the
responsibilities: everything an EM iteration and its trace need, without storing the
``(N, K)`` responsibilities.

Statistics are accumulated about a ``shift`` (a point near the data's centre) so that
``Σ r x xᵀ / n - μ μᵀ`` does not lose digits to cancellation when the data sit far from
the origin.

Numerics of the fused pass: the log densities are one matmul ``C @ F`` over features
``F = [1; x; second-order terms]`` of the shifted points, i.e. the quadratic form is
expanded about the shift (``xᵀPx − 2xᵀPμ + μᵀPμ``, with ``P = L⁻ᵀL⁻¹`` from the inverted
Cholesky factor). It loses about ``eps · |x − shift|² / σ²`` relative digits: the digits
the M step's moments about the same shift already lose. In float64 that is below 1e-10
up to 10⁴ standard deviations; in float32 keep the data within ~100 standard deviations
of its centre (standardize) or fit in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from mixtures.core.chunks import chunk_size_for, iter_chunks
from mixtures.core.summary import Summary, default_shift, floored_counts
from mixtures.families.gaussian import whitened
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.distributions import LOG_2PI
from mixtures.families.gaussian.params import MixtureParams
from mixtures.kernels.fused_pass import fused_pass


def gaussian_summary(nk: Tensor, sx: Tensor, sxx: Tensor, shift: Tensor, n_points: int,
                     log_likelihood: Tensor | None = None, entropy: Tensor | None = None,
                     labels: Tensor | None = None, worst_point: Tensor | None = None) -> Summary:
    """A :class:`~mixtures.core.summary.Summary` with the Gaussian moments ``sx`` ``(K, D)``
    (``Σ r (x - shift)``) and ``sxx`` (the structure's second moment of ``x - shift``)."""
    return Summary(nk, {"sx": sx, "sxx": sxx}, shift, n_points, log_likelihood, entropy, labels, worst_point)


def e_step(X: Tensor, params: MixtureParams, shift: Tensor, hard: bool = False, chunk_size: int | None = None,
           accumulate_dtype: torch.dtype | None = None, sample_weight: Tensor | None = None) -> Summary:
    """One fused pass: E step at ``params`` and the statistics of its responsibilities.

    Args:
        X: ``(N, D)`` data, in memory or streamed (then ``labels`` are not kept: memory
            stays bounded by the chunk).
        params: parameters for the E step.
        shift: ``(D,)`` centre for the moments.
        hard: assign each point to its most probable component (classification EM).
        chunk_size: points per chunk (default: :func:`~mixtures.kernels.fused_pass.fused_chunk_size`).
        accumulate_dtype: dtype of the sums over chunks (e.g. float64 for float32 data: each
            chunk is computed in the data's dtype, the totals do not lose digits as N grows).
        sample_weight: ``(N,)`` weights of in-memory points (:mod:`mixtures.core.weights`).
    """
    structure = params.cov_type
    D = params.n_features
    whitening, half_log_det = params.whitener()
    if whitened.uses_whitening(structure, params.n_components, D, whitening):  # wide data: two large GEMMs
        sums = whitened.whitened_pass(X, params.weights.log(), params.locs, whitening, half_log_det, shift, hard=hard,
                                      chunk_size=chunk_size, accumulate_dtype=accumulate_dtype,
                                      sample_weight=sample_weight)
    else:
        coefficients = structure.log_joint_coefficients(params.weights.log(), params.locs - shift, whitening,
                                                        half_log_det)
        sums = fused_pass(X, coefficients, shift, structure.moment_feature_writer, structure.n_moment_features(D),
                          hard=hard, chunk_size=chunk_size, accumulate_dtype=accumulate_dtype,
                          sample_weight=sample_weight)
    total = sums.sums
    return gaussian_summary(total[:, 0].clone(), total[:, 1:1 + D].clone(),
                            structure.moment_from_features(total[:, 1 + D:], D), shift.to(total.dtype),
                            sums.n_points, sums.log_likelihood, sums.entropy, sums.labels, sums.worst_point)


def summarize(X: Tensor, resp: Tensor, structure: CovarianceStructure, shift: Tensor | None = None,
              chunk_size: int | None = None) -> Summary:
    """Statistics of given responsibilities ``resp`` ``(N, K)`` (initialization from a partition)."""
    shift = default_shift(X) if shift is None else shift
    K, D = resp.shape[1], X.shape[1]
    chunk = chunk_size or chunk_size_for(K, D)
    nk, sx, sxx = X.new_zeros(K), X.new_zeros(K, D), None
    for rows in iter_chunks(X.shape[0], chunk):
        Xc, r = X[rows] - shift, resp[rows]
        nk += r.sum(0)
        sx += r.T @ Xc
        moment = structure.second_moment(Xc, r)
        sxx = moment if sxx is None else sxx + moment
    if sxx is None:  # no points
        sxx = structure.second_moment(X.new_zeros(0, D), X.new_zeros(0, K))
    entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum()
    return gaussian_summary(nk, sx, sxx, shift, X.shape[0], X.new_tensor(math.nan), entropy)


def ml_weights(nk: Tensor) -> Tensor:
    """Maximum-likelihood weights ``(K,)`` of floored counts."""
    floored = floored_counts(nk)
    return floored / floored.sum()


def m_step(summary: Summary, structure: CovarianceStructure, reg_covar: float) -> MixtureParams:
    """Maximum-likelihood parameters for the summarized responsibilities.

    Weights ``∝ nk``, means ``Σ r x / nk``, covariances from the centred scatter plus
    ``reg_covar`` on the diagonal. Raises ``SingularCovarianceError`` naming the component
    whose covariance is not positive definite.
    """
    nk = floored_counts(summary.nk)
    weights = nk / nk.sum()
    means = summary.sx / nk[:, None]
    native = structure.estimate(nk, means, summary.sxx, reg_covar)
    return MixtureParams.from_native(weights, means + summary.shift, native, structure, validate=False)


def about_means(summary: Summary, structure: CovarianceStructure, locs: Tensor) -> Summary:
    """Statistics for which :func:`m_step` gives means ``locs`` ``(K, D)`` and covariances estimated
    from the scatter about them, ``W_k = Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ`` (EM with frozen means).

    With ``μ = locs - shift``, ``m = sx / ñ`` and ``ñ`` the floored counts :func:`m_step` divides by,
    ``sx' = ñ μ`` and ``sxx' = sxx + n (μ - m)(μ - m)ᵀ - n m mᵀ + ñ μ μᵀ`` (``n = nk``), so that
    ``sxx' / ñ - μ μᵀ = W / ñ``. The correction is the structure's ``second_moment`` of the three
    points ``μ - m``, ``m``, ``μ`` of every component with weights ``n``, ``-n``, ``ñ`` (statistics are
    linear in the responsibilities, whatever the structure's reduction).
    """
    nk = summary.nk
    floored = floored_counts(nk)
    mu = (locs.to(summary.sx) - summary.shift)
    m = summary.sx / floored[:, None]
    K = nk.shape[0]
    points = torch.cat([mu - m, m, mu])  # (3K, D)
    eye = torch.eye(K, dtype=nk.dtype, device=nk.device)
    resp = torch.cat([eye * nk, -eye * nk, eye * floored])  # (3K, K): row i weighs its point for its component
    sxx = summary.sxx + structure.second_moment(points, resp)
    return summary.replace(sx=floored[:, None] * mu, sxx=sxx)


def m_step_keeping(summary: Summary, structure: CovarianceStructure, reg_covar: float, keep: Tensor,
                   previous: MixtureParams, estimate: Callable[[Summary], MixtureParams],
                   weights: Tensor) -> MixtureParams:
    """The M step in which the components marked ``keep`` ``(K,)`` keep ``previous``'s mean and
    covariance and take ``weights`` (hard EM's rule for emptied components).

    The kept components' statistics are replaced by unit mass at the shift with the scatter of
    their previous covariance before ``estimate`` runs, so that rule holds for any
    ``reg_covar``, 0 included; their estimates are discarded. (A shared covariance pools all
    points, which an empty component does not enter: its statistics are used as they are.
    A coupled structure, whose components share a volume, shape or orientation, keeps the
    estimate from the substituted statistics: the previous covariance would break the
    shared part.)
    """
    estimating = summary if structure.shared else _substitute(summary, previous, keep)
    new = estimate(estimating)
    locs = torch.where(keep[:, None], previous.locs.to(new.locs.dtype), new.locs)
    native = new.native
    if not structure.shared and not structure.coupled:
        mask = keep.reshape((-1,) + (1,) * (native.dim() - 1))
        native = torch.where(mask, previous.native.to(native.dtype), native)
    return MixtureParams.from_native(weights, locs, native, structure, validate=False)


def _substitute(summary: Summary, previous: MixtureParams, keep: Tensor) -> Summary:
    """Statistics in which every ``keep`` component carries unit mass at the shift with the
    scatter of its ``previous`` covariance (centring at the shift keeps ``E[x²] - E[x]²``
    free of cancellation)."""
    covariances = previous.covariances.to(summary.sxx.dtype)  # (K, D, D)
    scatter = covariances if summary.sxx.dim() == 3 else covariances.diagonal(dim1=-2, dim2=-1)
    mask = keep.reshape((-1,) + (1,) * (scatter.dim() - 1))
    return summary.replace(nk=torch.where(keep, torch.ones_like(summary.nk), summary.nk),
                           sx=torch.where(keep[:, None], torch.zeros_like(summary.sx), summary.sx),
                           sxx=torch.where(mask, scatter, summary.sxx))


def with_pooled_covariance(summary: Summary, component: int, structure: CovarianceStructure,
                           mass: Tensor, point: Tensor) -> Summary:
    """Statistics where ``component`` has ``mass``, mean ``point`` (shifted frame) and the
    covariance of all the data (its pooled scatter about the overall mean)."""
    if structure.shared:
        raise ValueError("a shared covariance has no per-component statistics to replace.")
    total = summary.nk.sum()
    pooled_mean = summary.sx.sum(0) / total
    if structure.statistic == "matrix":
        pooled = summary.sxx.sum(0) / total - torch.outer(pooled_mean, pooled_mean)
    else:
        pooled = summary.sxx.sum(0) / total - pooled_mean.square()
    nk, sx, sxx = summary.nk.clone(), summary.sx.clone(), summary.sxx.clone()
    nk[component] = mass
    sx[component] = mass * point
    sxx[component] = structure.component_statistic(pooled, mass, point)
    return summary.replace(nk=nk, sx=sx, sxx=sxx)


def reseed_component(summary: Summary, component: int, structure: CovarianceStructure) -> Summary:
    """Statistics in which ``component`` restarts at the pass's worst-explained point.

    It sits there with the covariance of all the data; the caller then gives it weight
    1/N (its statistics carry the whole data's mass only to set that covariance).
    """
    if summary.worst_point is None:
        raise ValueError("re-seeding needs the worst-explained point of an in-memory or streamed pass.")
    return with_pooled_covariance(summary, component, structure, summary.nk.sum(),
                                  summary.worst_point - summary.shift)


def pooled_component(summary: Summary, component: int, structure: CovarianceStructure) -> Summary:
    """Statistics in which ``component`` keeps its mass and mean but takes the data's covariance."""
    mass = summary.nk[component].clamp_min(10 * torch.finfo(summary.nk.dtype).eps)
    return with_pooled_covariance(summary, component, structure, mass, summary.sx[component] / mass)


def expected_log_joint(summary: Summary, params: MixtureParams) -> Tensor:
    """``E_q[log p(X, Z | θ)]`` in closed form from the statistics of ``q`` (scalar)."""
    whitening, half_log_det = params.whitener()
    D = params.n_features
    nk = summary.nk
    weight_term = torch.where(nk > 0, nk * params.weights.log(), 0.0).sum()
    maha = params.cov_type.expected_mahalanobis(nk, summary.sx, summary.sxx, params.locs - summary.shift,
                                                whitening)
    log_det_term = (nk * half_log_det).sum() if half_log_det.dim() else nk.sum() * half_log_det
    return weight_term - 0.5 * nk.sum() * D * LOG_2PI - log_det_term - 0.5 * maha


def elbo(summary: Summary, params: MixtureParams) -> Tensor:
    """``E_q[log p(X, Z | θ)] + H(q)``: the ELBO of ``q`` (summarized) at ``θ``."""
    return expected_log_joint(summary, params) + summary.entropy
