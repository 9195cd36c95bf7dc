"""``History``: the per-iteration traces every routine records, column by column.

Columns shared by all routines (one row per iteration or evaluation; row 0 is the
initialization) are documented in :mod:`mixtures.core.result`; routines add their own.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CORE_COLUMNS = ("iteration", "log_likelihood", "elbo", "kl", "time")


class History:
    """Per-iteration traces, stored column-wise.

    ``history["elbo"]`` is a float64 tensor ``(T,)``; ``history.records()`` a
    list of dicts (one per row) ready for a table. Values missing in a row are NaN.
    """

    def __init__(self, columns: tuple[str, ...] = CORE_COLUMNS):
        self._columns: dict[str, list[float]] = {name: [] for name in columns}
        self._rows = 0

    def append(self, **values: float) -> None:
        for name in values:
            if name not in self._columns:
                self._columns[name] = [math.nan] * self._rows
        for name, column in self._columns.items():
            value = values.get(name, math.nan)
            column.append(float(value))
        self._rows += 1

    def set_last(self, **values: float) -> None:
        """Fill values of the last row (used when a value is known one step late)."""
        for name, value in values.items():
            if name not in self._columns:
                self._columns[name] = [math.nan] * self._rows
            self._columns[name][-1] = float(value)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._columns)

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, name: str) -> Tensor:
        try:
            return torch.tensor(self._columns[name], dtype=torch.float64)
        except KeyError:
            raise KeyError(f"no history column {name!r}; columns are {list(self._columns)}") from None

    def last(self, name: str) -> float:
        """The value of ``name`` in the last row (NaN if the history is empty)."""
        column = self._columns.get(name)
        return column[-1] if column else math.nan

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    def records(self) -> list[dict[str, float]]:
        return [{name: column[i] for name, column in self._columns.items()} for i in range(self._rows)]

    def to_dict(self) -> dict[str, list[float]]:
        return {name: list(column) for name, column in self._columns.items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> History:
        history = cls(tuple(data))
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise ValueError("history columns have different lengths")
        history._columns = {name: [float(x) for x in values] for name, values in data.items()}
        history._rows = lengths.pop() if lengths else 0
        return history

    def __repr__(self) -> str:
        return f"History(rows={self._rows}, columns={list(self._columns)})"
