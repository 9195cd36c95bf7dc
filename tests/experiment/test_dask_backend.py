"""``mixtures run --dask``: fits on a two-worker local Dask cluster give exactly the sequential run's results
(rows and bit-exact parameters) and resume like it; clear errors without distributed or a scheduler."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
from stored_runs import stored_fits, without_time

from mixtures.cli import main
from mixtures.experiment import dask_cluster, read_results
from mixtures.experiment.config.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "em_vs_vi.yaml"


# EM (closed form) and SVI (Pyro's global parameter store) on the shipped data, 8 fits of which 6 go to the cluster
SMALL = """name: small
data: [{name: old_faithful, kind: old_faithful}]
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 20}}
  - {name: SVI, method: svi, options: {num_steps: 20, lr: 0.05, eval_every: 5}}
  - {name: broken, method: em, options: {max_iter: 5}, n_components: 300}
inits: [random_from_data]
seeds: [0, 1, 2]
output: {figures: []}
"""


def test_a_local_cluster_gives_the_sequential_results_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(dask_cluster, "LOCAL_PROCESSES", False)  # worker threads: no interpreters to start
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    sequential, cluster = tmp_path / "seq", tmp_path / "dask"
    assert main(["run", str(config), "--quiet", "--allow-failures", "--out", str(sequential)]) == 0
    assert main(["run", str(config), "--quiet", "--allow-failures", "--dask", "local:2", "--out", str(cluster)]) == 0
    rows = read_results(sequential / "results.csv")
    assert [row["status"] for row in rows].count("ok") == 6 and len(rows) == 9
    assert without_time(read_results(cluster / "results.csv")) == without_time(rows)
    assert stored_fits(cluster) == stored_fits(sequential)  # parameters bit-identical (JSON of exact floats)
    assert json.loads((cluster / "provenance.json").read_text())["fits"] == {"run": len(rows), "reused": 0}
    # resumed: every cell is stored, so nothing is sent to the cluster (none is started)
    assert main(["run", str(config), "--quiet", "--allow-failures", "--dask", "local:2", "--out", str(cluster)]) == 0
    assert json.loads((cluster / "provenance.json").read_text())["fits"] == {"run": 0, "reused": len(rows)}


@pytest.mark.parametrize("spec", ["local:0", "local:x", " "])
def test_a_malformed_spec_is_one_line(tmp_path, capsys, spec):
    pytest.importorskip("distributed")
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--dask", spec, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dask" in err and not (tmp_path / "o").exists()


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT", 1.0)
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--dask", "tcp://127.0.0.1:9", "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err and not (tmp_path / "o").exists()


def test_without_distributed_the_error_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ConfigError, match=r'mixtures\[dask\]'):
        dask_cluster.check_spec("local:2")


def test_dask_and_jobs_together_are_refused(tmp_path, capsys):
    assert main(["run", str(CONFIG), "--smoke", "--quiet", "--dask", "local:2", "--jobs", "2", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--dask" in capsys.readouterr().err and not (tmp_path / "o").exists()
