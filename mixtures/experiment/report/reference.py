"""The report's mclust-style reading of a selection: the BIC table and the run's top models beside
published ones (``reference:``).

The BIC table (:func:`bic_tables`, when K and the covariance type are both swept) is mclust's layout:
one row per K, one column per structure, BIC in mclust's sign, NA where the cell failed or ended singular.

Per dataset with published top models (mclust's "Top 3 models based on the BIC criterion"): the
run's best models by ``mclust_bic`` (mclust's sign and reporting: higher is better, of EM's last E
step), one per (covariance structure, K) — its best non-singular fit over methods, inits and seeds,
as a selection keeps a cell's best start — ranked, beside the published ones, with the run's value
at each published model and whether the ranking agrees.
"""

from __future__ import annotations

from mixtures.experiment.report.exports import Table, links
from mixtures.experiment.report.formatting import finite, slug
from mixtures.experiment.report.reading import tasks_by_dataset
from mixtures.experiment.store import RunState
from mixtures.families.gaussian.covariance import get_structure


def _canonical(name: str) -> str:
    return get_structure(name).name


def best_per_model(state: RunState, tasks: list) -> dict[tuple[str, int], dict]:
    """``{(structure, K): row}``: each cell's non-singular ok fit with the highest log-likelihood."""
    best: dict[tuple[str, int], dict] = {}
    for task in tasks:
        row = state.row(task) if state.ok(task) else None
        if row is None or row["singular"] or not finite(row.get("mclust_bic")):
            continue
        key = (_canonical(str(row["covariance_type"])), int(row["n_components"]))
        if key not in best or float(row["log_likelihood"]) > float(best[key]["log_likelihood"]):
            best[key] = row
    return best


def reference_section(state: RunState, tables: list[Table]) -> list[str]:
    """Markdown lines of the section (none without a ``reference`` block); its tables are appended to ``tables``."""
    reference = state.config.reference
    if reference is None:
        return []
    lines = ["## Against the reference", "",
             f"Top models by BIC in mclust's sign (higher is better; as mclust reports it, at EM's last E step), "
             f"ours beside the published ones ({reference.source or 'the config’s reference block'}). "
             "\"ours there\": our value at the published model.", ""]
    by_dataset = tasks_by_dataset(state)
    for dataset, published in reference.top_models.items():
        tasks = by_dataset.get(dataset, [])
        best = best_per_model(state, tasks)
        grid = {(_canonical(t.covariance_type), t.n_components) for t in tasks}
        ours = sorted(best.items(), key=lambda item: float(item[1]["mclust_bic"]), reverse=True)[:len(published)]
        rows = []
        for rank, reference_model in enumerate(published):
            structure, k, value = reference_model
            there = best.get((_canonical(structure), k))
            mine = ours[rank] if rank < len(ours) else None
            rows.append([rank + 1,
                         f"{mine[1]['covariance_type']},{mine[0][1]}" if mine else "–",
                         f"{float(mine[1]['mclust_bic']):.3f}" if mine else "–",
                         f"{structure},{k}", f"{value:.3f}",
                         f"{float(there['mclust_bic']):.3f}" if there else
                         "NA (failed or singular)" if (_canonical(structure), k) in grid else "not in the grid"])
        same = [(_canonical(s), k) for s, k, _ in published] == [key for key, _ in ours]
        header = ["rank", "ours", "our BIC", "published", "published BIC", "ours there"]
        table = Table(f"reference_{slug(dataset)}", header, rows, f"{dataset}: top models against the reference")
        tables.append(table)
        lines += [f"**{dataset}**: " + ("the same top models, in the same order." if same else
                                         "the top models differ (see the table)."), "",
                  table.markdown(), "", links(table), ""]
    return lines


def bic_tables(state: RunState, tables: list[Table]) -> list[str]:
    """Markdown lines of the "BIC table" section (none unless K and the covariance type are both swept); its
    tables are appended to ``tables``."""
    sweep = state.config.sweep
    if not {"n_components", "covariance_type"} <= set(sweep):
        return []
    lines = ["## BIC table", "", "BIC in mclust's sign (higher is better, as mclust reports it), each cell's best "
             "non-singular fit; NA: the fit failed or ended singular (mclust's NA).", ""]
    for dataset, tasks in tasks_by_dataset(state).items():
        best = best_per_model(state, tasks)
        structures = list(sweep["covariance_type"])
        rows = [[k] + [f"{float(best[(_canonical(s), k)]['mclust_bic']):.3f}" if (_canonical(s), k) in best else "NA"
                       for s in structures] for k in sweep["n_components"]]
        table = Table(f"bic_{slug(dataset)}", ["K"] + structures, rows, f"{dataset}: BIC in mclust's sign")
        tables.append(table)
        lines += [f"**{dataset}**", "", table.markdown(), "", links(table), ""]
    return lines
