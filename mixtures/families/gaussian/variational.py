"""Coordinate-ascent variational Bayes (CAVI; Bishop PRML §10.2) for the conjugate model.

The Gaussian family's variational mathematics (the generic CAVI loop is
:mod:`mixtures.inference.vb`): ``mixtures.fit(GaussianMixture(K, cov, prior=GaussianPrior()),
X, method="vb")`` fits the mean-field posterior ``q(Z) q(π) Π_k q(μ_k, Λ_k)`` of the mixture with a
conjugate prior (``GaussianPrior(kind="conjugate")``, Dirichlet or truncated
Dirichlet-process weights, :mod:`mixtures.priors`). One iteration is one fused pass
over the data in chunks (never an ``(N, K, D)`` array) that computes the E step

    log ρ_nk = E[log π_k] + ½ E[log|Λ_k|] − D/2 log 2π − ½ E[(x_n − μ_k)ᵀ Λ_k (x_n − μ_k)],
    r_nk = ρ_nk / Σ_j ρ_nj,

and sums the statistics of ``r`` (``N_k``, ``Σ r x``, second moments, entropy), then
the closed-form update of ``q(θ)`` from those statistics.

Two sets of updates (option ``updates``)
----------------------------------------
``updates="sklearn"`` (default) reproduces scikit-learn's ``BayesianGaussianMixture``
(same variational parameters and lower bound per iteration, to rounding, when
started from the same responsibilities). For ``"full"`` covariances with Dirichlet
weights this *is* exact CAVI for the model declared in :mod:`mixtures.priors`. In the
other cases scikit-learn's updates are exact CAVI for a slightly different
generative model or variational family, namely:

* every covariance type: the **full-covariance** Normal–Wishart mixture
  ``Λ_k ~ Wishart(ν₀, Ψ̃₀⁻¹)``, ``μ_k | Λ_k ~ N(m₀, (β₀Λ_k)⁻¹)``,
  ``x | z = k ~ N(μ_k, Λ_k⁻¹)`` with ``Ψ̃₀ = Ψ₀`` (full, tied), ``diag(Ψ₀)`` (diag),
  ``Ψ₀ I`` (spherical), and with ``q(Λ_k) = Wishart(ν_k, W_k)`` *restricted*:
  ``W_k`` diagonal (``"diag"``), ``W_k`` a multiple of the identity
  (``"spherical"``), or one ``(ν, W)`` shared by all ``K`` independent ``Λ_k``
  (``"tied"``). The restricted optimum is what scikit-learn computes: ``ν_k = ν₀ + N_k``
  and the diagonal / the mean diagonal of the full update for diag / spherical
  (hence its Wishart digamma sum ``Σ_{i<D} ψ((ν_k − i)/2)`` for every type), and the
  average over components ``ν = ν₀ + N/K``, ``Ψ = Ψ₀ + (1/K) Σ_k (...)`` for tied.
  The model declared in :mod:`mixtures.priors` instead has one shared ``Λ`` for
  tied (exact update ``ν = ν₀ + N``, ``Ψ = Ψ₀ + Σ_k (...)``), independent
  ``Gamma(ν₀/2, rate Ψ₀_d/2)`` precisions per dimension for diag (same update of
  ``(ν_k, σ²_kd)``, but ``E[log λ_kd] = ψ(ν_k/2) − log(ν_k σ²_kd / 2)``), and one
  ``Gamma(ν₀/2, rate Ψ₀/2)`` precision per component for spherical (exact update
  ``ν_k = ν₀ + D N_k``, ``Ψ_k = Ψ₀ + D N_k (...)``: every dimension counts).
* ``"dirichlet_process"`` weights: scikit-learn keeps ``K`` Beta sticks
  ``q(v_k) = Beta(1 + N_k, γ + Σ_{j>k} N_j)``, ``k = 1..K`` (the ``K``-th one
  included), with ``E[log π_k] = E[log v_k] + Σ_{j<k} E[log(1 − v_j)]``. That is
  exact CAVI for the *untruncated* stick-breaking prior with ``q(z)`` truncated to
  the first ``K`` components (Kurihara, Welling & Vlassis 2007): sticks and
  components beyond ``K`` keep their prior and cost nothing. The declared model
  truncates the prior instead (``K − 1`` sticks, the last component takes the rest).
  The plug-in weights are scikit-learn's ``weights_`` (``E[π_k]`` renormalized over
  the first ``K`` components).

``updates="model"`` is exact CAVI for the sites declared in :mod:`mixtures.priors`
(the same Pyro program SVI and NUTS use): the differences listed above, with
``K − 1`` sticks for the Dirichlet process. For full covariances with Dirichlet
weights both settings are identical.

In both settings ``reg_covar`` is added to the per-component covariance estimate
``S_k`` before the update, as scikit-learn does (``Ψ_k`` gains ``N_k reg_covar I``).
That is not part of CAVI: it is the exact update of the ELBO whose expected
log-likelihood has the extra term ``−½ reg_covar Σ_k N_k tr E[Λ_k]`` (column
``regularized_elbo``). With ``reg_covar=0`` the ELBO is non-decreasing, exactly;
with ``reg_covar > 0`` it can move by ``O(reg_covar N tr E[Λ])``.

Frozen groups (``fit(..., freeze=...)``): a point mass for each, marked ``weight_prior="fixed"``,
``precision_family="fixed"`` or ``mean_precision = ∞``; :mod:`.variational_frozen`.

Posterior
---------
``result.posterior`` holds ``posterior_samples`` draws from ``q(θ)`` (seeded
``torch.Generator``): Dirichlet weights or Beta sticks, then precisions (Wishart by
Bartlett's decomposition, or Gamma), then ``μ_k | Λ_k ~ N(m_k, (β_k Λ_k)⁻¹)``;
``native`` holds the Cholesky factors of ``Λ⁻¹`` (full, tied) or the variances
``1/λ`` (diag, spherical). With ``updates="model"`` they are exact draws from ``q``.
With ``updates="sklearn"`` the draws are made in the declared model's family from
scikit-learn's variational parameters: one shared ``Λ`` per draw for tied; for diag
and spherical ``λ ~ Gamma(ν_k/2, rate ν_k σ²/2)``, the exact marginal of a diagonal
entry of the restricted Wishart ``q(Λ_k)`` (full draws of that Wishart would not be
diagonal); for the Dirichlet process the ``K`` sticks' weights renormalized over the
first ``K`` components (as scikit-learn's ``weights_``). Their means are the
variational means in every case: ``E[μ_k] = m_k`` and ``E[Λ_k] = covariances_⁻¹``.
``posterior.distribution`` is a dict of the variational parameters under
scikit-learn's names (``weight_concentration``, ``mean_precision``, ``means``,
``degrees_of_freedom``, ``covariances``, ``precisions_cholesky``) plus
``precision_family`` and ``updates``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.missing import has_missing
from mixtures.core.posterior import Posterior
from mixtures.core.summary import Summary, floored_counts
from mixtures.errors import DataError
from mixtures.families.gaussian import missing, variational_frozen
from mixtures.families.gaussian.covariance import CovarianceStructure, get_structure
from mixtures.families.gaussian.distributions import LOG_2PI
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.posterior_draws import sample_posterior
from mixtures.families.gaussian.priors import ResolvedPrior, check_covariance_prior
from mixtures.families.gaussian.statistics import gaussian_summary
from mixtures.families.weights import stick_breaking
from mixtures.kernels.fused_pass import fused_pass


# -- the variational distribution q(θ) ---------------------------------------------------
@dataclass(frozen=True)
class VariationalParameters:
    """Parameters of ``q(π) Π_k q(μ_k, Λ_k)`` (scikit-learn's names and layouts).

    Attributes:
        weight_prior: ``"dirichlet"`` or ``"dirichlet_process"``.
        weight_concentration: Dirichlet ``α`` ``(K,)``, or the Beta sticks' ``(a, b)``,
            each ``(K,)`` (``updates="sklearn"``) or ``(K-1,)`` (``"model"``).
        mean_precision: ``β`` ``(K,)``. means: ``m`` ``(K, D)``.
        degrees_of_freedom: ``ν`` ``(K,)`` (``()`` for tied); for the Gamma family
            the Gamma shape is ``ν / 2``.
        covariances: ``E[Λ_k]⁻¹`` in scikit-learn's layout: ``(K, D, D)`` full,
            ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical. The Wishart scale
            is ``W_k = (ν_k covariances_k)⁻¹``; the Gamma rate is ``ν σ² / 2``.
        cov_type: the covariance type.
        precision_family: ``"wishart"`` or ``"gamma"``.
        wishart_copies: how many independent precisions share one tied ``q(Λ)``
            (``K`` for scikit-learn's tied updates, else 1).
        native: the covariance type's native form of ``covariances`` (Cholesky
            factors or variances), for the plug-in parameters.
    """

    weight_prior: str
    weight_concentration: Any
    mean_precision: Tensor
    means: Tensor
    degrees_of_freedom: Tensor
    covariances: Tensor
    cov_type: CovarianceStructure
    precision_family: str
    wishart_copies: int
    native: Tensor

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def frozen(self) -> bool:
        """Whether a group is a point mass (:mod:`.variational_frozen`)."""
        return (self.weight_prior == "fixed" or self.precision_family == "fixed"
                or not bool(torch.isfinite(self.mean_precision).all()))

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    def expected_log_weights(self) -> Tensor:
        """``E_q[log π_k]`` ``(K,)`` (frozen weights, ``weight_prior="fixed"``: ``log w_k``)."""
        if self.weight_prior == "fixed":
            return self.weight_concentration.log()
        if self.weight_prior == "dirichlet":
            alpha = self.weight_concentration
            return torch.digamma(alpha) - torch.digamma(alpha.sum())
        a, b = self.weight_concentration
        total = torch.digamma(a + b)
        log_v, log_rest = torch.digamma(a) - total, torch.digamma(b) - total
        before = torch.cat([log_rest.new_zeros(1), torch.cumsum(log_rest, 0)])  # Σ_{j<k} E log(1-v_j)
        K = self.n_components
        if a.shape[0] == K:
            return log_v + before[:K]
        return torch.cat([log_v, log_v.new_zeros(1)]) + before  # last component takes the rest

    def weights(self) -> Tensor:
        """Plug-in weights ``(K,)``: ``E_q[π]`` normalized over the K components (frozen: the given ones)."""
        if self.weight_prior == "fixed":
            return self.weight_concentration
        if self.weight_prior == "dirichlet":
            alpha = self.weight_concentration
            return alpha / alpha.sum()
        a, b = self.weight_concentration
        mean_v = a / (a + b)
        mean_fractions = mean_v if a.shape[0] < self.n_components else mean_v[:-1]
        weights = stick_breaking(mean_fractions)
        if a.shape[0] == self.n_components:
            weights = weights.clone()
            weights[-1] = weights[-1] * mean_v[-1]  # the K-th stick's own fraction
        return weights / weights.sum()

    def expected_log_det_precision(self) -> Tensor:
        """``E_q[log |Λ_k|]`` ``(K,)``."""
        K, D = self.n_components, self.n_features
        nu = self.degrees_of_freedom
        half_log_det = self.cov_type.whitener(self.native, D)[1]  # ½ log|E[Λ]⁻¹|
        if self.precision_family == "fixed":  # frozen covariances: log |Σ_k⁻¹| exactly
            value = -2.0 * half_log_det
        elif self.precision_family == "wishart":
            offsets = torch.arange(D, dtype=nu.dtype, device=nu.device)
            digammas = torch.digamma(0.5 * (nu.unsqueeze(-1) - offsets)).sum(-1)
            value = digammas + D * math.log(2.0) - D * nu.log() - 2.0 * half_log_det
        else:  # Gamma precisions: Σ_d ψ(ν/2) − log(ν σ²_d / 2) (one σ² for spherical)
            value = D * (torch.digamma(0.5 * nu) - torch.log(0.5 * nu)) - 2.0 * half_log_det
        return value.expand(K) if value.dim() == 0 else value

    def plug_in(self) -> MixtureParams:
        """``θ̄``: plug-in weights, ``m_k`` and ``E[Λ_k]⁻¹`` (scikit-learn's ``weights_``...)."""
        return MixtureParams.from_native(self.weights(), self.means, self.native, self.cov_type,
                                         validate=False)

    def as_dict(self) -> dict[str, Any]:
        """The variational parameters under scikit-learn's attribute names (tensors and strings only,
        so that a saved :class:`~mixtures.result.FitResult` keeps them; see :meth:`from_dict`)."""
        return {
            "weight_prior": self.weight_prior,
            "weight_concentration": self.weight_concentration,
            "mean_precision": self.mean_precision,
            "means": self.means,
            "degrees_of_freedom": self.degrees_of_freedom,
            "covariances": self.covariances,
            "precisions_cholesky": self.cov_type.precisions_cholesky(self.native),
            "covariance_type": self.cov_type.name,
            "precision_family": self.precision_family,
            "wishart_copies": self.wishart_copies,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VariationalParameters:
        """Inverse of :meth:`as_dict` (e.g. ``result.extras["variational"]``)."""
        cov_type = get_structure(values["covariance_type"])
        concentration = values["weight_concentration"]
        if isinstance(concentration, (tuple, list)):
            concentration = tuple(concentration)
        return cls(values["weight_prior"], concentration, values["mean_precision"], values["means"],
                   values["degrees_of_freedom"], values["covariances"], cov_type, values["precision_family"],
                   int(values["wishart_copies"]), _native(cov_type, values["covariances"]))


def _native(cov_type: CovarianceStructure, covariances: Tensor) -> Tensor:
    return cov_type.native_from_estimate(covariances, "its variational covariance is not positive definite")


def update(summary: Summary, prior: ResolvedPrior, cov_type: CovarianceStructure,
           updates: str = "sklearn", reg_covar: float = 1e-6) -> VariationalParameters:
    """The variational update of ``q(θ)`` from the statistics of ``q(Z)`` (see the module docstring).

    Args:
        summary: statistics of the responsibilities (``nk`` ``(K,)``, ``sx`` ``(K, D)``,
            second moments) about ``summary.shift``.
        prior: the resolved conjugate prior.
        cov_type: the covariance type.
        updates: ``"sklearn"`` or ``"model"``.
        reg_covar: added to the covariance estimate ``S_k`` (scikit-learn's rule).
    """
    nk = floored_counts(summary.nk)  # scikit-learn's nk + 10 eps keeps empty components finite
    K, D = summary.sx.shape
    sklearn = updates == "sklearn"
    # weights
    if prior.weight_prior == "dirichlet":
        concentration: Any = prior.weight_concentration + nk
    else:
        after = torch.cat([torch.flip(torch.cumsum(torch.flip(nk, (0,)), 0), (0,))[1:], nk.new_zeros(1)])
        n_sticks = K if sklearn else K - 1
        concentration = (1.0 + nk[:n_sticks], prior.weight_concentration + after[:n_sticks])
    # means
    beta0 = prior.mean_precision
    beta = beta0 + nk
    m0 = prior.mean_prior - summary.shift
    xbar = summary.sx / nk[:, None]
    means = (beta0 * m0 + summary.sx) / beta[:, None] + summary.shift
    diff = xbar - m0
    shrink = beta0 * nk / beta  # N_k β₀ / β_k
    nu, covariances = cov_type.variational_update(nk, xbar, diff, shrink, summary.sxx, beta, prior, reg_covar,
                                                  sklearn)
    family = "wishart" if (sklearn or cov_type.storage == "tril") else "gamma"
    copies = K if (sklearn and cov_type.shared) else 1
    return VariationalParameters(prior.weight_prior, concentration, beta, means, nu, covariances, cov_type,
                                 family, copies, _native(cov_type, covariances))


# -- bounds ------------------------------------------------------------------------------
def _log_det_prior(psi0: Tensor, D: int) -> Tensor:
    """``log |Ψ₀|`` of the prior's inverse scale as a ``D × D`` matrix."""
    if psi0.dim() == 2:
        return 2.0 * torch.linalg.cholesky(psi0).diagonal().log().sum()
    if psi0.dim() == 1:
        return psi0.log().sum()
    return D * psi0.log()


def _identity_like(psi0: Tensor) -> Tensor:
    """The identity in the prior scale's layout: ``(D, D)``, ``(D,)`` ones or ``()`` one."""
    if psi0.dim() == 2:
        return torch.eye(psi0.shape[0], dtype=psi0.dtype, device=psi0.device)
    return torch.ones_like(psi0)


def _lbeta(a: Tensor, b: Tensor) -> Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def bounds(summary: Summary, q: VariationalParameters, prior: ResolvedPrior,
           reg_covar: float = 0.0, sklearn_bound: bool = False) -> dict[str, Tensor]:
    """The ELBO of ``(q(Z), q(θ))`` from the statistics of ``q(Z)`` (scalars).

    Returns ``elbo`` (exact, constants and prior included), ``regularized_elbo``
    (minus ``½ reg_covar Σ_k N_k tr E[Λ_k]``) and, if asked, ``sklearn_lower_bound``
    (scikit-learn's constant-free formula, valid right after an update of ``q(θ)``).
    """
    cov_type = q.cov_type
    D = q.n_features
    nk = summary.nk
    beta, beta0 = q.mean_precision, prior.mean_precision
    nu, nu0 = q.degrees_of_freedom, prior.degrees_of_freedom
    psi0 = prior.covariance_prior
    whitening, half_log_det = cov_type.whitener(q.native, D)
    locs = q.means - summary.shift
    e_log_det = q.expected_log_det_precision()
    e_log_weights = q.expected_log_weights()
    # E_q[log p(X | Z, μ, Λ)] from the statistics
    maha_data = cov_type.expected_mahalanobis(nk, summary.sx, summary.sxx, locs, whitening)
    log_lik = (nk * (0.5 * e_log_det - 0.5 * D * LOG_2PI - 0.5 * D / beta)).sum() - 0.5 * maha_data
    assignment = (nk * e_log_weights).sum()
    # KL(q(π) || p(π)) (a frozen group is a point mass: no KL term, see variational_frozen)
    if q.weight_prior == "fixed":
        kl_weights = nk.new_zeros(())
    elif q.weight_prior == "dirichlet":
        alpha, alpha0 = q.weight_concentration, prior.weight_concentration
        kl_weights = (torch.lgamma(alpha.sum()) - torch.lgamma(alpha).sum() - torch.lgamma(alpha0.sum())
                      + torch.lgamma(alpha0).sum()
                      + ((alpha - alpha0) * (torch.digamma(alpha) - torch.digamma(alpha.sum()))).sum())
    else:
        a, b = q.weight_concentration
        gamma = prior.weight_concentration
        one = torch.ones_like(gamma)
        kl_weights = (_lbeta(one, gamma) - _lbeta(a, b) + (a - 1) * torch.digamma(a)
                      + (b - gamma) * torch.digamma(b) + (1 - a + gamma - b) * torch.digamma(a + b)).sum()
    # E_q(Λ) KL(q(μ | Λ) || p(μ | Λ))
    m0 = (prior.mean_prior - summary.shift).unsqueeze(0)
    maha_prior = cov_type.mahalanobis(m0, locs, whitening)[0]
    kl_means = 0.5 * (D * beta0 / beta - D + D * torch.log(beta / beta0) + beta0 * maha_prior).sum() \
        if bool(torch.isfinite(beta).all()) else nk.new_zeros(())  # frozen means: β = ∞, a point mass
    # KL(q(Λ) || p(Λ))
    trace_prior = cov_type.trace_with_precision(psi0, whitening, D)  # tr(Ψ₀ E[Λ_k])
    if q.precision_family == "fixed":
        kl_precision = nk.new_zeros(())
    elif q.precision_family == "wishart":
        log_norm_q = 0.5 * nu * (D * nu.log() + 2.0 * half_log_det) - 0.5 * nu * D * math.log(2.0) \
            - torch.mvlgamma(0.5 * nu, D)
        log_norm_0 = 0.5 * nu0 * _log_det_prior(psi0, D) - 0.5 * nu0 * D * math.log(2.0) \
            - torch.mvlgamma(0.5 * nu0, D)
        e_log_det_q = e_log_det if nu.dim() else e_log_det[0]
        kl_precision = (log_norm_q - log_norm_0 + 0.5 * (nu - nu0) * e_log_det_q - 0.5 * nu * D
                        + 0.5 * trace_prior).sum() * q.wishart_copies
    else:
        shape, shape0 = cov_type.gamma_shape(nu), 0.5 * nu0
        rate = shape * q.covariances  # ν σ² / 2
        rate0 = 0.5 * psi0
        kl_precision = ((shape - shape0) * torch.digamma(shape) - torch.lgamma(shape) + torch.lgamma(shape0)
                        + shape0 * (rate.log() - rate0.log()) + shape * (rate0 - rate) / rate).sum()
    elbo = log_lik + assignment + summary.entropy - kl_weights - kl_means - kl_precision
    nk_floored = floored_counts(nk)
    identity = _identity_like(psi0)
    trace_precision = cov_type.trace_with_precision(identity, whitening, D)  # tr E[Λ_k]
    penalty = 0.5 * reg_covar * (nk_floored * trace_precision).sum()
    out = {"elbo": elbo, "regularized_elbo": elbo - penalty}
    if sklearn_bound:
        out["sklearn_lower_bound"] = _sklearn_lower_bound(summary, q, half_log_det)
    return out


def _sklearn_lower_bound(summary: Summary, q: VariationalParameters, half_log_det: Tensor) -> Tensor:
    """scikit-learn's ``BayesianGaussianMixture._compute_lower_bound`` (constants dropped)."""
    D = q.n_features
    nu = q.degrees_of_freedom
    log_det_precisions_chol = -half_log_det - 0.5 * D * nu.log()
    offsets = torch.arange(D, dtype=nu.dtype, device=nu.device)
    log_wishart_norm = -(nu * log_det_precisions_chol + nu * D * 0.5 * math.log(2.0)
                         + torch.lgamma(0.5 * (nu.unsqueeze(-1) - offsets)).sum(-1))
    log_wishart = q.n_components * log_wishart_norm if nu.dim() == 0 else log_wishart_norm.sum()
    if q.weight_prior == "dirichlet":
        alpha = q.weight_concentration
        log_norm_weight = torch.lgamma(alpha.sum()) - torch.lgamma(alpha).sum()
    else:
        log_norm_weight = -_lbeta(*q.weight_concentration).sum()
    return summary.entropy - log_wishart - log_norm_weight - 0.5 * D * q.mean_precision.log().sum()


# -- the fused pass ------------------------------------------------------------------------
def expected_log_joint_coefficients(q: VariationalParameters, shift: Tensor) -> tuple[Tensor, Tensor]:
    """VB's E step as the fused pass's coefficients: ``(C (K, P), plug-in offsets (K,))``.

    ``log ρ_nk = E[log π_k] + ½ E[log |Λ_k|] − D/2 log 2π − ½ D/β_k − ½ (x − m_k)ᵀ E[Λ_k] (x − m_k)``
    is ``log N(x | m_k, E[Λ_k]⁻¹)`` plus a constant per component, so it is linear in the
    same features as EM's log joint density: ``C`` are EM's coefficients at the plug-in
    covariances ``E[Λ_k]⁻¹`` with ``log π_k`` replaced by
    ``c_k = E[log π_k] + ½ E[log |Λ_k|] + ½ log |E[Λ_k]⁻¹| − ½ D/β_k``. The plug-in log joint
    density ``log π̄_k + log N(x | m_k, E[Λ_k]⁻¹)`` differs from ``log ρ_nk`` by
    ``log π̄_k − c_k``: the offsets that give the pass the plug-in log-likelihood.
    """
    cov_type = q.cov_type
    whitening, half_log_det = cov_type.whitener(q.native, q.n_features)
    constant = expected_log_constants(q)
    coefficients = cov_type.log_joint_coefficients(constant, q.means - shift, whitening, half_log_det)
    return coefficients, q.weights().log() - constant


def expected_log_constants(q: VariationalParameters) -> Tensor:
    """``c_k = E[log π_k] + ½ E[log |Λ_k|] + ½ log |E[Λ_k]⁻¹| − ½ D/β_k`` ``(K,)``: ``log ρ_nk`` is
    ``c_k + log N(x_n | m_k, E[Λ_k]⁻¹)`` (and, with missing coordinates integrated out under their
    optimal ``q(x_mis | z)``, ``c_k + log N(x_obs | m_k, E[Λ_k]⁻¹)``: :mod:`.missing`)."""
    D = q.n_features
    half_log_det = q.cov_type.whitener(q.native, D)[1]
    return q.expected_log_weights() + 0.5 * q.expected_log_det_precision() + half_log_det - 0.5 * D / q.mean_precision


def vb_pass(X: Tensor, q: VariationalParameters, shift: Tensor, chunk_size: int | None = None,
            statistics: bool = True, distributed: bool = False, sample_weight: Tensor | None = None) -> Summary:
    """One pass over ``X`` ``(N, D)`` in chunks at ``q(θ)``: the fused kernel of EM's E step.

    Always computes ``log p(X | θ̄)`` at the plug-in parameters (``log_likelihood``);
    with ``statistics`` the pass's responsibilities are VB's ``r_nk ∝ ρ_nk``
    (:func:`expected_log_joint_coefficients`) and it also returns their ``nk``, ``sx``, second
    moments and entropy, in the same two matrix products per chunk as EM (no ``(N, K, D)``
    array, ``exp2`` on the fast path in float32 and float64:
    :func:`mixtures.kernels.fused_pass.fused_pass`). Without ``statistics`` the pass runs at
    the plug-in parameters (its responsibilities are then EM's, and unused).

    ``distributed``: ``X`` is this rank's shard and every sum over points (the
    statistics, the log-likelihood, the entropy, the point count) is all-reduced,
    so the returned summary is that of all the data on every rank (``shift`` must
    be the same on every rank). ``sample_weight`` ``(N,)``: every point's terms weighted
    (:mod:`mixtures.core.weights`).
    """
    cov_type = q.cov_type
    D = q.n_features
    if statistics:
        coefficients, offsets = expected_log_joint_coefficients(q, shift)
    else:
        whitening, half_log_det = cov_type.whitener(q.native, D)
        coefficients = cov_type.log_joint_coefficients(q.weights().log(), q.means - shift, whitening, half_log_det)
        offsets = None
    sums = fused_pass(X, coefficients.to(X.dtype), shift.to(X.dtype), cov_type.moment_feature_writer,
                      cov_type.n_moment_features(D), chunk_size=chunk_size, likelihood_offsets=offsets,
                      sample_weight=sample_weight)
    total = sums.sums
    summary = gaussian_summary(total[:, 0].clone(), total[:, 1:1 + D].clone(),
                               cov_type.moment_from_features(total[:, 1 + D:], D), shift, sums.n_points,
                               sums.log_likelihood, sums.entropy)
    return comm.all_reduce_summary(summary) if distributed else summary


def check_vb_model(model: Any, X: Tensor, updates: str) -> ResolvedPrior:
    """The resolved conjugate prior of ``model``, or a clear error."""
    if model.prior is None:
        raise ValueError(
            "method='vb' is Bayesian and needs a prior: use GaussianMixture(K, covariance_type, "
            "prior=mixtures.GaussianPrior()) (conjugate Normal-Wishart, Dirichlet weights by "
            "default); for maximum likelihood use method='em'.")
    if model.prior.kind != "conjugate":
        raise ValueError(
            f"method='vb' needs a conjugate prior (GaussianPrior(kind='conjugate')); this model's prior "
            f"is {model.prior.kind!r}. Fit non-conjugate priors with method='svi' or method='nuts'.")
    if updates not in ("sklearn", "model"):
        raise ValueError(f"updates must be 'sklearn' or 'model'; got {updates!r}.")
    default_psi = model.prior.covariance_prior is None
    if default_psi and X.shape[0] < 2:
        raise DataError(
            f"method='vb' with the default prior needs at least 2 points: its covariance_prior Ψ₀ is the "
            f"data's empirical covariance, and X has {X.shape[0]} point. Give "
            "GaussianPrior(covariance_prior=...) explicitly (e.g. a typical variance of the data), or "
            "more data.")
    prior = model.resolved_prior(X)  # a singular default Ψ₀ is a DataError there
    if not default_psi:
        check_covariance_prior(prior.covariance_prior, X, default=False, routine="vb")
    D = X.shape[1]
    wishart = updates == "sklearn" or model.cov_type.storage == "tril"
    if wishart and not float(prior.degrees_of_freedom) > D - 1:
        raise ValueError(
            f"degrees_of_freedom={float(prior.degrees_of_freedom)} must exceed D - 1 = {D - 1} for the "
            f"Wishart posterior of updates={updates!r} with covariance_type={model.covariance_type!r}; "
            "raise it (the default is D) or use updates='model'.")
    return prior


def _prior_dict(prior: ResolvedPrior) -> dict[str, Any]:
    return {"weight_prior": prior.weight_prior, "weight_concentration": prior.weight_concentration,
            "mean_prior": prior.mean_prior, "mean_precision": prior.mean_precision,
            "degrees_of_freedom": prior.degrees_of_freedom, "covariance_prior": prior.covariance_prior}


class GaussianVariational:
    """The Gaussian family's capability ``"variational"``: CAVI's pieces for one model and data.

    Created by ``GaussianMixture.variational(X, updates, reg_covar, distributed)``, which
    resolves and checks the conjugate prior (on all ranks' data when distributed); the
    generic loop of :mod:`mixtures.inference.vb` calls :meth:`update`, :meth:`bounds`,
    :meth:`expected_pass`, :meth:`plug_in`, :meth:`sample_posterior` and :meth:`extras`.
    """

    def __init__(self, model: Any, X: Tensor, updates: str, reg_covar: float, distributed: bool = False):
        run_model = model.with_global_prior(X) if distributed else model
        self.prior = check_vb_model(run_model, X, updates)
        self.cov_type = model.cov_type
        self.updates = updates
        self.reg_covar = reg_covar
        self.distributed = distributed
        self.held: tuple[MixtureParams, tuple[str, ...]] | None = None

    def holding(self, params: MixtureParams, groups: tuple[str, ...]) -> GaussianVariational:
        """These updates with ``groups`` held at ``params``' values (:mod:`.variational_frozen`)."""
        self.held = (params, tuple(groups)) if groups else None
        return self

    def update(self, summary: Summary) -> VariationalParameters:
        """``q(θ)`` from the statistics of ``q(Z)`` (the frozen groups held: :meth:`holding`)."""
        plain = lambda s: update(s, self.prior, self.cov_type, self.updates, self.reg_covar)  # noqa: E731
        if self.held is None:
            return plain(summary)
        return variational_frozen.update_holding(summary, *self.held, plain, self.prior, self.cov_type,
                                                 self.updates, self.reg_covar)

    def bounds(self, summary: Summary, q: VariationalParameters) -> dict[str, Tensor]:
        """``elbo``, ``regularized_elbo`` (the bound the updates maximize: ``tol`` applies to it)
        and, for scikit-learn's updates, ``sklearn_lower_bound``."""
        return bounds(summary, q, self.prior, self.reg_covar, sklearn_bound=self.updates == "sklearn" and not q.frozen)

    def expected_pass(self, X: Tensor, q: VariationalParameters, shift: Tensor, chunk_size: int | None = None,
                      statistics: bool = True, sample_weight: Tensor | None = None) -> Summary:
        """One pass at ``q(θ)``: ``log p(X | θ̄)`` and (``statistics``) the next ``q(Z)``'s statistics
        (every point's terms weighted by ``sample_weight`` ``(N,)``).

        Data with NaN entries (missing values): ``q(z, x_mis)``
        takes ``x_mis | z = k`` from the conditional of ``N(m_k, E[Λ_k]⁻¹)`` on the observed block
        (its CAVI optimum) and the statistics are expected ones
        (:func:`mixtures.families.gaussian.missing.e_step`)."""
        if not has_missing(X):
            return vb_pass(X, q, shift, chunk_size, statistics=statistics, distributed=self.distributed,
                           sample_weight=sample_weight)
        plug_in, constants = q.plug_in(), expected_log_constants(q)
        if statistics:
            summary = missing.e_step(X, plug_in, shift, chunk_size=chunk_size, log_weights=constants,
                                     likelihood_offsets=plug_in.weights.log() - constants, sample_weight=sample_weight)
        else:
            summary = missing.e_step(X, plug_in, shift, chunk_size=chunk_size, sample_weight=sample_weight)
        return comm.all_reduce_summary(summary) if self.distributed else summary

    def plug_in(self, q: VariationalParameters) -> MixtureParams:
        return q.plug_in()

    def sample_posterior(self, q: VariationalParameters, n_draws: int, generator: torch.Generator) -> Posterior:
        return sample_posterior(q, n_draws, generator, self.updates)

    def extras(self, q: VariationalParameters) -> dict[str, Any]:
        return {"variational": q.as_dict(), "prior": _prior_dict(self.prior), "updates": self.updates}
