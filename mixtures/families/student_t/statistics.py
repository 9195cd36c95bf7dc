"""ECM for t mixtures on additive statistics: the E step's latent scales, the CM steps, the ELBO.

Completed with the scales ``u_n`` (``x | z = k, u ~ N(μ_k, Σ_k / u)``, ``u ~ Gamma(ν_k/2, ν_k/2)``),
the E step at ``θ`` gives ``r_nk = p(z_n = k | x_n)`` and ``q(u_n | z_n = k) = Gamma(a_k, b_nk)``
with ``a_k = (ν_k + D)/2`` and ``b_nk = (ν_k + δ_nk)/2`` (``δ_nk`` the squared Mahalanobis distance
under the scale matrix): the *precision weights* ``E[u_nk] = a_k / b_nk`` down-weight far points.

The statistics are sums over points (so they add up over chunks, ranks and minibatches,
and streamed, distributed and stepwise EM keep working); the weights depend on the
Mahalanobis distances, so they are computed *in* the pass at the E step's parameters,
not from fixed features:

    N_k  = Σ r_nk                       (Summary.nk)
    su   = Σ r_nk E[u_nk]               (K,)
    sux  = Σ r_nk E[u_nk] (x_n − s)     (K, D)       s: the shift
    suxx = the structure's second moment of (x_n − s) with weights r_nk E[u_nk]
    slogu = Σ r_nk E[log u_nk]          (K,)          (ν's CM step and the ELBO)
    hu   = Σ r_nk H(q(u_nk))            (K,)          (the ELBO)

CM step 1: ``π_k = N_k / N``, ``μ_k = sux_k / su_k``, ``Σ_k = Σ r u (x − μ)(x − μ)ᵀ / N_k``, which is
the covariance structure's own estimate (``CovarianceStructure.estimate`` of the Gaussian
family: ``second_moment / n_k − m mᵀ``) with ``n_k = N_k`` and ``m_k = μ_k √(su_k / N_k)``, so ``reg_covar``,
the singular checks and the tied, diagonal and spherical reductions are the structure's.
CM step 2: ``ν_k`` by a root-find (:mod:`.dof`). Both maximize the expected complete-data
log-likelihood, so the log-likelihood never decreases (ECM, Meng & Rubin 1993).

The ELBO of ``q(z, u)`` at ``θ`` is closed form in the statistics:

    Σ_k [N_k log π_k + D/2 slogu_k − N_k D/2 log 2π − N_k ½ log|Σ_k| − ½ Σ_n r u δ_nk(θ)
         + N_k (ν_k/2 log(ν_k/2) − lgamma(ν_k/2)) + (ν_k/2 − 1) slogu_k − ν_k/2 su_k + hu_k] + H(r),

where ``Σ_n r u δ(θ)`` is the structure's ``expected_mahalanobis`` of ``(su, sux, suxx)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mixtures.core.summary import Summary, floored_counts
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.passes import responsibility_pass
from mixtures.families.student_t import dof as dof_rule
from mixtures.families.student_t.params import StudentTParams, t_log_density

LOG_2PI = math.log(2 * math.pi)
MOMENTS = ("su", "sux", "suxx", "slogu", "hu")


def scale_moments(centred: Tensor, resp: Tensor, maha: Tensor, dof: Tensor, structure: CovarianceStructure
                  ) -> list[Tensor]:
    """The moments ``[su, sux, suxx, slogu, hu]`` of one chunk (module docstring).

    Args:
        centred: ``(n, D)`` points minus the shift. resp: ``(n, K)``. maha: ``δ_nk`` ``(n, K)``
            at the E step's parameters. dof: ``ν_k`` ``(K,)``.
    """
    D = centred.shape[-1]
    a = 0.5 * (dof + D)                                   # (K,)
    b = 0.5 * (dof + maha)                                # (n, K)
    log_b = b.log()
    weights = resp * (a / b)                              # r_nk E[u_nk]
    digamma_a = torch.digamma(a)
    # H(Gamma(a, b)) = a − log b + lgamma(a) + (1 − a) ψ(a)
    entropy = (a + torch.lgamma(a) + (1 - a) * digamma_a) - log_b
    return [weights.sum(0), weights.T @ centred, structure.second_moment(centred, weights),
            (resp * (digamma_a - log_b)).sum(0), (resp * entropy).sum(0)]


def t_summary(nk: Tensor, moments: list[Tensor], shift: Tensor, n_points: int, log_likelihood: Tensor | None = None,
              entropy: Tensor | None = None, labels: Tensor | None = None,
              worst_point: Tensor | None = None) -> Summary:
    return Summary(nk, dict(zip(MOMENTS, moments)), shift, n_points, log_likelihood, entropy, labels, worst_point)


def e_step(X: Any, params: StudentTParams, shift: Tensor, hard: bool = False, chunk_size: int | None = None,
           accumulate_dtype: torch.dtype | None = None, sample_weight: Tensor | None = None) -> Summary:
    """One pass: responsibilities (one-hot if ``hard``) at ``params``, the scales' expectations and
    every statistic, with ``log p(X | params)`` and the entropy of the responsibilities."""
    structure, D = params.cov_type, params.n_features
    whitening, half_log_det = params.whitener()
    locs = params.locs - shift
    log_weights = params.weights.log()

    def joint(rows: Tensor) -> tuple[Tensor, Any]:
        centred = rows - shift
        maha = structure.mahalanobis(centred, locs, whitening)
        return t_log_density(maha, params.dof, D, half_log_det) + log_weights, (centred, maha)

    def statistics(rows: Tensor, resp: Tensor, context: Any) -> list[Tensor]:
        centred, maha = context
        return scale_moments(centred, resp, maha, params.dof, structure)

    totals = responsibility_pass(X, shift, params.n_components, joint, statistics, hard, chunk_size,
                                 accumulate_dtype, sample_weight)
    return t_summary(totals.nk, totals.sums, shift.to(totals.nk.dtype), totals.n_points, totals.log_likelihood,
                     totals.entropy, totals.labels, totals.worst_point)


def summarize_at(X: Tensor, params: StudentTParams, resp: Tensor, shift: Tensor) -> Summary:
    """Statistics of given responsibilities ``resp`` ``(n, K)`` with the scales' expectations at ``params``."""
    centred = X - shift
    maha = params.cov_type.mahalanobis(centred, params.locs - shift, params.whitener()[0])
    entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum()
    return t_summary(resp.sum(0), scale_moments(centred, resp, maha, params.dof, params.cov_type), shift,
                     X.shape[0], None, entropy)


def unit_scale_summary(X: Tensor, resp: Tensor, structure: CovarianceStructure, shift: Tensor) -> Summary:
    """Statistics of ``resp`` ``(N, K)`` with every scale ``u = 1`` (no parameters yet: a start)."""
    centred = X - shift
    zeros = resp.new_zeros(resp.shape[1])
    entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum()
    moments = [resp.sum(0), resp.T @ centred, structure.second_moment(centred, resp), zeros, zeros.clone()]
    return t_summary(resp.sum(0), moments, shift, X.shape[0], None, entropy)


def cm_step(summary: Summary, structure: CovarianceStructure, reg_covar: float, dof: Tensor) -> StudentTParams:
    """CM step 1 (weights, locations, scale matrices; module docstring) with degrees of freedom ``dof`` ``(K,)``."""
    nk = floored_counts(summary.nk)
    su = floored_counts(summary.su)
    means = summary.sux / su[:, None]
    native = structure.estimate(nk, means * (su / nk).sqrt()[:, None], summary.suxx, reg_covar)
    return StudentTParams.from_native(nk / nk.sum(), means + summary.shift, native, dof.to(nk.dtype), structure,
                                      validate=False)


def dof_step(summary: Summary, mode: str, bounds: tuple[float, float], fixed: float | None) -> Tensor:
    """CM step 2: ``ν`` ``(K,)`` (:func:`.dof.estimate`)."""
    return dof_rule.estimate(summary.nk, summary.slogu, summary.su, mode, bounds, fixed)


def keep_components(summary: Summary, previous: StudentTParams, keep: Tensor) -> Summary:
    """Statistics in which every ``keep`` component carries unit mass at the shift with the scatter of
    its ``previous`` scale matrix (hard EM's emptied components: their estimates are discarded, and
    this keeps them regular for any ``reg_covar``); a shared structure's statistics are used as they are."""
    if previous.cov_type.shared:
        return summary
    scale = previous.scale_matrices.to(summary.suxx.dtype)
    scatter = scale if summary.suxx.dim() == 3 else scale.diagonal(dim1=-2, dim2=-1)
    mask = keep.reshape((-1,) + (1,) * (scatter.dim() - 1))
    one = torch.ones_like(summary.nk)
    return summary.replace(nk=torch.where(keep, one, summary.nk), su=torch.where(keep, one, summary.su),
                           sux=torch.where(keep[:, None], torch.zeros_like(summary.sux), summary.sux),
                           suxx=torch.where(mask, scatter, summary.suxx))


def with_component(summary: Summary, component: int, structure: CovarianceStructure, mass: Tensor,
                   point: Tensor) -> Summary:
    """Statistics in which ``component`` has ``mass`` at ``point`` (shifted frame), unit scales and the
    data's pooled scale matrix (a re-seeded or pooled component; its ν comes from the CM step)."""
    pooled = structure.pooled_scatter(floored_counts(summary.su), summary.sux, summary.suxx)
    moments = {name: summary.moments[name].clone() for name in MOMENTS}
    nk = summary.nk.clone()
    nk[component] = mass
    moments["su"][component] = mass
    moments["sux"][component] = mass * point
    moments["suxx"][component] = structure.component_statistic(pooled, mass, point)
    moments["slogu"][component] = 0.0
    moments["hu"][component] = 0.0
    return summary.replace(nk=nk, **moments)


def expected_log_joint(summary: Summary, params: StudentTParams) -> Tensor:
    """``E_q[log p(X, Z, U | θ)]`` in closed form from the statistics of ``q`` (scalar)."""
    whitening, half_log_det = params.whitener()
    D = params.n_features
    nk, su, slogu = summary.nk, summary.su, summary.slogu
    dof = params.dof.to(nk.dtype)
    weight_term = torch.where(nk > 0, nk * params.weights.log(), 0.0).sum()
    maha = params.cov_type.expected_mahalanobis(su, summary.sux, summary.suxx, params.locs - summary.shift,
                                                whitening)
    log_det = (nk * half_log_det).sum() if half_log_det.dim() else nk.sum() * half_log_det
    gaussian = 0.5 * D * slogu.sum() - 0.5 * D * LOG_2PI * nk.sum() - log_det - 0.5 * maha
    half = 0.5 * dof
    scales = (nk * (half * half.log() - torch.lgamma(half)) + (half - 1) * slogu - half * su).sum()
    return weight_term + gaussian + scales


def elbo(summary: Summary, params: StudentTParams) -> Tensor:
    """``E_q[log p(X, Z, U | θ)] + H(q(Z)) + H(q(U | Z))``."""
    return expected_log_joint(summary, params) + summary.hu.sum() + summary.entropy
