"""A sampler that did not explore is visible in every output of an experiment: the results table
(``problems``, ``max_r_hat`` NaN for a stuck chain, the converged cell), the report's Findings (a
loud line naming the method, the cell and the failed checks) and the posterior figure's panel."""

from __future__ import annotations

import math

import pytest
import torch

from mixtures.experiment import read_results, run_experiment
from mixtures.experiment.report.figures.posterior import invalid_note, panel_title
from mixtures.experiment.report.tables import cell_value
from mixtures.inference.pyro import nuts

CONFIG = """\
name: stuck
data: [{name: s4, kind: synthetic, truth: seed004, n: 40, n_test: 50, seed: 1}]
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 30}}
  - {name: NUTS, method: nuts, prior: {},
     options: {warmup: 4, num_samples: 6, num_chains: 2, chain_processes: 1, max_tree_depth: 2, warn: false}}
seeds: [0]
metrics: {kl_samples: 50}
output: {figures: [posterior]}
"""


@pytest.fixture(scope="module")
def stuck_run(tmp_path_factory):
    """A tiny run whose NUTS chains are made to look stuck: every draw divergent and the draws'
    log-likelihood constant (its R-hat undefined), as the JIT run of issue #15 was."""
    original = nuts._diagnostics

    def stuck(chains, grouped, fixed, invariants, pairs):
        out = original(chains, grouped, fixed, invariants, pairs)
        out["invariant_r_hat"]["log_likelihood"] = torch.full_like(out["invariant_r_hat"]["log_likelihood"],
                                                                   math.nan)
        out["divergences"] = [list(range(6)) for _ in chains]
        out["num_divergences"] = 6 * len(chains)
        return out

    root = tmp_path_factory.mktemp("stuck")
    (root / "c.yaml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nuts, "_diagnostics", stuck)
        return run_experiment(root / "c.yaml", root / "run", quiet=True)


def test_results_csv_names_the_problems_and_a_stuck_r_hat_is_nan_not_blank(stuck_run):
    rows = {r["method"]: r for r in read_results(stuck_run / "results.csv")}
    row = rows["NUTS"]
    assert row["status"] == "ok" and row["converged"] == "false"
    assert "12 of 12 post-warmup transitions diverged" in row["problems"]
    assert "log_likelihood (label-invariant): an entry never changed" in row["problems"]
    assert math.isnan(float(row["max_r_hat"]))  # "nan", not ""
    assert rows["EM"]["problems"] == ""


def test_report_findings_and_table_say_invalid(stuck_run):
    report = (stuck_run / "report.md").read_text()
    findings = report.split("## Findings")[1].split("\n## ")[0]
    line = next(x for x in findings.splitlines() if "NUTS" in x)
    assert line.startswith("- **INVALID: NUTS did not explore** (s4, K=2, full, init kmeans, seed 0): 12 of 12 ")
    assert "R-hat undefined" in line
    table = report.split("## Results by method")[1].split("\n## ")[0]
    nuts_row = next(x for x in table.splitlines() if "| NUTS |" in x)
    assert "0/1 (1 INVALID)" in nuts_row and "undefined (stuck)" in nuts_row
    assert "INVALID: a sampler that did not explore" in table
    assert "**INVALID: NUTS**" in report.split("## Figures")[1]  # the posterior figure's caption


def test_posterior_panel_is_marked_invalid():
    row = {"problems": "12 of 12 post-warmup transitions diverged (chain 0: 6, chain 1: 6): the draws near them "
                       "are biased; raise target_accept_prob; weights: never changed", "max_r_hat": math.nan,
           "expected_components": 2.0}
    assert panel_title("NUTS", row) == "NUTS (INVALID), E[#w>1%] = 2.00, R̂ undefined (stuck)"
    note = invalid_note(row)
    assert note.startswith("INVALID: 12 of 12 post-warmup transitions diverged") and len(note) <= 99
    assert invalid_note({"problems": None}) is None and panel_title("VB", {"max_r_hat": None}) == "VB"
    assert cell_value({"max_r_hat": 1.0042}, "max_r_hat") == "1.004"
    assert cell_value({"max_r_hat": None}, "max_r_hat") == "–"
