"""Text of the report: numbers to the precision they carry, markdown tables, labels of sweep points."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mixtures.experiment.tasks import Task

#: short names of sweep keys in file names (``full_K3``) and labels (``K=3``)
SHORT_KEYS = {"n": "n", "n_components": "K", "n_features": "D", "separation": "sep", "imbalance": "imb"}


def slug(text: Any) -> str:
    """``text`` as a file-name part (letters, digits and ``_ . + -``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text)).strip("_") or "x"


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (not ``None``, not a boolean, not NaN or text)."""
    try:
        return value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_number(value: float, digits: int = 4) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10 ** max(digits + 1, 5) or abs(value) < 1e-3:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def last_place(value: float, digits: int) -> float:
    """The value of the last digit :func:`format_number` shows of ``value``."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    exponent = math.floor(math.log10(abs(value)))
    if abs(value) >= 10 ** max(digits + 1, 5) or abs(value) < 1e-3:
        return 10.0 ** (exponent - (digits - 1))  # scientific: digits - 1 decimals of the mantissa
    return 10.0 ** (exponent - digits + 1)


def format_sd(sd: float) -> str:
    """Two significant digits, without an exponent between 0.001 and 10⁵ (107.7 -> ``110``)."""
    if sd >= 1e5 or sd < 1e-3:
        return f"{sd:.1e}"
    if sd >= 10:
        return f"{round(sd, 1 - math.floor(math.log10(sd))):.0f}"
    return f"{sd:#.2g}".rstrip(".")


def mean_sd(values: Iterable[Any], digits: int = 4) -> str:
    """``"mean ± sd"`` of the finite values (sample sd; just the value when there is one).

    The sd has two significant digits, and is ``0`` when it is below half the last
    digit the mean shows (``-4.15538 ± 0``, not ``± 1.3e-11``: rounding noise of
    fits that reach the same optimum).
    """
    numbers = [float(v) for v in values if finite(v)]
    if not numbers:
        return "–"
    if len(numbers) == 1:
        return format_number(numbers[0], digits)
    mean, sd = float(np.mean(numbers)), float(np.std(numbers, ddof=1))
    if sd == 0 or sd < 0.5 * last_place(mean, digits):
        return f"{format_number(mean, digits)} ± 0"
    return f"{format_number(mean, digits)} ± {format_sd(sd)}"


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def names_list(items: Sequence[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def point_label(point: dict) -> str:
    """``{"covariance_type": "diag", "n_components": 6}`` -> ``"diag, K=6"``."""
    names = {"n_components": "K", "n_features": "D"}
    return ", ".join(str(value) if key == "covariance_type" else f"{names.get(key, key)}={value}"
                     for key, value in point.items())


def point_slug(point: dict) -> str:
    """File-name part for a sweep point: ``{"covariance_type": "full", "n_components": 3}`` -> ``full_K3``."""
    return slug("_".join(f"{SHORT_KEYS[key]}{value}" if key in SHORT_KEYS else str(value)
                         for key, value in point.items()))


def cell_label(task: Task) -> str:
    """The cell of ``task`` in words: sweep point, K and type when not swept, init and seed."""
    parts = [point_label(task.point)] if task.point else []
    parts += [f"K={task.n_components}"] if "n_components" not in task.point else []
    parts += [task.covariance_type] if "covariance_type" not in task.point else []
    return ", ".join(parts + [f"init {task.init}", f"seed {task.seed}"])


def wrap_title(title: str, ncols: int) -> str:
    """Break a figure title over lines at ", " so that it fits ``ncols`` panels (~38 characters each)."""
    width = 38 * ncols
    lines, line = [], ""
    for part in title.split(", "):
        candidate = f"{line}, {part}" if line else part
        if len(candidate) > width and line:
            lines.append(line + ",")
            line = part
        else:
            line = candidate
    return "\n".join(lines + [line])
