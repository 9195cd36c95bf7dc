"""Threads that only help: passes over chunks spread across worker threads, each running one
chunk's kernel single-threaded.

torch's intra-op parallelism splits every operation of a chunk (about twenty per chunk of the
fused pass) into OpenMP regions; on a shared machine libgomp's spin-waiting stalls whenever the
other thread is descheduled, and a second thread made passes 10-80x *slower* under contention.
Here parallelism is across chunks instead: ``T`` workers each take whole chunks and run the
chunk's operations with one intra-op thread (torch releases the GIL inside every operation).
Nothing spins.

In-memory data (:func:`map_indexed`): the calling thread is one of the ``T`` workers and every
worker takes the next chunk index from one shared counter, so a pass uses exactly ``T`` threads
(not ``T`` workers plus a dispatching thread competing with them for the cores), costs one
``next`` per chunk to distribute, and a worker that is descheduled holds back only the chunk it
is on: the others take the rest, and at the end the caller computes a chunk a late helper still
holds rather than wait for it. The chunks' results are added up **in chunk order**, by the caller
between its own chunks. Streamed data (:func:`map_ordered`), read in order, are handed to a pool
with a few chunks in flight.

:func:`using` ``("auto")`` (``fit``'s default) measures each kind of pass on 1 worker and on all,
and keeps the faster: on a machine loaded by other sessions a second worker gets no more CPU time
and can make a pass slower.

Results do not depend on the thread count, bit for bit: every chunk is computed by the same
single-threaded kernels whichever thread runs it, and the sums over chunks are taken in the
same order. (Bitwise equality holds between any two settings of :func:`using`; a pass run
*outside* it with torch's own intra-op threads may differ in the last bits, see
:data:`mixtures.kernels.fused_pass.MAX_CHUNK`.)

:func:`using` is the setting (``mixtures.fit(..., threads=T)`` enters it for the whole fit):
it pins torch's intra-op threads to 1 for its duration (so that code outside the passes does
not spin either) and sets the number of chunk workers; :func:`workers` reads it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import os
import statistics
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

_state = threading.local()
_kept = threading.local()  # (key, state) of kept_per_worker
T = TypeVar("T")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The default of ``fit(threads=None)``: every core this process may use."""
    return available_cores()


def resolve_threads(threads: Any) -> int:
    """``threads`` as a positive int (``None``: :func:`default_threads`); ``ValueError`` otherwise."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None (every available core); got {threads!r}.")
    return threads


def workers() -> int:
    """Chunk workers of the passes run by this thread (1 outside :func:`using`; the most
    :func:`using` ``("auto")`` may choose)."""
    return getattr(_state, "workers", 1)


#: every this many passes of one kind, ``"auto"`` runs one on the worker count it did not choose
PROBE_EVERY = 8


class _Chooser:
    """``using("auto")``: for each kind of pass, the faster of 1 and ``most`` workers, measured.

    Under another session's load (Linux's autogroup scheduling gives each session its share of the
    cores whatever its thread count) a second worker cannot get more CPU time, and each worker
    needs the GIL between operations (one descheduled while holding it would stall the other).
    Two workers were then 0.71-0.94x one (``experiments/BENCHMARK.md``, round 7). The
    passes of a fit repeat (EM iterations, optimizer steps), results do not depend on the worker
    count, so each kind of pass runs on both counts first and then on the one with the higher
    measured rate (points per second, averaged over its last passes), trying the other count every
    :data:`PROBE_EVERY` passes in case the load changed.
    """

    def __init__(self, most: int):
        self.most = most
        self.rates: dict[Any, dict[int, float]] = {}
        self.passes: dict[Any, int] = {}

    def choose(self, kind: Hashable) -> int:
        rates = self.rates.setdefault(kind, {})
        for count in (self.most, 1):
            if count not in rates:
                return count
        best = max(rates, key=rates.__getitem__)
        probe = self.passes.get(kind, 0) % PROBE_EVERY == PROBE_EVERY - 1
        return (1 if best == self.most else self.most) if probe else best

    def record(self, kind: Hashable, count: int, points: int, seconds: float) -> None:
        self.passes[kind] = self.passes.get(kind, 0) + 1
        rate = points / max(seconds, 1e-9)
        previous = self.rates.setdefault(kind, {}).get(count)
        self.rates[kind][count] = rate if previous is None else 0.5 * (previous + rate)


class PassWorkers:
    """The worker ``count`` of one pass; the pass sets ``points`` (for :func:`using` ``("auto")``)."""

    def __init__(self, count: int):
        self.count, self.points = count, 0


@contextlib.contextmanager
def pass_workers(kind: Hashable) -> Iterator[PassWorkers]:
    """The workers of one pass: :func:`workers`, or the choice of :func:`using` ``("auto")`` for
    this ``kind`` of pass, which is then timed (a pass that raises is not counted)."""
    chooser = getattr(_state, "chooser", None)
    if chooser is None or chooser.most == 1:
        yield PassWorkers(workers())
        return
    chosen = PassWorkers(chooser.choose(kind))
    began = time.perf_counter()
    yield chosen
    chooser.record(kind, chosen.count, chosen.points, time.perf_counter() - began)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch's intra-op threads pinned to 1 inside and restored after: on a busy machine a
    parallel region's threads spin-wait for milliseconds per operation (a (272, 9) logsumexp:
    0.1 ms on one thread, 9-24 ms on two), more than small data's work."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def using(threads: int | str | None, most: int | None = None) -> Iterator[int]:
    """Run passes on ``threads`` chunk workers (``None``: :func:`default_threads`; ``"auto"``: for
    each kind of pass the faster of 1 and ``most`` (default :func:`default_threads`), measured
    pass by pass, see :class:`_Chooser`); torch's intra-op threads are pinned to 1 inside and
    restored after. Yields the (most) worker count."""
    auto = threads == "auto"
    count = resolve_threads(most if auto else threads)
    previous = workers(), getattr(_state, "chooser", None)
    _state.workers, _state.chooser = count, (_Chooser(count) if auto else None)
    try:
        with one_torch_thread():
            yield count
    finally:
        _state.workers, _state.chooser = previous


def kept_per_worker(make: Callable[[], T], key: Hashable) -> Callable[[], T]:
    """``make`` as a ``make_state`` of :func:`map_indexed` / :func:`map_ordered` whose result the
    thread that calls it keeps: its next pass with the same ``key`` reuses it. A thread keeps one
    (for the last key it was asked for), freed with the thread.

    For the chunk buffers (megabytes each): allocated per pass, a helper thread's buffers went back
    to its allocator arena at the end of the pass, were returned to the system, and the next pass
    page-faulted them in again (400-1 500 faults per pass on the helper thread of the benchmark's
    float32 E pass, about a millisecond). The main thread's arena kept them anyway: keeping them
    costs no more memory than that did.
    """
    def made() -> T:
        kept = getattr(_kept, "state", None)
        if kept is None or kept[0] != key:
            _kept.state = None  # the old one freed before the new one is made
            kept = _kept.state = (key, make())
        return kept[1]
    return made


def _pin_one_thread() -> None:
    # a worker's intra-op thread count (OpenMP's per-thread setting, MKL's thread-local one)
    torch.set_num_threads(1)


@functools.cache
def _executor(count: int) -> ThreadPoolExecutor:
    """A pool of ``count`` single-threaded workers, kept for the life of the process (idle workers
    block on a queue: they cost nothing between passes)."""
    return ThreadPoolExecutor(max_workers=count, thread_name_prefix="mixtures-chunk",
                              initializer=_pin_one_thread)


def map_ordered(task: Callable[[Any, Any], Any], items: Iterable[Any], make_state: Callable[[], Any],
                count: int) -> Iterator[Any]:
    """``task(state, item)`` for every item on ``count`` workers; results yielded in item order.

    Each worker builds its own ``state`` (e.g. chunk buffers) once per call with ``make_state``.
    At most ``2 · count`` items are in flight, so a streamed source is read ahead by a few
    chunks only.
    """
    local = threading.local()

    def run(item: Any) -> Any:
        state = getattr(local, "state", None)
        if state is None:
            state = local.state = make_state()
        return task(state, item)

    pool = _executor(count)
    pending: collections.deque[Future] = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(run, item))
            if len(pending) >= 2 * count:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # an error or an abandoned generator: drop what has not started
            future.cancel()


def map_indexed(task: Callable[[Any, int], Any], n_items: int, make_state: Callable[[], Any],
                count: int) -> Iterator[Any]:
    """``task(state, i)`` for ``i`` in ``range(n_items)`` on ``count`` workers, the calling thread one
    of them; the results are yielded in index order. ``task`` must be deterministic: an item may be
    computed twice (below), and either result is used.

    The workers take the next index from one shared counter (a worker that waits for a core
    holds back its current item only, while the others take the rest), and each builds its own
    ``state`` with ``make_state`` when it takes its first item. Nothing is queued per item. The
    caller yields each result as soon as it and all before it are done, between its own items,
    so what it does with them (the sums in chunk order) overlaps the other workers' items.

    The caller never waits long for a helper: once no index is left, an item a helper is still on
    is waited for only while it has run less than :data:`BACKUP_AFTER` times the mean item time;
    past that (its helper descheduled by a busy machine, or not yet started) the caller computes
    it itself, as a lone worker would have, and the helper's late copy is dropped. So a pass on
    ``count`` workers takes at most about what the caller alone would. An error is raised here
    (a helper's stops the workers; the caller then meets it computing that item itself); closing
    the generator early stops the helpers too.
    """
    slots: list[tuple[Any] | None] = [None] * n_items  # (result,) once done
    started: list[float | None] = [None] * n_items  # perf_counter when a worker took the item
    durations: list[float] = []
    indices = itertools.count()  # next() on it is atomic under the GIL
    stop: list[bool] = []
    finished = threading.Condition()
    own: list[Any] = []  # the caller's state, once made

    def run(state: Any, index: int) -> None:
        started[index] = began = time.perf_counter()
        result = task(state, index)
        durations.append(time.perf_counter() - began)
        if slots[index] is None:
            slots[index] = (result,)

    def drain(on_caller: bool = False) -> Iterator[int]:
        state = None
        try:
            for index in indices:
                if index >= n_items or stop:
                    return
                if state is None:
                    state = make_state()
                    if on_caller:
                        own.append(state)
                run(state, index)
                if on_caller:
                    yield index
                else:
                    with finished:
                        finished.notify_all()
        except BaseException:
            stop.append(True)
            with finished:
                finished.notify_all()
            raise

    helpers = [_executor(count - 1).submit(lambda: list(drain())) for _ in range(min(count, n_items) - 1)]
    following = 0  # the next result to yield
    try:
        for _ in drain(on_caller=True):
            while following < n_items and slots[following] is not None:
                yield _take(slots, following)
                following += 1
        for index in range(following, n_items):
            if slots[index] is None and not stop:
                _wait_for(slots, index, started[index], durations, finished)
            if slots[index] is None:  # late, failed or never taken: compute it here
                if not own:
                    own.append(make_state())
                run(own[0], index)
            yield _take(slots, index)
    finally:
        stop.append(True)  # an early exit (an error, or a generator closed) stops the helpers too
        for helper in helpers:  # one not started (a pool busy with another pass) has nothing left to do
            helper.cancel()


#: the caller computes an item a helper is still on once it has run this many mean item times
BACKUP_AFTER = 1.5


def _wait_for(slots: list[tuple[Any] | None], index: int, started: float | None, durations: list[float],
              finished: threading.Condition) -> None:
    """Wait until a helper has stored item ``index``, but no longer than until it has run
    :data:`BACKUP_AFTER` mean item times (not at all before any item has finished or was taken)."""
    if started is None or not durations:
        return
    deadline = started + BACKUP_AFTER * statistics.fmean(durations)
    with finished:
        while slots[index] is None:
            left = deadline - time.perf_counter()
            if left <= 0 or not finished.wait(left):
                return


def _take(slots: list[tuple[Any] | None], index: int) -> Any:
    slot = slots[index]
    slots[index] = None  # drop the reference as soon as the caller has it
    assert slot is not None
    return slot[0]
