"""Data-parallel fitting over ``torch.distributed``: every rank holds a shard.

EM's sufficient statistics add up over any split of the data, so all-reducing
them after each pass makes every rank take the same M step as a single process
holding all the data (equal to rounding). Everything that must agree (the shift
the moments are taken about, the initial parameters) is broadcast from rank 0.
Works with any backend (gloo on CPU, NCCL on GPUs); launch with ``torchrun``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from mixtures.params import MixtureParams
from mixtures.suffstats import Summary


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


def broadcast_params(params: MixtureParams, src: int = 0) -> MixtureParams:
    """Rank ``src``'s parameters on every rank."""
    return MixtureParams.from_native(broadcast(params.weights, src), broadcast(params.locs, src),
                                     broadcast(params.native, src), params.cov_type, validate=False)


def agreed_start(model, X, make_start) -> MixtureParams:
    """Initial parameters computed on rank 0 (``make_start()``) and broadcast to all ranks.

    Other ranks only allocate tensors of the right shapes to receive them, so a
    shard with fewer than K points is fine anywhere but on rank 0.
    """
    if dist.get_rank() == 0:
        start = make_start()
    else:
        K, D = model.n_components, X.shape[1]
        dtype = X.dtype
        shape = model.cov_type.native_shape(K, D)
        start = MixtureParams.from_native(torch.full((K,), 1.0 / K, dtype=dtype), torch.zeros(K, D, dtype=dtype),
                                          torch.ones(shape, dtype=dtype), model.cov_type, validate=False)
    return broadcast_params(start)


def all_reduce_summary(summary: Summary) -> Summary:
    """Sum a pass's statistics over ranks (one flat all-reduce)."""
    pieces = [summary.nk, summary.sx, summary.sxx, summary.log_likelihood, summary.entropy,
              summary.nk.new_tensor(float(summary.n_points))]
    flat = torch.cat([piece.reshape(-1) for piece in pieces])
    dist.all_reduce(flat)
    values, offset = [], 0
    for piece in pieces:
        values.append(flat[offset:offset + piece.numel()].reshape(piece.shape))
        offset += piece.numel()
    nk, sx, sxx, log_likelihood, entropy, n_points = values
    return Summary(summary.shift, nk, sx, sxx, int(round(float(n_points))), log_likelihood, entropy,
                   summary.labels)


def global_count(n_local: int, device=None) -> int:
    """Total number of points over ranks."""
    count = torch.tensor([float(n_local)], dtype=torch.float64, device=device)
    dist.all_reduce(count)
    return int(round(float(count)))
