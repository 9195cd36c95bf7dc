"""The fast path of MAP and SVI: Pyro's ``TraceEnum_ELBO`` of the program, evaluated by one fused pass.

The program stays the definition. ``TraceEnum_ELBO`` sums the enumerated assignment out of
``model.model(X)``; for a family whose log joint densities are linear in features
(:meth:`mixtures.core.family.Statistics.log_joint_form`), that sum is the fused pass's
log-likelihood, and its gradient with respect to the form's coefficients is the pass's
statistics (:mod:`mixtures.kernels.fused_autograd`). :class:`FusedEnumELBO` computes the same
estimate, particle by particle, with the same random draws:

1. the global guide runs as ``TraceEnum_ELBO`` runs it, and its sample sites give ``log q`` of
   the globals; the enumerated mean-field guide's statements follow (its ``pyro.param`` and its
   data plate, which draws the minibatch);
2. the program's global statements run replayed against the guide (``pyro.param`` sites, or
   the prior's ``pyro.sample`` sites at the guide's values: the log prior, masked as the
   program masks it), then its data plate (the same minibatch draw, or the guide's rows);
3. the local term: ``Σ_n log Σ_k p(z = k) p(x_n | k)`` for enumerated assignments, or
   ``Σ_n Σ_k q_nk (log p(z = k, x_n) - log q_nk)`` for the enumerated mean-field guide, by one
   fused pass over the (sub)sampled rows, scaled by the plate's ``N / B``.

The ELBO of a particle is ``log p(θ) + local - log q(θ)``; ``loss_and_grads`` back-propagates
``-ELBO / num_particles`` per particle and returns the loss as a float, as Pyro does. The test
suite checks loss and gradients against ``TraceEnum_ELBO`` on the program to 1e-10 (float64)
for every guide, minibatches, both families.

:func:`applies` decides: the fast path is taken for a family with a linear form, a string global
guide (``"delta"``, ``"normal"``, ``"mvn"``), enumerated assignments or the enumerated mean-field
guide, without ``jit`` or ``validate`` (those run the program itself); :func:`enabled` turns it
off (the program then runs through ``TraceEnum_ELBO``, as before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor
from torch.distributions import constraints, transform_to
from torch.distributions.transforms import SoftmaxTransform

from mixtures.core.family import DATA_PLATE, MixtureFamily
from mixtures.core.missing import has_missing
from mixtures.core.params import Params
from mixtures.core.switch import Switch
from mixtures.inference.pyro.guides import ASSIGNMENT_PROBS
from mixtures.inference.pyro.stepper import ExcludeSites
from mixtures.kernels import fused_autograd

_switch = Switch()


def enabled(flag: bool = True) -> contextlib.AbstractContextManager:
    """Use the fused path where it applies (default) or always the program (``False``)."""
    return _switch.enabled(flag)


def is_enabled() -> bool:
    return bool(_switch)


def applies(model: MixtureFamily, init: Params, X: Tensor, *, guide: Any, local_guide: str,
            local_estimator: str, jit: bool, validate: bool) -> bool:
    """Whether :class:`FusedEnumELBO` computes what ``TraceEnum_ELBO`` would (module docstring)."""
    if not (_switch and not jit and not validate and isinstance(guide, str) and isinstance(X, Tensor)):
        return False
    if has_missing(X):  # NaN entries (missing values): the program's masked observation site, not the fused pass
        return False
    if local_guide != "enumerate" and not (local_guide == "mean_field" and local_estimator == "enumerate"):
        return False
    if local_guide == "mean_field" and not isinstance(transform_to(constraints.simplex), SoftmaxTransform):
        return False  # the fused term's gradient is the chain rule through the store's softmax
    if not model.supports("statistics"):
        return False
    values = model.values_from_params(init)
    return model.log_joint_form(values, model.statistics_shift(X[:1])) is not None


class FusedEnumELBO:
    """``TraceEnum_ELBO(max_plate_nesting=1)`` of ``model.model`` by fused passes (module docstring).

    Args:
        model: the family (with a linear log joint form).
        X: ``(N, D)`` the data the program runs on (this rank's shard when distributed).
        global_guide: the guide over the globals (None: none, the globals are ``pyro.param`` sites).
        num_particles: particles per estimate (looped, as ``TraceEnum_ELBO`` does).
        subsample_size: the data plate's minibatch size (``None``: every point).
        mean_field_probs: the enumerated mean-field local guide's initial ``q`` ``(N, K)``
            (:func:`~mixtures.inference.pyro.guides.mean_field_guide` with the same start), or
            None for assignments enumerated in the model.
        exclude_prior: mask the prior's sites (distributed ranks other than 0).
        sample_weight: ``(N,)`` point weights: every point's local term counts ``w_n`` times
            (:meth:`mixtures.core.family.MixtureFamily.weighted_model`, the program it then equals).
        labels: ``(N,)`` partial labels (``-1``: unknown) with the mean-field guide: a labelled point's
            ``q(z_n)`` is the point mass at its label (its assignment observed), so its local term is its
            complete-data log joint ``log π_y p(x_n | y)`` (:func:`fused_autograd.labelled_statistics`) and
            only the unlabelled rows of ``q`` enter the expectation.

    The mean-field guide's statements are run here directly (its ``pyro.param`` and the data
    plate, which the program replays) rather than through its ``Categorical``: the parameter's
    unconstrained tensor ``u`` ``(N, K)`` (``q = softmax(u)``, the store's simplex transform) enters
    :func:`~mixtures.kernels.fused_autograd.mean_field_term`, which clamps ``q`` as the
    ``Categorical`` does and forms ``u``'s gradient itself (:attr:`direct_params` lists it for the
    optimizer). (The ``Categorical``'s normalization ``q / Σ_k q`` is the identity on the simplex;
    its gradient only removes a component along ``(1, ..., 1)``, which the softmax's Jacobian
    removes anyway.)
    """

    def __init__(self, model: MixtureFamily, X: Tensor, *, global_guide: Callable | None = None,
                 num_particles: int = 1, subsample_size: int | None = None, mean_field_probs: Tensor | None = None,
                 exclude_prior: bool = False, sample_weight: Tensor | None = None, labels: Tensor | None = None):
        self.model, self.X = model, X
        self.labels = labels  # (N,) with the mean-field guide, or None
        self._full_batch: tuple[Tensor, Tensor, Tensor] | None = None  # (unlabelled mask, their rows, S)
        self.sample_weight = sample_weight  # (N,) point weights, or None
        self.global_guide = global_guide
        self.num_particles = num_particles
        self.subsample_size = subsample_size
        self.mean_field_probs = mean_field_probs
        self.exclude_prior = exclude_prior
        # any point works (the densities are exact); the family's own keeps the expansion accurate
        self.shift = model.statistics_shift(X)
        #: unconstrained parameters the estimates use without a ``pyro.param`` statement (name →
        #: tensor): the mean-field guide's logits. Optimizers must step them too (``Stepper`` does).
        self.direct_params: dict[str, Tensor] = {}

    def loss_and_grads(self, program: Callable, guide: Callable, X: Tensor) -> float:
        """``-ELBO`` as a float; gradients of every parameter accumulated. ``program`` and
        ``guide`` are not run: this object evaluates their ELBO from its pieces."""
        elbo = 0.0
        for _ in range(self.num_particles):
            particle = self.particle(X)
            elbo += particle.item() / self.num_particles
            if particle.requires_grad:
                (-particle / self.num_particles).backward()
        return -elbo

    def loss(self, program: Callable, guide: Callable, X: Tensor) -> float:
        with torch.no_grad():
            return -sum(self.particle(X).item() for _ in range(self.num_particles)) / self.num_particles

    def particle(self, X: Tensor) -> Tensor:
        """One particle's ELBO ``()`` (differentiable)."""
        log_q, guide_trace = 0.0, None
        if self.global_guide is not None:
            guide_trace = poutine.trace(self.global_guide).get_trace(X)
            log_q = guide_trace.log_prob_sum(_not_a_plate)
        logits = guide_rows = None
        if self.mean_field_probs is not None:  # the local guide's statements; its plate draws the rows
            logits = self._assignment_logits()
            if self.subsample_size is not None:
                with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=self.subsample_size) as guide_rows:
                    pass
        replay = poutine.replay(trace=guide_trace) if guide_trace is not None else contextlib.nullcontext()
        with poutine.trace() as capture, replay:
            values, rows = self._globals_and_rows(X, guide_rows)
        log_prior = capture.trace.log_prob_sum(_not_a_plate)
        form = self.model.log_joint_form(values, self.shift)
        data = X if rows is None else X[rows]
        weights = self.sample_weight
        weights = weights if weights is None or rows is None else weights[rows]
        if logits is not None and self.labels is not None:
            local = self._labelled_local(form, logits, data, rows, weights)
        elif logits is not None:
            local = fused_autograd.mean_field_term(form.coefficients, logits if rows is None else logits[rows], data,
                                                   self.shift, form.write_extra, form.n_extra, weights)
        else:
            local = fused_autograd.log_likelihood(form.coefficients, data, self.shift, form.write_extra,
                                                  form.n_extra, weights)
        if rows is not None:
            local = local * (X.shape[0] / rows.shape[0])  # the plate's scale N / B
        return log_prior + local - log_q

    def _assignment_logits(self) -> Tensor:
        """The unconstrained tensor ``(N, K)`` behind the guide's ``pyro.param("assignment_probs")``.

        The guide's statement makes the parameter on first use (as the guide would, from the
        initial ``q``); afterwards the store's unconstrained tensor is read directly, since
        ``pyro.param`` would apply the simplex transform (a softmax over ``(N, K)``) that
        :func:`~mixtures.kernels.fused_autograd.mean_field_term` computes chunk by chunk. It is
        listed in :attr:`direct_params` (no ``param`` site records it).
        """
        store = pyro.get_param_store()
        if ASSIGNMENT_PROBS not in store:
            initial = self.mean_field_probs
            pyro.param(ASSIGNMENT_PROBS, lambda: initial.detach().clone(), constraint=constraints.simplex)
        logits = dict(store.named_parameters())[ASSIGNMENT_PROBS]
        self.direct_params[ASSIGNMENT_PROBS] = logits
        return logits

    def _labelled_local(self, form: Any, logits: Tensor, data: Tensor, rows: Tensor | None,
                        weights: Tensor | None) -> Tensor:
        """The local term with labelled points' assignments observed: ``(C * S).sum()`` over them (``S``: their
        per-component feature sums, kept for full batches) plus the mean-field expectation over the others
        (``logits`` ``(N, K)``: the guide's unconstrained parameter; labelled rows get no gradient)."""
        if rows is None and self._full_batch is not None:
            unknown, unlabelled, statistics = self._full_batch
        else:
            labels = self.labels if rows is None else self.labels[rows]
            unknown = labels < 0
            unlabelled = data[unknown]
            statistics = fused_autograd.labelled_statistics(
                data[~unknown], labels[~unknown], form.coefficients.shape[0], self.shift, form.write_extra,
                form.n_extra, None if weights is None else weights[~unknown])
            if rows is None:
                self._full_batch = (unknown, unlabelled, statistics)
        local = (form.coefficients * statistics.to(form.coefficients.dtype)).sum()
        if unlabelled.shape[0]:
            u = (logits if rows is None else logits[rows])[unknown]
            local = local + fused_autograd.mean_field_term(form.coefficients, u, unlabelled, self.shift,
                                                           form.write_extra, form.n_extra,
                                                           None if weights is None else weights[unknown])
        return local

    def _globals_and_rows(self, X: Tensor, guide_rows: Tensor | None) -> tuple[dict[str, Tensor], Tensor | None]:
        """The program's global statements and its data plate's rows (nothing inside the plate)."""
        if self.exclude_prior:
            with ExcludeSites(self.model.global_sites):
                values = self.model.globals(None, X)
        else:
            values = self.model.globals(None, X)
        if self.subsample_size is None:
            return values, None
        if guide_rows is not None:
            return values, guide_rows
        with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=self.subsample_size) as rows:
            return values, rows


def _not_a_plate(name: str, site: dict) -> bool:
    return not isinstance(site["fn"], _Subsample)
