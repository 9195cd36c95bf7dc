"""Sample weights from a data file: a config's ``weight_column`` and ``mixtures fit --weights COLUMN`` pass the
column as ``sample_weight``; integer weights give exactly the fit of the file with rows repeated."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch

import mixtures
from mixtures.cli import main
from mixtures.datafile import read_table
from mixtures.errors import DataError
from mixtures.experiment import run_experiment
from mixtures.experiment.config.errors import ConfigError
from mixtures.experiment.config.loading import parse_config
from mixtures.experiment.datasets import make_data


@pytest.fixture
def files(tmp_path):
    """A CSV with integer weights 1-3 in a column ``w`` and the same data with each row repeated ``w`` times."""
    generator = torch.Generator().manual_seed(0)
    X = torch.cat([torch.randn(20, 2, generator=generator, dtype=torch.float64) - 2,
                   torch.randn(20, 2, generator=generator, dtype=torch.float64) + 2])
    weights = torch.randint(1, 4, (40,), generator=generator)
    weighted, repeated = tmp_path / "weighted.csv", tmp_path / "repeated.csv"
    weighted.write_text("x,w,y\n" + "".join(f"{x!r},{int(w)},{y!r}\n" for (x, y), w in zip(X.tolist(), weights)))
    rows = X.repeat_interleave(weights, 0).tolist()
    repeated.write_text("x,y\n" + "".join(f"{x!r},{y!r}\n" for x, y in rows))
    return weighted, repeated, weights


def test_the_weight_column_is_read_and_left_out_of_the_features(files):
    weighted, repeated, weights = files
    table = read_table(weighted, weight_column="w")
    assert table.feature_names == ("x", "y") and torch.equal(table.weights, weights.double())
    assert torch.equal(table.X.repeat_interleave(weights, 0), read_table(repeated).X)
    assert torch.equal(read_table(weighted, weight_column=1).weights, table.weights)  # by position
    assert read_table(weighted).X.shape == (40, 3)  # without it, the column is a feature


@pytest.mark.parametrize("cell, text", [("-1", "weight '-1' is negative"), ("nan", "'nan' is not a finite number"),
                                        ("", "'' is not a finite number"), ("many", "'many' is not a finite")])
def test_bad_weights_name_the_line_and_the_fix(files, cell, text):
    weighted = files[0]
    lines = weighted.read_text().splitlines()
    x, _, y = lines[3].split(",")
    lines[3] = f"{x},{cell},{y}"
    weighted.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="weight column 'w'.*line 4") as caught:
        read_table(weighted, weight_column="w")
    assert text in str(caught.value)


def test_a_missing_weight_column_is_named(files):
    with pytest.raises(DataError, match="weight column 'weight' is not a column.*'x', 'w', 'y'"):
        read_table(files[0], weight_column="weight")
    with pytest.raises(DataError, match="both the weight column and the label column"):
        read_table(files[0], weight_column="w", label_column="w")
    assert main(["fit", str(files[0]), "--k", "2", "--method", "em", "--weights", "weight"]) != 0


def _cli_fit(path, out, capsys, *extra) -> dict:
    assert main(["fit", str(path), "--k", "2", "--method", "em", "-o", "tol=1e-12", "-o", "max_iter=300",
                 "--out", str(out), *extra]) == 0
    assert re.search(r"log-likelihood\s+-\d", capsys.readouterr().out)
    return json.loads((out / "params.json").read_text())


def test_cli_weights_equal_repeated_rows(files, capsys, tmp_path):
    weighted, repeated, _ = files
    by_weight = _cli_fit(weighted, tmp_path / "w", capsys, "--weights", "w")
    by_rows = _cli_fit(repeated, tmp_path / "r", capsys)
    assert by_weight["feature_names"] == ["x", "y"]
    # each file has its own k-means start, so the two runs meet only at the optimum: the log-likelihood agrees to
    # the last digits, the parameters (the likelihood is flat there) to ~1e-6 ...
    for key in ("log_likelihood", "bic", "aic"):  # printed and stored as the data with rows repeated
        assert by_weight["summary"][key] == pytest.approx(by_rows["summary"][key], rel=1e-12)
    assert by_weight["summary"]["icl"] == pytest.approx(by_rows["summary"]["icl"], rel=1e-6)
    for key in ("weights", "means", "covariances"):
        torch.testing.assert_close(torch.tensor(by_weight[key], dtype=torch.float64),
                                   torch.tensor(by_rows[key], dtype=torch.float64), rtol=0, atol=1e-5)
    # ... and from the weighted run's own start, EM on the repeated rows gives its parameters to 1e-10
    result = mixtures.io.load(tmp_path / "w" / "result.pt")
    again = mixtures.fit(mixtures.GaussianMixture(2, "full"), read_table(repeated).X, "em", init=result.init,
                         tol=1e-12, max_iter=300)
    for name in ("weights", "locs", "covariances"):
        torch.testing.assert_close(getattr(again.params, name), getattr(result.params, name), rtol=0, atol=1e-10)


def test_config_weight_column_equals_repeated_rows(files, tmp_path):
    weighted, repeated, weights = files
    raw = {"name": "weights",
           "data": [{"name": "weighted", "kind": "file", "path": str(weighted), "weight_column": "w"},
                    {"name": "repeated", "kind": "file", "path": str(repeated)}],
           "model": {"n_components": 2}, "methods": [{"method": "em", "options": {"tol": 1e-12, "max_iter": 200}}],
           "output": {"figures": "none"}}
    run_experiment(parse_config(raw), tmp_path / "out", quiet=True)
    rows = {row["dataset"]: row for row in csv.DictReader((tmp_path / "out" / "results.csv").open())}
    assert rows["weighted"]["n"] == "40" and rows["repeated"]["n"] == str(int(weights.sum()))
    # scored as the data with rows repeated; each file's own start, so the parameters agree to ~1e-6 and the
    # likelihood (flat at the optimum) to ~1e-12; ICL's responsibilities move with the parameters
    for column, rel in (("log_likelihood", 1e-11), ("log_likelihood_per_point", 1e-11), ("bic", 1e-11),
                        ("aic", 1e-11), ("mclust_bic", 1e-6), ("icl", 1e-6)):
        assert float(rows["weighted"][column]) == pytest.approx(float(rows["repeated"][column]), rel=rel)
    with pytest.raises(ConfigError, match="weight_column.*does not apply to kind 'synthetic'"):
        parse_config({**raw, "data": {"kind": "synthetic", "truth": "seed004", "n": 50, "weight_column": "w"}})
    with pytest.raises(ConfigError, match="weight column 'nope' is not a column"):
        run_experiment(parse_config({**raw, "data": {**raw["data"][0], "weight_column": "nope"}}), tmp_path / "bad",
                       quiet=True)


def test_config_weight_column_with_missing_entries_equals_repeated_rows(files, tmp_path):
    """A weighted file with entries removed (``missing``) and marginalized: the fit's log-likelihood is that of
    the NaN'd data with rows repeated, fitted by EM without weights (the optimum both reach)."""
    weighted = files[0]
    raw = {"name": "weighted_missing",
           "data": {"name": "weighted", "kind": "file", "path": str(weighted), "weight_column": "w", "missing": 0.2},
           "model": {"n_components": 2},
           "methods": [{"method": "em", "missing": "marginalize", "options": {"tol": 1e-13, "max_iter": 500}}],
           "output": {"figures": "none"}}
    config = parse_config(raw)
    run_experiment(config, tmp_path / "out", quiet=True)
    row = next(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert row["status"] == "ok" and row["n"] == "40"
    bundle = make_data(config.data[0], None, None)
    assert bool(torch.isnan(bundle.X).any()) and torch.equal(bundle.sample_weight, files[2].double())
    repeated = bundle.X.repeat_interleave(files[2], 0)
    by_rows = mixtures.fit(mixtures.GaussianMixture(2, "full"), repeated, "em", missing="marginalize", tol=1e-13,
                           max_iter=500)
    assert float(row["log_likelihood"]) == pytest.approx(by_rows.log_likelihood, rel=1e-10)
