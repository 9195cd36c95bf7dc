"""``MixtureParams``: the immutable container of a Gaussian mixture's parameters.

Every routine reads and returns this one container (in the spirit of dynamax's
shared parameter containers). It stores each covariance type in its native form
(see :mod:`mixtures.covariance`) and exposes full matrices for interoperability.
All densities are computed in log space with Cholesky factors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from mixtures.covariance import CovarianceType, get_covariance_type
from mixtures.errors import ParameterError
from mixtures.validation import as_data, make_generator

#: points per chunk are chosen so that one chunk's (n, K, D) work array stays near this many
#: elements: small enough to stay in cache-friendly buffers, large enough to amortize overhead.
CHUNK_ELEMENTS = 1 << 17


def chunk_size_for(n_components: int, n_features: int) -> int:
    """Points per chunk so that ``(chunk, K, D)`` temporaries stay a few MiB."""
    return max(256, CHUNK_ELEMENTS // max(1, n_components * n_features))


def iter_chunks(n: int, chunk: int) -> Iterator[slice]:
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


class MixtureParams:
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

    weights: Tensor
    locs: Tensor
    native: Tensor
    cov_type: CovarianceType

    def __init__(self, weights: Any, locs: Any, covariances: Any, covariance_type: str = "full"):
        cov_type = get_covariance_type(covariance_type)
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
        native = _native_from_any(cov_type, cov, K, D)
        self._init(weights_t, locs_t, native, cov_type, validate=True)

    @classmethod
    def from_native(cls, weights: Tensor, locs: Tensor, native: Tensor,
                    covariance_type: str | CovarianceType = "full", validate: bool = True
                    ) -> MixtureParams:
        """Build from the native covariance tensor (Cholesky factors or variances).

        Args:
            weights: ``(K,)``. locs: ``(K, D)``. native: see :mod:`mixtures.covariance`.
            validate: check shapes, one floating dtype for the three tensors (a
                ``ParameterError`` for mixed dtypes, as the constructor), simplex and
                positivity. Routines that produce parameters by construction pass
                ``False``: nothing is checked then, not even the dtypes.
        """
        self = cls.__new__(cls)
        self._init(weights, locs, native, get_covariance_type(covariance_type), validate)
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
    def n_components(self) -> int:
        return self.locs.shape[0]

    @property
    def n_features(self) -> int:
        return self.locs.shape[1]

    @property
    def covariance_type(self) -> str:
        return self.cov_type.name

    @property
    def dtype(self) -> torch.dtype:
        return self.locs.dtype

    @property
    def device(self) -> torch.device:
        return self.locs.device

    # -- covariance views -----------------------------------------------------------
    @property
    def covariances(self) -> Tensor:
        """Full covariance matrices ``(K, D, D)``, whatever the covariance type."""
        return self.cov_type.to_full(self.native, self.n_components, self.n_features)

    @property
    def scale_tril(self) -> Tensor:
        """Lower Cholesky factors of the covariances ``(K, D, D)``."""
        if self.cov_type.site == "scale_tril":
            return self.native.expand(self.n_components, -1, -1) if self.native.dim() == 2 \
                else self.native
        return torch.diag_embed(self.covariances.diagonal(dim1=-2, dim2=-1).sqrt())

    @property
    def precisions_cholesky(self) -> Tensor:
        """scikit-learn's ``precisions_cholesky_`` in its per-type layout."""
        return self.cov_type.precisions_cholesky(self.native)

    def whitener(self) -> tuple[Tensor, Tensor]:
        """Cached ``(whitening, half_log_det)`` factors (see ``CovarianceType.whitener``)."""
        if self._whitener is None:
            object.__setattr__(self, "_whitener", self.cov_type.whitener(self.native, self.n_features))
        return self._whitener

    # -- densities ------------------------------------------------------------------
    def component_log_prob(self, X: Any) -> Tensor:
        """``log N(x_n | μ_k, Σ_k)`` for every point and component: ``(N, K)``."""
        X = self._data(X)
        whitening, half_log_det = self.whitener()
        chunk = chunk_size_for(self.n_components, self.n_features)
        return torch.cat([
            self.cov_type.component_log_prob(X[rows], self.locs, whitening, half_log_det)
            for rows in iter_chunks(X.shape[0], chunk)
        ]) if X.shape[0] else X.new_zeros(0, self.n_components)

    def joint_log_prob(self, X: Any) -> Tensor:
        """``log π_k + log N(x_n | μ_k, Σ_k)``: ``(N, K)``."""
        return self.component_log_prob(X) + self.weights.log()

    def log_prob(self, X: Any) -> Tensor:
        """Mixture log density ``log p(x_n)`` of every point: ``(N,)``."""
        return torch.logsumexp(self.joint_log_prob(X), dim=-1)

    def responsibilities(self, X: Any) -> Tensor:
        """Posterior membership probabilities ``p(z_n = k | x_n)``: ``(N, K)``."""
        joint = self.joint_log_prob(X)
        return (joint - torch.logsumexp(joint, -1, keepdim=True)).exp()

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
        weights = self.weights.to(dtype=dtype, device=device)
        return MixtureParams.from_native(
            weights / weights.sum(), self.locs.to(dtype=dtype, device=device),
            self.native.to(dtype=dtype, device=device), self.cov_type, validate=False)

    def as_dict(self) -> dict[str, Tensor]:
        """``{"weights", "locs", "covariances"}`` with full covariance matrices."""
        return {"weights": self.weights, "locs": self.locs, "covariances": self.covariances}

    def _data(self, X: Any) -> Tensor:
        return as_data(X, dtype=self.dtype, device=self.device, n_features=self.n_features, min_points=0)

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


def _native_from_any(cov_type: CovarianceType, cov: Tensor, K: int, D: int) -> Tensor:
    """Native tensor from full matrices, or variances taken as they are."""
    native_shape = cov_type.native_shape(K, D)
    if D == 1 and tuple(cov.shape) == (K,) and cov_type.name != "spherical":
        cov = cov.reshape(K, 1, 1)  # 1-D data: one variance per component, any type
    if cov_type.site == "variances" and tuple(cov.shape) == native_shape:
        return cov
    full_shapes = [(K, D, D)] + ([(D, D)] if cov_type.name == "tied" else [])
    if tuple(cov.shape) in full_shapes:
        return cov_type.from_full(cov)
    accepted = " or ".join(str(shape) for shape in full_shapes) + " (full matrices)"
    if cov_type.site == "variances":
        accepted += f" or {native_shape} (variances)"
    raise ParameterError(
        f"covariances for covariance_type={cov_type.name!r} with K={K}, D={D} must have shape "
        f"{accepted}; got {tuple(cov.shape)}."
    )


def _validate(weights: Tensor, locs: Tensor, native: Tensor, cov_type: CovarianceType):
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
