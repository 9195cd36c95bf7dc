"""Experiment runs: task expansion, data, metrics, files, resume, failures, and every shipped config."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mixtures
from mixtures import data as datasets
from mixtures import evaluation, experiment
from mixtures.core.posterior import Posterior
from mixtures.errors import DivergenceError
from mixtures.experiment import (
    HISTORY_ID_COLUMNS,
    MAX_POSTERIOR_DRAWS,
    POSTERIOR_COLUMNS,
    RESULT_COLUMNS,
    TIME_COLUMNS,
    ConfigError,
    DataCache,
    expand_tasks,
    load_config,
    params_from_record,
    posterior_summary,
    read_histories,
    read_history,
    read_posterior,
    read_results,
    run_experiment,
    runner,
    true_params,
    write_posterior,
)
from mixtures.experiment.datasets import header_names
from mixtures.experiment.report import data_passes, make_figures, mean_sd, methods_section, selection_winners
from mixtures.experiment.selection import select_models
from mixtures.families.gaussian import MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.inference import ROUTINES
from mixtures.io import json_state, params_to_state

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def draws(weights, locs, native, covariance_type):
    """Stacked Gaussian parameters (a posterior's draws) from their tensors."""
    return MixtureParams.from_native(weights, locs, native, covariance_type, validate=False)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SMALL = """\
# A small sweep for resume tests.
data: {name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 100, seed: 1}
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 20}}
  - {name: km, method: kmeans, options: {max_iter: 20}}
inits: [kmeans]
seeds: [0, 1]
sweep: {n: [30, 40]}
metrics: {kl_samples: 100}
output: {figures: none}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_close(actual, expected, rtol=1e-12, atol=1e-12):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64), rtol=rtol, atol=atol)


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


# -- tasks and data --------------------------------------------------------------------------------------
def test_expansion_order_and_counts(tmp_path):
    text = """\
data:
  - {name: faithful, kind: old_faithful}
  - {name: s4, kind: synthetic, truth: seed004, n: 100}
model: {n_components: 2}
methods: [em, kmeans]
inits: [kmeans, random]
seeds: [0, 1, 2]
sweep: {n: [50, 100], covariance_type: [full, diag]}
"""
    tasks = expand_tasks(load_config(write(tmp_path, text)))
    # faithful: 2 covariance types (n does not apply) ; s4: 2 n x 2 types; x 2 inits x 3 seeds x 2 methods
    assert len(tasks) == (2 + 4) * 2 * 3 * 2
    faithful = [t for t in tasks if t.dataset.name == "faithful"]
    assert {t.point.get("n") for t in faithful} == {None} and len(faithful) == 24
    first = tasks[:2]
    assert [t.method.name for t in first] == ["em", "kmeans"] and first[0].cell == first[1].cell
    assert len({t.key for t in tasks}) == len(tasks)
    s4 = [t for t in tasks if t.dataset.name == "s4"]
    assert {(t.dataset.n, t.covariance_type) for t in s4} == {(50, "full"), (50, "diag"), (100, "full"),
                                                             (100, "diag")}
    assert len({t.cell for t in tasks}) == len(tasks) // 2


def test_task_keys_are_stable_and_depend_on_what_matters(tmp_path):
    path = write(tmp_path, SMALL)
    keys = [t.key for t in expand_tasks(load_config(path))]
    assert keys == [t.key for t in expand_tasks(load_config(path))]
    changed = [t.key for t in expand_tasks(load_config(path, overrides=["methods[0].options.max_iter=21"]))]
    assert [a == b for a, b in zip(keys, changed)] == [i % 2 == 1 for i in range(len(keys))]


def test_data_is_shared_within_a_cell_and_seeded_by_the_config(tmp_path):
    config = load_config(write(tmp_path, SMALL))
    tasks = expand_tasks(config)
    cache = DataCache()
    a, b = cache.get(tasks[0]), cache.get(tasks[1])     # same cell, two methods
    assert a is b and a.X.shape == (30, 2) and a.X_test.shape == (100, 2)
    assert cache.get(tasks[2]) is a                    # another seed, same data (resample: false)
    fresh = DataCache().get(tasks[0])
    assert torch.equal(fresh.X, a.X) and torch.equal(fresh.X_test, a.X_test)
    other_n = cache.get(tasks[-1])
    assert other_n.X.shape == (40, 2) and not torch.equal(other_n.X[:30], a.X)
    assert not torch.equal(a.X_test[:30], a.X)         # held-out sample is independent
    assert_close(a.truth.covariances, datasets.seed004_params().covariances, rtol=0, atol=0)


def test_resample_draws_fresh_data_per_seed(tmp_path):
    config = load_config(write(tmp_path, SMALL), overrides=["data.resample=true"])
    tasks = expand_tasks(config)
    cache = DataCache()
    seed0, seed1 = cache.get(tasks[0]), cache.get(tasks[2])
    assert tasks[0].seed == 0 and tasks[2].seed == 1
    assert not torch.equal(seed0.X, seed1.X)
    assert torch.equal(cache.get(tasks[1]).X, seed0.X)  # methods still share a cell's data


def test_seed003_truth_reproduces_the_notebook_draw(tmp_path):
    text = """\
data: {kind: synthetic, truth: seed003, n: 3000, n_test: 10}
model: {n_components: 3}
methods: [em]
"""
    task = expand_tasks(load_config(write(tmp_path, text)))[0]
    bundle = DataCache().get(task)
    X, labels, params = datasets.seed003_data()
    assert torch.equal(bundle.X, X) and torch.equal(bundle.labels, labels)
    assert_close(bundle.truth.covariances, params.covariances, rtol=0, atol=0)


def test_random_truth_separation_rescales_one_layout(tmp_path):
    text = """\
data: {kind: synthetic, truth: random, n: 50, n_components: 3, seed: 5}
model: {n_components: 3}
methods: [em]
sweep: {separation: [1.0, 2.5]}
"""
    config = load_config(write(tmp_path, text))
    tasks = expand_tasks(config)
    near, far = (true_params(t.dataset, t.true_n_components) for t in (tasks[0], tasks[-1]))
    assert_close(far.locs, near.locs * 2.5, rtol=1e-12, atol=1e-12)
    assert_close(far.covariances, near.covariances, rtol=0, atol=0)
    assert math.isclose(datasets.separation_of(far), 2.5, rel_tol=1e-10)


# -- priors, method K and datasets ---------------------------------------------------------------------
BAYES = """\
# Priors in a small run.
data:
  - {name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 100, seed: 1}
  - {name: r3, kind: synthetic, truth: random, n: 60, n_test: 50, seed: 2}
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 30}}
  - {name: MAP-EM, method: em, prior: {}, options: {max_iter: 30}}
  - {name: VB, method: vb, prior: {}, datasets: [s4], options: {max_iter: 30, warn: false}}
  - {name: DP, method: vb, n_components: 4, prior: {weight_prior: dirichlet_process, weight_concentration: 0.1},
     datasets: [s4], options: {max_iter: 200}}
seeds: [0]
metrics: {kl_samples: 100}
output: {figures: [posterior, weights, traces, coclustering]}
"""


def test_task_key_changes_with_the_prior_and_only_for_that_method(tmp_path):
    path = write(tmp_path, BAYES)
    keys = [t.key for t in expand_tasks(load_config(path))]
    assert len(set(keys)) == len(keys)
    for override, changed in [("methods[1].prior.mean_precision=2", "MAP-EM"),
                              ("methods[3].prior.weight_concentration=0.5", "DP"),
                              ("methods[2].prior.weight_prior=dirichlet_process", "VB")]:
        tasks = expand_tasks(load_config(path, overrides=[override]))
        assert [t.method.name for t, old in zip(tasks, keys) if t.key != old] == \
            [t.method.name for t in tasks if t.method.name == changed], override
    # a prior of all defaults is a different model from no prior
    em, map_em = expand_tasks(load_config(path))[:2]
    assert em.method.options == map_em.method.options and em.key != map_em.key
    # keys of tasks without a prior are those of configs written before priors existed
    plain = expand_tasks(load_config(path, overrides=["methods=[{name: EM, method: em, options: "
                                                      "{max_iter: 30}}]"]))
    assert plain[0].key == em.key


def test_method_datasets_and_k_shape_the_tasks(tmp_path):
    tasks = expand_tasks(load_config(write(tmp_path, BAYES)))
    assert [(t.dataset.name, t.method.name, t.n_components) for t in tasks] == [
        ("s4", "EM", 2), ("s4", "MAP-EM", 2), ("s4", "VB", 2), ("s4", "DP", 4),
        ("r3", "EM", 2), ("r3", "MAP-EM", 2)]
    assert {t.cell for t in tasks[:4]} == {tasks[0].cell}
    # a random truth follows the model's K, not a method's: the cell's methods share the data
    text = BAYES.replace("datasets: [s4], options: {max_iter: 200}", "datasets: [r3], options: {max_iter: 200}")
    tasks = expand_tasks(load_config(write(tmp_path, text)))
    r3 = [t for t in tasks if t.dataset.name == "r3"]
    assert [t.n_components for t in r3] == [2, 2, 4] and {t.true_n_components for t in r3} == {2}
    cache = DataCache()
    assert cache.get(r3[0]) is cache.get(r3[2])


def test_prior_that_does_not_fit_the_data_is_a_config_error_before_writing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as caught:
        run_experiment(write(tmp_path, BAYES.replace("prior: {}, datasets", "prior: {mean_prior: [0, 0, 0]}, "
                                                     "datasets")), out)
    assert caught.value.key == "methods[2].prior"
    assert "mean_prior must have shape (D,) = (2,)" in str(caught.value) and "'s4'" in str(caught.value)
    assert not out.exists()


def test_posterior_files_hold_an_even_subsample(tmp_path):
    S, K, D = 450, 3, 2
    generator = torch.Generator().manual_seed(0)
    weights = torch.distributions.Dirichlet(torch.ones(K)).sample((S,))
    locs = torch.randn(S, K, D, generator=generator, dtype=torch.float64)
    native = torch.linalg.cholesky(torch.eye(D, dtype=torch.float64) * torch.rand(S, K, 1, 1, generator=generator,
                                                                                dtype=torch.float64) + 0.1)
    posterior = Posterior(draws(weights.double(), locs, native, "full"), kind="mcmc")
    write_posterior(tmp_path / "p" / "x.pt", posterior)
    payload = torch.load(tmp_path / "p" / "x.pt", weights_only=True)
    index = payload["indices"]
    assert len(index) == MAX_POSTERIOR_DRAWS and index[0] == 0 and index[-1] == S - 1
    assert (index.diff() >= 2).all() and (index.diff() <= 3).all()  # evenly spaced through 450 draws
    assert payload["n_draws"] == S and payload["posterior"]["spec"]["covariance_type"] == "full"
    assert payload["posterior"]["kind"] == "mcmc"
    again = read_posterior(tmp_path / "p" / "x.pt")
    assert_close(again.weights, posterior.weights[index], rtol=0, atol=0)
    assert_close(again.locs, posterior.locs[index], rtol=0, atol=0)
    assert_close(again.covariances, posterior.covariances[index], rtol=0, atol=0)
    assert not list((tmp_path / "p").glob("*.tmp"))
    small = Posterior(draws(posterior.weights[:7], locs[:7], native[:7], "full"), kind="variational")
    write_posterior(tmp_path / "small.pt", small)
    assert torch.equal(torch.load(tmp_path / "small.pt", weights_only=True)["indices"], torch.arange(7))


def test_posterior_summary_columns():
    weights = torch.tensor([[0.6, 0.395, 0.005], [0.5, 0.25, 0.25], [0.98, 0.015, 0.005]], dtype=torch.float64)
    cov_type = mixtures.GaussianMixture(3, "spherical").cov_type
    nan = float("nan")
    diagnostics = {"r_hat": {"weights": torch.tensor([1.01, nan, 1.2], dtype=torch.float64),
                             "locs": torch.tensor([[1.0, 1.05]], dtype=torch.float64)},
                   "ess": {"weights": torch.tensor([50.0, nan, 80.0]), "locs": torch.tensor([[30.5, 90.0]])},
                   "num_divergences": 3}
    locs, variances = torch.zeros(3, 3, 1, dtype=torch.float64), torch.ones(3, 3, dtype=torch.float64)
    posterior = Posterior(draws(weights, locs, variances, cov_type), kind="mcmc", diagnostics=diagnostics)
    summary = posterior_summary(posterior)
    assert summary == {"posterior_draws": 3, "expected_components": (2 + 3 + 2) / 3, "max_r_hat": 1.2,
                       "min_ess": 30.5, "num_divergences": 3}
    plain = posterior_summary(Posterior(draws(weights, posterior.locs, posterior.native, cov_type), kind="variational"))
    assert set(plain) == {"posterior_draws", "expected_components"}


def test_data_passes_per_routine():
    history = mixtures.History()
    for step in (0, 10, 20):
        history.append(iteration=step, log_likelihood=-1.0, time=0.1 * step)
    assert data_passes(history, "em", {}, 1000).tolist() == [0, 10, 20]
    assert data_passes(history, "svi", {"subsample_size": 250}, 1000).tolist() == [0, 2.5, 5.0]
    assert data_passes(history, "svi", {}, 1000).tolist() == [0, 10, 20]
    assert data_passes(history, "nuts", {}, 1000) is None
    history.set_last(passes=0.75)  # a routine's own count wins
    stepwise = mixtures.History.from_dict({**history.to_dict(), "passes": [0.0, 0.5, 0.75]})
    assert data_passes(stepwise, "stepwise_em", {}, 1000).tolist() == [0, 0.5, 0.75]


@pytest.fixture(scope="module")
def bayes_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bayes")
    config_path = write(root, BAYES)
    return load_config(config_path), run_experiment(config_path, root / "out", quiet=True)


def test_posteriors_are_stored_and_summarized(bayes_run):
    config, out = bayes_run
    rows = read_results(out / "results.csv")
    assert list(rows[0]) == list(RESULT_COLUMNS) and set(POSTERIOR_COLUMNS) <= set(RESULT_COLUMNS)
    assert [(r["dataset"], r["method"], r["status"]) for r in rows] == [
        (t.dataset.name, t.method.name, "ok") for t in expand_tasks(config)]
    bundle = DataCache().get(expand_tasks(config)[0])
    for row in rows:
        if row["method"] in ("EM", "MAP-EM"):  # point estimates: no posterior columns
            assert all(row[c] == "" for c in POSTERIOR_COLUMNS + ("posterior",)), row
            continue
        K = 4 if row["method"] == "DP" else 2
        prior = GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.1) if K == 4 \
            else GaussianPrior()
        options = {"max_iter": 200} if K == 4 else {"max_iter": 30, "warn": False}
        direct = mixtures.fit(mixtures.GaussianMixture(K, "full", prior=prior), bundle.X, "vb", init="kmeans",
                              seed=0, **options)
        stored = read_posterior(out / row["posterior"])
        index = torch.load(out / row["posterior"], weights_only=True)["indices"]
        assert stored.n_draws == MAX_POSTERIOR_DRAWS < direct.posterior.n_draws == int(row["posterior_draws"])
        assert_close(stored.weights, direct.posterior.weights[index], rtol=0, atol=0)
        assert_close(stored.native, direct.posterior.native[index], rtol=0, atol=0)
        assert float(row["expected_components"]) == direct.posterior.expected_components(0.01)
        assert row["max_r_hat"] == row["min_ess"] == ""  # no MCMC here
    dp = [r for r in rows if r["method"] == "DP"][0]
    assert int(dp["n_components"]) == 4 and float(dp["expected_components"]) < 4  # spare sticks unused
    for name in ("posterior_s4.png", "weights_s4.png", "traces_s4.png", "coclustering_s4.png"):
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    assert not (out / "figures" / "posterior_r3.png").exists()  # no posterior on r3
    assert not (out / "figures" / "coclustering_r3.png").exists()
    report = (out / "report.md").read_text()
    assert "E[#w>1%]" in report and "could not be drawn" not in report
    for row in rows:  # the held-out density of every routine; k̂ and LOO where there are draws
        assert float(row["held_out_lpd"]) == pytest.approx(float(row["held_out_ll"]), rel=1e-12) \
            if row["method"] in ("EM", "MAP-EM") else float(row["held_out_lpd"]) > float(row["held_out_ll"]) - 1.0
        has_draws = row["method"] in ("VB", "DP")
        assert (row["elpd_loo"] != "") == has_draws and (row["pareto_k"] != "") == (row["method"] == "VB")
    assert math.isfinite(float([r for r in rows if r["method"] == "VB"][0]["pareto_k"]))
    comparison = report.split("## Model comparison")[1].split("\n## ")[0]
    assert "| method | BIC | ELBO/pt | elpd-LOO/pt | held-out lpd/pt | k̂ of q |" in comparison
    vb_row = [line for line in comparison.splitlines() if line.startswith("| VB |")][0]
    assert (out / "tables" / "model_comparison_s4.csv").read_text().startswith("method,BIC,ELBO/pt")
    assert "\\toprule" in (out / "tables" / "model_comparison_s4.tex").read_text()
    assert any(verdict in vb_row for verdict in ("good", "usable", "unreliable"))
    methods = report.split("## Methods")[1].split("\n## ")[0]
    vb_line = [line for line in methods.splitlines() if line.startswith("- **VB**")][0]
    assert "the prior's effective weight against the data" in vb_line and "means " in vb_line
    assert "effective weight" not in [line for line in methods.splitlines() if line.startswith("- **EM**")][0]


def test_a_missing_posterior_file_redoes_only_its_task(bayes_run, monkeypatch):
    config, out = bayes_run
    rows = read_results(out / "results.csv")
    vb = [r for r in rows if r["method"] == "VB"][0]
    (out / vb["posterior"]).unlink()
    calls = []
    real_fit = runner.fit
    monkeypatch.setattr(runner, "fit", lambda *a, **k: (calls.append(a[2]), real_fit(*a, **k))[1])
    run_experiment(config, out, quiet=True)
    assert calls == ["vb"] and (out / vb["posterior"]).exists()
    assert without_time(read_results(out / "results.csv")) == without_time(rows)


# -- one run: files and metrics ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    config_path = write(root, SMALL.replace("figures: none", "figures: [traces, error_vs]"))
    out = run_experiment(config_path, root / "out", quiet=True)
    return load_config(config_path), out


def test_run_writes_every_file(small_run):
    config, out = small_run
    rows = read_results(out / "results.csv")
    tasks = expand_tasks(config)
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert len(rows) == len(tasks) == 8
    assert [row["task"] for row in rows] == [t.key for t in tasks]
    assert all(row["status"] == "ok" for row in rows)
    assert load_config(out / "config.yaml").to_dict() == config.to_dict()
    for row in rows:
        history = read_history(out / row["history"])
        assert {"iteration", "log_likelihood", "elbo", "kl", "time"} <= set(history.columns)
        assert history.last("log_likelihood") == pytest.approx(float(row["log_likelihood"]), rel=1e-9)
    for name in ("traces_s4.png", "error_vs_n_s4.png"):
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    report = (out / "report.md").read_text()
    assert "figures/traces_s4.png" in report and "| EM |" in report and "KL to truth" in report
    assert not list(out.rglob("*.tmp"))


def test_metrics_match_a_direct_computation(small_run):
    config, out = small_run
    rows = read_results(out / "results.csv")
    tasks = expand_tasks(config)
    cache = DataCache()
    for task, row in zip(tasks, rows):
        bundle = cache.get(task)
        record = experiment.read_record(out, task)
        params = params_from_record(record)
        # the same fit through the public API gives the same numbers, bit for bit
        options = dict(task.method.options)
        direct = mixtures.fit(mixtures.GaussianMixture(2, "full"), bundle.X, task.method.method,
                              init="kmeans", seed=task.seed, reg_covar=1e-6, **options)
        assert_close(direct.params.locs, params.locs, rtol=0, atol=0)
        # The record stores full covariances; refactorizing them can move a Cholesky factor by
        # one bit, so metrics recomputed from the record agree to rounding, not bit for bit.
        log_likelihood = float(params.log_prob(bundle.X).sum())
        assert float(row["log_likelihood"]) == pytest.approx(log_likelihood, rel=1e-12)
        n = bundle.X.shape[0]
        assert int(row["n"]) == n
        assert float(row["bic"]) == pytest.approx(-2 * log_likelihood + 11 * math.log(n), rel=1e-12)
        perm = evaluation.align_components(params, bundle.truth)
        errors = evaluation.parameter_errors(params, bundle.truth, perm=perm)
        for name in ("weights_l1", "weights_max", "means_rmse", "means_max", "covariances_frobenius",
                     "covariances_relative"):  # every error parameter_errors computes is a column
            assert float(row[name]) == pytest.approx(errors[name], rel=1e-9, abs=1e-12), name
        assert int(row["kl_samples"]) == config.metrics.kl_samples == 100
        assert row["alignment"] == " ".join(str(int(i)) for i in perm)
        predicted = params.joint_log_prob(bundle.X).argmax(-1)
        assert float(row["ari"]) == evaluation.adjusted_rand_index(bundle.labels, predicted)
        kl, se = evaluation.kl_divergence(bundle.truth, params, n_samples=100, seed=experiment.kl_seed(task))
        assert float(row["kl_truth"]) == pytest.approx(kl, rel=1e-12, abs=1e-15)
        assert float(row["kl_truth_se"]) == pytest.approx(se, rel=1e-12, abs=1e-15)
        assert float(row["held_out_ll"]) == pytest.approx(evaluation.held_out_log_likelihood(params, bundle.X_test),
                                                          rel=1e-12)
        assert row["singular"] == "false" and row["converged"] in ("true", "false")
    # the truth's held-out score is a property of the cell, identical for its methods
    for a, b in zip(rows[::2], rows[1::2]):
        assert a["held_out_ll_truth"] == b["held_out_ll_truth"] and a["cell"] == b["cell"]


def test_kl_to_the_truth_uses_common_random_numbers_per_cell(small_run):
    config, out = small_run
    tasks = expand_tasks(config)
    em, km = tasks[0], tasks[1]
    assert em.cell == km.cell and em.method.name != km.method.name
    assert experiment.kl_seed(em) == experiment.kl_seed(km)          # one set of draws per cell
    assert len({experiment.kl_seed(t) for t in tasks}) == len({t.cell for t in tasks})
    # the same draws: two methods' KL estimates differ exactly by the difference of their mean log q
    bundle = DataCache().get(em)
    draws, _ = bundle.truth.sample(config.metrics.kl_samples, experiment.kl_seed(em))
    rows = {r["method"]: r for r in read_results(out / "results.csv") if r["cell"] == str(em.cell)}
    fits = {t.method.name: params_from_record(experiment.read_record(out, t)) for t in (em, km)}
    mean_log_q = {name: float(params.log_prob(draws).mean()) for name, params in fits.items()}
    difference = float(rows["km"]["kl_truth"]) - float(rows["EM"]["kl_truth"])
    assert difference == pytest.approx(mean_log_q["EM"] - mean_log_q["km"], rel=1e-9, abs=1e-12)
    # the cell key survives a grown config (the cell index does not): resumed fits keep their draws
    grown = expand_tasks(load_config(config.source, overrides=["seeds=[0, 1, 2]"]))
    old = {t.key: t for t in tasks}
    shared = [t for t in grown if t.key in old]
    assert len(shared) == len(tasks) and any(t.cell != old[t.key].cell for t in shared)
    assert all(experiment.kl_seed(t) == experiment.kl_seed(old[t.key]) for t in shared)


def test_histories_csv_is_the_long_table_of_every_history(small_run):
    config, out = small_run
    rows = read_results(out / "results.csv")
    table = read_histories(out / "histories.csv")
    header = list(table[0])
    assert header[:len(HISTORY_ID_COLUMNS) + 1] == list(HISTORY_ID_COLUMNS) + ["iteration"]
    assert {"log_likelihood", "elbo", "kl", "time", "objective"} <= set(header)  # k-means adds objective
    expected = []
    for row in rows:
        history = read_history(out / row["history"])
        for record in history.records():
            expected.append((row["task"], row["method"], record))
    assert len(table) == len(expected)
    for line, (task, method, record) in zip(table, expected):
        assert (line["task"], line["method"]) == (task, method)
        for name in header[len(HISTORY_ID_COLUMNS):]:
            if name in record:
                value = record[name]
                assert (line[name] == "nan") if math.isnan(value) else float(line[name]) == value, name
            else:
                assert line[name] == ""  # a column this fit's routine does not record
    em_rows = [line for line in table if line["method"] == "EM"]
    assert em_rows and all(line["objective"] == "" for line in em_rows)
    assert em_rows[0]["seed"] == "0" and em_rows[0]["routine"] == "em" and em_rows[0]["dataset"] == "s4"


def test_history_round_trips_exactly(tmp_path):
    history = mixtures.History()
    history.append(iteration=0, log_likelihood=-1.0 / 3.0, time=0.0)
    history.append(iteration=1, log_likelihood=-0.1, elbo=-0.2, kl=0.1, time=1e-5, loss=float("nan"))
    experiment.write_history(tmp_path / "h.csv", history)
    again = read_history(tmp_path / "h.csv")
    assert again.columns == history.columns
    for name in history.columns:
        torch.testing.assert_close(again[name], history[name], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_params_round_trip_through_records(covariance_type):
    X, _ = datasets.seed004_params().sample(200, seed=3)
    fitted = mixtures.fit(mixtures.GaussianMixture(2, covariance_type), X, "em", seed=0).params
    # records store parameters as mixtures.io states through JSON: bit-exact, native covariances
    again = params_from_record({"params": json_state(params_to_state(fitted))})
    assert again.covariance_type == covariance_type
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(again, name), getattr(fitted, name)), name
    assert torch.equal(again.log_prob(X), fitted.log_prob(X))


# -- robustness ---------------------------------------------------------------------------------------
def test_a_crash_loses_only_the_fit_under_way(tmp_path, monkeypatch):
    """Each method's options are checked by a trial fit (one iteration) before anything is written;
    then every fit is stored as it finishes: a run that dies in its k-th fit has k - 1 fits on disk,
    whichever method that fit belongs to (before, each method's first fit was held in memory until
    every method had run one)."""
    path = write(tmp_path, SMALL.replace("sweep: {n: [30, 40]}\n", ""))
    trials, real_fit = [], runner.fit
    monkeypatch.setattr(runner, "trial_fit", lambda *a, **k: (trials.append((a[2], k)), real_fit(*a, **k))[1])
    total = len(expand_tasks(load_config(path)))
    for dying in range(1, total + 1):
        calls, out = [], tmp_path / f"out{dying}"

        def dying_fit(*args, calls=calls, dying=dying, **kwargs):
            calls.append(args[2])
            if len(calls) == dying:
                raise KeyboardInterrupt
            return real_fit(*args, **kwargs)

        monkeypatch.setattr(runner, "fit", dying_fit)
        trials.clear()
        with pytest.raises(KeyboardInterrupt):
            run_experiment(path, out, quiet=True)
        assert [method for method, _ in trials] == ["em", "kmeans"]  # before the first fit
        assert all(options["max_iter"] == 1 for _, options in trials)
        assert len(list((out / "records").glob("*.json"))) == dying - 1, calls
        assert len(read_results(out / "results.csv")) == dying - 1


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    path = write(tmp_path, SMALL)
    reference = run_experiment(path, tmp_path / "reference", quiet=True)
    real_fit = runner.fit
    calls = []

    def dying_fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the run is killed during its 4th fit
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(runner, "fit", dying_fit)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(path, tmp_path / "resumed", quiet=True)
    assert len(list((tmp_path / "resumed" / "records").glob("*.json"))) == 3
    assert len(read_results(tmp_path / "resumed" / "results.csv")) == 3  # finished fits are listed
    finished = {row["task"] for row in read_results(tmp_path / "resumed" / "results.csv")}
    assert {line["task"] for line in read_histories(tmp_path / "resumed" / "histories.csv")} == finished
    calls.clear()
    monkeypatch.setattr(runner, "fit", lambda *a, **k: (calls.append(1), real_fit(*a, **k))[1])
    resumed = run_experiment(path, tmp_path / "resumed", quiet=True)
    assert len(calls) == 5  # only the unfinished fits ran again
    expected = read_results(reference / "results.csv")
    got = read_results(resumed / "results.csv")
    assert without_time(got) == without_time(expected)
    calls.clear()
    run_experiment(path, tmp_path / "resumed", quiet=True)
    assert calls == []  # a finished run is not redone
    # a grown config reuses the finished fits
    run_experiment(load_config(path, overrides=["seeds=[0, 1, 2]"]), tmp_path / "resumed", quiet=True)
    assert len(calls) == 4


KILLABLE = """\
# Enough small fits for a kill to land mid-run.
data: {name: s4, kind: synthetic, truth: seed004, n: 1500, n_test: 200, seed: 1}
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 120, tol: 0.0, warn: false}}
  - {name: km, method: kmeans, options: {max_iter: 30}}
inits: [kmeans]
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
metrics: {kl_samples: 200}
output: {figures: none}
"""


def _without(rows: list[dict], column: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k != column} for row in rows]


@pytest.mark.slow  # two CLI subprocesses (~10 s)
def test_a_run_killed_by_sigkill_resumes_to_the_same_results(tmp_path):
    """A real kill: the CLI in a subprocess, SIGKILL once some fits are on disk, then the same command again."""
    path = write(tmp_path, KILLABLE)
    reference = run_experiment(path, tmp_path / "reference", quiet=True)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "mixtures.cli", "run", str(path), "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while len(list((out / "records").glob("*.json"))) < 3:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no fit finished within two minutes"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    done = len(list((out / "records").glob("*.json")))
    total = len(expand_tasks(load_config(path)))
    assert 3 <= done < total, "the kill must land mid-run"
    # SIGKILL: no handler ran; results.csv is as written before the first fit (no stored fit to reuse: no rows)
    assert read_results(out / "results.csv") == [] and not (out / "report.md").exists()
    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = read_results(reference / "results.csv"), read_results(out / "results.csv")
    assert len(got) == total and without_time(got) == without_time(expected)
    assert _without(read_histories(out / "histories.csv"), "time") == \
        _without(read_histories(reference / "histories.csv"), "time")
    assert not list(out.rglob("*.tmp"))  # a temporary file the kill may have left is deleted by the rerun


def test_a_failing_fit_becomes_a_failed_row(tmp_path, monkeypatch):
    real_fit = runner.fit

    def fragile_fit(model, X, method, **kwargs):
        if method == "kmeans" and kwargs["seed"] == 1:
            raise DivergenceError("the log-likelihood became -inf at iteration 3: a component collapsed")
        return real_fit(model, X, method, **kwargs)

    monkeypatch.setattr(runner, "fit", fragile_fit)
    out = run_experiment(write(tmp_path, SMALL), tmp_path / "out", quiet=True)
    rows = read_results(out / "results.csv")
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 2 and {row["method"] for row in failed} == {"km"}
    assert failed[0]["error"].startswith("DivergenceError: the log-likelihood became -inf")
    assert failed[0]["log_likelihood"] == "" and failed[0]["history"] == ""
    assert all(row["status"] == "ok" for row in rows if row not in failed)
    report = (out / "report.md").read_text()
    assert "## Failed fits" in report and "DivergenceError" in report


def test_malformed_configs_raise_before_any_file_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="did you mean 'seeds'"):
        run_experiment(write(tmp_path, SMALL.replace("seeds:", "sedes:")), out)
    assert not out.exists()
    # an unknown routine option is named with its key path when the config loads
    with pytest.raises(ConfigError) as caught:
        run_experiment(write(tmp_path, SMALL.replace("{max_iter: 20}}\n  - {name: km",
                                                     "{max_iters: 20}}\n  - {name: km")), out)
    assert caught.value.key == "methods[0].options.max_iters" and "did you mean 'max_iter'" in str(caught.value)
    assert not out.exists()
    bad_file = SMALL.replace("{name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 100, seed: 1}",
                             "{kind: file, path: data.csv}").replace("sweep: {n: [30, 40]}", "")
    (tmp_path / "data.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ConfigError, match="cannot be made"):
        run_experiment(write(tmp_path, bad_file), out)
    assert not out.exists()


# -- every shipped config, in smoke mode ---------------------------------------------------------------
EXPECTED_FIGURES = {
    "em_vs_vi": ["ellipses_old_faithful", "traces_old_faithful", "kl_gap_old_faithful",
                 "contours_old_faithful", "ellipses_seed004", "traces_seed004", "kl_gap_seed004",
                 "contours_seed004"],
    "init": ["ellipses_seed003", "traces_seed003", "kl_gap_seed003", "contours_seed003", "init_seed003"],
    "sample_size": ["ellipses_seed004_n30", "ellipses_seed004_n60", "traces_seed004", "error_vs_n_seed004"],
    "model_selection": ["bic_old_faithful", "ellipses_old_faithful_full_K1", "ellipses_old_faithful_full_K2"],
    "separation": ["error_vs_separation_random3", "error_vs_imbalance_random3",
                   "ellipses_random3_sep0.5_imb1.0", "ellipses_random3_sep2.0_imb4.0"],
    "bayes": ["ellipses_old_faithful", "traces_old_faithful", "posterior_old_faithful", "weights_old_faithful",
              "contours_old_faithful", "posterior_seed004", "weights_seed004", "traces_seed004",
              "posterior_seed003", "weights_seed003"],
    "online": ["passes_random5d", "traces_random5d", "ellipses_random5d"],
    "mclust": [name.format(data) for data in ("faithful", "iris", "diabetes")
               for name in ("bic_{}", "views_{}_classification", "views_{}_uncertainty", "views_{}_density")],
}
SLOW_CONFIGS = ("sample_size", "separation")


def run_shipped_smoke(name: str, out: Path) -> None:
    text = (CONFIGS / f"{name}.yaml").read_text()
    for routine in ("map", "svi"):
        if f"method: {routine}" in text and routine not in ROUTINES:
            pytest.skip(f"routine {routine!r} is not registered yet (mixtures/inference/{routine}.py)")
    config = load_config(CONFIGS / f"{name}.yaml", smoke=True)
    run_experiment(CONFIGS / f"{name}.yaml", out, smoke=True, quiet=True)
    rows = read_results(out / "results.csv")
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert len(rows) == len(expand_tasks(config))
    failed = [(row["method"], row["error"]) for row in rows if row["status"] != "ok"]
    assert not failed, failed
    for row in rows:
        assert (out / row["history"]).stat().st_size > 0
    assert load_config(out / "config.yaml").to_dict() == config.to_dict()
    report = (out / "report.md").read_text()
    assert report.startswith(f"# {config.name}") and "smoke mode" in report
    for figure in EXPECTED_FIGURES[name]:
        png = out / "figures" / f"{figure}.png"
        assert png.exists(), sorted(p.name for p in (out / "figures").iterdir())
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
        assert f"figures/{figure}.png" in report
    assert "could not be drawn" not in report
    return rows, report


def test_bayes_config_smoke_stores_posteriors_and_diagnostics(tmp_path):
    rows, report = run_shipped_smoke("bayes", tmp_path / "bayes")
    out = tmp_path / "bayes"
    bayesian = {"VB", "SVI", "NUTS", "DP-VB"}
    for row in rows:
        if row["method"] in bayesian:
            assert int(row["posterior_draws"]) >= 1 and 1 <= float(row["expected_components"])
            posterior = read_posterior(out / row["posterior"])
            assert posterior.n_draws == min(int(row["posterior_draws"]), MAX_POSTERIOR_DRAWS)
            assert posterior.weights.shape[1] == int(row["n_components"])
        else:
            assert row["posterior"] == row["expected_components"] == ""
        mcmc = row["method"] == "NUTS"
        assert (row["max_r_hat"] != "") == mcmc and (row["min_ess"] != "") == mcmc
        assert (row["num_divergences"] != "") == mcmc
    assert {r["dataset"] for r in rows if r["method"] == "DP-VB"} == {"old_faithful", "seed004", "seed003"}
    assert {r["method"] for r in rows if r["dataset"] == "seed003"} == {"DP-VB"}
    assert "max R-hat" in report and "NUTS rows are posterior draws" in report


def test_online_config_smoke_reports_passes(tmp_path):
    rows, report = run_shipped_smoke("online", tmp_path / "online")
    out = tmp_path / "online"
    stepwise = read_history(out / [r for r in rows if r["method"] == "stepwise-EM"][0]["history"])
    assert "passes" in stepwise and float(stepwise["passes"][-1]) == 2.0
    assert "## Log-likelihood per data pass" in report
    table = report.split("## Log-likelihood per data pass")[1].split("##")[0]
    for method in ("EM", "stepwise-EM", "SVI-minibatch"):
        assert f"| {method} |" in table
    # SVI: 30 steps of 256 of 3000 points = 2.56 passes
    assert "| SVI-minibatch |" in table and "| 2.56 |" in table


@pytest.mark.slow  # 27 fits and nine pairs/2-D views: ~15 s idle
def test_mclust_config_smoke_reads_the_selection_against_mclusts_top_models(tmp_path):
    """configs/mclust.yaml on its smoke grid (EEE, VVE, VVV x K = 1..3 on faithful, iris, diabetes): the BIC
    table and the top models in mclust's sign equal select_models' on the same grid, and the reference
    section sets them beside mclust's published top three."""
    rows, report = run_shipped_smoke("mclust", tmp_path / "mclust")
    selected = {r["covariance_type"]: r for r in select_models(mixtures.data.old_faithful(), 3, ["EEE"],
                                                                 reg_covar=0.0)[2:]}
    faithful = {(r["covariance_type"], int(r["n_components"])): r for r in rows if r["dataset"] == "faithful"}
    assert float(faithful["EEE", 3]["mclust_bic"]) == pytest.approx(selected["EEE"]["mclust_bic"], rel=1e-12)
    table = report.split("## BIC table")[1].split("## ")[0]
    assert "| K | EEE | VVE | VVV |" in table and "| 3 | -2314.316 |" in table
    reference = report.split("## Against the reference")[1].split("## ")[0]
    assert "| 1 | EEE,3 | -2314.316 | EEE,3 | -2314.316 | -2314.316 |" in reference
    assert "| 1 | VVV,3 | -4751.316 | VVV,3 | -4751.316 | -4751.316 |" in reference  # diabetes
    assert "| 3 | VVE,3 | -588.447 | VVV,2 | -574.018 | -574.018 |" in reference  # iris: VEV not in the grid
    assert reference.count("not in the grid") == 5 and "the same top models" not in reference


@pytest.mark.parametrize("name", [n for n in EXPECTED_FIGURES
                                  if n not in SLOW_CONFIGS and n not in ("bayes", "online", "mclust")])
def test_shipped_config_runs_in_smoke_mode(name, tmp_path):
    run_shipped_smoke(name, tmp_path / name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CONFIGS)
def test_shipped_sweep_config_runs_in_smoke_mode(name, tmp_path):
    run_shipped_smoke(name, tmp_path / name)


# -- report.md -------------------------------------------------------------------------------------------
def test_report_states_methods_findings_and_the_kl_sample_size(small_run):
    config, out = small_run
    report = (out / "report.md").read_text()
    assert "## Methods" in report and "- **EM**: routine `em`" in report
    assert "KL gap/pt" in report and "histories.csv" in report
    assert f"{config.metrics.kl_samples} draws of the truth per fit" in report
    assert "the same draws for every method of a cell" in report
    findings = report.split("## Findings")[1].split("\n## ")[0]
    assert "**s4.**" in findings and "held-out log-likelihood per point" in findings
    assert "sweep points" in findings  # n is swept: winners are counted per sweep point
    assert "±" not in findings


def test_methods_section_says_when_map_has_no_prior(tmp_path):
    from types import SimpleNamespace

    text = SMALL.replace("  - {name: km, method: kmeans, options: {max_iter: 20}}",
                         "  - {name: MAP, method: map, options: {num_steps: 5}}\n"
                         "  - {name: MAP-EM, method: em, prior: {}}")
    section = methods_section(SimpleNamespace(config=load_config(write(tmp_path, text)), tasks=[]))
    line = [line for line in section.splitlines() if line.startswith("- **MAP**")][0]
    assert "no prior" in line and "maximum likelihood by Adam" in line
    assert "prior: GaussianPrior(all defaults)" in [l for l in section.splitlines() if "MAP-EM" in l][0]


def test_methods_section_states_the_prior_on_nu_of_a_t(tmp_path):
    from types import SimpleNamespace

    text = SMALL.replace("  - {name: km, method: kmeans, options: {max_iter: 20}}",
                         "  - {name: t-MAP, method: map, prior: {}, family: student_t, options: {num_steps: 5}}\n"
                         "  - {name: t-shared, method: map, prior: {}, family: student_t,"
                         " family_options: {dof: shared}}\n"
                         "  - {name: t-fixed, method: map, prior: {}, family: student_t, family_options: {dof: 4}}")
    config = load_config(write(tmp_path, text))
    lines = methods_section(SimpleNamespace(config=config, tasks=[])).splitlines()
    line = {name: next(l for l in lines if l.startswith(f"- **{name}**")) for name in ("t-MAP", "t-shared", "t-fixed")}
    assert "GaussianPrior(all defaults) and ν ~ Gamma(2, rate 0.1) per component" in line["t-MAP"]
    assert "ν ~ Gamma(2, rate 0.1) shared by the components" in line["t-shared"]
    assert "ν fixed at 4" in line["t-fixed"] and "Gamma" not in line["t-fixed"]


def test_mean_sd_rounds_the_sd_to_the_mean_precision():
    assert mean_sd([-4.15538, -4.15538 + 1.3e-11], 6) == "-4.15538 ± 0"      # rounding noise
    assert mean_sd([0.8125, 0.8125 + 1e-16]) == "0.8125 ± 0"
    assert mean_sd([2812.55, 2919.55, 3026.55], 6) == "2919.55 ± 110"      # no 1.1e+02
    assert mean_sd([0.01, 0.015, 0.02]) == "0.015 ± 0.0050"
    assert mean_sd([1.0]) == "1" and mean_sd([]) == "–"


MODEL_SELECTION = """\
# K sweep where the winner is not among the first cells.
data: {name: s4, kind: synthetic, truth: seed004, n: 200, n_test: 100, seed: 1}
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 200, tol: 1.0e-6}}
seeds: [0]
sweep: {covariance_type: [spherical, full], n_components: [1, 2, 3]}
metrics: {kl_samples: 100}
output: {figures: [ellipses, bic], max_cell_figures: 1}
"""


def test_model_selection_always_shows_the_winners_ellipses(tmp_path):
    out = run_experiment(write(tmp_path, MODEL_SELECTION), tmp_path / "out", quiet=True)
    config = load_config(out / "config.yaml")
    tasks = expand_tasks(config)
    state = experiment.RunState(config, out, tasks, {t.key: experiment.read_record(out, t) for t in tasks},
                                DataCache())
    winners = selection_winners(state, tasks)
    assert set(winners) == {"bic", "aic", "icl"}
    figures = sorted(p.name for p in (out / "figures").glob("ellipses_*.png"))
    assert "ellipses_s4_spherical_K1.png" in figures  # the first cell (max_cell_figures: 1)
    for task in winners.values():
        assert task.cell != tasks[0].cell
        assert f"ellipses_s4_{task.covariance_type}_K{task.n_components}.png" in figures
    report = (out / "report.md").read_text()
    assert "has the lowest" in report and "shown whatever max_cell_figures says" in report
    assert "The lowest BIC is K=" in report.split("## Findings")[1]


def test_feature_names_come_from_the_data(tmp_path):
    (tmp_path / "named.csv").write_text("eruptions,waiting\n3.6,79\n1.8,54\n3.3,74\n")
    (tmp_path / "plain.txt").write_text("3.6 79\n1.8 54\n3.3 74\n")
    assert header_names(tmp_path / "named.csv", None, 2) == ("eruptions", "waiting")
    assert header_names(tmp_path / "named.csv", None, 3) is None  # not one name per column
    assert header_names(tmp_path / "plain.txt", None, 2) is None  # no header
    text = "data: {kind: file, path: named.csv}\nmodel: {n_components: 1}\nmethods: [em]\n"
    task = expand_tasks(load_config(write(tmp_path, text)))[0]
    assert DataCache().get(task).feature_names == ("eruptions", "waiting")
    faithful = expand_tasks(load_config(write(tmp_path, text.replace("{kind: file, path: named.csv}",
                                                                     "{kind: old_faithful}"))))[0]
    assert DataCache().get(faithful).feature_names == ("eruptions (min)", "waiting (min)")


# -- drawing reads what the run stored ------------------------------------------------------------------------
def test_contours_draw_the_stored_start_and_first_iteration_without_fitting(tmp_path, monkeypatch):
    text = SMALL.replace("figures: none", "figures: [contours]").replace("sweep: {n: [30, 40]}", "")
    out = run_experiment(write(tmp_path, text), tmp_path / "out", quiet=True)
    config = load_config(out / "config.yaml")
    tasks = expand_tasks(config)
    state = experiment.RunState(config, out, tasks, {t.key: experiment.read_record(out, t) for t in tasks},
                                DataCache())
    em = tasks[0]
    bundle = state.data.get(em)
    record = state.records[em.key]
    one = mixtures.fit(mixtures.GaussianMixture(2, "full"), bundle.X, "em", init="kmeans", seed=em.seed,
                       max_iter=1, warn=False)
    for stage, expected in (("init", one.init), ("first_iteration", one.params)):
        stored = params_from_record(record, stage)
        assert torch.equal(stored.locs, expected.locs) and torch.equal(stored.native, expected.native), stage
    assert params_from_record(state.records[tasks[1].key], "first_iteration") is None  # k-means: not drawn
    (out / "figures" / "contours_s4.png").unlink()

    def no_fitting(*args, **kwargs):
        raise AssertionError("drawing a figure must not fit a model")

    monkeypatch.setattr(runner, "fit", no_fitting)
    monkeypatch.setattr(mixtures, "fit", no_fitting)
    drawn = make_figures(state)
    assert not drawn.problems and [f.kind for f in drawn.figures] == ["contours"]
    assert (out / "figures" / "contours_s4.png").read_bytes()[:8] == PNG_MAGIC


def test_run_files_get_the_umasks_permissions_and_old_records_are_redone(small_run, tmp_path):
    config, out = small_run
    rows = read_results(out / "results.csv")
    paths = [out / "results.csv", out / "histories.csv", out / "report.md", out / "config.yaml",
             out / rows[0]["history"], next((out / "records").glob("*.json")), out / "figures" / "traces_s4.png"]
    for path in paths:  # mkstemp made these 0600; the experiment writes through mixtures.core.files
        assert path.stat().st_mode & 0o044 == 0o044 & ~_umask(), path
    task = expand_tasks(config)[0]
    record = experiment.read_record(out, task)
    assert record["version"] == experiment.RECORD_VERSION == 6
    stale = tmp_path / "stale"
    (stale / "records").mkdir(parents=True)
    (stale / "records" / f"{task.key}.json").write_text(
        (out / "records" / f"{task.key}.json").read_text().replace('"version": 5', '"version": 4'))
    assert experiment.read_record(stale, task) is None  # an older record is recomputed, not misread


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("option, fragment", [("guide: mvnn", "unknown guide 'mvnn'"),
                                              ("patience: x", "patience must be an integer")])
def test_option_values_the_record_cannot_type_are_config_errors_before_writing(tmp_path, option, fragment):
    """``guide`` may be a callable and ``patience`` an integer or "auto": the record types them "any", so the
    routine's own check rejects a bad value, in the method's first fit, before anything is written."""
    text = SMALL.replace("{name: km, method: kmeans, options: {max_iter: 20}}",
                         "{name: S, method: svi, options: {num_steps: 2, " + option + "}}")
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as caught:
        run_experiment(write(tmp_path, text), out, quiet=True)
    assert caught.value.key == f"methods[1].options.{option.split(':')[0]}" and fragment in str(caught.value)
    assert not out.exists()
