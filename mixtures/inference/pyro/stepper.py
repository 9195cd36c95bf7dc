"""The optimizer side of the Pyro routines: one loss-and-gradient evaluation and one step.

:class:`Stepper` splits Pyro's ``SVI.step`` so that every history row describes one
point (the loss and gradient at ``θ_t`` are recorded before the update to ``θ_{t+1}``),
and sums the globals' gradients over ranks in distributed runs. Also here: the optimizer
(Adam, or ``ClippedAdam`` with a decaying learning rate), early-stopping's default
patience and the routines' option checks.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor

from mixtures.core import comm
from mixtures.core.validation import check_nonnegative_float, check_positive_int
from mixtures.errors import DivergenceError
from mixtures.inference.pyro.guides import ASSIGNMENT_PROBS, Guide


def check_finite(loss: float, iteration: int) -> None:
    if not math.isfinite(loss):
        raise DivergenceError(
            f"the Pyro loss became {loss} after {iteration} optimizer step(s): the optimizer diverged "
            "or a component collapsed onto a few points. Lower lr, use fewer components, or "
            "standardize the data.")


def breakdown_message(loss: float, step: int, n_points: int, n_features: int) -> str:
    """The warning of a run whose loss became non-finite after finite steps (``θ_{step-1}`` kept)."""
    if n_points <= n_features:
        cause = (f"more features ({n_features}) than points ({n_points}): the likelihood is unbounded (a "
                 "covariance can shrink onto the points' span) and the program has no reg_covar floor, so "
                 "a covariance factor became numerically singular")
    else:
        cause = "a component collapsed onto a few points (its likelihood is unbounded there) or lr is too large"
    return (f"the Pyro loss became {loss} at step {step}: {cause}. Stopped at the last finite point "
            f"(step {step - 1}); converged=False. Use EM with reg_covar, covariance_type='diag', a prior, "
            "fewer components or a lower lr.")


def make_optimizer(lr: float, betas: tuple[float, float], lr_decay: float, num_steps: int):
    """Adam; with ``lr_decay < 1``, ``ClippedAdam`` decaying ``lr`` to ``lr * lr_decay`` over the run.

    Gradients are not clipped: the loss is a sum over ``N`` points, so its
    gradients scale with ``N`` and Pyro's default clip (10) would turn Adam into
    sign descent.
    """
    if lr_decay == 1.0:
        options = {"lr": lr, "betas": betas}
        # the per-point assignment_probs (N, K): torch's fused Adam, one pass instead of ~10 (same update)
        return pyro.optim.Adam(lambda name: {**options, "fused": True} if name == ASSIGNMENT_PROBS else options)
    per_step = lr_decay ** (1.0 / max(1, num_steps))
    return pyro.optim.ClippedAdam({"lr": lr, "betas": betas, "lrd": per_step, "clip_norm": math.inf})


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
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
def warm_up_torch_optim() -> None:
    """Pay torch.optim's one-time lazy imports (seconds) before a run's clock starts."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


class Stepper:
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
        self._previous: list[tuple[Tensor, Tensor]] = []  # (parameter, its value before the last update)

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
        for name, unconstrained in getattr(self.elbo, "direct_params", {}).items():  # read from the store directly
            seen.setdefault(id(unconstrained), (name, unconstrained))
        self._params = [p for _, p in seen.values()]
        if self.distributed:
            return self._all_reduce(float(loss), list(seen.values()))
        squares = [_squared_norm(p.grad) for p in self._params if p.grad is not None]
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
        *grads, scalars = comm.all_reduce_sum(*[p.grad for p in shared], scalars)
        for p, grad in zip(shared, grads):
            p.grad.copy_(grad)
        shared_squares = sum((float(g.square().sum()) for g in grads), 0.0)
        return float(scalars[0]), math.sqrt(shared_squares + float(scalars[1]))

    def update(self) -> None:
        """One optimizer step on the gradients of the last :meth:`evaluate` (the point before kept)."""
        self._previous = [(p, p.detach().clone()) for p in self._params]
        self.optimizer(self._params)
        self.zero_grad()

    def restore(self) -> None:
        """Move back to the point before the last :meth:`update` (after a non-finite loss)."""
        self.zero_grad()
        with torch.no_grad():
            for p, previous in self._previous:
                p.copy_(previous)

    def zero_grad(self) -> None:
        direct = {id(p) for p in getattr(self.elbo, "direct_params", {}).values()}
        pyro.infer.util.zero_grads([p for p in self._params if id(p) not in direct])
        for p in self._params:
            if id(p) in direct:  # every estimate gives these a whole gradient: none to zero and add to
                p.grad = None


def _squared_norm(grad: Tensor) -> Tensor:
    """``Σ grad²`` ``()`` in one pass (no squared copy)."""
    flat = grad.detach().reshape(-1)
    return torch.dot(flat, flat)


class ExcludeSites(Messenger):
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
