"""The "Findings" paragraphs of report.md: facts read off the summary table, no interpretation."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from mixtures.experiment.report.formatting import cell_label, finite, format_number, names_list
from mixtures.experiment.report.reading import selection_winners, selects_models, tasks_by_dataset, with_per_point
from mixtures.experiment.report.tables import summary_rows
from mixtures.experiment.store import RunState

#: (column, better, phrase, tie tolerance): statements of the findings paragraph
FINDINGS = (
    ("log_likelihood_per_point", "max", "the highest final log-likelihood per point", 1e-5),
    ("held_out_ll", "max", "the best held-out log-likelihood per point", 1e-5),
    ("kl_truth", "min", "the lowest KL to the truth", 0.0),
    ("time", "min", "the shortest mean fit time", 0.0),
    ("kl_per_point", "max", "the largest final KL gap (log-lik − ELBO)", 0.0),
)
UNITS = {"log_likelihood_per_point": " nats per point", "held_out_ll": " nats per point", "time": " s",
         "kl_truth": " nats", "kl_per_point": " nats per point", "bic": ""}
DIGITS = {"log_likelihood_per_point": 6, "held_out_ll": 6, "time": 3, "kl_truth": 3, "kl_per_point": 3, "bic": 6}
#: a KL gap per point below this is rounding (MAP's is exactly 0 up to ~1e-15; EM's ends near 1e-11)
ZERO_GAP = 1e-12

Means = dict[str, dict[str, float]]  # {method: {column: mean over seeds}}


def means_by_point(state: RunState, dataset: str) -> dict[tuple, Means]:
    """``{sweep point (and init): {method: {column: mean over seeds of the ok fits}}}``."""
    out: dict[tuple, Means] = {}
    for label, rows in summary_rows(state):
        if label["dataset"] != dataset:
            continue
        ok = [with_per_point(r) for r in rows if r["status"] == "ok" and not r.get("problems")]  # invalid: no winner
        point = tuple((k, v) for k, v in label.items() if k not in ("dataset", "method"))
        means = {}
        for column in [c for c, *_ in FINDINGS] + ["bic"]:
            values = [float(r[column]) for r in ok if finite(r.get(column))]
            if values:
                means[column] = float(np.mean(values))
        out.setdefault(point, {})[label["method"]] = means
    return out


def winners(by_method: Means, column: str, better: str, tie: float) -> tuple[list[str], float] | None:
    """The methods at the best mean of ``column`` (within ``tie``) and that value; ``None`` below two methods."""
    values = {m: v[column] for m, v in by_method.items() if column in v}
    if len(values) < 2:
        return None
    best = max(values.values()) if better == "max" else min(values.values())
    return [m for m, v in values.items() if abs(v - best) <= tie], best


def one_point(by_method: Means, selection: bool) -> list[str]:
    """Sentences for a dataset with one sweep point: who is best at each finding, with the value."""
    sentences = []
    for column, better, phrase, tie in FINDINGS:
        found = winners(by_method, column, better, tie)
        if found is None:
            continue
        names, value = found
        number = f"{format_number(value, DIGITS[column])}{UNITS[column]}"
        if column == "kl_per_point":
            if value >= ZERO_GAP:
                zero = [m for m, v in by_method.items() if abs(v.get(column, math.nan)) < ZERO_GAP]
                sentence = f"{names_list(names)} {'has' if len(names) == 1 else 'have'} {phrase}: {number}"
                if zero:
                    sentence += (f"; {names_list(zero)} end{'s' if len(zero) == 1 else ''} with a gap of exactly 0 "
                                 "(to rounding)")
                sentences.append(sentence + ".")
            continue
        reaches = column in ("log_likelihood_per_point", "held_out_ll")
        verb = ("reaches" if reaches else "has") if len(names) == 1 else ("reach" if reaches else "have")
        agree = f" (equal within {tie:g})" if len(names) > 1 and tie else ""
        sentences.append(f"{names_list(names)} {verb} {phrase}: {number}{agree}.")
    if not selection:
        found = winners(by_method, "bic", "min", 1e-6)
        if found is not None:
            sentences.append(f"The lowest BIC is {names_list(found[0])}'s: {format_number(found[1], 6)}.")
    return sentences


def many_points(points: dict[tuple, Means]) -> list[str]:
    """Sentences for a swept dataset: at how many sweep points each method is best."""
    sentences = []
    for column, better, phrase, tie in FINDINGS:
        counts: dict[str, int] = defaultdict(int)
        compared = 0
        for by_method in points.values():
            found = winners(by_method, column, better, tie)
            if found is None or (column == "kl_per_point" and found[1] < ZERO_GAP):
                continue
            compared += 1
            for name in found[0]:
                counts[name] += 1
        if compared:
            ranked = sorted(counts.items(), key=lambda item: -item[1])
            sentences.append(f"{phrase[0].upper() + phrase[1:]}: "
                             + ", ".join(f"{m} at {c} of {compared} sweep points" for m, c in ranked)
                             + (f" (ties within {tie:g} count for each)" if tie else "") + ".")
    return sentences


def invalid_fits(state: RunState) -> list[str]:
    """One loud line per fit that must not be read as a result: a sampler whose validity checks
    failed (its ``problems``, e.g. every transition divergent) and a fit that failed outright."""
    lines = []
    for task in state.tasks:
        record = state.records.get(task.key)
        if record is None:
            continue
        row = record["row"]
        where = f"{task.dataset.name}, {cell_label(task)}"
        if row["status"] != "ok":
            lines.append(f"- **INVALID: {task.method.name} failed** ({where}): {row.get('error') or 'no error text'}.")
        elif row.get("problems"):
            verb = "did not explore" if task.method.method == "nuts" else "failed its validity checks"
            lines.append(f"- **INVALID: {task.method.name} {verb}** ({where}): {row['problems']}. Its posterior, its "
                         "table row and its figure panels are not a reference.")
    return lines


def findings(state: RunState) -> str:
    """A short paragraph per dataset of facts read off the summary table (no interpretation), after
    a loud line for every invalid fit (:func:`invalid_fits`)."""
    invalid = invalid_fits(state)
    paragraphs = ["\n".join(invalid)] if invalid else []
    for dataset, tasks in tasks_by_dataset(state).items():
        points = means_by_point(state, dataset)
        if len(points) == 1:
            sentences = one_point(next(iter(points.values())), selects_models(state))
        else:
            sentences = many_points(points) if points else []
        for criterion, task in selection_winners(state, tasks).items():
            row = state.row(task)
            sentences.append(f"The lowest {criterion.upper()} is K={row['n_components']}, {row['covariance_type']}: "
                             f"{format_number(float(row[criterion]), 6)}.")
        if sentences:
            paragraphs.append(f"**{dataset}.** " + " ".join(sentences))
    return "\n\n".join(paragraphs)
