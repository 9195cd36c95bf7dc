"""Fault injection on run directories: stale inputs, corrupted files, foreign experiments, a full disk.

After each fault the next run either ends with the results of an undisturbed run or refuses with a
clear message, and nothing computed from other inputs is ever reported (results.csv, histories.csv,
report.md and figures only describe fits whose inputs and files check out).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import mixtures
from mixtures.core.files import check_writable
from mixtures.experiment import (
    RunDirectoryError,
    RunWriteError,
    StoreError,
    check_record,
    expand_tasks,
    load_config,
    read_histories,
    read_results,
    run_experiment,
    rundir,
    runner,
)
from mixtures.experiment import records as records_module

CONFIG = """\
# Fault injection: a data file and a synthetic mixture, a point estimate and a posterior.
data:
  - {name: d, kind: file, path: d.csv}
  - {name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 50, seed: 1}
model: {n_components: 2}
methods:
  - {name: EM, method: em, options: {max_iter: 20}}
  - {name: VB, method: vb, prior: {}, options: {max_iter: 20, warn: false}, datasets: [s4]}
seeds: [0]
metrics: {kl_samples: 50}
output: {figures: none}
"""
#: the same with figures (drawing costs 2 s a run: only where figures are what is tested)
DRAWN = CONFIG.replace("figures: none", "figures: [traces]")
OTHER = """\
# Another experiment: k-means on the synthetic mixture only.
data: {name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 50, seed: 1}
model: {n_components: 2}
methods: [kmeans]
metrics: {kl_samples: 50}
output: {figures: [traces]}
"""


def write_points(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (n // 2, 2)), rng.normal(4.0, 1.0, (n - n // 2, 2))])
    np.savetxt(path, X, delimiter=",")


def make_experiment(root: Path, text: str = CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_points(root / "d.csv", 60, seed=0)
    (root / "config.yaml").write_text(text)
    return root / "config.yaml"


def without(rows: list[dict], *columns: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def same_results(out: Path, reference: Path) -> None:
    assert without(read_results(out / "results.csv"), "time") == without(read_results(reference / "results.csv"),
                                                                         "time")
    assert without(read_histories(out / "histories.csv"), "time") == \
        without(read_histories(reference / "histories.csv"), "time")


@pytest.fixture
def fits(monkeypatch):
    """The routines fitted by the runner, in order."""
    calls: list[str] = []
    real = runner.fit
    monkeypatch.setattr(runner, "fit", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    return calls


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A finished run: ``(config path, run directory)``; tests copy the directory before touching it."""
    root = tmp_path_factory.mktemp("reference")
    config = make_experiment(root)
    return config, run_experiment(config, root / "out", quiet=True)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A finished run with figures: ``(config path, run directory)``."""
    root = tmp_path_factory.mktemp("drawn")
    config = make_experiment(root, DRAWN)
    return config, run_experiment(config, root / "out", quiet=True)


def copy_run(reference, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reference[1], tmp_path / "run"))


def task_files(config: Path, out: Path, method: str) -> dict[str, Path]:
    task = next(t for t in expand_tasks(load_config(config)) if t.method.name == method)
    files = {"record": out / "records" / f"{task.key}.json", "history": out / "histories" / task.history_name}
    if method == "VB":
        files["posterior"] = out / "posteriors" / task.posterior_name
    return files


def writable(directory: Path) -> bool:
    try:
        check_writable(directory)
    except OSError:
        return False
    return True


def edit_record(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "record truncated": ("record", truncate),
    "record []": ("record", lambda p: p.write_text("[]")),
    "record null": ("record", lambda p: p.write_text("null")),
    "record binary": ("record", lambda p: p.write_bytes(b"\xff\xfe\x00\x9c garbage \x00")),
    "record without row": ("record", lambda p: edit_record(p, lambda r: r.pop("row"))),
    "record without a column": ("record", lambda p: edit_record(p, lambda r: r["row"].pop("log_likelihood"))),
    "record with text for a number": ("record", lambda p: edit_record(p, lambda r: r["row"].update(n_iter="many"))),
    "record with bad parameters": ("record", lambda p: edit_record(p, lambda r: r.update(params={"weights": [1]}))),
    "history truncated": ("history", truncate),
    "history empty": ("history", lambda p: p.write_bytes(b"")),
    "history binary": ("history", lambda p: p.write_bytes(os.urandom(300))),
    "history header only": ("history", lambda p: p.write_text(p.read_text().splitlines()[0] + "\n")),
    "history value edited": ("history", lambda p: p.write_text(p.read_text().replace("1", "2", 1))),
    "history deleted": ("history", lambda p: p.unlink()),
    "posterior truncated": ("posterior", truncate),
    "posterior garbage": ("posterior", lambda p: p.write_bytes(b"PK\x03\x04" + os.urandom(500))),
    "posterior empty": ("posterior", lambda p: p.write_bytes(b"")),
    "posterior deleted": ("posterior", lambda p: p.unlink()),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupted_stored_file_is_named_and_only_its_fit_is_redone(reference, tmp_path, fits, corruption):
    kind, damage = CORRUPTIONS[corruption]
    out = copy_run(reference, tmp_path)
    files = task_files(reference[0], out, "VB")
    damage(files[kind])
    notices: list[str] = []
    run_experiment(reference[0], out, quiet=True, log=notices.append)
    assert fits == ["vb"], "only the damaged fit is redone"
    relative = files[kind].relative_to(out).as_posix()
    assert len(notices) == 1 and relative in notices[0] and "refitting s4" in notices[0], notices
    assert relative in (out / "report.md").read_text()  # the report says what was refitted and why
    same_results(out, reference[1])
    task = next(t for t in expand_tasks(load_config(reference[0])) if t.method.name == "VB")
    assert check_record(out, task).record is not None  # whole again
    fits.clear()
    run_experiment(reference[0], out, quiet=True)
    assert fits == []


def test_changed_data_reruns_its_fits_says_so_and_never_reports_the_old_ones(tmp_path, fits):
    config = make_experiment(tmp_path / "exp")
    out = run_experiment(config, tmp_path / "out", quiet=True)
    old = [row for row in read_results(out / "results.csv") if row["dataset"] == "d"]
    assert old[0]["n"] == "60"
    write_points(tmp_path / "exp" / "d.csv", 90, seed=5)  # new points under the finished run
    fits.clear()
    notices: list[str] = []
    run_experiment(config, out, quiet=True, log=notices.append)
    assert fits == ["em"]  # d's one fit; s4's are untouched
    assert len(notices) == 1 and "the data of dataset 'd' changed" in notices[0], notices
    assert "the data of dataset 'd' changed" in (out / "report.md").read_text()
    fresh = run_experiment(load_config(config), tmp_path / "fresh", quiet=True)
    same_results(out, fresh)
    new = [row for row in read_results(out / "results.csv") if row["dataset"] == "d"]
    assert new[0]["n"] == "90" and new[0]["log_likelihood"] != old[0]["log_likelihood"]
    X = mixtures.data.load(tmp_path / "exp" / "d.csv")
    direct = mixtures.fit(mixtures.GaussianMixture(2), X, "em", init="kmeans", seed=0, max_iter=20)
    assert float(new[0]["log_likelihood"]) == pytest.approx(float(direct.params.log_prob(X).sum()), rel=1e-12)


def test_a_refit_interrupted_after_a_data_change_leaves_nothing_stale(tmp_path, monkeypatch):
    config = make_experiment(tmp_path / "exp", DRAWN)
    out = run_experiment(config, tmp_path / "out", quiet=True)
    assert (out / "figures" / "traces_d.png").exists()
    write_points(tmp_path / "exp" / "d.csv", 90, seed=5)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, out, quiet=True)
    rows = read_results(out / "results.csv")
    assert {row["dataset"] for row in rows} == {"s4"}  # d's stale fit is not listed
    assert {row["dataset"] for row in read_histories(out / "histories.csv")} == {"s4"}
    assert not (out / "report.md").exists() and not list((out / "figures").iterdir())


def test_another_package_version_refits_everything(reference, tmp_path, fits, monkeypatch):
    out = copy_run(reference, tmp_path)
    monkeypatch.setattr(records_module, "VERSION", "99.0")
    notices: list[str] = []
    run_experiment(reference[0], out, quiet=True, log=notices.append)
    assert sorted(fits) == ["em", "em", "vb"]
    assert notices == ["stored fits were made by mixtures '0.2.0'; this is '99.0': refitting 3 fits."]


def test_paths_in_records_never_leave_the_run_directory(reference, tmp_path, fits):
    out = copy_run(reference, tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_text("iteration,log_likelihood\n0,-1.0\n")
    data = outside.read_bytes()
    files = task_files(reference[0], out, "EM")
    relative = os.path.relpath(outside, out)  # ../secret.txt

    def point_outside(record):
        record["row"]["history"] = relative
        record["files"]["history"] = {"path": relative, "bytes": len(data),
                                      "sha256": __import__("hashlib").sha256(data).hexdigest()}

    edit_record(files["record"], point_outside)
    task = next(t for t in expand_tasks(load_config(reference[0])) if t.method.name == "EM")
    verdict = check_record(out, task)
    assert verdict.record is None and "leaves the run directory" in verdict.problem
    notices: list[str] = []
    run_experiment(reference[0], out, quiet=True, log=notices.append)
    assert fits == ["em"] and "leaves the run directory" in notices[0]
    same_results(out, reference[1])
    # a symbolic link to an identical copy outside is refused too (the link is followed)
    history = files["history"]
    copy = tmp_path / "copy.csv"
    copy.write_bytes(history.read_bytes())
    history.unlink()
    history.symlink_to(copy)
    assert "leaves the run directory" in check_record(out, task).problem
    with pytest.raises(StoreError, match="not a path relative to the run directory"):
        records_module.inside(out, "/etc/hostname")
    with pytest.raises(StoreError, match="leaves the run directory"):
        records_module.inside(out, "histories/../../secret.txt")


def test_another_experiment_is_refused_and_replace_leaves_nothing_of_the_old_run(drawn, tmp_path, fits):
    reference = drawn
    out = copy_run(reference, tmp_path)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    other = tmp_path / "other.yaml"
    other.write_text(OTHER)
    with pytest.raises(RunDirectoryError) as caught:
        run_experiment(other, out, quiet=True)
    message = str(caught.value)
    assert "holds the run of experiment" in message and str(reference[0]) in message and str(other) in message
    assert "--force" in message and fits == []
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before  # untouched
    run_experiment(other, out, quiet=True, replace=True)
    config = load_config(other)
    tasks = expand_tasks(config)
    assert sorted(p.stem for p in (out / "records").iterdir()) == sorted(t.key for t in tasks)
    assert sorted(p.name for p in (out / "histories").iterdir()) == sorted(t.history_name for t in tasks)
    assert not (out / "posteriors").exists()
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["traces_s4.pdf", "traces_s4.png", "traces_s4.svg"]
    assert [row["method"] for row in read_results(out / "results.csv")] == ["kmeans"]
    assert json.loads((out / "run.json").read_text())["experiment"]["config"] == str(other.resolve())
    fresh = run_experiment(config, tmp_path / "fresh", quiet=True)
    same_results(out, fresh)


@pytest.mark.parametrize("damage, fragment", [
    (lambda out: (out / "run.json").unlink(), "but no run.json"),
    (lambda out: (out / "run.json").write_text("{not json"), "run.json' is unreadable"),
    (lambda out: (out / "run.json").write_text("[]"), "not a run identity file"),
])
def test_a_directory_of_unknown_ownership_is_refused(reference, tmp_path, fits, damage, fragment):
    out = copy_run(reference, tmp_path)
    damage(out)
    with pytest.raises(RunDirectoryError, match=fragment):
        run_experiment(reference[0], out, quiet=True)
    assert fits == []
    run_experiment(reference[0], out, quiet=True, replace=True)  # replacing it is always possible
    assert sorted(fits) == ["em", "em", "vb"]
    same_results(out, reference[1])


def test_a_config_that_drops_a_dataset_leaves_no_figure_of_it(drawn, tmp_path, fits):
    reference = drawn
    out = copy_run(reference, tmp_path)
    assert (out / "figures" / "traces_d.png").exists()
    run_experiment(load_config(reference[0], overrides=["data=[{name: s4, kind: synthetic, truth: seed004, n: 40, "
                                                        "n_test: 50, seed: 1}]"]), out, quiet=True)
    assert fits == []  # s4's fits are reused
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["traces_s4.pdf", "traces_s4.png", "traces_s4.svg"]
    assert {row["dataset"] for row in read_results(out / "results.csv")} == {"s4"}


def test_a_full_disk_mid_run_names_the_file_and_the_rerun_completes(reference, tmp_path, fits, monkeypatch):
    config, out = reference[0], tmp_path / "run"
    real_fsync = os.fsync
    synced: list[int] = []

    def full_disk(descriptor: int) -> None:
        synced.append(descriptor)
        # run.json, config.yaml, results.csv, histories.csv, the history and record of d's and of s4's EM fit,
        # VB's history; then VB's posterior
        if len(synced) == 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(RunWriteError) as caught:
        run_experiment(config, out, quiet=True)
    assert "posteriors/" in str(caught.value) and "the disk is full" in str(caught.value)
    assert not list(out.rglob("*.tmp"))  # the failed write left no temporary
    assert len(list((out / "records").iterdir())) == 2 and read_results(out / "results.csv") == []
    monkeypatch.setattr(os, "fsync", real_fsync)
    fits.clear()
    run_experiment(config, out, quiet=True)
    assert fits == ["vb"]  # the stored fits are reused
    same_results(out, reference[1])


def test_an_output_that_cannot_be_written_is_refused_before_any_fit(reference, tmp_path, fits):
    out = copy_run(reference, tmp_path)
    shutil.rmtree(out / "records")
    (out / "records").write_text("not a directory")
    with pytest.raises(RunDirectoryError, match="records' should be a directory"):
        run_experiment(reference[0], out, quiet=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirectoryError, match="is a file, not a directory"):
        run_experiment(reference[0], tmp_path / "file" / "out", quiet=True)
    with pytest.raises(RunDirectoryError, match="exists and is not a directory"):
        run_experiment(reference[0], tmp_path / "file", quiet=True)
    if Path("/sys").is_dir() and not writable(Path("/sys")):  # read-only even for root (Linux)
        with pytest.raises(RunDirectoryError, match="cannot write in '/sys'"):
            run_experiment(reference[0], Path("/sys/mixtures-run"), quiet=True)
    assert fits == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes in read-only directories")
def test_a_read_only_output_directory_is_refused_before_any_fit(reference, tmp_path, fits):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(RunDirectoryError, match="cannot write in"):
            run_experiment(reference[0], locked / "out", quiet=True)
    finally:
        locked.chmod(0o755)
    assert fits == []


def test_a_replaced_run_directory_keeps_files_that_are_not_the_runs(reference, tmp_path):
    out = copy_run(reference, tmp_path)
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "other.yaml"
    other.write_text(OTHER)
    run_experiment(other, out, quiet=True, replace=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert set(rundir.RUN_ENTRIES) - {"posteriors"} <= {p.name for p in out.iterdir()}
