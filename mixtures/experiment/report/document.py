"""``report.md``: the run in words, tables and figures."""

from __future__ import annotations

from pathlib import Path

from mixtures.experiment import rundir
from mixtures.experiment.provenance import header_lines
from mixtures.experiment.report.exports import Table, links, write_tables
from mixtures.experiment.report.figures import FigureSet
from mixtures.experiment.report.findings import findings
from mixtures.experiment.report.formatting import finite
from mixtures.experiment.report.labels import label_section
from mixtures.experiment.report.model_comparison import comparison_section
from mixtures.experiment.report.reference import bic_tables, reference_section
from mixtures.experiment.report.tables import (
    converged_cell,
    csv_only,
    failures_data,
    methods_section,
    model_selection,
    passes_tables,
    restarts_only,
    summary_data,
    summary_rows,
)
from mixtures.experiment.store import RunState, write_file


def write_report(state: RunState, figures: FigureSet) -> Path:
    """Write ``report.md`` and every table of it as CSV and LaTeX under ``tables/`` (atomically, stale tables
    removed); return the report's path."""
    tables: list[Table] = []
    sections = [_heading(state), _refitted(state), ["## Methods", "", methods_section(state), ""],
                _results(state, tables)]
    found = findings(state)
    if found:
        basis = ("Means over seeds (the table above shows each cell's best restart)." if restarts_only(state)
                 else "Read off the table above (means over seeds).")
        basis += (" Each comparison is the paired difference between two methods over the seeds they share (same "
                  "data and start), best minus other, with its 95% t interval; a winner is named only when every "
                  "interval lies beyond 0 (and the finding's rounding tolerance).")
        sections.append(["## Findings", "", basis, "", found, ""])
    sections.append(label_section(state, tables))
    sections.append(comparison_section(state, tables))
    selection = model_selection(state)
    if selection:
        sections.append(["## Model selection", "", selection, ""])
    sections += [bic_tables(state, tables), reference_section(state, tables)]
    passes = passes_tables(state)
    if passes:
        sections.append(["## Log-likelihood per data pass", "",
                         "Log-likelihood per point (exact, training data) at each method's last evaluation within the "
                         "given number of data passes; mean ± sd over seeds. Passes: see the passes figure.", ""]
                        + [line for intro, table in passes for line in (intro, "", table.markdown(), "", links(table),
                                                                         "")])
        tables += [table for _, table in passes]
    sections.append(_figures(state, figures))
    problems = failures_data(state)
    if problems is not None:
        sections.append(["## Failed fits", "", problems.markdown(), "", links(problems), ""])
        tables.append(problems)
    if figures.problems:
        sections.append(["## Figures that could not be drawn", ""] + [f"- {p}" for p in figures.problems] + [""])
    written = write_tables(state.out_dir, tables)
    rundir.remove_stale_figures(state.out_dir, {p.resolve() for p in written}, folder="tables")
    path = state.out_dir / "report.md"
    write_file(path, "\n".join(line for section in sections for line in section))
    return path


def _heading(state: RunState) -> list[str]:
    config, rows = state.config, state.rows()
    ok = [r for r in rows if r["status"] == "ok"]
    lines = [f"# {config.name}", ""]
    if config.header:
        lines += ["> " + line if line else ">" for line in config.header.splitlines()] + [""]
    if config.description:
        lines += [config.description.strip(), ""]
    mode = " in **smoke mode** (tiny sizes, few steps: not for conclusions)" if state.smoke else ""
    return lines + [
        f"Config: [`config.yaml`](config.yaml) (resolved from `{config.source}`){mode}. Per-fit rows: "
        "[`results.csv`](results.csv); traces: [`histories.csv`](histories.csv) (every fit's history in one long "
        "table) and `histories/` (one CSV per fit).", "",
        f"{len(rows)} fits of {len(state.tasks)}: {len(ok)} ok, {len(rows) - len(ok)} failed, "
        f"{sum(bool(r['singular']) for r in ok)} singular.", ""] + header_lines(state.provenance)


def _refitted(state: RunState) -> list[str]:
    """Stored fits this run did not reuse, and why (changed data, a damaged file...)."""
    if not state.notices:
        return []
    return (["## Refitted in this run", "",
             "Stored fits that were not reused, and why; each was fitted again and only the new fit appears below.",
             ""]
            + [f"- {notice}" for notice in state.notices] + [""])


def _results(state: RunState, tables: list[Table]) -> list[str]:
    has_truth = any(finite(r.get("means_rmse")) or finite(r.get("kl_truth")) for r in state.rows()
                    if r["status"] == "ok")
    has_labels = any(finite(r.get("ari")) for r in state.rows() if r["status"] == "ok")
    budgets = any("at budget" in converged_cell(state, label["method"], [r for r in rows if r["status"] == "ok"])
                  for label, rows in summary_rows(state))
    legend = ("Each cell's best restart (the seed with the highest log-likelihood among non-singular fits, as a fit "
              "with several starts keeps it; all its columns are that fit's), with the spread of log-lik/pt across "
              "seeds as median [min, max]" if restarts_only(state) else
              "Mean ± sd over seeds, each seed a fresh sample of the data (sd 0 when below the mean's last digit)")
    legend += (". log-lik/pt: final log p(X|θ) per point; "
              "ELBO/pt: the routine's final ELBO per point; KL gap/pt: log-lik − ELBO per point at the end (with a "
              "prior, log-lik + log prior − ELBO): KL(q ‖ p(Z|X,θ)) of the routine's q over the assignments; BIC lower "
              "is better (scikit-learn's sign); converged: fits that met their routine's stopping rule")
    if budgets:
        legend += ("; \"at budget\": fits that ran their whole step budget (max_iter or num_steps) instead, the normal "
                   "end of an SVI or MAP run given a fixed number of steps, not a failure")
    if any(r.get("problems") for r in state.rows() if r["status"] == "ok"):
        legend += ("; INVALID: a sampler that did not explore (divergences, a collapsed step size, R-hat or ESS "
                   "out of bounds: the Findings name the failed checks), whose numbers are not a posterior's")
    if has_truth:
        legend += ("; errors against the true parameters after matching components; KL to truth: KL(truth ‖ fit) by "
                   f"Monte Carlo with {state.config.metrics.kl_samples} draws of the truth per fit (the same draws for "
                   "every method of a cell, so differences between methods are not sampling noise of separate "
                   "draws), its Monte Carlo standard error (averaged over seeds when cells are means) in parentheses; "
                   "held-out LL/pt on an independent "
                   "sample")
    if has_labels and not has_truth:
        legend += "; ARI and NMI of the fitted components against the data's label column"
    table = summary_data(state)
    if table is None:
        return ["## Results by method", "", legend + ".", "", "_No finished fits._", ""]
    table = table.narrow(csv_only(table))
    tables.append(table)
    return ["## Results by method", "", legend + ".", "", table.markdown(), "", links(table), ""]


def _figures(state: RunState, figures: FigureSet) -> list[str]:
    if not figures.figures:
        return []
    lines = ["## Figures", ""]
    for figure in figures.figures:
        png = next((p for p in figure.paths if p.suffix == ".png"), figure.paths[0])
        others = [p.relative_to(state.out_dir).as_posix() for p in figure.paths if p != png]
        lines += [f"### {figure.title}", "", f"![{figure.title}]({png.relative_to(state.out_dir).as_posix()})", ""]
        caption = figure.caption + (" Also: " + ", ".join(f"[{o}]({o})" for o in others) if others else "")
        if caption:
            lines += [caption, ""]
    return lines
