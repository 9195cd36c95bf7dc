"""``mixtures fit``/``select`` on real data files (columns, labels, index columns) and what ``--out DIR``
writes: parameters, assignments, the saved result and the selection table, all checked against the API."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from labelled import iris_like, write_iris_csv

import mixtures
from mixtures.cli import main
from mixtures.datafile import read_table
from mixtures.evaluation import adjusted_rand_index, aligned_confusion, normalized_mutual_info
from mixtures.experiment.selection import select_models
from mixtures.io import params_from_state, state_from_json


@pytest.fixture
def iris_csv(tmp_path):
    X, species = iris_like(n_per_class=10)
    path = tmp_path / "iris.csv"
    write_iris_csv(path, X, species)
    return path


def test_fit_with_a_label_column_prints_agreement_and_writes_outputs(tmp_path, iris_csv, capsys):
    out = tmp_path / "fit"
    assert main(["fit", str(iris_csv), "--k", "3", "--method", "em", "--covariance-type", "diag",
                 "--label-column", "species", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = read_table(iris_csv, label_column="species")
    result = mixtures.fit(mixtures.GaussianMixture(3, "diag"), table.X, "em", init="kmeans", seed=0)
    predicted = result.predict(table.X)
    ari, nmi = adjusted_rand_index(table.labels, predicted), normalized_mutual_info(table.labels, predicted)
    assert "30 points, 4 feature(s)" in printed
    assert f"ARI {ari:.6g}   NMI {nmi:.6g}" in printed
    confusion = aligned_confusion(table.labels, predicted)
    first_row = "| setosa | " if table.label_names[0] == "setosa" else f"| {table.label_names[0]} | "
    assert first_row + " | ".join(str(v) for v in confusion["table"][0]) + " |" in printed

    document = json.loads((out / "params.json").read_text())
    params = params_from_state(state_from_json(document["state"]))
    for name in ("weights", "locs", "covariances"):  # bit-exact
        assert torch.equal(getattr(params, name), getattr(result.params, name))
    assert document["weights"] == result.params.weights.tolist() and document["feature_names"][0] == "sepal_length"
    assert document["summary"]["ari"] == ari and document["summary"]["converged"] == result.converged

    with open(out / "assignments.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    resp = result.predict_proba(table.X)
    stored = torch.tensor([[float(r[f"resp_{k}"]) for k in range(3)] for r in rows], dtype=torch.float64)
    assert torch.equal(stored, resp)  # full precision
    assert [int(r["component"]) for r in rows] == predicted.tolist()
    assert [float(r["uncertainty"]) for r in rows] == (1 - resp.max(-1).values).tolist()
    assert [r["label"] for r in rows] == [table.label_names[c] for c in table.labels.tolist()]
    loaded = mixtures.io.load(out / "result.pt")
    assert torch.equal(loaded.params.locs, result.params.locs)


def test_fit_on_a_text_column_is_one_line_naming_it(iris_csv, capsys):
    assert main(["fit", str(iris_csv), "--k", "3", "--method", "em"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "column 'species'" in err and "--label-column species" in err
    assert main(["fit", str(iris_csv), "--k", "3", "--method", "em", "--label-column", "Species"]) == 2
    assert "label column 'Species' is not a column" in capsys.readouterr().err
    assert main(["fit", "old_faithful", "--k", "2", "--method", "em", "--label-column", "x"]) == 2
    assert "--label-column" in capsys.readouterr().err


def test_fit_chooses_columns_by_name_and_position(iris_csv, capsys):
    assert main(["fit", str(iris_csv), "--k", "2", "--method", "em", "--columns", "petal_length,4",
                 "--label-column", "5", "--standardize"]) == 0
    printed = capsys.readouterr().out
    assert "30 points, 2 feature(s)" in printed and "against the labels in 'species'" in printed


def test_fit_out_on_a_file_is_refused_before_fitting(tmp_path, iris_csv, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["fit", str(iris_csv), "--k", "3", "--method", "em", "--label-column", "species",
                 "--out", str(tmp_path / "taken")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_select_out_dir_writes_the_full_table_at_full_precision(tmp_path, iris_csv, capsys):
    out = tmp_path / "sel"
    assert main(["select", str(iris_csv), "--k-max", "3", "--covariance-types", "diag", "spherical",
                 "--label-column", "species", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    table = read_table(iris_csv, label_column="species")
    rows = select_models(table.X, 3, ["diag", "spherical"], labels=table.labels)  # select's defaults
    with open(out / "selection.csv", newline="") as stream:
        stored = list(csv.DictReader(stream))
    assert len(stored) == len(rows) == 6
    for row, line in zip(rows, stored):
        assert (int(line["n_components"]), line["covariance_type"]) == (row["n_components"], row["covariance_type"])
        for column in ("log_likelihood", "bic", "aic", "icl", "ari", "nmi"):
            assert float(line[column]) == row[column]  # the repr round-trips exactly
    assert (out / "bic.png").is_file() and "against 'species'" in printed
    assert main(["select", str(iris_csv), "--k-max", "1", "--label-column", "species", "--quiet",
                 "--out", str(tmp_path / "only.png")]) == 0
    assert (tmp_path / "only.png").is_file() and not (tmp_path / "selection.csv").exists()
