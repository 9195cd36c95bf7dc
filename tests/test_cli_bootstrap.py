"""``mixtures bootstrap``: SEs of a fit and the bootstrap LRT from the command line."""

from __future__ import annotations

import csv

import pytest

import mixtures
from mixtures.cli import main


def test_bootstrap_command_prints_and_writes_the_tidy_table(tmp_path, capsys):
    out = tmp_path / "se.csv"
    assert main(["bootstrap", "old_faithful", "--k", "2", "--covariance-type", "EEE", "--n-boot", "5",
                 "--kind", "parametric", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parametric bootstrap, 5 of 5 replicates fitted" in printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 + 2 * 2 + 2 * 3 and rows[0]["parameter"] == "weight"
    # the same numbers as the library's
    X = mixtures.data.old_faithful()
    fitted = mixtures.fit(mixtures.GaussianMixture(2, "EEE"), X, "em", init="hc", rtol=1e-5, max_iter=1000)
    expected = mixtures.bootstrap(fitted, X, "parametric", n_boot=5, seed=0, processes=1).table()
    assert [float(r["se"]) for r in rows] == [r["se"] for r in expected]


def test_bootstrap_lrt_command(capsys):
    assert main(["bootstrap", "old_faithful", "--lrt", "--covariance-type", "EEE", "--k-max", "1",
                 "--n-boot", "3"]) == 0
    printed = capsys.readouterr().out
    assert "1 vs 2" in printed and "p-value" in printed


@pytest.mark.parametrize("argv, message", [
    (["--lrt", "--n-boot", "0"], "--n-boot: must be at least 1"),
    ([], "--k: is required without --lrt"),
    (["--lrt", "--k", "2"], "--k: does not apply to --lrt"),
    (["--k", "2", "--k-max", "3"], "--k-max: applies to --lrt only"),
    (["--lrt", "--k-max", "400", "--n-boot", "2"], "k_max=400 needs K + 1 = 401 components"),
    (["--k", "2", "--level", "2"], "--level: must be strictly between 0 and 1"),
])
def test_bootstrap_command_bad_input(argv, message, capsys):
    assert main(["bootstrap", "old_faithful", *argv]) == 2
    assert message in capsys.readouterr().err
