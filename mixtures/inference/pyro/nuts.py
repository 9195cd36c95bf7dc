"""``method="nuts"``: the posterior over a mixture's parameters by Pyro's NUTS, for any family.

The sampler runs the very program ``model.model(X)`` of a model with a prior (e.g.
``GaussianMixture(K, covariance_type, prior=GaussianPrior(...))``, conjugate or
non-conjugate, or ``PoissonMixture(K, prior=PoissonPrior())``):
``NUTS(model.model, max_plate_nesting=1)``. The assignments are
never sampled: the ``"assignment"`` site is marked ``enumerate="parallel"`` and
Pyro's HMC machinery sums it out exactly, so the target is the *collapsed*
posterior ``p(θ | X) ∝ p(θ) Π_n Σ_k π_k N(x_n | μ_k, Σ_k)`` and the potential
energy at ``θ`` is ``-(log p(θ) + log p(X | θ))`` (plus the log-Jacobian of the
map to unconstrained space; the test suite checks the identity to 1e-8).

Unconstrained space: every global site uses ``biject_to(site.support)``; the
Wishart ``"precision"`` sites of the Gaussian family's conjugate ``full``/``tied`` priors
use :class:`mixtures.families.gaussian.transforms.CholeskyPositiveDefiniteTransform` (a
vector of the ``D(D+1)/2`` free entries of a Cholesky factor with log-diagonal), which
``mixtures`` registers because PyTorch has none.

Chains
    ``num_chains`` chains (default 4), chain ``c`` seeded with the ``c``-th child seed of
    ``seed`` (``mixtures.validation.spawn_seeds``) via ``pyro.set_rng_seed``, every chain
    starting at the ``init`` parameters (``init_to_value(model.site_values(init))``). They run
    in parallel in ``chain_processes`` worker processes (default: one per chain, at most one
    per usable core; each worker uses one torch thread), or one after another in this process
    (``chain_processes=1``): :mod:`mixtures.inference.pyro.chains`. Either way a chain is the
    same function of its seed: same seed, same draws, bit for bit on CPU; the global torch,
    numpy and ``random`` states are restored afterwards. Draws are stored chain after chain:
    draw ``c * num_samples + i``. ``progress_bar=None`` shows one bar per chain on an
    interactive terminal (never under pytest, in CI or with standard error redirected).

Geometry (the collapsed potential; any family)
    ``noncentred`` samples component means as ``μ_k = loc_k + L_k z_k`` (all, or with ``"empty"``
    those of components nearly empty at ``init``): :mod:`mixtures.inference.pyro.noncentred`.
    Components no data reach (a noise component's placeholder cluster: the family's
    ``prior_only_components``) are not sampled at all: their draws are exact draws from their prior,
    which is their posterior (:meth:`~mixtures.inference.pyro.potential.CollapsedPotential.pin`; sampled,
    their Normal-Wishart prior's funnel held every divergent transition of a Gaussian + noise posterior).
    ``precondition`` starts warmup's mass matrix at the potential's inverse curvature at ``init``
    (:func:`mixtures.inference.pyro.potential.curvature_variances`). Both are off by default; together
    with a VB start they take a sparse Dirichlet process (empty components sampled from their funnel
    prior) from full-depth trees to depth 5-6 (README, "Priors").

Relabelling (label switching)
    The likelihood is invariant under permutations of the components, so a chain
    may swap labels. Every draw is aligned to a *reference*, the draw with the
    highest log joint ``log p(X, θ_s)`` over all chains (``extras
    ["relabel_reference"]``): the permutation minimizing the summed matching cost
    between the draw's components and the reference's (the family's
    ``match_costs``: for a Gaussian, squared Mahalanobis distances between the means
    under the reference covariances) is found by the Hungarian algorithm
    and applied to the draw's parameters (and to its per-component sites, for the
    diagnostics): :mod:`mixtures.inference.pyro.labels`. This pivot-based relabelling is an
    approximation to loss-based relabelling (Stephens 2000, JRSS-B 62:795): it is reliable when
    the components are well separated in the posterior, and meaningless when
    they are not, which is why the diagnostics are also computed on *label-invariant*
    quantities. ``extras["relabel_permutations"]`` ``(S, K)``: raw component
    ``perm[s, k]`` of draw ``s`` became component ``k``. ``relabel=False`` keeps
    the raw draws.

Diagnostics (``result.posterior.diagnostics``)
    ``"r_hat"``: site -> rank-normalized split R-hat (:mod:`mixtures.core.convergence`,
    Vehtari et al. 2021; across chains, and the halves of every chain), elementwise,
    shaped like the site, on the relabelled draws. ``"ess"``, ``"ess_tail"``: site -> bulk and
    tail effective sample sizes over all chains. Sites: ``"weights"`` (the relabelled weights;
    with the stick-breaking prior they stand in for ``"stick_fractions"``, which have no
    meaning after a permutation), ``"locs"`` and the covariance sites of the prior
    (``"precision"``, ``"corr_chol"``, ``"scales"``). Entries fixed by construction (the upper
    triangle and first diagonal entry of ``"corr_chol"``) get NaN.
    ``"invariant_r_hat"``, ``"invariant_ess"``, ``"invariant_ess_tail"``: the same on
    label-invariant quantities (:func:`~mixtures.inference.pyro.labels.invariant_quantities`:
    ``"log_likelihood"``, ``"sorted_weights"``, ``"co_clustering"`` of the most uncertain pairs
    of points, listed in ``"co_clustering_pairs"`` ``(M, 2)``).
    ``"num_divergences"`` (int) and, per chain, ``"divergences"`` (indices of divergent draws
    within the chain), ``"acceptance_rate"`` (Pyro's: the fraction of iterations that moved),
    ``"mean_accept_prob"`` (the mean NUTS acceptance statistic over the kept iterations, which
    step-size adaptation drives towards ``target_accept_prob``; 3 decimals) and
    ``"step_size"`` (after adaptation); per chain and kept draw, ``"energy"`` (the Hamiltonian at the
    start of the draw's trajectory, for ArviZ's BFMI) and ``"n_steps"`` (potential-and-gradient
    evaluations): :mod:`mixtures.inference.pyro.recording`. ``"problems"``: every failed check.

Validity (no silent failure)
    ``result.converged`` is True only when the run passes every check of
    :mod:`mixtures.inference.pyro.sampler_checks`: no divergence, step sizes and acceptance
    as adaptation should leave them, R-hat below ``max_r_hat`` (default 1.01) and bulk and
    tail ESS at least ``min_ess_per_chain`` (default 100) per chain, on the relabelled sites
    *and* the label-invariant quantities. Otherwise ``extras["problems"]`` lists what failed
    (named quantity, value, threshold) and a ``ConvergenceWarning`` says it (``warn=False``
    silences the warning, not the flag).

Result
    ``result.posterior``: :class:`~mixtures.core.posterior.Posterior` with
    ``kind="mcmc"`` of the ``S = num_chains * num_samples`` relabelled draws;
    ``result.params`` its mean (:meth:`Posterior.mean_params`);
    ``result.objective`` the mean log joint of the draws; ``n_iter =
    num_samples``. ``extras``: ``"samples"`` (the relabelled global sites by
    chain, ``(num_chains, num_samples, ...)``, the keys of the diagnostics),
    ``"invariants"`` (the label-invariant quantities by chain), ``"problems"``,
    ``"relabel_permutations"``, ``"relabel_reference"``, ``"chain_seeds"``,
    ``"chain_processes"`` and ``"labels"`` (most probable component of every point under
    ``params``).

History (one row per kept draw, in posterior order)
    ``iteration``: the draw's index ``s`` (0-based; row ``s`` is
    ``posterior.draw(s)``). ``log_likelihood``: exact ``log p(X | θ_s)``
    (the parameters' ``log_prob`` summed). ``elbo`` and ``kl``: NaN (MCMC has
    no ELBO). ``log_prior``: ``log p(θ_s)``. ``log_joint``: ``log p(X, θ_s) =
    log_prior + log_likelihood`` (the assignments summed out). ``chain``: the
    chain index. ``divergent``: 1.0 when the transition to this draw diverged.
    ``time``: seconds from the start of sampling (warmup included) until the
    draw was made. The log-joint columns are those of the draw as sampled
    (before relabelling): with an exchangeable prior (the default symmetric
    Dirichlet) relabelling does not change them.
"""


from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Any

import torch
from pyro import poutine
from pyro.infer.autoguide import init_to_value
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor
from torch.distributions import biject_to
from torch.distributions.transforms import Transform

from mixtures.core import convergence
from mixtures.core.family import COMPONENTS_PLATE, MAX_PLATE_NESTING, MixtureFamily
from mixtures.core.freeze import frozen_values, with_frozen
from mixtures.core.history import History
from mixtures.core.labels import labelled_log_likelihood
from mixtures.core.missing import has_missing
from mixtures.core.params import Params
from mixtures.core.posterior import Posterior
from mixtures.core.result import FitResult
from mixtures.core.validation import check_positive_int, spawn_seeds
from mixtures.errors import ConvergenceWarning, DivergenceError
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.chains import ChainRun, run_chains, show_progress, usable_cores
from mixtures.inference.pyro.labels import invariant_quantities, permute_components, relabel_draws
from mixtures.inference.pyro.recording import RecordingNUTS
from mixtures.inference.pyro.sampler_checks import ESS_PER_CHAIN, R_HAT_GOOD, sampler_problems
from mixtures.inference.registry import register

#: the R-hat threshold of ``result.converged`` (Vehtari et al. 2021)
R_HAT_THRESHOLD = R_HAT_GOOD

__all__ = ["fit_nuts", "make_kernel", "site_transforms", "relabel_draws", "permute_components",
           "R_HAT_THRESHOLD"]


# -- unconstrained space for Wishart sites ----------------------------------------------
def _sample_sites(trace) -> dict[str, dict]:
    """The prior's sample sites (the plates' own ``_Subsample`` sites left out)."""
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not isinstance(site["fn"], _Subsample)}


def _component_axes(model: MixtureFamily, X: Tensor, params: Params) -> dict[str, int | None]:
    """For every global site, the axis of its value that indexes components (None: shared).

    ``"weights"`` (Dirichlet) indexes components along its event dimension;
    sites in the ``"components"`` plate along that plate's batch dimension;
    ``"stick_fractions"`` and sites outside the plate (a shared covariance) are shared (None).
    """
    axes: dict[str, int | None] = {}
    for name, site in _sample_sites(model.prior_trace(model.site_values(params), X)).items():
        frames = [f for f in site["cond_indep_stack"] if f.name == COMPONENTS_PLATE]
        if name == "weights":
            axes[name] = 0
        elif frames:
            axes[name] = site["value"].dim() - site["fn"].event_dim + frames[0].dim
        else:
            axes[name] = None
    return axes


def site_transforms(model: MixtureFamily, X: Tensor, params: Params, held: tuple[str, ...] = ()
                    ) -> dict[str, Transform]:
    """Constrained -> unconstrained transform of every global site (what HMC's ``transforms`` expects).

    ``biject_to(support).inv`` for every site (positive-definite Wishart sites use
    :class:`mixtures.families.gaussian.transforms.CholeskyPositiveDefiniteTransform`,
    registered on import) but the ``held`` ones (frozen: not sampled). ``params`` only supplies a
    point at which to trace the program.
    """
    return {name: biject_to(site["fn"].support).inv
            for name, site in _sample_sites(model.prior_trace(model.site_values(params), X)).items()
            if name not in held}


def held_sites(model: MixtureFamily, init: Params, freeze: tuple[str, ...]) -> dict[str, Tensor]:
    """The prior's sites of the frozen groups and their values at ``init`` (the program is conditioned
    on them: constants, not sample sites of the sampler)."""
    if not freeze:
        return {}
    values = model.site_values(init)
    return {name: values[name].detach().clone() for name in model.frozen_prior_sites(tuple(freeze))}


def make_kernel(model: MixtureFamily, X: Tensor, init: Params, *, target_accept_prob: float = 0.8,
                max_tree_depth: int = 10, jit_compile: bool = False, full_mass: bool = False,
                labels: Tensor | None = None, sample_weight: Tensor | None = None,
                held: dict[str, Tensor] | None = None, noncentred: bool | str = False,
                precondition: bool = False) -> RecordingNUTS:
    """``NUTS(model.model, max_plate_nesting=1)`` started at ``init`` (not yet set up).

    The one place the sampler's potential energy is chosen: ``kernel.setup(warmup_steps, X)``
    builds it from the program, with the ``"assignment"`` site enumerated in parallel
    (summed out). Every chain (in this process or a worker) builds its kernel here. With partial
    ``labels`` the program's ``"labels"`` factor restricts labelled points (the collapsed potential,
    which has no such factor, is not used). With ``sample_weight`` ``(N,)`` the program is the
    weighted one (:meth:`~mixtures.core.family.MixtureFamily.weighted_model`, or the weighted fused pass).
    ``held`` ``{site: value}`` (frozen groups, :func:`held_sites`): the program conditioned on them
    (``poutine.condition``): the potential is the log joint at those values, they are not sampled.
    """
    _require_prior(model)
    model.check_params(init)
    held = held or {}
    everything = {name: value.detach().clone() for name, value in model.site_values(init).items()}
    start = {name: value for name, value in everything.items() if name not in held}
    transforms = site_transforms(model, X, init, tuple(held))
    # the same potential by one fused pass (it has no labels factor); for any family when the geometry is changed
    # or prior-only components (a noise component's placeholder) are to be drawn from their prior
    standard = _noncentred_components(X, init, noncentred, sample_weight)
    geometry = isinstance(standard, Tensor) or standard or precondition or bool(model.prior_only_components)
    if labels is None and potential.applies(model, X, init, jit_compile=jit_compile, any_family=geometry):
        return potential.collapsed_nuts(model, X, start, transforms, sample_weight, held=held,
                                        target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                                        full_mass=full_mass, precondition=precondition, noncentred=standard)
    cause = potential.nonfinite_start(model, X, everything, transforms, sample_weight)  # before Pyro's search
    if cause is not None:
        raise DivergenceError(f"NUTS: at the start, {cause}. {potential.START_FIXES}")
    program = model.model if labels is None and sample_weight is None else \
        functools.partial(model.model, labels=labels, sample_weight=sample_weight)
    if held:
        program = poutine.condition(program, data=held)
    return RecordingNUTS(program, max_plate_nesting=MAX_PLATE_NESTING,
                transforms=transforms,
                init_strategy=init_to_value(values=start, fallback=None),
                target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                jit_compile=jit_compile, ignore_jit_warnings=True, full_mass=full_mass)


def _warn_unused_geometry(model: MixtureFamily, X: Tensor, init: Params, noncentred: bool | str, precondition: bool,
                          jit_compile: bool, labels: Tensor | None) -> None:
    """A warning when ``noncentred`` or ``precondition`` was asked for but the program's path runs (which has
    neither): the chains then sample the centred geometry the option was meant to avoid."""
    asked = [name for name, value in (("noncentred", noncentred), ("precondition", precondition)) if value]
    if not asked or (labels is None and potential.applies(model, X, init, jit_compile=jit_compile, any_family=True)):
        return
    why = "partial labels" if labels is not None else "jit_compile" if jit_compile else \
        "missing values" if has_missing(X) else "the collapsed potential is switched off"
    warnings.warn(f"NUTS: {' and '.join(asked)} ignored: with {why} the sampler runs the program's own "
                  "potential, which samples the means centred from an identity mass matrix.", UserWarning,
                  stacklevel=4)


def _noncentred_components(X: Tensor, init: Params, noncentred: bool | str,
                           sample_weight: Tensor | None) -> bool | Tensor:
    """``noncentred`` as :func:`~mixtures.inference.pyro.potential.collapsed_nuts` takes it: a bool,
    or for ``"empty"`` the ``(K,)`` mask of the components holding fewer than ``D + 2`` points (summed
    responsibilities, weighted by ``sample_weight``) under ``init``: too few to pin their covariance
    down, so the prior's funnel shapes their posterior."""
    if isinstance(noncentred, bool):
        return noncentred
    if noncentred != "empty":
        raise ValueError(f"noncentred must be False, True or 'empty'; got {noncentred!r}.")
    with torch.no_grad():
        resp = init.joint_log_prob(X).softmax(-1)  # (N, K)
        counts = (resp if sample_weight is None else resp * sample_weight.unsqueeze(-1)).sum(0)
    return counts < X.shape[1] + 2


def _require_prior(model: MixtureFamily) -> None:
    if model.prior is None:
        raise ValueError(
            "method='nuts' samples the posterior over the mixture's parameters, so the model needs a "
            "prior: e.g. GaussianMixture(K, covariance_type, prior=mixtures.GaussianPrior()) "
            "(conjugate or kind='nonconjugate').")


# -- draws -> parameters ------------------------------------------------------------------
def _draws_to_params(model: MixtureFamily, X: Tensor, samples: dict[str, Tensor],
                     labels: Tensor | None = None, sample_weight: Tensor | None = None,
                     held: dict[str, Tensor] | None = None, frozen: dict[str, Tensor] | None = None
                     ) -> tuple[Params, Tensor, Tensor]:
    """Parameters and log densities of ``S`` draws of the global sites ``(S, ...)``.

    Returns the draws' parameters stacked (a leading draw dimension ``S``), ``log_prior``
    ``(S,)`` and ``log_likelihood`` ``(S,)``. One conditioned trace of the prior per draw
    gives both its parameters and ``log p(θ_s)``; the loop is over draws, each
    log-likelihood is vectorized over the data (weighted by ``sample_weight`` ``(N,)``). ``held``: the
    frozen sites' values (every draw's), ``frozen``: the frozen groups' parameter tensors, put back bit
    for bit (:func:`mixtures.core.freeze.with_frozen`).
    """
    S = next(iter(samples.values())).shape[0]
    draws, log_prior, log_likelihood = [], [], []
    with torch.no_grad():
        for s in range(S):
            trace = model.prior_trace({**(held or {}), **{name: value[s] for name, value in samples.items()}}, X)
            params = with_frozen(model, model.params_from_values(trace.nodes["_RETURN"]["value"]), frozen or {})
            draws.append(params)
            log_prior.append(trace.log_prob_sum())
            log_likelihood.append(labelled_log_likelihood(params, X, labels, sample_weight))
    return model.params_type.stack(draws), torch.stack(log_prior), torch.stack(log_likelihood)


# -- diagnostics --------------------------------------------------------------------------
def _fixed_entries(name: str, shape: torch.Size, device: torch.device) -> Tensor:
    """Entries of a site that are constant by construction: ``(shape)`` bool.

    The Cholesky factor of a correlation matrix: its upper triangle is 0 and its first
    diagonal entry is 1; the weights of a one-component mixture (always 1). (A chain
    that does not move leaves the other entries constant too; their R-hat is NaN and
    counts as a problem.)
    """
    fixed = torch.zeros(shape, dtype=torch.bool, device=device)
    if name == "weights" and len(shape) and shape[-1] == 1:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if name == "corr_chol":
        D = shape[-1]
        pattern = torch.ones(D, D, dtype=torch.bool, device=device).triu(1)
        pattern[0, 0] = True
        fixed = pattern.expand(shape).clone()
    return fixed


def _mixing(sites: dict[str, Tensor], fixed: dict[str, Tensor]) -> tuple[dict, dict, dict]:
    """Rank-normalized R-hat, bulk ESS and tail ESS of every quantity ``(C, S, ...)``;
    entries fixed by construction get NaN."""
    r_hat, ess, ess_tail = {}, {}, {}
    for name, values in sites.items():
        mask = fixed.get(name)
        for out, statistic in ((r_hat, convergence.r_hat), (ess, convergence.ess_bulk),
                               (ess_tail, convergence.ess_tail)):
            value = statistic(values).to(values.device)
            out[name] = value if mask is None else torch.where(mask, torch.full_like(value, math.nan), value)
    return r_hat, ess, ess_tail


# -- the routine --------------------------------------------------------------------------
def _check_options(warmup: int, num_samples: int, num_chains: int, target_accept_prob: float,
                   max_tree_depth: int, chain_processes: int | None, max_r_hat: float,
                   min_ess_per_chain: float) -> None:
    check_positive_int(warmup, "warmup", minimum=0)
    check_positive_int(num_samples, "num_samples", minimum=4)  # split R-hat needs 4 draws per chain
    check_positive_int(num_chains, "num_chains")
    check_positive_int(max_tree_depth, "max_tree_depth")
    if chain_processes is not None:
        check_positive_int(chain_processes, "chain_processes")
    if isinstance(target_accept_prob, bool) or not 0 < float(target_accept_prob) < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1); got {target_accept_prob!r}.")
    if isinstance(max_r_hat, bool) or not float(max_r_hat) > 1:
        raise ValueError(f"max_r_hat must be a number above 1 (1.01 recommended); got {max_r_hat!r}.")
    if isinstance(min_ess_per_chain, bool) or not float(min_ess_per_chain) >= 0:
        raise ValueError(f"min_ess_per_chain must be a number >= 0 (100 recommended); got {min_ess_per_chain!r}.")


@register("nuts", summary="Pyro's NUTS on the program with the assignments summed out, chains in parallel",
          requires=frozenset({"program"}), prior="required", budget_option=None, tol_option=None,
          passes="none", own_labels=True, labels=True, training_likelihood=False, covariance_floor=False,
          missing=True, freeze=True,
          trial_options={"warmup": 2, "num_samples": 4, "max_tree_depth": 3, "progress_bar": False},
          gap="NUTS: no ELBO (MCMC draws)",
          constraints={"warmup": {"minimum": 0}, "num_samples": {"minimum": 4}, "num_chains": {"minimum": 1},
                       "chain_processes": {"minimum": 1}, "max_tree_depth": {"minimum": 1},
                       "target_accept_prob": {"minimum": 0, "exclusive_minimum": True, "maximum": 1},
                       "max_r_hat": {"minimum": 1, "exclusive_minimum": True},
                       "min_ess_per_chain": {"minimum": 0}})
def fit_nuts(model: MixtureFamily, X: Tensor, init: Params, *, reg_covar: float = 1e-6,
             seed: int | None = 0, warmup: int = 300, num_samples: int = 500, num_chains: int = 4,
             chain_processes: int | None = None, target_accept_prob: float = 0.8, max_tree_depth: int = 10,
             jit_compile: bool = False, full_mass: bool = False, noncentred: bool | str = False,
             precondition: bool = False, relabel: bool = True,
             progress_bar: bool | None = None, max_r_hat: float = R_HAT_GOOD,
             min_ess_per_chain: float = ESS_PER_CHAIN, warn: bool = True, labels: Tensor | None = None,
             sample_weight: Tensor | None = None, freeze: tuple[str, ...] = ()) -> FitResult:
    """Sample ``p(θ | X)`` with NUTS, assignments summed out (module docstring).

    Args:
        model: a family with a prior.
        X: ``(N, D)`` validated data.
        init: where every chain starts (parameters of the model).
        reg_covar: unused by the sampler (the prior keeps covariances regular);
            accepted because :func:`mixtures.fit` passes it (it shaped ``init``).
        seed: chain ``c`` uses the ``c``-th child seed; ``None`` draws fresh seeds.
        warmup: adaptation steps per chain (step size and diagonal/full mass matrix).
        num_samples: kept draws per chain (at least 4).
        num_chains: chains (4 by default: R-hat across chains is what shows a chain stuck
            in one mode).
        chain_processes: worker processes running the chains in parallel; ``None``: one per
            chain, at most the usable cores; 1: one after another in this process.
        target_accept_prob, max_tree_depth: NUTS settings.
        jit_compile: trace the program's potential energy with the PyTorch JIT (the traced
            potential equals the eager one: the test suite checks values and gradients). It
            replaces the collapsed potential (one fused pass, :mod:`.potential`), which is faster
            than the traced program: leave it off unless comparing the two.
        full_mass: adapt a dense mass matrix instead of a diagonal one.
        noncentred: sample the component means in standard coordinates, ``μ_k = loc_k + L_k z_k``
            (:mod:`mixtures.inference.pyro.noncentred`): the cure for the funnel of empty components'
            means under a conjugate prior (a sparse Dirichlet process); ``"empty"``: only the components
            holding fewer than ``D + 2`` points at ``init`` (the others, which the data pin down, sample
            best centred). The draws are the model's parameters either way. Any family (one without a
            fused pass, a t, gets the collapsed potential with the likelihood from its program's pieces
            for it); on the program's path (``jit_compile``, partial labels, missing values) it cannot
            apply, and a warning says so.
        precondition: start warmup's mass matrix at the inverse curvature of the potential at ``init``
            (:func:`~mixtures.inference.pyro.potential.curvature_variances`) instead of the identity:
            pays when the coordinates' scales differ widely (data in raw units, many components) and
            ``init`` is near the posterior (e.g. a VB fit's ``params``). Any family, as ``noncentred``
            (and, like it, with a warning where the program's path runs).
        relabel: align the draws' components to the reference draw (module docstring).
        progress_bar: one progress bar per chain; ``None``: only on an interactive terminal.
        max_r_hat, min_ess_per_chain: the validity thresholds (module docstring).
        warn: emit a ``ConvergenceWarning`` naming the problems of an invalid run.
        labels: partial labels (``fit(..., labels=...)``, :mod:`mixtures.core.labels`): the program's
            ``"labels"`` factor fixes the labelled points' assignments; the draws are not relabelled
            (the labels name the components) and the history's ``log_likelihood`` is the labelled one.
        sample_weight: ``(N,)`` point weights (``fit(..., sample_weight=...)``): the target is
            ``p(θ) Π_n p(x_n | θ)^{w_n}`` (integer weights: the posterior of the data with rows
            repeated; the potential energy and its gradient are those of the repeated data at
            every point); the draws' ``log_likelihood`` is weighted.
        freeze: parameter groups held at their values in ``init`` (:mod:`mixtures.core.freeze`): the
            program is conditioned on their prior sites (``poutine.condition``), so the target is
            ``p(θ_free | θ_frozen, X)``: its potential is the log joint at the frozen values, which are
            not sample sites; every draw holds them bit for bit, the draws are not relabelled (the
            frozen values name the components) and the diagnostics cover the free sites only. The
            history's ``log_prior`` is ``log p(θ_free, θ_frozen)``.
    """
    _require_prior(model)
    model.check_params(init)
    _check_options(warmup, num_samples, num_chains, target_accept_prob, max_tree_depth, chain_processes,
                   max_r_hat, min_ess_per_chain)
    chain_seeds = spawn_seeds(seed, num_chains)
    held, frozen = held_sites(model, init, freeze), frozen_values(model, init, tuple(freeze))
    processes = min(num_chains, usable_cores()) if chain_processes is None else min(chain_processes, num_chains)
    _warn_unused_geometry(model, X, init, noncentred, precondition, jit_compile, labels)
    kernel = functools.partial(make_kernel, model, X, init, target_accept_prob=target_accept_prob,
                               max_tree_depth=max_tree_depth, jit_compile=jit_compile, full_mass=full_mass,
                               labels=labels, sample_weight=sample_weight, held=held, noncentred=noncentred,
                               precondition=precondition)
    start = time.perf_counter()
    chains = run_chains(kernel, X, chain_seeds, warmup, num_samples, model.fitting, processes,
                        show_progress(progress_bar))
    samples = {name: torch.cat([chain.samples[name] for chain in chains]) for name in chains[0].samples}
    draws, log_prior, log_likelihood = _draws_to_params(model, X, samples, labels, sample_weight, held, frozen)
    # labelled points (or frozen values) name the components: no switching to undo
    relabel = relabel and labels is None and not freeze
    log_joint = log_prior + log_likelihood
    if not torch.isfinite(log_joint).all():
        raise FloatingPointError("a NUTS draw has a non-finite log joint density; standardize the data "
                                 "or use a more informative prior.")
    reference = int(log_joint.argmax())
    S, K = draws.weights.shape
    perms = relabel_draws(draws, draws.index(reference)) if relabel else \
        torch.arange(K, device=draws.device).expand(S, K).clone()
    draws = draws.permuted(perms)
    grouped = _grouped_sites(model, X, init, samples, draws, perms, num_chains, num_samples,
                             skip=tuple(held) + (("weights",) if "weights" in freeze else ()))
    invariants, pairs = invariant_quantities(draws, X, log_likelihood, num_chains)
    if "weights" in freeze:  # constant: nothing to mix
        invariants.pop("sorted_weights", None)
    fixed = {name: _fixed_entries(name, value.shape[2:], value.device) for name, value in grouped.items()}
    diagnostics = _diagnostics(chains, grouped, fixed, invariants, pairs)
    problems = sampler_problems(diagnostics, fixed, num_samples, target_accept_prob, max_r_hat, min_ess_per_chain)
    diagnostics["problems"] = problems
    diagnostics["thresholds"] = {"max_r_hat": float(max_r_hat), "min_ess_per_chain": float(min_ess_per_chain)}
    if problems and warn:
        warnings.warn("NUTS did not produce a valid posterior: " + "; ".join(problems) + ".",
                      ConvergenceWarning, stacklevel=3)
    posterior = Posterior(draws, kind="mcmc", diagnostics=diagnostics)
    history = _history(log_likelihood, log_prior, [t - start for chain in chains for t in chain.times],
                       diagnostics["divergences"], num_samples)
    params = with_frozen(model, posterior.mean_params(), frozen)  # the mean of constant draws, exactly
    extras: dict[str, Any] = {"relabel_permutations": perms, "relabel_reference": reference,
                              "chain_seeds": chain_seeds, "chain_processes": processes, "samples": grouped,
                              "invariants": invariants, "problems": problems,
                              "labels": params.joint_log_prob(X).argmax(-1)}
    if labels is not None:  # a labelled point's assignment is its label
        extras["labels"] = torch.where(labels >= 0, labels, extras["labels"])
    return FitResult(model=model, params=params, history=history, converged=not problems,
                     n_iter=num_samples, method="nuts", objective=float(log_joint.mean()), init=init,
                     extras=extras, posterior=posterior)


def _diagnostics(chains: list[ChainRun], grouped: dict[str, Tensor], fixed: dict[str, Tensor],
                 invariants: dict[str, Tensor], pairs: Tensor) -> dict[str, Any]:
    """``posterior.diagnostics`` (module docstring) from the chains' statistics and their draws."""
    r_hat, ess, ess_tail = _mixing(grouped, fixed)
    invariant_r_hat, invariant_ess, invariant_ess_tail = _mixing(invariants, {})
    divergences = [chain.divergences for chain in chains]
    return {
        "r_hat": r_hat, "ess": ess, "ess_tail": ess_tail,
        "invariant_r_hat": invariant_r_hat, "invariant_ess": invariant_ess, "invariant_ess_tail": invariant_ess_tail,
        "co_clustering_pairs": pairs,
        "num_divergences": sum(len(d) for d in divergences),
        "divergences": divergences,
        "acceptance_rate": [chain.acceptance_rate for chain in chains],
        "mean_accept_prob": [chain.mean_accept_prob for chain in chains],
        "step_size": [chain.step_size for chain in chains],
        "energy": [chain.energy for chain in chains],
        "n_steps": [chain.n_steps for chain in chains],
    }


def _grouped_sites(model: MixtureFamily, X: Tensor, init: Params, samples: dict[str, Tensor], draws: Params,
                   perms: Tensor, num_chains: int, num_samples: int, skip: tuple[str, ...] = ()) -> dict[str, Tensor]:
    """The relabelled weights and per-component sites by chain, ``(C, S, ...)`` (what the
    diagnostics are computed on). With stick-breaking weights the relabelled weights stand in
    for ``"stick_fractions"``, which have no meaning after a permutation. ``skip``: frozen sites
    (constants, no mixing to measure)."""
    relabelled = {} if "weights" in skip else {"weights": draws.weights}
    for name, axis in _component_axes(model, X, init).items():
        if name in ("weights", "stick_fractions") or name in skip:
            continue
        value = samples[name]
        relabelled[name] = value if axis is None else permute_components(value, perms, axis)
    return {name: value.reshape((num_chains, num_samples) + value.shape[1:]) for name, value in relabelled.items()}


def _history(log_likelihood: Tensor, log_prior: Tensor, times: list[float], divergences: list[list[int]],
             num_samples: int) -> History:
    """One row per kept draw (module docstring)."""
    divergent = torch.zeros(log_likelihood.shape[0], dtype=torch.float64)
    for c, chain_divergences in enumerate(divergences):
        for i in chain_divergences:
            if 0 <= i < num_samples:
                divergent[c * num_samples + i] = 1.0
    history = History()
    log_joint = log_prior + log_likelihood
    for s, (ll, lp, lj) in enumerate(zip(log_likelihood.tolist(), log_prior.tolist(), log_joint.tolist())):
        history.append(iteration=s, log_likelihood=ll, elbo=math.nan, kl=math.nan, time=times[s],
                       log_prior=lp, log_joint=lj, chain=s // num_samples, divergent=float(divergent[s]))
    return history
