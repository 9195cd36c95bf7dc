"""``StudentTParams``: weights, locations, scale matrices and degrees of freedom of a t mixture.

A multivariate t component is a scale mixture of Gaussians: ``u ~ Gamma(ν/2, rate ν/2)``,
``x | u ~ N(μ, Σ / u)``. With ``u`` summed out its density is

    log t(x | μ, Σ, ν) = lgamma((ν + D)/2) − lgamma(ν/2) − D/2 log(ν π) − ½ log|Σ|
                         − (ν + D)/2 · log(1 + δ/ν),        δ = (x − μ)ᵀ Σ⁻¹ (x − μ).

The container *is* a Gaussian mixture's parameters (weights, ``μ_k``, the scale matrices
``Σ_k`` in a covariance structure's native form, :class:`~mixtures.families.gaussian.params.MixtureParams`)
plus ``ν_k``: the structure computes whitening factors, Mahalanobis distances and their
conversions, and the Gaussian view (``.scale``) is what plots and alignments draw. ``Σ_k`` is
not the covariance: that is ``ν/(ν − 2) Σ_k`` for ``ν > 2`` (:meth:`covariance_matrices`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from scipy.stats import chi2
from torch import Tensor

from mixtures.core.params import Params
from mixtures.core.validation import make_generator
from mixtures.errors import ParameterError
from mixtures.families.gaussian.covariance import CovarianceStructure, get_structure
from mixtures.families.gaussian.params import MixtureParams

LOG_PI = float(np.log(np.pi))


def t_log_density(maha: Tensor, dof: Tensor, n_features: int, half_log_det: Tensor) -> Tensor:
    """``log t`` of points at squared Mahalanobis distances ``maha`` ``(n, K)`` from components with
    ``dof`` ``(K,)`` and ``½ log|Σ_k|`` ``half_log_det`` ``(K,)`` (or ``()`` shared): ``(n, K)``."""
    D = n_features
    constant = (torch.lgamma(0.5 * (dof + D)) - torch.lgamma(0.5 * dof) - 0.5 * D * (dof.log() + LOG_PI)
                - half_log_det)
    return constant - 0.5 * (dof + D) * torch.log1p(maha / dof)


class StudentTParams(Params):
    """Parameters of a K-component multivariate t mixture in D dimensions (module docstring).

    Args:
        weights: ``(K,)`` on the simplex.
        locs: ``(K, D)`` locations ``μ_k``.
        scales: the scale matrices ``Σ_k`` as full matrices ``(K, D, D)`` (one ``(D, D)`` for
            ``"tied"``) or the structure's native form (as :class:`MixtureParams` takes covariances).
        dof: degrees of freedom ``ν_k``: one positive number for all, or ``(K,)``.
        covariance_type: a covariance structure of the Gaussian family (``"full"``, ``"tied"``,
            ``"diag"``, ``"spherical"``, or an mclust name).

    Immutable; :meth:`from_native` (what routines use) shares its tensors unchecked.
    """

    __slots__ = ("scale", "dof")
    family: ClassVar[str] = "student_t"

    scale: MixtureParams
    dof: Tensor

    def __init__(self, weights: Any, locs: Any, scales: Any, dof: Any, covariance_type: str = "full"):
        scale = MixtureParams(weights, locs, scales, covariance_type)
        self._init(scale, _checked_dof(dof, scale), validate=True)

    @classmethod
    def from_native(cls, weights: Tensor, locs: Tensor, native: Tensor, dof: Tensor,
                    covariance_type: str | CovarianceStructure = "full", validate: bool = True) -> StudentTParams:
        """From the structure's native tensor of the scale matrices (``validate=False``: trusted)."""
        self = cls.__new__(cls)
        scale = MixtureParams.from_native(weights, locs, native, get_structure(covariance_type), validate=validate)
        self._init(scale, _checked_dof(dof, scale) if validate else dof, validate)
        return self

    def _init(self, scale: MixtureParams, dof: Tensor, validate: bool) -> None:
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "dof", dof)

    def __setattr__(self, name, value):
        raise AttributeError("StudentTParams is immutable; build a new one.")

    def __reduce__(self):
        return (StudentTParams.from_native, (self.weights, self.locs, self.native, self.dof,
                                             self.covariance_type, False))

    # -- what the Gaussian view already knows ------------------------------------------------
    @property
    def weights(self) -> Tensor:
        return self.scale.weights

    @property
    def locs(self) -> Tensor:
        return self.scale.locs

    @property
    def native(self) -> Tensor:
        return self.scale.native

    @property
    def cov_type(self) -> CovarianceStructure:
        return self.scale.cov_type

    @property
    def covariance_type(self) -> str:
        return self.scale.covariance_type

    @property
    def n_features(self) -> int:
        return self.scale.n_features

    @property
    def scale_matrices(self) -> Tensor:
        """``Σ_k`` as full matrices ``(K, D, D)``."""
        return self.scale.covariances

    @property
    def scale_tril(self) -> Tensor:
        return self.scale.scale_tril

    def whitener(self) -> tuple[Tensor, Tensor]:
        """Cached ``(whitening, ½ log|Σ_k|)`` of the scale matrices (the structure's)."""
        return self.scale.whitener()

    def covariance_matrices(self) -> Tensor:
        """The components' covariances ``ν/(ν − 2) Σ_k`` ``(K, D, D)`` (``inf`` where ``ν ≤ 2``)."""
        factor = torch.where(self.dof > 2, self.dof / (self.dof - 2).clamp_min(1e-300),
                             torch.full_like(self.dof, float("inf")))
        return factor[:, None, None] * self.scale_matrices

    # -- densities ------------------------------------------------------------------------------
    def mahalanobis(self, X: Tensor) -> Tensor:
        """``δ_nk = (x_n − μ_k)ᵀ Σ_k⁻¹ (x_n − μ_k)`` ``(n, K)`` for validated data ``X`` ``(n, D)``."""
        return self.cov_type.mahalanobis(X, self.locs, self.whitener()[0])

    def component_log_prob(self, X: Any) -> Tensor:
        """``log t(x_n | μ_k, Σ_k, ν_k)`` for every point and component: ``(N, K)``."""
        X = self._data(X)
        half_log_det = self.whitener()[1]
        return self._chunked(X, lambda rows: t_log_density(self.mahalanobis(rows), self.dof, self.n_features,
                                                           half_log_det))

    # -- outliers -------------------------------------------------------------------------------
    def precision_weights(self, X: Any) -> Tensor:
        """The latent scales' posterior means ``E[u_n | x_n, z_n = k] = (ν_k + D) / (ν_k + δ_nk)`` ``(N, K)``:
        EM's weights of each point in component k's mean and scatter (small for far points)."""
        X = self._data(X)
        dof = self.dof.to(X.dtype)
        return self._chunked(X, lambda rows: (dof + self.n_features) / (dof + self.mahalanobis(rows)))

    def is_outlying(self, X: Any, level: float = 0.99) -> Tensor:
        """``(N,)`` bool: the points a t fit calls outliers (McLachlan & Peel's reading of a t fit: the scale
        matrix ``Σ_k`` is the shape of component k's inliers, the precision weight down-weights the rest).

        Under its most probable component ``k̂`` a point's distance ``δ_nk̂`` exceeds the ``level`` quantile of
        ``χ²_D`` (what ``δ`` follows for a Gaussian of covariance ``Σ_k``), i.e. its expected precision weight
        ``E[u | x, k̂] = (ν + D)/(ν + δ)`` is below ``(ν + D)/(ν + χ²_D(level))``. (The t's own ``δ/D ~ F(D, ν)``
        quantile would call almost nothing an outlier once ν is small: heavy tails explain everything.)"""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {level!r}.")
        X = self._data(X)
        best = (self.component_log_prob(X) + self.weights.log()).argmax(-1)          # (N,)
        distance = self._chunked(X, self.mahalanobis).gather(-1, best[:, None])[:, 0]  # (N,) δ_nk̂
        threshold = float(chi2.ppf(level, self.n_features))
        return distance > threshold

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``(X (n, D), labels (n,))``: ``x = μ_z + L_z ε / √u`` with ``ε ~ N(0, I)``, ``u ~ Gamma(ν_z/2, ν_z/2)``.

        Reproducible for a seed on CPU (the Gamma draws come from numpy's generator, seeded
        from the same torch generator as the rest).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n!r}.")
        generator = make_generator(seed)
        labels = torch.multinomial(self.weights.cpu().double(), n, replacement=True, generator=generator) \
            if n else torch.zeros(0, dtype=torch.long)
        noise = torch.randn(n, self.n_features, generator=generator, dtype=torch.float64)
        gamma_seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        half_dof = 0.5 * self.dof.detach().cpu().double().numpy()[labels.numpy()]
        u = np.random.default_rng(gamma_seed).gamma(half_dof, 1.0 / half_dof) if n else np.zeros(0)
        # x = μ + L ε / √u, one product per component (a loop over components, never over points)
        scaled = noise / torch.from_numpy(np.sqrt(u)).unsqueeze(-1)
        scale_tril = self.scale_tril.detach().cpu().double()
        locs = self.locs.detach().cpu().double()
        X = torch.empty_like(scaled)
        for k in range(self.n_components):
            members = labels == k
            X[members] = locs[k] + scaled[members] @ scale_tril[k].T
        return X.to(device=self.device, dtype=self.dtype), labels.to(self.device)

    # -- the family's Params interface -------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "locs": self.locs, "native": self.native, "dof": self.dof}

    def spec(self) -> dict[str, Any]:
        return {"covariance_type": self.covariance_type}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], spec: dict[str, Any], validate: bool = True
                     ) -> StudentTParams:
        return cls.from_native(tensors["weights"], tensors["locs"], tensors["native"], tensors["dof"],
                               spec["covariance_type"], validate=validate)

    @classmethod
    def component_axes(cls, spec: dict[str, Any]) -> dict[str, int | None]:
        return {**MixtureParams.component_axes(spec), "dof": 0}

    @classmethod
    def mean_of(cls, draws: StudentTParams) -> StudentTParams:
        """Mean weights, locations and scale *matrices* (the Gaussian view's rule) and mean ``ν``."""
        scale = MixtureParams.mean_of(draws.scale)
        return cls.from_native(scale.weights, scale.locs, scale.native, draws.dof.mean(0), scale.cov_type,
                               validate=False)

    def summary_tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "locs": self.locs, "scale_matrices": self.scale.covariances,
                "dof": self.dof}

    def match_costs(self, reference: Params) -> Tensor:
        """The Gaussian view's cost: squared Mahalanobis distances between locations ``(..., K, K)``."""
        return self.scale.match_costs(reference.scale)

    def collapsed_components(self, reg_covar: float, rtol: float = 1e-3, atol: float = 0.0) -> list[int]:
        """Components whose scale matrix sits on the ``reg_covar`` floor."""
        return self.scale.collapsed_components(reg_covar, rtol, atol)

    def __repr__(self) -> str:
        return (f"StudentTParams(K={self.n_components}, D={self.n_features}, "
                f"covariance_type={self.covariance_type!r}, dof={[round(v, 4) for v in self.dof.tolist()]}, "
                f"dtype={self.dtype})")


def _checked_dof(dof: Any, scale: MixtureParams) -> Tensor:
    """``ν`` as ``(K,)`` in the parameters' dtype: positive and finite (one number is every component's)."""
    if isinstance(dof, Tensor) and dof.is_floating_point() and dof.dtype != scale.dtype:
        raise ParameterError(f"dof is {dof.dtype} but the other parameters are {scale.dtype}; convert it "
                             f"with dof.to({scale.dtype}).")
    try:
        values = torch.as_tensor(dof, dtype=scale.dtype, device=scale.device)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterError(f"dof must be a positive number or (K,) of them; got {type(dof).__name__}.") from None
    K = scale.n_components
    if values.dim() == 0 or tuple(values.shape) == (1,):
        values = values.reshape(()).expand(K)
    if tuple(values.shape) != (K,):
        raise ParameterError(f"dof must be one number or have shape (K,) = ({K},); got {tuple(values.shape)}.")
    if not bool((torch.isfinite(values) & (values > 0)).all()):
        raise ParameterError(f"degrees of freedom must be finite and positive; got {values.tolist()}.")
    return values.clone()
