"""NUTS's potential energy by one fused pass: the program's log joint with the assignments summed out.

Pyro's NUTS on ``model.model`` builds its potential by tracing the whole program at every
leapfrog step and contracting the enumerated assignment (``TraceEinsumEvaluator``): milliseconds
of Python and ``(K, N)`` temporaries per gradient. For a family with a linear log joint form
(:meth:`mixtures.core.family.Statistics.log_joint_form`) the same number is

    U(u) = -[log p(θ) + Σ_n log Σ_k p(z_n = k | θ) p(x_n | θ_k) + log |det ∂θ/∂u|],   θ = T⁻¹(u),

with the prior's terms from the family's own prior program (:meth:`MixtureFamily.prior_trace`,
conditioned on θ: the same ``pyro.sample`` statements, so the same densities), the likelihood
from :func:`mixtures.kernels.fused_autograd.log_likelihood` (its gradient is the pass's
statistics) and the Jacobian of every site's transform ``T`` to unconstrained space exactly as
Pyro's ``initialize_model`` adds it. :class:`CollapsedPotential` is that function; Pyro's NUTS
drives it (``NUTS(potential_fn=..., transforms=...)``), and ``MCMC`` maps the draws back
through the same transforms. The test suite checks value and gradient against Pyro's own
potential of the program to 1e-10 at random points, for every structure and both families.

:func:`applies` decides (a family with a linear form, no ``jit_compile``); :func:`enabled` turns
the fast potential off (NUTS then runs the program, as before). A family without a linear form (a
noise component, a t) gets the same potential with the likelihood from the program's own pieces
when its means are to be sampled non-centred (:mod:`mixtures.inference.pyro.noncentred`), which the
program's path cannot do: a noise component's placeholder cluster is one such, always.
"""

from __future__ import annotations

import contextlib

import torch
from pyro import poutine
from torch import Tensor
from torch.distributions.transforms import Transform

from mixtures.core.family import COMPONENTS_PLATE, MixtureFamily
from mixtures.core.missing import has_missing
from mixtures.core.params import Params
from mixtures.core.switch import Switch
from mixtures.errors import DivergenceError
from mixtures.inference.pyro.noncentred import NONCENTRED_SITES, NonCentring, loc_scale, standard_coordinates
from mixtures.inference.pyro.recording import RecordingNUTS
from mixtures.kernels import fused_autograd

_switch = Switch()


def enabled(flag: bool = True) -> contextlib.AbstractContextManager:
    """Use the fused potential where it applies (default) or always the program (``False``)."""
    return _switch.enabled(flag)


def applies(model: MixtureFamily, X: Tensor, init: Params, *, jit_compile: bool = False,
            any_family: bool = False) -> bool:
    """Whether :class:`CollapsedPotential` is the program's potential for this model (module docstring):
    a family with a linear log joint form or, with ``any_family`` (the means to be non-centred), any
    family, its likelihood then from the program's own pieces."""
    if not (_switch and not jit_compile and model.prior is not None):
        return False
    if has_missing(X):  # NaN entries (missing values): the program's masked observation site, not the fused pass
        return False
    return any_family or (model.supports("statistics") and model.log_joint_form(
        model.values_from_params(init), model.statistics_shift(X[:1])) is not None)


class CollapsedPotential:
    """``U(u)`` (module docstring): a callable on ``{site: unconstrained value}`` returning ``()``.

    Args:
        model: a family with a prior and a linear log joint form.
        X: ``(N, D)`` the data.
        transforms: ``{site: constrained -> unconstrained transform}`` of every latent site of the
            prior (what Pyro's HMC takes as ``transforms``).
        sample_weight: ``(N,)`` point weights: the log-likelihood term is the weighted one (the
            potential of :meth:`~mixtures.core.family.MixtureFamily.weighted_model`).
        held: ``{site: constrained value}`` of frozen sites (no transform, not sampled): the log
            joint at those values, as the program conditioned on them (``poutine.condition``).

    After :meth:`use_standard` the ``"locs"`` site is sampled in standard coordinates ``z``
    (:mod:`mixtures.inference.pyro.noncentred`): the callable then takes ``z`` under ``"locs"`` and
    returns ``U(g(q)) - log |det ∂u/∂q|``; :meth:`model_sites` maps draws back. A family whose
    ``"locs"`` site is not (multivariate) Normal stays centred.

    After :meth:`pin` the parameters of the model's prior-only components (a noise component's placeholder
    cluster, :attr:`~mixtures.core.family.MixtureFamily.prior_only_components`) are not sampled: every site of
    the components plate takes the sampler's values on the other components only, ``(K - P, ...)``, the
    pinned slices stay at their start (their prior density there is a constant of the potential), and
    :meth:`model_sites` fills them with exact draws from their prior, which is their posterior.

    Attributes:
        standard: the sites sampled in standard coordinates (empty: the centred potential).
        sampler_transforms: the transforms of the other sites (what the sampler maps its draws through).
        pinned: ``{site: full constrained value}`` of the components-plate sites whose pinned slices are held.
    """

    def __init__(self, model: MixtureFamily, X: Tensor, transforms: dict[str, Transform],
                 sample_weight: Tensor | None = None, held: dict[str, Tensor] | None = None):
        self.model, self.X, self.transforms = model, X, transforms
        self.sample_weight = sample_weight
        self.held = held or {}
        self.shift = model.statistics_shift(X) if model.supports("statistics") else None
        self.standard: tuple[str, ...] = ()
        self.components: Tensor | None = None
        self.sampler_transforms = dict(transforms)
        self.pinned: dict[str, Tensor] = {}
        self.free_components: Tensor | None = None  # (K - P,) indices of the sampled components

    def pin(self, constrained: dict[str, Tensor], components: Tensor) -> None:
        """Hold ``components`` ``(K,)`` bool out of the sampler (class docstring): the components-plate
        sites (not the weights, whose every entry the data reach) at their values in ``constrained``."""
        trace = self.model.prior_trace({**self.held, **constrained}, self.X)
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or name not in self.transforms or name in self.held:
                continue
            frames = [f for f in site["cond_indep_stack"] if f.name == COMPONENTS_PLATE]
            if frames and site["value"].dim() - site["fn"].event_dim + frames[0].dim == 0:
                self.pinned[name] = constrained[name].detach().clone()
        self.free_components = (~components).nonzero().flatten()

    def _full(self, name: str, value: Tensor) -> Tensor:
        """A site's value over all ``K`` components from the sampled components' ``value`` ``(K - P, ...)``."""
        if name not in self.pinned:
            return value
        return self.pinned[name].to(value.dtype).index_copy(0, self.free_components, value)

    def use_standard(self, constrained: dict[str, Tensor], components: Tensor | None = None) -> None:
        """Non-centre every site of ``NONCENTRED_SITES`` whose distribution at ``constrained`` (the model's
        site values, e.g. the start) is a (multivariate) Normal; only on ``components`` ``(K,)`` bool
        (``None``: all of them; the others stay centred)."""
        self.components = components
        trace = self.model.prior_trace({**self.held, **constrained}, self.X)
        self.standard = tuple(name for name in NONCENTRED_SITES  # a held (frozen) site is not sampled at all
                              if name in trace.nodes and name not in self.held
                              and loc_scale(trace.nodes[name]["fn"]) is not None)
        self.sampler_transforms = {name: t for name, t in self.transforms.items() if name not in self.standard}

    def _trace(self, constrained: dict[str, Tensor], standard: dict[str, Tensor]):
        """The prior program's trace at the centred sites' values ``constrained`` and the standard
        coordinates ``standard``, frozen sites at their held values; and ``log |det ∂u/∂q|`` of the
        non-centred sites (0 without)."""
        constrained = {**self.held, **constrained}
        if not standard:
            return self.model.prior_trace(constrained, self.X), 0.0
        messenger = NonCentring(standard, self.components)
        program = messenger(poutine.condition(self.model.sample_globals, data=constrained))
        with poutine.block():
            trace = poutine.trace(program).get_trace(self.model.resolved_prior(self.X))
        return trace, messenger.log_det

    def __call__(self, unconstrained: dict[str, Tensor]) -> Tensor:
        constrained = {name: transform.inv(unconstrained[name]) for name, transform in self.sampler_transforms.items()}
        trace, log_det = self._trace({name: self._full(name, value) for name, value in constrained.items()},
                                     {name: self._full(name, unconstrained[name]) for name in self.standard})
        log_joint = trace.log_prob_sum() + log_det + self._log_likelihood(trace.nodes["_RETURN"]["value"])
        for name, transform in self.sampler_transforms.items():
            log_joint = log_joint - transform.log_abs_det_jacobian(constrained[name], unconstrained[name]).sum()
        return -log_joint

    def _log_likelihood(self, values: dict[str, Tensor]) -> Tensor:
        """``Σ_n w_n log p(x_n | θ)`` at the program's global values: by the fused pass where the family has a
        linear form, else from the program's own pieces (:meth:`~mixtures.core.family.MixtureFamily.component_log_joint`
        ``(K, N)``, summed over the assignment: a noise component, a t)."""
        form = None if self.shift is None else self.model.log_joint_form(values, self.shift)
        if form is not None:
            return fused_autograd.log_likelihood(form.coefficients, self.X, self.shift, form.write_extra,
                                                 form.n_extra, self.sample_weight)
        per_point = torch.logsumexp(self.model.component_log_joint(values, self.X), 0)  # (N,)
        if self.sample_weight is None:
            return per_point.sum()
        return (per_point * self.sample_weight).masked_fill(self.sample_weight == 0, 0.0).sum()

    def sampler_coordinates(self, constrained: dict[str, Tensor]) -> dict[str, Tensor]:
        """The sampler's coordinates ``q`` of the model's site values ``constrained`` (inverse of
        :meth:`model_sites` for one draw)."""
        with torch.no_grad():
            q = {name: self.transforms[name](value) for name, value in constrained.items()}
            if self.standard:
                trace = self.model.prior_trace({**self.held, **constrained}, self.X)
                q.update({name: standard_coordinates(trace.nodes[name]["fn"], constrained[name], self.components)
                          for name in self.standard})
        return {name: value[self.free_components] if name in self.pinned else value for name, value in q.items()}

    def model_sites(self, samples: dict[str, Tensor]) -> dict[str, Tensor]:
        """The model's site values of draws ``(S, ...)`` whose non-centred sites hold ``z`` (the sampler's
        draws, the other sites already constrained), pinned components drawn from their prior (with the
        global RNG: a chain's seed fixes them); the identity for the centred potential."""
        if not self.standard and not self.pinned:
            return samples
        S = next(iter(samples.values())).shape[0]
        full = {name: torch.stack([self._full(name, value[s]) for s in range(S)]) if name in self.pinned else value
                for name, value in samples.items()}
        if self.standard:
            values: dict[str, list[Tensor]] = {name: [] for name in self.standard}
            with torch.no_grad():
                for s in range(S):
                    centred = {name: value[s] for name, value in full.items() if name not in self.standard}
                    trace, _ = self._trace(centred, {name: full[name][s] for name in self.standard})
                    for name in self.standard:
                        values[name].append(trace.nodes[name]["value"])
            full.update({name: torch.stack(draws) for name, draws in values.items()})
        if self.pinned:
            pinned = torch.ones(full[next(iter(self.pinned))].shape[1], dtype=torch.bool,
                                device=self.free_components.device)
            pinned[self.free_components] = False
            prior = poutine.condition(self.model.sample_globals, data=self.held)
            with torch.no_grad(), poutine.block():  # blocked outside the trace: hidden from any enclosing handler
                for s in range(S):  # one joint draw of all the prior's sites: the pinned slices keep theirs
                    draw = poutine.trace(prior).get_trace(self.model.resolved_prior(self.X))
                    for name in self.pinned:
                        full[name][s, pinned] = draw.nodes[name]["value"][pinned].to(full[name].dtype)
        return full


def collapsed_nuts(model: MixtureFamily, X: Tensor, start: dict[str, Tensor], transforms: dict[str, Transform],
                   sample_weight: Tensor | None = None, held: dict[str, Tensor] | None = None,
                   noncentred: bool | Tensor = False, precondition: bool = False, **options) -> RecordingNUTS:
    """Pyro's ``NUTS`` (:class:`~mixtures.inference.pyro.recording.RecordingNUTS`) on
    :class:`CollapsedPotential`, its ``initial_params`` at the constrained site values ``start``
    (give them to ``MCMC(..., initial_params=kernel.initial_params)``); ``held``: frozen sites' values;
    ``noncentred`` samples the means in standard coordinates (all, or those of the components of a
    ``(K,)`` bool mask), and ``kernel.model_sites`` maps the draws ``MCMC`` returns to the model's
    sites; ``precondition`` starts warmup's mass matrix at :func:`curvature_variances` of the start.
    ``options``: NUTS's own (``target_accept_prob``, ``max_tree_depth``, ``full_mass``...)."""
    energy = CollapsedPotential(model, X, transforms, sample_weight, held)
    components = torch.ones(model.n_components, dtype=torch.bool, device=X.device)
    if model.prior_only_components:
        pinned = torch.zeros_like(components)
        pinned[list(model.prior_only_components)] = True
        energy.pin(start, pinned)
        components = ~pinned
    if isinstance(noncentred, Tensor) or noncentred:
        mask = noncentred & components if isinstance(noncentred, Tensor) else components
        energy.use_standard(start, None if bool(mask.all()) else mask)
    kernel = RecordingNUTS(potential_fn=energy, transforms=energy.sampler_transforms, **options)
    kernel.model_sites = energy.model_sites
    kernel.initial_params = energy.sampler_coordinates(start)
    initial = {name: value.clone().requires_grad_() for name, value in kernel.initial_params.items()}
    value = energy(initial)
    grads = torch.autograd.grad(value, list(initial.values()))
    if not (torch.isfinite(value) and all(bool(torch.isfinite(g).all()) for g in grads)):
        value = value.detach()
        cause = nonfinite_start(model, X, {**(held or {}), **start}, transforms, sample_weight) or next(
            (f"the gradient of the potential energy with respect to '{name}' is not finite (the log joint "
             f"density is {-float(value)})" for name, g in zip(initial, grads) if not torch.isfinite(g).all()),
            f"the potential energy is {float(value)} (the log-Jacobian of the transforms to unconstrained space)")
        raise DivergenceError(f"NUTS: at the start, {cause}. {START_FIXES}")
    if precondition:
        kernel.start_variances = curvature_variances(energy, kernel.initial_params)
    return kernel


def curvature_variances(energy, point: dict[str, Tensor], relative_step: float = 1e-5) -> dict[str, Tensor]:
    """``1 / (∂²U/∂q_i²)`` at ``point`` for every coordinate (shaped like the sites): the variances of
    the Laplace approximation's conditionals, a scale for each coordinate to start NUTS's mass matrix
    from. The diagonal of the Hessian by central differences of the gradient (two gradients per
    coordinate; the fused likelihood has no second derivative); a coordinate of non-positive or
    non-finite curvature (the start is not at a mode in it) gets 1, the identity's."""
    names = list(point)
    shapes = [point[name].shape for name in names]
    flat = torch.cat([point[name].detach().reshape(-1) for name in names])

    def gradient(at: Tensor) -> Tensor:
        parts = [part.reshape(shape).requires_grad_() for part, shape in
                 zip(torch.split(at, [s.numel() for s in shapes]), shapes)]
        grads = torch.autograd.grad(energy(dict(zip(names, parts))), parts)
        return torch.cat([g.reshape(-1) for g in grads])

    curvature = torch.empty_like(flat)
    for i in range(flat.numel()):
        step = relative_step * max(1.0, abs(float(flat[i])))
        shift = torch.zeros_like(flat)
        shift[i] = step
        curvature[i] = (gradient(flat + shift)[i] - gradient(flat - shift)[i]) / (2 * step)
    good = torch.isfinite(curvature) & (curvature > 0)
    variances = torch.where(good, 1 / torch.where(good, curvature, torch.ones_like(curvature)),
                            torch.ones_like(curvature))
    return dict(zip(names, (v.reshape(s) for v, s in zip(torch.split(variances, [s.numel() for s in shapes]),
                                                          shapes))))


#: what helps whatever the non-finite term at the start was
START_FIXES = ("Start from a proper fit (init=mixtures.fit(model, X, 'em').params), standardize badly scaled "
               "data, or fit in float64.")


def nonfinite_start(model: MixtureFamily, X: Tensor, start: dict[str, Tensor],
                    transforms: dict[str, Transform], sample_weight: Tensor | None = None) -> str | None:
    """What is not finite in the potential at the constrained site values ``start``, or ``None``.

    Each site's value in unconstrained space (``transforms``: a weight of 0 sits at -inf), the
    prior's log density site by site (a start at a point of zero prior density), then the
    log-likelihood ``log p(x_n | θ)`` ``(N,)`` point by point (a mean far from every point,
    an overflow of the dtype; points of zero ``sample_weight`` are not in the data).
    """
    with torch.no_grad():
        for name, transform in transforms.items():
            if not torch.isfinite(transform(start[name])).all():
                return (f"site '{name}' is on the boundary of its support (its unconstrained value is not "
                        "finite: a weight of 0, an emptied component, a singular covariance)")
    trace = model.prior_trace(start, X)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        log_density = site["fn"].log_prob(site["value"]).sum()
        if not torch.isfinite(log_density):
            return (f"the log prior density of site '{name}' is {float(log_density)}: the start is a point of "
                    f"{'zero' if log_density < 0 else 'infinite'} prior density (a weight of 0 under a Dirichlet "
                    "prior, an emptied component, a value outside the prior's support)")
    with torch.no_grad():
        per_point = model.params_from_sites(start, X).log_prob(X)
    if sample_weight is not None:
        per_point = per_point.masked_fill(sample_weight == 0, 0.0)
    bad = (~torch.isfinite(per_point)).nonzero().flatten()
    if len(bad):
        return (f"the log-likelihood of {len(bad)} of {X.shape[0]} points is not finite (point {int(bad[0])}: "
                f"{float(per_point[bad[0]])}): no component gives them a positive density (a mean far from "
                "every point, badly scaled data) or the dtype overflows")
    return None
