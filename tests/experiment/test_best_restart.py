"""Results tables report each cell's best restart (as a fit with several starts keeps it) and the spread
across seeds separately; seeds that draw fresh data (resample) are still averaged, mean ± sd."""

from __future__ import annotations

import numpy as np

from mixtures.experiment import read_results, run_experiment
from mixtures.experiment.report.formatting import format_number
from mixtures.experiment.report.tables import best_restart, spread

CONFIG = """\
name: restarts
data: {kind: old_faithful}
model: {n_components: 3, covariance_type: full}
methods: [{name: EM, method: em, options: {max_iter: 4}}]
inits: [random]
seeds: [0, 1, 2, 3]
output: {figures: none}
"""


def _table(report: str) -> list[list[str]]:
    section = report.split("## Results by method")[1].split("## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_best_restart_skips_singular_fits_and_takes_the_highest_log_likelihood():
    rows = [{"log_likelihood": ll, "singular": singular, "seed": seed}
            for seed, (ll, singular) in enumerate([(-10.0, False), (-5.0, True), (-7.0, False), (None, False)])]
    assert best_restart(rows)["seed"] == 2
    assert best_restart([rows[1]])["seed"] == 1  # only singular ones: the best of them
    assert best_restart([rows[3]]) is None
    assert spread([3.0, 1.0, 2.0, None]) == "2 [1, 3]" and spread([]) == "–" and spread([1.5]) == "1.5"


def test_cells_are_the_best_restart_with_the_spread_beside_it(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    out = run_experiment(tmp_path / "c.yaml", tmp_path / "run", quiet=True)
    rows = read_results(out / "results.csv")
    log_liks = [float(r["log_likelihood"]) for r in rows]
    assert len(set(log_liks)) > 1  # the starts differ, or the test could not tell best from mean
    best = max((r for r in rows if r["singular"] == "false"), key=lambda r: float(r["log_likelihood"]))
    header, _, cells = _table((out / "report.md").read_text())
    cell = dict(zip(header, cells))
    assert cell["BIC"] == format_number(float(best["bic"]), 6)
    assert cell["BIC"] != format_number(float(np.mean([float(r["bic"]) for r in rows])), 6)
    assert cell["best seed"] == best["seed"] and cell["iterations"] == best["n_iter"]
    per_point = [float(r["log_likelihood_per_point"]) for r in rows]
    low, high = format_number(min(per_point), 6), format_number(max(per_point), 6)
    assert cell["log-lik/pt across seeds"] == f"{format_number(float(np.median(per_point)), 6)} [{low}, {high}]"
    assert "± " not in cell["BIC"] and "best restart" in (out / "report.md").read_text()


def test_replicates_on_fresh_data_are_averaged(tmp_path):
    text = CONFIG.replace("{kind: old_faithful}", "{name: s4, kind: synthetic, truth: seed004, n: 60, n_test: 50, "
                                                  "resample: true}").replace("n_components: 3", "n_components: 2")
    (tmp_path / "c.yaml").write_text(text + "metrics: {kl_samples: 20}\n")
    out = run_experiment(tmp_path / "c.yaml", tmp_path / "run", quiet=True)
    header, _, cells = _table((out / "report.md").read_text())
    assert "best seed" not in header and " ± " in dict(zip(header, cells))["BIC"]
    assert "Mean ± sd over seeds, each seed a fresh sample" in (out / "report.md").read_text()
