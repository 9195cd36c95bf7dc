"""Whether a NUTS run explored its posterior: every check a reference posterior must pass.

A run is *valid* (``result.converged``) only when all of these hold; each failed check is a
sentence in ``result.extras["problems"]`` (and ``posterior.diagnostics["problems"]``) naming the
quantity, its value and the threshold, and the routine warns with all of them:

* no divergent transition after warmup (a divergence means the integrator left the
  posterior's typical set: the draws near it are biased);
* every chain's adapted step size above :data:`MIN_STEP_SIZE` (a collapsed step size, e.g.
  2e-41 from a broken potential, means every trajectory failed during adaptation);
* every chain's mean acceptance statistic within :data:`ACCEPTANCE_MARGIN` of
  ``target_accept_prob`` (adaptation drives it there), and some kept iteration moved;
* R-hat (rank-normalized, :mod:`mixtures.core.convergence`) below ``max_r_hat`` for every
  entry of the relabelled sites and of the label-invariant quantities; an entry that never
  changed (R-hat undefined) where it is free to vary means the chains did not move;
* bulk and tail ESS of the same entries at least ``min_ess_per_chain`` per chain.

Defaults follow Vehtari et al. (2021): R-hat < 1.01 and ESS > 100 per chain.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixtures.core.convergence import ESS_PER_CHAIN, R_HAT_GOOD

__all__ = ["sampler_problems", "MIN_STEP_SIZE", "ACCEPTANCE_MARGIN", "R_HAT_GOOD", "ESS_PER_CHAIN"]

#: an adapted step size below this (in unconstrained units) has collapsed
MIN_STEP_SIZE = 1e-5
#: a chain's mean acceptance statistic further than this below the target failed to adapt
ACCEPTANCE_MARGIN = 0.25


def _worst(values: dict[str, Tensor], fixed: dict[str, Tensor], largest: bool) -> tuple[str, float] | None:
    """The site and value of the largest (or smallest) entry that is not fixed by construction."""
    worst: tuple[str, float] | None = None
    for name, value in values.items():
        free = value[~fixed[name]] if name in fixed else value.reshape(-1)
        free = free[torch.isfinite(free)]
        if not free.numel():
            continue
        candidate = float(free.max() if largest else free.min())
        if worst is None or (candidate > worst[1] if largest else candidate < worst[1]):
            worst = (name, candidate)
    return worst


def _undefined(r_hat: dict[str, Tensor], fixed: dict[str, Tensor]) -> list[str]:
    """Sites with an entry free to vary whose R-hat is undefined (it never changed)."""
    return [name for name, value in r_hat.items()
            if bool((torch.isnan(value) & ~fixed.get(name, torch.zeros_like(value, dtype=torch.bool))).any())]


def chain_problems(divergences: list[list[int]], step_sizes: list[float], acceptance: list[float],
                   mean_accept: list[float], num_samples: int, target_accept_prob: float) -> list[str]:
    """Problems read off the sampler's own statistics, per chain."""
    problems = []
    total = sum(len(d) for d in divergences)
    if total:
        per_chain = ", ".join(f"chain {c}: {len(d)}" for c, d in enumerate(divergences) if d)
        problems.append(f"{total} of {num_samples * len(divergences)} post-warmup transitions diverged "
                        f"({per_chain}): the draws near them are biased; raise target_accept_prob, standardize "
                        "the data or reparametrize")
    for c, step in enumerate(step_sizes):
        if not step >= MIN_STEP_SIZE:
            problems.append(f"chain {c}: the step size collapsed to {step:.2g} during adaptation (below "
                            f"{MIN_STEP_SIZE:g}): the potential energy or its gradient is broken or the "
                            "posterior is degenerate")
    for c, (moved, accept) in enumerate(zip(acceptance, mean_accept)):
        if not moved > 0:
            problems.append(f"chain {c}: no kept iteration moved (acceptance rate {moved:.3g})")
        elif not accept >= target_accept_prob - ACCEPTANCE_MARGIN:
            problems.append(f"chain {c}: mean acceptance probability {accept:.3f}, far below the target "
                            f"{target_accept_prob:g}: step-size adaptation failed (more warmup?)")
    return problems


def mixing_problems(r_hat: dict[str, Tensor], ess_bulk: dict[str, Tensor], ess_tail: dict[str, Tensor],
                    fixed: dict[str, Tensor], num_chains: int, max_r_hat: float = R_HAT_GOOD,
                    min_ess_per_chain: float = ESS_PER_CHAIN, what: str = "") -> list[str]:
    """Problems read off R-hat and ESS of some quantities (``what`` names them in the text)."""
    problems = []
    label = f" ({what})" if what else ""
    stuck = _undefined(r_hat, fixed)
    if stuck:
        problems.append(f"{', '.join(stuck)}{label}: an entry never changed over the draws (R-hat undefined): "
                        "the chains did not move")
    worst = _worst(r_hat, fixed, largest=True)
    if worst is not None and not worst[1] < max_r_hat:
        chains = f"across {num_chains} chains" if num_chains > 1 else "between the halves of the one chain"
        problems.append(f"R-hat of {worst[0]}{label} is {worst[1]:.4f} {chains} (must be below {max_r_hat:g}): "
                        "the chains disagree; sample longer")
    needed = min_ess_per_chain * num_chains
    for kind, ess in (("bulk", ess_bulk), ("tail", ess_tail)):
        low = _worst(ess, fixed, largest=False)
        if low is not None and not low[1] >= needed:
            problems.append(f"{kind} ESS of {low[0]}{label} is {low[1]:.0f} (needs {needed:g}: {min_ess_per_chain:g} "
                            f"per chain): too few effective draws; sample longer")
    return problems


def sampler_problems(diagnostics: dict, fixed: dict[str, Tensor], num_samples: int, target_accept_prob: float,
                     max_r_hat: float = R_HAT_GOOD, min_ess_per_chain: float = ESS_PER_CHAIN) -> list[str]:
    """Every failed check of a NUTS run (module docstring), from ``posterior.diagnostics``.

    ``fixed``: site -> bool mask of entries constant by construction (no R-hat expected).
    """
    num_chains = len(diagnostics["step_size"])
    problems = chain_problems(diagnostics["divergences"], diagnostics["step_size"], diagnostics["acceptance_rate"],
                              diagnostics["mean_accept_prob"], num_samples, target_accept_prob)
    problems += mixing_problems(diagnostics["r_hat"], diagnostics["ess"], diagnostics["ess_tail"], fixed,
                                num_chains, max_r_hat, min_ess_per_chain, "relabelled")
    invariant = diagnostics.get("invariant_r_hat", {})
    if invariant:
        problems += mixing_problems(invariant, diagnostics["invariant_ess"], diagnostics["invariant_ess_tail"], {},
                                    num_chains, max_r_hat, min_ess_per_chain, "label-invariant")
    return problems
