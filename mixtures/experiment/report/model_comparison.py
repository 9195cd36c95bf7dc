"""``## Model comparison``: every method by its own criterion and by the measures all share.

Each routine is judged by what it optimizes (BIC for point estimates, the ELBO for VB and
SVI, PSIS-LOO for posteriors), and all by the held-out log predictive density; a
variational posterior also by its PSIS ``k̂`` against the model's joint, which says whether
its uncertainty can be trusted (Yao et al. 2018). Shown for runs with a posterior fit,
per dataset, on the first cell (sweep point, init), means over seeds.
"""

from __future__ import annotations

import numpy as np

from mixtures.evaluation.variational import k_verdict
from mixtures.experiment.report.exports import Table, links
from mixtures.experiment.report.formatting import finite, format_number, point_label, slug
from mixtures.experiment.report.reading import tasks_by_dataset
from mixtures.experiment.store import RunState

__all__ = ["comparison_section"]


def _mean(rows: list[dict], column: str, per_point: bool = False) -> float | None:
    values = [float(r[column]) / (r["n"] if per_point else 1) for r in rows if finite(r.get(column))]
    return float(np.mean(values)) if values else None


def _is_infinite(value: object) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and float(value) == float("inf")
    except (TypeError, ValueError):
        return False


def _cell(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else format_number(value, digits)


def comparison_section(state: RunState, tables: list[Table]) -> list[str]:
    """Markdown lines of the "Model comparison" section (none when no fit of the run has draws); its tables
    are appended to ``tables``."""
    sections = []
    for dataset, tasks in tasks_by_dataset(state).items():
        first = tasks[0]
        tasks = [t for t in tasks if t.point == first.point and t.init == first.init and state.ok(t)]
        by_method: dict[str, list[dict]] = {}
        for task in tasks:
            by_method.setdefault(task.method.name, []).append(state.row(task))
        if not any(finite(r.get("elpd_loo")) for rows in by_method.values() for r in rows):
            continue
        table = []
        for name, rows in by_method.items():
            k = _mean(rows, "pareto_k")
            if any(_is_infinite(r.get("pareto_k")) for r in rows):
                k = float("inf")  # a draw the model gives no density: never averaged away
            loo = _mean(rows, "elpd_loo")
            bad = sum(int(r["loo_bad_k"]) for r in rows if finite(r.get("loo_bad_k")))
            table.append([
                name,
                _cell(_mean(rows, "bic")),
                _cell(_mean(rows, "elbo", per_point=True)) if loo is not None else "–",
                _cell(loo) + (f" ({bad} pts k̂>0.7)" if bad else "") if loo is not None else "–",
                _cell(_mean(rows, "held_out_lpd")),
                "–" if k is None else (f"{format_number(k, 3)} " if np.isfinite(k) else "") + k_verdict(k),
            ])
        header = ["method", "BIC", "ELBO/pt", "elpd-LOO/pt", "held-out lpd/pt", "k̂ of q"]
        label = f"**{dataset}**" + (f" ({point_label(first.point)})" if first.point else "")
        exported = Table(f"model_comparison_{slug(dataset)}", header, table, f"{dataset}: model comparison")
        tables.append(exported)
        sections.append(f"{label}, init {first.init}, mean over {len(state.config.seeds)} seed(s):\n\n"
                        + exported.markdown() + "\n\n" + links(exported))
    if not sections:
        return []
    intro = ("Each method by its own criterion (BIC for point estimates: lower is better; ELBO for variational "
             "fits; PSIS-LOO expected log predictive density for fits with draws, variational draws importance-"
             "weighted to the posterior) and all by the held-out log predictive density (posterior predictive for "
             "fits with draws, plug-in otherwise; higher is better). k̂: Pareto shape of the importance ratios "
             "p(θ, x)/q(θ) of a variational posterior's draws (Yao et al. 2018): below 0.5 q is close to the "
             "posterior, 0.5–0.7 usable, above 0.7 its uncertainty is not to be trusted.")
    return ["## Model comparison", "", intro, "", "\n\n".join(sections), ""]
