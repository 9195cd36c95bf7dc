"""configs/missing.yaml and what it needs of the experiment layer: ``missing`` on a dataset (entries removed at
random, sweepable, seeded by the complete data), a method's ``missing: marginalize`` or ``impute: mean``, and
scoring every fit on the data with NaNs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mixtures.experiment import load_config, run_experiment
from mixtures.experiment.config.errors import ConfigError
from mixtures.experiment.config.loading import parse_config
from mixtures.experiment.datasets import make_data
from mixtures.experiment.tasks import expand_tasks

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "missing.yaml"
BASE = {"data": {"kind": "synthetic", "truth": "random", "n_components": 2, "n_features": 4, "n": 4000,
                 "n_test": 0, "seed": 3, "missing": 0.3},
        "model": {"n_components": 2},
        "methods": [{"name": "EM", "method": "em", "missing": "marginalize"}]}


def _config(**changes) -> dict:
    raw = {key: (dict(value) if isinstance(value, dict) else [dict(m) for m in value]) for key, value in BASE.items()}
    for key, value in changes.items():
        raw[key] = value
    return raw


def _data(rate: float, **data):
    config = parse_config(_config(data={**BASE["data"], "missing": rate, **data}))
    task = expand_tasks(config)[0]
    return make_data(task.dataset, task.true_n_components, None)


def test_removal_is_deterministic_nested_and_at_the_rate():
    complete = _data(0.0)
    assert not bool(torch.isnan(complete.X).any())
    first, again = _data(0.3), _data(0.3)
    assert torch.equal(torch.isnan(first.X), torch.isnan(again.X)) and first.digest == again.digest
    removed = torch.isnan(first.X)
    N, D = removed.shape
    # every row keeps an entry: rate - rate^D / D in expectation; binomial sd of the fraction ~0.0036 here
    assert abs(float(removed.double().mean()) - (0.3 - 0.3**D / D)) < 0.015
    assert not bool(removed.all(1).any())
    assert torch.equal(first.X[~removed], complete.X[~removed])  # the same points, entries removed
    assert torch.equal(first.truth.locs, complete.truth.locs) and torch.equal(first.labels, complete.labels)
    lower = torch.isnan(_data(0.1).X)
    # nested masks across rates, but for the entry a row emptied at 0.3 gets back (one per such row)
    assert 0 < int((lower & ~removed).sum()) <= 2 * N * 0.3**D and int(lower.sum()) < int(removed.sum())
    assert not torch.equal(torch.isnan(_data(0.3, seed=4).X), removed)  # another data set, another mask
    assert first.digest != complete.digest


def test_real_data_loses_entries_too():
    config = parse_config(_config(data={"kind": "old_faithful", "missing": 0.2}, sweep={"missing": [0.0, 0.2]}))
    tasks = expand_tasks(config)
    assert [t.dataset.missing for t in tasks] == [0.0, 0.2]
    complete, removed = (make_data(t.dataset, None, None) for t in tasks)
    mask = torch.isnan(removed.X)
    assert torch.equal(mask, torch.isnan(make_data(tasks[1].dataset, None, None).X))
    assert 0.1 < float(mask.double().mean()) < 0.25 and torch.equal(removed.X[~mask], complete.X[~mask])


def test_the_shipped_config_parses():
    config = load_config(CONFIG)
    assert config.sweep["missing"] == (0.0, 0.1, 0.2, 0.3)
    handling = {m.name: (m.missing, m.impute) for m in config.methods}
    assert handling["EM-marginalize"] == ("marginalize", None) and handling["VB-mean-imputed"] == (None, "mean")
    assert {m.method for m in config.methods} == {"em", "vb", "svi"}
    assert len(expand_tasks(config)) == 4 * 3 * 6
    assert config.method("EM-marginalize").to_dict()["missing"] == "marginalize"
    plain = parse_config(_config(data={**BASE["data"], "missing": None}, methods=[{"method": "em"}]))
    assert "missing" not in plain.method("em").to_dict() and "missing" not in plain.data[0].to_dict()


@pytest.mark.parametrize("changes, where, text", [
    ({"methods": [{"method": "em"}]}, "methods[0]", "impute: mean"),
    ({"methods": [{"method": "em", "missing": "marginalize", "impute": "mean"}]}, "impute", "both"),
    ({"methods": [{"method": "kmeans", "missing": "marginalize"}]}, "missing", "cannot fit data with missing"),
    ({"methods": [{"method": "em", "missing": "drop"}]}, "missing", "marginalize"),
    ({"methods": [{"method": "em", "impute": "median"}]}, "impute", "mean"),
    ({"data": {**BASE["data"], "missing": 0.95}}, "missing", "at most 0.9"),
    ({"data": {**BASE["data"], "missing": None}, "sweep": {"missing": [0.0, 1.5]}}, "sweep.missing[1]", "0.9"),
    ({"data": {**BASE["data"], "missing": None}, "sweep": {"missing": [0.0, 0.2]},
      "methods": [{"method": "vb", "prior": {}}]}, "methods[0]", "does not say what to do"),
])
def test_config_errors_name_the_key_and_the_fix(changes, where, text):
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(**changes))
    message = str(caught.value)
    assert where in message and text in message, message


def test_no_handling_needed_without_removed_entries():
    config = parse_config(_config(data={**BASE["data"], "missing": 0.0}, methods=[{"method": "kmeans"}]))
    assert config.methods[0].missing is None


def test_the_shipped_config_runs_at_reduced_size(tmp_path):
    run_experiment(CONFIG, tmp_path / "out", smoke=True, quiet=True)
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(rows) == 12 and all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    by = {(row["method"], row["cell"]): row for row in rows}
    cells = sorted({row["cell"] for row in rows})
    for method in ("EM", "VB", "SVI"):
        complete = [by[(f"{method}-{how}", cells[0])] for how in ("marginalize", "mean-imputed")]
        # nothing removed: the two handlings are the same fit
        assert complete[0]["means_rmse"] == complete[1]["means_rmse"] != ""
        removed = [by[(f"{method}-{how}", cells[1])] for how in ("marginalize", "mean-imputed")]
        # both scored by the observed-data log-likelihood of the same data
        assert all(float(row["log_likelihood_per_point"]) < 0 for row in removed)
    em = [by[(f"EM-{how}", cells[1])] for how in ("marginalize", "mean-imputed")]
    assert float(em[0]["log_likelihood_per_point"]) > float(em[1]["log_likelihood_per_point"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| missing |" in report and "error_vs_missing_random4d.png" in report
    assert "could not be drawn" not in report
