"""Priors over a mixture's global parameters.

Given to the model as ``GaussianMixture(K, covariance_type, prior=GaussianPrior(...))``,
a prior turns the globals of the Pyro program into ``pyro.sample`` sites:

Weights (:mod:`mixtures.families.weights`, shared by every family)
    ``weight_prior="dirichlet"``: ``weights ~ Dirichlet(α)`` (site ``"weights"``);
    ``weight_prior="dirichlet_process"``: truncated stick-breaking,
    ``v_k ~ Beta(1, γ)`` for ``k < K`` (site ``"stick_fractions"``, ``(K-1,)``),
    ``weights_k = v_k Π_{j<k} (1 - v_j)`` with the last stick taking the rest.

Components: each covariance structure declares its own sites
(:mod:`mixtures.families.gaussian.covariance`). ``kind="conjugate"`` (Normal–Wishart,
Bishop PRML §10.2; scikit-learn's ``BayesianGaussianMixture`` uses the same parametrization):
    ``Λ_k ~ Wishart(ν₀, W₀ = Ψ₀⁻¹)`` (site ``"precision"``), ``μ_k | Λ_k ~ N(m₀, (β₀ Λ_k)⁻¹)``;
    one shared ``Λ`` for ``"tied"``; for ``"diag"`` independent Normal–Gamma per
    dimension, ``λ_kd ~ Gamma(ν₀/2, rate=Ψ₀_d/2)`` (the 1-D Wishart); for
    ``"spherical"`` one ``λ_k ~ Gamma(ν₀/2, rate=Ψ₀/2)`` shared by all dimensions
    (scikit-learn's spherical parametrization).

Components, ``kind="nonconjugate"`` (for SVI and NUTS):
    ``μ_k ~ N(m₀, diag(s²))`` with ``s² = diag(Ψ₀) / β₀``; ``full``/``tied``:
    ``L_corr ~ LKJCholesky(D, η)`` (site ``"corr_chol"``) and scales ``σ_d ~
    HalfCauchy(s_d)`` or ``LogNormal(log s_d, 1)`` (site ``"scales"``) with
    ``scale_tril = diag(σ) L_corr``; ``diag``: scales per dimension;
    ``spherical``: one scale per component ``~ HalfCauchy(mean s)``.

Defaults (``None``) follow scikit-learn's ``BayesianGaussianMixture``, scaled to
the data: ``α = γ = 1/K``, ``m₀ = mean(X)``, ``β₀ = 1``, ``ν₀ = D``, and ``Ψ₀`` =
the empirical covariance of X (``ddof=1``; variances for ``"diag"``, their mean for
``"spherical"``). mclust's ``defaultPrior`` instead uses ``ν₀ = D + 2``, ``β₀ =
0.01`` and ``Ψ₀ = cov(X) / K^{2/D}``; pass those explicitly to reproduce it.
The sparse defaults (``α = 1/K < 1``, ``ν₀ = D``) give an empty component no
posterior mode: MAP-EM with more components than the data support needs
``α ≥ 1`` and ``ν₀ > D`` (e.g. mclust's ``D + 2``), see :mod:`mixtures.conjugate`;
VB and NUTS handle them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from mixtures.core.missing import mean_imputed
from mixtures.errors import DataError, ParameterError
from mixtures.families.gaussian.covariance import CovarianceStructure, get_structure
from mixtures.families.weights import WEIGHT_PRIORS, inverse_stick_breaking, resolve_concentration, stick_breaking

KINDS = ("conjugate", "nonconjugate")
SCALE_PRIORS = ("half_cauchy", "lognormal")

__all__ = ["GaussianPrior", "ResolvedPrior", "check_covariance_prior", "stick_breaking", "inverse_stick_breaking",
           "WEIGHT_PRIORS", "KINDS", "SCALE_PRIORS"]


@dataclass(frozen=True)
class GaussianPrior:
    """Specification of a prior; ``None`` fields take data-scaled defaults (module docstring)."""

    weight_prior: str = "dirichlet"
    weight_concentration: Any = None
    mean_prior: Any = None
    mean_precision: float | None = None
    degrees_of_freedom: float | None = None
    covariance_prior: Any = None
    kind: str = "conjugate"
    scale_prior: str = "half_cauchy"
    lkj_concentration: float = 1.0

    def __post_init__(self):
        for name, allowed in (("weight_prior", WEIGHT_PRIORS), ("kind", KINDS),
                              ("scale_prior", SCALE_PRIORS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}.")
        for name in ("mean_precision", "degrees_of_freedom", "lkj_concentration"):
            value = getattr(self, name)
            if value is not None and not float(value) > 0:
                raise ValueError(f"{name} must be positive; got {value!r}.")

    def resolve(self, X: Tensor, model: Any, covariance_type: str | CovarianceStructure | None = None
                ) -> ResolvedPrior:
        """Concrete tensors for data ``X`` ``(N, D)`` (defaults filled in, shapes checked).

        ``model`` is the ``GaussianMixture`` (or its number of components, with
        ``covariance_type``).
        """
        if covariance_type is None:
            K, cov_type = model.n_components, model.cov_type
        else:
            K, cov_type = int(model), get_structure(covariance_type)
        D = X.shape[1]
        # NaN entries (missing values): defaults from the mean-imputed data (observed means; a positive
        # semi-definite covariance, shrunk where entries are missing)
        X = mean_imputed(X)
        as_t = lambda value: torch.as_tensor(value, dtype=X.dtype, device=X.device)  # noqa: E731
        concentration = resolve_concentration(self.weight_concentration, self.weight_prior, K, X)
        mean_prior = X.mean(0) if self.mean_prior is None else as_t(self.mean_prior).reshape(-1)
        if mean_prior.shape != (D,):
            raise ValueError(f"mean_prior must have shape (D,) = ({D},); got {tuple(mean_prior.shape)}.")
        mean_precision = as_t(1.0 if self.mean_precision is None else self.mean_precision)
        dof = as_t(float(D) if self.degrees_of_freedom is None else self.degrees_of_freedom)
        if cov_type.storage == "tril" and not dof > D - 1:
            raise ValueError(f"degrees_of_freedom must exceed D - 1 = {D - 1} for a Wishart prior; got {float(dof)}.")
        covariance_prior = _covariance_prior(self.covariance_prior, X, cov_type, as_t)
        for name, value in (("mean_prior", mean_prior), ("mean_precision", mean_precision),
                            ("degrees_of_freedom", dof), ("covariance_prior", covariance_prior)):
            _check_finite(value, name)
        return ResolvedPrior(self, cov_type, K, D, concentration, mean_prior, mean_precision, dof,
                             covariance_prior)

    def with_(self, **changes: Any) -> GaussianPrior:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_covariance_prior(psi: Tensor, X: Tensor, default: bool, routine: str | None = None) -> None:
    """A clear error when ``Ψ₀`` (``(D, D)``, ``(D,)`` or ``()``) is not (numerically) positive definite.

    A singular ``Ψ₀`` makes the prior improper (its normalizer ``log |Ψ₀|`` is ``-inf``) and
    its Cholesky factorization fail. The default ``Ψ₀`` is the data's empirical covariance,
    singular for a constant feature, collinear features or identical points (a
    ``DataError`` naming them); a given one singular to working precision is a
    ``ParameterError``. Matrices count as singular below the pivot floor of
    :func:`mixtures.covariance.cholesky_checked` (``100 · D · eps`` times the largest
    diagonal entry); variances must be positive. The check is on the small prior only.
    """
    D = X.shape[1]
    if psi.dim() == 2:
        factor, info = torch.linalg.cholesky_ex(psi)
        floor = 100 * D * torch.finfo(psi.dtype).eps * psi.diagonal().amax()
        singular = bool(info != 0) or not bool((factor.diagonal().square() > floor).all()) \
            or not bool(torch.isfinite(factor).all())
    else:
        singular = not bool((psi > 0).all()) or not bool(torch.isfinite(psi).all())
    if not singular:
        return
    who = f"method={routine!r}" if routine else "the prior"
    precision = str(psi.dtype).replace("torch.", "")
    if not default:
        raise ParameterError(
            f"{who}: the given covariance_prior Ψ₀ is singular to working precision (its "
            f"{'Cholesky pivots' if psi.dim() == 2 else 'variances'} are not clearly positive in {precision}), "
            "so the prior is improper (log |Ψ₀| = -inf). Give a positive definite covariance_prior on the "
            "data's scale, or fit in float64.")
    constant = torch.nonzero(X.amax(0) == X.amin(0)).reshape(-1).tolist()
    if constant:
        cause = (f"feature(s) {constant[:10]}{'...' if len(constant) > 10 else ''} of X "
                 f"{'are' if len(constant) > 1 else 'is'} constant")
        fix = "remove the constant feature(s), or give GaussianPrior(covariance_prior=...) explicitly"
    else:
        cause = f"the features of X are (nearly) collinear, or its points (nearly) coincide, at {precision} precision"
        fix = ("remove redundant features or standardize the data (or fit in float64), or give "
               "GaussianPrior(covariance_prior=...) explicitly")
    raise DataError(
        f"{who if routine else 'the default prior'}: its covariance_prior Ψ₀, the empirical covariance of X, is "
        f"singular because {cause}, so the prior is improper (log |Ψ₀| = -inf). Fix: {fix} (e.g. the "
        "identity times a typical variance of the data).")


def _check_finite(value: Tensor, name: str) -> None:
    """A ``ValueError`` naming a prior field with NaN or infinite entries (they would surface later
    as a singular covariance, blaming ``reg_covar``)."""
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"GaussianPrior.{name} must be finite; got {value.tolist()}. Give finite values, or "
                         "leave the field None for its data-scaled default.")


def _covariance_prior(value: Any, X: Tensor, cov_type: CovarianceStructure, as_t) -> Tensor:
    D = X.shape[1]
    if value is None:
        if X.shape[0] < 2:
            raise DataError(f"the default prior's covariance_prior Ψ₀ is the data's empirical covariance, "
                            f"which needs at least 2 points; X has {X.shape[0]}. Give "
                            "GaussianPrior(covariance_prior=...) explicitly, or more data.")
        psi = cov_type.prior_scale(torch.atleast_2d(torch.cov(X.T)))
        check_covariance_prior(psi, X, default=True)
        return psi
    psi = as_t(value)
    expected = cov_type.prior_scale_shape(D)
    if tuple(psi.shape) != expected:
        raise ValueError(f"covariance_prior for covariance_type={cov_type.name!r} must have shape "
                         f"{expected}; got {tuple(psi.shape)}.")
    if psi.dim() == 2:
        if torch.linalg.cholesky_ex(psi)[1] != 0 or not torch.allclose(psi, psi.T):
            raise ValueError("covariance_prior must be symmetric positive definite.")
    elif not (psi > 0).all():
        raise ValueError("covariance_prior must be positive.")
    return psi


@dataclass(frozen=True)
class ResolvedPrior:
    """A prior with every default filled in for a given data set.

    Attributes:
        spec: the :class:`GaussianPrior` it came from.
        weight_concentration: ``(K,)`` Dirichlet α, or ``()`` stick-breaking γ.
        mean_prior: ``(D,)`` m₀. mean_precision: ``()`` β₀. degrees_of_freedom: ``()`` ν₀.
        covariance_prior: Ψ₀, ``(D, D)`` full/tied, ``(D,)`` diag, ``()`` spherical.
    """

    spec: GaussianPrior
    cov_type: CovarianceStructure
    n_components: int
    n_features: int
    weight_concentration: Tensor
    mean_prior: Tensor
    mean_precision: Tensor
    degrees_of_freedom: Tensor
    covariance_prior: Tensor

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def weight_prior(self) -> str:
        return self.spec.weight_prior

    @property
    def scale_prior_scale(self) -> Tensor:
        """``(D,)`` scale ``s`` of the non-conjugate priors: ``sqrt(diag Ψ₀)``."""
        psi = self.covariance_prior
        variances = psi.diagonal() if psi.dim() == 2 else psi.expand(self.n_features)
        return variances.sqrt()
