"""Data-parallel fitting over ``torch.distributed``: every rank holds a shard.

Call ``mixtures.fit(..., distributed=True)`` in every rank of an initialized
process group, each rank with its own shard ``X``; every rank returns the same
parameters, history and objective as one process holding all the data, equal
to rounding (sums over points are reassociated). Routines that run distributed
(their records' ``distributed``), and what they combine over ranks:

``"em"``, ``"hard_em"``
    the sufficient statistics of every pass (:func:`all_reduce_summary`).
``"vb"``
    the same statistics of every VB pass, plus entropy and log-likelihood.
``"kmeans"``
    sums, counts and inertia of every Lloyd pass; empty clusters are refilled
    from the K farthest points of *all* ranks (:func:`global_farthest`); the
    scale of ``tol`` and the induced mixture's statistics are global.
``"map"``, ``"svi"`` (``guide="delta"``)
    the loss and the gradients of the global parameters, after every
    ``loss_and_grads`` and before the optimizer's step; standardization uses the
    global mean and standard deviation (:func:`global_mean_std`). Per-point
    parameters (the mean-field guide's) stay on their rank.

Everything that must agree is either broadcast from rank 0 (the initial
parameters, the shift the moments are taken about) or computed from all-reduced
sums (a prior's data-scaled defaults: the family's ``with_global_prior``, from
:func:`global_mean_cov`). Decisions
(convergence, early stopping) depend only on such values, so every rank takes
the same branches and the same collectives. Works with any backend (gloo on CPU,
NCCL on GPUs); launch with ``torchrun``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from mixtures.core.params import Params
from mixtures.core.stream import iter_data
from mixtures.core.summary import Summary, default_shift


def check_initialized() -> None:
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "distributed=True needs an initialized process group: call "
            "torch.distributed.init_process_group(...) in every rank first (torchrun sets the "
            "environment for init_process_group('gloo') or 'nccl')."
        )


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Rank ``src``'s value of ``tensor`` on every rank (a new tensor)."""
    result = tensor.detach().clone().contiguous()
    dist.broadcast(result, src=src)
    return result


def broadcast_params(params: Params | None, src: int = 0, device: torch.device | None = None) -> Params:
    """Rank ``src``'s parameters on every rank (the others pass None, or anything).

    The container's class, spec and tensor shapes travel first as one small object, so
    receiving ranks need not know the family; they allocate on ``device`` (default: the
    CPU; NCCL receives into CUDA tensors only, so pass the data's device).
    """
    sending = dist.get_rank() == src
    header = [(type(params), params.spec(), {name: (tuple(t.shape), t.dtype) for name, t in
                                            params.tensors().items()})] if sending else [None]
    dist.broadcast_object_list(header, src=src)
    params_type, spec, shapes = header[0]
    tensors = {name: broadcast(params.tensors()[name] if sending else torch.empty(shape, dtype=dtype,
                                                                                  device=device), src)
               for name, (shape, dtype) in shapes.items()}
    return params_type.from_tensors(tensors, spec, validate=False)


def agreed_start(X: Tensor, make_start) -> Params:
    """Initial parameters computed on rank 0 (``make_start()``) and broadcast to all ranks.

    Other ranks only receive, so a shard with fewer than K points is fine anywhere but on rank 0.
    """
    return broadcast_params(make_start() if dist.get_rank() == 0 else None, device=X.device)


def all_reduce_summary(summary: Summary) -> Summary:
    """Sum a pass's statistics over ranks (one flat all-reduce): ``nk``, the moments, the
    log-likelihood, the entropy and the point count."""
    pieces = summary.additive() + [summary.log_likelihood, summary.entropy,
                                   summary.nk.new_tensor(float(summary.n_points))]
    flat = torch.cat([piece.reshape(-1) for piece in pieces])
    dist.all_reduce(flat)
    values, offset = [], 0
    for piece in pieces:
        values.append(flat[offset:offset + piece.numel()].reshape(piece.shape))
        offset += piece.numel()
    *additive, log_likelihood, entropy, n_points = values
    return summary.with_additive(additive).replace(n_points=int(round(float(n_points))),
                                                   log_likelihood=log_likelihood, entropy=entropy,
                                                   worst_point=None)


def global_count(n_local: int, device=None) -> int:
    """Total number of points over ranks (``device``: the data's; NCCL reduces CUDA tensors only)."""
    count = torch.tensor([float(n_local)], dtype=torch.float64, device=device)
    dist.all_reduce(count)
    return int(round(float(count)))


# -- small collectives shared by the routines ----------------------------------------------
def rank() -> int:
    """This process's rank in the default group."""
    return dist.get_rank()


def world_size() -> int:
    """Number of ranks in the default group."""
    return dist.get_world_size()


def all_reduce_sum(*tensors: Tensor) -> list[Tensor]:
    """Every tensor summed over ranks, in one flat all-reduce (new tensors, same shapes and dtypes).

    The pieces travel as float64 (a loss kept as a Python float is not rounded to
    float32), on the first tensor's device (CUDA for NCCL).
    """
    device = tensors[0].device
    flat = torch.cat([torch.as_tensor(t).detach().reshape(-1).to(device=device, dtype=torch.float64)
                      for t in tensors])
    dist.all_reduce(flat)
    values, offset = [], 0
    for t in tensors:
        n = t.numel()
        values.append(flat[offset:offset + n].reshape(t.shape).to(t.dtype))
        offset += n
    return values


def all_reduce_float(value: float | Tensor, device=None) -> float:
    """A scalar summed over ranks."""
    return float(all_reduce_sum(torch.as_tensor(float(value), dtype=torch.float64, device=device))[0])


def count_range(n_local: int, device=None) -> tuple[int, int]:
    """``(smallest, largest)`` shard size over ranks."""
    extremes = torch.tensor([float(n_local), -float(n_local)], dtype=torch.float64, device=device)
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    return int(round(-float(extremes[1]))), int(round(float(extremes[0])))


def centred_moments(X, shift: Tensor | None = None,
                    outer: bool = False) -> tuple[int, Tensor, Tensor, Tensor]:
    """Global ``(N, shift, Σ (x - shift), Σ (x - shift)²)`` over ranks, in one pass per rank.

    ``X`` is this rank's ``(n_r, D)`` shard (a tensor or ``StreamingData``). The
    moments are taken about ``shift`` (default: rank 0's ``default_shift``,
    broadcast) so that ``E[x²] - E[x]²`` does not cancel for data far from the
    origin. The second moment is ``(D,)`` squares, or the ``(D, D)`` outer
    products with ``outer=True``.
    """
    if shift is None:
        shift = broadcast(default_shift(X))
    D = shift.shape[0]
    first = shift.new_zeros(D)
    second = shift.new_zeros((D, D) if outer else (D,))
    n_local = 0
    for chunk in iter_data(X, 1 << 16):
        centred = chunk - shift
        n_local += chunk.shape[0]
        first = first + centred.sum(0)
        second = second + (centred.T @ centred if outer else centred.square().sum(0))
    count, first, second = all_reduce_sum(shift.new_tensor(float(n_local)), first, second)
    return int(round(float(count))), shift, first, second


def global_mean_std(X) -> tuple[int, Tensor, Tensor]:
    """``(N, mean (D,), std (D,))`` of the data over all ranks (``std`` with ``ddof=0``)."""
    n, shift, first, second = centred_moments(X)
    offset = first / n
    variance = (second / n - offset.square()).clamp_min(0)
    return n, shift + offset, variance.sqrt()


def global_observed_means(X: Tensor) -> Tensor:
    """Each feature's mean over its observed (non-NaN) entries on all ranks ``(D,)`` (0 where never
    observed): :func:`mixtures.core.missing.observed_means` of all the data."""
    observed = ~torch.isnan(X)
    sums = torch.where(observed, X, torch.zeros((), dtype=X.dtype, device=X.device)).sum(0)
    sums, counts = all_reduce_sum(sums, observed.sum(0).to(X.dtype))
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.zeros_like(sums))


def global_mean_cov(X) -> tuple[int, Tensor, Tensor]:
    """``(N, mean (D,), covariance (D, D))`` over all ranks (``ddof=1``, as ``torch.cov``)."""
    n, shift, first, second = centred_moments(X, outer=True)
    offset = first / n
    cov = (second - n * offset[:, None] * offset[None, :]) / max(n - 1, 1)
    return n, shift + offset, 0.5 * (cov + cov.T)  # exactly symmetric


def global_farthest(farthest: tuple[Tensor, Tensor, Tensor] | None, keep: int, like: Tensor
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """The ``keep`` points farthest from their centres over all ranks, identical on every rank.

    Args:
        farthest: this rank's candidates ``(points (k, D), distances (k,), labels (k,))``
            with ``k <= keep`` (None for an empty shard), e.g. from a Lloyd pass.
        keep: how many to return (``K``).
        like: a tensor of the data's dtype and device; ``like.shape[-1]`` is ``D``.

    Every rank pads its candidates to exactly ``keep`` rows (distance ``-inf``,
    which never wins against a real point), all-gathers one fixed-size
    ``(keep, D + 2)`` block per rank (points, distance, label) and takes the top
    ``keep`` of the union in one deterministic ``topk`` over identical inputs.
    Returns ``(points (keep, D), distances (keep,), labels (keep,))`` sorted by
    decreasing distance; rows with distance ``-inf`` are padding (only when there
    are fewer than ``keep`` points in all).
    """
    D = like.shape[-1]
    block = like.new_zeros(keep, D + 2)
    block[:, D] = -math.inf
    if farthest is not None:
        points, distances, labels = farthest
        k = points.shape[0]
        block[:k, :D] = points
        block[:k, D] = distances
        block[:k, D + 1] = labels.to(block.dtype)  # cluster indices are exact in float32 and float64
    gathered = [torch.empty_like(block) for _ in range(world_size())]
    dist.all_gather(gathered, block.contiguous())
    union = torch.cat(gathered)
    top = torch.topk(union[:, D], keep).indices
    chosen = union[top]
    return chosen[:, :D], chosen[:, D], chosen[:, D + 1].round().long()
