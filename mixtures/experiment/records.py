"""Stored fits checked before a resumed run reuses them: what produced them, and every file they name.

A task's record (``records/<key>.json``, see :func:`~mixtures.experiment.store.write_record`)
is reused only when all of this holds; otherwise the task is fitted again and the reason
becomes a notice, printed by the run and listed in its report:

* it is a JSON object of this :data:`~mixtures.experiment.tasks.RECORD_VERSION` with the
  task's key and every field (``inputs``, ``row`` with every results column of the right
  type, ``files``, parameters that decode);
* its ``inputs`` equal the task's (:func:`task_inputs`): the digest of the task's resolved
  config, the digest of its data's *content* (a data file edited under a finished run is
  refitted, and the notice says the data changed), and the package version;
* every file it names (history, posterior) is inside the run directory, has the size and
  SHA-256 the record wrote down, and parses.

Nothing here raises on a damaged file: a truncated, empty, binary or garbage file, a record
that is ``[]``, ``null`` or lacks a field, all come back as a :class:`Verdict` with a problem
that names the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mixtures.core.files import file_sha256
from mixtures.core.version import VERSION
from mixtures.experiment.datasets import DataBundle
from mixtures.experiment.store import (
    PARAMS_STAGES,
    RESULT_COLUMNS,
    STORED_FILES,
    StoreError,
    inside,
    params_from_record,
    read_history,
    read_posterior,
)
from mixtures.experiment.tasks import RECORD_VERSION, Task

#: result columns that hold text; every other column holds a number, a boolean or nothing
TEXT_COLUMNS = frozenset({"task", "dataset", "covariance_type", "init", "method", "routine", "status", "error",
                          "confusion",
                          "alignment", "warnings", "history", "posterior", "problems"})
#: the largest record read (bytes): parameters of K = 100, D = 100 full covariances are about 20 MiB of JSON
MAX_RECORD_BYTES = 64 * 2**20


@dataclass
class Verdict:
    """What a task's stored record is worth.

    ``record``: the record to reuse (``None``: fit the task). ``problem``: why a stored
    record is not reused (``None`` when nothing is stored or it is reused). ``changed``:
    the record is sound but was produced by other inputs (data, package version, format).
    """

    record: dict | None = None
    problem: str | None = None
    changed: bool = False


def task_inputs(task: Task, bundle: DataBundle) -> dict[str, str]:
    """What produced a task's numbers: its resolved config, its data's content, the package version."""
    return {"config": task.fingerprint, "data": bundle.digest, "package": VERSION}


def task_label(task: Task) -> str:
    point = "".join(f", {key}={value}" for key, value in task.point.items())
    return f"{task.dataset.name}{point}, {task.method.name}, init {task.init}, seed {task.seed}"


def check_record(out_dir: Path, task: Task, inputs: dict[str, str] | None = None) -> Verdict:
    """The verdict on ``records/<task.key>.json`` (``inputs``: the task's, compared when given)."""
    name = f"records/{task.key}.json"
    path = Path(out_dir) / name
    if not path.exists() and not path.is_symlink():
        return Verdict()
    try:
        record = _parse(path, name)
        if record.get("version") != RECORD_VERSION:
            return Verdict(problem=f"{name} was written in record format {record.get('version')!r} (this mixtures "
                           f"writes {RECORD_VERSION})", changed=True)
        _check_fields(record, task, name)
        if inputs is not None and record["inputs"] != inputs:
            return Verdict(problem=_what_changed(record["inputs"], inputs, task), changed=True)
        for column in STORED_FILES:
            _check_file(out_dir, record, column, task)
    except StoreError as error:
        return Verdict(problem=error.problem)
    record["row"]["cell"] = task.cell  # the cell's index in this config (a grown config renumbers cells)
    return Verdict(record)


def read_record(out_dir: Path, task: Task, inputs: dict[str, str] | None = None) -> dict | None:
    """The task's record when it can be reused (:func:`check_record`), else ``None``."""
    return check_record(out_dir, task, inputs).record


def load_records(out_dir: Path, tasks: Iterable[Task], inputs_of: Callable[[Task], dict[str, str]]
                 ) -> tuple[dict[str, dict], list[str]]:
    """``({key: record}, notices)``: the reusable records of ``tasks`` and, in task order, one line per
    reason a stored record is refitted (the same reason for several fits is one line with their count)."""
    records: dict[str, dict] = {}
    reasons: dict[str, list[Task]] = {}
    for task in tasks:
        verdict = check_record(out_dir, task, inputs_of(task))
        if verdict.record is not None:
            records[task.key] = verdict.record
        elif verdict.problem is not None:
            reasons.setdefault(verdict.problem, []).append(task)
    notices = []
    for reason, affected in reasons.items():
        which = task_label(affected[0]) if len(affected) == 1 else f"{len(affected)} fits"
        notices.append(f"{reason}: refitting {which}.")
    return records, notices


# -- the checks ----------------------------------------------------------------------------------
def _parse(path: Path, name: str) -> dict:
    if not path.is_file():
        raise StoreError(name, f"{name} is not a regular file")
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            raise StoreError(name, f"{name} is larger than any record ({MAX_RECORD_BYTES // 2**20} MiB)")
        record = json.loads(data.decode("utf-8"))
    except OSError as error:
        raise StoreError(name, f"{name} cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise StoreError(name, f"{name} is not UTF-8 text (byte {error.start}): corrupted") from None
    except (ValueError, RecursionError) as error:
        raise StoreError(name, f"{name} is not valid JSON ({str(error)[:80]}): truncated or corrupted") from None
    if not isinstance(record, dict):
        kind = "null" if record is None else type(record).__name__
        raise StoreError(name, f"{name} holds a JSON {kind}, not a record")
    return record


def _check_fields(record: dict, task: Task, name: str) -> None:
    """The record's fields and row, for ``task``: a :class:`StoreError` naming the first problem."""
    for field in ("key", "inputs", "row", "files") + PARAMS_STAGES:
        if field not in record:
            raise StoreError(name, f"{name} lacks the field {field!r}")
    if record["key"] != task.key:
        raise StoreError(name, f"{name} is the record of task {str(record['key'])[:40]!r}, not {task.key!r}")
    if not isinstance(record["inputs"], dict) or not isinstance(record["files"], dict):
        raise StoreError(name, f"{name}: 'inputs' and 'files' must be mappings")
    row = record["row"]
    if not isinstance(row, dict):
        raise StoreError(name, f"{name}: 'row' must be a mapping; got {type(row).__name__}")
    missing = [column for column in RESULT_COLUMNS if column not in row]
    if missing:
        raise StoreError(name, f"{name}: the row lacks the column(s) {', '.join(map(repr, missing[:5]))}")
    for column in RESULT_COLUMNS:
        value = row[column]
        expected = (str,) if column in TEXT_COLUMNS else (bool, int, float)
        if value is not None and not isinstance(value, expected):
            raise StoreError(name, f"{name}: the row's {column!r} is a {type(value).__name__}")
    if row["status"] not in ("ok", "failed"):
        raise StoreError(name, f"{name}: the row's status is {row['status']!r}, not ok or failed")
    if (row["task"], row["dataset"], row["method"], row["seed"]) != (task.key, task.dataset.name, task.method.name,
                                                                     task.seed):
        raise StoreError(name, f"{name}: the row belongs to another task")
    if row["status"] == "ok" and (record["params"] is None or not row["history"]):
        raise StoreError(name, f"{name}: an ok fit without parameters or history")
    for stage in PARAMS_STAGES:
        try:
            params_from_record(record, stage)
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as error:
            raise StoreError(name, f"{name}: its {stage!r} parameters do not decode ({str(error)[:100]})") from None


def _check_file(out_dir: Path, record: dict, column: str, task: Task) -> None:
    """The file the row's ``column`` names: inside the run directory, the recorded size and digest, parses."""
    relative = record["row"][column]
    if relative is None:
        return
    try:
        path = inside(out_dir, relative)
    except StoreError as error:
        raise StoreError(relative, f"records/{task.key}.json: {error.problem}") from None
    expected = f"histories/{task.history_name}" if column == "history" else f"posteriors/{task.posterior_name}"
    entry = record["files"].get(column)
    if relative != expected or not isinstance(entry, dict) or entry.get("path") != relative:
        raise StoreError(relative, f"records/{task.key}.json names the {column} file {relative!r}, expected "
                         f"{expected!r} (with its size and digest)")
    if not path.is_file():
        raise StoreError(relative, f"{relative} is missing")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise StoreError(relative, f"{relative} has {size} bytes, its record says {entry.get('bytes')!r} "
                         "(truncated or changed)")
    if file_sha256(path) != entry.get("sha256"):
        raise StoreError(relative, f"{relative} differs from what its record wrote (SHA-256): changed or corrupted")
    try:
        read_history(path) if column == "history" else read_posterior(path)
    except StoreError as error:
        raise StoreError(relative, f"{relative} {error.problem}") from None


def _what_changed(stored: dict, current: dict[str, str], task: Task) -> str:
    if stored.get("data") != current["data"]:
        return (f"the data of dataset {task.dataset.name!r} changed since its fits were stored "
                f"(SHA-256 {str(stored.get('data'))[:12]}... now {current['data'][:12]}...)")
    if stored.get("package") != current["package"]:
        return f"stored fits were made by mixtures {stored.get('package')!r}; this is {current['package']!r}"
    return "the config of stored fits changed"
