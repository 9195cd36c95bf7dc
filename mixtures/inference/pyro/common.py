"""The optimization loop of the Pyro routines (``"map"`` and ``"svi"``), for any family.

Both routines optimize an ELBO of the *same program* ``model.model(X)`` with a Pyro
optimizer; they differ only in the guide (:mod:`mixtures.inference.pyro.guides`).
:func:`run_pyro` is the loop both call; the optimizer's side is
:mod:`mixtures.inference.pyro.stepper`; questions at fixed parameters (MAP labels,
memberships) are :mod:`mixtures.core.queries`.

Every run happens inside :func:`mixtures.core.family.fresh_param_store`, seeded from the
given parameters (cloned: nothing aliases the caller's tensors), and under a forked torch
RNG seeded from ``seed`` (the global RNG is left as it was), so fits do not leak state into
each other. Families with an affine-equivariant likelihood (the Gaussian) run on
standardized data and map back (``standardize=True``, the family's ``standardizer``).

History of :func:`run_pyro` (one row every ``eval_every`` optimizer steps, plus
the final point; row ``t`` describes the parameters after ``t`` steps, row 0 is
the initialization):

``iteration``
    ``t``, the number of optimizer steps taken to reach this point.
``loss``
    Pyro's loss (negated ELBO estimate) *at* the point of row ``t``: it is the
    loss the next step computes before updating, and for the final row an extra
    evaluation without an update. With ``subsample_size=B`` it is the estimate
    on one random minibatch, rescaled by ``N / B`` by the data plate.
``elbo``
    ``-loss``, the same estimate (so, with minibatches, a noisy rescaled
    minibatch estimate, not the full-data ELBO).
``log_likelihood``
    exact ``log p(X | θ_t)`` summed over all ``N`` points, from
    the parameters' ``log_prob`` (never a log prior). When the loss is already
    exact (assignments enumerated in the model, point-estimate globals, no
    subsampling, one particle), ``-loss`` *is* this value (the test suite checks
    the identity to 1e-8) and is reused instead of a second pass over the data;
    the final row is always computed with ``log_prob``.
``kl``
    ``log_likelihood - elbo``: ``KL(q(Z) || p(Z | X, θ_t))`` when the ELBO is
    exact (0 up to rounding for enumerated assignments), plus Monte Carlo /
    minibatch noise otherwise.
``grad_norm``
    global L2 norm of the gradient of ``loss`` with respect to all optimized
    tensors in *unconstrained* space (model and guide parameters), at ``θ_t``.
``time``
    seconds from the start of the loop until ``θ_t`` was reached (evaluation of
    earlier rows included, initialization excluded).

Early stopping (``tol``, ``patience``): the loss is evaluated at every point
``θ_0, θ_1, ...`` (once per step, whatever ``eval_every``). The run stops, with
``converged=True``, at the first point whose loss and the ``patience``
preceding ones all lie within ``tol * N`` of each other (``max - min <= tol * N``;
``tol`` is in nats per data point, like EM's). A window rather than "no new
best" tolerates Adam's early overshoots, which can raise the loss for a few
tens of steps before it falls. ``patience=None`` runs all ``num_steps`` steps
(``converged=False``).

Distributed runs (``fit(..., distributed=True)``, see :func:`run_pyro`): each rank
runs the program on its shard; the loss and the gradients of the global
parameters are summed over ranks before every optimizer step, so all ranks step
identically from the broadcast start, and every logged value is global.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro.infer import JitTrace_ELBO, JitTraceEnum_ELBO, Trace_ELBO, TraceEnum_ELBO
from torch import Tensor

from mixtures.core import comm
from mixtures.core.family import MAX_PLATE_NESTING, MixtureFamily, fresh_param_store
from mixtures.core.freeze import frozen_values, with_frozen
from mixtures.core.history import History
from mixtures.core.labels import labelled_log_likelihood
from mixtures.core.missing import has_missing
from mixtures.core.params import Params
from mixtures.core.queries import map_assignments, seeded_rng
from mixtures.core.result import FitResult
from mixtures.core.validation import check_positive_int, spawn_seeds
from mixtures.errors import ConvergenceWarning
from mixtures.inference.pyro import fused_elbo
from mixtures.inference.pyro.guides import (
    ASSIGNMENT_PROBS,
    LOCAL_ESTIMATORS,
    LOCAL_GUIDES,
    Guide,
    choose_global_guide,
    combine_guides,
    floored_probabilities,
    guide_point,
    guide_posterior,
    mean_field_guide,
)
from mixtures.inference.pyro.stepper import (
    AUTO_PATIENCE,
    ExcludeSites,
    Stepper,
    breakdown_message,
    check_finite,
    check_options,
    default_dtype,
    make_optimizer,
    warm_up_torch_optim,
)


def run_pyro(model: MixtureFamily, X: Tensor, init: Params, *, method: str, standardize: bool = True,
             distributed: bool = False, **options: Any) -> FitResult:
    """Optimize Pyro's ELBO of ``model.model`` from ``init`` (options: :func:`optimize`).

    ``standardize`` (default, models without a prior): run on standardized data and map
    back, so results do not depend on the data's units, when the family has an affine map
    (``model.standardizer``); with a prior the prior fixes the units and the data are used
    as they are.

    ``distributed``: ``X`` is this rank's shard; the standardization uses the moments of
    all ranks' data and a prior's data-scaled defaults are resolved on all of it
    (``model.with_global_prior``), so every rank runs the program a single process would
    run on all the data.
    """
    run_model = model.with_global_prior(X) if distributed else model
    if options.get("freeze") and model.prior is not None:
        raise ValueError(f"{method}: freeze=... holds pyro.param sites of a model without a prior; this model "
                         "has a prior (use method='em' or 'hard_em', or fit without the prior).")
    standardizer = model.standardizer(X, distributed) if standardize and model.prior is None else None
    weights = options.get("sample_weight")
    if standardizer is not None and weights is not None:
        # the Jacobian of each point's log density, counted w_n times (any affine map serves:
        # the likelihood is equivariant, so the weighted optimum maps back exactly)
        if has_missing(X):  # each point's Jacobian counts its observed coordinates (w_n times)
            counts = (weights[:, None] * ~torch.isnan(X)).sum(0)
            counts = comm.all_reduce_sum(counts)[0].to(X.dtype) if distributed else counts
            standardizer.log_jacobian = float((counts * standardizer.scale.log()).sum())
        else:
            count = comm.global_count(X.shape[0], X.device) if distributed else X.shape[0]
            standardizer.log_jacobian *= _total_weight(weights, distributed) / count
    if standardizer is None:
        result = optimize(run_model, X, init, method=method, distributed=distributed, **options)
    else:
        model.check_params(init)
        result = optimize(run_model, standardizer.data(X), standardizer.params(init), method=method,
                          distributed=distributed, **options)
        result = _in_data_units(result, standardizer, init)
    # the frozen groups are the given tensors bit for bit (not their standardized round trip)
    result.params = with_frozen(model, result.params, frozen_values(model, init, options.get("freeze") or ()))
    result.model = model
    return result


def _in_data_units(result: FitResult, standardizer: Any, init: Params) -> FitResult:
    """The result of a standardized run, in the data's own units: parameters mapped back and
    every logged log-density shifted by the Jacobian."""
    jacobian = standardizer.log_jacobian
    columns = result.history.to_dict()
    for name in ("log_likelihood", "elbo"):
        columns[name] = [value - jacobian for value in columns[name]]
    columns["loss"] = [value + jacobian for value in columns["loss"]]
    result.history = History.from_dict(columns)
    result.params = standardizer.params(result.params, inverse=True)
    result.objective -= jacobian
    result.extras["final_loss"] += jacobian
    result.init = init
    return result


def _total_weight(sample_weight: Tensor, distributed: bool) -> float:
    """``Σ_n w_n`` over this process's points (over every rank's when ``distributed``)."""
    total = sample_weight.sum().to(torch.float64)
    return float(comm.all_reduce_sum(total)[0]) if distributed else float(total)


@dataclass
class _Plan:
    """The decisions of one run, taken from global facts so that every rank takes the same."""

    n_points: int  # N of all the data
    subsample_size: int | None  # None: every point
    patience: int | None
    exact_loss: bool  # -loss is log p(X | θ) exactly
    exclude_prior: bool  # the log prior is counted on rank 0 only
    seed: int | None
    labels: Tensor | None = None  # partial labels (-1: unknown), mixtures.core.labels


def _plan(model: MixtureFamily, X: Tensor, *, guide: Any, local_guide: str, local_estimator: str,
          num_steps: int, lr: float, lr_decay: float, tol: float, patience: Any, eval_every: int,
          num_particles: int, subsample_size: int | None, seed: int | None, distributed: bool) -> _Plan:
    """Check the options and decide what the run does (module docstring)."""
    N_local = X.shape[0]
    if distributed:
        if not (isinstance(guide, str) and guide == "delta"):
            raise ValueError(
                f"distributed=True supports guide='delta' only (got {guide!r}): a distributional or "
                "custom global guide would need identical random draws on every rank. Use "
                "guide='delta', or fit in one process.")
        N = comm.global_count(N_local, X.device)
        smallest, largest = comm.count_range(N_local, X.device)
        if subsample_size is not None and subsample_size > smallest:
            raise ValueError(
                f"with distributed=True, subsample_size is the minibatch size of each rank; "
                f"subsample_size={subsample_size} exceeds the smallest shard ({smallest} points). "
                "Use a smaller minibatch or subsample_size=None (all points).")
        every_point = subsample_size is None or smallest == largest == subsample_size
    else:
        N = smallest = N_local
        every_point = subsample_size in (None, N)
    delta = isinstance(guide, str) and guide == "delta"
    if patience == "auto":
        deterministic = delta and every_point and (local_guide == "enumerate" or local_estimator == "enumerate")
        patience = AUTO_PATIENCE if deterministic else None
    check_options(num_steps, lr, tol, patience, eval_every, num_particles, subsample_size, smallest, lr_decay)
    if local_guide not in LOCAL_GUIDES:
        raise ValueError(f"unknown local_guide {local_guide!r}; choose one of {list(LOCAL_GUIDES)}.")
    if local_estimator not in LOCAL_ESTIMATORS:
        raise ValueError(f"unknown local_estimator {local_estimator!r}; choose one of {list(LOCAL_ESTIMATORS)}.")
    subsample_size = None if every_point else subsample_size  # a "minibatch" of every point is the full data
    # -loss is exactly log p(X | θ) when nothing is estimated: assignments summed out in the model, no
    # latent globals, every point, one particle.
    exact = (local_guide == "enumerate" and delta and model.prior is None and subsample_size is None
             and num_particles == 1)
    if distributed and seed is not None and comm.rank() > 0:
        seed = spawn_seeds(seed, comm.rank())[-1]  # local draws differ from rank to rank
    return _Plan(N, subsample_size, patience, exact, distributed and model.prior is not None and comm.rank() > 0,
                 seed)


def optimize(model: MixtureFamily, X: Tensor, init: Params, *, method: str,
             guide: str | Guide = "delta", local_guide: str = "enumerate",
             local_estimator: str = "enumerate", num_steps: int = 1000, lr: float = 0.05,
             betas: tuple[float, float] = (0.9, 0.999), lr_decay: float = 1.0,
             tol: float = 1e-7, patience: int | None | str = "auto", eval_every: int = 1,
             num_particles: int = 1, subsample_size: int | None = None, jit: bool = False,
             validate: bool = False, seed: int | None = 0, reg_covar: float | None = None,
             posterior_samples: int = 500, distributed: bool = False, labels: Tensor | None = None,
             freeze: tuple[str, ...] = (), sample_weight: Tensor | None = None) -> FitResult:
    """Optimize Pyro's ELBO of ``model.model`` from ``init`` (see the module docstring).

    Args:
        model: the mixture specification (any family).
        X: ``(N, D)`` validated data.
        init: starting parameters (cloned into a fresh param store).
        method: name stored in the result (``"map"`` or ``"svi"``).
        guide: guide over the globals (:func:`~mixtures.inference.pyro.guides.choose_global_guide`).
        local_guide: ``"enumerate"`` (assignments summed out in the model, ``TraceEnum_ELBO``)
            or ``"mean_field"`` (:func:`~mixtures.inference.pyro.guides.mean_field_guide`,
            initialized from ``init``'s responsibilities).
        local_estimator: for ``"mean_field"``: ``"enumerate"`` sums over ``q`` exactly
            (``TraceEnum_ELBO`` enumerating the guide's site) or ``"sample"`` draws ``z``
            (score-function gradients, Dice estimator).
        num_steps: maximum optimizer steps.
        lr, betas: Adam's step size and moment decays.
        lr_decay: ``final lr / lr`` reached after ``num_steps`` (1 = constant).
        tol, patience: early stopping on the loss (module docstring); ``patience="auto"`` is
            :data:`~mixtures.inference.pyro.stepper.AUTO_PATIENCE` when the loss is
            deterministic (assignments enumerated, point-estimate globals, all points) and
            ``None`` (no early stopping) when it is a noisy estimate.
        eval_every: record a history row every this many steps.
        num_particles: ELBO particles per step.
        subsample_size: minibatch size on the data plate (``None``: all points).
        jit: compile the loss with ``JitTraceEnum_ELBO(ignore_jit_warnings=True)``.
        validate: Pyro's distribution argument checks during optimization (off by default for
            speed; a non-finite loss raises ``DivergenceError`` anyway).
        seed: seeds every random draw of the run (minibatches, sampled guides).
        reg_covar: accepted for interface compatibility with ``fit`` and unused: the program
            has no covariance floor.
        posterior_samples: draws kept in ``result.posterior`` for a model with a prior and any
            global guide but ``"delta"`` (``"normal"``, ``"mvn"``, a callable).
        distributed: ``X`` is this rank's shard of data spread over an initialized
            ``torch.distributed`` process group (``fit(..., distributed=True)``).
        labels: ``(N,)`` partial labels (``-1``: unknown; :mod:`mixtures.core.labels`): the program
            restricts labelled points' assignments (its ``"labels"`` factor); the history's
            ``log_likelihood`` is the labelled objective. With the mean-field local guide a labelled
            point's ``q(z_n)`` is the point mass at its label (the assignment observed; fused path only)
            and only unlabelled points have variational probabilities; with enumerated assignments the
            program runs (the fused ELBO has no labels factor).
        freeze: parameter groups held at their values in ``init`` (:mod:`mixtures.core.freeze`): their
            sites are constants of the program (:meth:`MixtureFamily.freezing`), never trained.
        sample_weight: ``(N,)`` point weights (:mod:`mixtures.core.weights`): each point's
            log-likelihood (and, for the mean-field guide, its ``log q``) counts ``w_n`` times in
            the loss, the logged ``log_likelihood`` is weighted and ``tol`` is per unit of weight.
            On the fused path (string guides, enumerated or enumerated mean-field assignments) the
            pass weighs every point; otherwise the program is
            :meth:`~mixtures.core.family.MixtureFamily.weighted_model` under ``Trace_ELBO``
            (assignments enumerated only: a mean-field local guide there raises).

    Distributed runs: every rank runs the program on its own shard; after each
    ``loss_and_grads`` the loss and the gradients of the *global* parameters are summed over
    ranks (:class:`~mixtures.inference.pyro.stepper.Stepper`), so every rank takes the same
    Adam step from the same (broadcast) start as a single process on all the data would,
    equal up to floating-point reassociation of the sums. A prior's log density is counted
    once (on rank 0, masked elsewhere). Logged values are global: ``loss``/``elbo`` are sums
    over ranks, ``log_likelihood`` is all-reduced, ``tol`` is per point of all the data. Only
    ``guide="delta"`` is supported (a distributional global guide would need identical
    random draws on every rank). The mean-field guide's ``assignment_probs`` are local: rank
    ``r`` keeps ``(n_r, K)`` for its own points (its gradients are not all-reduced) and
    ``extras["assignment_probs"]``/``extras["labels"]`` describe this rank's shard.
    ``subsample_size=B`` is the minibatch size *of each rank* (``B`` rows of every shard per
    step, each scaled by ``n_r / B``: the sum over ranks is an unbiased estimate of the full
    loss); it must not exceed the smallest shard. Draws that only concern local sites
    (minibatches, sampled assignments) use a rank-specific seed derived from ``seed`` (rank 0
    uses ``seed`` itself).

    With a prior the history gains ``log_prior`` (at the point estimate, the guide's median),
    ``elbo`` includes it, and ``kl = log_likelihood + log_prior - elbo`` (a KL divergence for
    the delta guide; for distributional guides a gap that also contains the guide's entropy).
    ``objective`` is then the log joint at the point for ``"delta"`` and the final ELBO for
    distributional guides.
    """
    del reg_covar
    plan = _plan(model, X, guide=guide, local_guide=local_guide, local_estimator=local_estimator,
                 num_steps=num_steps, lr=lr, lr_decay=lr_decay, tol=tol, patience=patience, eval_every=eval_every,
                 num_particles=num_particles, subsample_size=subsample_size, seed=seed, distributed=distributed)
    if sample_weight is not None:
        plan = dataclasses.replace(plan, n_points=_total_weight(sample_weight, distributed))
    model.check_params(init)
    plan.labels = labels
    observed = labels if local_guide == "mean_field" else None  # labelled rows of q(z): point masses

    def program(data: Tensor) -> Tensor:
        if plan.exclude_prior:
            with ExcludeSites(model.global_sites):
                return model.model(data, subsample_size=plan.subsample_size, labels=labels,
                                   sample_weight=sample_weight)
        return model.model(data, subsample_size=plan.subsample_size, labels=labels, sample_weight=sample_weight)

    global_guide = choose_global_guide(model, guide, program, init)
    local = initial_probs = None
    if local_guide == "mean_field":
        initial_probs = floored_probabilities(init.responsibilities(X))
        local = mean_field_guide(X.shape[0], initial_probs, plan.subsample_size,
                                 enumerate_assignments=local_estimator == "enumerate")
    # the fused ELBO has no labels factor: labelled fits run the program (the mean-field guide: observed rows)
    fused = (labels is None or observed is not None) and fused_elbo.applies(
        model, init, X, guide=guide, local_guide=local_guide, local_estimator=local_estimator, jit=jit,
        validate=validate)
    if fused:
        # the same ELBO of the same program, one fused pass per estimate (fused_elbo's docstring)
        elbo = fused_elbo.FusedEnumELBO(model, X, global_guide=global_guide, num_particles=num_particles,
                                        subsample_size=plan.subsample_size, mean_field_probs=initial_probs,
                                        exclude_prior=plan.exclude_prior, sample_weight=sample_weight,
                                        labels=observed)
    elif observed is not None:
        raise ValueError(
            "labels with local_guide='mean_field' need the fused pass (a family with a linear log joint form such as "
            "the Gaussian or Poisson mixture, a string guide, local_estimator='enumerate', jit=False, validate=False, "
            "no missing values); use local_guide='enumerate' otherwise.")
    elif sample_weight is not None:
        if local_guide == "mean_field":
            raise ValueError(
                f"{method}: sample_weight with local_guide='mean_field' needs the fused pass (a family with a linear "
                "log joint "
                "form such as the Gaussian or Poisson mixture, a string guide, local_estimator='enumerate', "
                "jit=False, validate=False, no labels, data without NaN entries); use local_guide='enumerate' "
                "otherwise.")
        # the weighted program sums the assignments out itself (no enumerated site left)
        elbo = (JitTrace_ELBO if jit else Trace_ELBO)(num_particles=num_particles, max_plate_nesting=MAX_PLATE_NESTING,
                                                      **({"ignore_jit_warnings": True} if jit else {}))
    else:
        elbo_type = JitTraceEnum_ELBO if jit else TraceEnum_ELBO
        # TraceEnum_ELBO in every case: with a sampled mean-field site its Dice estimator uses the
        # plate's conditional independence (each score term is weighted by its own point's cost),
        # where Trace_ELBO would weight it by the whole minibatch's cost.
        elbo = elbo_type(num_particles=num_particles, max_plate_nesting=MAX_PLATE_NESTING,
                         **({"ignore_jit_warnings": True} if jit else {}))
    with fresh_param_store(), model.fitting(), model.freezing(frozen_values(model, init, freeze)), \
            seeded_rng(plan.seed, X.device), \
            pyro.validation_enabled(validate), warnings.catch_warnings(), default_dtype(X.dtype if jit else None):
        if jit:  # tracer warnings are expected (data-independent control flow)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated",
                                    category=DeprecationWarning)
        if model.prior is None:
            model.globals(init)  # seeds the store with clones of init's tensors
        stepper = Stepper(elbo, program, combine_guides(global_guide, local),
                          make_optimizer(lr, tuple(betas), lr_decay, num_steps), X, distributed=distributed)
        history, step, converged, loss = _loop(model, X, stepper, plan, global_guide, num_steps, eval_every, tol,
                                               distributed, sample_weight)
        params = guide_point(model, global_guide, X)
        posterior = None
        if model.prior is not None and not (isinstance(guide, str) and guide == "delta"):
            posterior = guide_posterior(model, global_guide, X,
                                        check_positive_int(posterior_samples, "posterior_samples"))
        extras: dict[str, Any] = {"final_loss": loss}
        if local_guide == "mean_field":
            extras[ASSIGNMENT_PROBS] = pyro.param(ASSIGNMENT_PROBS).detach().clone()
            if observed is not None:  # a labelled point's q(z) is the point mass at its label
                extras[ASSIGNMENT_PROBS] = torch.where(
                    (observed >= 0)[:, None], torch.nn.functional.one_hot(observed.clamp(min=0), model.n_components)
                    .to(extras[ASSIGNMENT_PROBS]), extras[ASSIGNMENT_PROBS])
    objective, converged = _objective(model, history, loss, posterior, converged, method, plan.n_points)
    extras["labels"] = map_assignments(model, params, X)
    if labels is not None:  # a labelled point's assignment is its label
        extras["labels"] = torch.where(labels >= 0, labels, extras["labels"])
    return FitResult(model=model, params=params, history=history, converged=converged, n_iter=step,
                     method=method, objective=objective, init=init, extras=extras, posterior=posterior,
                     decoder="program")


def _loop(model: MixtureFamily, X: Tensor, stepper: Stepper, plan: _Plan, global_guide: Guide | None,
          num_steps: int, eval_every: int, tol: float, distributed: bool,
          sample_weight: Tensor | None = None) -> tuple[History, int, bool, float]:
    """Evaluate, record, step, until the budget or the early-stopping window says stop.

    Returns ``(history, steps taken, converged, last loss)``.
    """
    history = History()
    window: collections.deque[float] = collections.deque(maxlen=(plan.patience or 0) + 1)
    step, reached_at = 0, 0.0  # the time at which the current point θ_step was reached
    previous = (0.0, 0.0, 0.0)  # loss, grad_norm, reached_at of θ_{step-1}
    warm_up_torch_optim()
    start = time.perf_counter()
    while True:
        loss, grad_norm = stepper.evaluate()
        if step > 0 and not math.isfinite(loss):
            # a finite start broke down: keep the last finite point, flagged (not an error)
            warnings.warn(breakdown_message(loss, step, X.shape[0], X.shape[1]), ConvergenceWarning, stacklevel=5)
            stepper.restore()
            step -= 1
            loss, grad_norm, reached_at = previous
            if step % eval_every != 0:
                _record(history, model, X, global_guide, plan, step, loss, grad_norm, reached_at, True, distributed,
                        sample_weight)
            return history, step, False, loss
        check_finite(loss, step)
        previous = (loss, grad_norm, reached_at)
        window.append(loss)
        stop_early = (plan.patience is not None and len(window) == window.maxlen
                      and max(window) - min(window) <= tol * plan.n_points)
        final = step >= num_steps or stop_early
        if final or step % eval_every == 0:
            _record(history, model, X, global_guide, plan, step, loss, grad_norm, reached_at, final, distributed,
                    sample_weight)
        if final:
            stepper.zero_grad()
            return history, step, stop_early, loss
        stepper.update()
        step += 1
        reached_at = time.perf_counter() - start


def _record(history: History, model: MixtureFamily, X: Tensor, global_guide: Guide | None, plan: _Plan,
            step: int, loss: float, grad_norm: float, reached_at: float, final: bool, distributed: bool,
            sample_weight: Tensor | None = None) -> None:
    """Append the row of the point reached after ``step`` steps (module docstring; the log-likelihood
    weighted by ``sample_weight`` ``(N,)``)."""
    prior_row = {}
    if plan.exact_loss and not final:
        log_likelihood = -loss
    else:
        point = guide_point(model, global_guide, X)
        log_likelihood = float(labelled_log_likelihood(point, X, plan.labels, sample_weight))
        if distributed:
            log_likelihood = comm.all_reduce_float(log_likelihood, X.device)
        if model.prior is not None:
            prior_row["log_prior"] = float(model.log_prior(point, X))
    history.append(iteration=step, log_likelihood=log_likelihood, elbo=-loss,
                   kl=log_likelihood + prior_row.get("log_prior", 0.0) + loss, time=reached_at,
                   loss=loss, grad_norm=grad_norm, **prior_row)


def _objective(model: MixtureFamily, history: History, loss: float, posterior: Any, converged: bool, method: str,
               n_points: float) -> tuple[float, bool]:
    """The objective restarts compare, and whether the run may count as converged.

    Ending more than a nat per point below the start is no transient of Adam's first steps
    (those cost ~0.01 nat per point): the problem is degenerate (more features than points,
    or a component driven onto a few points), so the run is not converged and a warning says so.
    """
    if model.prior is None:
        objective = history.last("log_likelihood")
    elif posterior is None:
        objective = history.last("log_likelihood") + history.last("log_prior")
    else:
        return -loss, converged
    if len(history) > 1:
        first = history.records()[0]
        start = first["log_likelihood"] + (first.get("log_prior", 0.0) if model.prior is not None else 0.0)
        if objective < start - n_points:
            warnings.warn(
                f"{method} ended far below its start (objective {objective:.6g} < {start:.6g}, more than "
                "a nat per point): the likelihood is probably unbounded here (more features than points, or a "
                "component collapsing). Use EM with reg_covar, fewer components, or a prior.",
                UserWarning, stacklevel=5)
            return objective, False
    return objective, converged
