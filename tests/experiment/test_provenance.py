"""Every run directory says how it was made: provenance.json and the report's header; git optional;
a rerun under another package version (or commit, or config) says so."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pyro
import torch

from mixtures.core.version import VERSION
from mixtures.experiment import provenance, read_results, records, run_experiment

CONFIG = """\
name: prov
data: {name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 50}
model: {n_components: 2}
methods: [{name: EM, method: em, options: {max_iter: 5}}]
seeds: [0, 1]
metrics: {kl_samples: 20}
output: {figures: none}
"""


def _run(tmp_path: Path, text: str = CONFIG) -> Path:
    (tmp_path / "prov.yaml").write_text(text)
    return run_experiment(tmp_path / "prov.yaml", tmp_path / "run", quiet=True)


def test_provenance_json_and_the_report_header(tmp_path):
    before = datetime.now().astimezone()
    before = before.replace(microsecond=before.microsecond // 1000 * 1000)  # stored to the millisecond
    out = _run(tmp_path)
    found = json.loads((out / "provenance.json").read_text())
    assert found["package_version"] == VERSION
    assert (found["torch"], found["pyro"], found["numpy"]) == (torch.__version__, pyro.__version__, np.__version__)
    assert found["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert found["machine"]["logical_cores"] and found["machine"]["cpu"]
    started, ended = datetime.fromisoformat(found["started"]), datetime.fromisoformat(found["ended"])
    assert before <= started <= ended <= datetime.now().astimezone()
    config_yaml = (out / "config.yaml").read_text()
    assert found["config"] == config_yaml
    assert found["config_sha256"] == hashlib.sha256(config_yaml.encode()).hexdigest()
    assert found["fits"] == {"run": 2, "reused": 0} and found["changes"] == [] and found["previous"] == []
    root = provenance.SOURCE_ROOT
    if (root / ".git").exists():  # run from this checkout: its commit
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        assert found["git"]["commit"] == head
    header = (out / "report.md").read_text().split("## Methods")[0]
    assert f"Made by mixtures {VERSION}" in header and f"torch {torch.__version__}" in header
    assert found["config_sha256"][:16] in header and "[`provenance.json`](provenance.json)" in header


def test_git_is_optional(tmp_path, monkeypatch):
    assert provenance.git_commit(tmp_path)["note"].startswith("not run from a git checkout")
    (tmp_path / ".git").mkdir()
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert provenance.git_commit(tmp_path) == {"commit": None, "note": "git is not installed"}
    monkeypatch.setattr(provenance.shutil, "which", lambda name: "/bin/git")

    def broken(*args, **kwargs):
        raise subprocess.CalledProcessError(128, "git", stderr="fatal: not a git repository")

    monkeypatch.setattr(provenance.subprocess, "run", broken)
    assert provenance.git_commit(tmp_path)["note"].startswith("git failed")
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path / "nowhere")
    monkeypatch.setattr(provenance, "git_commit", lambda root=None: {"commit": None, "note": "git is not installed"})
    out = _run(tmp_path)
    assert "no git commit (git is not installed)" in (out / "report.md").read_text()


def test_a_rerun_under_another_version_says_so_and_refits(tmp_path, monkeypatch):
    out = _run(tmp_path)
    first = json.loads((out / "provenance.json").read_text())
    monkeypatch.setattr(records, "VERSION", "9.9.9")  # what the records are keyed on
    monkeypatch.setattr(provenance, "VERSION", "9.9.9")
    _run(tmp_path)
    second = json.loads((out / "provenance.json").read_text())
    assert second["package_version"] == "9.9.9" and second["fits"] == {"run": 2, "reused": 0}
    assert second["changes"][0].startswith(f"The previous run in this directory used mixtures {VERSION}; this one "
                                           "used 9.9.9")
    assert second["previous"] == [{"package_version": VERSION, "commit": first["git"].get("commit"),
                                   "started": first["started"], "ended": first["ended"],
                                   "config_sha256": first["config_sha256"]}]
    assert f"**Note:** The previous run in this directory used mixtures {VERSION}" in (out / "report.md").read_text()
    _run(tmp_path)  # the same version again: reused, nothing to say
    third = json.loads((out / "provenance.json").read_text())
    assert third["changes"] == [] and third["fits"] == {"run": 0, "reused": 2} and len(third["previous"]) == 2
    assert len(read_results(out / "results.csv")) == 2


def test_a_changed_config_is_noted(tmp_path):
    _run(tmp_path)
    out = _run(tmp_path, CONFIG.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    found = json.loads((out / "provenance.json").read_text())
    assert found["fits"] == {"run": 1, "reused": 2}
    assert any("resolved config differs" in change for change in found["changes"])
