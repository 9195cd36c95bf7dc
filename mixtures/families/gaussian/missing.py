"""Missing values in a Gaussian mixture: marginal densities, expected statistics, conditional means.

NaN entries of ``X`` ``(N, D)`` are missing at random (:mod:`mixtures.core.missing`). A point
with observed coordinates ``o`` and missing ones ``m`` has, under component ``k``,

    log p(x_o | k) = log N(x_o | μ_ko, Σ_koo)                         (the observed block's marginal)
    x_m | x_o, k  ~ N(x̂_km, C_km),  x̂_km = μ_km + Σ_kmo Σ_koo⁻¹ (x_o - μ_ko),
                                     C_km = Σ_kmm - Σ_kmo Σ_koo⁻¹ Σ_kom,

so EM's E step (Ghahramani & Jordan 1994) takes responsibilities from the observed blocks and
the *expected* sufficient statistics: ``Σ_n r_nk x̃_nk`` and ``Σ_n r_nk (x̃_nk x̃_nkᵀ + C_nk)``,
where ``x̃_nk`` is ``x_n`` with its missing coordinates filled by ``x̂_km`` and ``C_nk`` is ``C_km``
in the missing block (zeros elsewhere). Missing entries are not skipped in the sums: their
conditional expectations enter them. The M step is then every structure's own, unchanged (the
full expected scatter reduced to the structure's statistic, :func:`statistic_from_scatter`).

Points are grouped by missingness pattern (the unique rows of the NaN mask): each pattern
costs one Cholesky factorization of the observed blocks ``Σ_koo = L_k Lₖᵀ`` (K of them) and one
batched pass over its points; ``Σ_koo⁻¹`` is never formed (``L⁻¹(x_o - μ_o)`` and ``L⁻¹ Σ_om`` are
triangular solves). The pass's entropy is ``H(q(z)) + Σ_n Σ_k r_nk H(N(x̂_km, C_km))``, the
entropy of the E step's whole ``q(z, x_m)``, so EM's recorded ELBO (``E_q[log p(X, x_m, Z)]``
from the statistics, plus it) equals the observed-data log-likelihood right after an E step.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import constraints

from mixtures.core.chunks import chunk_size_for
from mixtures.core.summary import Summary
from mixtures.core.validation import make_generator
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.distributions import LOG_2PI
from mixtures.kernels.fused_pass import fused_pass

#: complete rows go through the fused pass this many at a time (a gathered copy of at most this many rows)
COMPLETE_BLOCK = 1 << 16


class Pattern(NamedTuple):
    """One missingness pattern: the observed coordinates ``(D,)`` bool and its rows ``(n,)``."""

    observed: Tensor
    rows: Tensor


class Blocks(NamedTuple):
    """A pattern's pieces under every component (``o``: observed, ``m``: missing coordinates)."""

    obs: Tensor  # (D_o,) indices
    mis: Tensor  # (D_m,) indices
    factor: Tensor  # (K, D_o, D_o) lower Cholesky factor L of Σ_oo
    half_log_det: Tensor  # (K,) ½ log det Σ_oo
    solved: Tensor  # (K, D_o, D_m) L⁻¹ Σ_om
    conditional: Tensor  # (K, D_m, D_m) C = Σ_mm - Σ_mo Σ_oo⁻¹ Σ_om


#: the most recent tensors' patterns, newest last (a labelled fit's passes alternate between the
#: unlabelled points and the labelled ones (and their chunks): the unlabelled points' patterns stay)
_patterns_cache: list[tuple[weakref.ref, int, list[Pattern]]] = []
_CACHED = 4


def patterns(X: Tensor) -> list[Pattern]:
    """The missingness patterns of ``X`` ``(N, D)``: unique rows of its observed mask, each with its
    rows in ascending order. Kept for the most recent tensors (EM's passes see the same data)."""
    for index, entry in enumerate(_patterns_cache):
        if entry[0]() is X and entry[1] == X._version:
            _patterns_cache.append(_patterns_cache.pop(index))  # the most recently used last
            return entry[2]
    observed = ~torch.isnan(X)
    unique, inverse = torch.unique(observed, dim=0, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=unique.shape[0]).tolist()
    found = [Pattern(mask, rows) for mask, rows in zip(unique, torch.split(order, counts))]
    _patterns_cache[:] = [*_patterns_cache[-(_CACHED - 1):], (weakref.ref(X), X._version, found)]
    return found


def blocks(locs: Tensor, covariances: Tensor, observed: Tensor) -> Blocks:
    """The pattern's factors (:class:`Blocks`) for ``covariances`` ``(K, D, D)``; differentiable."""
    obs = torch.nonzero(observed).reshape(-1)
    mis = torch.nonzero(~observed).reshape(-1)
    rows_o = covariances.index_select(-2, obs)
    factor = torch.linalg.cholesky(rows_o.index_select(-1, obs))
    solved = torch.linalg.solve_triangular(factor, rows_o.index_select(-1, mis), upper=False)
    sigma_mm = covariances.index_select(-2, mis).index_select(-1, mis)
    conditional = sigma_mm - solved.transpose(-1, -2) @ solved
    half_log_det = factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return Blocks(obs, mis, factor, half_log_det, solved, 0.5 * (conditional + conditional.transpose(-1, -2)))


def observed_terms(x: Tensor, locs: Tensor, piece: Blocks) -> tuple[Tensor, Tensor]:
    """``(log p(x_o | k) (n, K), x̂_km (n, K, D_m))`` for the points ``x`` ``(n, D)`` of one pattern."""
    diff = x.index_select(-1, piece.obs).unsqueeze(0) - locs.index_select(-1, piece.obs).unsqueeze(1)  # (K, n, D_o)
    white = torch.linalg.solve_triangular(piece.factor, diff.transpose(-1, -2), upper=False)  # (K, D_o, n)
    D_o = piece.obs.numel()
    log_prob = -0.5 * (D_o * LOG_2PI + white.square().sum(-2)) - piece.half_log_det.unsqueeze(-1)  # (K, n)
    means = locs.index_select(-1, piece.mis).unsqueeze(-1) + piece.solved.transpose(-1, -2) @ white  # (K, D_m, n)
    return log_prob.T, means.permute(2, 0, 1)


def observed_log_prob(X: Tensor, locs: Tensor, covariances: Tensor) -> Tensor:
    """``log N(x_no | μ_ko, Σ_koo)`` ``(N, K)`` of data with NaN entries; differentiable in ``locs``
    ``(K, D)`` and ``covariances`` ``(K, D, D)`` (the Pyro program's observation site)."""
    K, D = locs.shape
    out = []
    rows_of = []
    for pattern in patterns(X):
        piece = blocks(locs, covariances, pattern.observed)
        for part in torch.split(pattern.rows, chunk_size_for(K, D)):
            out.append(observed_terms(X[part], locs, piece)[0])
            rows_of.append(part)
    table = torch.cat(out)
    return table[torch.argsort(torch.cat(rows_of))]


def statistic_from_scatter(structure: CovarianceStructure, scatter: Tensor) -> Tensor:
    """The structure's second-moment statistic from per-component scatter ``Σ_n r_nk E[x xᵀ]``
    ``(K, D, D)``: itself, its sum over components (shared), its diagonals, or their sum."""
    if structure.statistic == "matrix":
        return scatter.sum(0) if structure.shared else scatter
    diagonal = scatter.diagonal(dim1=-2, dim2=-1)
    return diagonal.sum(0) if structure.shared else diagonal.clone()


class _Sums:
    """Running expected statistics of one E step (module docstring)."""

    def __init__(self, X: Tensor, K: int, dtype: torch.dtype, hard: bool, likelihood_offsets: Tensor | None = None):
        D = X.shape[1]
        self.likelihood_offsets = likelihood_offsets
        self.nk, self.sx = X.new_zeros(K, dtype=dtype), X.new_zeros(K, D, dtype=dtype)
        self.sxx = X.new_zeros(K, D, D, dtype=dtype)
        self.log_likelihood, self.entropy = X.new_zeros((), dtype=dtype), X.new_zeros((), dtype=dtype)
        self.labels = torch.empty(X.shape[0], dtype=torch.long, device=X.device) if hard else None
        self.worst_value, self.worst_point = float("inf"), None
        self.statistic = None  # the structure's statistic of complete rows (fused pass)

    def add_complete(self, X: Tensor, rows: Tensor, params, shift: Tensor, log_weights: Tensor,
                     sample_weight: Tensor | None = None) -> None:
        """Add the rows of ``X`` that miss nothing by the fused pass of complete data, in blocks
        (:func:`mixtures.kernels.fused_pass.fused_pass`; no copy of them all at once), each point's
        terms weighted by ``sample_weight`` ``(N,)`` (all of ``X``'s weights)."""
        structure, D = params.cov_type, params.n_features
        whitening, half_log_det = params.whitener()
        locs = params.locs - shift
        coefficients = structure.log_joint_coefficients(log_weights, locs, whitening, half_log_det)
        for block in torch.split(rows, COMPLETE_BLOCK):
            out = fused_pass(X[block], coefficients, shift, structure.moment_feature_writer,
                             structure.n_moment_features(D), hard=self.labels is not None,
                             accumulate_dtype=self.nk.dtype, likelihood_offsets=self.likelihood_offsets,
                             sample_weight=None if sample_weight is None else sample_weight[block])
            self.nk += out.sums[:, 0]
            self.sx += out.sums[:, 1:1 + D]
            moment = structure.moment_from_features(out.sums[:, 1 + D:], D)
            self.statistic = moment if self.statistic is None else self.statistic + moment
            self.log_likelihood += out.log_likelihood
            self.entropy += out.entropy
            if self.labels is not None:
                self.labels[block] = out.labels
            point = out.worst_point
            if point is None:  # every row of the block has weight 0
                continue
            joint = structure.component_log_prob(point.unsqueeze(0) - shift, locs, whitening, half_log_det)
            value = float(torch.logsumexp(joint + log_weights + (0 if self.likelihood_offsets is None
                                                                 else self.likelihood_offsets), -1))
            if value < self.worst_value:
                self.worst_value, self.worst_point = value, point

    def statistic_of(self, structure: CovarianceStructure) -> Tensor:
        """The structure's second-moment statistic of everything added."""
        statistic = statistic_from_scatter(structure, self.sxx)
        return statistic if self.statistic is None else statistic + self.statistic

    def add(self, x: Tensor, rows: Tensor, joint: Tensor, means: Tensor, piece: Blocks, shift: Tensor,
            conditional_entropy: Tensor, weights: Tensor | None = None) -> None:
        """Add the points ``x`` ``(n, D)`` (``rows`` of X) with log joints ``joint`` ``(n, K)``,
        conditional means ``means`` ``(n, K, D_m)`` and weights ``weights`` ``(n,)`` (or None)."""
        peak = joint.amax(-1, keepdim=True)
        relative = (joint - peak).exp_()  # one exp for the normalizer and the responsibilities
        normalizer = relative.sum(-1, keepdim=True)
        total = (peak + normalizer.log()).squeeze(-1)  # (n,) log p(x_o), or VB's normalizer
        if self.labels is not None:
            labels = joint.argmax(-1)
            resp = torch.nn.functional.one_hot(labels, joint.shape[-1]).to(joint.dtype)
            self.labels[rows] = labels
        else:
            resp = relative.div_(normalizer)
            self.entropy -= _weighted(torch.special.xlogy(resp, resp).sum(-1), weights).sum().to(self.entropy.dtype)
        if self.likelihood_offsets is not None:  # the plug-in mixture's log p(x_o)
            total = torch.logsumexp(joint + self.likelihood_offsets, -1)
        self.log_likelihood += _weighted(total, weights).sum().to(self.log_likelihood.dtype)
        self.add_at(x, resp if weights is None else resp * weights[:, None], means, piece, shift, conditional_entropy)
        candidates = total if weights is None else total.masked_fill(weights == 0, float("inf"))
        lowest = int(candidates.argmin())
        if float(candidates[lowest]) < self.worst_value:  # re-seeding point: its mixture imputation
            self.worst_value = float(candidates[lowest])
            filled = x[lowest].expand(resp.shape[-1], -1).clone()
            filled[:, piece.mis] = means[lowest]
            self.worst_point = (resp[lowest].unsqueeze(-1) * filled).sum(0)

    def add_at(self, x: Tensor, resp: Tensor, means: Tensor, piece: Blocks, shift: Tensor,
               conditional_entropy: Tensor) -> None:
        """Add the expected statistics of the points ``x`` ``(n, D)`` at (weighted) responsibilities
        ``resp`` ``(n, K)``, with the entropy of their missing coordinates' conditionals."""
        filled = x.unsqueeze(1).expand(-1, resp.shape[-1], -1).clone()  # (n, K, D)
        filled[..., piece.mis] = means
        centred = (filled - shift).transpose(0, 1)  # (K, n, D)
        mass = resp.sum(0)
        weighted = centred * resp.T.unsqueeze(-1)
        mis = piece.mis
        scatter = weighted.transpose(-1, -2) @ centred  # (K, D, D)
        scatter[:, mis.unsqueeze(-1), mis] += mass[:, None, None] * piece.conditional
        self.nk += mass.to(self.nk.dtype)
        self.sx += weighted.sum(1).to(self.sx.dtype)
        self.sxx += scatter.to(self.sxx.dtype)
        self.entropy += (mass * conditional_entropy).sum().to(self.entropy.dtype)


def _weighted(values: Tensor, weights: Tensor | None) -> Tensor:
    """``w_n v_n`` ``(n,)`` (``v`` without weights), exactly 0 at zero weights (a dropped row)."""
    return values if weights is None else (values * weights).masked_fill_(weights == 0, 0.0)


def e_step(X: Tensor, params, shift: Tensor, hard: bool = False, chunk_size: int | None = None,
           accumulate_dtype: torch.dtype | None = None, log_weights: Tensor | None = None,
           likelihood_offsets: Tensor | None = None, sample_weight: Tensor | None = None) -> Summary:
    """EM's pass over data with NaN entries (module docstring): the summary the fused pass gives
    complete data, with expected statistics, the observed-data log-likelihood and ``q``'s entropy.

    Args:
        X: ``(N, D)`` in memory, NaN marking missing entries (no row entirely missing).
        params: ``MixtureParams`` of the E step.
        shift: ``(D,)`` centre of the moments.
        hard: one-hot responsibilities (classification EM); the missing coordinates still take
            their conditional distribution under the assigned component.
        chunk_size: points per batch within a pattern.
        accumulate_dtype: dtype of the sums (default: the data's).
        log_weights: ``(K,)`` constants replacing ``log π_k`` in the responsibilities (VB's
            ``E[log π_k] + ...``, :func:`mixtures.families.gaussian.variational.expected_log_constants`).
        likelihood_offsets: ``(K,)`` added to the log joints for the log-likelihood only (VB: back to
            the plug-in mixture's ``log π̄_k``).
        sample_weight: ``(N,)`` point weights (:mod:`mixtures.core.weights`): each point's
            responsibilities, log-likelihood and entropy terms count ``w_n`` times (a row repeated).
    """
    K, D = params.n_components, params.n_features
    structure = params.cov_type
    covariances = params.covariances
    log_weights = params.weights.log() if log_weights is None else log_weights
    sums = _Sums(X, K, accumulate_dtype or X.dtype, hard, likelihood_offsets)
    chunk = chunk_size or chunk_size_for(K, D)
    for pattern in patterns(X):
        if bool(pattern.observed.all()):
            sums.add_complete(X, pattern.rows, params, shift, log_weights, sample_weight)
            continue
        piece = blocks(params.locs, covariances, pattern.observed)
        conditional_entropy = _conditional_entropy(piece, K, covariances)
        for part in torch.split(pattern.rows, chunk):
            x = X[part]
            log_prob, means = observed_terms(x, params.locs, piece)
            sums.add(x, part, log_prob + log_weights, means, piece, shift, conditional_entropy,
                     None if sample_weight is None else sample_weight[part])
    return Summary(sums.nk, {"sx": sums.sx, "sxx": sums.statistic_of(structure)},
                   shift.to(sums.nk.dtype), X.shape[0], sums.log_likelihood, sums.entropy, sums.labels,
                   sums.worst_point)


def summarize_at(X: Tensor, params, resp: Tensor, shift: Tensor) -> Summary:
    """Expected statistics of ``X`` ``(n, D)`` (NaN entries) at given responsibilities ``resp`` ``(n, K)``
    (e.g. labelled points' one-hot rows, times their weights): the missing coordinates take their
    conditional under each component at ``params``. ``entropy`` holds only ``Σ_n Σ_k r_nk H(N(x̂_km,
    C_km))``, the missing coordinates' part of ``q`` (the assignments' is the caller's); the
    log-likelihood is NaN (none was computed)."""
    K, D = params.n_components, params.n_features
    sums = _Sums(X, K, X.dtype, False)
    covariances = params.covariances
    for pattern in patterns(X):
        piece = blocks(params.locs, covariances, pattern.observed)
        conditional_entropy = _conditional_entropy(piece, K, covariances)
        for part in torch.split(pattern.rows, chunk_size_for(K, D)):
            means = observed_terms(X[part], params.locs, piece)[1]
            sums.add_at(X[part], resp[part], means, piece, shift, conditional_entropy)
    return Summary(sums.nk, {"sx": sums.sx, "sxx": sums.statistic_of(params.cov_type)}, shift.to(sums.nk.dtype),
                   X.shape[0], X.new_tensor(float("nan")), sums.entropy)


def _conditional_entropy(piece: Blocks, K: int, covariances: Tensor) -> Tensor:
    """``H(N(x̂_km, C_km))`` ``(K,)`` of a pattern's missing coordinates (0 when none are missing)."""
    D_m = piece.mis.numel()
    if not D_m:
        return covariances.new_zeros(K)
    half_log_det = torch.linalg.cholesky(piece.conditional).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * D_m * (1.0 + LOG_2PI) + half_log_det


def impute(params, X: Tensor, draws: int | None = None, seed: int | None = 0) -> Tensor:
    """``X`` ``(N, D)`` with its NaN entries replaced by conditional means under the mixture,
    ``Σ_k p(k | x_o) x̂_km`` (``draws=None``), or ``draws`` samples of them ``(draws, N, D)``
    from ``p(x_m | x_o) = Σ_k p(k | x_o) N(x̂_km, C_km)`` (observed entries kept as they are)."""
    K = params.n_components
    generator = None if draws is None else make_generator(seed)
    out = X.clone() if draws is None else X.unsqueeze(0).repeat(draws, 1, 1)
    covariances, log_weights = params.covariances, params.weights.log()
    for pattern in patterns(X):
        if bool(pattern.observed.all()):
            continue
        piece = blocks(params.locs, covariances, pattern.observed)
        mis = piece.mis
        for part in torch.split(pattern.rows, chunk_size_for(K, params.n_features)):
            log_prob, means = observed_terms(X[part], params.locs, piece)
            resp = torch.softmax(log_prob + log_weights, -1)  # (n, K)
            if draws is None:
                out[part.unsqueeze(-1), mis] = (resp.unsqueeze(-1) * means).sum(1)
                continue
            out[:, part.unsqueeze(-1), mis] = _draw(resp, means, piece.conditional, draws, generator)
    return out


def _draw(resp: Tensor, means: Tensor, conditional: Tensor, draws: int, generator: torch.Generator) -> Tensor:
    """``draws`` samples ``(draws, n, D_m)`` of the conditional mixture of one pattern's points."""
    n, K, D_m = means.shape
    labels = torch.multinomial(resp.cpu().double(), draws, replacement=True, generator=generator).T  # (draws, n)
    labels = labels.to(means.device)
    noise = torch.randn(draws, n, D_m, generator=generator, dtype=torch.float64).to(means)
    factor = torch.linalg.cholesky(conditional)  # (K, D_m, D_m)
    picked = means[torch.arange(n, device=means.device), labels]  # (draws, n, D_m)
    return picked + (factor[labels] @ noise.unsqueeze(-1)).squeeze(-1)


class ObservedBlockNormal(pdist.TorchDistribution):
    """The program's component distribution on data with NaN entries: ``log_prob`` of a data matrix
    ``(N, D)`` is each point's observed-block density under the component ``index`` picks (batch
    ``index.shape`` broadcast with the data plate); anything else is the wrapped ``base``'s."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, base: pdist.TorchDistribution, locs: Tensor, covariances: Tensor, index: Tensor,
                 batch_shape: torch.Size | None = None):
        self.base, self.locs, self.covariances, self.index = base, locs, covariances, index
        super().__init__(base.batch_shape if batch_shape is None else torch.Size(batch_shape), base.event_shape,
                         validate_args=False)

    def expand(self, batch_shape, _instance=None):
        return ObservedBlockNormal(self.base.expand(batch_shape), self.locs, self.covariances, self.index,
                                   batch_shape)

    def sample(self, sample_shape=()):
        return self.base.sample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if value.dim() != 2 or not bool(torch.isnan(value).any()):
            return self.base.log_prob(value)
        table = observed_log_prob(value, self.locs, self.covariances)  # (N, K)
        points = torch.arange(value.shape[0], device=value.device)
        log_prob = table[points, self.index]  # index (..., 1) or (..., N) against (N,)
        return log_prob.expand(torch.broadcast_shapes(log_prob.shape, self.batch_shape))
