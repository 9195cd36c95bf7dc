"""Helpers of the tests that compare two runs of one config: what a fit computed, without its wall time."""

from __future__ import annotations

import json
from pathlib import Path

from mixtures.experiment import TIME_COLUMNS


def without_time(rows: list[dict]) -> list[dict]:
    """results.csv rows without the columns that legitimately differ between runs."""
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


def stored_fits(out: Path) -> dict[str, dict]:
    """Each record's row (time dropped) and parameter states: what a fit computed."""
    found = {}
    for path in sorted((out / "records").glob("*.json")):
        record = json.loads(path.read_text())
        record["row"].pop("time")
        found[path.name] = {key: record[key] for key in ("row", "params", "init", "first_iteration")}
    return found
