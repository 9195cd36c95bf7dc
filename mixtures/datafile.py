"""Real data files: a table with a header, an index column, text labels and columns to choose.

:func:`read_table` reads a CSV (or whitespace-separated text, or Parquet when pandas and
pyarrow are installed) such as a data frame saved by pandas::

    ,sepal_length,sepal_width,petal_length,petal_width,species
    0,5.1,3.5,1.4,0.2,setosa
    ...

into points ``X: (N, D)`` float64 (the chosen numeric columns), integer ``labels: (N,)``
(codes of the label column's values, in order of first appearance) and the names of both.
Errors name the file, the column and the line. ``.npy`` files hold numbers only and go
through :func:`mixtures.data.load`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures import data
from mixtures.core.validation import as_data
from mixtures.errors import DataError

__all__ = ["Table", "read_table", "FORMATS", "parse_columns"]

#: file formats: auto (from the extension: .csv comma, .parquet, else whitespace), csv, whitespace, parquet
FORMATS = ("auto", "csv", "whitespace", "parquet")
_MISSING = ("", "NA", "N/A", "NAN", "NULL", "?")


@dataclass
class Table:
    """A data file read by :func:`read_table`.

    ``X: (N, D)`` float64 points; ``labels: (N,)`` int64 codes or ``None``; ``label_names``: the
    label column's values, ``label_names[c]`` for code ``c``; ``feature_names``: the ``D`` column
    names (``None`` without a header); ``label_column``: the label column's name; ``weights: (N,)`` float64
    sample weights (finite, non-negative) of the weight column, or ``None``.
    """

    X: Tensor
    labels: Tensor | None = None
    feature_names: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    label_column: str | None = None
    weights: Tensor | None = None


def parse_columns(text: str | Sequence[Any] | None) -> list[str | int] | None:
    """``"a,b,2"`` or ``["a", "b", 2]`` -> ``["a", "b", 2]`` (digits become positions unless quoted names)."""
    if text is None:
        return None
    items = [part.strip() for part in text.split(",")] if isinstance(text, str) else list(text)
    if not items or any(item == "" for item in items):
        raise ValueError(f"columns must be a comma-separated list of column names or 0-based positions; got {text!r}.")
    return [int(item) if isinstance(item, str) and item.isdigit() else item for item in items]


def read_table(path: str | os.PathLike, *, columns: Sequence[str | int] | None = None,
               label_column: str | int | None = None, index_column: str | int | None = None,
               header: bool | None = None, format: str = "auto", standardize: bool = False,
               weight_column: str | int | None = None) -> Table:
    """Read a data file into points, labels and names.

    Args:
        path: a ``.csv``, text, ``.parquet`` or ``.npy`` file.
        columns: the feature columns, names (with a header) or 0-based positions; default: every
            column but the index and label columns. A text column among them is an error naming it.
        label_column: a column of class labels (text or numbers) for ARI, NMI and confusion tables.
        index_column: a column of row names to drop. Default: the first column when its header
            field is empty (how pandas writes its index), else none.
        header: whether the first non-comment line names the columns; ``None`` detects it (a header
            when none of its fields is a number).
        format: one of :data:`FORMATS`.
        standardize: centre each feature and scale it to unit standard deviation.
        weight_column: a column of per-point sample weights (finite, non-negative), not a feature; an
            empty, NaN or negative weight is an error naming its line.
    """
    path = Path(os.fspath(path)).expanduser()
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {str(path)!r}; check the path (relative paths start from "
                                f"{os.getcwd()!r}).")
    suffix = path.suffix.lower()
    plain = columns is None and label_column is None and index_column is None and header is None \
        and weight_column is None
    if suffix == ".npy" or (plain and format in ("auto", "csv", "whitespace") and suffix != ".parquet"
                            and not _has_text_columns(path, _delimiter(format, suffix))):
        if not plain and suffix == ".npy":
            raise ValueError(f"{str(path)!r} is a .npy array without column names or labels; columns, "
                             "label_column, index_column, weight_column and header apply to CSV, text and "
                             "Parquet files.")
        X = data.load(path, delimiter=_delimiter(format, suffix) if suffix != ".npy" else None)
        table = Table(X, feature_names=_header_names(path, format, suffix, X.shape[1]))
    else:
        names, rows, lines = _read_cells(path, format, suffix, header)
        table = _select(path, names, rows, lines, columns, label_column, index_column, weight_column)
    if standardize:
        table.X = _standardized(table.X, path)
    return table


def _delimiter(format: str, suffix: str) -> str | None:
    return "," if format == "csv" or (format == "auto" and suffix == ".csv") else None


def _has_text_columns(path: Path, delimiter: str | None) -> bool:
    """Whether a data line (after a possible header) holds a field that is not a number, or the header's
    first field is empty (an index column): then the plain numeric reader does not apply."""
    names, rows, _ = _read_text(path, delimiter, None, limit=2)
    if names is not None and names and names[0] == "":
        return True
    return any(not _is_number(field) for row in rows[:1] for field in row)


def _header_names(path: Path, format: str, suffix: str, n_features: int) -> tuple[str, ...] | None:
    if suffix == ".npy":
        return None
    names, _, _ = _read_text(path, _delimiter(format, suffix), None, limit=1)
    return tuple(names) if names is not None and len(names) == n_features and all(names) else None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return "_" not in field


def _read_cells(path: Path, format: str, suffix: str, header: bool | None):
    """``(names or None, rows: list of lists of str, line numbers)`` of a text or Parquet file."""
    if format == "parquet" or (format == "auto" and suffix == ".parquet"):
        return _read_parquet(path)
    return _read_text(path, _delimiter(format, suffix), header)


def _read_text(path: Path, delimiter: str | None, header: bool | None, limit: int | None = None):
    names, rows, lines = None, [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream, delimiter=delimiter) if delimiter else (line.split() for line in stream)
            for number, fields in enumerate(reader, start=1):
                fields = [field.strip() for field in fields]
                if not any(fields) or fields[0].startswith("#"):
                    continue
                if names is None and not rows and (header or (header is None and
                                                              not any(_is_number(f) for f in fields))):
                    names = fields
                    continue
                rows.append(fields)
                lines.append(number)
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError as error:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start}); save it as "
                        "UTF-8 text.") from None
    except csv.Error as error:
        raise DataError(f"{str(path)!r} is not a readable CSV file: {error}") from None
    return names, rows, lines


def _read_parquet(path: Path):
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as error:
        raise DataError(f"reading {str(path)!r} needs pandas and pyarrow ({error}); pip install pandas pyarrow, "
                        "or save the table as CSV.") from None
    names = [str(name) for name in frame.columns]
    cells = frame.astype(object).where(frame.notna(), "").astype(str).values.tolist()
    return names, cells, list(range(1, len(cells) + 1))


def _position(path: Path, names: list[str] | None, width: int, column: str | int, role: str) -> int:
    """The 0-based position of a column given by name or position, or an error naming it."""
    if names is not None and str(column) in names:
        return names.index(str(column))
    if isinstance(column, (int, np.integer)) and not isinstance(column, bool) and 0 <= column < width:
        return int(column)
    known = f"its columns are {', '.join(repr(n) for n in names)}" if names else f"it has no header and {width} columns"
    raise DataError(f"{role} {column!r} is not a column of {str(path)!r}: {known} (positions count from 0).")


def _select(path: Path, names: list[str] | None, rows: list[list[str]], lines: list[int], columns: Any,
            label_column: Any, index_column: Any, weight_column: Any = None) -> Table:
    if not rows:
        raise DataError(f"{str(path)!r} holds no data rows.")
    width = len(names) if names is not None else len(rows[0])
    for row, line in zip(rows, lines):
        if len(row) != width:
            raise DataError(f"{str(path)!r} line {line} has {len(row)} field(s) but the "
                            f"{'header' if names is not None else 'first row'} has {width}; every row needs "
                            "the same number of columns.")
    label = None if label_column is None else _position(path, names, width, label_column, "label column")
    if index_column is not None:
        index = _position(path, names, width, index_column, "index column")
    else:
        index = 0 if names is not None and names[0] == "" else None
    weight = None if weight_column is None else _position(path, names, width, weight_column, "weight column")
    if weight is not None and weight in (label, index):
        raise DataError(f"column {_name(names, weight)} of {str(path)!r} is both the weight column and the "
                        f"{'label' if weight == label else 'index'} column; choose another.")
    if columns is not None:
        chosen = [_position(path, names, width, column, "column") for column in columns]
        for role, position in (("label", label), ("index", index), ("weight", weight)):
            if position is not None and position in chosen:
                raise DataError(f"column {_name(names, position)} of {str(path)!r} is both a feature and the "
                                f"{role} column; leave it out of the columns.")
    else:
        chosen = [j for j in range(width) if j not in (label, index, weight)]
    if not chosen:
        raise DataError(f"{str(path)!r} has no feature column left after the index and label columns.")
    cells = np.asarray(rows, dtype=object)
    X = np.empty((len(rows), len(chosen)))
    for out, j in enumerate(chosen):  # a loop over columns, not points
        X[:, out] = _numeric_column(path, names, cells[:, j], lines, j, label is None)
    table = Table(as_data(X, name=f"data file {str(path)!r}", dtype=torch.float64),
                  feature_names=tuple(names[j] or f"column {j}" for j in chosen) if names is not None else None)
    if label is not None:
        table.labels, table.label_names = _label_codes(path, names, cells[:, label], lines, label)
        table.label_column = names[label] if names is not None else str(label)
    if weight is not None:
        table.weights = _weights(path, names, cells[:, weight], lines, weight)
    return table


def _weights(path: Path, names: list[str] | None, cells: np.ndarray, lines: list[int], j: int) -> Tensor:
    """The weight column's values ``(N,)`` float64: finite and non-negative, else an error naming the line."""
    values = np.empty(cells.shape[0])
    for i, cell in enumerate(cells):  # parsing text is per cell
        try:
            values[i] = float(cell) if "_" not in cell else float("nan")
        except ValueError:
            values[i] = float("nan")
    where = f"{str(path)!r}, weight column {_name(names, j)}"
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{where}, line {lines[bad[0]]}: {cells[bad[0]]!r} is not a finite number ({bad.size} "
                        "row(s)); every point needs a weight >= 0 (0 leaves it out).")
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise DataError(f"{where}, line {lines[negative[0]]}: weight {cells[negative[0]]!r} is negative "
                        f"({negative.size} row(s)); sample weights must be >= 0.")
    if not values.sum() > 0:
        raise DataError(f"{where}: every weight is 0; at least one point needs a positive weight.")
    return torch.as_tensor(values, dtype=torch.float64)


def _name(names: list[str] | None, position: int) -> str:
    return f"{names[position]!r} (position {position})" if names is not None else f"{position}"


def _numeric_column(path: Path, names: list[str] | None, cells: np.ndarray, lines: list[int], j: int,
                    no_label: bool) -> np.ndarray:
    values = np.empty(cells.shape[0])
    for i, cell in enumerate(cells):  # parsing text is per cell; the math after it is vectorized
        try:
            if "_" in cell:  # Python's float() reads "1_000"; no spreadsheet writes it
                raise ValueError(cell)
            values[i] = float(cell)
        except ValueError:
            if cell.upper() in _MISSING:
                raise DataError(f"{str(path)!r} line {lines[i]}, column {_name(names, j)}: missing value; remove "
                                "or impute that row (missing values are not supported).") from None
            label = names[j] if names else j
            hint = (f"; if it holds class labels, make it the label column (--label-column {label}, or "
                    f"label_column: {label} in a config), or choose the numeric columns (--columns)") if no_label \
                else "; choose the numeric columns (--columns)"
            raise DataError(f"{str(path)!r} line {lines[i]}, column {_name(names, j)}: {cell!r} is not a "
                            f"number{hint}.") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{str(path)!r} line {lines[bad[0]]}, column {_name(names, j)}: {cells[bad[0]]!r} is not "
                        f"finite ({bad.size} row(s)); remove or impute them.")
    return values


def _label_codes(path: Path, names: list[str] | None, cells: np.ndarray, lines: list[int], j: int):
    missing = [i for i, cell in enumerate(cells) if cell == ""]
    if missing:
        raise DataError(f"{str(path)!r} line {lines[missing[0]]}: the label column {_name(names, j)} is empty "
                        f"({len(missing)} row(s)); every point needs a label.")
    values, first, codes = np.unique(cells.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)  # codes in order of first appearance: setosa 0, versicolor 1, virginica 2
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return torch.as_tensor(rank[codes.reshape(-1)], dtype=torch.long), tuple(str(v) for v in values[order])


def _standardized(X: Tensor, path: Path) -> Tensor:
    scale = X.std(dim=0)
    if not bool((scale > 0).all()):
        constant = int(torch.nonzero(scale <= 0)[0])
        raise DataError(f"{str(path)!r}: feature {constant} is constant, so it cannot be standardized; drop it.")
    return (X - X.mean(dim=0)) / scale
