"""``mixtures run --jobs N``: fits in worker processes give exactly the sequential run's results, and
resume like it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stored_runs import stored_fits, without_time

from mixtures.cli import main
from mixtures.experiment import read_results
from mixtures.experiment.parallel import worker_threads

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "em_vs_vi.yaml"


def test_two_jobs_give_the_sequential_results_and_resume(tmp_path, capsys):
    sequential, parallel = tmp_path / "seq", tmp_path / "par"
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--out", str(sequential)]) == 0
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--jobs", "2", "--out", str(parallel)]) == 0
    rows = read_results(sequential / "results.csv")
    assert len(rows) >= 4 and all(row["status"] == "ok" for row in rows)
    assert without_time(read_results(parallel / "results.csv")) == without_time(rows)
    assert stored_fits(parallel) == stored_fits(sequential)  # parameters bit-identical (JSON of exact floats)
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
    assert without_time(read_results(cluster / "results.csv")) == without_time(rows)
    assert stored_fits(cluster) == stored_fits(sequential)


@pytest.mark.parametrize("jobs", ["0", "100000"])
def test_jobs_outside_the_machine_is_one_line(tmp_path, capsys, jobs):
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--jobs", jobs, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--jobs" in err and not (tmp_path / "o").exists()


def test_each_worker_gets_its_share_of_threads():
    assert worker_threads(2, 8) == 4 and worker_threads(3, 8) == 2 and worker_threads(4, 1) == 1
