"""The Dask backend of a run's fits (``mixtures run --dask ADDRESS`` or ``--dask local[:N]``).

:func:`dask_pool` connects to a Dask scheduler (or starts a local cluster of ``N`` worker
processes, one thread each) and gives its client's ``concurrent.futures`` executor to
:func:`mixtures.experiment.parallel.run_tasks`, the loop ``--jobs`` uses too: the workers only
fit (``runner.run_task``), the driver writes every record through the run's store, so results,
resuming and failure rows are those of a sequential run. Workers must import the same
``mixtures`` version as the driver (checked on connecting). ``distributed`` is an optional
dependency (``pip install "mixtures[dask]"``), imported only here and only when asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from mixtures.core.version import VERSION
from mixtures.experiment.config.errors import ConfigError
from mixtures.experiment.parallel import Pool, worker_threads

__all__ = ["CONNECT_TIMEOUT", "check_spec", "dask_pool", "parse_spec"]

#: local clusters run their workers in processes (``False``: threads of this process, which run one fit
#: at a time; the suite uses it to test the Dask path without starting interpreters)
LOCAL_PROCESSES = True
#: seconds to wait for a scheduler (or a local cluster's workers) before giving up
CONNECT_TIMEOUT = 20.0
_OPTION = "--dask"
_ALLOWED = "a scheduler address (tcp://host:8786) or local[:N] for a local cluster of N worker processes"


def parse_spec(spec: str) -> tuple[str | None, int | None]:
    """``"local:2"`` -> ``(None, 2)``; ``"local"`` -> ``(None, cpus)``; an address -> ``(address, None)``."""
    text = spec.strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(_OPTION, "", f"{spec!r}: the number of local workers must be a whole number >= 1.",
                              _ALLOWED)
        return None, int(count)
    if not text:
        raise ConfigError(_OPTION, "", "is empty.", _ALLOWED)
    return text, None


def _import_distributed():  # noqa: ANN202 - the module, optional
    try:
        import distributed
    except ImportError:
        raise ConfigError(_OPTION, "", "needs Dask's distributed scheduler, which is not installed.",
                          'pip install "mixtures[dask]" (or pip install "dask[distributed]")') from None
    return distributed


def check_spec(spec: str) -> None:
    """Refuse a malformed ``--dask`` value, or one given without ``distributed`` installed, before any fit."""
    parse_spec(spec)
    _import_distributed()


def _package_version() -> str:
    """The ``mixtures`` version of the process it runs in (sent to each worker by reference)."""
    return VERSION


def _check_workers(client, where: str) -> int:  # noqa: ANN001 - a distributed.Client
    """The workers' smallest thread count, after checking each imports this ``mixtures`` version."""
    nthreads = client.nthreads()
    if not nthreads:
        raise ConfigError(_OPTION, "", f"the Dask cluster at {where} has no workers.", "a cluster with workers")
    try:
        versions = client.run(_package_version)
    except Exception as error:  # the workers cannot import the package (ModuleNotFoundError, ...)
        raise ConfigError(_OPTION, "", f"the workers at {where} cannot run mixtures: {error}",
                          f"workers with mixtures {VERSION} installed") from None
    wrong = {worker: version for worker, version in versions.items() if version != VERSION}
    if wrong:
        raise ConfigError(_OPTION, "", f"workers at {where} run other mixtures versions than the driver's "
                          f"{VERSION}: {wrong}", f"workers with mixtures {VERSION}")
    return min(nthreads.values())


@contextmanager
def dask_pool(spec: str) -> Iterator[Pool]:
    """A :class:`~mixtures.experiment.parallel.Pool` on a Dask cluster: ``spec`` is a scheduler address or
    ``local[:N]``. One fit per worker process at a time; local workers get their share of the threads,
    a remote worker's fit all of its worker's threads."""
    address, local_workers = parse_spec(spec)
    distributed = _import_distributed()
    with ExitStack() as stack:
        try:
            if address is None:
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=local_workers, threads_per_worker=1, processes=LOCAL_PROCESSES, dashboard_address=None,
                    silence_logs=logging.ERROR))
                client = stack.enter_context(distributed.Client(cluster, timeout=CONNECT_TIMEOUT))
                client.wait_for_workers(local_workers, timeout=CONNECT_TIMEOUT)
            else:
                client = stack.enter_context(distributed.Client(address, timeout=CONNECT_TIMEOUT))
        except (OSError, TimeoutError, ValueError) as error:
            where = address or f"local:{local_workers}"
            raise ConfigError(_OPTION, "", f"cannot reach the Dask scheduler at {where!r} within "
                              f"{CONNECT_TIMEOUT:g} s ({type(error).__name__}: {error}).", _ALLOWED) from None
        where = address or client.scheduler.address
        threads = _check_workers(client, where)
        workers = len(client.nthreads())
        if address is None:
            threads = worker_threads(local_workers)
        yield Pool(client.get_executor(pure=False), workers, threads, f"dask {workers} workers")
