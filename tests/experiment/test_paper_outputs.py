"""Paper-ready report outputs: bands across seeds equal numpy's quantiles, Findings name a winner only when the
paired interval across seeds excludes 0, every table as CSV and booktabs LaTeX, every figure as PNG, PDF and SVG."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from mixtures.experiment.report.comparison import compare, paired_difference
from mixtures.experiment.report.exports import Table, latex_escape, write_tables
from mixtures.experiment.report.findings import one_point
from mixtures.plot.bands import band_quantiles, seed_bands, step_values

# -- bands ---------------------------------------------------------------------------------------------------------


def test_bands_are_numpy_quantiles_of_the_curves_held_after_they_end():
    rng = np.random.default_rng(0)
    grid = np.arange(8.0)
    curves, expected = [], []
    for length in (3, 5, 8, 8, 6, 4, 7, 8, 2, 5, 8, 3):  # 12 seeds: the 10-90 % band
        y = np.cumsum(rng.random(length))
        curves.append((np.arange(length, dtype=float), y))
        expected.append(np.concatenate([y, np.full(8 - length, y[-1])]))  # a stopped fit keeps its value
    median, low, high = seed_bands(curves, grid)
    expected = np.array(expected)
    np.testing.assert_array_equal(median, np.quantile(expected, 0.5, axis=0))
    np.testing.assert_array_equal(low, np.quantile(expected, 0.1, axis=0))
    np.testing.assert_array_equal(high, np.quantile(expected, 0.9, axis=0))
    few = seed_bands(curves[:3], grid)  # below ten seeds: min-max
    np.testing.assert_array_equal(few[1], expected[:3].min(0))
    np.testing.assert_array_equal(few[2], expected[:3].max(0))
    assert band_quantiles(9) == (0.0, 1.0) and band_quantiles(10) == (0.1, 0.9)


def test_step_values_read_the_last_value_at_or_before_each_point():
    x, y = np.array([0.0, 0.5, 2.0]), np.array([1.0, np.nan, 3.0])
    out = step_values(x, y, np.array([-1.0, 0.0, 1.9, 2.0, 9.0]))
    np.testing.assert_array_equal(out, [np.nan, 1.0, 1.0, 3.0, 3.0])


# -- Findings with uncertainty ---------------------------------------------------------------------------------------
# Student t quantile with 2 degrees of freedom in closed form: t_p = (2p - 1) / sqrt(2 p (1 - p))
T_975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)


def test_paired_difference_is_the_t_interval_by_hand():
    d = paired_difference({0: 1.2, 1: 1.31, 2: 1.19}, {0: 1.0, 1: 1.1, 2: 1.0}, "B", 1.0)
    diffs = np.array([1.2 - 1.0, 1.31 - 1.1, 1.19 - 1.0])
    half = T_975_2 * diffs.std(ddof=1) / math.sqrt(3)
    assert d.n_seeds == 3 and d.mean == pytest.approx(diffs.mean(), abs=1e-15)
    assert (d.low, d.high) == pytest.approx((diffs.mean() - half, diffs.mean() + half), abs=1e-14)


LL = "log_likelihood_per_point"


def test_a_clear_winner_is_named_with_its_intervals():
    values = {"EM": {LL: {0: -1.0, 1: -1.1, 2: -1.05}}, "SVI": {LL: {0: -1.2, 1: -1.31, 2: -1.24}}}
    found = compare({m: v[LL] for m, v in values.items()}, "max", 1e-5)
    assert found.winner == "EM"
    sentence = one_point(values, selection=True)[0]
    assert sentence.startswith("EM reaches the highest final log-likelihood per point: -1.05 nats per point, ahead of "
                               "SVI by 0.2 [")
    assert "95% t intervals of the paired differences over 3 seeds" in sentence


def test_a_tie_within_the_interval_names_no_winner():
    # SVI is better at two seeds, worse at one: the mean favours EM, the interval straddles 0
    values = {"EM": {LL: {0: -1.0, 1: -1.1, 2: -1.05}}, "SVI": {LL: {0: -0.99, 1: -1.09, 2: -1.3}}}
    found = compare({m: v[LL] for m, v in values.items()}, "max", 1e-5)
    assert found.best == "EM" and found.winner is None and found.differences[0].low < 0 < found.differences[0].high
    sentence = one_point(values, selection=True)[0]
    assert sentence.startswith("EM and SVI are indistinguishable on the highest final log-likelihood per point at 3 "
                               "seeds") and " reaches " not in sentence.split(":")[0]
    # identical fits (the same optimum): a zero-width interval at 0 is a tie too
    same = {"EM": {LL: {0: -1.0, 1: -1.1}}, "MAP": {LL: {0: -1.0, 1: -1.1}}}
    assert compare({m: v[LL] for m, v in same.items()}, "max", 1e-5).winner is None
    # a consistent difference below the rounding tolerance is no win
    tiny = {"EM": {0: -1.0, 1: -1.1, 2: -1.2}, "MAP": {0: -1.0 - 1e-7, 1: -1.1 - 1.1e-7, 2: -1.2 - 1e-7}}
    assert compare(tiny, "max", 1e-5).winner is None and compare(tiny, "max", 0.0).winner == "EM"


def test_one_seed_names_no_winner():
    values = {"EM": {LL: {0: -1.0}}, "SVI": {LL: {0: -1.2}}}
    assert compare({m: v[LL] for m, v in values.items()}, "max", 1e-5).winner is None
    sentence = one_point(values, selection=True)[0]
    assert sentence.startswith("With one seed no winner is named for the highest final log-likelihood per point")


def test_lower_is_better_columns_compare_the_other_way():
    found = compare({"A": {0: 1.0, 1: 1.1, 2: 1.2}, "B": {0: 2.0, 1: 2.2, 2: 2.1}}, "min")
    assert found.best == "A" and found.winner == "A" and found.differences[0].mean == pytest.approx(1.0)


# -- tables ----------------------------------------------------------------------------------------------------------


def test_tables_are_written_as_csv_and_booktabs_latex(tmp_path):
    table = Table("summary", ["dataset", "method", "log-lik/pt", "ELBO/pt"],
                  [["old_faithful", "EM & co", "-4.15538", "–"], ["seed004", "k_means", "1.5e-06", "2"]],
                  "Results by 100% method").narrow(["ELBO/pt"])
    csv_path, tex_path = write_tables(tmp_path, [table])
    assert csv_path == tmp_path / "tables" / "summary.csv" and tex_path == tmp_path / "tables" / "summary.tex"
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert rows == [["dataset", "method", "log-lik/pt", "ELBO/pt"], ["old_faithful", "EM & co", "-4.15538", ""],
                    ["seed004", "k_means", "1.5e-06", "2"]]  # every column, blanks for none
    tex = tex_path.read_text().splitlines()
    body = tex[tex.index(r"\midrule") + 1:tex.index(r"\bottomrule")]
    assert body == [r"old\_faithful & EM \& co & $-$4.15538 \\", r"seed004 & k\_means & 1.5e-06 \\"]
    assert tex[tex.index(r"\toprule") + 1] == r"dataset & method & log-lik/pt \\"  # the shown columns
    assert r"\begin{tabular}{llr}" in tex and r"\caption{Results by 100\% method}" in tex
    assert latex_escape("a~b^c\\d") == r"a\textasciitilde{}b\textasciicircum{}c\textbackslash{}d"


# -- a run's files ---------------------------------------------------------------------------------------------------
RUN = """name: paper
data: [{name: old_faithful, kind: old_faithful}]
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 30}}
  - {name: k-means, method: kmeans, options: {max_iter: 30}}
inits: [random_from_data]
seeds: [0, 1, 2]
output: {figures: [traces]}
"""


def test_a_run_writes_pdf_svg_png_figures_and_csv_latex_tables(tmp_path):
    from mixtures.experiment import read_results, run_experiment

    (tmp_path / "c.yaml").write_text(RUN)
    out = run_experiment(tmp_path / "c.yaml", tmp_path / "run", quiet=True)
    figure = out / "figures" / "traces_old_faithful"
    assert figure.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    svg = figure.with_suffix(".svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "EM" in svg  # text kept as text (svg.fonttype none)
    report = (out / "report.md").read_text()
    assert "median and min–max over 3 seeds" in report and "traces_old_faithful.pdf" in report
    rows = list(csv.DictReader(io.StringIO((out / "tables" / "summary.csv").read_text())))
    assert [r["method"] for r in rows] == ["EM", "k-means"] and "ELBO/pt" in rows[0]
    best = max((r for r in read_results(out / "results.csv") if r["method"] == "EM"),
               key=lambda r: float(r["log_likelihood"]))
    assert rows[0]["best seed"] == best["seed"]
    tex = (out / "tables" / "summary.tex").read_text().splitlines()
    body = tex[tex.index(r"\midrule") + 1:tex.index(r"\bottomrule")]
    assert [line.split(" & ")[1] for line in body] == ["EM", "k-means"]
    assert "ELBO/pt" not in tex[tex.index(r"\toprule") + 1]  # LaTeX: the narrow columns of the report
    findings = report.split("## Findings")[1].split("\n## ")[0]
    assert "t intervals of the paired differences over 3 seeds" in findings or "indistinguishable" in findings
