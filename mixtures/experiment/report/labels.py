"""The report's section on datasets with a label column: ARI, NMI and the aligned confusion table
of each method's best fit (highest log-likelihood), read from the stored rows (nothing is refitted)."""

from __future__ import annotations

from mixtures.experiment.outputs import confusion_lines
from mixtures.experiment.report.formatting import finite, format_number
from mixtures.experiment.store import RunState


def parse_confusion(text: str) -> dict:
    """Inverse of :func:`mixtures.experiment.outputs.confusion_text` (classes are row indices)."""
    rows, _, clusters = text.partition("|")
    table = [[int(v) for v in row.split()] for row in rows.split(";")]
    return {"table": table, "classes": list(range(len(table))), "clusters": [int(c) for c in clusters.split()]}


def label_section(state: RunState) -> list[str]:
    """``## Against the labels``: one paragraph and table per (dataset, method); ``[]`` without labels."""
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
        lines += confusion_lines(parse_confusion(row["confusion"]), names) + [""]
    return lines
