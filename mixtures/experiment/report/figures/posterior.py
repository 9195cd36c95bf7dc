"""``posterior_<dataset>``: 2σ ellipses of stored posterior draws, one panel per fit with a posterior.

VB, SVI with a distributional guide, NUTS; the truth dashed when known (first cell;
2-D and up, first two dimensions; 1-D data: the weights figure shows the uncertainty).
"""

from __future__ import annotations

import math
import textwrap

from mixtures import plot
from mixtures.core.posterior import Posterior
from mixtures.experiment.report.figures.drawing import (
    data_box,
    feature_names,
    method_colors,
    same_units,
    save,
    scale_note,
)
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import cell_label, finite, slug
from mixtures.experiment.report.reading import base_cell
from mixtures.experiment.report.tables import undefined_r_hat
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task


def posteriors(state: RunState, tasks: list[Task]) -> dict[str, Posterior]:
    """``{method name: Posterior}`` of the ok tasks with stored draws."""
    found = {task.method.name: state.posterior(task) for task in tasks}
    return {name: posterior for name, posterior in found.items() if posterior is not None}


#: characters of a sampler's problems shown in its panel
PROBLEM_CHARS = 90


def invalid_note(row: dict) -> str | None:
    """``"INVALID: <first failed check>"`` for a fit whose validity checks failed, else ``None``."""
    problems = row.get("problems")
    if not problems:
        return None
    first = str(problems).split("; ")[0]
    return "INVALID: " + (first if len(first) <= PROBLEM_CHARS else first[:PROBLEM_CHARS - 1] + "…")


def panel_title(name: str, row: dict) -> str:
    parts = [name + (" (INVALID)" if row.get("problems") else "")]
    if finite(row.get("expected_components")):
        parts.append(f"E[#w>1%] = {float(row['expected_components']):.2f}")
    if undefined_r_hat(row):
        parts.append("R̂ undefined (stuck)")
    elif finite(row.get("max_r_hat")):
        parts.append(f"R̂ ≤ {float(row['max_r_hat']):.3f}")
    if finite(row.get("min_ess")):
        parts.append(f"ESS ≥ {float(row['min_ess']):.0f}")
    return ", ".join(parts)


@register("posterior")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    cell = base_cell(tasks)
    draws = posteriors(state, cell)
    bundle = state.data.get(cell[0])
    if not draws or bundle.X.shape[1] < 2:
        return []
    rows = {t.method.name: state.row(t) for t in cell if t.method.name in draws}
    ncols = min(len(draws), 3)
    nrows = math.ceil(len(draws) / ncols)
    fig, axes = plot.subplots(nrows, ncols, squeeze=False, figsize=(4.0 * ncols, 4.0 * nrows + 0.3))
    n_draws = 15 if state.smoke else 40
    # Limits from the data: draws of components the data hardly use (a Dirichlet process's
    # spare sticks) come from the prior and can be huge; they must not shrink the data away.
    low, high = data_box(bundle, 0.15)
    names = feature_names(bundle) or [f"$x_{d}$" for d in range(2)]
    for ax, (name, posterior) in zip(axes.flat, draws.items()):
        plot.plot_posterior_ellipses(ax, bundle.X, posterior, n_draws=n_draws,
                                     color=method_colors(state).get(name, "C3"), title=panel_title(name, rows[name]))
        if bundle.truth is not None:
            for k in range(bundle.truth.n_components):
                plot.add_covariance_ellipse(ax, bundle.truth.locs[k, :2], bundle.truth.covariances[k, :2, :2],
                                            edgecolor="black", linestyle="--", linewidth=1.0)
        ax.title.set_fontsize("small")
        note = invalid_note(rows[name])
        if note is not None:  # a sampler that did not explore must not look like a posterior
            ax.title.set_color("red")
            ax.text(0.5, 0.5, textwrap.fill(note, 34), transform=ax.transAxes, ha="center", va="center",
                    color="red", fontsize="small", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "red"})
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if same_units(bundle):  # limits fixed to the data: the box adjusts instead
            ax.set_aspect("equal", adjustable="box")
    for ax in list(axes.flat)[len(draws):]:
        ax.set_visible(False)
    invalid = [name for name in draws if rows[name].get("problems")]
    title = f"{dataset}: posterior uncertainty ({cell_label(cell[0])})"
    if invalid:
        title += f"\nINVALID: {', '.join(invalid)} did not explore (see Findings)"
    fig.suptitle(title)
    caption = (f"**INVALID: {', '.join(invalid)}** (the sampler's validity checks failed, see Findings: its "
               "draws are not a posterior). " if invalid else "")
    caption += (f"2σ covariance ellipses of {n_draws} posterior draws per method (faint lines pile up where the "
                "posterior is sure; components a draw leaves empty are not drawn; axes cover the data)"
                + (", the true mixture dashed" if bundle.truth is not None else "")
                + ". E[#w>1%]: posterior mean number of components with weight above 1%." + scale_note(bundle))
    return [Figure("posterior", title, save(state, fig, f"posterior_{slug(dataset)}"), caption, dataset)]
