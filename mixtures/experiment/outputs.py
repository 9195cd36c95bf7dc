"""What ``mixtures fit`` and ``select`` leave in ``--out DIR``, and how fits compare with given labels.

``fit --out DIR`` writes (every file atomically, through :mod:`mixtures.core.files`):

* ``params.json``: weights ``(K,)``, means ``(K, D)``, covariances ``(K, D, D)``, the feature
  names, the fit's summary (log-likelihood, BIC, ...) and ``state``, the parameters as
  :func:`mixtures.io.json_state` writes them (read back bit-exactly with
  ``mixtures.io.params_from_state(mixtures.io.state_from_json(obj["state"]))``);
* ``assignments.csv``: one row per point: ``row``, the given ``label`` (with a label column),
  the fitted ``component`` (most probable), ``uncertainty`` (``1 - max_k r_nk``, mclust's) and
  the responsibilities ``resp_0 .. resp_{K-1}``, at full precision;
* ``result.pt``: the whole :class:`~mixtures.core.result.FitResult` (:func:`mixtures.io.save_result`;
  ``mixtures.io.load`` reads it back).

``select --out DIR`` writes ``selection.csv`` (every (K, covariance type) row at full precision),
``bic.png`` and, for the best model (mclust's BIC), ``classification.png``, ``uncertainty.png`` and
``density.png`` (:func:`write_views`; pairs plots for D > 2, none for 1-D data).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mixtures import evaluation, plot
from mixtures.core.files import atomic_write_text
from mixtures.core.result import FitResult
from mixtures.io import json_state, params_to_state, save_result

__all__ = ["agreement", "confusion_lines", "write_fit_outputs", "write_selection_table", "write_views",
           "SELECTION_COLUMNS"]

SELECTION_COLUMNS = ("n_components", "covariance_type", "noise", "status", "log_likelihood", "bic", "aic", "icl",
                     "mclust_bic", "n_iter", "converged", "singular", "init", "seed", "starts", "starts_converged",
                     "hc_log_likelihood", "ari", "nmi", "error")


def agreement(labels: Tensor, predicted: Tensor) -> dict[str, Any]:
    """ARI, NMI, the aligned confusion table (:func:`mixtures.evaluation.aligned_confusion`) and its
    accuracy, of fitted components ``predicted (N,)`` against given ``labels (N,)``."""
    confusion = evaluation.aligned_confusion(labels, predicted)
    return {"ari": evaluation.adjusted_rand_index(labels, predicted),
            "nmi": evaluation.normalized_mutual_info(labels, predicted),
            "accuracy": confusion["accuracy"], "confusion": confusion}


def confusion_text(confusion: dict[str, Any]) -> str:
    """A compact form of an aligned confusion table for a results cell: ``"50 0 0; 0 47 3 | 0 1 2"``
    (rows are classes; after ``|`` the cluster index of each column)."""
    rows = "; ".join(" ".join(str(int(v)) for v in row) for row in confusion["table"])
    return f"{rows} | " + " ".join(str(int(c)) for c in confusion["clusters"])


def confusion_lines(confusion: dict[str, Any], class_names: Sequence[str] | None = None) -> list[str]:
    """A markdown table: one row per class, one column per fitted component (matched ones first)."""
    classes = [str(class_names[int(c)]) if class_names is not None else str(c) for c in confusion["classes"]]
    header = "| class | " + " | ".join(f"component {int(c)}" for c in confusion["clusters"]) + " |"
    lines = [header, "|" + " --- |" * (len(confusion["clusters"]) + 1)]
    for name, row in zip(classes, confusion["table"]):
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |")
    return lines


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_fit_outputs(out_dir: str | Path, result: FitResult, X: Tensor, summary: dict[str, Any],
                      feature_names: Sequence[str] | None = None, labels: Tensor | None = None,
                      label_names: Sequence[str] | None = None) -> list[Path]:
    """Write ``params.json``, ``assignments.csv`` and ``result.pt`` into ``out_dir``; return their paths.

    ``X: (N, D)`` the fitted data; ``summary``: primitives stored in ``params.json``;
    ``labels: (N,)`` codes of ``label_names`` (given labels), or ``None``.
    """
    out_dir = Path(out_dir)
    params = result.params
    document = {"covariance_type": getattr(params, "covariance_type", None), "n_components": params.n_components,
                "feature_names": list(feature_names) if feature_names is not None else None,
                "weights": params.weights.tolist(), "means": params.locs.tolist(),
                "covariances": params.covariances.tolist(), "summary": summary,
                "state": json_state(params_to_state(params))}
    paths = [atomic_write_text(out_dir / "params.json", json.dumps(document, indent=1) + "\n")]
    resp = result.predict_proba(X).detach().to(torch.float64).cpu()
    component = resp.argmax(-1)
    uncertainty = 1.0 - resp.max(-1).values
    header = ["row"] + (["label"] if labels is not None else []) + ["component", "uncertainty"] + \
        [f"resp_{k}" for k in range(resp.shape[1])]
    given = [label_names[int(c)] if label_names is not None else int(c) for c in labels] if labels is not None else None
    rows = [[n] + ([given[n]] if given is not None else []) + [int(component[n]), repr(float(uncertainty[n]))]
            + [repr(v) for v in resp[n].tolist()] for n in range(resp.shape[0])]
    paths.append(atomic_write_text(out_dir / "assignments.csv", _csv_text(header, rows)))
    paths.append(save_result(result, out_dir / "result.pt"))
    return paths


def write_selection_table(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``select``'s rows as CSV, floats by their shortest round-trip ``repr`` (full precision)."""
    def cell(value: Any) -> Any:
        return "" if value is None else repr(value) if isinstance(value, float) else value

    table = [[cell(row.get(column)) for column in SELECTION_COLUMNS] for row in rows]
    return atomic_write_text(Path(path), _csv_text(SELECTION_COLUMNS, table))


def write_views(out_dir: str | Path, X: Tensor, result: FitResult, title: str = "",
                feature_names: Sequence[str] | None = None, formats: Sequence[str] = ("png",)) -> list[Path]:
    """mclust's classification, uncertainty and density views of ``result`` on ``X`` ``(N, D)``
    (:func:`mixtures.plot.view_figure`: one panel for D = 2, pairs for D > 2), written as
    ``<view>.<format>`` in ``out_dir``; none for 1-D data. Returns the paths."""
    if X.shape[1] < 2:
        return []
    paths: list[Path] = []
    for view in plot.VIEWS:
        fig, _ = plot.view_figure(view, X, result, feature_names=feature_names, title=f"{title}: {view}")
        paths += plot.save_figure(fig, Path(out_dir) / view, formats=formats)
    return paths
