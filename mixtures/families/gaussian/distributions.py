"""Log densities of many points under a few Gaussian components as one matrix product.

Under Pyro's parallel enumeration the observation site of the mixture is the
component distribution with batch shape ``(K, 1)`` (one component per
enumerated value) broadcast against the data ``(N, D)``. Evaluated term by term
that builds and differentiates ``(K, N, D)`` tensors (differences, triangular
solves, squares), ~20x the cost of an EM iteration. But every Gaussian log
density is linear in the features of the point,

    F(x) = [1; x - s; second-order terms of x - s]        (P rows, any shift s),

so all ``K × N`` of them are one matrix product ``C @ F`` with ``C`` ``(K, P)``
a small differentiable function of the means and the Cholesky factors (or
variances); autograd's backward is one more product ``G @ Fᵀ``, and ``F`` (data
only) needs no gradient. The same expansion is what EM's fused pass uses
(:mod:`mixtures.suffstats`).

:class:`FusedMultivariateNormal` and :class:`DiagonalNormal` are the component
distributions of :meth:`mixtures.covariance.CovarianceType.component_distribution`;
their ``log_prob`` takes this route when the value is a data matrix ``(N, D)``
and the parameters are constant along the data dimension (batch ``(..., 1)``:
enumeration, subsampled plates, ``compute_marginals``, ``infer_discrete``'s
enumerated pass, NUTS's enumerated potential) and falls back to the term-by-term
formula otherwise (sampled assignments, single points, predictive draws). Only
differentiable torch operations are used (``torch.jit.trace`` of
``JitTraceEnum_ELBO`` and NUTS's ``jit_compile`` work).

Accuracy: the shift is the batch's mean (exact math, any shift gives the same
densities), so the quadratic form loses the digits of ``eps · (|x - s|² + |μ - s|²) / σ²``,
as the M step's moments about a shift do. Features of the same data tensor are
kept between calls inside a fit (:func:`keeping_features`: the data of an optimization
loop do not change; keyed by the tensor's identity and version, dropped when it is freed
and when the fit ends; never while tracing).
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator

import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import constraints

from mixtures.core.switch import Switch

LOG_2PI = math.log(2.0 * math.pi)

#: the matrix-product route is taken only while P feature rows per point are at most this
#: many times the B·D entries per point of the term-by-term route (full covariance with
#: D > ~8K: the features (D + 1)(D + 2)/2 × N would outgrow the (B, N, D) tensors they replace)
MAX_FEATURE_RATIO = 4

_switch = Switch()


def enabled(flag: bool = True) -> contextlib.AbstractContextManager:
    """Turn the matrix-product ``log_prob`` on or off (off: always the term-by-term formula)."""
    return _switch.enabled(flag)


def is_enabled() -> bool:
    return bool(_switch)


# -- coefficients (shared with the covariance types' EM coefficients) -------------------------
def constant_terms(log_weights: Tensor, half_log_det: Tensor, white_locs: Tensor) -> Tensor:
    """``log π_k - ½ log det Σ_k - ½ D log 2π - ½ μ_kᵀ Σ_k⁻¹ μ_k`` ``(K,)``; ``white_locs`` ``(K, D)``."""
    D = int(white_locs.shape[-1])  # an int under torch.jit.trace too: D log 2π stays in float64
    return log_weights - half_log_det - 0.5 * D * LOG_2PI - 0.5 * white_locs.square().sum(-1)


def pair_coefficients(precision: Tensor) -> Tensor:
    """Coefficients ``(..., D(D+1)/2)`` of the pair features in ``-½ xᵀ P x``: ``-½ P_ii``, ``-P_ij`` (i < j)."""
    D = precision.shape[-1]
    rows, cols = torch.triu_indices(D, D, device=precision.device)
    factors = torch.where(rows == cols, -0.5, -1.0).to(precision.dtype)
    return factors * precision[..., rows, cols]


def inverse_tril(scale_tril: Tensor) -> Tensor:
    """Inverse ``W = L⁻¹`` of small lower-triangular factors ``(..., D, D)`` (cheap, D³ per factor).

    Differentiable with the closed-form backward ``∂L = -tril(Wᵀ ∂W Wᵀ)`` (two small products;
    ``solve_triangular``'s own backward solves again and costs ~10x more at D = 2, a large share
    of a gradient step of the fused MAP path).
    """
    if torch.is_grad_enabled() and scale_tril.requires_grad and not torch.jit.is_tracing():
        return _InverseTril.apply(scale_tril)
    return _solve_identity(scale_tril)


def _solve_identity(scale_tril: Tensor) -> Tensor:
    eye = torch.eye(scale_tril.shape[-1], dtype=scale_tril.dtype, device=scale_tril.device)
    return torch.linalg.solve_triangular(scale_tril, eye.expand_as(scale_tril), upper=False)


class _InverseTril(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scale_tril: Tensor) -> Tensor:
        whitening = _solve_identity(scale_tril)
        ctx.save_for_backward(whitening)
        return whitening

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (whitening,) = ctx.saved_tensors
        # d(L⁻¹) = -L⁻¹ dL L⁻¹, so ∂L = -(L⁻¹)ᵀ ∂W (L⁻¹)ᵀ restricted to the lower triangle
        transposed = whitening.transpose(-1, -2)
        return -(transposed @ grad @ transposed).tril()


def tril_coefficients(locs: Tensor, scale_tril: Tensor) -> Tensor:
    """``C`` ``(B, 1 + D + D(D+1)/2)`` with ``C @ F`` the log densities, pair features.

    ``locs`` ``(B, D)`` in the features' frame; ``scale_tril`` ``(B, D, D)`` or one ``(D, D)``
    factor shared by all ``B`` (tied).
    """
    B = locs.shape[0]
    whitening = inverse_tril(scale_tril)  # L⁻¹: the factor is inverted, never a covariance
    half_log_det = scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    if scale_tril.dim() == 2:
        white_locs = locs @ whitening.T  # L⁻¹ μ
        linear = white_locs @ whitening  # Σ⁻¹ μ
        pairs = pair_coefficients(whitening.T @ whitening).expand(B, -1)
    else:
        white_locs = (whitening @ locs.unsqueeze(-1)).squeeze(-1)
        linear = (whitening.transpose(-1, -2) @ white_locs.unsqueeze(-1)).squeeze(-1)
        pairs = pair_coefficients(whitening.transpose(-1, -2) @ whitening)
    constant = constant_terms(torch.zeros_like(locs[:, 0]), half_log_det, white_locs)
    return torch.cat([constant.unsqueeze(-1), linear, pairs], dim=-1)


def diagonal_coefficients(locs: Tensor, variances: Tensor) -> Tensor:
    """``C`` ``(B, 1 + D + V)`` for variances ``(B, V)``: ``V = D`` (square features) or
    ``V = 1`` (one variance for all coordinates; the squared-norm feature)."""
    D, V = int(locs.shape[-1]), int(variances.shape[-1])
    precision = variances.reciprocal()
    half_log_det = 0.5 * (D / V) * variances.log().sum(-1)
    maha_locs = (locs.square() * precision).sum(-1)
    constant = -half_log_det - 0.5 * D * LOG_2PI - 0.5 * maha_locs
    return torch.cat([constant.unsqueeze(-1), locs * precision, -0.5 * precision], dim=-1)


def categorical_log_weights(weights: Tensor) -> Tensor:
    """``log p(z = k)`` ``(K,)`` exactly as the program's ``Categorical(weights)`` computes it
    (normalized, clamped to ``[eps, 1 - eps]``, then the log), differentiable in ``weights``."""
    normalized = weights / weights.sum(-1, keepdim=True)
    eps = torch.finfo(normalized.dtype).eps
    return normalized.clamp(min=eps, max=1 - eps).log()


def log_joint_form(structure, values: dict[str, Tensor], shift: Tensor) -> tuple[Tensor, object, int]:
    """``(C (K, P), write_extra, M)`` with ``C @ F(x - shift)`` the program's log joint densities
    ``log p(z = k) + log N(x | μ_k, Σ_k)``, differentiable in the globals ``values`` (``"weights"``,
    ``"locs"`` and the ``structure``'s site): the map the fast MAP, SVI and NUTS paths chain
    through (:meth:`mixtures.core.family.Statistics.log_joint_form`)."""
    locs = values["locs"]
    D = locs.shape[-1]
    whitening, half_log_det = structure.whitener(values[structure.site], D)
    coefficients = structure.log_joint_coefficients(categorical_log_weights(values["weights"]), locs - shift,
                                                    whitening, half_log_det)
    return coefficients, structure.moment_feature_writer, structure.n_moment_features(D)


# -- features -------------------------------------------------------------------------------
#: "pairs": x_i x_j (i <= j, row-major upper triangle); "squares": x_d²; "norm": |x|²
FEATURE_KINDS = ("pairs", "squares", "norm")


def n_features(kind: str, D: int) -> int:
    """Rows ``P`` of the features of ``kind`` for ``D`` coordinates."""
    second = {"pairs": D * (D + 1) // 2, "squares": D, "norm": 1}[kind]
    return 1 + D + second


def build_features(value: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """``(shift (D,), F (P, N))`` of data ``value`` ``(N, D)`` about their mean (points contiguous).

    Written into one buffer (no per-row temporaries). ``F`` carries no gradient (it is data; a
    ``value`` that requires a gradient is not supported by the matrix-product route).
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURE_KINDS}.")
    value = value.detach()
    if torch.jit.is_tracing():
        return _traced_features(value, kind)
    N, D = value.shape
    shift = value.mean(0)
    F = value.new_empty(n_features(kind, D), N)
    F[0].fill_(1.0)
    xT = F[1:1 + D]
    torch.sub(value.T, shift.unsqueeze(-1), out=xT)
    if kind == "pairs":
        start = 1 + D
        for i in range(D):  # D row products over the long point axis
            torch.mul(xT[i:i + 1], xT[i:], out=F[start:start + D - i])
            start += D - i
    elif kind == "squares":
        torch.square(xT, out=F[1 + D:])
    else:
        torch.sum(xT.square(), 0, keepdim=True, out=F[1 + D:])
    return shift, F


def _traced_features(value: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """:func:`build_features` for ``torch.jit.trace``: the same rows, built out of place.

    The buffer route writes through ``out=`` views at offsets computed from the data's
    shape, which the tracer records as tensors: ``start += D - i`` became an in-place add
    on a constant of the graph, so every call of the traced function sliced other rows and
    the product read uninitialized memory (NUTS with ``jit_compile=True``: every draw
    divergent). Here every row is a fresh tensor and the shapes are Python integers.
    """
    D = int(value.shape[1])
    shift = value.mean(0)
    xT = (value - shift).T
    rows = [torch.ones_like(xT[:1]), xT]
    if kind == "pairs":
        rows += [xT[i:i + 1] * xT[i:] for i in range(D)]
    elif kind == "squares":
        rows.append(xT.square())
    else:
        rows.append(xT.square().sum(0, keepdim=True))
    return shift, torch.cat(rows, 0)


#: kind -> (weak reference to the data tensor, its version, shift, features); one entry per kind
_cache: dict[str, tuple[weakref.ref, int, Tensor, Tensor]] = {}
#: nesting depth of :func:`keeping_features` (features are kept only inside a fit)
_keeping = 0

#: features larger than this are rebuilt at every call instead of kept (bytes)
MAX_CACHED_BYTES = 1 << 30


def features(value: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """:func:`build_features`, kept between calls on the same unchanged tensor.

    Only inside :func:`keeping_features` (a fit's loop): one entry per kind, the features of
    the most recent data tensor, held until that tensor is freed, another tensor takes its
    place or the outermost :func:`keeping_features` ends (at most
    :data:`MAX_CACHED_BYTES`; larger features are rebuilt at every call). Never kept while
    ``torch.jit`` traces: the data are then an input of the traced graph.
    """
    if torch.jit.is_tracing() or not _keeping:
        return build_features(value, kind)
    entry = _cache.get(kind)
    if entry is not None and entry[0]() is value and entry[1] == value._version:
        return entry[2], entry[3]
    shift, F = build_features(value, kind)
    if F.numel() * F.element_size() > MAX_CACHED_BYTES:
        return shift, F

    def drop(ref: weakref.ref, kind: str = kind) -> None:
        if _cache.get(kind, (None,))[0] is ref:
            del _cache[kind]

    _cache[kind] = (weakref.ref(value, drop), value._version, shift, F)
    return shift, F


def clear_cache() -> None:
    """Forget the features kept between calls."""
    _cache.clear()


@contextlib.contextmanager
def keeping_features() -> Iterator[None]:
    """Keep data features between ``log_prob`` calls for the duration of one fit.

    An optimization or sampling loop evaluates the same data tensor thousands of times;
    outside such a loop nothing is kept, so no fit leaves memory (or state) behind.
    """
    global _keeping
    _keeping += 1
    try:
        yield
    finally:
        _keeping -= 1
        if not _keeping:
            _cache.clear()


# -- shape rules ----------------------------------------------------------------------------
def _fused_batch(value: Tensor, batch_shape: torch.Size, loc: Tensor,
                 matrix_batches: tuple[torch.Size, ...], kind: str) -> torch.Size | None:
    """Batch shape ``(..., 1)`` of the parameters when ``log_prob(value)`` may take the
    matrix-product route, else None.

    ``value`` must be a data matrix ``(N, D)`` with N >= 2 of the parameters' dtype and device,
    without gradient (the features are data); the parameters (``loc`` ``(..., 1, D)`` and the
    covariance batches) must be constant along the data dimension; the distribution's batch
    must end in N (or 1); and the ``P`` features per point at most :data:`MAX_FEATURE_RATIO`
    times the ``B·D`` entries per point they replace.
    """
    if not _switch or value.dim() != 2 or loc.dim() < 2 or value.dtype != loc.dtype or value.requires_grad:
        return None
    N, D = value.shape
    if N < 2 or loc.shape[-1] != D or loc.shape[-2] != 1 or value.device != loc.device:
        return None
    if any(len(shape) and shape[-1] != 1 for shape in matrix_batches):
        return None
    if len(batch_shape) and batch_shape[-1] not in (1, N):
        return None
    try:
        batch = torch.broadcast_shapes(loc.shape[:-1], *matrix_batches)
    except RuntimeError:
        return None
    if n_features(kind, D) > MAX_FEATURE_RATIO * max(1, math.prod(batch)) * D:
        return None
    return batch


def _finish(log_prob: Tensor, batch: torch.Size, N: int, batch_shape: torch.Size) -> Tensor:
    """``(B, N)`` products → the batch ``batch[:-1] + (N,)`` broadcast with the distribution's."""
    log_prob = log_prob.reshape(batch[:-1] + (N,))
    return log_prob.expand(torch.broadcast_shapes(log_prob.shape, batch_shape))


# -- distributions --------------------------------------------------------------------------
class FusedMultivariateNormal(pdist.MultivariateNormal):
    """Pyro's ``MultivariateNormal`` (``scale_tril`` form) whose ``log_prob`` of a data matrix
    under ``(..., 1)``-batched parameters is one matrix product (module docstring).

    Construct it as the parent: ``FusedMultivariateNormal(loc, scale_tril=L)``. ``expand``
    keeps the unexpanded ``loc`` so that ``log_prob`` sees the parameters' own shape.
    """

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new._base_loc = self._base_loc
        return new

    @property
    def _base_loc(self) -> Tensor:
        """``loc`` as given to the constructor (before any ``expand``)."""
        return self.__dict__.get("_unexpanded_loc", self.loc)

    @_base_loc.setter
    def _base_loc(self, value: Tensor) -> None:
        self.__dict__["_unexpanded_loc"] = value

    def log_prob(self, value: Tensor) -> Tensor:
        loc, tril = self._base_loc, self._unbroadcasted_scale_tril
        batch = _fused_batch(value, self.batch_shape, loc,
                             (tril.shape[:-2],) if tril.dim() > 2 else (), "pairs")
        if batch is None:
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        D = value.shape[-1]
        shift, F = features(value, "pairs")
        locs = (loc.expand(batch + (D,)) - shift).reshape(-1, D)
        if tril.dim() > 2:
            tril = tril.expand(batch + (D, D)).reshape(-1, D, D)
        return _finish(tril_coefficients(locs, tril) @ F, batch, value.shape[0], self.batch_shape)


class DiagonalNormal(pdist.TorchDistribution):
    """Normal with diagonal covariance, event shape ``(D,)``, that stays small under ``expand``.

    ``Normal(loc, scale).to_event(1)`` expanded by the data plate to ``(K, N, D)``
    evaluates ``log σ`` on the whole expansion; here the parameters keep their
    own ``(K, 1)`` shape. ``diagonal`` (the variances) has the shape of ``loc`` or a last
    dimension of 1 (one variance for every coordinate: spherical). ``log_prob`` of a data
    matrix under ``(..., 1)``-batched parameters is one matrix product (module docstring),
    otherwise ``(x - μ)² / σ²`` summed over coordinates.
    """

    arg_constraints = {"loc": constraints.real_vector,
                       "diagonal": constraints.independent(constraints.positive, 1)}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, diagonal: Tensor, batch_shape: torch.Size | None = None,
                 validate_args: bool | None = None):
        self.loc, self.diagonal = loc, diagonal
        shape = torch.broadcast_shapes(loc.shape, diagonal.shape)
        super().__init__(torch.Size(batch_shape) if batch_shape is not None else shape[:-1], shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return DiagonalNormal(self.loc, self.diagonal, torch.Size(batch_shape))

    @property
    def mean(self) -> Tensor:
        return self.loc.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        return self.diagonal.expand(self.batch_shape + self.event_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.diagonal.sqrt() * noise

    def log_prob(self, value: Tensor) -> Tensor:
        D = int(self.event_shape[0])
        V = int(self.diagonal.shape[-1])
        kind = "norm" if V == 1 else "squares"
        batch = _fused_batch(value, self.batch_shape, self.loc, (self.diagonal.shape[:-1],), kind)
        if batch is None:
            maha = ((value - self.loc).square() / self.diagonal).sum(-1)
            log_det = self.diagonal.log().sum(-1) * (D / V)
            log_prob = -0.5 * (maha + log_det + D * LOG_2PI)
            return log_prob.expand(torch.broadcast_shapes(log_prob.shape, self.batch_shape))
        if self._validate_args:
            self._validate_sample(value)
        shift, F = features(value, kind)
        locs = (self.loc.expand(batch + (D,)) - shift).reshape(-1, D)
        variances = self.diagonal.expand(batch + (V,)).reshape(-1, V)
        return _finish(diagonal_coefficients(locs, variances) @ F, batch, value.shape[0], self.batch_shape)
