"""Checks shared by test modules: two fits equal to 1e-10, a one-rank gloo process group, and spawned ranks."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import assert_close


def same_fit(a, b, columns=("log_likelihood", "elbo")) -> None:
    """Two results equal to 1e-10: parameters and the history's columns (NaN where both are)."""
    for name in ("weights", "locs", "covariances"):
        assert_close(getattr(a.params, name), getattr(b.params, name), rtol=1e-10, atol=1e-10, msg=name)
    assert a.n_iter == b.n_iter
    for column in columns:
        assert_close(torch.as_tensor(a.history[column]).nan_to_num(7.0),
                     torch.as_tensor(b.history[column]).nan_to_num(7.0), rtol=1e-10, atol=1e-9, msg=column)


def free_port() -> int:
    """A TCP port free on the loopback interface now (for a gloo rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawned_ranks(worker, out_dir, *args, world_size: int = 2) -> list[dict]:
    """Run ``worker(rank, *args, port, out_dir)`` in ``world_size`` spawned processes (a gloo group on a free
    loopback port) and return what each rank saved as ``out_dir/rank{r}.pt``."""
    mp.start_processes(worker, args=(*args, free_port(), str(out_dir)), nprocs=world_size, start_method="spawn",
                       join=True)
    return [torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


@contextlib.contextmanager
def one_rank_group() -> Iterator[None]:
    """A gloo process group of one rank for the duration (the distributed code paths, in process)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
