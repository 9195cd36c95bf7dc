"""configs/robust.yaml and what it needs of the experiment layer: a method's ``family`` and ``noise``, planted
uniform outliers (``outliers`` on synthetic data, sweepable), the outlier columns, and its figures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mixtures.experiment import load_config, run_experiment
from mixtures.experiment.config.errors import ConfigError
from mixtures.experiment.datasets import plant_outliers
from mixtures.experiment.tasks import build_model, expand_tasks
from mixtures.families import GaussianMixture, NoisyMixture, StudentTMixture

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "robust.yaml"


def test_planted_outliers_by_hand():
    X = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(1))
    out, out_labels, planted = plant_outliers(X, labels, 0.1, 2, seed=5)
    assert int(planted.sum()) == 20 and bool(planted[180:].all())
    assert torch.equal(out[:180], X[:180]) and torch.equal(out_labels[:180], labels[:180])
    assert bool((out_labels[180:] == 2).all())
    low, high = X[:180].min(0).values, X[:180].max(0).values
    width = high - low
    assert bool((out[180:] >= low - width / 2).all() and (out[180:] <= high + width / 2).all())
    assert not bool(((out[180:] >= low) & (out[180:] <= high)).all())  # the widened box reaches outside the data
    assert plant_outliers(X, labels, 0.0, 2, seed=5)[2].sum() == 0


def test_the_config_names_families_and_noise():
    config = load_config(CONFIG)
    tasks = expand_tasks(config)
    X = torch.randn(50, 2, dtype=torch.float64)
    models = {t.method.name: build_model(t, X) for t in tasks}
    assert type(models["EM"]) is GaussianMixture and type(models["t-EM"]) is StudentTMixture
    assert type(models["EM+noise"]) is NoisyMixture and type(models["EM+noise"].base) is GaussianMixture
    assert type(models["t-EM+noise"].base) is StudentTMixture
    assert models["t-EM"].dof_mode == "free" and models["t-EM-shared"].dof_mode == "shared"
    assert config.method("t-EM-shared").to_dict()["family_options"] == {"dof": "shared"}
    assert "family_options" not in config.method("t-EM").to_dict()  # unset: the task keys of older runs hold
    assert config.sweep["outliers"] == (0.0, 0.05, 0.1, 0.2)
    # a plain Gaussian method resolves without the new keys (older configs keep their task keys)
    assert "family" not in config.method("EM").to_dict() and config.method("t-EM").to_dict()["family"] == "student_t"


@pytest.mark.parametrize("bad, match, says", [
    ("family: student_t", "family: cauchy", "cauchy"), ("outliers: 0.0,", "outliers: 0.95,", "outliers"),
    ("outliers: [0.0, 0.05, 0.1, 0.2]", "outliers: [0.0, 1.5]", "outliers"),
    ("{dof: shared}", "{dof: wobbly}", "dof must be 'free', 'shared' or a positive number"),
    ("{dof: shared}", "{nu: 3}", "family 'student_t' has no setting 'nu'"),
    ("{dof: shared}", "[shared]", "must be a mapping of the family's settings"),
    ("{dof: shared}", "{dof: -2}", "positive"),
    ("family: student_t, family_options", "family_options", "family 'gaussian' has no setting 'dof'")])
def test_bad_family_and_outlier_rates_are_config_errors(bad, match, says, tmp_path):
    path = tmp_path / "robust.yaml"
    assert bad in CONFIG.read_text()
    path.write_text(CONFIG.read_text().replace(bad, match, 1))
    with pytest.raises(ConfigError, match=says):
        load_config(path)


def test_the_shipped_config_runs_at_reduced_size(tmp_path):
    run_experiment(CONFIG, tmp_path / "out", smoke=True, quiet=True)
    everything = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(everything) == 24 and all(row["status"] == "ok" for row in everything)
    rows = [row for row in everything if row["dataset"] == "seed004"]
    assert len(rows) == 14
    for row in rows:
        planted, flagged = int(row["outliers_planted"]), int(row["outliers_flagged"])
        assert planted == round(80 * float(0.1 if planted else 0.0))
        assert 0 <= flagged <= planted
        if row["method"] in ("EM", "VB"):  # a Gaussian fit has no outlier model
            assert flagged == 0 and int(row["inliers_flagged"]) == 0
        assert row["means_rmse"] != ""  # every family's clusters are compared with the truth
    stars = {row["method"]: row for row in everything if row["dataset"] == "stars"}
    assert len(stars) == 10 and all(row["outliers_planted"] == "4" and row["ari"] != "" for row in stars.values())
    assert stars["EM+noise-K1"]["outliers_flagged"] == "4" and stars["EM-K1"]["outliers_flagged"] == "0"
    noisy = [row for row in rows if "noise" in row["method"] and int(row["outliers_planted"])]
    assert noisy and all(int(row["outliers_flagged"]) >= 4 for row in noisy)
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert "error_vs_outliers_seed004.png" in figures and any(name.startswith("ellipses") for name in figures)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "could not be drawn" not in report
    # the swept rate labels the summary's rows (it once shared its header with the planted count, left to the CSV)
    header = next(line for line in report.splitlines() if line.startswith("| dataset | outliers | method |"))
    assert header.count("| outliers |") == 1 and "outliers planted" not in header
    assert "outliers planted" in (tmp_path / "out" / "tables" / "summary.csv").read_text().splitlines()[0]


@pytest.mark.slow
def test_with_ten_percent_outliers_t_and_noise_recover_the_means_closer(tmp_path):
    """Issue 17's comparison on the shipped config's own table (seed 004, 10 % outliers, mean over ten fresh
    samples). Measured: means RMSE 0.383 Gaussian, 0.094 with noise (4.1x), 0.108 t with one shared nu (3.5x),
    0.138 t with a nu per component (2.8x: the smaller component becomes the outliers' heavy-tailed sink). The
    bounds are what the run shows, so a regression fails this test."""
    text = CONFIG.read_text().replace("outliers: [0.0, 0.05, 0.1, 0.2]", "outliers: [0.1]")
    kept = [line for line in text.splitlines() if not any(f"name: {name}," in line
                                                          for name in ("t-EM+noise", "VB", "t-SVI"))
            and "kind: stars_cyg" not in line and "datasets: [stars]" not in line]  # seed 004 only
    path = tmp_path / "robust.yaml"
    path.write_text("\n".join(kept).replace("figures: [ellipses, error_vs]", "figures: none") + "\n")
    run_experiment(path, tmp_path / "out", quiet=True)
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(rows) == 40 and all(row["status"] == "ok" for row in rows)
    error = {name: sum(float(r["means_rmse"]) for r in rows if r["method"] == name) / 10
             for name in ("EM", "EM+noise", "t-EM", "t-EM-shared")}
    assert error["EM"] >= 3.5 * error["EM+noise"] and error["EM"] >= 3.3 * error["t-EM-shared"], error
    assert error["EM"] >= 2.6 * error["t-EM"], error


def test_the_nuts_config_runs_at_reduced_size_and_says_when_a_chain_did_not_explore(tmp_path):
    """configs/robust_nuts.yaml's smoke run: every family through NUTS (the t and the noise component through
    their programs); a sampler of a few draws cannot pass its checks, and the report must say so."""
    run_experiment(CONFIG.with_name("robust_nuts.yaml"), tmp_path / "out", smoke=True, quiet=True)
    rows = {row["method"]: row for row in csv.DictReader((tmp_path / "out" / "results.csv").open())}
    assert set(rows) == {"EM", "EM+noise", "t-EM", "NUTS", "NUTS+noise", "t-NUTS"}
    assert all(row["status"] == "ok" for row in rows.values())
    for name in ("NUTS", "NUTS+noise", "t-NUTS"):
        assert rows[name]["max_r_hat"] != "" and rows[name]["problems"], name  # 6 draws: never a valid posterior
    assert int(rows["NUTS+noise"]["outliers_planted"]) == 8
    report = (tmp_path / "out" / "report.md").read_text()
    assert "INVALID" in report and "did not explore" in report
