"""Running NUTS chains: one after another in this process, or in parallel in worker processes.

Every chain is the same function of its seed (:func:`run_chain`): ``pyro.set_rng_seed(seed)``
inside a forked RNG state, a fresh kernel from ``make_kernel``, ``MCMC.run``, with one torch
thread. Run in this process or in a worker, a chain with the same seed gives the same draws,
bit for bit (one thread everywhere: no reduction is split differently). One thread per chain
is also the fast choice here: a potential evaluation of a mixture is a few small matrix
products, which a second thread only slows down (measured 2-5x slower with 2 threads on a
loaded 2-core machine).

Parallel chains
    ``processes`` workers (default: as many as there are chains and usable cores), started
    with ``fork`` where the platform has it (the parent's imports are reused: a worker starts
    in milliseconds) and ``spawn`` elsewhere. Each worker runs chains with one torch thread
    (forked OpenMP thread pools are not safe to use with more). Errors raised in a chain
    reach the caller as they are.

Progress
    One bar per chain (``tqdm``: warmup then sampling, with the adapted step size and the
    divergences so far), drawn by this process from the chains' reports, on standard error.
    ``progress=None`` shows them only on an interactive terminal: never under pytest, in CI
    (``CI`` set) or when standard error is redirected to a file.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import MCMC
from torch import Tensor
from tqdm import tqdm  # not tqdm.auto: in a notebook without ipywidgets it warns on import

from mixtures.core.missing import has_missing, marginalizing
from mixtures.errors import DivergenceError
from mixtures.kernels import parallel

__all__ = ["ChainRun", "run_chains", "run_chain", "usable_cores", "show_progress"]

#: seconds between the parent's looks at the progress reports of worker chains
POLL_SECONDS = 0.1


@dataclass
class ChainRun:
    """What one chain returns.

    Attributes:
        samples: site -> kept draws ``(num_samples, ...)``.
        divergences: indices (within the kept draws) of divergent transitions.
        acceptance_rate: fraction of kept iterations that moved (Pyro's).
        mean_accept_prob: mean NUTS acceptance statistic over the kept iterations.
        step_size: the step size after adaptation.
        times: ``time.perf_counter()`` when each kept draw was made (the clock is shared by the
            processes of one machine).
        energy: the Hamiltonian of each kept iteration (:mod:`~mixtures.inference.pyro.recording`).
        n_steps: the potential-and-gradient evaluations of each kept iteration.
    """

    samples: dict[str, Tensor]
    divergences: list[int] = field(default_factory=list)
    acceptance_rate: float = math.nan
    mean_accept_prob: float = math.nan
    step_size: float = math.nan
    times: list[float] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    n_steps: list[int] = field(default_factory=list)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform says, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def show_progress(progress: bool | None) -> bool:
    """``progress``, or for ``None``: whether standard error is an interactive terminal outside
    pytest and CI."""
    if progress is not None:
        return bool(progress)
    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return interactive and not os.environ.get("CI") and "PYTEST_CURRENT_TEST" not in os.environ


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """``pyro.set_rng_seed(seed)`` inside; torch, numpy and ``random`` global states restored after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            pyro.set_rng_seed(int(seed))
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


# -- one chain --------------------------------------------------------------------------------
Report = Callable[[int, str, float, int], None]  # (chain, stage, step size, divergences so far)


def run_chain(make_kernel: Callable[[], Any], X: Tensor, chain: int, seed: int, warmup: int, num_samples: int,
              fitting: Callable[[], Any], report: Report | None = None) -> ChainRun:
    """One seeded chain: ``make_kernel()`` built and run inside ``fitting()`` (the family's fit context)."""
    run = ChainRun(samples={})

    def hook(kernel: Any, params: Any, stage: str, i: int) -> None:
        sampling = stage.startswith("Sample")
        # Pyro counts divergences after warmup only (its diagnostics() divide by the kept iterations)
        diagnostics = kernel.diagnostics() if sampling else {}
        if sampling:
            run.times.append(time.perf_counter())
            run.energy.append(float(getattr(kernel, "energy", math.nan)))
            run.n_steps.append(int(getattr(kernel, "n_steps", 0)))
            if i == num_samples - 1:
                run.divergences = [int(d) for d in diagnostics.get("divergences", [])]
                run.acceptance_rate = float(diagnostics.get("acceptance rate", math.nan))
                run.mean_accept_prob = float(kernel.logging().get("acc. prob", math.nan))
                run.step_size = float(kernel.step_size)
        if report is not None:
            report(chain, "sample" if sampling else "warmup", float(kernel.step_size),
                   len(diagnostics.get("divergences", [])))

    with seeded(seed, X.device), parallel.one_torch_thread(), fitting(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        kernel = make_kernel()
        # the collapsed kernel (a potential function) carries its start; Pyro's NUTS sets its own
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, disable_progbar=True, hook_fn=hook,
                    initial_params=kernel.initial_params)
        try:
            mcmc.run(X)
        except ValueError as error:
            if "valid initial params" not in str(error):
                raise
            # Pyro found no start with a finite potential energy and gradient; the log prior and
            # log-likelihood at the start were checked finite (make_kernel names either one)
            raise DivergenceError(
                "NUTS: the log prior and log-likelihood at the start are finite, but the gradient of the "
                "potential energy is not there (nor at any point Pyro tried near it): an overflow in the "
                "gradient (badly scaled data for the prior, float32) or a transform to unconstrained space "
                "at its boundary. Start from a proper fit (init=mixtures.fit(model, X, 'em').params), "
                "standardize the data, or fit in float64.") from None
        samples = {name: value.detach() for name, value in mcmc.get_samples().items()}
        # a kernel sampling some sites in other coordinates (non-centred means) maps its draws back
        run.samples = getattr(kernel, "model_sites", lambda draws: draws)(samples)
    return run


# -- many chains --------------------------------------------------------------------------------
class _Bars:
    """One progress bar per chain (warmup, then sampling), or nothing."""

    def __init__(self, enabled: bool, n_chains: int, warmup: int, num_samples: int):
        self.bars = [tqdm(total=warmup + num_samples, desc=f"chain {c} warmup", position=c, leave=False,
                          file=sys.stderr, dynamic_ncols=True, mininterval=0.25)
                     for c in range(n_chains)] if enabled else []

    def __call__(self, chain: int, stage: str, step_size: float, divergences: int) -> None:
        if not self.bars:
            return
        bar = self.bars[chain]
        if stage == "sample" and not bar.desc.endswith("sample"):
            bar.set_description(f"chain {chain} sample", refresh=False)
        bar.set_postfix_str(f"step {step_size:.2g}, divergent {divergences}", refresh=False)
        bar.update()

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


_worker_report: Any = None


def _start_worker(reports: Any) -> None:
    """Worker initializer: one torch thread, and where progress reports go."""
    global _worker_report
    torch.set_num_threads(1)
    _worker_report = reports


def _queued_report(chain: int, stage: str, step_size: float, divergences: int) -> None:
    if _worker_report is not None:
        _worker_report.put((chain, stage, step_size, divergences))


def _worker_chain(make_kernel: Callable[[], Any], X: Tensor, chain: int, seed: int, warmup: int, num_samples: int,
                  fitting: Callable[[], Any]) -> ChainRun:
    # a worker does not inherit the caller's scope: NaN in X got here through fit(..., missing="marginalize")
    with marginalizing(has_missing(X)):
        return run_chain(make_kernel, X, chain, seed, warmup, num_samples, fitting, _queued_report)


def run_chains(make_kernel: Callable[[], Any], X: Tensor, seeds: list[int], warmup: int, num_samples: int,
               fitting: Callable[[], Any], processes: int = 1, progress: bool = False) -> list[ChainRun]:
    """Chain ``c`` seeded with ``seeds[c]``, in ``processes`` workers (1: in this process, in order).

    ``make_kernel`` and ``fitting`` must be picklable when ``processes > 1`` (module-level
    functions or ``functools.partial`` of them, over picklable arguments).
    """
    bars = _Bars(progress, len(seeds), warmup, num_samples)
    try:
        if processes <= 1 or len(seeds) == 1:
            return [run_chain(make_kernel, X, c, seed, warmup, num_samples, fitting, bars)
                    for c, seed in enumerate(seeds)]
        return _in_workers(make_kernel, X, seeds, warmup, num_samples, fitting, processes, bars)
    finally:
        bars.close()


def _in_workers(make_kernel: Callable[[], Any], X: Tensor, seeds: list[int], warmup: int, num_samples: int,
                fitting: Callable[[], Any], processes: int, bars: _Bars) -> list[ChainRun]:
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    reports = context.SimpleQueue() if bars.bars else None
    with ProcessPoolExecutor(max_workers=min(processes, len(seeds)), mp_context=context,
                             initializer=_start_worker, initargs=(reports,)) as pool:
        futures = [pool.submit(_worker_chain, make_kernel, X, c, seed, warmup, num_samples, fitting)
                   for c, seed in enumerate(seeds)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=POLL_SECONDS)
            _drain(reports, bars)
        _drain(reports, bars)
        return [future.result() for future in futures]


def _drain(reports: Any, bars: _Bars) -> None:
    while reports is not None and not reports.empty():
        try:
            bars(*reports.get())
        except (queue.Empty, EOFError, OSError):  # pragma: no cover - a worker went away mid-report
            return
