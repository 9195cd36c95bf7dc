"""Stepwise (online) EM: minibatch E steps blended into running sufficient statistics.

Cappé & Moulines (2009), "On-line expectation-maximization algorithm for latent
data models"; Liang & Klein (2009), "Online EM for unsupervised models".

Algorithm
    Keep running *normalized* statistics ``s`` (the additive fields of the family's
    :class:`~mixtures.core.summary.Summary` as averages per point, about the same
    ``shift`` as batch EM). For minibatch ``B_t`` (``t = 0, 1, ...``):

    1. E step at the current ``θ_t`` on ``B_t``; its statistics divided by ``|B_t|``
       give ``ŝ_t``;
    2. ``s ← (1 - η_t) s + η_t ŝ_t`` with ``η_t = (t + 2)^(-κ)``, ``κ ∈ (0.5, 1]``
       (Robbins–Monro: ``Σ η_t = ∞``, ``Σ η_t² < ∞``); ``step_size`` replaces the
       schedule by any callable ``t -> η_t ∈ (0, 1]``;
    3. ``θ_{t+1}`` = the family's M step of ``s`` with its counts scaled back to ``N``
       points, so ``reg_covar``, the empty-component floor and every covariance
       structure behave exactly as in batch EM.

    Initialization: ``s`` starts as the statistics of one E step at the initial
    parameters on the first minibatch, ``s = ŝ_0``; the update of step 0 then
    leaves ``s = ŝ_0`` whatever ``η_0`` is, so the first ``θ`` is the M step of the
    first minibatch. Consequently, with one minibatch holding all the data
    (``batch_size >= N``) the first step *is* a batch EM step, and with
    ``step_size=lambda t: 1.0`` every step is (to rounding).

Minibatches
    An epoch (one pass over the data) is cut into ``max(1, round(N / batch_size))``
    minibatches of near-equal size (sizes differ by at most one), so no tiny
    remainder minibatch receives a full step. In memory, ``shuffle=True``
    permutes the points every epoch (generator seeded by ``seed``). Streamed data
    (:class:`~mixtures.core.stream.StreamingData`) are read in their stored order, one
    pass per epoch, with minibatches cut across chunk boundaries; ``shuffle`` then
    permutes only the rows *within* each chunk, so a source sorted by cluster
    should be shuffled once on disk first.

``warm_start_steps``
    Optional batch EM steps (full-data E step, ``s = ŝ``, M step: a stepwise step
    with ``η = 1`` and all the data as the minibatch) before the stepwise phase;
    they are history rows ``1..warm_start_steps``, each one data pass.

History (columns of :mod:`mixtures.core.result`, one row per evaluation; row 0 is the
initialization). Evaluations happen every ``eval_every`` stepwise steps (default:
once per epoch), after every warm-start step and after the last step.

``iteration``
    updates so far (warm-start steps plus stepwise steps).
``log_likelihood``
    ``N ×`` the mean of ``log p(x | θ)`` over a fixed *evaluation subsample* of
    ``min(eval_size, N)`` points drawn without replacement once, with ``seed``,
    before the first step (indices in ``extras["eval_indices"]``, sorted). It is an
    unbiased estimate of the total ``log p(X | θ)`` on the same nats scale as
    EM's column, and exact when ``eval_size >= N``.
``elbo``
    the closed-form ELBO ``E_q[log p(X, Z | θ)] + H(q)`` on the evaluation
    subsample, scaled by ``N / M`` the same way, of ``q`` = the responsibilities at
    the parameters of the *previous evaluation* and ``θ`` = the current
    parameters (with ``eval_every=1`` that is ``q`` from ``θ_{t-1}``, as in EM's
    history). NaN at row 0.
``kl``
    ``log_likelihood - elbo`` ``= (N / M) KL(q || p(Z | X_eval, θ)) ≥ 0`` (up to
    rounding): how far the parameters moved, in responsibilities, since the last
    evaluation.
``time``
    wall-clock seconds since the routine started (evaluations included).
``passes``
    data passes so far: points processed (E steps of the updates) ``/ N``;
    integer at every epoch's end.
``step_size``
    ``η_t`` of the latest update (1 for warm-start steps, NaN at row 0).
``held_out_log_likelihood``
    only with ``held_out=X_test``: the mean ``log p(x | θ)`` per point of those
    points, which the fit never sees. ``log_likelihood`` stays on (a subsample of)
    the training data so that its curve shares batch EM's scale; this column is the
    generalization score (nats per point).

``result.objective`` is the last row's ``log_likelihood`` (subsample estimate);
``converged`` is True when ``tol`` (nats per point, like EM's) stopped the run:
the evaluated mean log-likelihood changed by less than ``tol`` between two
consecutive evaluations. Without ``tol`` the run uses its whole budget
(``num_epochs`` / ``max_steps``) and ``converged`` is False.

Degenerate components: ``on_collapse="error"`` (default) raises
``SingularCovarianceError`` naming the component; ``"reseed"`` replaces that
component's running statistics by one point at the worst-explained point of the
current minibatch (lowest ``log p(x | θ)``) with the covariance of all the
running statistics, i.e. weight ≈ 1/N as in :mod:`mixtures.inference.em`, and
lists ``(iteration, component)`` in ``extras["reseeded"]`` (not for a shared covariance).

Weights (``sample_weight`` ``(N,)``, in-memory data): a minibatch's ``ŝ`` is its weighted
statistics divided by its total weight (a minibatch of total weight 0 is skipped: no update),
the M step scales ``s`` back to ``N = Σ_n w_n``, and the history's ``log_likelihood`` and
``elbo`` are the weighted ones (the evaluation subsample's, scaled by ``Σ w / Σ_eval w``).
Minibatches are cut by rows, so only the deterministic settings (one minibatch holding every
point, ``shuffle=False``, warm-start steps) equal the fit of the data with rows repeated.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from mixtures.core.family import MixtureFamily
from mixtures.core.history import History
from mixtures.core.params import Params
from mixtures.core.result import FitResult
from mixtures.core.stream import StreamingData, bounded_chunk_size
from mixtures.core.summary import Summary
from mixtures.core.validation import as_data, check_nonnegative_float, check_positive_int, make_generator
from mixtures.errors import ConvergenceWarning, DataError, DivergenceError, SingularCovarianceError
from mixtures.inference.registry import register

DEFAULT_KAPPA = 0.6
DEFAULT_EPOCHS = 10


class _Evaluator:
    """Log-likelihood and ELBO of the evaluation subsample ``(M, D)``, scaled by ``N / M``."""

    def __init__(self, model: MixtureFamily, X_eval: Tensor, n_total: float, shift: Tensor,
                 chunk_size: int | None, weights: Tensor | None = None):
        self.model = model
        self.X_eval = X_eval
        self.weighted = {} if weights is None else {"sample_weight": weights}  # (M,) or nothing
        self.scale = n_total / (X_eval.shape[0] if weights is None else float(weights.sum()))
        self.shift = shift
        self.chunk_size = chunk_size
        self.previous: Summary | None = None  # q of the previous evaluation

    def __call__(self, params: Params, iteration: int) -> tuple[float, float]:
        summary = self.model.e_step(self.X_eval, params, self.shift, chunk_size=self.chunk_size, **self.weighted)
        _check_finite(summary.log_likelihood, iteration, "the evaluation subsample")
        log_likelihood = self.scale * float(summary.log_likelihood)
        bound = math.nan if self.previous is None else self.scale * float(self.model.elbo(self.previous, params))
        self.previous = summary
        return log_likelihood, bound


def _check_finite(value: Tensor, iteration: int, where: str) -> None:
    if not torch.isfinite(value):
        raise DivergenceError(
            f"the log-likelihood of {where} became {float(value)} at iteration {iteration}: a component "
            "collapsed onto a few points (increase reg_covar, use fewer components or a smaller step "
            "size) or some point has zero density under every component (standardize the data).")


def _check_kappa(kappa: Any) -> float:
    if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or not 0.5 < float(kappa) <= 1.0:
        raise ValueError(f"kappa must be a number in (0.5, 1] (the step sizes (t + 2)^-kappa must sum to "
                         f"infinity while their squares sum to a finite value); got {kappa!r}.")
    return float(kappa)


def _schedule(kappa: float | None, step_size: Callable[[int], float] | None) -> Callable[[int], float]:
    """``t -> η_t``, checked to lie in ``(0, 1]`` at every step."""
    if step_size is not None:
        if kappa is not None:
            raise ValueError("give either kappa (the schedule (t + 2)^-kappa) or step_size (a callable "
                             "t -> eta), not both.")
        if not callable(step_size):
            raise ValueError(f"step_size must be a callable t -> eta in (0, 1]; got {step_size!r}.")
        rule = step_size
    else:
        exponent = _check_kappa(DEFAULT_KAPPA if kappa is None else kappa)

        def rule(t: int) -> float:
            return (t + 2.0) ** -exponent

    def checked(t: int) -> float:
        eta = rule(t)
        try:
            eta = float(eta)
        except (TypeError, ValueError):
            raise ValueError(f"step_size({t}) must return a number in (0, 1]; got {eta!r}.") from None
        if not 0.0 < eta <= 1.0:
            raise ValueError(f"step_size({t}) = {eta!r} is outside (0, 1]: the running statistics must stay "
                             "a convex combination of minibatch statistics.")
        return eta

    return checked


def _batch_sizes(n_points: int, batch_size: int) -> list[int]:
    """Near-equal minibatch sizes of one epoch (first ``N mod m`` get one more point)."""
    count = max(1, (n_points + batch_size // 2) // batch_size)
    base, extra = divmod(n_points, count)
    return [base + 1] * extra + [base] * (count - extra)


def _memory_minibatches(X: Tensor, sizes: list[int], shuffle: bool, generator: torch.Generator,
                        weights: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor | None]]:
    """One epoch of in-memory minibatches ``(b, D)``, each with its weights ``(b,)`` (or None)."""
    order = torch.randperm(X.shape[0], generator=generator, device="cpu").to(X.device) if shuffle else None
    start = 0
    for size in sizes:
        rows = slice(start, start + size) if order is None else order[start:start + size]
        yield X[rows], (None if weights is None else weights[rows])
        start += size


def _stream_minibatches(X: StreamingData, sizes: list[int], shuffle: bool, generator: torch.Generator,
                        chunk_size: int | None) -> Iterator[Tensor]:
    """One pass over streamed data, cut into minibatches ``(b, D)`` across chunk boundaries."""
    pending = iter(sizes)
    need = next(pending)
    pieces: list[Tensor] = []
    held = 0
    for chunk in X.chunks(chunk_size):
        if shuffle and chunk.shape[0] > 1:
            chunk = chunk[torch.randperm(chunk.shape[0], generator=generator, device="cpu").to(chunk.device)]
        while chunk.shape[0]:
            if need is None:
                raise DataError("the streaming source yielded more points than on its first pass; a "
                                "callable source must return the same data on every call.")
            take = min(need - held, chunk.shape[0])
            pieces.append(chunk[:take])
            held += take
            chunk = chunk[take:]
            if held == need:
                yield pieces[0] if len(pieces) == 1 else torch.cat(pieces)
                pieces, held = [], 0
                need = next(pending, None)
    if need is not None:
        raise DataError("the streaming source yielded fewer points than on its first pass; a callable "
                        "source must return the same data on every call.")


def _gather_rows(X: Tensor | StreamingData, indices: Tensor, chunk_size: int | None) -> Tensor:
    """Rows ``indices`` (sorted) of in-memory or streamed data, ``(M, D)``; one pass if streamed."""
    if isinstance(X, Tensor):
        return X[indices.to(X.device)]
    pieces, offset = [], 0
    for chunk in X.chunks(chunk_size):
        lo, hi = torch.searchsorted(indices, torch.tensor([offset, offset + chunk.shape[0]])).tolist()
        if hi > lo:
            pieces.append(chunk[(indices[lo:hi] - offset).to(chunk.device)])
        offset += chunk.shape[0]
    return torch.cat(pieces)


def _per_point(summary: Summary, total_weight: float | None = None) -> Summary:
    """``ŝ``: a pass's additive statistics divided by its number of points (its total weight)."""
    return summary.scaled(1.0 / (summary.n_points if total_weight is None else total_weight))


def _reseed(model: MixtureFamily, running: Summary, component: int, summary: Summary, n_total: float) -> Summary:
    """``running`` with ``component``'s statistics replaced by one point at the worst-explained point.

    The family's ``reseed_component`` gives the fresh component the covariance of all the
    statistics and the count of all the data; rescaling its entries to a count of one point
    keeps its mean and covariance and makes its weight ≈ 1/N, as batch EM's rule does.
    """
    fresh = model.reseed_component(summary, component)
    shrink = 1.0 / (float(fresh.nk[component]) * n_total)
    tensors = []
    for mine, theirs in zip(running.additive(), fresh.additive()):
        mine = mine.clone()
        mine[component] = theirs[component] * shrink
        tensors.append(mine)
    return running.with_additive(tensors)


def _m_step(model: MixtureFamily, running: Summary, n_total: float, shift: Tensor, worst_point: Tensor | None,
            reg_covar: float, on_collapse: str, iteration: int, reseeded: list[tuple[int, int]]
            ) -> tuple[Params, Summary]:
    """Batch EM's M step on ``N · s``, re-seeding collapsed components when asked to; returns
    the parameters and the (possibly re-seeded) running statistics."""
    for _ in range(running.nk.shape[0] + 1):
        summary = running.scaled(n_total).replace(shift=shift, n_points=n_total, worst_point=worst_point)
        try:
            return model.m_step(summary, reg_covar), running
        except SingularCovarianceError as error:
            can_reseed = (on_collapse == "reseed" and error.component is not None and worst_point is not None
                          and model.reseed_component(summary, error.component) is not None)
            if not can_reseed:
                raise
            running = _reseed(model, running, error.component, summary, n_total)
            reseeded.append((iteration, error.component))
    raise SingularCovarianceError("every component collapsed; increase reg_covar or use fewer components.")


@register("stepwise_em", summary="stepwise (online) EM over minibatches with Robbins-Monro step sizes",
          requires=frozenset({"statistics"}), prior="rejected", streaming=True, budget_option="num_epochs",
          passes="column", training_likelihood=False, missing=True,
          gap="stepwise EM: its running bound, minus the exact log-likelihood",
          constraints={"batch_size": {"minimum": 1}, "num_epochs": {"minimum": 0}, "max_steps": {"minimum": 0},
                       "eval_size": {"minimum": 1}, "warm_start_steps": {"minimum": 0},
                       "kappa": {"minimum": 0.5, "exclusive_minimum": True, "maximum": 1.0}})
def fit_stepwise_em(model: MixtureFamily, X: Tensor | StreamingData, init: Params, *,
                    seed: int | None = None, batch_size: int = 256, kappa: float | None = None,
                    step_size: Callable[[int], float] | None = None, num_epochs: int | None = None,
                    max_steps: int | None = None, shuffle: bool = True, eval_every: int | None = None,
                    eval_size: int = 10_000, reg_covar: float = 1e-6, tol: float | None = None,
                    warm_start_steps: int = 0, on_collapse: str = "error", chunk_size: int | None = None,
                    held_out: Any = None, warn: bool = True, sample_weight: Tensor | None = None) -> FitResult:
    """Stepwise (online) EM from ``init`` (algorithm and history: module docstring).

    Args:
        model: the mixture specification (maximum likelihood: no prior).
        X: ``(N, D)`` validated data in memory, or a ``StreamingData`` (one pass per epoch).
        init: starting parameters.
        seed: seeds the evaluation subsample and the shuffles (``fit`` passes each
            restart's seed); ``None`` draws from the OS.
        batch_size: target minibatch size; an epoch has ``max(1, round(N / batch_size))``
            minibatches of near-equal size.
        kappa: step-size exponent in ``(0.5, 1]``, ``η_t = (t + 2)^-kappa`` (default 0.6).
        step_size: a callable ``t -> η_t ∈ (0, 1]`` replacing the schedule (``t``: 0-based
            stepwise step); e.g. ``lambda t: 1.0`` with ``batch_size >= N`` is batch EM.
        num_epochs: passes of the stepwise phase (default 10 unless ``max_steps`` is given).
        max_steps: maximum stepwise steps; with ``num_epochs`` too, the first limit reached stops.
        shuffle: permute the points every epoch (within chunks for streamed data).
        eval_every: stepwise steps between history rows (default: minibatches per epoch).
        eval_size: points of the fixed evaluation subsample (default 10 000; all the
            data when ``N <= eval_size``).
        reg_covar: added to covariance diagonals in every M step.
        tol: if given, stop when the evaluated mean log-likelihood per point changes by
            less than ``tol`` between consecutive evaluations (``converged=True``).
        warm_start_steps: batch EM steps before the stepwise phase.
        on_collapse: ``"error"`` or ``"reseed"`` (module docstring).
        chunk_size: rows per chunk of streamed reads and of the E-step passes.
        held_out: optional ``(M', D)`` points outside ``X``, scored at every evaluation
            (history column ``held_out_log_likelihood``, nats per point).
        warn: warn when ``tol`` was given but not met, and when components were re-seeded.
        sample_weight: ``(N,)`` point weights of in-memory data (module docstring, "Weights").
    """
    if model.prior is not None:
        raise ValueError("stepwise_em fits maximum likelihood; for a model with a prior use method='em' "
                         "(MAP-EM).")
    num_epochs, max_steps, eval_every, tol = _checked_budget(batch_size, eval_size, warm_start_steps, num_epochs,
                                                             max_steps, eval_every, tol, on_collapse, shuffle)
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    chunk_size = bounded_chunk_size(chunk_size, X)  # buffers of at most N rows
    eta_of = _schedule(kappa, step_size)
    run = _Run(model, X, init, seed, batch_size, eval_size, eval_every, held_out, chunk_size, tol, sample_weight)
    for _ in range(warm_start_steps):
        if run.warm_start_step(reg_covar, on_collapse):
            break
    if not run.converged:
        run.stepwise_phase(eta_of, num_epochs, max_steps, shuffle, reg_covar, on_collapse)
    if tol is not None and not run.converged and warn:
        warnings.warn(f"stepwise EM did not meet tol={tol} within its budget ({run.step} steps, "
                      f"{run.points / run.n_rows:.3g} data passes); increase num_epochs/max_steps or tol.",
                      ConvergenceWarning, stacklevel=3)
    if run.reseeded and warn:
        warnings.warn(f"re-seeded collapsed components (iteration, component): {run.reseeded}", UserWarning,
                      stacklevel=3)
    extras: dict[str, Any] = {"eval_indices": run.eval_indices, "reseeded": run.reseeded, "steps": run.step,
                              "warm_start_steps": warm_start_steps, "batch_sizes": run.sizes}
    return FitResult(model=model, params=run.params, history=run.history, converged=run.converged,
                     n_iter=run.iteration, method="stepwise_em", objective=run.history.last("log_likelihood"),
                     init=init, extras=extras)


def _checked_budget(batch_size: int, eval_size: int, warm_start_steps: int, num_epochs: int | None,
                    max_steps: int | None, eval_every: int | None, tol: float | None, on_collapse: str,
                    shuffle: Any) -> tuple[int | None, int | None, int | None, float | None]:
    """The options checked (``ValueError`` naming the first bad one); ``num_epochs`` defaulted."""
    check_positive_int(batch_size, "batch_size")
    check_positive_int(eval_size, "eval_size")
    check_positive_int(warm_start_steps, "warm_start_steps", minimum=0)
    if num_epochs is not None:
        num_epochs = check_positive_int(num_epochs, "num_epochs", minimum=0)
    if max_steps is not None:
        max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
    if num_epochs is None and max_steps is None:
        num_epochs = DEFAULT_EPOCHS
    if eval_every is not None:
        eval_every = check_positive_int(eval_every, "eval_every")
    if tol is not None:
        tol = check_nonnegative_float(tol, "tol")
    if on_collapse not in ("error", "reseed"):
        raise ValueError(f"on_collapse must be 'error' or 'reseed'; got {on_collapse!r}.")
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True or False; got {shuffle!r}.")
    return num_epochs, max_steps, eval_every, tol


class _Run:
    """The state of one stepwise run: parameters, counters, the history and its evaluations."""

    def __init__(self, model: MixtureFamily, X: Tensor | StreamingData, init: Params, seed: int | None,
                 batch_size: int, eval_size: int, eval_every: int | None, held_out: Any, chunk_size: int | None,
                 tol: float | None, sample_weight: Tensor | None = None):
        self.model, self.X, self.params, self.chunk_size, self.tol = model, X, init, chunk_size, tol
        self.streamed = isinstance(X, StreamingData)
        self.n_rows = X.n_points if self.streamed else X.shape[0]
        self.weights = sample_weight
        self.weighted = {} if sample_weight is None else {"sample_weight": sample_weight}
        # N of the M step and of the per-point columns: the total weight of a weighted fit
        self.n_total = self.n_rows if sample_weight is None else float(sample_weight.sum())
        self.generator = make_generator(seed)
        self.sizes = _batch_sizes(self.n_rows, batch_size)
        self.eval_every = eval_every or len(self.sizes)
        # the evaluation subsample is drawn first, so it depends on the seed only
        if eval_size >= self.n_rows:
            self.eval_indices = torch.arange(self.n_rows)
        else:
            self.eval_indices = torch.randperm(self.n_rows, generator=self.generator)[:eval_size].sort().values
        self.shift = model.statistics_shift(X)
        self.held_out = None if held_out is None else as_data(held_out, name="held_out", dtype=self.shift.dtype,
                                                              device=self.shift.device,
                                                              n_features=self.shift.shape[-1])
        X_eval = X if (not self.streamed and eval_size >= self.n_rows) else _gather_rows(X, self.eval_indices,
                                                                                          chunk_size)
        eval_weights = None if sample_weight is None else sample_weight[self.eval_indices.to(sample_weight.device)]
        self.evaluate = _Evaluator(model, X_eval, self.n_total, self.shift, chunk_size, eval_weights)
        self.history = History()
        self.start = time.perf_counter()
        self.reseeded: list[tuple[int, int]] = []
        self.iteration = self.points = self.step = 0
        self.eta = math.nan
        self.converged = False
        self.previous_mean = math.nan
        self.record()

    def record(self) -> bool:
        """Append an evaluation row; True (and ``converged``) when ``tol`` says to stop."""
        log_likelihood, bound = self.evaluate(self.params, self.iteration)
        scores = {} if self.held_out is None else {
            "held_out_log_likelihood": float(self.params.log_prob(self.held_out).mean())}
        self.history.append(iteration=self.iteration, log_likelihood=log_likelihood, elbo=bound,
                            kl=log_likelihood - bound, time=time.perf_counter() - self.start,
                            passes=self.points / self.n_rows, step_size=self.eta, **scores)
        mean = log_likelihood / self.n_total
        self.converged = self.tol is not None and abs(mean - self.previous_mean) < self.tol
        self.previous_mean = mean
        return self.converged

    def warm_start_step(self, reg_covar: float, on_collapse: str) -> bool:
        """One batch EM step (all the data as the minibatch, ``η = 1``); True when converged."""
        summary = self.model.e_step(self.X, self.params, self.shift, chunk_size=self.chunk_size, **self.weighted)
        _check_finite(summary.log_likelihood, self.iteration, "the data")
        self.iteration += 1
        self.points += summary.n_points
        self.eta = 1.0
        total = None if self.weights is None else self.n_total
        self.params, _ = _m_step(self.model, _per_point(summary, total), self.n_total, self.shift,
                                 summary.worst_point, reg_covar, on_collapse, self.iteration, self.reseeded)
        return self.record()

    def stepwise_phase(self, eta_of: Callable[[int], float], num_epochs: int | None, max_steps: int | None,
                       shuffle: bool, reg_covar: float, on_collapse: str) -> None:
        """Minibatch steps until the budget (epochs or steps) or ``tol``; the last point is always recorded."""
        running: Summary | None = None
        evaluated, epoch = True, 0
        while (num_epochs is None or epoch < num_epochs) and (max_steps is None or self.step < max_steps):
            if self.streamed:
                batches = ((batch, None) for batch in _stream_minibatches(self.X, self.sizes, shuffle, self.generator,
                                                                          self.chunk_size))
            else:
                batches = _memory_minibatches(self.X, self.sizes, shuffle, self.generator, self.weights)
            for batch, weights in batches:
                if max_steps is not None and self.step >= max_steps:
                    break
                if weights is not None and not bool(weights.sum() > 0):  # nothing to learn from
                    self.points += batch.shape[0]
                    continue
                weighted = {} if weights is None else {"sample_weight": weights}
                summary = self.model.e_step(batch, self.params, self.shift, chunk_size=self.chunk_size, **weighted)
                _check_finite(summary.log_likelihood, self.iteration, f"minibatch {self.step}")
                current = _per_point(summary, None if weights is None else float(weights.sum()))
                self.eta = eta_of(self.step)
                # s starts as ŝ_0, so step 0 gives s = ŝ_0 for any η_0
                running = current if running is None else running.blended(current, self.eta)
                self.step += 1
                self.iteration += 1
                self.points += summary.n_points
                self.params, running = _m_step(self.model, running, self.n_total, self.shift, summary.worst_point,
                                               reg_covar, on_collapse, self.iteration, self.reseeded)
                evaluated = self.step % self.eval_every == 0
                if evaluated and self.record():
                    return
            epoch += 1
        if not evaluated:
            self.record()
