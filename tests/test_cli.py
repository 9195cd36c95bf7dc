"""The ``mixtures`` command line: run, fit, select, --help, and exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mixtures
from mixtures import data as datasets
from mixtures.cli import main
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
    # the reported BIC is the best start's own (the selection defaults: tol 1e-6, max_iter 1000, seeds 0..2)
    X = datasets.old_faithful()
    bic = min(mixtures.fit(mixtures.GaussianMixture(2, "full"), X, "em", seed=seed, tol=1e-6, max_iter=1000).bic(X)
              for seed in range(3))
    assert float(table[1][3]) == pytest.approx(bic, abs=0.006)
    assert all(row[7] == "3/3" for row in table)  # converged starts of 3
    best = min(table, key=lambda row: float(row[3]))
    assert f"best by BIC: K={best[0]}, {best[1]}" in out
    assert "best by BIC: K=2, full" in out  # Old Faithful's well-known answer
    assert out_png.read_bytes()[:8] == PNG_MAGIC


def test_select_picks_tied_three_on_old_faithful_like_the_config(capsys):
    """mclust's answer (EEE, 3). Converged, its BIC is 2314.30 (mclust reports −2314.386: its EM stops at a
    relative log-likelihood change of 1e-5, ~40 iterations in, 0.09 short of the optimum; VVV,2 agrees with
    mclust's −2322.19). em's own defaults (tol 1e-3, max_iter 100, one start) stop tied K=3 at 2342.8."""
    assert main(["select", "old_faithful", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = {(int(line.split()[0]), line.split()[1]): line.split() for line in out.splitlines()
            if len(line.split()) >= 8 and line.split()[0].isdigit()}
    assert len(rows) == SELECTION_DEFAULTS["k_max"] * 4
    assert "best by BIC: K=3, tied (BIC 2314.30)" in out
    assert float(rows[(3, "tied")][3]) == pytest.approx(2314.297, abs=0.005)
    assert float(rows[(2, "full")][3]) == pytest.approx(2322.192, abs=0.005)  # mclust's VVV,2
    assert rows[(3, "tied")][7] == "3/3"
    # the model_selection config fits the same models: its best seed gives the same BIC
    config = load_config(CONFIGS / "model_selection.yaml")
    X = datasets.old_faithful()
    options = config.methods[0].options
    bic = min(mixtures.fit(mixtures.GaussianMixture(3, "tied"), X, "em", init=config.inits[0], seed=seed,
                           **options).bic(X) for seed in config.seeds)
    assert float(rows[(3, "tied")][3]) == pytest.approx(bic, abs=0.005)
    # em's own defaults stop short: the reason select has the config's tolerances
    assert main(["select", "old_faithful", "--quiet", "--k-max", "3", "--covariance-types", "tied",
                 "--tol", "1e-3", "--max-iter", "100", "--n-init", "1"]) == 0
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
