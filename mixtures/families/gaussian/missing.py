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

Points are grouped by missingness pattern, and the patterns by their number of observed coordinates
(:mod:`mixtures.families.gaussian.pattern_groups`): each group costs one batched Cholesky factorization
of every pattern's observed blocks ``Σ_koo = L L ᵀ`` ``(P, K, d_o, d_o)`` and one batched pass over its
points; ``Σ_koo⁻¹`` is never formed (``L⁻¹(x_o - μ_o)`` and ``L⁻¹ Σ_om`` are triangular solves). The
pass's entropy is ``H(q(z)) + Σ_n Σ_k r_nk H(N(x̂_km, C_km))``, the entropy of the E step's whole
``q(z, x_m)``, so EM's recorded ELBO (``E_q[log p(X, x_m, Z)]`` from the statistics, plus it) equals the
observed-data log-likelihood right after an E step.
"""

from __future__ import annotations

import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import constraints

from mixtures.core.summary import Summary
from mixtures.core.validation import make_generator
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.distributions import LOG_2PI
from mixtures.families.gaussian.pattern_groups import (
    Blocked,
    Group,
    GroupBlocks,
    blocked_terms,
    chunk_rows,
    group_blocks,
    groups,
    observed_terms,
)
from mixtures.kernels.fused_pass import fused_pass

#: complete rows go through the fused pass this many at a time (a gathered copy of at most this many rows)
COMPLETE_BLOCK = 1 << 16


def observed_log_prob(X: Tensor, locs: Tensor, covariances: Tensor) -> Tensor:
    """``log N(x_no | μ_ko, Σ_koo)`` ``(N, K)`` of data with NaN entries; differentiable in ``locs``
    ``(K, D)`` and ``covariances`` ``(K, D, D)`` (the Pyro program's observation site)."""
    K, D = locs.shape
    out, rows_of = [], []
    for group in groups(X):
        piece = group_blocks(covariances, group)
        for part, pattern in zip(torch.split(group.rows, chunk_rows(K, D)), torch.split(group.pattern,
                                                                                      chunk_rows(K, D))):
            out.append(observed_terms(X[part], pattern, locs, group, piece)[0])
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

    def add(self, rows: Tensor, terms: Blocked, log_weights: Tensor, group: Group, piece: GroupBlocks,
            shift: Tensor, conditional_entropy: Tensor, weights: Tensor | None = None) -> None:
        """Add one group's points (``rows`` of X, in the block layout ``terms``, :class:`Blocked`), with log
        weights ``log_weights`` ``(K,)``, their patterns' ``conditional_entropy`` ``(P, K)`` and point weights
        ``weights`` ``(n,)`` (or None). Sums over points run over the blocks; padding slots carry no
        responsibility, and a point of weight 0 none either (nor a log-likelihood or entropy term)."""
        joint = terms.log_prob + log_weights.view(-1, 1, 1)  # (K, B, BLOCK)
        K = joint.shape[0]
        scale = terms.valid.to(joint.dtype) if weights is None else _blocked(weights, terms)  # (B, BLOCK)
        peak = joint.amax(0, keepdim=True)
        relative = (joint - peak).exp_()  # one exp for the normalizer and the responsibilities
        normalizer = relative.sum(0, keepdim=True)
        total = (peak + normalizer.log()).squeeze(0)  # (B, BLOCK) log p(x_o), or VB's normalizer
        if self.labels is not None:
            labels = joint.argmax(0)  # (B, BLOCK)
            resp = torch.nn.functional.one_hot(labels, K).to(joint.dtype).permute(2, 0, 1)
            self.labels[rows] = labels[terms.block, terms.slot]
        else:
            resp = relative.div_(normalizer)  # (K, B, BLOCK)
            self.entropy -= _weighted(torch.special.xlogy(resp, resp).sum(0), scale).sum().to(self.entropy.dtype)
        self.add_at(terms, resp * scale, group, piece, shift, conditional_entropy)
        if self.likelihood_offsets is not None:  # the plug-in mixture's log p(x_o)
            total = torch.logsumexp(joint + self.likelihood_offsets.view(-1, 1, 1), 0)
        self.log_likelihood += _weighted(total, scale).sum().to(self.log_likelihood.dtype)  # padding: weight 0
        total = total.masked_fill(scale == 0, float("inf")).reshape(-1)  # padding and zero weights: not points
        lowest = int(total.argmin())
        if float(total[lowest]) < self.worst_value:  # re-seeding point: its mixture imputation
            self.worst_value = float(total[lowest])
            block, slot = divmod(lowest, terms.x.shape[1])
            filled = terms.x[block, slot].expand(K, -1).scatter(-1, group.mis[terms.block_pattern[block]].expand(K, -1),
                                                                terms.means[:, block, slot])  # (K, D)
            self.worst_point = (resp[:, block, slot].unsqueeze(-1) * filled).sum(0)

    def add_at(self, terms: Blocked, resp: Tensor, group: Group, piece: GroupBlocks, shift: Tensor,
               conditional_entropy: Tensor) -> None:
        """Add the expected statistics of one group's points (block layout ``terms``) at (weighted)
        responsibilities ``resp`` ``(K, B, BLOCK)`` (0 in padding), with ``Σ_n r_nk H(N(x̂_km, C_km))``."""
        K = resp.shape[0]
        d_m = group.mis.shape[1]
        size = terms.x.shape[1]  # BLOCK: rows per block
        mis = group.mis[terms.block_pattern].view(1, -1, 1, d_m).expand(K, -1, size, -1)  # (K, B, BLOCK, d_m)
        filled = terms.x.unsqueeze(0).expand(K, -1, -1, -1).scatter(-1, mis, terms.means)  # (K, B, BLOCK, D)
        D = filled.shape[-1]
        centred = (filled - shift).reshape(K, -1, D)  # (K, B·BLOCK, D)
        weighted = centred * resp.reshape(K, -1, 1)
        scatter = weighted.transpose(-1, -2) @ centred  # (K, D, D)
        # Σ_n r_nk C_{p_n k}: each pattern's mass (P, K) times its conditional covariance, in its missing block
        mass = resp.new_zeros(group.mis.shape[0], K).index_add_(0, terms.block_pattern, resp.sum(-1).T)
        components = torch.arange(K, device=resp.device).view(1, K, 1, 1).expand(mass.shape[0], -1, d_m, d_m)
        index = (components, group.mis[:, None, :, None].expand(-1, K, -1, d_m),
                 group.mis[:, None, None, :].expand(-1, K, d_m, -1))
        scatter.index_put_(index, mass[..., None, None] * piece.conditional, accumulate=True)
        self.nk += mass.sum(0).to(self.nk.dtype)
        self.sx += weighted.sum(1).to(self.sx.dtype)
        self.sxx += scatter.to(self.sxx.dtype)
        self.entropy += (mass * conditional_entropy).sum().to(self.entropy.dtype)

    def add_complete_at(self, x: Tensor, resp: Tensor, shift: Tensor) -> None:
        """Add the statistics of complete points ``x`` ``(n, D)`` at (weighted) responsibilities ``resp``
        ``(n, K)`` (no missing coordinates: no conditional entropy)."""
        centred = (x - shift).unsqueeze(0)  # (1, n, D)
        weighted = centred * resp.T.unsqueeze(-1)  # (K, n, D)
        self.nk += resp.sum(0).to(self.nk.dtype)
        self.sx += weighted.sum(1).to(self.sx.dtype)
        self.sxx += (weighted.transpose(-1, -2) @ centred).to(self.sxx.dtype)


def _blocked(values: Tensor, terms: Blocked) -> Tensor:
    """Per-point ``values`` ``(n,)`` in the block layout ``(B, BLOCK)`` (0 in padding)."""
    out = values.new_zeros(terms.valid.shape)
    out[terms.block, terms.slot] = values
    return out


def _weighted(values: Tensor, weights: Tensor) -> Tensor:
    """``w v`` (any shape), exactly 0 at zero weights (padding, a dropped row) even where ``v`` is not finite."""
    return (values * weights).masked_fill_(weights == 0, 0.0)


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
        chunk_size: points per batch within a group of patterns.
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
    chunk = chunk_size or chunk_rows(K, D)
    for group in groups(X):
        if group.complete:
            sums.add_complete(X, group.rows, params, shift, log_weights, sample_weight)
            continue
        piece = group_blocks(covariances, group)
        conditional_entropy = _conditional_entropy(group, piece)
        for part, pattern in zip(torch.split(group.rows, chunk), torch.split(group.pattern, chunk)):
            terms = blocked_terms(X[part], pattern, params.locs, group, piece)
            sums.add(part, terms, log_weights, group, piece, shift, conditional_entropy,
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
    chunk = chunk_rows(K, D)
    for group in groups(X):
        if group.complete:
            for part in torch.split(group.rows, chunk):
                sums.add_complete_at(X[part], resp[part], shift)
            continue
        piece = group_blocks(params.covariances, group)
        conditional_entropy = _conditional_entropy(group, piece)
        for part, pattern in zip(torch.split(group.rows, chunk), torch.split(group.pattern, chunk)):
            terms = blocked_terms(X[part], pattern, params.locs, group, piece)
            blocked = resp.new_zeros(K, *terms.valid.shape)
            blocked[:, terms.block, terms.slot] = resp[part].T
            sums.add_at(terms, blocked, group, piece, shift, conditional_entropy)
    return Summary(sums.nk, {"sx": sums.sx, "sxx": sums.statistic_of(params.cov_type)}, shift.to(sums.nk.dtype),
                   X.shape[0], X.new_tensor(float("nan")), sums.entropy)


def _conditional_entropy(group: Group, piece: GroupBlocks) -> Tensor:
    """``H(N(x̂_km, C_km))`` ``(P, K)`` of the missing coordinates of a group's patterns (at least one missing)."""
    d_m = group.mis.shape[1]
    half_log_det = torch.linalg.cholesky(piece.conditional).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * d_m * (1.0 + LOG_2PI) + half_log_det


def impute(params, X: Tensor, draws: int | None = None, seed: int | None = 0) -> Tensor:
    """``X`` ``(N, D)`` with its NaN entries replaced by conditional means under the mixture,
    ``Σ_k p(k | x_o) x̂_km`` (``draws=None``), or ``draws`` samples of them ``(draws, N, D)``
    from ``p(x_m | x_o) = Σ_k p(k | x_o) N(x̂_km, C_km)`` (observed entries kept as they are)."""
    K, D = params.n_components, params.n_features
    generator = None if draws is None else make_generator(seed)
    out = X.clone() if draws is None else X.unsqueeze(0).repeat(draws, 1, 1)
    log_weights = params.weights.log()
    for group in groups(X):
        if group.complete:
            continue
        piece = group_blocks(params.covariances, group)
        factor = None if draws is None else torch.linalg.cholesky(piece.conditional)  # (P, K, d_m, d_m)
        for part, pattern in zip(torch.split(group.rows, chunk_rows(K, D)), torch.split(group.pattern,
                                                                                      chunk_rows(K, D))):
            log_prob, means = observed_terms(X[part], pattern, params.locs, group, piece)
            resp = torch.softmax(log_prob + log_weights, -1)  # (n, K)
            mis = group.mis[pattern]  # (n, d_m)
            if draws is None:
                out[part] = out[part].scatter(-1, mis, (resp.unsqueeze(-1) * means).sum(1))
                continue
            values = _draw(resp, means, factor[pattern], draws, generator)  # (draws, n, d_m)
            out[:, part] = out[:, part].scatter(-1, mis.expand(draws, -1, -1), values)
    return out


def _draw(resp: Tensor, means: Tensor, factor: Tensor, draws: int, generator: torch.Generator) -> Tensor:
    """``draws`` samples ``(draws, n, d_m)`` of the conditional mixture of points with responsibilities ``resp``
    ``(n, K)``, conditional means ``means`` ``(n, K, d_m)`` and Cholesky factors ``factor`` ``(n, K, d_m, d_m)``
    of their conditional covariances."""
    n, K, d_m = means.shape
    labels = torch.multinomial(resp.cpu().double(), draws, replacement=True, generator=generator).T  # (draws, n)
    labels = labels.to(means.device)
    noise = torch.randn(draws, n, d_m, generator=generator, dtype=torch.float64).to(means)
    points = torch.arange(n, device=means.device)
    picked = means[points, labels]  # (draws, n, d_m)
    return picked + (factor[points, labels] @ noise.unsqueeze(-1)).squeeze(-1)


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
