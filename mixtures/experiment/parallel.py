"""Fits of a run in worker processes (``mixtures run --jobs N``), with results identical to a sequential run.

Every fit is seeded by its task and runs the same code on the same data, so where it runs does
not change its numbers, provided the thread count is the same: each worker sets torch's
intra-op threads to its share (``max(1, threads // jobs)``; a sequential run with ``--threads 1``
and a parallel one then run bit-identical fits). Workers are started with ``spawn`` (forking a
process that already ran torch's OpenMP pool can hang); they receive the task, its data and
the config, and send back the :class:`~mixtures.experiment.store.Outcome`; only the parent
writes files, as the fits finish, so an interrupted parallel run resumes like a sequential one.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import torch

__all__ = ["run_tasks", "worker_threads"]


def worker_threads(jobs: int, threads: int | None = None) -> int:
    """Each worker's share of torch's intra-op threads (at least 1)."""
    return max(1, (threads if threads is not None else torch.get_num_threads()) // jobs)


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_tasks(tasks: list[Any], data: Any, config: Any, jobs: int, run_task: Callable[..., Any]) -> Iterator[Any]:
    """Yield the outcome of every task, in the order they finish, fitted by ``run_task(task, bundle, config)``
    in ``jobs`` processes (at most ``2 * jobs`` tasks in flight, so the data sent stays bounded)."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1; got {jobs}.")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                             initargs=(worker_threads(jobs),)) as pool:
        queue = list(tasks)
        running: set[Future] = set()
        try:
            while queue or running:
                while queue and len(running) < 2 * jobs:
                    task = queue.pop(0)
                    running.add(pool.submit(run_task, task, data.get(task), config))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            for future in running:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
