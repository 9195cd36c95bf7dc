"""The ``mixtures`` command line: run, fit, select, --help, and exit codes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mixtures
import mixtures.experiment.runner
import mixtures.experiment.selection
from mixtures import data as datasets
from mixtures.cli import main
from mixtures.core.files import check_writable
from mixtures.errors import DivergenceError
from mixtures.experiment import SELECTION_DEFAULTS, load_config, read_results

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY = """\
# Tiny config for CLI tests.
data: {name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 50}
model: {n_components: 2}
methods:
  - {name: EM, method: em, options: {max_iter: 10}}
seeds: [0]
metrics: {kl_samples: 50}
output: {figures: [traces]}
"""


def test_python_dash_m_is_the_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mixtures", "fit", "no_such_file.csv", "--k", "2", "--method", "em"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no_such_file.csv" in done.stderr and "Traceback" not in done.stderr
    assert subprocess.run([sys.executable, "-m", "mixtures", "--help"], capture_output=True, text=True,
                          timeout=120).stdout.startswith("usage: mixtures")


def test_help_teaches_with_examples(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "mixtures run configs/em_vs_vi.yaml" in text and "mixtures select old_faithful" in text
    for command in ("run", "fit", "select"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert f"usage: mixtures {command}" in text and "mixtures " + command in text.split("usage:")[1]


def test_no_command_and_bad_arguments_exit_2(capsys):
    assert main([]) == 2
    assert main(["fit", "old_faithful", "--k", "2", "--method", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_fit_prints_a_summary_matching_the_api(capsys):
    assert main(["fit", "old_faithful", "--k", "2", "--method", "em", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    result = mixtures.fit(mixtures.GaussianMixture(2), datasets.old_faithful(), "em", seed=0)
    X = datasets.old_faithful()
    log_likelihood = float(result.params.log_prob(X).sum())
    for label in ("weight", "mean", "covariances:", "log-likelihood", "BIC", "iterations", "converged"):
        assert label in out
    assert f"{log_likelihood:.6g}" in out and f"{result.bic(X):.6g}" in out
    assert f"{float(result.params.weights[0]):.5g}" in out
    assert f"iterations      {result.n_iter}" in out


def test_fit_reads_a_data_file_and_routine_options(tmp_path, capsys):
    X, _ = datasets.seed004_params().sample(120, seed=2)
    path = tmp_path / "points.csv"
    np.savetxt(path, X.numpy(), delimiter=",")
    assert main(["fit", str(path), "--k", "2", "--method", "hard_em", "--covariance-type", "diag",
                 "--init", "kmeans++", "--option", "max_iter=3", "--option", "tol=1e-12"]) == 0
    out = capsys.readouterr().out
    assert "120 points, 2 feature(s)" in out and "diag" in out and "iterations      3" in out


def test_fit_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.csv"), "--k", "2", "--method", "em"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixtures: error: no data file") and err.count("\n") == 1
    assert main(["fit", "old_faithful", "--k", "2", "--method", "em", "--option", "max_iters=3"]) == 2
    err = capsys.readouterr().err
    assert "max_iters" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["fit", "old_faithful", "--k", "0", "--method", "em"]) == 2
    assert "n_components" in capsys.readouterr().err


def test_select_prints_the_table_and_the_best_model(tmp_path, capsys):
    out_png = tmp_path / "bic.png"
    assert main(["select", "old_faithful", "--k-max", "3", "--covariance-types", "full", "diag",
                 "--out", str(out_png), "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    table = [line for line in lines if len(line) >= 6 and line[0].isdigit()]
    assert [(int(row[0]), row[1]) for row in table] == [(k, t) for t in ("full", "diag") for k in (1, 2, 3)]
    # the reported BIC is the fit's own (the selection defaults: hc start, rtol 1e-5, max_iter 1000, one start)
    X = datasets.old_faithful()
    bic = mixtures.fit(mixtures.GaussianMixture(2, "full"), X, "em", init="hc", rtol=1e-5, max_iter=1000).bic(X)
    assert float(table[1][3]) == pytest.approx(bic, abs=0.006)
    assert all(row[7] == "1/1" for row in table)  # converged starts of 1
    best = min(table, key=lambda row: float(row[3]))
    assert f"best by BIC: K={best[0]}, {best[1]}" in out
    assert "best by BIC: K=2, full" in out  # Old Faithful's well-known answer
    assert out_png.read_bytes()[:8] == PNG_MAGIC


def test_select_picks_tied_three_on_old_faithful_like_the_config(capsys):
    """mclust's answer (EEE, 3), from mclust's defaults (hc start, relative tolerance 1e-5): mclust's BIC
    column shows its -2314.316 (the last E step, as mclust reports); ours is one M step further (2314.31).
    VVV,2 agrees with mclust's -2322.192. em's own defaults (k-means, tol 1e-3, max_iter 100) stop tied K=3
    at 2342.8. (The default grid is all fourteen structures; the config's four are asked for here.)"""
    four = SELECTION_DEFAULTS["covariance_types"]
    assert main(["select", "old_faithful", "--quiet", "--covariance-types", *four]) == 0
    out = capsys.readouterr().out
    rows = {(int(line.split()[0]), line.split()[1]): line.split() for line in out.splitlines()
            if len(line.split()) >= 9 and line.split()[0].isdigit()}
    assert len(rows) == SELECTION_DEFAULTS["k_max"] * 4
    assert "best by BIC: K=3, tied (BIC 2314.31)" in out
    assert float(rows[(3, "tied")][3]) == pytest.approx(2314.3077, abs=0.005)
    assert rows[(3, "tied")][8] == "-2314.316"
    assert float(rows[(2, "full")][8]) == pytest.approx(-2322.192, abs=0.0005)  # mclust's VVV,2
    assert rows[(3, "tied")][7] == "1/1"
    assert "top models by mclust's BIC (higher is better): tied,3 -2314.316, full,2 -2322.192 (-7.876)" in out
    # the model_selection config fits the same models: its best seed gives the same BIC
    config = load_config(CONFIGS / "model_selection.yaml")
    X = datasets.old_faithful()
    options = config.methods[0].options
    bic = min(mixtures.fit(mixtures.GaussianMixture(3, "tied"), X, "em", init=config.inits[0], seed=seed,
                           **options).bic(X) for seed in config.seeds)
    assert float(rows[(3, "tied")][3]) == pytest.approx(bic, abs=0.005)
    # em's own defaults stop short: the reason select has mclust's start and tolerance
    assert main(["select", "old_faithful", "--quiet", "--k-max", "3", "--covariance-types", "tied",
                 "--init", "kmeans", "--tol", "1e-3", "--max-iter", "100", "--n-init", "1"]) == 0
    short = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  3  tied")]
    assert float(short[0][3]) > 2340


def test_select_rejects_bad_budgets(capsys):
    assert main(["select", "old_faithful", "--n-init", "0"]) == 2
    assert "--n-init" in capsys.readouterr().err
    assert main(["select", "old_faithful", "--tol", "-1"]) == 2
    assert "--tol" in capsys.readouterr().err


def test_select_flags_and_excludes_singular_fits(tmp_path, capsys):
    # 40 copies of one point: a diagonal component sits on them and its variances hit reg_covar
    X, _ = datasets.seed004_params().sample(150, seed=1)
    X = np.vstack([X.numpy(), np.tile([[6.0, 6.0]], (40, 1))])
    path = tmp_path / "ties.txt"
    np.savetxt(path, X)
    assert main(["select", str(path), "--k-max", "3", "--covariance-types", "diag", "--quiet"]) == 0
    out = capsys.readouterr().out
    singular = [line for line in out.splitlines() if "singular (excluded)" in line]
    assert singular, out
    chosen = [line for line in out.splitlines() if line.startswith("best by BIC")][0]
    k_chosen = int(chosen.split("K=")[1].split(",")[0])
    assert all(int(line.split()[0]) != k_chosen for line in singular)


def test_run_writes_the_output_directory(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--formats", "png,pdf", "seeds=[0,1]",
                 "methods[0].options.max_iter=5"]) == 0
    printed = capsys.readouterr().out
    assert "2 fits (0 failed)" in printed and "report.md" in printed
    rows = read_results(out / "results.csv")
    assert [row["seed"] for row in rows] == ["0", "1"] and all(int(row["n_iter"]) <= 5 for row in rows)
    assert (out / "figures" / "traces_s4.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / "figures" / "traces_s4.pdf").read_bytes()[:5] == b"%PDF-"
    assert "seeds=[0,1]" in (out / "config.yaml").read_text()


def test_run_smoke_of_a_shipped_config(tmp_path, capsys):
    out = tmp_path / "ms"
    assert main(["run", str(CONFIGS / "model_selection.yaml"), "--smoke", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""  # --quiet
    assert (out / "figures" / "bic_old_faithful.png").exists() and (out / "report.md").exists()


@pytest.mark.parametrize("args, fragment", [
    (["model.covariance_type=ful"], "did you mean 'full'"),
    (["data.n=-3"], "data.n"),
    (["methods[0].method=nope"], "unknown routine 'nope'"),
    (["oops"], "not a KEY=VALUE override"),
    (["methods[0].prior={weight_prior: dp}"], "methods[0].prior.weight_prior: 'dp' is not allowed"),
    (["methods[0].method=vb"], "routine 'vb' is Bayesian and needs a prior"),
    (["methods[0].prior={mean_prior: [0, 0, 0]}"], "mean_prior must have shape (D,) = (2,)"),
])
def test_run_with_a_bad_config_exits_2_without_traceback(tmp_path, capsys, args, fragment):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixtures: error: ") and fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_run_with_a_prior_writes_posterior_draws(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet", "methods[0].method=vb",
                 "methods[0].prior={}", "methods[0].options={max_iter: 20, warn: false}",
                 "output.figures=[posterior, weights]"]) == 0
    row = read_results(out / "results.csv")[0]
    assert row["routine"] == "vb" and row["posterior"].startswith("posteriors/")
    assert float(row["expected_components"]) == 2.0 and int(row["posterior_draws"]) == 1000
    assert (out / row["posterior"]).exists()
    for name in ("posterior_s4.png", "weights_s4.png"):
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC


def test_run_with_bad_yaml_exits_2(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("model: [n_components: 2\n")
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "invalid YAML" in err


# -- failures: one line on stderr, no traceback, a non-zero exit, before any fit -------------------------------
BOMB = "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "1"] * 10) + "]\n" for i in range(8))


def _failure_setup(tmp_path: Path) -> dict[str, str]:
    """Files the failure cases point at (paths as text)."""
    (tmp_path / "tiny.yaml").write_text(TINY.replace("figures: [traces]", "figures: none"))
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "deep.yaml").write_text(TINY + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "bomb.yaml").write_text(TINY + BOMB)
    (tmp_path / "twice.yaml").write_text(TINY + "seeds: [1]\n")
    (tmp_path / "dir_data.yaml").write_text(TINY.replace("{name: s4, kind: synthetic, truth: seed004, n: 40, "
                                                         "n_test: 50}", "{kind: file, path: a_dir}"))
    (tmp_path / "records_file" / "records").parent.mkdir()
    (tmp_path / "records_file" / "records").write_text("")
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text('{"format": "mixtures.experiment.run", "version": 1, '
                                    '"experiment": {"name": "another", "config": "/elsewhere/other.yaml"}}')
    return {"cfg": str(tmp_path / "tiny.yaml"), "file": str(tmp_path / "a_file"), "dir": str(tmp_path / "a_dir"),
            "tmp": str(tmp_path)}


def _fill(arg: str, paths: dict[str, str]) -> str:
    for name, path in paths.items():
        arg = arg.replace("{" + name + "}", path)
    return arg


def _run_args(*extra: str) -> list[str]:
    return ["run", "{cfg}", "--out", "{tmp}/out", *extra]


FAILURES = {
    "--out is a file": (["run", "{cfg}", "--out", "{file}"], "exists and is not a directory"),
    "--out below a file": (["run", "{cfg}", "--out", "{file}/out"], "is a file, not a directory"),
    "--out not writable": (["run", "{cfg}", "--out", "/sys/mixtures-run"], "cannot write in '/sys'"),
    "records is a file": (["run", "{cfg}", "--out", "{tmp}/records_file"], "should be a directory"),
    "another experiment": (["run", "{cfg}", "--out", "{tmp}/other"], "holds the run of experiment 'another'"),
    "config is a directory": (["run", "{dir}"], "is a directory, not a config file"),
    "config is /dev/zero": (["run", "/dev/zero"], "not a regular file"),
    "5000-deep YAML": (["run", "{tmp}/deep.yaml"], "nested too deeply"),
    "alias bomb": (["run", "{tmp}/bomb.yaml", "--out", "{tmp}/out"], "expands to more than"),
    "alias bomb and an override": (["run", "{tmp}/bomb.yaml", "--out", "{tmp}/out", "seeds=[1]"],
                                   "expands to more than"),
    "duplicate key": (["run", "{tmp}/twice.yaml"], "the key 'seeds' is given twice"),
    "data path is a directory (config)": (["run", "{tmp}/dir_data.yaml"], "data.path: 'a_dir' is a directory"),
    "1e10 points": (_run_args("data.n=1e10"), "more than this machine's"),
    "1e5 features": (_run_args("data={kind: synthetic, truth: random, n: 50, n_features: 100000}"),
                     "more than this machine's"),
    "kl_samples 1e10": (_run_args("metrics.kl_samples=1e10"), "kl_samples: must be an integer from 10 to"),
    "config seed 2**64": (_run_args("seeds=[18446744073709551616]"), "seeds[0]: must be an integer from 0"),
    "--threads 100000": (["--threads", "100000", "fit", "old_faithful", "--k", "2", "--method", "em"],
                         "--threads: must be from 1 to"),
    "--threads 0": (["--threads", "0", "fit", "old_faithful", "--k", "2", "--method", "em"], "--threads"),
    "fit --seed 2**64": (["fit", "old_faithful", "--k", "2", "--method", "em", "--seed", str(2**64)],
                         "--seed: must be from 0 to"),
    "select seeds past 2**64": (["select", "old_faithful", "--seed", str(2**64 - 2), "--n-init", "3"],
                                "starts use seeds"),
    "fit data is a directory": (["fit", "{dir}", "--k", "2", "--method", "em"], "is a directory, not a data file"),
    "select data is a directory": (["select", "{dir}"], "is a directory, not a data file"),
    "select --out on a file": (["select", "old_faithful", "--out", "{file}"], "is a file, not a directory"),
    "select --out in a missing folder": (["select", "old_faithful", "--out", "{tmp}/nowhere/bic.png"],
                                         "does not exist"),
    "bad prior field": (["fit", "old_faithful", "--k", "2", "--method", "vb", "--weight-concentration", "-1"],
                        "--weight-concentration: must be a finite number > 0"),
    "prior of the wrong length": (["fit", "old_faithful", "--k", "2", "--method", "vb", "--mean-prior", "[0, 0, 0]"],
                                  "--mean-prior: does not fit the data"),
    "prior for k-means": (["fit", "old_faithful", "--k", "2", "--method", "kmeans", "--prior"],
                          "--prior: routine 'kmeans' fits no prior"),
    "unknown option": (["fit", "old_faithful", "--k", "2", "--method", "nuts", "--option", "warmup_steps=5"],
                       "did you mean 'warmup'"),
    "option given twice": (["fit", "old_faithful", "--k", "2", "--method", "em", "-o", "tol=1", "-o", "tol=2"],
                           "given twice"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_every_failure_is_one_line_without_traceback_before_any_fit(tmp_path, capsys, monkeypatch, case):
    args, fragment = FAILURES[case]
    if case == "--out not writable" and not (Path("/sys").is_dir() and not _writable(Path("/sys"))):
        pytest.skip("no read-only directory to point at")
    paths = _failure_setup(tmp_path)
    monkeypatch.chdir(tmp_path)

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the input was checked")

    for module in (mixtures, mixtures.experiment.runner, mixtures.experiment.selection):
        monkeypatch.setattr(module, "fit", no_fit)
    code = main([_fill(arg, paths) for arg in args])
    captured = capsys.readouterr()
    assert code != 0, captured
    assert captured.err.startswith("mixtures: error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and fragment in captured.err, captured.err


def _writable(directory: Path) -> bool:
    try:
        check_writable(directory)
    except OSError:
        return False
    return True


@pytest.mark.slow  # three interpreters (~5 s each)
@pytest.mark.parametrize("args, fragment", [
    (["run", "/dev/zero"], "not a regular file"),
    (["run", "{tmp}/bomb.yaml", "seeds=[1]"], "expands to more than"),
    (["run", "{tmp}/deep.yaml"], "nested too deeply"),
])
def test_a_real_process_prints_one_line_and_ends(tmp_path, args, fragment):
    """In a real interpreter (no test harness catching anything), with a generous guard against a hang."""
    paths = _failure_setup(tmp_path)
    command = [sys.executable, "-m", "mixtures.cli", *[_fill(arg, paths) for arg in args]]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and fragment in done.stderr and "Traceback" not in done.stderr


def test_a_run_with_failed_fits_exits_1_with_the_count_last(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("seeds: [0]", "seeds: [0, 1, 2]"))
    real_fit = mixtures.experiment.runner.fit

    def fragile(model, X, method, **kwargs):
        if kwargs["seed"] == 1:
            raise DivergenceError("the log-likelihood became -inf at iteration 3")
        return real_fit(model, X, method, **kwargs)

    monkeypatch.setattr(mixtures.experiment.runner, "fit", fragile)
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("mixtures: error: 1 of 3 fits failed") and "--allow-failures" in last, captured.err
    assert "Traceback" not in captured.err
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--allow-failures"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("3 fits (1 failed)")


def test_a_full_disk_is_one_line_and_the_rerun_resumes(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("seeds: [0]", "seeds: [0, 1, 2]"))
    real_fsync = os.fsync
    calls: list[int] = []

    def full_disk(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) >= 7:  # the first fit's history and record are stored, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full" in err and "rerun the same command to resume" in err, err
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert [row["status"] for row in read_results(tmp_path / "out" / "results.csv")] == ["ok"] * 3


def test_force_replaces_another_experiments_directory(tmp_path, capsys):
    first = tmp_path / "first.yaml"
    first.write_text(TINY)
    second = tmp_path / "second.yaml"
    second.write_text(TINY.replace("seeds: [0]", "seeds: [0, 1]"))
    out = tmp_path / "out"
    assert main(["run", str(first), "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(second), "--out", str(out), "--quiet"]) == 2
    assert "holds the run of experiment" in capsys.readouterr().err
    assert main(["run", str(second), "--out", str(out), "--quiet", "--force"]) == 0
    assert [row["seed"] for row in read_results(out / "results.csv")] == ["0", "1"]


def test_unexpected_errors_are_one_line_too(capsys, monkeypatch):
    monkeypatch.setattr(mixtures, "fit", lambda *a, **k: [][1])
    assert main(["fit", "old_faithful", "--k", "2", "--method", "em"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected IndexError" in err and "MIXTURES_TRACEBACK=1" in err
    monkeypatch.setenv("MIXTURES_TRACEBACK", "1")
    with pytest.raises(IndexError):
        main(["fit", "old_faithful", "--k", "2", "--method", "em"])


# -- priors on the command line --------------------------------------------------------------------------------
def _printed_params(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()[:1].isdigit() and "[" in line]


@pytest.mark.filterwarnings("ignore:variational Bayes did not converge")
@pytest.mark.parametrize("args, prior, options", [
    (["--method", "vb", "--option", "max_iter=50"], mixtures.GaussianPrior(), {"max_iter": 50}),
    (["--method", "vb", "--prior", "--weight-prior", "dirichlet_process", "--weight-concentration", "1e-1",
      "--mean-precision", "0.5", "--degrees-of-freedom", "3"],
     mixtures.GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.1, mean_precision=0.5,
                            degrees_of_freedom=3.0), {}),
    (["--method", "em", "--degrees-of-freedom", "4", "--weight-concentration", "2"],
     mixtures.GaussianPrior(degrees_of_freedom=4.0, weight_concentration=2.0), {}),
])
def test_fit_takes_a_prior_like_the_api(capsys, args, prior, options):
    assert main(["fit", "old_faithful", "--k", "3", "--seed", "1", *args]) == 0
    out = capsys.readouterr().out
    X = datasets.old_faithful()
    method = args[args.index("--method") + 1]
    result = mixtures.fit(mixtures.GaussianMixture(3, prior=prior), X, method, seed=1, **options)
    expected = [f"{k:>9}  {float(result.params.weights[k]):>9.5g}  [" for k in range(3)]
    assert [line[:len(expected[0])] for line in _printed_params(out)][:3] == expected
    assert f"{float(result.params.log_prob(X).sum()):.6g}" in out and "prior: GaussianPrior(" in out


@pytest.mark.slow  # NUTS: a few seconds of sampling
def test_fit_runs_nuts_with_the_default_prior(tmp_path, capsys):
    X, _ = datasets.seed004_params().sample(40, seed=3)
    np.savetxt(tmp_path / "points.csv", X.numpy(), delimiter=",")
    X = datasets.load(tmp_path / "points.csv")
    assert main(["fit", str(tmp_path / "points.csv"), "--k", "2", "--method", "nuts", "--option", "num_samples=6",
                 "--option", "warmup=6"]) == 0
    captured = capsys.readouterr()
    result = mixtures.fit(mixtures.GaussianMixture(2, prior=mixtures.GaussianPrior()), X, "nuts", seed=0,
                          num_samples=6, warmup=6)
    assert f"{float(result.params.log_prob(X).sum()):.6g}" in captured.out
    assert "nuts needs a prior: using the library's default GaussianPrior()" in captured.err


def test_select_reaches_vb(capsys):
    assert main(["select", "old_faithful", "--method", "vb", "--k-max", "2", "--covariance-types", "full",
                 "--n-init", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    X = datasets.old_faithful()
    result = mixtures.fit(mixtures.GaussianMixture(2, prior=mixtures.GaussianPrior()), X, "vb", init="hc", seed=0,
                          tol=1e-6, max_iter=1000)  # select's defaults: hc start; vb has no rtol, so tol 1e-6
    assert f"{result.bic(X):.2f}" in captured.out and "vb needs a prior" in captured.err


@pytest.mark.parametrize("name", ["VEV", "EEE"])
def test_fit_takes_every_registered_structure_and_mclust_alias(name, capsys):
    assert main(["fit", "old_faithful", "--k", "2", "--method", "em", "--covariance-type", name]) == 0
    assert f"{name} covariances" in capsys.readouterr().out
