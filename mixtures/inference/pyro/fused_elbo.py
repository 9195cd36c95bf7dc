"""The fast path of MAP and SVI: Pyro's ``TraceEnum_ELBO`` of the program, evaluated by one fused pass.

The program stays the definition. ``TraceEnum_ELBO`` sums the enumerated assignment out of
``model.model(X)``; for a family whose log joint densities are linear in features
(:meth:`mixtures.core.family.Statistics.log_joint_form`), that sum is the fused pass's
log-likelihood, and its gradient with respect to the form's coefficients is the pass's
statistics (:mod:`mixtures.kernels.fused_autograd`). :class:`FusedEnumELBO` computes the same
estimate, particle by particle, with the same random draws:

1. the guide runs as ``TraceEnum_ELBO`` runs it (under ``poutine.enum``, so an enumerated
   mean-field site draws nothing), and its sample sites give ``log q`` of the globals;
2. the program's global statements run replayed against the guide (``pyro.param`` sites, or
   the prior's ``pyro.sample`` sites at the guide's values: the log prior, masked as the
   program masks it), then its data plate (the same minibatch draw, or the guide's);
3. the local term: ``Σ_n log Σ_k p(z = k) p(x_n | k)`` for enumerated assignments, or
   ``Σ_n Σ_k q_nk (log p(z = k, x_n) - log q_nk)`` for the enumerated mean-field guide, by one
   fused pass over the (sub)sampled rows, scaled by the plate's ``N / B``.

The ELBO of a particle is ``log p(θ) + local - log q(θ)``; ``loss_and_grads`` back-propagates
``-ELBO / num_particles`` per particle and returns the loss as a float, as Pyro does. The test
suite checks loss and gradients against ``TraceEnum_ELBO`` on the program to 1e-10 (float64)
for every guide, minibatches, both families.

:func:`choose` decides: the fast path is taken for a family with a linear form, a string global
guide (``"delta"``, ``"normal"``, ``"mvn"``), enumerated assignments or the enumerated mean-field
guide, without ``jit`` or ``validate`` (those run the program itself); :func:`enabled` turns it
off (the program then runs through ``TraceEnum_ELBO``, as before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor

from mixtures.core.family import ASSIGNMENT, DATA_PLATE, MAX_PLATE_NESTING, MixtureFamily
from mixtures.core.params import Params
from mixtures.inference.pyro.stepper import ExcludeSites
from mixtures.kernels import fused_autograd

_enabled = True


@contextlib.contextmanager
def enabled(flag: bool = True) -> Iterator[None]:
    """Use the fused path where it applies (default) or always the program (``False``)."""
    global _enabled
    previous, _enabled = _enabled, bool(flag)
    try:
        yield
    finally:
        _enabled = previous


def is_enabled() -> bool:
    return _enabled


def applies(model: MixtureFamily, init: Params, X: Tensor, *, guide: Any, local_guide: str,
            local_estimator: str, jit: bool, validate: bool) -> bool:
    """Whether :class:`FusedEnumELBO` computes what ``TraceEnum_ELBO`` would (module docstring)."""
    if not (_enabled and not jit and not validate and isinstance(guide, str) and isinstance(X, Tensor)):
        return False
    if local_guide != "enumerate" and not (local_guide == "mean_field" and local_estimator == "enumerate"):
        return False
    if not model.supports("statistics"):
        return False
    values = model.values_from_params(init)
    return model.log_joint_form(values, model.statistics_shift(X[:1])) is not None


class FusedEnumELBO:
    """``TraceEnum_ELBO(max_plate_nesting=1)`` of ``model.model`` by fused passes (module docstring).

    Args:
        model: the family (with a linear log joint form).
        X: ``(N, D)`` the data the program runs on (this rank's shard when distributed).
        num_particles: particles per estimate (looped, as ``TraceEnum_ELBO`` does).
        subsample_size: the data plate's minibatch size (``None``: every point).
        mean_field: the local guide is the enumerated mean-field ``q(z_n)``.
        exclude_prior: mask the prior's sites (distributed ranks other than 0).
    """

    def __init__(self, model: MixtureFamily, X: Tensor, *, num_particles: int = 1,
                 subsample_size: int | None = None, mean_field: bool = False, exclude_prior: bool = False):
        self.model, self.X = model, X
        self.num_particles = num_particles
        self.subsample_size = subsample_size
        self.mean_field = mean_field
        self.exclude_prior = exclude_prior
        # any point works (the densities are exact); the family's own keeps the expansion accurate
        self.shift = model.statistics_shift(X)

    def loss_and_grads(self, program: Callable, guide: Callable, X: Tensor) -> float:
        """``-ELBO`` as a float; gradients of every parameter accumulated (``program`` is not run:
        this object evaluates the same program's ELBO from its pieces)."""
        elbo = 0.0
        for _ in range(self.num_particles):
            particle = self.particle(guide, X)
            elbo += particle.item() / self.num_particles
            if particle.requires_grad:
                (-particle / self.num_particles).backward()
        return -elbo

    def loss(self, program: Callable, guide: Callable, X: Tensor) -> float:
        with torch.no_grad():
            return -sum(self.particle(guide, X).item() for _ in range(self.num_particles)) / self.num_particles

    def particle(self, guide: Callable, X: Tensor) -> Tensor:
        """One particle's ELBO ``()`` (differentiable)."""
        guide_trace = poutine.trace(poutine.enum(guide, first_available_dim=-1 - MAX_PLATE_NESTING)).get_trace(X)
        with poutine.trace() as capture, poutine.replay(trace=guide_trace):
            values, rows = self._globals_and_rows(X)
        model_trace = capture.trace
        log_prior = model_trace.log_prob_sum(_prior_site)
        log_q = guide_trace.log_prob_sum(_guide_global_site)
        form = self.model.log_joint_form(values, self.shift)
        data = X if rows is None else X[rows]
        if self.mean_field:
            probs = guide_trace.nodes[ASSIGNMENT]["fn"].probs  # Categorical's normalized probs (B, K)
            eps = torch.finfo(probs.dtype).eps
            local = fused_autograd.expected_log_joint(form.coefficients, probs.clamp(min=eps, max=1 - eps), data,
                                                      self.shift, form.write_extra, form.n_extra)
        else:
            local = fused_autograd.log_likelihood(form.coefficients, data, self.shift, form.write_extra,
                                                  form.n_extra)
        if rows is not None:
            local = local * (X.shape[0] / rows.shape[0])  # the plate's scale N / B
        return log_prior + local - log_q

    def _globals_and_rows(self, X: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        """The program's global statements and its data plate (nothing inside the plate)."""
        if self.exclude_prior:
            with ExcludeSites(self.model.global_sites):
                values = self.model.globals(None, X)
        else:
            values = self.model.globals(None, X)
        with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=self.subsample_size) as rows:
            pass
        return values, (None if self.subsample_size is None else rows)


def _prior_site(name: str, site: dict) -> bool:
    return not isinstance(site["fn"], _Subsample)


def _guide_global_site(name: str, site: dict) -> bool:
    return name != ASSIGNMENT and not isinstance(site["fn"], _Subsample)
