"""What a covariance structure is: everything that differs between structures, in one place.

Each structure stores its covariances in a *native* tensor, the cheapest exact form
(Cholesky factors, or variances), and knows everything the rest of the package needs
about it: shapes and conversions, densities through its whitening factors (never an
inverted covariance), the fused E step's features and coefficients, its sufficient
statistic and maximum-likelihood M step, its free-parameter count, the Pyro distribution
of a picked component, its prior (conjugate and non-conjugate ``pyro.sample`` statements
and their inverse), its posterior-mode M step and its variational update. Code outside
the structure modules asks these questions instead of testing a structure's name.

Two storage bases hold what structures of one storage share: :class:`TrilStructure`
(lower Cholesky factors, ``Σ = L Lᵀ``) and :class:`VarianceStructure` (variances). A
structure's *statistic* is ``"matrix"`` (``Σ_n r_nk x xᵀ`` per component, or summed for a
shared one) or ``"diagonal"`` (``Σ_n r_nk x²`` per component and dimension).

Adding a structure = one module in this folder defining a subclass, plus one
registration line in ``covariance/__init__.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import constraints

from mixtures.errors import ParameterError, SingularCovarianceError
from mixtures.families.gaussian.distributions import LOG_2PI, constant_terms, inverse_tril

_REG_HINT = ("Increase reg_covar (it is added to the diagonal of every covariance), use fewer "
             "components, or standardize the data.")


def raise_not_positive_definite(component: int | None, what: str, reg_covar: float | None = None) -> None:
    """Raise ``SingularCovarianceError`` naming the component (None: the shared covariance)."""
    where = "the shared covariance" if component is None else f"the covariance of component {component}"
    reg = "" if reg_covar is None else f" (reg_covar={reg_covar:g})"
    raise SingularCovarianceError(f"{where} is not positive definite{reg}: {what}. {_REG_HINT}", component)


def cholesky_checked(cov: Tensor, what: str, reg_covar: float | None = None) -> Tensor:
    """Lower Cholesky factor of ``cov`` ``(..., D, D)``; names the failing component.

    A factorization that succeeds only by rounding (a squared pivot below
    ``100 · D · eps`` times the matrix's largest diagonal entry, the size of the
    rounding error of an M-step scatter) is singular too: such a covariance would
    make densities meaningless. Batched matrices are indexed by component along
    the first dimension.
    """
    scale_tril, info = torch.linalg.cholesky_ex(cov)
    pivots = scale_tril.diagonal(dim1=-2, dim2=-1).square()
    scale = cov.diagonal(dim1=-2, dim2=-1).amax(-1, keepdim=True)
    floor = 100 * cov.shape[-1] * torch.finfo(cov.dtype).eps * scale
    bad = (info > 0) | ~(pivots > floor).all(-1) | ~torch.isfinite(scale_tril).all(-1).all(-1)
    if bad.any():
        component = int(torch.nonzero(bad.reshape(-1))[0]) if cov.dim() == 3 else None
        raise_not_positive_definite(component, what, reg_covar)
    return scale_tril


def precision_to_scale_tril(precision: Tensor) -> Tensor:
    """Lower Cholesky factor of ``precision⁻¹`` ``(..., D, D)`` without inverting ``precision``.

    Factor the index-reversed precision, then invert that small triangular factor.
    """
    flipped = torch.linalg.cholesky(torch.flip(precision, (-2, -1)))
    inverse_factor = torch.flip(flipped, (-2, -1)).transpose(-1, -2)
    eye = torch.eye(precision.shape[-1], dtype=precision.dtype, device=precision.device)
    return torch.linalg.solve_triangular(inverse_factor, eye.expand_as(precision), upper=False)


def pair_writer(xT: Tensor, out: Tensor) -> Callable[[], None]:
    """A call writing ``x_i x_j`` (``i ≤ j``, row-major upper triangle) of ``xT`` ``(D, n)`` into
    ``out`` ``(D(D+1)/2, n)``, with its ``3·D`` views sliced once (for all equal chunks of a pass)."""
    D = xT.shape[0]
    products, start = [], 0
    for i in range(D):  # D row products over the long point axis (vectorized), not a loop over points
        products.append((xT[i:i + 1], xT[i:], out[start:start + D - i]))
        start += D - i

    def write() -> None:
        for left, right, target in products:
            torch.mul(left, right, out=target)

    return write


def square_writer(xT: Tensor, out: Tensor) -> Callable[[], None]:
    """A call writing ``x_d²`` of ``xT`` ``(D, n)`` into ``out`` ``(D, n)``."""
    return functools.partial(torch.square, xT, out=out)


def symmetric_from_pairs(sums: Tensor, n_features: int) -> Tensor:
    """Symmetric matrices ``(..., D, D)`` from their upper triangles ``(..., D(D+1)/2)``."""
    rows, cols = torch.triu_indices(n_features, n_features, device=sums.device)
    full = sums.new_empty(sums.shape[:-1] + (n_features, n_features))
    full[..., rows, cols] = sums
    full[..., cols, rows] = sums
    return full


def check_symmetric(covariances: Tensor) -> None:
    scale = covariances.abs().amax().clamp_min(torch.finfo(covariances.dtype).tiny)
    asym = (covariances - covariances.transpose(-1, -2)).abs().amax()
    if asym > 1e3 * torch.finfo(covariances.dtype).eps * scale:
        raise ParameterError(
            f"covariance matrices must be symmetric; the largest asymmetry is {float(asym):.3g}. "
            "Symmetrize them with (C + C.T) / 2.")


def clean_variance(second_moment: Tensor, variance: Tensor) -> Tensor:
    """Zero the variances that are only the rounding error of ``E[x²] - E[x]²``."""
    floor = 100 * torch.finfo(variance.dtype).eps * second_moment.abs()
    return torch.where(variance > floor, variance, torch.zeros_like(variance))


def checked_variances(variances: Tensor, reg_covar: float | None) -> Tensor:
    bad = torch.nonzero(~(variances > 0).reshape(variances.shape[0], -1).all(-1))
    if bad.numel():
        raise_not_positive_definite(int(bad[0]), "its estimated variance is zero or negative (it collapsed onto "
                                    "identical points)", reg_covar)
    return variances


def scale_distribution(prior: Any, scale: Tensor) -> Any:
    """The non-conjugate prior's distribution of a scale with prior scale ``scale``."""
    if prior.spec.scale_prior == "half_cauchy":
        return pdist.HalfCauchy(scale)
    return pdist.LogNormal(scale.log(), torch.ones_like(scale))


def sample_correlation(prior: Any, like: Tensor) -> Tensor:
    """``corr_chol ~ LKJCholesky(D, η)`` (a site), or the 1x1 identity for D = 1 (no site)."""
    D = prior.n_features
    if D == 1:
        return torch.ones(1, 1, dtype=like.dtype, device=like.device)
    eta = torch.as_tensor(prior.spec.lkj_concentration, dtype=like.dtype, device=like.device)
    return pyro.sample("corr_chol", pdist.LKJCholesky(D, eta))


class CovarianceStructure:
    """Base class: the questions every covariance structure answers (module docstring)."""

    #: the registry name, and other names accepted for it
    name: str = ""
    aliases: tuple[str, ...] = ()
    #: ``Σ_k`` in words, for tables
    description: str = ""
    #: one covariance for all components (the native tensor has no component axis)
    shared: bool = False
    #: ``"tril"`` (Cholesky factors) or ``"variances"``
    storage: str = ""
    #: the sufficient statistic's layout: ``"matrix"`` or ``"diagonal"`` (module docstring)
    statistic: str = ""
    #: one variance for every coordinate (standardization must scale all coordinates alike)
    isotropic: bool = False
    #: scikit-learn has this structure (its layouts of covariances and precisions apply)
    sklearn_layout: bool = True
    #: per-component covariances that share a part (a volume, shape or orientation): one
    #: component's estimate depends on the others' statistics
    coupled: bool = False
    #: the prior kinds (``GaussianPrior.kind``) this structure declares sites and updates for
    prior_kinds: tuple[str, ...] = ("conjugate", "nonconjugate")
    #: name and constraint of the global ``pyro.param`` site holding the native tensor
    site: str = ""
    constraint: constraints.Constraint = constraints.real
    #: the prior's sites for the covariances (beside ``"locs"``), by prior kind
    conjugate_sites: tuple[str, ...] = ("precision",)
    nonconjugate_sites: tuple[str, ...] = ("scales",)
    #: MAP-EM: ``(denominator formula, its value at N_k = 0 as f(ν₀, D), the bound as text,
    #: how much one point adds)`` when an empty component's covariance mode can fail to exist
    empty_mode: tuple[str, Callable[[float, int], float], str, Callable[[int], int]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def mclust_name(self) -> str:
        """mclust's three-letter name of the structure (``"VVV"`` for ``"full"``)."""
        return next((name for name in (self.name,) + self.aliases if len(name) == 3 and name.isupper()), self.name)

    # -- shapes and conversions -------------------------------------------------------
    def native_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        raise NotImplementedError

    def to_full(self, native: Tensor, n_components: int, n_features: int) -> Tensor:
        """Full covariance matrices ``(K, D, D)`` from the native tensor."""
        raise NotImplementedError

    def from_full(self, covariances: Tensor) -> Tensor:
        """Native tensor from full matrices ``(K, D, D)`` (``(D, D)`` for a shared one); checks the structure."""
        raise NotImplementedError

    def native_from_any(self, covariances: Tensor, n_components: int, n_features: int) -> Tensor:
        """Native tensor from full matrices, or from the native form given as it is.

        Full matrices ``(K, D, D)`` (or one ``(D, D)`` for a shared structure) are
        factorized and checked; with D = 1, one variance per component ``(K,)`` is full
        matrices in disguise.
        """
        K, D = n_components, n_features
        if D == 1 and tuple(covariances.shape) == (K,) and self.native_shape(K, D) != (K,):
            covariances = covariances.reshape(K, 1, 1)
        full_shapes = [(K, D, D)] + ([(D, D)] if self.shared else [])
        if tuple(covariances.shape) in full_shapes:
            return self.from_full(covariances)
        accepted = " or ".join(str(shape) for shape in full_shapes) + " (full matrices)"
        raise ParameterError(f"covariances for covariance_type={self.name!r} with K={K}, D={D} must have shape "
                             f"{accepted}; got {tuple(covariances.shape)}.")

    def validate(self, native: Tensor, n_components: int, n_features: int) -> Tensor:
        """Check shape and positive definiteness of a native tensor; return it."""
        expected = self.native_shape(n_components, n_features)
        if tuple(native.shape) != expected:
            raise ParameterError(f"{self.name!r} covariance parameters must have shape {expected} "
                                 f"for K={n_components}, D={n_features}; got {tuple(native.shape)}.")
        if not torch.isfinite(native).all():
            raise ParameterError(f"{self.name!r} covariance parameters contain NaN or inf.")
        return native

    def scale_tril(self, native: Tensor, n_components: int, n_features: int) -> Tensor:
        """Lower Cholesky factors of the covariances ``(K, D, D)``."""
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the covariances alone."""
        raise NotImplementedError

    def scale_native(self, native: Tensor, scale: Tensor) -> Tensor:
        """The native tensor of ``diag(scale) Σ diag(scale)`` (the covariance of ``scale ⊙ x``);
        ``scale`` ``(D,)`` (all entries equal for an isotropic structure)."""
        raise NotImplementedError

    # -- densities ----------------------------------------------------------------------
    def whitener(self, native: Tensor, n_features: int) -> tuple[Tensor, Tensor]:
        """``(whitening, half_log_det)``: the inverse square root of the covariance (triangular
        inverse of the Cholesky factor, or inverse standard deviations) and ``½ log det Σ_k``
        ``(K,)`` or ``()``."""
        raise NotImplementedError

    def mahalanobis(self, X: Tensor, locs: Tensor, whitening: Tensor) -> Tensor:
        """Squared Mahalanobis distances ``(n, K)`` of ``X`` ``(n, D)`` to ``locs`` ``(K, D)``."""
        raise NotImplementedError

    def component_log_prob(self, X: Tensor, locs: Tensor, whitening: Tensor, half_log_det: Tensor) -> Tensor:
        """Gaussian log densities ``(n, K)`` of every point under every component."""
        D = X.shape[-1]
        return -0.5 * (D * LOG_2PI + self.mahalanobis(X, locs, whitening)) - half_log_det

    def component_distribution(self, locs: Tensor, native: Tensor, index: Tensor | None = None) -> Any:
        """Pyro distribution of the components (those picked by ``index``, which may carry
        enumeration dimensions on the left): batch ``index.shape`` (or ``(K,)``), event ``(D,)``.
        Under enumeration its ``log_prob`` is one matrix product (:mod:`..distributions`)."""
        raise NotImplementedError

    # -- the fused E step (mixtures.kernels.fused_pass) -------------------------------------
    # A chunk of centred points becomes features F (1 + D + M, n): a row of ones, the
    # coordinates and M second-order terms; every log joint density is linear in F.
    def n_moment_features(self, n_features: int) -> int:
        """``M``: second-order features per point."""
        return n_features * (n_features + 1) // 2 if self.statistic == "matrix" else n_features

    def moment_feature_writer(self, xT: Tensor, out: Tensor) -> Callable[[], None]:
        """A call writing the second-order features of centred points ``xT`` ``(D, n)`` into ``out``."""
        return pair_writer(xT, out) if self.statistic == "matrix" else square_writer(xT, out)

    def log_joint_coefficients(self, log_weights: Tensor, locs: Tensor, whitening: Tensor,
                               half_log_det: Tensor) -> Tensor:
        """``C`` ``(K, 1 + D + M)`` such that ``C @ F`` is ``log π_k + log N(x | μ_k, Σ_k)`` ``(K, n)``.

        ``locs`` ``(K, D)`` are in the frame of the centred points. The quadratic form is
        expanded about the shift (``xᵀPx - 2 xᵀPμ + μᵀPμ``): it loses the digits the M step's
        moments about the shift lose, ``eps · |x - shift|² / σ²``, no more.
        """
        raise NotImplementedError

    def moment_from_features(self, sums: Tensor, n_features: int) -> Tensor:
        """The statistic (see :meth:`second_moment`) from ``Σ_n r_nk F_mn`` over the M feature rows."""
        raise NotImplementedError

    # -- the M step ------------------------------------------------------------------------
    def second_moment(self, X: Tensor, resp: Tensor) -> Tensor:
        """The sufficient statistic ``Σ_n r_nk x_n x_nᵀ`` (or its reduction) of ``X`` ``(n, D)``."""
        raise NotImplementedError

    def estimate(self, nk: Tensor, means: Tensor, second_moment: Tensor, reg_covar: float) -> Tensor:
        """Native covariance maximizing the expected log-likelihood.

        Args:
            nk: ``(K,)`` responsibility mass per component (already floored away from 0).
            means: ``(K, D)`` new means, in the same (shifted) frame as the statistics.
            second_moment: the statistic summed over the data.
            reg_covar: added to the diagonal of every covariance.
        """
        raise NotImplementedError

    def expected_mahalanobis(self, nk: Tensor, sx: Tensor, second_moment: Tensor, locs: Tensor,
                             whitening: Tensor) -> Tensor:
        """``Σ_n Σ_k r_nk (x_n - μ_k)ᵀ Σ_k⁻¹ (x_n - μ_k)`` from sufficient statistics (scalar)."""
        raise NotImplementedError

    def pooled_scatter(self, nk: Tensor, sx: Tensor, second_moment: Tensor) -> Tensor:
        """The pooled within-component covariance ``Σ_k S_k / N`` in the statistic's layout:
        ``(D, D)`` for a matrix statistic, per-dimension variances ``(D,)`` for a diagonal one."""
        counts = nk
        means = sx / counts[:, None]
        if self.statistic == "diagonal" and self.shared:  # the statistic is already summed over components
            return ((second_moment - (counts[:, None] * means.square()).sum(0)) / counts.sum()).clamp_min(0)
        if self.statistic == "diagonal":
            return ((second_moment - counts[:, None] * means.square()).sum(0) / counts.sum()).clamp_min(0)
        if self.shared:
            pooled = second_moment - (counts[:, None] * means).T @ means
        else:
            pooled = (second_moment - counts[:, None, None] * means.unsqueeze(-1) * means.unsqueeze(-2)).sum(0)
        pooled = pooled / counts.sum()
        return 0.5 * (pooled + pooled.T)

    def component_statistic(self, covariance: Tensor, mass: Tensor, point: Tensor) -> Tensor:
        """One component's second moment about the shift for ``mass`` points at ``point`` ``(D,)``
        with ``covariance`` in the statistic's layout (``(D, D)`` or ``(D,)``)."""
        if self.statistic == "diagonal":
            return mass * (covariance + point.square())
        return mass * (covariance + torch.outer(point, point))

    # -- priors ------------------------------------------------------------------------------
    def prior_scale_shape(self, n_features: int) -> tuple[int, ...]:
        """Shape of the prior's inverse scale ``Ψ₀`` for this structure."""
        raise NotImplementedError

    def prior_scale(self, empirical: Tensor) -> Tensor:
        """The default ``Ψ₀`` from the data's empirical covariance ``(D, D)``."""
        raise NotImplementedError

    def declare_conjugate(self, prior: Any, n_components: int) -> tuple[Tensor, Tensor]:
        """The conjugate prior's ``pyro.sample`` statements for the means and covariances;
        returns ``(locs (K, D), native)``."""
        raise NotImplementedError

    def conjugate_values(self, native: Tensor, whitening: Tensor) -> dict[str, Tensor]:
        """Values of :attr:`conjugate_sites` for a native tensor (and its whitening factors)."""
        raise NotImplementedError

    def declare_nonconjugate(self, prior: Any, n_components: int) -> tuple[Tensor, Tensor]:
        """The non-conjugate prior's statements; returns ``(locs (K, D), native)``."""
        raise NotImplementedError

    def nonconjugate_values(self, native: Tensor, n_features: int) -> dict[str, Tensor]:
        """Values of :attr:`nonconjugate_sites` for a native tensor."""
        raise NotImplementedError

    def posterior_mode(self, nk_raw: Tensor, nk: Tensor, xbar: Tensor, diff: Tensor, shrink: Tensor,
                       second_moment: Tensor, prior: Any) -> Tensor:
        """MAP-EM's covariance mode (before ``reg_covar``) in :meth:`native_from_estimate`'s layout."""
        raise NotImplementedError

    def variational_update(self, nk: Tensor, xbar: Tensor, diff: Tensor, shrink: Tensor, second_moment: Tensor,
                           beta: Tensor, prior: Any, reg_covar: float, sklearn: bool) -> tuple[Tensor, Tensor]:
        """VB's update of ``q(Λ)``: ``(ν (K,) or (), covariances E[Λ]⁻¹ in scikit-learn's layout)``."""
        raise NotImplementedError

    def native_from_estimate(self, covariances: Tensor, what: str, reg_covar: float | None = None) -> Tensor:
        """The native tensor of covariances in scikit-learn's layout (the storage's rule)."""
        raise NotImplementedError

    def regularized_native(self, covariances: Tensor, reg_covar: float, what: str) -> Tensor:
        """The native tensor of ``covariances`` (scikit-learn's layout) plus ``reg_covar`` on the
        diagonal, checked (``SingularCovarianceError`` naming ``what``)."""
        raise NotImplementedError

    # -- scikit-learn's layouts ------------------------------------------------------------------
    def precisions_cholesky(self, native: Tensor) -> Tensor:
        """scikit-learn's ``precisions_cholesky_`` layout."""
        raise NotImplementedError

    def sklearn_covariances(self, native: Tensor) -> tuple[Tensor, Tensor]:
        """scikit-learn's ``(covariances_, precisions_)`` layouts."""
        raise NotImplementedError

    def native_from_precisions(self, precisions: Tensor) -> Tensor:
        """The native tensor from precisions in scikit-learn's layout (``precisions_init``)."""
        raise NotImplementedError


class TrilStructure(CovarianceStructure):
    """Structures stored as lower Cholesky factors ``L`` (``Σ = L Lᵀ``)."""

    storage = "tril"
    statistic = "matrix"
    site = "scale_tril"
    constraint = constraints.lower_cholesky
    nonconjugate_sites = ("corr_chol", "scales")

    def validate(self, native, n_components, n_features):
        native = super().validate(native, n_components, n_features)
        if not torch.equal(native, native.tril()):
            raise ParameterError(f"{self.name!r} covariance parameters must be lower-triangular Cholesky "
                                 "factors; pass full covariance matrices instead to have them factorized.")
        diagonal = native.diagonal(dim1=-2, dim2=-1)
        if not (diagonal > 0).all():
            raise_not_positive_definite(None if native.dim() == 2 else int(torch.nonzero((diagonal <= 0).any(-1))[0]),
                                        "its Cholesky factor has a non-positive diagonal entry")
        return native

    def scale_tril(self, native, n_components, n_features):
        return native.expand(n_components, -1, -1) if native.dim() == 2 else native

    def whitener(self, native, n_features):
        return inverse_tril(native), native.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def scale_native(self, native, scale):
        return native * scale.unsqueeze(-1)  # diag(s) L stays lower-triangular

    def prior_scale_shape(self, n_features):
        return (n_features, n_features)

    def prior_scale(self, empirical):
        return empirical

    def conjugate_values(self, native, whitening):
        return {"precision": whitening.transpose(-1, -2) @ whitening}

    def trace_with_precision(self, matrix: Tensor, whitening: Tensor, n_features: int) -> Tensor:
        """``tr(A E[Λ_k])`` ``(K,)`` (``()`` shared) for a matrix ``A`` ``(D, D)``; ``E[Λ] = L⁻ᵀ L⁻¹``."""
        return ((whitening @ matrix) * whitening).sum((-2, -1))

    def nonconjugate_values(self, native, n_features):
        scales = native.square().sum(-1).sqrt()  # row norms of L = sqrt(diag Σ)
        values = {"scales": scales}
        if n_features > 1:
            values["corr_chol"] = native / scales.unsqueeze(-1)
        return values

    def native_from_estimate(self, covariances, what, reg_covar=None):
        return cholesky_checked(covariances, what, reg_covar)

    def regularized_native(self, covariances, reg_covar, what):
        cov = 0.5 * (covariances + covariances.transpose(-1, -2))
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
        return cholesky_checked(cov, what, reg_covar)

    def precisions_cholesky(self, native):
        return inverse_tril(native).transpose(-1, -2)

    def sklearn_covariances(self, native):
        factor = self.precisions_cholesky(native)
        return native @ native.transpose(-1, -2), factor @ factor.transpose(-1, -2)

    def native_from_precisions(self, precisions):
        factor, info = torch.linalg.cholesky_ex(precisions)
        if (info != 0).any():
            raise ValueError("precisions_init must be symmetric positive definite matrices.")
        return cholesky_checked(torch.cholesky_inverse(factor), "the inverse of precisions_init is singular")

    def _declare_means(self, prior: Any, precision: Tensor) -> Tensor:
        return pyro.sample("locs", pdist.MultivariateNormal(prior.mean_prior,
                                                            precision_matrix=prior.mean_precision * precision))


class VarianceStructure(CovarianceStructure):
    """Structures stored as variances (diagonal covariances)."""

    storage = "variances"
    statistic = "diagonal"
    site = "variances"
    constraint = constraints.positive

    def validate(self, native, n_components, n_features):
        native = super().validate(native, n_components, n_features)
        # a shared structure's variances belong to no one component
        bad = torch.nonzero((native <= 0).reshape(1 if self.shared else n_components, -1).any(-1))
        if bad.numel():
            raise_not_positive_definite(None if self.shared else int(bad[0]), "a variance is zero or negative")
        return native

    def mahalanobis(self, X, locs, whitening):
        return ((X.unsqueeze(1) - locs) * whitening).square_().sum(-1)

    def second_moment(self, X, resp):
        return resp.T @ X.square()

    def moment_from_features(self, sums, n_features):
        return sums

    def log_joint_coefficients(self, log_weights, locs, whitening, half_log_det):
        precision = whitening.square().expand_as(locs)  # 1 / variances, (K, D)
        return torch.cat([constant_terms(log_weights, half_log_det, locs * whitening).unsqueeze(-1),
                          locs * precision, -0.5 * precision], dim=-1)

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        scatter = second_moment - 2.0 * sx * locs + nk[:, None] * locs.square()
        return (scatter * whitening.square()).sum()

    def variance_columns(self, native: Tensor) -> Tensor:
        """The variances as ``(K, D)`` or ``(K, 1)`` (one for every coordinate)."""
        raise NotImplementedError

    def scale_tril(self, native, n_components, n_features):
        return torch.diag_embed(self.variance_columns(native).sqrt().expand(n_components, n_features))

    def to_full(self, native, n_components, n_features):
        return torch.diag_embed(self.variance_columns(native).expand(n_components, n_features))

    def native_from_estimate(self, covariances, what, reg_covar=None):
        return covariances

    def regularized_native(self, covariances, reg_covar, what):
        return checked_variances(covariances + reg_covar, reg_covar)

    def conjugate_values(self, native, whitening):
        return {"precision": native.reciprocal()}

    def nonconjugate_values(self, native, n_features):
        return {"scales": native.sqrt()}

    def precisions_cholesky(self, native):
        return native.rsqrt()

    def sklearn_covariances(self, native):
        return native, native.reciprocal()

    def native_from_precisions(self, precisions):
        if not (precisions > 0).all():
            raise ValueError("precisions_init must be positive for diag and spherical covariances.")
        return precisions.reciprocal()

    def gamma_shape(self, nu: Tensor) -> Tensor:
        """The Gamma shapes ``ν / 2`` of ``q(λ)`` in the layout of the variances."""
        raise NotImplementedError

    def trace_with_precision(self, matrix: Tensor, whitening: Tensor, n_features: int) -> Tensor:
        """``tr(A E[Λ_k])`` ``(K,)`` for ``A`` in the prior scale's layout."""
        raise NotImplementedError
