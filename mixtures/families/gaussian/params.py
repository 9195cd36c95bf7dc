"""``MixtureParams``: the immutable container of a Gaussian mixture's parameters.

The Gaussian family's :class:`~mixtures.core.params.Params` (in the spirit of
dynamax's shared parameter containers). It stores each covariance structure in its
native form (see :mod:`mixtures.families.gaussian.covariance`) and exposes full
matrices for interoperability. All densities are computed in log space with
Cholesky factors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from mixtures.core.missing import has_missing, marginalizing
from mixtures.core.params import Params
from mixtures.core.validation import make_generator
from mixtures.errors import ParameterError
from mixtures.families.gaussian import missing
from mixtures.families.gaussian.covariance import CovarianceStructure, get_structure


class MixtureParams(Params):
    """Weights, means and covariances of a K-component Gaussian mixture in D dimensions.

    Args:
        weights: ``(K,)`` mixing weights on the simplex (zeros allowed; a sum within
            1e-6 of 1 is renormalized).
        locs: ``(K, D)`` component means.
        covariances: either full matrices ``(K, D, D)`` (a single ``(D, D)`` for
            ``"tied"``) or the type's native form: Cholesky factors are computed
            from full matrices; variances ``(K, D)`` for ``"diag"`` and ``(K,)``
            for ``"spherical"`` are taken as they are. With D = 1, one variance
            per component ``(K,)`` is accepted for every type.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.

    Attributes cannot be reassigned (use :meth:`replace`). The constructor copies its
    tensors; :meth:`from_native` (what routines use, to avoid copies and
    refactorizations) shares them, so treat ``weights``, ``locs`` and ``native`` as
    read-only and ``.clone()`` one before writing into it: in-place writes would
    also leave the cached whitening factors stale.

    Dtype: the parameters take the dtype of ``locs`` when it is a floating tensor, else
    float64 (lists, numpy arrays, integer tensors); ``weights`` and ``covariances``
    given as lists or arrays are converted to it. Floating *tensors* of different
    dtypes (say float32 weights with float64 locs) are mixed input and a
    :class:`~mixtures.errors.ParameterError` naming each tensor's dtype: convert them
    to one dtype first (``.double()`` or ``.float()``). This is not the rule of
    :func:`mixtures.fit`, which casts a coherent ``init`` of one dtype to the data's
    dtype (float32 data with float64 initial parameters gives a float32 fit).
    """

    __slots__ = ("weights", "locs", "native", "cov_type", "_whitener")
    family: ClassVar[str] = "gaussian"

    weights: Tensor
    locs: Tensor
    native: Tensor
    cov_type: CovarianceStructure

    def __init__(self, weights: Any, locs: Any, covariances: Any, covariance_type: str = "full"):
        cov_type = get_structure(covariance_type)
        _check_one_dtype(weights=weights, locs=locs, covariances=covariances)
        locs_t = _as_float(locs, "locs")
        if locs_t.dim() == 1:  # K means of 1-D data
            locs_t = locs_t.unsqueeze(-1)
        dtype, device = locs_t.dtype, locs_t.device
        weights_t = _as_float(weights, "weights").to(dtype=dtype, device=device)
        cov = _as_float(covariances, "covariances").to(dtype=dtype, device=device)
        K, D = locs_t.shape if locs_t.dim() == 2 else (None, None)
        if K is None:
            raise ParameterError(f"locs must have shape (K, D); got {tuple(locs_t.shape)}.")
        native = cov_type.native_from_any(cov, K, D)
        self._init(weights_t, locs_t, native, cov_type, validate=True)

    @classmethod
    def from_native(cls, weights: Tensor, locs: Tensor, native: Tensor,
                    covariance_type: str | CovarianceStructure = "full", validate: bool = True
                    ) -> MixtureParams:
        """Build from the native covariance tensor (Cholesky factors or variances).

        Args:
            weights: ``(K,)``. locs: ``(K, D)``. native: see :mod:`mixtures.families.gaussian.covariance`.
            validate: check shapes, one floating dtype for the three tensors (a
                ``ParameterError`` for mixed dtypes, as the constructor), simplex and
                positivity. Routines that produce parameters by construction pass
                ``False``: nothing is checked then, not even the dtypes.
        """
        self = cls.__new__(cls)
        self._init(weights, locs, native, get_structure(covariance_type), validate)
        return self

    def _init(self, weights, locs, native, cov_type, validate):
        if validate:
            _check_one_dtype(weights=weights, locs=locs, native=native)
            weights, locs, native = _validate(weights, locs, native, cov_type)
        for name, value in (("weights", weights), ("locs", locs), ("native", native),
                            ("cov_type", cov_type), ("_whitener", None)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("MixtureParams is immutable; use .replace(...) to get a modified copy.")

    def __reduce__(self):
        # __setattr__ forbids the default unpickling path; rebuild through from_native instead.
        return (MixtureParams.from_native,
                (self.weights, self.locs, self.native, self.covariance_type, False))

    # -- shape facts ----------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self.locs.shape[-1]

    @property
    def covariance_type(self) -> str:
        return self.cov_type.name

    # -- covariance views -----------------------------------------------------------
    @property
    def covariances(self) -> Tensor:
        """Full covariance matrices ``(K, D, D)``, whatever the covariance type (``(S, K, D, D)``
        for stacked draws)."""
        K, D = self.n_components, self.n_features
        if self.weights.dim() > 1:  # stacked posterior draws
            return torch.stack([self.cov_type.to_full(native, K, D) for native in self.native])
        return self.cov_type.to_full(self.native, K, D)

    @property
    def scale_tril(self) -> Tensor:
        """Lower Cholesky factors of the covariances ``(K, D, D)``."""
        return self.cov_type.scale_tril(self.native, self.n_components, self.n_features)

    @property
    def precisions_cholesky(self) -> Tensor:
        """scikit-learn's ``precisions_cholesky_`` in its per-type layout."""
        return self.cov_type.precisions_cholesky(self.native)

    def whitener(self) -> tuple[Tensor, Tensor]:
        """Cached ``(whitening, half_log_det)`` factors (see ``CovarianceStructure.whitener``)."""
        if self._whitener is None:
            object.__setattr__(self, "_whitener", self.cov_type.whitener(self.native, self.n_features))
        return self._whitener

    # -- densities ------------------------------------------------------------------
    def component_log_prob(self, X: Any) -> Tensor:
        """``log N(x_n | μ_k, Σ_k)`` for every point and component: ``(N, K)``."""
        X = self._data(X)
        if has_missing(X):  # only inside mixtures.core.missing.marginalizing(): the observed blocks' densities
            return missing.observed_log_prob(X, self.locs, self.covariances)
        whitening, half_log_det = self.whitener()
        return self._chunked(X, lambda rows: self.cov_type.component_log_prob(rows, self.locs, whitening,
                                                                              half_log_det))

    def impute(self, X: Any, draws: int | None = None, seed: int | None = 0) -> Tensor:
        """``X`` ``(N, D)`` with NaN entries replaced by their conditional means under the mixture, or
        ``draws`` samples ``(draws, N, D)`` of them (:func:`mixtures.families.gaussian.missing.impute`)."""
        with marginalizing():
            X = self._data(X)
        if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
            raise ValueError(f"draws must be a positive integer or None (conditional means); got {draws!r}.")
        return missing.impute(self, X, draws, seed)

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points: returns ``(X (n, D), labels (n,))``.

        Reproducible for a given ``seed`` on CPU.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n!r}.")
        generator = make_generator(seed)
        labels = torch.multinomial(self.weights.cpu().double(), n, replacement=True,
                                   generator=generator) if n else torch.zeros(0, dtype=torch.long)
        noise = torch.randn(n, self.n_features, generator=generator, dtype=torch.float64)
        labels, noise = labels.to(self.device), noise.to(device=self.device, dtype=self.dtype)
        scale_tril = self.scale_tril
        X = torch.empty_like(noise)
        for k in range(self.n_components):  # loop over components, never over points
            members = labels == k
            X[members] = self.locs[k] + noise[members] @ scale_tril[k].T
        return X, labels

    # -- conveniences ---------------------------------------------------------------
    def replace(self, **changes: Any) -> MixtureParams:
        """A copy with some of ``weights``, ``locs``, ``covariances`` replaced (validated)."""
        values = {"weights": self.weights, "locs": self.locs, "covariances": None}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}; use weights, locs, covariances.")
        values.update(changes)
        if values["covariances"] is None:
            return MixtureParams.from_native(values["weights"], values["locs"], self.native, self.cov_type)
        return MixtureParams(values["weights"], values["locs"], values["covariances"], self.covariance_type)

    def to(self, dtype: torch.dtype | None = None, device: Any = None) -> MixtureParams:
        """Cast to another dtype and/or device (weights renormalized in the new dtype)."""
        return super().to(dtype, device)

    # -- the family's Params interface ----------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "locs": self.locs, "native": self.native}

    def spec(self) -> dict[str, Any]:
        return {"covariance_type": self.covariance_type}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], spec: dict[str, Any], validate: bool = True) -> MixtureParams:
        return cls.from_native(tensors["weights"], tensors["locs"], tensors["native"], spec["covariance_type"],
                               validate=validate)

    @classmethod
    def component_axes(cls, spec: dict[str, Any]) -> dict[str, int | None]:
        return {"weights": 0, "locs": 0, "native": None if get_structure(spec["covariance_type"]).shared else 0}

    @classmethod
    def mean_of(cls, draws: MixtureParams) -> MixtureParams:
        """Mean weights, means and covariance *matrices* of stacked draws (Cholesky of the mean)."""
        cov_type = draws.cov_type
        weights = draws.weights.mean(0)
        if cov_type.storage == "variances":
            native = draws.native.mean(0)
        else:
            mean_covariance = draws.covariances.mean(0)
            native = cov_type.from_full(mean_covariance[0] if cov_type.shared else mean_covariance)
        return cls.from_native(weights / weights.sum(), draws.locs.mean(0), native, cov_type, validate=False)

    def summary_tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "locs": self.locs, "covariances": self.covariances}

    def match_costs(self, reference: Params) -> Tensor:
        """``(..., K, K)``: squared Mahalanobis distances between these means (stacked draws or
        one set) and the reference means, under the reference covariances."""
        whitening, _ = reference.whitener()
        K, D = reference.n_components, reference.n_features
        flat = self.locs.reshape(-1, D)
        cost = reference.cov_type.mahalanobis(flat, reference.locs, whitening)  # (S*K, K)
        return cost.reshape(self.locs.shape[:-1] + (K,))

    def collapsed_components(self, reg_covar: float, rtol: float = 1e-3, atol: float = 0.0) -> list[int]:
        """Components whose covariance sits on the ``reg_covar`` floor, ``λ_min(Σ_k) <= reg_covar
        (1 + rtol) + atol``, or is numerically singular whatever the floor, ``λ_min(Σ_k) <= 10 D ε
        max_j λ_max(Σ_j)`` (``ε`` the dtype's epsilon: an eigenvalue within round-off of zero on the
        mixture's scale, e.g. a VEE component shrunk onto one point with ``reg_covar=0``, whose
        likelihood is unbounded; mclust reports such a cell as NA). A shared covariance collapses
        for every component at once."""
        if self.cov_type.storage == "variances":  # the variances are the eigenvalues
            columns = self.cov_type.variance_columns(self.native)  # (K or 1, D or 1); shared: every component
            smallest = columns.min(-1).values.expand(self.n_components)
            largest = columns.max(-1).values.expand(self.n_components)
        else:
            eigenvalues = torch.linalg.eigvalsh(self.covariances)  # (K, D) ascending
            smallest, largest = eigenvalues[..., 0], eigenvalues[..., -1]
        round_off = 10 * self.n_features * torch.finfo(smallest.dtype).eps
        collapsed = (smallest <= reg_covar * (1.0 + rtol) + atol) | (smallest <= round_off * largest.max())
        return torch.nonzero(collapsed).reshape(-1).tolist()

    def as_dict(self) -> dict[str, Tensor]:
        """``{"weights", "locs", "covariances"}`` with full covariance matrices."""
        return {"weights": self.weights, "locs": self.locs, "covariances": self.covariances}

    def __repr__(self) -> str:
        return (f"MixtureParams(K={self.n_components}, D={self.n_features}, "
                f"covariance_type={self.covariance_type!r}, dtype={self.dtype})")


def _check_one_dtype(**values: Any) -> None:
    """``ParameterError`` when the floating tensors among ``values`` do not share one dtype.

    Only dtype attributes are read (no tensor work): cheap enough for every validated
    construction. Lists, numpy arrays and integer tensors carry no float dtype of their
    own and are converted to the parameters' dtype.
    """
    dtypes = {name: value.dtype for name, value in values.items()
              if isinstance(value, Tensor) and value.is_floating_point()}
    if len(set(dtypes.values())) <= 1:
        return
    listed = ", ".join(f"{name} {str(dtype).replace('torch.', '')}" for name, dtype in dtypes.items())
    target = dtypes.get("locs", next(iter(dtypes.values())))
    method = {torch.float64: "double", torch.float32: "float"}.get(target)
    odd = [name for name, dtype in dtypes.items() if dtype != target]
    cast = (" and ".join(f"{name}.{method}()" for name in odd) if method is not None
            else " and ".join(f"{name}.to({target})" for name in odd))
    raise ParameterError(
        f"MixtureParams got tensors of mixed dtypes ({listed}): they must share one dtype. "
        f"Convert them first, e.g. {cast} (to {str(target).replace('torch.', '')}, the dtype of "
        f"{'locs' if 'locs' in dtypes else next(iter(dtypes))}), or all of them with .to(torch.float64).")


def _as_float(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        tensor = value.detach().clone()
        return tensor if tensor.is_floating_point() else tensor.to(torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64).clone()
    except (TypeError, ValueError, RuntimeError):
        raise ParameterError(f"{name} must be a numeric array; got {type(value).__name__}.") from None


def _validate(weights: Tensor, locs: Tensor, native: Tensor, cov_type: CovarianceStructure):
    if locs.dim() != 2:
        raise ParameterError(f"locs must have shape (K, D); got {tuple(locs.shape)}.")
    K, D = locs.shape
    if K < 1:
        raise ParameterError("a mixture needs at least one component.")
    if tuple(weights.shape) != (K,):
        raise ParameterError(f"weights must have shape (K,) = ({K},) to match locs; got {tuple(weights.shape)}.")
    if not torch.isfinite(locs).all():
        raise ParameterError("locs contain NaN or inf.")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ParameterError(f"weights must be finite and non-negative; got {weights.tolist()}.")
    total = float(weights.sum())
    # Weights rounded in float32 (or printed with 8 digits) are accepted and renormalized.
    if abs(total - 1.0) > 1e-6:
        raise ParameterError(
            f"weights must sum to 1 (they lie on the simplex); they sum to {total:.12g}. "
            "Divide them by their sum."
        )
    weights = weights / weights.sum()
    native = cov_type.validate(native.to(dtype=locs.dtype, device=locs.device), K, D)
    return weights, locs, native
