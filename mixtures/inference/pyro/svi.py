"""Stochastic variational inference on ``model.model`` with a choice of guides.

The ELBO ``E_q[log p(X, Z, θ) - log q(Z, θ)]`` is maximized with Adam; ``q``
factors into a guide over the globals and a treatment of the assignments:

Globals (``guide``)
    ``"delta"``: point estimates. Without a prior the globals are ``pyro.param``
    sites of the model, so there is no global guide at all (as in MAP).
    ``"normal"`` (``AutoNormal``) or ``"mvn"`` (``AutoMultivariateNormal``) over the
    globals; they need a prior (there is no posterior over ``pyro.param`` sites),
    so without one they raise ``ValueError``. A callable ``guide(X)`` is run before
    the local guide with the program's argument (the data); with a prior it must
    sample every global site, and its point estimate is its ``median(X)`` when it
    has one, else the values of one run. With a prior and any guide but
    ``"delta"``, ``result.posterior`` holds ``posterior_samples`` draws from it.

Assignments (``local_guide``)
    ``"enumerate"``: ``z`` is summed out in the model (``TraceEnum_ELBO`` with
    parallel enumeration of the local site only): the exact local step, so with
    ``guide="delta"`` this *is* MAP (same options and seed, same history).
    ``"mean_field"``: an explicit ``q(z_n) = Categorical(probs_n)`` with a
    per-point simplex ``pyro.param("assignment_probs")`` ``(N, K)``, started at
    the initial parameters' responsibilities. With ``local_estimator="enumerate"``
    (default) the guide's site is enumerated in parallel, so ``TraceEnum_ELBO``
    takes the expectation over ``q`` exactly (zero-variance local gradients);
    ``local_estimator="sample"`` draws ``z`` instead (score-function gradients by
    ``TraceEnum_ELBO``'s Dice estimator, which weights each point's score by its
    own cost thanks to the plate; averaged over ``num_particles``). The optimum is
    the same as EM's (maximizing the ELBO over ``q`` gives the responsibilities),
    but Adam must move every ``probs_n`` through the simplex transform (a softmax), so
    it converges more slowly than ``"enumerate"``. From the same start on
    well-separated data it reaches EM's log-likelihood within 1e-4 nats per point
    (the test suite's tolerance; ``tests/test_svi.py``).

Minibatches (``subsample_size=B``)
    The data plate draws ``B`` random rows per step and Pyro scales their terms
    by ``N / B``. The mean-field guide declares the same plate (same name and
    ``subsample_size``), so the model replays the rows the guide drew and the
    guide indexes its per-point parameters with them. Enumeration and
    subsampling combine safely here because only the local site (inside the
    plate) is enumerated; an enumerated *global* site would be scaled by
    ``N / B`` too, which is wrong, and Pyro's enumeration does not support it.

Distributed (``fit(..., distributed=True)``)
    ``guide="delta"`` only. The loss and the gradients of the globals are summed
    over ranks before every step (every rank takes the same step); the mean-field
    ``assignment_probs`` are local to each rank (``(n_r, K)``, gradients not
    all-reduced). ``subsample_size=B`` is the minibatch size of *each* rank (it
    must not exceed the smallest shard); each rank's minibatch is scaled by
    ``n_r / B``, so the summed loss is an unbiased estimate of the full one.

History (details in :mod:`mixtures.inference.pyro.common`): row ``t`` is the
point after ``t`` steps (row 0 the initialization), every ``eval_every`` steps
plus the final point.

``loss``, ``elbo``
    Pyro's loss at the point and its negation: exact for enumeration and the
    delta guide on all data; otherwise an estimate (Monte Carlo over sampled
    sites, averaged over ``num_particles``; with minibatches, one random
    minibatch rescaled by ``N / B``, not the full-data ELBO).
``log_likelihood``
    exact ``log p(X | θ_t)`` on all ``N`` points at the current point estimate
    of the globals (``log_prob``; ``-loss`` reused when it is exact),
    never with a log prior. The point estimate is the guide's median (for
    ``"normal"``/``"mvn"``: the median of the variational posterior, mapped to the
    parameters; not its mean).
``log_prior``
    with a prior only: ``log p(θ_t)`` at that point estimate; ``elbo`` then
    includes the prior term ``E_q[log p(θ)]`` (and the guide's entropy).
``kl``
    ``log_likelihood (+ log_prior) - elbo``: ``KL(q(Z) || p(Z | X, θ_t)) ≥ 0`` when
    the ELBO is exact (0 for enumeration, ≥ 0 for the enumerated mean-field guide),
    plus the estimator's noise otherwise (it may then be negative); for a
    distributional global guide it also holds that guide's gap.
``grad_norm``, ``time``
    as for MAP (all optimized tensors, including ``assignment_probs``).

``result.objective`` is the final exact log-likelihood (plus the log prior at the
point for ``"delta"`` with a prior; the final ELBO estimate for a distributional or
callable guide); ``extras["labels"]`` the
MAP assignments under the model at the result; with the mean-field guide
``extras["assignment_probs"]`` holds the final ``q`` ``(N, K)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from mixtures.core.family import MixtureFamily
from mixtures.core.params import Params
from mixtures.core.result import FitResult
from mixtures.inference.pyro.common import run_pyro
from mixtures.inference.registry import register


@register("svi", summary="SVI with a delta, normal, mvn or custom guide; local step enumerated or mean-field",
          requires=frozenset({"program"}), distributed=True, budget_option="num_steps", passes="steps",
          own_labels=True, labels=True, freeze=True, missing=True, queries="program", covariance_floor=False,
          prior_required_by={"guide": ("normal", "mvn")},
          gap=("SVI: q_t is the guide's q(Z) at step t (0 when assignments are enumerated exactly; the "
               "mean-field q's KL to the exact posterior with local_guide: mean_field, including row 0, where "
               "q starts at the exact posterior)"),
          constraints={"local_guide": {"choices": ("enumerate", "mean_field")},
                       "local_estimator": {"choices": ("enumerate", "sample")}})
def fit_svi(model: MixtureFamily, X: Tensor, init: Params, *,
            guide: str | Callable[..., None] = "delta", local_guide: str = "enumerate",
            local_estimator: str = "enumerate", num_particles: int = 1,
            subsample_size: int | None = None, num_steps: int = 1000, lr: float = 0.05,
            betas: tuple[float, float] = (0.9, 0.999), lr_decay: float = 1.0, tol: float = 1e-7,
            patience: int | None | str = "auto", eval_every: int = 1, jit: bool = False,
            validate: bool = False, seed: int | None = 0, reg_covar: float | None = None,
            posterior_samples: int = 500,
            standardize: bool = True, distributed: bool = False,
            labels: Tensor | None = None, freeze: tuple[str, ...] = (),
            sample_weight: Tensor | None = None) -> FitResult:
    """SVI from ``init`` (see the module docstring for the guides).

    Args:
        model: the mixture specification.
        X: ``(N, D)`` validated data.
        init: starting ``MixtureParams`` (and, for the mean-field guide, its
            responsibilities start ``assignment_probs``).
        guide: ``"delta"``, ``"normal"`` / ``"mvn"`` (need a prior: ``AutoNormal`` /
            ``AutoMultivariateNormal`` over the global sites) or a callable ``guide(X)``.
        local_guide: ``"enumerate"`` or ``"mean_field"``.
        local_estimator: mean-field only: ``"enumerate"`` (exact expectation over
            ``q``) or ``"sample"`` (sampled ``z``, score-function gradients).
        num_particles: ELBO particles per step.
        subsample_size: minibatch size ``B`` of the data plate (``None``: all ``N``).
        num_steps, lr, betas, lr_decay, tol, patience, eval_every, jit, validate:
            as for :func:`mixtures.inference.map.fit_map`, except that
            ``patience="auto"`` disables early stopping when the loss is a
            noisy estimate (sampled guide sites or minibatches).
        seed: seeds minibatch and guide draws (``fit`` passes each restart's seed).
        reg_covar: unused (the program has no covariance floor).
        standardize: optimize on standardized data and map back (no prior only), so
            the result does not depend on the data's units (Adam's steps are absolute).
        posterior_samples: draws of the globals kept in ``result.posterior``
            (distributional guides of a model with a prior).
        labels: partial labels (``fit(..., labels=...)``, :mod:`mixtures.core.labels`).
        freeze: parameter groups held at their ``init`` values (``fit(..., freeze=...)``, :mod:`mixtures.core.freeze`).
        distributed: ``X`` is this rank's shard (``fit(..., distributed=True)``): the
            loss and the gradients of the globals are summed over ranks before every
            step, so every rank returns the same globals. ``guide="delta"`` only;
            the mean-field ``assignment_probs`` stay local to each rank (not
            all-reduced) and ``subsample_size`` is then the minibatch size of *each*
            rank (details in :func:`mixtures.inference.pyro.common.optimize`).
        sample_weight: ``(N,)`` point weights (``fit(..., sample_weight=...)``): each point's
            log-likelihood term counts ``w_n`` times (details in
            :func:`mixtures.inference.pyro.common.optimize`).
    """
    return run_pyro(model, X, init, method="svi", guide=guide, local_guide=local_guide,
                    local_estimator=local_estimator, num_steps=num_steps, lr=lr, betas=betas,
                    lr_decay=lr_decay, tol=tol, patience=patience, eval_every=eval_every,
                    num_particles=num_particles, subsample_size=subsample_size, jit=jit,
                    posterior_samples=posterior_samples, standardize=standardize,
                    validate=validate, seed=seed, reg_covar=reg_covar, distributed=distributed, labels=labels,
                    freeze=freeze, sample_weight=sample_weight)

