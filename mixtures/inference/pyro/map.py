"""Enumerated MAP: gradient ascent on the exact log-likelihood of ``model.model``.

``TraceEnum_ELBO(max_plate_nesting=1)`` sums the assignment ``z_n`` out in
parallel, so for point-estimate globals its loss is exactly
``-log p(X | θ) = -Σ_n log Σ_k π_k N(x_n | μ_k, Σ_k)``, and ``-log p(X | θ) - log p(θ)``
for a model with a prior. Without a prior the globals are ``pyro.param`` sites of
the model itself, so the guide is empty and Adam optimizes the parameters
directly, in Pyro's unconstrained space (stick-breaking weights, Cholesky factors
with log diagonals, log variances). With a prior the globals are ``pyro.sample``
sites and the guide is ``AutoDelta`` over them (see
:func:`~mixtures.inference.pyro.guides.choose_global_guide`): the posterior mode in
the sites' own parametrization, the point closed-form MAP-EM reaches.

Use it through ``mixtures.fit(model, X, method="map", **options)``; ``init``,
``n_init`` and ``seed`` work as for EM (a given ``MixtureParams`` starts the
optimizer exactly there; its tensors are cloned, never written to). With
``distributed=True`` each rank holds a shard and the loss and gradients are
summed over ranks before every step, so every rank follows the trajectory of
one process on all the data (see :mod:`mixtures.core.comm`).

History (one row every ``eval_every`` steps plus the final point, row 0 = the
initialization; details in :mod:`mixtures.inference.pyro.common`):

``iteration``
    optimizer steps taken to reach the row's point ``θ_t``.
``loss``
    ``TraceEnum_ELBO`` loss at ``θ_t`` = ``-log p(X | θ_t)`` (exact), ``- log p(θ_t)``
    too with a prior.
``elbo``
    ``-loss`` = ``log p(X | θ_t)`` (``+ log p(θ_t)`` with a prior): with the
    assignments summed out, the ELBO *is* the log-likelihood (log joint).
``log_likelihood``
    ``log p(X | θ_t)``, never with the log prior: ``-loss`` reused when it is
    exactly that (no prior; no second pass over the data), otherwise and for the
    final row the parameters' ``log_prob(X).sum()``.
``log_prior``
    with a prior only: ``log p(θ_t)`` at the point estimate.
``kl``
    ``log_likelihood (+ log_prior) - elbo``: zero up to rounding (``q`` is the
    exact posterior).
``grad_norm``
    L2 norm of the loss gradient in unconstrained space at ``θ_t``.
``time``
    seconds from the start of the loop until ``θ_t`` was reached.

``result.objective`` is the final exact log-likelihood (plus the log prior with a
prior), the criterion ``fit`` uses to choose among restarts;
``result.extras["labels"]`` the MAP assignments ``(N,)`` at the result
(``infer_discrete(temperature=0)``); ``extras["final_loss"]`` Pyro's last loss.
"""

from __future__ import annotations

from torch import Tensor

from mixtures.core.family import MixtureFamily
from mixtures.core.params import Params
from mixtures.core.result import FitResult
from mixtures.inference.pyro.common import run_pyro
from mixtures.inference.registry import register


@register("map", summary="enumerated MAP: Adam on TraceEnum_ELBO with the assignments summed out",
          requires=frozenset({"program"}), distributed=True, budget_option="num_steps", passes="steps",
          own_labels=True, labels=True, freeze=True, missing=True, queries="program", covariance_floor=False,
          gap="MAP (delta guide, assignments summed out): the ELBO is the log-likelihood itself, a gap of 0")
def fit_map(model: MixtureFamily, X: Tensor, init: Params, *, num_steps: int = 1000,
            lr: float = 0.05, betas: tuple[float, float] = (0.9, 0.999), lr_decay: float = 1.0,
            tol: float = 1e-7, patience: int | None | str = "auto", eval_every: int = 1,
            jit: bool = False, validate: bool = False, seed: int | None = 0,
            reg_covar: float | None = None,
            standardize: bool = True, distributed: bool = False,
            labels: Tensor | None = None, freeze: tuple[str, ...] = (),
            sample_weight: Tensor | None = None) -> FitResult:
    """Enumerated MAP from ``init`` with Adam.

    Args:
        model: the mixture specification.
        X: ``(N, D)`` validated data.
        init: starting ``MixtureParams``.
        num_steps: maximum optimizer steps (0 returns the initialization).
        lr, betas: Adam's step size and moment decays.
        lr_decay: ``final lr / lr`` after ``num_steps`` (``ClippedAdam``'s
            per-step decay, without clipping); 1 keeps ``lr`` constant.
        tol, patience: stop (``converged=True``) once the losses of the last
            ``patience + 1`` points lie within ``tol * N`` nats of each other
            (``tol`` is per data point); ``patience="auto"`` = 20, ``None`` runs
            all ``num_steps`` steps.
        eval_every: a history row every this many steps (the final point always).
        jit: compile the loss with ``JitTraceEnum_ELBO(ignore_jit_warnings=True)``;
            the trajectory equals the eager one up to floating-point reassociation.
        validate: Pyro's argument validation during the steps (slower).
        seed: seeds Pyro's RNG for the run (MAP itself draws nothing; ``fit``
            passes each restart's seed).
        reg_covar: unused (the program has no covariance floor).
        standardize: optimize on standardized data and map back (no prior only), so
            the result does not depend on the data's units (Adam's steps are absolute).
        labels: partial labels (``fit(..., labels=...)``, :mod:`mixtures.core.labels`).
        freeze: parameter groups held at their ``init`` values (``fit(..., freeze=...)``, :mod:`mixtures.core.freeze`).
        distributed: ``X`` is this rank's shard (``fit(..., distributed=True)``): the
            loss and the gradients of the globals are summed over ranks before every
            step, so every rank returns the same result (details in
            :func:`mixtures.inference.pyro.common.optimize`).
        sample_weight: ``(N,)`` point weights (``fit(..., sample_weight=...)``): the loss is the
            weighted log-likelihood (plus the log prior), so integer weights have the optimum of
            the data with rows repeated.
    """
    return run_pyro(model, X, init, method="map", guide="delta", local_guide="enumerate",
                    num_steps=num_steps, lr=lr, betas=betas, lr_decay=lr_decay, tol=tol,
                    patience=patience, eval_every=eval_every, num_particles=1, subsample_size=None,
                    jit=jit, validate=validate, seed=seed, reg_covar=reg_covar, standardize=standardize,
                    distributed=distributed, labels=labels,
                    freeze=freeze, sample_weight=sample_weight)

