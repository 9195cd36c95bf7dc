"""Bootstrap replicates run one after another or in worker processes, with the same numbers either way.

Replicate ``b`` of a bootstrap with base seed ``s`` is a function of its own seed alone:
``replicate_seeds(s, B)[b]`` (NumPy's ``SeedSequence(s).spawn(B)``, as ``fit``'s restarts), and a
replicate that cannot be fitted is redrawn from the next of its own child seeds
(:func:`attempt_seeds`), never from a shared stream. Every replicate runs with one torch
intra-op thread, in this process or in a worker, so no reduction is split differently and a
parallel run returns bit for bit what a sequential one does.

Workers are started with ``fork`` where the platform has it (the parent's imports are reused,
as NUTS chains do: :mod:`mixtures.inference.pyro.chains`) and ``spawn`` elsewhere; each takes
contiguous chunks of replicates and returns their results in order.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from mixtures.core.validation import check_positive_int, check_seed, spawn_seeds
from mixtures.kernels import parallel

__all__ = ["replicate_seeds", "attempt_seeds", "resolve_processes", "map_replicates", "check_replicates",
           "FIT_ERRORS"]

#: what a replicate's fit may raise and be redrawn for (singular covariance, divergence, dead start)
FIT_ERRORS = (ValueError, FloatingPointError, RuntimeError)


def check_replicates(n_boot: Any) -> int:
    """``n_boot`` as an int ≥ 1, or a ``ValueError`` saying how to fix it."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot (the number of bootstrap replicates B) must be an integer >= 1; got {n_boot!r}. "
                         "mclust's default is 999; 19-99 suffice for a rough p-value.")
    return n_boot


def replicate_seeds(seed: int, n: int) -> list[int]:
    """The seeds of replicates ``0..n-1`` of a bootstrap with base ``seed``."""
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("the bootstrap needs a base seed (an integer >= 0) so that its replicates can be repeated.")
    return spawn_seeds(seed, n)


def attempt_seeds(seed: int, attempts: int) -> list[int]:
    """The seeds of a replicate's first ``attempts`` draws (a draw that cannot be fitted is redrawn)."""
    return spawn_seeds(seed, attempts)


def resolve_processes(processes: Any, n_tasks: int) -> int:
    """Worker processes to use: ``None`` means every usable core, never more than the replicates."""
    if processes is None:
        processes = parallel.available_cores()
    processes = check_positive_int(processes, "processes")
    return max(1, min(processes, n_tasks))


def _one_thread() -> None:
    torch.set_num_threads(1)


def _run_chunk(task: Callable[[int], Any], seeds: Sequence[int]) -> list[Any]:
    with parallel.one_torch_thread():
        return [task(seed) for seed in seeds]


def map_replicates(task: Callable[[int], Any], seeds: Sequence[int], processes: int = 1) -> list[Any]:
    """``[task(seed) for seed in seeds]``, in ``processes`` workers (1: in this process), in order.

    ``task`` must be picklable when ``processes > 1`` (a module-level function or a
    ``functools.partial`` of one over picklable arguments). Every call runs with one torch thread.
    """
    seeds = list(seeds)
    processes = resolve_processes(processes, len(seeds))
    if processes == 1:
        return _run_chunk(task, seeds)
    # a few chunks per worker: the slow replicates of one chunk do not hold up the others
    size = max(1, math.ceil(len(seeds) / (4 * processes)))
    chunks = [seeds[i:i + size] for i in range(0, len(seeds), size)]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(method),
                             initializer=_one_thread) as pool:
        futures = [pool.submit(_run_chunk, task, chunk) for chunk in chunks]
        return [item for future in futures for item in future.result()]
