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
    ``num_chains`` chains run one after another in this process (one
    ``pyro.infer.MCMC`` per chain, no multiprocessing), chain ``c`` seeded with
    the ``c``-th child seed of ``seed`` (``mixtures.validation.spawn_seeds``) via
    ``pyro.set_rng_seed``; the global torch, numpy and ``random`` states are
    restored afterwards. Same seed, same draws, bit for bit on CPU. Every chain
    starts at the ``init`` parameters (``init_to_value(model.site_values(init))``).
    Draws are stored chain after chain: draw ``c * num_samples + i``.

Relabelling (label switching)
    The likelihood is invariant under permutations of the components, so a chain
    may swap labels. Every draw is aligned to a *reference*, the draw with the
    highest log joint ``log p(X, θ_s)`` over all chains (``extras
    ["relabel_reference"]``): the permutation minimizing the summed matching cost
    between the draw's components and the reference's (the family's
    ``match_costs``: for a Gaussian, squared Mahalanobis distances between the means
    under the reference covariances) is found by the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``) and applied to the draw's parameters
    (and to its per-component sites, for the diagnostics). This pivot-based relabelling is an approximation to
    loss-based relabelling (Stephens 2000, JRSS-B 62:795): it is reliable when
    the components are well separated in the posterior, and meaningless when
    they are not. ``extras["relabel_permutations"]`` ``(S, K)``: raw component
    ``perm[s, k]`` of draw ``s`` became component ``k``. ``relabel=False`` keeps
    the raw draws.

Diagnostics (``result.posterior.diagnostics``), computed *after* relabelling
    ``"r_hat"``: site -> split Gelman–Rubin R-hat (``pyro.ops.stats
    .split_gelman_rubin``; across chains when ``num_chains >= 2``, else the two
    halves of the single chain), elementwise, shaped like the site. ``"ess"``:
    site -> effective sample size over all chains (``effective_sample_size``).
    Sites: ``"weights"`` (the relabelled weights; with the stick-breaking prior
    they stand in for ``"stick_fractions"``, which have no meaning after a
    permutation), ``"locs"`` and the covariance sites of the prior
    (``"precision"``, ``"corr_chol"``, ``"scales"``). Entries fixed by
    construction (the upper triangle and first diagonal entry of ``"corr_chol"``)
    get NaN. ``"num_divergences"`` (int) and, per chain, ``"divergences"``
    (indices of divergent draws within the chain), ``"acceptance_rate"`` (Pyro's:
    the fraction of iterations that moved), ``"mean_accept_prob"`` (the mean
    NUTS acceptance statistic over the kept iterations, which step-size
    adaptation drives towards ``target_accept_prob``; 3 decimals) and
    ``"step_size"`` (after adaptation).
    ``result.converged`` is True when every R-hat entry that is not NaN by the
    rule above is below 1.05 (Vehtari et al. 2021 recommend 1.01 for final
    reports; 1.05 is the classic threshold, suited to the short chains here).

Result
    ``result.posterior``: :class:`~mixtures.core.posterior.Posterior` with
    ``kind="mcmc"`` of the ``S = num_chains * num_samples`` relabelled draws;
    ``result.params`` its mean (:meth:`Posterior.mean_params`);
    ``result.objective`` the mean log joint of the draws; ``n_iter =
    num_samples``. ``extras``: ``"samples"`` (the relabelled global sites by
    chain, ``(num_chains, num_samples, ...)``, the keys of the diagnostics),
    ``"relabel_permutations"``, ``"relabel_reference"``, ``"chain_seeds"`` and
    ``"labels"`` (most probable component of every point under ``params``).

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

import contextlib
import math
import random
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide import init_to_value
from pyro.ops import stats
from pyro.poutine.subsample_messenger import _Subsample
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.distributions import biject_to
from torch.distributions.transforms import Transform

from mixtures.core.family import COMPONENTS_PLATE, MAX_PLATE_NESTING, MixtureFamily
from mixtures.core.history import History
from mixtures.core.params import Params
from mixtures.core.posterior import Posterior
from mixtures.core.result import FitResult
from mixtures.core.validation import check_positive_int, spawn_seeds
from mixtures.errors import DivergenceError
from mixtures.inference.registry import register

#: the R-hat threshold of ``result.converged``
R_HAT_THRESHOLD = 1.05

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


def site_transforms(model: MixtureFamily, X: Tensor, params: Params) -> dict[str, Transform]:
    """Constrained -> unconstrained transform of every global site (what HMC's ``transforms`` expects).

    ``biject_to(support).inv`` for every site (positive-definite Wishart sites use
    :class:`mixtures.families.gaussian.transforms.CholeskyPositiveDefiniteTransform`,
    registered on import). ``params`` only supplies a point at which to trace the program.
    """
    return {name: biject_to(site["fn"].support).inv
            for name, site in _sample_sites(model.prior_trace(model.site_values(params), X)).items()}


def make_kernel(model: MixtureFamily, X: Tensor, init: Params, *, target_accept_prob: float = 0.8,
                max_tree_depth: int = 10, jit_compile: bool = False, full_mass: bool = False) -> NUTS:
    """``NUTS(model.model, max_plate_nesting=1)`` started at ``init`` (not yet set up).

    ``kernel.setup(warmup_steps, X)`` builds the potential energy; the
    ``"assignment"`` site is enumerated in parallel (summed out).
    """
    _require_prior(model)
    model.check_params(init)
    start = {name: value.detach().clone() for name, value in model.site_values(init).items()}
    return NUTS(model.model, max_plate_nesting=MAX_PLATE_NESTING,
                transforms=site_transforms(model, X, init),
                init_strategy=init_to_value(values=start, fallback=None),
                target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                jit_compile=jit_compile, ignore_jit_warnings=True, full_mass=full_mass)


def _require_prior(model: MixtureFamily) -> None:
    if model.prior is None:
        raise ValueError(
            "method='nuts' samples the posterior over the mixture's parameters, so the model needs a "
            "prior: e.g. GaussianMixture(K, covariance_type, prior=mixtures.GaussianPrior()) "
            "(conjugate or kind='nonconjugate').")


# -- seeding ------------------------------------------------------------------------------
@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """``pyro.set_rng_seed(seed)`` inside; torch, numpy and ``random`` global states restored after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            pyro.set_rng_seed(int(seed))
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


# -- draws -> parameters ------------------------------------------------------------------
def _draws_to_params(model: MixtureFamily, X: Tensor, samples: dict[str, Tensor]) -> tuple[Params, Tensor, Tensor]:
    """Parameters and log densities of ``S`` draws of the global sites ``(S, ...)``.

    Returns the draws' parameters stacked (a leading draw dimension ``S``), ``log_prior``
    ``(S,)`` and ``log_likelihood`` ``(S,)``. One conditioned trace of the prior per draw
    gives both its parameters and ``log p(θ_s)``; the loop is over draws, each
    log-likelihood is vectorized over the data.
    """
    S = next(iter(samples.values())).shape[0]
    draws, log_prior, log_likelihood = [], [], []
    with torch.no_grad():
        for s in range(S):
            trace = model.prior_trace({name: value[s] for name, value in samples.items()}, X)
            params = model.params_from_values(trace.nodes["_RETURN"]["value"])
            draws.append(params)
            log_prior.append(trace.log_prob_sum())
            log_likelihood.append(params.log_prob(X).sum())
    return model.params_type.stack(draws), torch.stack(log_prior), torch.stack(log_likelihood)


# -- relabelling --------------------------------------------------------------------------
def relabel_draws(draws: Params, reference: Params) -> Tensor:
    """Permutations aligning each draw's components to ``reference``: ``(S, K)`` long.

    ``perm[s, k]`` is the component of draw ``s`` matched to reference component ``k``: the
    assignment minimizing the summed matching cost (``draws.match_costs(reference)``; for a
    Gaussian ``Σ_k (μ_{s,perm[k]} - m_k)ᵀ Σ_k⁻¹ (μ_{s,perm[k]} - m_k)`` with the reference
    means and covariances), by the Hungarian algorithm.

    Args:
        draws: the draws' parameters with a leading draw dimension ``S``.
        reference: the reference mixture (K components).
    """
    S, K = draws.weights.shape
    if reference.n_components != K or reference.n_features != draws.n_features:
        raise ValueError(f"reference has K={reference.n_components}, D={reference.n_features}; "
                         f"the draws have K={K}, D={draws.n_features}.")
    # cost[s, j, k]: draw component j against reference component k
    cost = draws.match_costs(reference).cpu().numpy()
    perms = torch.empty(S, K, dtype=torch.long)
    for s in range(S):  # one small assignment problem per draw (K x K)
        rows, cols = linear_sum_assignment(cost[s].T)
        perms[s, torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perms.to(draws.device)


def permute_components(values: Tensor, perms: Tensor, axis: int) -> Tensor:
    """Reorder the component axis of draws: ``values`` ``(S, ...)`` with components at ``1 + axis``."""
    dim = 1 + axis
    shape = [1] * values.dim()
    shape[0], shape[dim] = perms.shape
    index = perms.reshape(shape).expand(*values.shape[:dim], perms.shape[1], *values.shape[dim + 1:])
    return values.gather(dim, index)


# -- diagnostics --------------------------------------------------------------------------
def _fixed_entries(name: str, shape: torch.Size, device: torch.device) -> Tensor:
    """Entries of a site that are constant by construction: ``(shape)`` bool.

    Only the Cholesky factor of a correlation matrix has any: its upper triangle
    is 0 and its first diagonal entry is 1. (A chain that does not move leaves
    the other entries constant too; their R-hat is NaN and counts as not converged.)
    """
    fixed = torch.zeros(shape, dtype=torch.bool, device=device)
    if name == "corr_chol":
        D = shape[-1]
        pattern = torch.ones(D, D, dtype=torch.bool, device=device).triu(1)
        pattern[0, 0] = True
        fixed = pattern.expand(shape).clone()
    return fixed


def _diagnostics(sites: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], bool]:
    """Split R-hat and ESS of every site ``(C, S, ...)``; and whether all R-hat < threshold."""
    r_hat, ess = {}, {}
    converged = True
    for name, values in sites.items():
        constant = _fixed_entries(name, values.shape[2:], values.device)
        site_r_hat = stats.split_gelman_rubin(values, chain_dim=0, sample_dim=1)
        site_ess = stats.effective_sample_size(values, chain_dim=0, sample_dim=1)
        nan = torch.full_like(site_r_hat, math.nan)
        r_hat[name] = torch.where(constant, nan, site_r_hat)
        ess[name] = torch.where(constant, nan, site_ess)
        checked = r_hat[name][~constant]
        # a NaN R-hat of a varying entry fails the comparison: not converged
        converged = converged and bool((checked < R_HAT_THRESHOLD).all())
    return r_hat, ess, converged


# -- the routine --------------------------------------------------------------------------
def _check_options(warmup: int, num_samples: int, num_chains: int, target_accept_prob: float,
                   max_tree_depth: int) -> None:
    check_positive_int(warmup, "warmup", minimum=0)
    check_positive_int(num_samples, "num_samples", minimum=4)  # split R-hat needs 4 draws per chain
    check_positive_int(num_chains, "num_chains")
    check_positive_int(max_tree_depth, "max_tree_depth")
    if isinstance(target_accept_prob, bool) or not 0 < float(target_accept_prob) < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1); got {target_accept_prob!r}.")


@register("nuts", summary="Pyro's NUTS on the program with the assignments summed out",
          requires=frozenset({"program"}), prior="required", budget_option=None, tol_option=None,
          passes="none", own_labels=True, training_likelihood=False, covariance_floor=False,
          gap="NUTS: no ELBO (MCMC draws)",
          constraints={"warmup": {"minimum": 0}, "num_samples": {"minimum": 4}, "num_chains": {"minimum": 1},
                       "max_tree_depth": {"minimum": 1},
                       "target_accept_prob": {"minimum": 0, "exclusive_minimum": True}})
def fit_nuts(model: MixtureFamily, X: Tensor, init: Params, *, reg_covar: float = 1e-6,
             seed: int | None = 0, warmup: int = 300, num_samples: int = 500, num_chains: int = 1,
             target_accept_prob: float = 0.8, max_tree_depth: int = 10, jit_compile: bool = False,
             full_mass: bool = False, relabel: bool = True, progress_bar: bool = False) -> FitResult:
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
        num_chains: chains, run one after another.
        target_accept_prob, max_tree_depth: NUTS settings.
        jit_compile: trace the potential energy with the PyTorch JIT.
        full_mass: adapt a dense mass matrix instead of a diagonal one.
        relabel: align the draws' components to the reference draw (module docstring).
        progress_bar: show Pyro's progress bar.
    """
    _require_prior(model)
    model.check_params(init)
    _check_options(warmup, num_samples, num_chains, target_accept_prob, max_tree_depth)
    chain_seeds = spawn_seeds(seed, num_chains)
    kernel_options = dict(target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                          jit_compile=jit_compile, full_mass=full_mass)
    chains, infos, times = _run_chains(model, X, init, chain_seeds, warmup, num_samples, progress_bar,
                                       kernel_options)
    samples = {name: torch.cat([chain[name] for chain in chains]) for name in chains[0]}
    draws, log_prior, log_likelihood = _draws_to_params(model, X, samples)
    log_joint = log_prior + log_likelihood
    if not torch.isfinite(log_joint).all():
        raise FloatingPointError("a NUTS draw has a non-finite log joint density; standardize the data "
                                 "or use a more informative prior.")
    reference = int(log_joint.argmax())
    S, K = draws.weights.shape
    perms = relabel_draws(draws, draws.index(reference)) if relabel else \
        torch.arange(K, device=draws.device).expand(S, K).clone()
    draws = draws.permuted(perms)
    grouped = _grouped_sites(model, X, init, samples, draws, perms, num_chains, num_samples)
    r_hat, ess, converged = _diagnostics(grouped)
    divergences = [info.get("divergences", []) for info in infos]
    diagnostics = {
        "r_hat": r_hat, "ess": ess,
        "num_divergences": sum(len(d) for d in divergences),
        "divergences": divergences,
        "acceptance_rate": [info.get("acceptance_rate", math.nan) for info in infos],
        "mean_accept_prob": [info.get("mean_accept_prob", math.nan) for info in infos],
        "step_size": [info.get("step_size", math.nan) for info in infos],
    }
    posterior = Posterior(draws, kind="mcmc", diagnostics=diagnostics)
    history = _history(log_likelihood, log_prior, times, divergences, num_samples)
    params = posterior.mean_params()
    extras: dict[str, Any] = {"relabel_permutations": perms, "relabel_reference": reference,
                              "chain_seeds": chain_seeds, "samples": grouped,
                              "labels": params.joint_log_prob(X).argmax(-1)}
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=num_samples, method="nuts", objective=float(log_joint.mean()), init=init,
                     extras=extras, posterior=posterior)


def _run_chains(model: MixtureFamily, X: Tensor, init: Params, chain_seeds: list[int], warmup: int,
                num_samples: int, progress_bar: bool, kernel_options: dict[str, Any]
                ) -> tuple[list[dict[str, Tensor]], list[dict[str, Any]], list[float]]:
    """Run one chain per seed, one after another: ``(samples per chain, sampler facts per chain,
    the time each kept draw was made)``."""
    chains: list[dict[str, Tensor]] = []
    times: list[float] = []
    infos: list[dict[str, Any]] = []
    start = time.perf_counter()
    for chain_seed in chain_seeds:
        info: dict[str, Any] = {}

        def hook(kernel, params, stage, i, info=info):
            if stage.startswith("Sample"):
                times.append(time.perf_counter() - start)
                if i == num_samples - 1:
                    diagnostics = kernel.diagnostics()
                    info["divergences"] = [int(d) for d in diagnostics.get("divergences", [])]
                    info["acceptance_rate"] = float(diagnostics.get("acceptance rate", math.nan))
                    info["mean_accept_prob"] = float(kernel.logging().get("acc. prob", math.nan))
                    info["step_size"] = float(kernel.step_size)

        with _seeded(chain_seed, X.device), model.fitting(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            kernel = make_kernel(model, X, init, **kernel_options)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, disable_progbar=not progress_bar,
                        hook_fn=hook)
            try:
                mcmc.run(X)
            except ValueError as error:
                if "valid initial params" not in str(error):
                    raise
                # Pyro found no start with a finite potential energy and gradient
                raise DivergenceError(
                    "NUTS: the log joint density or its gradient is not finite at the start (or at "
                    "any point Pyro tried near it): the data are badly scaled for the prior or float32 "
                    "overflows. Standardize the data, fit in float64, or start from an EM fit "
                    "(init=mixtures.fit(model, X, 'em').params).") from None
            chains.append({name: value.detach() for name, value in mcmc.get_samples().items()})
        infos.append(info)
    return chains, infos, times


def _grouped_sites(model: MixtureFamily, X: Tensor, init: Params, samples: dict[str, Tensor], draws: Params,
                   perms: Tensor, num_chains: int, num_samples: int) -> dict[str, Tensor]:
    """The relabelled weights and per-component sites by chain, ``(C, S, ...)`` (what the
    diagnostics are computed on). With stick-breaking weights the relabelled weights stand in
    for ``"stick_fractions"``, which have no meaning after a permutation."""
    relabelled = {"weights": draws.weights}
    for name, axis in _component_axes(model, X, init).items():
        if name in ("weights", "stick_fractions"):
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
