"""Stochastic (online) variational Bayes: natural-gradient steps on minibatches.

Hoffman, Blei, Wang & Paisley (2013), "Stochastic variational inference", JMLR 14. The
conjugate analogue of stepwise EM, on the same family capability as CAVI
(:mod:`mixtures.inference.vb`): ``q(θ)``'s natural parameters are the prior's plus the
expected sufficient statistics of ``q(Z)``, so a natural-gradient step of size ``ρ_t`` on
the ELBO is a step of the running statistics,

    s ← (1 − ρ_t) s + ρ_t ŝ_t,   ŝ_t = (N / |B_t|) · statistics of minibatch B_t under q(θ),
    q(θ) ← the CAVI update from s,

with ``ρ_t = (t + τ)^(-κ)``, ``κ ∈ (0.5, 1]`` (Robbins–Monro), ``τ ≥ 1`` (``delay``) or any
callable ``step_size(t)``. With one minibatch holding all the data and ``ρ = 1`` every step is a
CAVI iteration (tested equal to ``method="vb"``). The first ``q`` is CAVI's row 0: the update
from the initial responsibilities on all the data.

Minibatches: an epoch is cut into ``max(1, round(N / batch_size))`` near-equal minibatches of a
fresh permutation (``shuffle``, seeded by ``seed``). In memory only (streamed data: use
``stepwise_em`` or ``vb``).

History (one row per evaluation; every ``eval_every`` steps, default once per epoch, and after
the last step): ``elbo`` the exact ELBO of ``q(θ)`` with its optimal ``q(Z)`` on all the data (one
extra pass, not counted in ``passes``), ``log_likelihood`` ``log p(X | θ̄)`` at the plug-in
parameters, ``kl`` their difference (as in VB's history: not a KL with a prior), ``passes``
(points processed / N), ``step_size`` (``ρ`` of the latest step). ``tol`` (nats per point):
stop when the ELBO per point changed less than ``tol`` between two evaluations; without it the
whole budget runs and ``converged`` is False.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from mixtures.core.family import MixtureFamily
from mixtures.core.history import History
from mixtures.core.params import Params
from mixtures.core.result import FitResult
from mixtures.core.stream import bounded_chunk_size
from mixtures.core.validation import check_positive_int, make_generator
from mixtures.errors import ConvergenceWarning, DataError, DivergenceError
from mixtures.inference.registry import register

DEFAULT_KAPPA = 0.6
DEFAULT_EPOCHS = 10
UPDATES = ("sklearn", "model")

__all__ = ["fit_online_vb", "step_sizes"]


def step_sizes(kappa: float | None, delay: float, step_size: Callable[[int], float] | None) -> Callable[[int], float]:
    """``t -> ρ_t`` in ``(0, 1]``: ``(t + delay)^-kappa`` or the given callable (checked at every step)."""
    if step_size is not None and kappa is not None:
        raise ValueError("give either kappa (the schedule (t + delay)^-kappa) or step_size (a callable t -> rho), "
                         "not both.")
    if step_size is None:
        kappa = DEFAULT_KAPPA if kappa is None else kappa
        if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or not 0.5 < float(kappa) <= 1.0:
            raise ValueError(f"kappa must be a number in (0.5, 1] (Robbins-Monro: the steps sum to infinity, their "
                             f"squares do not); got {kappa!r}.")
        if isinstance(delay, bool) or not isinstance(delay, numbers.Real) or not float(delay) >= 1.0:
            raise ValueError(f"delay must be a number >= 1 (so that the first step is at most 1); got {delay!r}.")
        exponent, offset = float(kappa), float(delay)
        step_size = lambda t: (t + offset) ** -exponent  # noqa: E731
    elif not callable(step_size):
        raise ValueError(f"step_size must be a callable t -> rho in (0, 1]; got {step_size!r}.")

    def checked(t: int) -> float:
        rho = step_size(t)
        if isinstance(rho, bool) or not isinstance(rho, numbers.Real) or not 0.0 < float(rho) <= 1.0:
            raise ValueError(f"step_size({t}) = {rho!r} must be a number in (0, 1].")
        return float(rho)

    return checked


def _minibatches(n_points: int, batch_size: int, shuffle: bool, generator: torch.Generator) -> list[Tensor]:
    """One epoch's index sets: ``max(1, round(N / batch_size))`` near-equal parts of a permutation."""
    count = max(1, round(n_points / batch_size))
    order = torch.randperm(n_points, generator=generator) if shuffle else torch.arange(n_points)
    return list(torch.tensor_split(order, count))


@register("online_vb", summary="stochastic variational Bayes: natural-gradient steps on minibatches",
          requires=frozenset({"statistics", "variational"}), prior="required", prior_kinds=("conjugate",),
          budget_option="num_epochs", passes="column",
          gap="online VB: the gap also holds KL(q(θ) ‖ p(θ | X)) of the mean-field posterior",
          constraints={"batch_size": {"minimum": 1}, "num_epochs": {"minimum": 0}, "eval_every": {"minimum": 1},
                       "kappa": {"minimum": 0.5, "exclusive_minimum": True, "maximum": 1.0},
                       "delay": {"minimum": 1.0}, "updates": {"choices": UPDATES}})
def fit_online_vb(model: MixtureFamily, X: Tensor, init: Params, *, seed: int | None = 0, batch_size: int = 256,
                  num_epochs: int = DEFAULT_EPOCHS, kappa: float | None = None, delay: float = 1.0,
                  step_size: Callable[[int], float] | None = None, shuffle: bool = True,
                  eval_every: int | None = None, tol: float | None = None, reg_covar: float = 1e-6,
                  updates: str = "sklearn", chunk_size: int | None = None, posterior_samples: int = 1000,
                  warn: bool = True) -> FitResult:
    """Stochastic VB from the responsibilities of ``init`` (algorithm and history: module docstring).

    Args:
        model: a family with the ``"variational"`` capability and a conjugate prior.
        X: ``(N, D)`` data in memory.
        init: starting parameters; ``init.responsibilities(X)`` ``(N, K)`` give the first ``q(θ)``.
        seed: seeds the minibatch permutations and the posterior draws.
        batch_size: points per minibatch (about; an epoch's minibatches differ by at most one).
        num_epochs: passes over the data.
        kappa, delay: the step sizes ``(t + delay)^-kappa``; or ``step_size``: any ``t -> ρ_t ∈ (0, 1]``.
        eval_every: steps between history rows (default: once per epoch).
        tol: stop when the ELBO per point changed less than this between two evaluations.
        reg_covar, updates, chunk_size, posterior_samples: as :func:`mixtures.inference.vb.run_vb`.
        warn: a ``ConvergenceWarning`` when ``tol`` was given and not met.
    """
    if not isinstance(X, Tensor):
        raise DataError("online_vb runs on data in memory; for streamed data use method='stepwise_em' (maximum "
                        "likelihood) or method='vb' (batch CAVI over the stream's chunks).")
    batch_size = check_positive_int(batch_size, "batch_size")
    num_epochs = check_positive_int(num_epochs, "num_epochs", minimum=0)
    rho_of = step_sizes(kappa, delay, step_size)
    N = X.shape[0]
    chunk_size = bounded_chunk_size(chunk_size, X)
    cavi = model.variational(X, updates, reg_covar)
    shift = model.statistics_shift(X)
    generator = make_generator(seed)
    start = time.perf_counter()
    running = model.e_step(X, model.check_params(init), shift, chunk_size=chunk_size)
    q = cavi.update(running)
    steps_per_epoch = max(1, round(N / batch_size))
    eval_every = steps_per_epoch if eval_every is None else check_positive_int(eval_every, "eval_every")
    history = History()
    state = {"previous": -math.inf, "converged": False}

    def evaluate(step: int, points: int, rho: float) -> bool:
        full = cavi.expected_pass(X, q, shift, chunk_size)
        elbo = float(cavi.bounds(full, q)["elbo"])
        if not math.isfinite(elbo):
            raise DivergenceError(f"the ELBO became {elbo} at step {step}: the data or the prior are degenerate, or "
                                  "the steps too large (standardize the data, or lower kappa's first steps with "
                                  "a larger delay).")
        log_likelihood = float(full.log_likelihood)
        history.append(iteration=step, time=time.perf_counter() - start, elbo=elbo, log_likelihood=log_likelihood,
                       kl=log_likelihood - elbo, passes=points / N, step_size=rho)
        done = tol is not None and abs(elbo - state["previous"]) / N < tol
        state["previous"] = elbo
        return done

    step, points, rho = 0, 0, math.nan
    evaluate(0, 0, rho)
    for _ in range(num_epochs):
        for rows in _minibatches(N, batch_size, shuffle, generator):
            batch = cavi.expected_pass(X[rows], q, shift, chunk_size).scaled(N / rows.numel())
            rho = rho_of(step)
            running = running.blended(batch, rho)
            q = cavi.update(running)
            step, points = step + 1, points + rows.numel()
            if step % eval_every == 0 and evaluate(step, points, rho):
                state["converged"] = True
                break
        if state["converged"]:
            break
    if history.last("iteration") != step:
        state["converged"] = evaluate(step, points, rho)
    if tol is not None and not state["converged"] and warn:
        warnings.warn(f"online VB did not reach tol={tol} (nats per point) in {num_epochs} epochs; increase "
                      "num_epochs or tol.", ConvergenceWarning, stacklevel=3)
    posterior = cavi.sample_posterior(q, check_positive_int(posterior_samples, "posterior_samples"), generator)
    return FitResult(model=model, params=cavi.plug_in(q), history=history, converged=state["converged"],
                     n_iter=step, method="online_vb", objective=history.last("elbo"), init=init,
                     extras={**cavi.extras(q), "steps_per_epoch": steps_per_epoch}, posterior=posterior)

