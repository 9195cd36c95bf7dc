"""Whether a synthetic dataset and its fits fit in this machine's memory, checked when the config loads.

``n: 10000000000`` or ``n_features: 100000`` would otherwise reach the allocator (a
``RuntimeError`` or the kernel's OOM killer) after other fits have run. The estimate is
the sum of the largest float64 allocations of one dataset's run, each with the number of
copies the pipeline makes of it (data and its tensor copy, a covariance with its Cholesky
factor and precision, responsibilities with their log and exponentiated forms, Monte
Carlo draws with their log densities); it is compared with the machine's physical memory.
It errs on the large side by design: a config it refuses would at best swap.
"""

from __future__ import annotations

import os

#: bytes of one float64
FLOAT = 8
#: copies of each allocation held at once (see the module docstring)
COPIES = {"points": 2, "covariances": 4, "responsibilities": 4, "kl": 3}


def machine_memory() -> int | None:
    """Physical memory in bytes (``None`` where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"  # pragma: no cover


def run_bytes(n: int, n_test: int, n_features: int, n_components: int, kl_samples: int | None) -> dict[str, int]:
    """The largest allocations (bytes) of one dataset's fits, by cause.

    ``n_components``: the largest K fitted or true; ``kl_samples``: Monte Carlo draws of
    KL to the truth (``None`` when the data has no truth).
    """
    D, K = n_features, n_components
    sizes = {"points": COPIES["points"] * (n + n_test) * (D + 1) * FLOAT,
             "covariances": COPIES["covariances"] * K * D * D * FLOAT,
             "responsibilities": COPIES["responsibilities"] * n * K * FLOAT}
    if kl_samples:
        sizes["kl"] = COPIES["kl"] * kl_samples * (D + K) * FLOAT
    return sizes


def memory_problem(sizes: dict[str, int], keys: dict[str, str], details: dict[str, str],
                   memory: int | None = None) -> tuple[str, str, str] | None:
    """``(key path, problem, allowed)`` when ``sizes`` add up to more than the machine's memory, else ``None``.

    ``keys`` names the config key of each cause (``points`` -> ``data.n``); ``details`` says
    what it is made of (``"n = 1e10 points x D = 2"``).
    """
    memory = machine_memory() if memory is None else memory
    total = sum(sizes.values())
    if memory is None or total <= memory:
        return None
    cause = max(sizes, key=sizes.get)
    text = (f"this run would need about {human_bytes(total)} of memory, more than this machine's "
            f"{human_bytes(memory)}; most of it for {cause} ({details[cause]}: {human_bytes(sizes[cause])}).")
    return keys[cause], text, "sizes whose data, covariances and Monte Carlo draws fit in memory"
