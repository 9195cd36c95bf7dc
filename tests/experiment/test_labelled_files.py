"""Configs on real labelled files: ``kind: file`` with columns, a label column, an index column and
standardization; truth metrics (ARI, NMI, aligned confusion) in results.csv and report.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from labelled import iris_like, write_iris_csv

from mixtures.evaluation import adjusted_rand_index, aligned_confusion, normalized_mutual_info
from mixtures.experiment import (
    ConfigError,
    DataCache,
    expand_tasks,
    load_config,
    params_from_record,
    read_record,
    read_results,
    run_experiment,
)
from mixtures.experiment.report.labels import parse_confusion

CONFIG = """\
name: iris
data: {kind: file, path: iris.csv, label_column: species}
model: {n_components: 3, covariance_type: diag}
methods: [em, {method: vb, prior: {}}]
seeds: [0, 1]
output: {figures: none}
"""


def _setup(tmp_path: Path, text: str = CONFIG) -> Path:
    X, species = iris_like(n_per_class=10)
    write_iris_csv(tmp_path / "iris.csv", X, species)
    (tmp_path / "iris.yaml").write_text(text)
    return tmp_path / "iris.yaml"


def test_a_labelled_csv_gives_ari_nmi_and_confusion_in_results_and_report(tmp_path):
    out = run_experiment(_setup(tmp_path), tmp_path / "run", quiet=True)
    config = load_config(out / "config.yaml")
    tasks = expand_tasks(config)
    bundle = DataCache().get(tasks[0])
    assert bundle.truth is None and bundle.label_names is not None and bundle.X.shape == (30, 4)
    rows = read_results(out / "results.csv")
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows)
    for task, row in zip(tasks, rows):
        params = params_from_record(read_record(out, task))
        predicted = params.joint_log_prob(bundle.X).argmax(-1)
        assert float(row["ari"]) == adjusted_rand_index(bundle.labels, predicted)
        assert float(row["nmi"]) == normalized_mutual_info(bundle.labels, predicted)
        confusion = aligned_confusion(bundle.labels, predicted)
        assert float(row["accuracy"]) == confusion["accuracy"]
        parsed = parse_confusion(row["confusion"])
        assert parsed["table"] == confusion["table"].tolist() and parsed["clusters"] == confusion["clusters"].tolist()
        assert row["kl_truth"] == "" and row["means_rmse"] == ""  # no true parameters for a file
    report = (out / "report.md").read_text()
    assert "## Against the labels" in report and "**iris, em**" in report and "**iris, vb**" in report
    assert "| class | component" in report and f"| {bundle.label_names[0]} |" in report
    results = report.split("## Results by method")[1].split("##")[0]
    assert "| ARI | NMI |" in results and "KL to truth" not in results and "means RMSE" not in results


def test_file_options_reach_the_data(tmp_path):
    text = CONFIG.replace("{kind: file, path: iris.csv, label_column: species}",
                          "{kind: file, path: iris.csv, label_column: 5, columns: [petal_length, petal_width], "
                          "index_column: 0, header: true, standardize: true}")
    config = load_config(_setup(tmp_path, text))
    bundle = DataCache().get(expand_tasks(config)[0])
    assert bundle.feature_names == ("petal_length", "petal_width")
    torch.testing.assert_close(bundle.X.mean(0), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(bundle.X.std(0), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-14)


@pytest.mark.parametrize(("entry", "message"), [
    ("label_column: Species", "label column 'Species' is not a column"),
    ("label_column: -1", "data.label_column: must be a column name or a 0-based position"),
    ("columns: []", "data.columns: must be a non-empty list"),
    ("header: maybe", "data.header"),
    ("format: xlsx", "data.format"),
    ("labels: species", "data.labels"),
])
def test_bad_file_options_are_config_errors_naming_the_key(tmp_path, entry, message):
    text = CONFIG.replace("label_column: species}", entry + "}")
    with pytest.raises(ConfigError, match=message):
        config = load_config(_setup(tmp_path, text))
        DataCache(str(tmp_path / "iris.yaml")).get(expand_tasks(config)[0])


def test_a_text_column_without_a_label_column_names_it(tmp_path):
    config = load_config(_setup(tmp_path, CONFIG.replace(", label_column: species", "")))
    with pytest.raises(ConfigError, match=r"column 'species' \(position 5\): '\w+' is not a number; if it holds "
                                          r"class labels, make it the label column \(--label-column species, or "
                                          r"label_column: species"):
        DataCache("iris.yaml").get(expand_tasks(config)[0])


def test_the_cli_takes_a_labelled_csv_to_a_report_comparing_em_vb_svi_and_nuts(tmp_path):
    """The issue's path for a new user: a labelled CSV, a config in the README's form, `mixtures run`."""
    from mixtures.cli import main

    config = _setup(tmp_path, """\
name: iris-four-ways
data: {name: iris, kind: file, path: iris.csv, label_column: species, standardize: true}
model: {n_components: 3, covariance_type: diag}
methods:
  - em
  - {method: vb, prior: {}}
  - {method: svi, prior: {}, options: {guide: normal, num_steps: 60, posterior_samples: 50}}
  - {method: nuts, prior: {}, options: {warmup: 15, num_samples: 15, num_chains: 1, progress_bar: false}}
seeds: [0]
output: {figures: none}
""")
    assert main(["run", str(config), "--quiet", "--out", str(tmp_path / "run")]) == 0
    rows = read_results(tmp_path / "run" / "results.csv")
    assert [row["method"] for row in rows] == ["em", "vb", "svi", "nuts"]
    assert all(row["status"] == "ok" and 0 <= float(row["ari"]) <= 1 for row in rows)
    report = (tmp_path / "run" / "report.md").read_text()
    for method in ("em", "vb", "svi", "nuts"):
        assert f"**iris, {method}**" in report  # its confusion table against the labels
    assert "INVALID" in report  # 15 draws of NUTS cannot pass its checks, and the report says so
