"""Shared machinery of the Pyro routines (``"map"`` and ``"svi"``).

Both routines optimize an ELBO of the *same program* ``model.model(X)`` with a
Pyro optimizer; they differ only in the guide. This module holds:

* the guides: :func:`empty_guide` (no latent globals: without a prior the
  globals are ``pyro.param`` sites of the model itself, optimized directly),
  :func:`choose_global_guide` (``"delta"``, ``"normal"`` or a callable) and
  :func:`mean_field_guide` (``q(z_n) = Categorical(probs_n)``, per-point
  ``pyro.param`` ``"assignment_probs"`` ``(N, K)``);
* :func:`run_pyro`, the optimization loop both routines call, with the history
  documented below;
* posterior queries at given parameters: :func:`map_assignments`
  (``infer_discrete(temperature=0)``), :func:`sample_assignments`
  (``temperature=1``) and :func:`marginal_probabilities`
  (``TraceEnum_ELBO.compute_marginals``).

Every run happens inside :func:`mixtures.model.fresh_param_store`, seeded from
the given :class:`~mixtures.params.MixtureParams` (cloned: nothing aliases the
caller's tensors), and under a forked torch RNG seeded from ``seed`` (the global
RNG is left as it was), so fits do not leak state into each other.

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
    :meth:`MixtureParams.log_prob` (never a log prior). When the loss is already
    exact (assignments enumerated in the model, point-estimate globals, no
    subsampling, one particle), ``-loss`` *is* this value (the test suite checks
    the identity to 1e-8) and is reused instead of a second pass over the data;
    the final row is always computed with ``MixtureParams.log_prob``.
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

Distributed runs (``fit(..., distributed=True)``, see :func:`_run_pyro`): each rank
runs the program on its shard; the loss and the gradients of the global
parameters are summed over ranks before every optimizer step, so all ranks step
identically from the broadcast start, and every logged value is global.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import pyro.distributions as pdist
import pyro.poutine as poutine
import torch
from pyro.infer import JitTraceEnum_ELBO, TraceEnum_ELBO, infer_discrete
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value
from pyro.poutine.messenger import Messenger
from torch import Tensor
from torch.distributions import constraints

from mixtures import distributed as dist_utils
from mixtures import fused
from mixtures.errors import DivergenceError
from mixtures.model import ASSIGNMENT, DATA_PLATE, GaussianMixture, fresh_param_store
from mixtures.params import MixtureParams
from mixtures.posterior import Posterior
from mixtures.result import FitResult, History
from mixtures.validation import check_nonnegative_float, check_positive_int, spawn_seeds

#: the program has one plate (``"data"``); enumeration dimensions start left of it
MAX_PLATE_NESTING = 1
#: the per-point simplex parameter of the mean-field local guide, ``(N, K)``
ASSIGNMENT_PROBS = "assignment_probs"
GLOBAL_GUIDES = ("delta", "normal", "mvn")
LOCAL_GUIDES = ("enumerate", "mean_field")
LOCAL_ESTIMATORS = ("enumerate", "sample")

Guide = Callable[..., Any]


# -- guides ---------------------------------------------------------------------------
def empty_guide(*args: Any, **kwargs: Any) -> None:
    """A guide with no sample sites: every global is a ``pyro.param`` of the model."""


def choose_global_guide(model: GaussianMixture, guide: str | Guide,
                        program: Guide | None = None, init: MixtureParams | None = None) -> Guide | None:
    """The guide over the global sites, or ``None`` when there is none to fit.

    Args:
        model: the mixture specification.
        guide: ``"delta"`` (point estimates), ``"normal"`` (``AutoNormal``),
            ``"mvn"`` (``AutoMultivariateNormal``) or a callable taking the
            program's arguments (``guide(X)``).
        program: the program the guide approximates (used by autoguides).
        init: where autoguides start (their locations at ``model.site_values(init)``).

    Without a prior (``model.prior is None``) the globals are ``pyro.param``
    sites of the model: ``"delta"`` needs no guide at all (returns ``None``, the
    parameters are optimized directly) and ``"normal"``/``"mvn"`` have nothing to
    approximate (ValueError). With a prior the globals are ``pyro.sample`` sites
    and the autoguide sees only them, ``poutine.block(program, expose=model.global_sites)``,
    so the assignments stay enumerated in the model (this is also what lets an
    ``AutoContinuous`` guide such as ``AutoMultivariateNormal`` run under
    ``TraceEnum_ELBO``). ``AutoDelta`` then gives MAP (the mode in the sites'
    own parametrization, as MAP-EM's closed form).
    """
    if callable(guide) and not isinstance(guide, str):
        return guide
    if guide not in GLOBAL_GUIDES:
        raise ValueError(f"unknown guide {guide!r}; choose one of {list(GLOBAL_GUIDES)} or pass a "
                         "callable guide(X) over the global sites.")
    if model.prior is None:
        if guide == "delta":
            return None
        raise ValueError(
            f"guide={guide!r} approximates a posterior over the global sites, but this "
            "model has no prior: its weights, locs and covariances are pyro.param point estimates "
            "with no posterior. Use guide='delta' (maximum likelihood), or give the model a prior: "
            "GaussianMixture(K, covariance_type, prior=mixtures.priors.GaussianPrior()).")
    exposed = poutine.block(program, expose=list(model.global_sites))
    options: dict[str, Any] = {}
    if init is not None:
        values = {name: value.detach().clone() for name, value in model.site_values(init).items()}
        options["init_loc_fn"] = init_to_value(values=values)
    if guide == "delta":
        return AutoDelta(exposed, **options)
    guide_type = AutoNormal if guide == "normal" else AutoMultivariateNormal
    return guide_type(exposed, init_scale=0.01, **options)


def guide_point(model: GaussianMixture, global_guide: Guide | None, X: Tensor) -> MixtureParams:
    """The current point estimate.

    Without a prior (or without a global guide): the param store's globals. With a
    prior: the guide's ``median(X)`` when it has one (autoguides), else the values
    one run of the guide gives its global sites (a draw, for a stochastic callable).
    """
    if model.prior is None or global_guide is None:
        return _store_params(model)
    with torch.no_grad():
        values = global_guide.median(X) if hasattr(global_guide, "median") else _guide_values(global_guide, X)
    return model.params_from_sites(_global_site_values(model, values), X)


def guide_posterior(model: GaussianMixture, global_guide: Guide, X: Tensor, n_draws: int) -> Posterior:
    """``n_draws`` parameter draws from a global guide (inside its param scope)."""
    draws = []
    with torch.no_grad():
        for _ in range(n_draws):  # loop over draws, not data points
            values = _global_site_values(model, _guide_values(global_guide, X))
            draws.append(model.params_from_sites(values, X))
    return Posterior(torch.stack([d.weights for d in draws]), torch.stack([d.locs for d in draws]),
                     torch.stack([d.native for d in draws]), model.cov_type, kind="variational",
                     distribution=_guide_parameters(global_guide, model))


def _guide_parameters(global_guide: Guide, model: GaussianMixture) -> dict[str, Any]:
    """The variational distribution as its guide's class and parameters.

    ``{"guide": class name, "params": {store name: constrained value}}``: for
    ``AutoNormal`` the per-site ``locs``/``scales``, for ``AutoMultivariateNormal``
    the ``loc`` and ``scale_tril`` of the unconstrained latent vector (in Pyro's
    ``poutine.block``-ed site order), enough to rebuild ``q(θ)``. Per-point
    parameters (the mean-field ``assignment_probs``) are not part of it.
    """
    store = pyro.get_param_store()
    skip = {ASSIGNMENT_PROBS, *model.global_sites}
    params = {name: store[name].detach().clone() for name in store.keys() if name not in skip}
    return {"guide": type(global_guide).__name__, "params": params}


def _guide_values(global_guide: Guide, X: Tensor) -> dict[str, Tensor]:
    """The values of the sample sites of one run of ``global_guide(X)``."""
    trace = poutine.trace(global_guide).get_trace(X)
    return {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "sample"}


def _global_site_values(model: GaussianMixture, values: dict[str, Tensor]) -> dict[str, Tensor]:
    missing = [name for name in model.global_sites if name not in values]
    if missing:
        raise ValueError(f"the global guide samples no site(s) {missing}; a guide over the globals of "
                         f"this model must sample {list(model.global_sites)}.")
    return {name: values[name].detach() for name in model.global_sites}


def mean_field_guide(n_points: int, init_probs: Tensor, subsample_size: int | None,
                     enumerate_assignments: bool) -> Guide:
    """Local guide ``q(z_n) = Categorical(probs_n)``: a per-point simplex ``pyro.param``.

    Args:
        n_points: ``N``, the size of the data plate.
        init_probs: ``(N, K)`` initial probabilities (cloned into the store).
        subsample_size: minibatch size; the guide's plate shares its name with the
            model's, so the model replays the rows the guide drew and the guide
            indexes its parameters with them.
        enumerate_assignments: sum over ``q`` exactly (parallel enumeration in
            the guide, for ``TraceEnum_ELBO``) instead of drawing ``z_n``
            (score-function gradients through ``TraceEnum_ELBO``'s Dice estimator).
    """
    infer = {"enumerate": "parallel"} if enumerate_assignments else {}

    def guide(X: Tensor) -> None:
        probs = pyro.param(ASSIGNMENT_PROBS, lambda: init_probs.detach().clone(),
                           constraint=constraints.simplex)
        with pyro.plate(DATA_PLATE, n_points, subsample_size=subsample_size) as rows:
            pyro.sample(ASSIGNMENT, pdist.Categorical(probs[rows] if subsample_size else probs),
                        infer=infer)

    return guide


def combine_guides(*guides: Guide | None) -> Guide:
    """One guide running the given guides in order (``None`` entries skipped)."""
    active = [guide for guide in guides if guide is not None]
    if not active:
        return empty_guide

    def guide(*args: Any, **kwargs: Any) -> None:
        for part in active:
            part(*args, **kwargs)

    return guide


# -- running against a given parameter store -----------------------------------------
@contextlib.contextmanager
def seeded_rng(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global RNG (Pyro samples from it) and restore it afterwards."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is None:
            torch.seed()
        else:
            torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def program_at(model: GaussianMixture, params: MixtureParams) -> Iterator[Guide]:
    """``model.model`` with its globals fixed at ``params``, against a fresh parameter store.

    At fixed globals a prior is a constant factor of ``p(X, z)``: it plays no part in
    ``p(z | x, θ)``. So a model with a prior is decoded with its prior-free twin, whose
    ``pyro.param`` globals hold (clones of) ``params``; its data-scaled defaults are never
    re-resolved on the query data (a single query point has no covariance).
    """
    model.check_params(params)
    plain = model if model.prior is None else GaussianMixture(model.n_components, model.covariance_type)
    with fresh_param_store():
        plain.globals(params)
        yield plain.model


def _single_component(X: Tensor) -> Tensor:
    """Labels ``(N,)`` of a one-component mixture. Pyro does not enumerate a site with a
    single value (``infer_discrete`` then returns one label for the whole plate)."""
    return torch.zeros(X.shape[0], dtype=torch.long, device=X.device)


def map_assignments(model: GaussianMixture, params: MixtureParams, X: Tensor) -> Tensor:
    """Most probable component of every point, by max-product ``infer_discrete``: ``(N,)`` long.

    ``infer_discrete(temperature=0, first_available_dim=-2)`` run on ``model.model``
    against a fresh store seeded with ``params``. Equals ``argmax_k p(z_n = k | x_n, θ)``.
    """
    X = params._data(X)
    if model.n_components == 1:
        return _single_component(X)
    with program_at(model, params) as program, torch.no_grad():
        decoder = infer_discrete(program, first_available_dim=-1 - MAX_PLATE_NESTING,
                                 temperature=0)
        return decoder(X).reshape(-1).long()


def sample_assignments(model: GaussianMixture, params: MixtureParams, X: Tensor,
                       seed: int | None = 0) -> Tensor:
    """One draw of every ``z_n ~ p(z_n | x_n, θ)`` by ``infer_discrete(temperature=1)``: ``(N,)``.

    Reproducible for a given ``seed`` (torch's global RNG is forked, not consumed).
    """
    X = params._data(X)
    if model.n_components == 1:
        return _single_component(X)
    with program_at(model, params) as program, torch.no_grad(), seeded_rng(seed, X.device):
        sampler = infer_discrete(program, first_available_dim=-1 - MAX_PLATE_NESTING,
                                 temperature=1)
        return sampler(X).reshape(-1).long()


def marginal_probabilities(model: GaussianMixture, params: MixtureParams, X: Tensor) -> Tensor:
    """Posterior membership probabilities ``p(z_n = k | x_n, θ)``: ``(N, K)``.

    From ``TraceEnum_ELBO(max_plate_nesting=1).compute_marginals`` on ``model.model``
    (the same numbers as :meth:`MixtureParams.responsibilities`, by another road).
    """
    X = params._data(X)
    if model.n_components == 1:
        return torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    n = X.shape[0]
    if n == 1:
        # compute_marginals fails on a plate of size 1 (pyro-ppl/pyro#3102, a KeyError in the
        # contraction); points are independent given θ, so a duplicate row changes nothing.
        X = X.expand(2, -1)
    with program_at(model, params) as program, torch.no_grad():
        elbo = TraceEnum_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
        marginal = elbo.compute_marginals(program, empty_guide, X)[ASSIGNMENT]
        return marginal.probs.reshape(X.shape[0], model.n_components)[:n]


# -- the optimization loop ------------------------------------------------------------
def _store_params(model: GaussianMixture) -> MixtureParams:
    """The current globals of the param store as (cloned, detached) ``MixtureParams``."""
    store = pyro.get_param_store()
    values = {name: store[name].detach().clone() for name in model.global_sites}
    return model.params_from_values(values)


def _check_finite(loss: float, iteration: int) -> None:
    if not math.isfinite(loss):
        raise DivergenceError(
            f"the Pyro loss became {loss} after {iteration} optimizer step(s): the optimizer diverged "
            "or a component collapsed onto a few points. Lower lr, use fewer components, or "
            "standardize the data.")


def make_optimizer(lr: float, betas: tuple[float, float], lr_decay: float, num_steps: int):
    """Adam; with ``lr_decay < 1``, ``ClippedAdam`` decaying ``lr`` to ``lr * lr_decay`` over the run.

    Gradients are not clipped: the loss is a sum over ``N`` points, so its
    gradients scale with ``N`` and Pyro's default clip (10) would turn Adam into
    sign descent.
    """
    if lr_decay == 1.0:
        return pyro.optim.Adam({"lr": lr, "betas": betas})
    per_step = lr_decay ** (1.0 / max(1, num_steps))
    return pyro.optim.ClippedAdam({"lr": lr, "betas": betas, "lrd": per_step, "clip_norm": math.inf})


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """Temporarily set torch's default dtype (``None``: leave it).

    The TorchScript tracer stores Python float constants met in tensor
    expressions (``log 2π`` in the Gaussian log density) as tensors of the
    default dtype: under float32 the float64 loss would be off by
    ``N D / 2 · (fl32(log 2π) - log 2π) ≈ 1e-8`` relative.
    """
    if dtype is None or not dtype.is_floating_point:
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@functools.cache
def _warm_up_torch_optim() -> None:
    """Pay torch.optim's one-time lazy imports (seconds) before a run's clock starts."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


class _Stepper:
    """Loss-and-gradient evaluation and optimizer updates, split (unlike ``SVI.step``).

    Splitting lets every history row describe one point: the loss and gradient
    computed at ``θ_t`` are recorded in row ``t`` before the update moves to ``θ_{t+1}``.

    Distributed (``distributed=True``): after ``loss_and_grads`` the gradients of
    every *global* parameter and the loss are summed over ranks in one flat
    all-reduce, before any update, so every rank's optimizer takes the same step
    as a single process holding all the data. Parameters named in ``local_params``
    (the mean-field guide's per-point ``assignment_probs``, ``(n_r, K)`` on rank
    ``r``) belong to this rank's points only: their gradients are already
    complete and are *not* all-reduced (their shapes differ between ranks anyway).
    ``grad_norm`` is then the norm over the globals and every rank's locals.
    """

    def __init__(self, elbo, program: Guide, guide: Guide, optimizer, X: Tensor, distributed: bool = False,
                 local_params: tuple[str, ...] = (ASSIGNMENT_PROBS,)):
        self.elbo, self.program, self.guide, self.optimizer, self.X = elbo, program, guide, optimizer, X
        self.distributed = distributed
        self.local_params = frozenset(local_params)
        self._params: list[Tensor] = []

    def evaluate(self) -> tuple[float, float]:
        """Loss and unconstrained gradient norm at the current point (gradients kept)."""
        with poutine.trace(param_only=True) as capture:
            loss = self.elbo.loss_and_grads(self.program, self.guide, self.X)
        # An ordered, duplicate-free list (not a set): deterministic summation order
        # (and the same order on every rank, which the flat all-reduce relies on).
        seen: dict[int, tuple[str, Tensor]] = {}
        for site in capture.trace.nodes.values():
            unconstrained = site["value"].unconstrained()
            seen.setdefault(id(unconstrained), (site["name"], unconstrained))
        self._params = [p for _, p in seen.values()]
        if self.distributed:
            return self._all_reduce(float(loss), list(seen.values()))
        squares = [p.grad.detach().square().sum() for p in self._params if p.grad is not None]
        grad_norm = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
        return float(loss), grad_norm

    def _all_reduce(self, loss: float, named: list[tuple[str, Tensor]]) -> tuple[float, float]:
        """Sum the globals' gradients, the loss and the locals' squared gradient norm over ranks."""
        shared = [p for name, p in named if name not in self.local_params]
        local = [p for name, p in named if name in self.local_params]
        for p in shared:  # every rank must send the same layout
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        local_squares = sum((float(p.grad.detach().square().sum()) for p in local if p.grad is not None), 0.0)
        scalars = self.X.new_tensor([loss, local_squares], dtype=torch.float64)
        *grads, scalars = dist_utils.all_reduce_sum(*[p.grad for p in shared], scalars)
        for p, grad in zip(shared, grads):
            p.grad.copy_(grad)
        shared_squares = sum((float(g.square().sum()) for g in grads), 0.0)
        return float(scalars[0]), math.sqrt(shared_squares + float(scalars[1]))

    def update(self) -> None:
        """One optimizer step on the gradients of the last :meth:`evaluate`."""
        self.optimizer(self._params)
        self.zero_grad()

    def zero_grad(self) -> None:
        pyro.infer.util.zero_grads(self._params)


class _ExcludeSites(Messenger):
    """Mask the named sample sites out of the loss (their log density counts 0).

    Distributed runs of a model with a prior: each rank's loss is its shard's
    likelihood, and the log prior of the globals must be counted once in the sum
    over ranks, so it is kept on rank 0 and masked on the others.
    """

    def __init__(self, names: tuple[str, ...]):
        super().__init__()
        self.names = frozenset(names)

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.names:
            msg["mask"] = False


#: ``patience="auto"``: early stopping on a window of this many steps when the
#: loss is deterministic (nothing sampled), none otherwise (noisy losses would stop at random)
AUTO_PATIENCE = 20


def check_options(num_steps: int, lr: float, tol: float, patience: int | None, eval_every: int,
                  num_particles: int, subsample_size: int | None, n_points: int,
                  lr_decay: float) -> None:
    """Raise ``ValueError`` naming the first invalid option."""
    check_positive_int(num_steps, "num_steps", minimum=0)
    if not check_nonnegative_float(lr, "lr") > 0:
        raise ValueError(f"lr must be positive; got {lr!r}.")
    check_nonnegative_float(tol, "tol")
    if patience is not None:
        check_positive_int(patience, "patience")
    check_positive_int(eval_every, "eval_every")
    check_positive_int(num_particles, "num_particles")
    if subsample_size is not None:
        check_positive_int(subsample_size, "subsample_size")
        if subsample_size > n_points:
            raise ValueError(f"subsample_size={subsample_size} exceeds the number of points N={n_points}; "
                             "use a smaller minibatch or subsample_size=None (full data).")
    decay = check_nonnegative_float(lr_decay, "lr_decay")
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"lr_decay must be in (0, 1] (final lr / initial lr); got {lr_decay!r}.")


class _Standardizer:
    """The affine map ``x ↦ (x - centre) / scale`` applied to data and parameters.

    Adam's steps are absolute, so optimizing on raw data makes MAP and SVI depend
    on the data's units (at 1e-8 they overshoot, at 1e8 they stall). Without a
    prior the likelihood is affine-equivariant, so the loop runs on standardized
    data and everything is mapped back: parameters exactly, and every logged
    log-density shifted by the Jacobian ``-N Σ_d log scale_d``. Spherical
    covariances need one scale for all dimensions (their root-mean-square).
    """

    def __init__(self, X: Tensor, model: GaussianMixture, distributed: bool = False):
        self.cov_type = model.cov_type
        if distributed:  # every rank standardizes identically, with the moments of all the data
            n, self.centre, scale = dist_utils.global_mean_std(X)
        else:
            n = X.shape[0]
            self.centre = X.mean(0)
            scale = X.std(0, unbiased=False) if n > 1 else torch.ones_like(self.centre)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        if self.cov_type.name == "spherical":
            scale = scale.square().mean().sqrt().expand_as(scale).clone()
        self.scale = scale
        self.log_jacobian = float(n * scale.log().sum())  # N of all the data: logged values are global

    def data(self, X: Tensor) -> Tensor:
        return (X - self.centre) / self.scale

    def _native(self, native: Tensor, power: int) -> Tensor:
        factor = self.scale ** power
        if self.cov_type.site == "scale_tril":  # diag(s^p) L stays lower-triangular
            return native * factor.unsqueeze(-1)
        if self.cov_type.name == "spherical":
            return native * factor[0].square()
        return native * factor.square()

    def params(self, params: MixtureParams, inverse: bool = False) -> MixtureParams:
        if inverse:
            locs, native = params.locs * self.scale + self.centre, self._native(params.native, 1)
        else:
            locs, native = (params.locs - self.centre) / self.scale, self._native(params.native, -1)
        return MixtureParams.from_native(params.weights, locs, native, params.cov_type, validate=False)

    def result(self, result: FitResult, init: MixtureParams) -> FitResult:
        """The result of a standardized run, in the data's own units."""
        columns = result.history.to_dict()
        for name in ("log_likelihood", "elbo"):
            columns[name] = [value - self.log_jacobian for value in columns[name]]
        columns["loss"] = [value + self.log_jacobian for value in columns["loss"]]
        result.history = History.from_dict(columns)
        result.params = self.params(result.params, inverse=True)
        result.objective -= self.log_jacobian
        result.extras["final_loss"] += self.log_jacobian
        result.init = init
        return result


def run_pyro(model: GaussianMixture, X: Tensor, init: MixtureParams, *, method: str,
             standardize: bool = True, distributed: bool = False, **options: Any) -> FitResult:
    """Optimize Pyro's ELBO of ``model.model`` from ``init`` (see :func:`_run_pyro`).

    ``standardize`` (default, models without a prior): run on standardized data and
    map back (:class:`_Standardizer`), so results do not depend on the data's units.
    With a prior the prior fixes the units and the data are used as they are.

    ``distributed``: ``X`` is this rank's shard; the standardization uses the
    moments of all ranks' data and a prior's data-scaled defaults are resolved on
    all of it (:func:`mixtures.distributed.with_global_prior`), so every rank runs
    the program a single process would run on all the data (see :func:`_run_pyro`).
    """
    run_model = dist_utils.with_global_prior(model, X) if distributed else model
    if not standardize or model.prior is not None:
        result = _run_pyro(run_model, X, init, method=method, distributed=distributed, **options)
    else:
        model.check_params(init)
        standardizer = _Standardizer(X, model, distributed=distributed)
        result = _run_pyro(run_model, standardizer.data(X), standardizer.params(init), method=method,
                           distributed=distributed, **options)
        result = standardizer.result(result, init)
    result.model = model
    return result


def _run_pyro(model: GaussianMixture, X: Tensor, init: MixtureParams, *, method: str,
             guide: str | Guide = "delta", local_guide: str = "enumerate",
             local_estimator: str = "enumerate", num_steps: int = 1000, lr: float = 0.05,
             betas: tuple[float, float] = (0.9, 0.999), lr_decay: float = 1.0,
             tol: float = 1e-7, patience: int | None | str = "auto", eval_every: int = 1,
             num_particles: int = 1, subsample_size: int | None = None, jit: bool = False,
             validate: bool = False, seed: int | None = 0, reg_covar: float | None = None,
             posterior_samples: int = 500, distributed: bool = False) -> FitResult:
    """Optimize Pyro's ELBO of ``model.model`` from ``init`` (see the module docstring).

    Args:
        model: the mixture specification.
        X: ``(N, D)`` validated data.
        init: starting ``MixtureParams`` (cloned into a fresh param store).
        method: name stored in the result (``"map"`` or ``"svi"``).
        guide: guide over the globals (:func:`choose_global_guide`).
        local_guide: ``"enumerate"`` (assignments summed out in the model,
            ``TraceEnum_ELBO``) or ``"mean_field"`` (:func:`mean_field_guide`,
            initialized from ``init``'s responsibilities).
        local_estimator: for ``"mean_field"``: ``"enumerate"`` sums over ``q``
            exactly (``TraceEnum_ELBO`` enumerating the guide's site) or
            ``"sample"`` draws ``z`` (score-function gradients, Dice estimator).
        num_steps: maximum optimizer steps.
        lr, betas: Adam's step size and moment decays.
        lr_decay: ``final lr / lr`` reached after ``num_steps`` (1 = constant).
        tol, patience: early stopping on the loss (module docstring);
            ``patience="auto"`` is :data:`AUTO_PATIENCE` when the loss is
            deterministic (assignments enumerated, point-estimate globals, all
            points) and ``None`` (no early stopping) when it is a noisy estimate.
        eval_every: record a history row every this many steps.
        num_particles: ELBO particles per step.
        subsample_size: minibatch size on the data plate (``None``: all points).
        jit: compile the loss with ``JitTraceEnum_ELBO(ignore_jit_warnings=True)``.
        validate: Pyro's distribution argument checks during optimization (off by
            default for speed; a non-finite loss raises ``DivergenceError`` anyway).
        seed: seeds every random draw of the run (minibatches, sampled guides).
        reg_covar: accepted for interface compatibility with ``fit`` and unused:
            the program has no covariance floor.
        posterior_samples: draws kept in ``result.posterior`` for a model with a prior
            and any global guide but ``"delta"`` (``"normal"``, ``"mvn"``, a callable).
        distributed: ``X`` is this rank's shard of data spread over an initialized
            ``torch.distributed`` process group (``fit(..., distributed=True)``).

    Distributed runs: every rank runs the program on its own shard; after each
    ``loss_and_grads`` the loss and the gradients of the *global* parameters are
    summed over ranks (:class:`_Stepper`), so every rank takes the same Adam step
    from the same (broadcast) start as a single process on all the data would,
    equal up to floating-point reassociation of the sums. A prior's log density
    is counted once (on rank 0, masked elsewhere: :class:`_ExcludeSites`). Logged
    values are global: ``loss``/``elbo`` are sums over ranks, ``log_likelihood`` is
    all-reduced, ``tol`` is per point of all the data. Only ``guide="delta"`` is
    supported (a distributional global guide would need identical random draws on
    every rank). The mean-field guide's ``assignment_probs`` are local: rank ``r``
    keeps ``(n_r, K)`` for its own points (its gradients are not all-reduced) and
    ``extras["assignment_probs"]``/``extras["labels"]`` describe this rank's shard.
    ``subsample_size=B`` is the minibatch size *of each rank* (``B`` rows of every
    shard per step, each scaled by ``n_r / B``: the sum over ranks is an unbiased
    estimate of the full loss); it must not exceed the smallest shard. Draws that
    only concern local sites (minibatches, sampled assignments) use a rank-specific
    seed derived from ``seed`` (rank 0 uses ``seed`` itself).

    With a prior the history gains ``log_prior`` (at the point estimate, the
    guide's median), ``elbo`` includes it, and ``kl = log_likelihood + log_prior
    - elbo`` (a KL divergence for the delta guide; for distributional guides a gap
    that also contains the guide's entropy). ``objective`` is then the log joint
    at the point for ``"delta"`` and the final ELBO for distributional guides.
    """
    del reg_covar
    N_local = X.shape[0]
    if distributed:
        if not (isinstance(guide, str) and guide == "delta"):
            raise ValueError(
                f"distributed=True supports guide='delta' only (got {guide!r}): a distributional or "
                "custom global guide would need identical random draws on every rank. Use "
                "guide='delta', or fit in one process.")
        N = dist_utils.global_count(N_local, X.device)
        smallest, largest = dist_utils.count_range(N_local, X.device)
        if subsample_size is not None and subsample_size > smallest:
            raise ValueError(
                f"with distributed=True, subsample_size is the minibatch size of each rank; "
                f"subsample_size={subsample_size} exceeds the smallest shard ({smallest} points). "
                "Use a smaller minibatch or subsample_size=None (all points).")
        # decided from global facts, so that every rank takes the same branches (and collectives)
        every_point = subsample_size is None or smallest == largest == subsample_size
    else:
        N = smallest = N_local
        every_point = subsample_size in (None, N)
    if patience == "auto":
        deterministic = (isinstance(guide, str) and guide == "delta" and every_point
                         and (local_guide == "enumerate" or local_estimator == "enumerate"))
        patience = AUTO_PATIENCE if deterministic else None
    check_options(num_steps, lr, tol, patience, eval_every, num_particles, subsample_size, smallest, lr_decay)
    if local_guide not in LOCAL_GUIDES:
        raise ValueError(f"unknown local_guide {local_guide!r}; choose one of {list(LOCAL_GUIDES)}.")
    if local_estimator not in LOCAL_ESTIMATORS:
        raise ValueError(f"unknown local_estimator {local_estimator!r}; choose one of "
                         f"{list(LOCAL_ESTIMATORS)}.")
    model.check_params(init)
    if every_point:
        subsample_size = None  # a "minibatch" of every point is the full data
    # the log prior is counted once in the sum of the ranks' losses (on rank 0)
    exclude_prior = distributed and model.prior is not None and dist_utils.rank() > 0

    def program(data: Tensor) -> Tensor:
        if exclude_prior:
            with _ExcludeSites(model.global_sites):
                return model.model(data, subsample_size=subsample_size)
        return model.model(data, subsample_size=subsample_size)

    global_guide = choose_global_guide(model, guide, program, init)
    if local_guide == "mean_field":
        local = mean_field_guide(N_local, _floored(init.responsibilities(X)), subsample_size,
                                 enumerate_assignments=local_estimator == "enumerate")
    else:
        local = None
    full_guide = combine_guides(global_guide, local)
    # -loss is exactly log p(X | θ) when nothing is estimated: assignments summed out in the
    # model, no latent globals, every point, one particle.
    exact_loss = (local_guide == "enumerate" and global_guide is None and subsample_size is None
                  and num_particles == 1)
    # TraceEnum_ELBO in every case: with a sampled mean-field site its Dice estimator uses the
    # plate's conditional independence (each score term is weighted by its own point's cost),
    # where Trace_ELBO would weight it by the whole minibatch's cost.
    elbo_type = JitTraceEnum_ELBO if jit else TraceEnum_ELBO
    elbo_kwargs: dict[str, Any] = {"max_plate_nesting": MAX_PLATE_NESTING}
    if jit:
        elbo_kwargs["ignore_jit_warnings"] = True
    elbo = elbo_type(num_particles=num_particles, **elbo_kwargs)

    history = History()
    converged = False
    if distributed and seed is not None and dist_utils.rank() > 0:
        seed = spawn_seeds(seed, dist_utils.rank())[-1]  # local draws differ from rank to rank
    with fresh_param_store(), fused.keeping_features(), seeded_rng(seed, X.device), \
            pyro.validation_enabled(validate), \
            warnings.catch_warnings(), _default_dtype(X.dtype if jit else None):
        if jit:  # tracer warnings are expected (data-independent control flow)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated",
                                    category=DeprecationWarning)
        if model.prior is None:
            model.globals(init)  # seeds the store with clones of init's tensors
        stepper = _Stepper(elbo, program, full_guide,
                           make_optimizer(lr, tuple(betas), lr_decay, num_steps), X, distributed=distributed)
        window: collections.deque[float] = collections.deque(maxlen=(patience or 0) + 1)
        step = 0
        reached_at = 0.0  # time at which the current point θ_step was reached
        _warm_up_torch_optim()
        start = time.perf_counter()
        while True:
            loss, grad_norm = stepper.evaluate()
            _check_finite(loss, step)
            window.append(loss)
            stop_early = (patience is not None and len(window) == window.maxlen
                          and max(window) - min(window) <= tol * N)
            final = step >= num_steps or stop_early
            if final or step % eval_every == 0:
                prior_row = {}
                if exact_loss and not final:
                    log_likelihood = -loss
                else:
                    point = guide_point(model, global_guide, X)
                    log_likelihood = float(point.log_prob(X).sum())
                    if distributed:
                        log_likelihood = dist_utils.all_reduce_float(log_likelihood, X.device)
                    if model.prior is not None:
                        prior_row["log_prior"] = float(model.log_prior(point, X))
                history.append(iteration=step, log_likelihood=log_likelihood, elbo=-loss,
                               kl=log_likelihood + prior_row.get("log_prior", 0.0) + loss, time=reached_at,
                               loss=loss, grad_norm=grad_norm, **prior_row)
            if final:
                stepper.zero_grad()
                converged = stop_early
                break
            stepper.update()
            step += 1
            reached_at = time.perf_counter() - start
        params = guide_point(model, global_guide, X)
        posterior = None
        if model.prior is not None and not (isinstance(guide, str) and guide == "delta"):
            posterior = guide_posterior(model, global_guide, X, check_positive_int(posterior_samples,
                                                                                   "posterior_samples"))
        extras: dict[str, Any] = {"final_loss": loss}
        if local_guide == "mean_field":
            extras[ASSIGNMENT_PROBS] = pyro.param(ASSIGNMENT_PROBS).detach().clone()
    if model.prior is None:
        objective = history.last("log_likelihood")
    elif posterior is None:
        objective = history.last("log_likelihood") + history.last("log_prior")
    else:
        objective = -loss
    if posterior is None and len(history) > 1:
        start_row = history.records()[0]
        start = start_row["log_likelihood"] + (start_row.get("log_prior", 0.0) if model.prior else 0.0)
        if objective < start - X.shape[0]:
            # Ending more than a nat per point below the start is no transient of Adam's first
            # steps (those cost ~0.01 nat per point): the problem is degenerate (more features
            # than points, or a component driven onto a few points).
            converged = False
            warnings.warn(
                f"{method} ended far below its start (objective {objective:.6g} < {start:.6g}, more than "
                "a nat per point): "
                "the likelihood is probably unbounded here (more features than points, or a component "
                "collapsing). Use EM with reg_covar, fewer components, or a prior.",
                UserWarning, stacklevel=4)
    extras["labels"] = map_assignments(model, params, X)
    return FitResult(model=model, params=params, history=history, converged=converged, n_iter=step,
                     method=method, objective=objective, init=init, extras=extras, posterior=posterior)


def _floored(probs: Tensor) -> Tensor:
    """Responsibilities ``(N, K)`` moved off exact zeros (the simplex transform needs interior points)."""
    tiny = 1e-12 if probs.dtype == torch.float64 else 1e-6
    probs = probs.clamp_min(tiny)
    return probs / probs.sum(-1, keepdim=True)
