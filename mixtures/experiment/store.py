"""The run directory: what a finished fit leaves on disk, and reading it back.

Layout::

    run.json            which experiment owns the directory (see mixtures.experiment.rundir)
    config.yaml         the resolved config (overrides and smoke block applied)
    results.csv         one tidy row per task (columns: RESULT_COLUMNS)
    records/<key>.json  one file per finished task: its row and parameters (see write_record)
    histories/<...>.csv one CSV per fit: the History columns, one row per history row
    histories.csv       every fit's trace in one long table (HISTORY_ID_COLUMNS, iteration, traces)
    posteriors/<...>.pt for fits with a posterior: at most MAX_POSTERIOR_DRAWS draws
    figures/, report.md see mixtures.experiment.report

Every file is written through :mod:`mixtures.core.files` (a temporary beside the target,
fsync, rename), so a killed run leaves whole files and perhaps a temporary, which the next
run deletes. A task's record is written last: a record on disk means the task is complete.
It names the inputs that produced it (the task's config and data digests, the package
version) and the size and SHA-256 of its history and posterior files, so a resumed run
checks every stored file against it (:mod:`mixtures.experiment.records`). Stored paths
are relative to the run directory and never leave it (:func:`inside`). Parameters and
posteriors are stored by :mod:`mixtures.io` (bit-exact through JSON).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mixtures.core.files import atomic_write_bytes
from mixtures.core.history import History
from mixtures.core.posterior import Posterior
from mixtures.experiment.config.schema import Config
from mixtures.experiment.datasets import DataCache
from mixtures.experiment.tasks import RECORD_VERSION, Task
from mixtures.families.gaussian.params import MixtureParams
from mixtures.io import (
    FormatError,
    json_state,
    params_from_state,
    params_to_state,
    posterior_from_state,
    posterior_to_state,
    state_from_json,
)

ID_COLUMNS = ("task", "cell", "dataset", "n", "n_features", "n_components", "covariance_type",
              "true_n_components", "separation", "imbalance", "init", "seed", "method", "routine",
              "status", "error")
METRIC_COLUMNS = ("log_likelihood", "log_likelihood_per_point", "elbo", "kl", "bic", "aic", "icl",
                  "mclust_bic",  # mclust's sign and reporting (mixtures.experiment.selection.mclust_bic)
                  "n_iter", "converged", "singular", "time",
                  "weights_l1", "weights_max", "means_rmse", "means_max", "covariances_frobenius",
                  "covariances_relative", "ari", "nmi", "accuracy",
                  "kl_truth", "kl_truth_se", "kl_samples", "held_out_ll", "held_out_ll_truth", "alignment", "confusion",
                  "held_out_lpd", "pareto_k", "elpd_loo", "loo_bad_k",
                  "posterior_draws", "expected_components", "max_r_hat", "min_ess", "num_divergences",
                  "problems", "outliers_planted", "outliers_flagged", "inliers_flagged",
                  "warnings", "history", "posterior")
RESULT_COLUMNS = ID_COLUMNS + METRIC_COLUMNS
#: columns that legitimately differ between two runs of the same config
TIME_COLUMNS = ("time",)
TRUTH_METRICS = ("weights_l1", "weights_max", "means_rmse", "means_max", "covariances_frobenius",
                 "covariances_relative", "ari", "nmi", "accuracy", "kl_truth", "kl_truth_se", "kl_samples",
                 "held_out_ll", "held_out_ll_truth")
#: columns of histories.csv that say which fit a trace row belongs to (then iteration and the traces)
HISTORY_ID_COLUMNS = ID_COLUMNS[:-2]
#: ``problems``: a sampler's failed validity checks ("; "-joined); ``max_r_hat`` NaN: a chain never moved
POSTERIOR_COLUMNS = ("posterior_draws", "expected_components", "max_r_hat", "min_ess", "num_divergences", "problems")
#: most posterior draws stored per fit (evenly spaced through the routine's draws)
MAX_POSTERIOR_DRAWS = 200
#: the parameter states a record may hold: the result, where it started, and after one iteration
PARAMS_STAGES = ("params", "init", "first_iteration")
POSTERIOR_FORMAT = "mixtures.experiment.posterior"
#: the files a record refers to (row column -> record["files"] entry)
STORED_FILES = ("history", "posterior")


class StoreError(FormatError):
    """A file of a run directory is unreadable or inconsistent. ``path`` names it; ``problem`` says what is wrong."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{str(path)!r}: {problem}")


class RunWriteError(OSError):
    """Writing a file of a run directory failed (disk full, read-only, a directory in the way...)."""

    def __init__(self, path: str | Path, error: OSError):
        code = error.errno if error.errno is not None else errno.EIO
        super().__init__(code, error.strerror or str(error), str(path))

    def __str__(self) -> str:
        hint = " (the disk is full)" if self.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        return f"cannot write {self.filename!r}: {self.strerror}{hint}"


def write_file(path: Path, data: bytes | str) -> dict[str, Any]:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; return ``{"bytes", "sha256"}`` of what was written.

    Every file of a run directory goes through here, so a failed write names its file.
    """
    data = data.encode("utf-8") if isinstance(data, str) else data
    try:
        atomic_write_bytes(path, data, make_parents=True)
    except OSError as error:
        raise RunWriteError(path, error) from error
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def inside(out_dir: Path, relative: Any) -> Path:
    """``out_dir / relative`` when that stays inside the run directory (symbolic links followed), else a
    :class:`StoreError`: a record naming ``../../etc/hostname`` or an absolute path is refused, never read."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative) or "\\" in relative:
        raise StoreError(out_dir, f"the stored path {relative!r} is not a path relative to the run directory.")
    root = Path(out_dir).resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise StoreError(out_dir, f"the stored path {relative!r} leaves the run directory; refused.")
    return path


@dataclass
class Outcome:
    """A fitted and scored task: its result row, parameters at each stage, history and posterior."""

    task: Task
    row: dict
    params: MixtureParams | None
    history: History | None
    posterior: Posterior | None = None
    init: MixtureParams | None = None
    first_iteration: MixtureParams | None = None


@dataclass
class RunState:
    """What the report needs: the config, tasks, their records and the data."""

    config: Config
    out_dir: Path
    tasks: list[Task]
    records: dict[str, dict]
    data: DataCache
    smoke: bool = False
    notices: list[str] = field(default_factory=list)  # what this run recomputed and why (the report lists them)
    provenance: dict | None = None  # how the run was made (provenance.json; the report's header)

    def rows(self) -> list[dict]:
        return [self.records[t.key]["row"] for t in self.tasks if t.key in self.records]

    def row(self, task: Task) -> dict:
        return self.records[task.key]["row"]

    def ok(self, task: Task) -> bool:
        record = self.records.get(task.key)
        return record is not None and record["row"]["status"] == "ok"

    def history(self, task: Task) -> History:
        return read_history(inside(self.out_dir, self.row(task)["history"]))

    def posterior(self, task: Task) -> Posterior | None:
        """The stored posterior draws of an ok task (``None`` without them)."""
        relative = self.row(task).get("posterior") if self.ok(task) else None
        path = inside(self.out_dir, relative) if relative else None
        return read_posterior(path) if path is not None and path.exists() else None


# -- records -------------------------------------------------------------------------------
def write_record(out_dir: Path, outcome: Outcome, inputs: dict[str, Any] | None = None) -> dict:
    """History and posterior first, then the record (JSON): a record on disk means the task is complete.

    The record holds ``version``, ``key``, ``inputs`` (what produced it: see
    :func:`mixtures.experiment.records.task_inputs`), ``row`` (the results.csv row),
    ``files`` (``{"history"|"posterior": {"path", "bytes", "sha256"}}`` of the files it
    wrote) and, for every stage of :data:`PARAMS_STAGES` the fit has, the parameters as
    ``json_state(params_to_state(...))`` (``None`` for failed fits).
    """
    files: dict[str, dict] = {}
    if outcome.history is not None:
        relative = outcome.row["history"]
        files["history"] = {"path": relative, **write_file(inside(out_dir, relative), history_text(outcome.history))}
    if outcome.posterior is not None and outcome.row.get("posterior"):
        relative = outcome.row["posterior"]
        files["posterior"] = {"path": relative, **write_file(inside(out_dir, relative),
                                                             posterior_bytes(outcome.posterior))}
    record: dict[str, Any] = {"version": RECORD_VERSION, "key": outcome.task.key, "inputs": inputs,
                              "row": outcome.row, "files": files}
    for stage in PARAMS_STAGES:
        params = getattr(outcome, stage)
        record[stage] = None if params is None else json_state(params_to_state(params))
    write_file(out_dir / "records" / f"{outcome.task.key}.json", json.dumps(record, indent=1))
    return record


def params_from_record(record: dict, stage: str = "params") -> MixtureParams | None:
    """The parameters a task record stores at ``stage`` (:data:`PARAMS_STAGES`; ``None`` when absent)."""
    stored = record.get(stage)
    if not stored:
        return None
    return params_from_state(state_from_json(stored, f"record {record.get('key')}"), f"record {record.get('key')}")


# -- histories ------------------------------------------------------------------------------
def cell_text(value: Any) -> str:
    """A CSV cell: empty for ``None``, ``true``/``false``, floats by their round-trip ``repr``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def history_text(history: History) -> str:
    """A history as CSV text: a header of its columns, then one line of round-trip floats per row."""
    columns = history.to_dict()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for values in zip(*columns.values()):
        writer.writerow([repr(float(v)) for v in values])
    return buffer.getvalue()


def write_history(path: Path, history: History) -> None:
    write_file(Path(path), history_text(history))


def read_history(path: str | Path) -> History:
    """Read a ``histories/*.csv`` file back into a :class:`History`.

    Raises:
        StoreError: naming the file, when it is unreadable, not UTF-8 text, empty, has a
            malformed header, a row of the wrong length or a value that is not a number.
    """
    try:
        with open(path, "rb") as stream:
            text = stream.read().decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except OSError as error:
        raise StoreError(path, f"cannot be read ({error.strerror}).") from None
    except UnicodeDecodeError as error:
        raise StoreError(path, f"is not UTF-8 text (byte {error.start}): a binary or corrupted file.") from None
    except csv.Error as error:
        raise StoreError(path, f"is not a CSV file ({error}).") from None
    if not rows or not rows[0]:
        raise StoreError(path, "is empty: no header line.")
    header = rows[0]
    if not all(header) or len(set(header)) != len(header):
        raise StoreError(path, f"has a malformed header {header[:8]!r}.")
    if len(rows) < 2:
        raise StoreError(path, "has a header but no rows (every history has its row 0).")
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise StoreError(path, f"line {line} has {len(row)} fields, the header {len(header)}: truncated?")
        try:
            values.append([float(value) for value in row])
        except ValueError:
            raise StoreError(path, f"line {line} holds a value that is not a number.") from None
    return History.from_dict({name: [row[i] for row in values] for i, name in enumerate(header)})


def histories_to_csv(entries: Iterable[tuple[dict, History]]) -> str:
    """The long table of ``(result row, history)`` pairs: the fit's HISTORY_ID_COLUMNS, ``iteration`` and
    every trace column any fit has (empty where a fit's routine does not record it)."""
    entries = list(entries)
    traces = ["iteration"]
    for _, history in entries:
        traces += [name for name in history.columns if name not in traces]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(HISTORY_ID_COLUMNS) + traces)
    for row, history in entries:
        ids = [cell_text(row.get(name)) for name in HISTORY_ID_COLUMNS]
        columns = history.to_dict()
        values = [columns.get(name) for name in traces]
        for i in range(len(history)):
            writer.writerow(ids + ["" if column is None else repr(float(column[i])) for column in values])
    return buffer.getvalue()


# -- posteriors -----------------------------------------------------------------------------
def draw_indices(n_draws: int, limit: int = MAX_POSTERIOR_DRAWS) -> Tensor:
    """At most ``limit`` indices ``(S,)`` evenly spaced over ``0..n_draws-1`` (both ends kept)."""
    if n_draws <= limit:
        return torch.arange(n_draws)
    return torch.linspace(0, n_draws - 1, limit, dtype=torch.float64).round().long()


def posterior_bytes(posterior: Posterior) -> bytes:
    """A bounded subsample of ``posterior``'s draws as a ``torch.save`` payload (tensors and primitives).

    The payload holds ``format``, ``indices`` ``(S,)`` (which of the routine's draws),
    ``n_draws`` (the routine's count) and ``posterior``: :func:`mixtures.io.posterior_to_state`
    of the ``S <= MAX_POSTERIOR_DRAWS`` draws kept.
    """
    index = draw_indices(posterior.n_draws)
    payload = {"format": POSTERIOR_FORMAT, "indices": index, "n_draws": int(posterior.n_draws),
               "posterior": posterior_to_state(posterior, index)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def write_posterior(path: Path, posterior: Posterior) -> None:
    """Store a bounded subsample of ``posterior``'s draws atomically (see :func:`posterior_bytes`)."""
    write_file(Path(path), posterior_bytes(posterior))


def read_posterior(path: str | Path) -> Posterior:
    """A ``posteriors/*.pt`` file as a :class:`~mixtures.posterior.Posterior` (bit-exact draws).

    Raises:
        StoreError: naming the file, when it is not a posterior file of a run (truncated,
            garbage, another ``torch.save`` payload); it is never unpickled (``weights_only``).
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError... by the kind of damage
        text = " ".join(str(error).split())[:120]
        raise StoreError(path, f"cannot be read as a posterior file ({type(error).__name__}: {text}).") from None
    if not isinstance(payload, dict) or payload.get("format") != POSTERIOR_FORMAT:
        raise StoreError(path, "is not a posterior file of an experiment run.")
    try:
        return posterior_from_state(payload["posterior"], str(path))
    except (KeyError, TypeError, ValueError) as error:
        raise StoreError(path, f"holds an invalid posterior ({error}).") from None


# -- tables ---------------------------------------------------------------------------------
def rows_to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow([cell_text(row.get(name)) for name in RESULT_COLUMNS])
    return buffer.getvalue()


def read_results(path: str | Path) -> list[dict[str, str]]:
    """``results.csv`` as a list of dicts of strings."""
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def read_histories(path: str | Path) -> list[dict[str, str]]:
    """``histories.csv`` as a list of dicts of strings (one per history row)."""
    return read_results(path)


def write_results(state: RunState) -> Path:
    """Rebuild ``results.csv`` and ``histories.csv`` from the finished tasks' records (atomically)."""
    path = state.out_dir / "results.csv"
    write_file(path, rows_to_csv(state.rows()))
    entries = []
    for task in state.tasks:
        record = state.records.get(task.key)
        relative = record["row"].get("history") if record is not None else None
        if relative:
            entries.append((record["row"], read_history(inside(state.out_dir, relative))))
    write_file(state.out_dir / "histories.csv", histories_to_csv(entries))
    return path
