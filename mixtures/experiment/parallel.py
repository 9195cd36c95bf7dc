"""Fits of a run on an executor (``mixtures run --jobs N`` or ``--dask``), with results identical to a sequential run.

One seam, two backends. :func:`run_tasks` submits ``run_task(task, bundle, config)`` calls to any
:class:`concurrent.futures.Executor` and yields their outcomes as they finish; a :class:`Pool`
says which executor, how many fits run at once and how many torch threads each gets.
:func:`process_pool` is the one-machine backend (``--jobs``);
:func:`mixtures.experiment.dask_cluster.dask_pool` the Dask backend (``--dask``), whose client's
``concurrent.futures`` view is the same kind of executor.

Every fit is seeded by its task and runs the same code on the same data, so where it runs does
not change its numbers, provided the thread count is the same: each fit sets torch's intra-op
threads to its pool's share (``max(1, threads // jobs)``; a sequential run with ``--threads 1``
and a parallel one then run bit-identical fits). Local workers are started with ``spawn``
(forking a process that already ran torch's OpenMP pool can hang); they receive the task, its
data and the config, and send back the :class:`~mixtures.experiment.store.Outcome`; only the
driver writes files, as the fits finish, so an interrupted parallel run resumes like a
sequential one. A process runs one fit at a time (:data:`_ONE_FIT`): Pyro's parameter store is
global to a process, so two fits in threads of one Dask worker would share it.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Pool", "process_pool", "run_tasks", "worker_threads"]

#: held while a fit runs in a worker process (see the module docstring)
_ONE_FIT = threading.Lock()


@dataclass
class Pool:
    """Where the fits run: ``executor``, ``slots`` fits at once, ``threads`` torch threads each
    (``None``: the worker's own count), ``description`` for the progress bar (``"2 processes"``)."""

    executor: Executor
    slots: int
    threads: int | None
    description: str


def worker_threads(jobs: int, threads: int | None = None) -> int:
    """Each worker's share of torch's intra-op threads (at least 1)."""
    return max(1, (threads if threads is not None else torch.get_num_threads()) // jobs)


@contextmanager
def process_pool(jobs: int) -> Iterator[Pool]:
    """``jobs`` spawned worker processes on this machine, each with its share of the threads."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1; got {jobs}.")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as executor:
        yield Pool(executor, jobs, worker_threads(jobs), f"{jobs} processes")


def fit_pinned(threads: int | None, run_task: Callable[..., Any], *args: Any) -> Any:
    """``run_task(*args)`` with torch's intra-op threads set to ``threads`` (``None``: left as they are),
    one fit per process at a time."""
    with _ONE_FIT:
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return run_task(*args)
        finally:  # a worker thread of the driver's own process (Dask's processes=False) leaves it as it was
            torch.set_num_threads(before)


def run_tasks(tasks: list[Any], data: Any, config: Any, pool: Pool, run_task: Callable[..., Any]) -> Iterator[Any]:
    """Yield the outcome of every task, in the order they finish, fitted by ``run_task(task, bundle, config)``
    on ``pool`` (at most ``2 * pool.slots`` tasks in flight, so the data sent stays bounded)."""
    queue = list(tasks)
    running: set[Future] = set()
    try:
        while queue or running:
            while queue and len(running) < 2 * pool.slots:
                task = queue.pop(0)
                running.add(pool.executor.submit(fit_pinned, pool.threads, run_task, task, data.get(task), config))
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    except BaseException:
        for future in running:
            future.cancel()
        pool.executor.shutdown(wait=False)  # Dask's executor takes no cancel_futures; all are cancelled above
        raise
