"""The report's section on datasets with a label column: ARI, NMI and the aligned confusion table
of each method's best fit (highest log-likelihood), read from the stored rows (nothing is refitted)."""

from __future__ import annotations

from mixtures.experiment.report.exports import Table, links
from mixtures.experiment.report.formatting import finite, format_number
from mixtures.experiment.store import RunState


def parse_confusion(text: str) -> dict:
    """Inverse of :func:`mixtures.experiment.outputs.confusion_text` (classes are row indices)."""
    rows, _, clusters = text.partition("|")
    table = [[int(v) for v in row.split()] for row in rows.split(";")]
    return {"table": table, "classes": list(range(len(table))), "clusters": [int(c) for c in clusters.split()]}


def confusion_table(confusion: dict, class_names: list[str] | None, name: str) -> Table:
    """The aligned confusion table (:func:`parse_confusion`'s dict): one row per class, one column per component."""
    classes = [str(class_names[int(c)]) if class_names is not None else str(c) for c in confusion["classes"]]
    header = ["class"] + [f"component {int(c)}" for c in confusion["clusters"]]
    return Table(name, header, [[cls] + [str(int(v)) for v in row] for cls, row in zip(classes, confusion["table"])],
                 f"Confusion table after matching components to classes: {name.removeprefix('confusion_')}")


def label_section(state: RunState, tables: list[Table] | None = None) -> list[str]:
    """``## Against the labels``: one paragraph and table per (dataset, method); ``[]`` without labels.
    Each table is appended to ``tables`` (written as CSV and LaTeX by the report)."""
    best: dict[tuple[str, str], tuple[dict, object]] = {}
    for task in state.tasks:
        record = state.records.get(task.key)
        row = record["row"] if record is not None else None
        if row is None or row["status"] != "ok" or not row.get("confusion") or not finite(row.get("log_likelihood")):
            continue
        key = (row["dataset"], row["method"])
        if key not in best or row["log_likelihood"] > best[key][0]["log_likelihood"]:
            best[key] = (row, task)
    if not best:
        return []
    lines = ["## Against the labels", "",
             "For each dataset with a label column and each method, the fit with the highest log-likelihood: ARI and "
             "NMI against the labels, and the confusion table after matching components to classes (Hungarian "
             "algorithm; accuracy is the share of points on the matched diagonal).", ""]
    for (dataset, method), (row, task) in best.items():
        names = state.data.get(task).label_names
        lines += [f"**{dataset}, {method}** (K={row['n_components']}, {row['covariance_type']}, seed {row['seed']}): "
                  f"ARI {format_number(row['ari'])}, NMI {format_number(row['nmi'])}, "
                  f"accuracy {format_number(row['accuracy'])}.", ""]
        table = confusion_table(parse_confusion(row["confusion"]), names, f"confusion_{dataset}_{method}")
        if tables is not None:
            tables.append(table)
        lines += [table.markdown(), "", links(table), ""]
    return lines
