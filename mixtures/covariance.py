"""Covariance parametrizations: everything that differs between covariance types.

Each type stores its covariance in a *native* tensor, the cheapest exact form:

=============  ===================  ==========================================
type           native tensor        meaning
=============  ===================  ==========================================
``full``       ``(K, D, D)``        lower Cholesky factor ``L_k``, ``Σ_k = L_k L_kᵀ``
``tied``       ``(D, D)``           one lower Cholesky factor shared by all ``k``
``diag``       ``(K, D)``           per-dimension variances
``spherical``  ``(K,)``             one variance per component
=============  ===================  ==========================================

A :class:`CovarianceType` knows how to go between the native and full forms,
evaluate Mahalanobis distances and log-determinants (through Cholesky factors,
never explicit inverses of covariances), estimate itself from the sufficient
statistics of an M step, count its free parameters, and build the Pyro
distribution of the component picked by an assignment (:mod:`mixtures.fused`:
the same ``C @ F`` expansion as EM's fused pass makes its enumerated ``log_prob``
one matrix product). Adding a covariance type means adding one subclass here and
registering it in :data:`COVARIANCE_TYPES`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import constraints

from mixtures.errors import ParameterError, SingularCovarianceError
from mixtures.fused import (
    LOG_2PI,
    DiagonalNormal,
    FusedMultivariateNormal,
    constant_terms,
    inverse_tril,
    pair_coefficients,
)

_REG_HINT = (
    "Increase reg_covar (it is added to the diagonal of every covariance), use fewer "
    "components, or standardize the data."
)


def _raise_not_pd(component: int | None, what: str, reg_covar: float | None = None) -> None:
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
        _raise_not_pd(component, what, reg_covar)
    return scale_tril


# the coefficient helpers are shared with the component distributions' matrix-product log_prob
_inverse_tril = inverse_tril
_constant_terms = constant_terms
_pair_coefficients = pair_coefficients


def _pair_features(xT: Tensor, out: Tensor) -> None:
    """``out`` ``(D(D+1)/2, n)`` ← ``x_i x_j`` for ``i ≤ j`` (row-major upper triangle) of ``xT`` ``(D, n)``."""
    _pair_writer(xT, out)()


def _pair_writer(xT: Tensor, out: Tensor) -> Callable[[], None]:
    """:func:`_pair_features` with its ``3·D`` views sliced once."""
    D = xT.shape[0]
    products, start = [], 0
    for i in range(D):  # D row products over the long point axis (vectorized), not a loop over points
        products.append((xT[i:i + 1], xT[i:], out[start:start + D - i]))
        start += D - i

    def write() -> None:
        for left, right, target in products:
            torch.mul(left, right, out=target)

    return write


def _symmetric_from_pairs(sums: Tensor, n_features: int) -> Tensor:
    """Symmetric matrices ``(..., D, D)`` from their upper triangles ``(..., D(D+1)/2)``."""
    rows, cols = torch.triu_indices(n_features, n_features, device=sums.device)
    full = sums.new_empty(sums.shape[:-1] + (n_features, n_features))
    full[..., rows, cols] = sums
    full[..., cols, rows] = sums
    return full


class CovarianceType:
    """Base class: the operations an inference routine needs from a covariance type."""

    name: str = ""
    #: name of the global Pyro site holding the native tensor
    site: str = ""
    #: Pyro constraint of the native tensor
    constraint: constraints.Constraint = constraints.real

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- shapes and conversions -------------------------------------------------
    def native_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        raise NotImplementedError

    def to_full(self, native: Tensor, n_components: int, n_features: int) -> Tensor:
        """Full covariance matrices ``(K, D, D)`` from the native tensor."""
        raise NotImplementedError

    def from_full(self, covariances: Tensor) -> Tensor:
        """Native tensor from full matrices ``(K, D, D)``; checks the structure."""
        raise NotImplementedError

    def validate(self, native: Tensor, n_components: int, n_features: int) -> Tensor:
        """Check shape and positive definiteness of a native tensor; return it."""
        expected = self.native_shape(n_components, n_features)
        if tuple(native.shape) != expected:
            raise ParameterError(
                f"{self.name!r} covariance parameters must have shape {expected} "
                f"for K={n_components}, D={n_features}; got {tuple(native.shape)}."
            )
        if not torch.isfinite(native).all():
            raise ParameterError(f"{self.name!r} covariance parameters contain NaN or inf.")
        return native

    # -- densities ----------------------------------------------------------------
    def whitener(self, native: Tensor, n_features: int) -> tuple[Tensor, Tensor]:
        """Precomputed factors for :meth:`mahalanobis` and the log-determinants.

        Returns ``(whitening, half_log_det)``: ``whitening`` is the per-type inverse
        square root of the covariance (triangular inverse of the Cholesky factor,
        or inverse standard deviations) and ``half_log_det`` ``(K,)`` or ``()`` is
        ``½ log det Σ_k``.
        """
        raise NotImplementedError

    def mahalanobis(self, X: Tensor, locs: Tensor, whitening: Tensor) -> Tensor:
        """Squared Mahalanobis distances ``(n, K)`` of ``X`` ``(n, D)`` to ``locs`` ``(K, D)``."""
        raise NotImplementedError

    def component_log_prob(self, X: Tensor, locs: Tensor, whitening: Tensor,
                           half_log_det: Tensor) -> Tensor:
        """Gaussian log densities ``(n, K)`` of every point under every component."""
        D = X.shape[-1]
        maha = self.mahalanobis(X, locs, whitening)
        return -0.5 * (D * LOG_2PI + maha) - half_log_det

    # -- fused E step (see mixtures.suffstats.e_step) -------------------------------
    # A chunk of centred points becomes features F (1 + D + M, n): a row of ones, the
    # coordinates x and M second-order terms. Every log joint density is linear in F
    # (one GEMM with log_joint_coefficients) and so are all sufficient statistics
    # (one GEMM with the responsibilities): no (n, K, D) temporary, two matmuls per chunk.
    def n_moment_features(self, n_features: int) -> int:
        """``M``: second-order features per point (rows of :meth:`moment_features`)."""
        raise NotImplementedError

    def moment_features(self, xT: Tensor, out: Tensor) -> None:
        """Write the second-order features of centred points ``xT`` ``(D, n)`` into ``out`` ``(M, n)``."""
        raise NotImplementedError

    def moment_feature_writer(self, xT: Tensor, out: Tensor) -> Callable[[], None]:
        """A call that writes :meth:`moment_features` of ``xT`` into ``out`` (the buffers of a pass).

        Views are sliced once, for all the equal chunks of a pass: slicing per chunk
        cost ~5 % of a float32 iteration at D = 8.
        """
        return functools.partial(self.moment_features, xT, out)

    def log_joint_coefficients(self, log_weights: Tensor, locs: Tensor, whitening: Tensor,
                               half_log_det: Tensor) -> Tensor:
        """``C`` ``(K, 1 + D + M)`` such that ``C @ F`` is ``log π_k + log N(x | μ_k, Σ_k)`` ``(K, n)``.

        ``locs`` ``(K, D)`` are in the frame of the centred points. The quadratic form
        is expanded about the shift (``xᵀPx - 2 xᵀPμ + μᵀPμ``): it loses the digits the
        M step's moments about the shift lose, ``eps · |x - shift|² / σ²``, no more.
        """
        raise NotImplementedError

    def moment_from_features(self, sums: Tensor, n_features: int) -> Tensor:
        """:meth:`second_moment`'s statistic from ``Σ_n r_nk F_mn`` over the M feature rows ``(K, M)``."""
        raise NotImplementedError

    # -- M step -------------------------------------------------------------------
    def second_moment(self, X: Tensor, resp: Tensor) -> Tensor:
        """The per-type sufficient statistic ``Σ_n r_nk x_n x_nᵀ`` (or its reduction)."""
        raise NotImplementedError

    def estimate(self, nk: Tensor, means: Tensor, second_moment: Tensor,
                 reg_covar: float) -> Tensor:
        """Native covariance maximizing the expected log-likelihood.

        Args:
            nk: ``(K,)`` responsibility mass per component (already floored away from 0).
            means: ``(K, D)`` new means, in the same (shifted) frame as the statistics.
            second_moment: output of :meth:`second_moment` summed over the data.
            reg_covar: added to the diagonal of every covariance.
        """
        raise NotImplementedError

    def expected_mahalanobis(self, nk: Tensor, sx: Tensor, second_moment: Tensor,
                             locs: Tensor, whitening: Tensor) -> Tensor:
        """``Σ_n Σ_k r_nk (x_n - μ_k)ᵀ Σ_k⁻¹ (x_n - μ_k)`` from sufficient statistics (scalar).

        ``nk`` ``(K,)``, ``sx`` ``(K, D)`` and ``second_moment`` are sums over the
        data of ``r``, ``r x`` and :meth:`second_moment`; ``locs`` ``(K, D)`` are in
        the same (shifted) frame. Used for the closed-form ELBO of an EM iteration.
        """
        raise NotImplementedError

    # -- model facts --------------------------------------------------------------
    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the covariances alone."""
        raise NotImplementedError

    def component_distribution(self, locs: Tensor, native: Tensor, index: Tensor | None = None):
        """Pyro distribution of the components (optionally those picked by ``index``).

        ``index`` may carry enumeration dimensions on the left; the result has
        batch shape ``index.shape`` (or ``(K,)`` when ``index`` is None) and event
        shape ``(D,)``. The distributions are those of :mod:`mixtures.fused`
        (:class:`~mixtures.fused.FusedMultivariateNormal` for the Cholesky types,
        :class:`~mixtures.fused.DiagonalNormal` for the variance types): under
        enumeration (index ``(K, 1)`` against the data ``(N, D)``) their ``log_prob``
        is one matrix product ``C @ F``, otherwise the term-by-term formula.
        """
        raise NotImplementedError

    def precisions_cholesky(self, native: Tensor) -> Tensor:
        """scikit-learn's ``precisions_cholesky_`` layout, for interoperability."""
        raise NotImplementedError


class _TrilCovariance(CovarianceType):
    """Shared pieces of the types stored as lower Cholesky factors."""

    site = "scale_tril"
    constraint = constraints.lower_cholesky

    def validate(self, native, n_components, n_features):
        native = super().validate(native, n_components, n_features)
        if not torch.equal(native, native.tril()):
            raise ParameterError(
                f"{self.name!r} covariance parameters must be lower-triangular Cholesky "
                "factors; pass full covariance matrices instead to have them factorized."
            )
        diagonal = native.diagonal(dim1=-2, dim2=-1)
        if not (diagonal > 0).all():
            _raise_not_pd(None if native.dim() == 2 else int(torch.nonzero((diagonal <= 0).any(-1))[0]),
                          "its Cholesky factor has a non-positive diagonal entry")
        return native

    def whitener(self, native, n_features):
        half_log_det = native.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return _inverse_tril(native), half_log_det

    def precisions_cholesky(self, native):
        return _inverse_tril(native).transpose(-1, -2)


class FullCovariance(_TrilCovariance):
    name = "full"

    def native_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def to_full(self, native, n_components, n_features):
        return native @ native.transpose(-1, -2)

    def from_full(self, covariances):
        _check_symmetric(covariances)
        return cholesky_checked(covariances, "Cholesky factorization failed")

    def mahalanobis(self, X, locs, whitening):
        # One (n, D) x (D, K*D) matmul computes L_k^{-1} x for every k at once.
        K, D = locs.shape
        proj = X @ whitening.transpose(-1, -2).permute(1, 0, 2).reshape(D, K * D)
        offset = (whitening @ locs.unsqueeze(-1)).reshape(K * D)
        return (proj - offset).square_().reshape(-1, K, D).sum(-1)

    def second_moment(self, X, resp):
        n, D = X.shape
        K = resp.shape[1]
        weighted = (resp.unsqueeze(-1) * X.unsqueeze(1)).reshape(n, K * D)
        return (weighted.transpose(0, 1) @ X).reshape(K, D, D)

    def n_moment_features(self, n_features):
        return n_features * (n_features + 1) // 2

    def moment_features(self, xT, out):
        _pair_features(xT, out)

    def moment_feature_writer(self, xT, out):
        return _pair_writer(xT, out)

    def log_joint_coefficients(self, log_weights, locs, whitening, half_log_det):
        white_locs = (whitening @ locs.unsqueeze(-1)).squeeze(-1)  # L_k⁻¹ μ_k
        linear = (whitening.transpose(-1, -2) @ white_locs.unsqueeze(-1)).squeeze(-1)  # Σ_k⁻¹ μ_k
        precision = whitening.transpose(-1, -2) @ whitening  # from the inverted Cholesky factor
        return torch.cat([_constant_terms(log_weights, half_log_det, white_locs).unsqueeze(-1),
                          linear, _pair_coefficients(precision)], dim=-1)

    def moment_from_features(self, sums, n_features):
        return _symmetric_from_pairs(sums, n_features)

    def estimate(self, nk, means, second_moment, reg_covar):
        cov = second_moment / nk[:, None, None] - means.unsqueeze(-1) * means.unsqueeze(-2)
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
        return cholesky_checked(cov, "its estimate from the responsibilities is singular", reg_covar)

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        cross = sx.unsqueeze(-1) * locs.unsqueeze(-2)
        scatter = second_moment - cross - cross.transpose(-1, -2) \
            + nk[:, None, None] * locs.unsqueeze(-1) * locs.unsqueeze(-2)
        return ((whitening @ scatter) * whitening).sum()

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs, native = locs[index], native[index]
        return FusedMultivariateNormal(locs, scale_tril=native)


class TiedCovariance(_TrilCovariance):
    name = "tied"

    def native_shape(self, n_components, n_features):
        return (n_features, n_features)

    def to_full(self, native, n_components, n_features):
        return (native @ native.T).expand(n_components, -1, -1).clone()

    def from_full(self, covariances):
        _check_symmetric(covariances)
        if covariances.dim() == 3:
            if not torch.allclose(covariances, covariances[:1].expand_as(covariances)):
                raise ParameterError(
                    "'tied' covariances must be the same matrix for every component; "
                    "pass one (D, D) matrix or use covariance_type='full'."
                )
            covariances = covariances[0]
        return cholesky_checked(covariances, "Cholesky factorization failed")

    def mahalanobis(self, X, locs, whitening):
        white_X = X @ whitening.T
        white_locs = locs @ whitening.T
        return (white_X.unsqueeze(1) - white_locs).square_().sum(-1)

    def second_moment(self, X, resp):
        # Σ_k Σ_n r_nk x xᵀ = Σ_n w_n x xᵀ with w_n = Σ_k r_nk (1 for soft and hard EM).
        return (resp.sum(1, keepdim=True) * X).T @ X

    def n_moment_features(self, n_features):
        return n_features * (n_features + 1) // 2

    def moment_features(self, xT, out):
        _pair_features(xT, out)

    def moment_feature_writer(self, xT, out):
        return _pair_writer(xT, out)

    def log_joint_coefficients(self, log_weights, locs, whitening, half_log_det):
        white_locs = locs @ whitening.T
        K = locs.shape[0]
        pairs = _pair_coefficients(whitening.T @ whitening).expand(K, -1)
        return torch.cat([_constant_terms(log_weights, half_log_det, white_locs).unsqueeze(-1),
                          white_locs @ whitening, pairs], dim=-1)

    def moment_from_features(self, sums, n_features):
        return _symmetric_from_pairs(sums.sum(0), n_features)

    def estimate(self, nk, means, second_moment, reg_covar):
        cov = (second_moment - (nk[:, None] * means).T @ means) / nk.sum()
        cov = 0.5 * (cov + cov.T)
        cov.diagonal().add_(reg_covar)
        return cholesky_checked(cov, "its estimate from the responsibilities is singular", reg_covar)

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        cross = sx.T @ locs
        scatter = second_moment - cross - cross.T + (nk[:, None] * locs).T @ locs
        return ((whitening @ scatter) * whitening).sum()

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs = locs[index]
        return FusedMultivariateNormal(locs, scale_tril=native)


class _VarianceCovariance(CovarianceType):
    """Shared pieces of the types stored as variances."""

    site = "variances"
    constraint = constraints.positive

    def validate(self, native, n_components, n_features):
        native = super().validate(native, n_components, n_features)
        bad = torch.nonzero((native <= 0).reshape(n_components, -1).any(-1))
        if bad.numel():
            _raise_not_pd(int(bad[0]), "a variance is zero or negative")
        return native

    def mahalanobis(self, X, locs, whitening):
        return ((X.unsqueeze(1) - locs) * whitening).square_().sum(-1)

    def second_moment(self, X, resp):
        return resp.T @ X.square()

    def n_moment_features(self, n_features):
        return n_features

    def moment_features(self, xT, out):
        torch.square(xT, out=out)

    def log_joint_coefficients(self, log_weights, locs, whitening, half_log_det):
        precision = whitening.square().expand_as(locs)  # 1 / variances, (K, D)
        return torch.cat([_constant_terms(log_weights, half_log_det, locs * whitening).unsqueeze(-1),
                          locs * precision, -0.5 * precision], dim=-1)

    def moment_from_features(self, sums, n_features):
        return sums

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        scatter = second_moment - 2.0 * sx * locs + nk[:, None] * locs.square()
        return (scatter * whitening.square()).sum()

    def precisions_cholesky(self, native):
        return native.rsqrt()


class DiagCovariance(_VarianceCovariance):
    name = "diag"

    def native_shape(self, n_components, n_features):
        return (n_components, n_features)

    def to_full(self, native, n_components, n_features):
        return torch.diag_embed(native)

    def from_full(self, covariances):
        _check_symmetric(covariances)
        diagonal = covariances.diagonal(dim1=-2, dim2=-1)
        if not torch.equal(torch.diag_embed(diagonal), covariances):
            raise ParameterError(
                "'diag' covariances must be diagonal matrices; pass variances of shape "
                "(K, D) or use covariance_type='full'."
            )
        return diagonal.clone()

    def whitener(self, native, n_features):
        return native.rsqrt(), 0.5 * native.log().sum(-1)

    def estimate(self, nk, means, second_moment, reg_covar):
        raw = second_moment / nk[:, None]
        return _checked_variances(_clean_variance(raw, raw - means.square()) + reg_covar, reg_covar)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs, native = locs[index], native[index]
        return DiagonalNormal(locs, native)


class SphericalCovariance(_VarianceCovariance):
    name = "spherical"

    def native_shape(self, n_components, n_features):
        return (n_components,)

    def to_full(self, native, n_components, n_features):
        eye = torch.eye(n_features, dtype=native.dtype, device=native.device)
        return native[:, None, None] * eye

    def from_full(self, covariances):
        _check_symmetric(covariances)
        diagonal = covariances.diagonal(dim1=-2, dim2=-1)
        variances = diagonal[:, 0]
        if not torch.equal(torch.diag_embed(variances[:, None].expand_as(diagonal)), covariances):
            raise ParameterError(
                "'spherical' covariances must be multiples of the identity; pass one "
                "variance per component (shape (K,)) or use covariance_type='diag'."
            )
        return variances.clone()

    def whitener(self, native, n_features):
        return native.rsqrt().unsqueeze(-1), 0.5 * n_features * native.log()

    def estimate(self, nk, means, second_moment, reg_covar):
        raw = second_moment / nk[:, None]
        return _checked_variances(_clean_variance(raw, raw - means.square()).mean(-1) + reg_covar, reg_covar)

    def n_parameters(self, n_components, n_features):
        return n_components

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs, native = locs[index], native[index]
        return DiagonalNormal(locs, native.unsqueeze(-1))

    def precisions_cholesky(self, native):
        return native.rsqrt()


def _check_symmetric(covariances: Tensor) -> None:
    scale = covariances.abs().amax().clamp_min(torch.finfo(covariances.dtype).tiny)
    asym = (covariances - covariances.transpose(-1, -2)).abs().amax()
    if asym > 1e3 * torch.finfo(covariances.dtype).eps * scale:
        raise ParameterError(
            f"covariance matrices must be symmetric; the largest asymmetry is {float(asym):.3g}. "
            "Symmetrize them with (C + C.T) / 2."
        )


def _clean_variance(second_moment: Tensor, variance: Tensor) -> Tensor:
    """Zero the variances that are only the rounding error of ``E[x²] - E[x]²``."""
    floor = 100 * torch.finfo(variance.dtype).eps * second_moment.abs()
    return torch.where(variance > floor, variance, torch.zeros_like(variance))


def _checked_variances(variances: Tensor, reg_covar: float) -> Tensor:
    bad = torch.nonzero(~(variances > 0).reshape(variances.shape[0], -1).all(-1))
    if bad.numel():
        _raise_not_pd(int(bad[0]), "its estimated variance is zero or negative (it collapsed onto "
                      "identical points)", reg_covar)
    return variances


COVARIANCE_TYPES: dict[str, CovarianceType] = {
    cls.name: cls() for cls in (FullCovariance, TiedCovariance, DiagCovariance, SphericalCovariance)
}


def get_covariance_type(name: str | CovarianceType) -> CovarianceType:
    """Look up a covariance type by name, with a clear error for unknown names."""
    if isinstance(name, CovarianceType):
        return name
    try:
        return COVARIANCE_TYPES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown covariance_type {name!r}; choose one of {sorted(COVARIANCE_TYPES)}."
        ) from None
