"""Multi-start selection (``starts="hc,kmeans++:R"``): every cell keeps its best final log-likelihood,
so no cell of the grid ends below the hc start (the hc-only selection's row), and k-means++ starts do
win some cells; ``--starts`` reaches it from the command line."""

from __future__ import annotations

import math

import pytest

from mixtures.cli import main
from mixtures.data import old_faithful
from mixtures.experiment.selection import parse_starts, select_models

STRUCTURES = ["EII", "VVE"]


@pytest.fixture(scope="module")
def grids():
    X = old_faithful()
    hc = select_models(X, 4, STRUCTURES, reg_covar=0.0)
    multi = select_models(X, 4, STRUCTURES, reg_covar=0.0, starts="hc,kmeans++:2", seed=0)
    return hc, multi


def test_no_cell_ends_below_the_hc_start(grids):
    hc, multi = grids
    assert len(hc) == len(multi) == 8
    improved = 0
    for alone, best in zip(hc, multi):
        assert (alone["covariance_type"], alone["n_components"]) == (best["covariance_type"], best["n_components"])
        assert best["status"] == alone["status"] == "ok" and not best["singular"]
        assert best["starts"] == 3
        # the hc start of the multi-start grid is the hc-only fit, bit for bit
        assert best["hc_log_likelihood"] == alone["log_likelihood"]
        assert best["log_likelihood"] >= alone["log_likelihood"]
        assert -best["bic"] <= -alone["bic"] or best["log_likelihood"] > alone["log_likelihood"]
        if best["init"] == "hc":
            assert best["log_likelihood"] == alone["log_likelihood"] and best["seed"] == 0
        else:
            improved += best["log_likelihood"] > alone["log_likelihood"] + 1e-6
    # the k-means++ starts matter somewhere (VVE,4: hc ends at -1125.05, a k-means++ start at -1119.50)
    assert improved >= 2
    vve4 = next(r for r in multi if r["covariance_type"] == "VVE" and r["n_components"] == 4)
    assert vve4["init"] == "kmeans++" and vve4["log_likelihood"] - vve4["hc_log_likelihood"] > 5


def test_parse_starts_and_its_errors():
    assert parse_starts("hc,kmeans++:5") == (("hc", 1), ("kmeans++", 5))
    assert parse_starts(["hc", ("kmeans", 2)]) == (("hc", 1), ("kmeans", 2))
    for bad, message in (("hc,kmeans+:3", r"unknown initializer 'kmeans\+'"), ("hc:x", "not an integer"),
                         ("kmeans++:0", "count >= 1"), ([], "at least one")):
        with pytest.raises(ValueError, match=message):
            parse_starts(bad)


def test_cli_starts(capsys, tmp_path):
    assert main(["select", "old_faithful", "--k-max", "2", "--covariance-types", "EII", "--starts",
                 "hc,kmeans++:2", "--quiet", "--out", str(tmp_path / "sel")]) == 0
    printed = capsys.readouterr().out
    assert "starts hc,kmeans++:2 per model" in printed
    header, *lines = (tmp_path / "sel" / "selection.csv").read_text().splitlines()
    columns = header.split(",")
    assert len(lines) == 2 and {"init", "hc_log_likelihood", "mclust_bic"} <= set(columns)
    for line in lines:
        row = dict(zip(columns, line.split(",")))
        assert row["starts"] == "3" and float(row["log_likelihood"]) >= float(row["hc_log_likelihood"])
        assert math.isfinite(float(row["mclust_bic"]))
    assert main(["select", "old_faithful", "--starts", "hc,nope:2", "--quiet"]) == 2
    assert "--starts" in capsys.readouterr().err
