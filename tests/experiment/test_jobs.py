"""``mixtures run --jobs N``: fits in worker processes give exactly the sequential run's results, and
resume like it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixtures.cli import main
from mixtures.experiment import TIME_COLUMNS, read_results
from mixtures.experiment.parallel import worker_threads

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "em_vs_vi.yaml"


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


def _records(out: Path) -> dict[str, dict]:
    """Each record's row (time dropped) and parameter states: what a fit computed."""
    found = {}
    for path in sorted((out / "records").glob("*.json")):
        record = json.loads(path.read_text())
        record["row"].pop("time")
        found[path.name] = {key: record[key] for key in ("row", "params", "init", "first_iteration")}
    return found


def test_two_jobs_give_the_sequential_results_and_resume(tmp_path, capsys):
    sequential, parallel = tmp_path / "seq", tmp_path / "par"
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--out", str(sequential)]) == 0
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--jobs", "2", "--out", str(parallel)]) == 0
    rows = read_results(sequential / "results.csv")
    assert len(rows) >= 4 and all(row["status"] == "ok" for row in rows)
    assert _without_time(read_results(parallel / "results.csv")) == _without_time(rows)
    assert _records(parallel) == _records(sequential)  # parameters bit-identical (JSON of exact floats)
    provenance = json.loads((parallel / "provenance.json").read_text())
    assert provenance["fits"] == {"run": len(rows), "reused": 0}
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--jobs", "2", "--out", str(parallel)]) == 0
    assert json.loads((parallel / "provenance.json").read_text())["fits"] == {"run": 0, "reused": len(rows)}


def test_a_two_worker_dask_cluster_gives_the_sequential_results_of_the_shipped_config(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from mixtures.experiment import dask_cluster

    monkeypatch.setattr(dask_cluster, "LOCAL_PROCESSES", False)  # worker threads: no interpreters to start
    sequential, cluster = tmp_path / "seq", tmp_path / "dask"
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--out", str(sequential)]) == 0
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--dask", "local:2", "--out", str(cluster)]) == 0
    rows = read_results(sequential / "results.csv")
    assert _without_time(read_results(cluster / "results.csv")) == _without_time(rows)
    assert _records(cluster) == _records(sequential)


@pytest.mark.parametrize("jobs", ["0", "100000"])
def test_jobs_outside_the_machine_is_one_line(tmp_path, capsys, jobs):
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--jobs", jobs, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--jobs" in err and not (tmp_path / "o").exists()


def test_each_worker_gets_its_share_of_threads():
    assert worker_threads(2, 8) == 4 and worker_threads(3, 8) == 2 and worker_threads(4, 1) == 1
