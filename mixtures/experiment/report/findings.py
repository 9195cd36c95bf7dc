"""The "Findings" paragraphs of report.md: facts read off the results, each comparison with its
uncertainty across seeds (:mod:`.comparison`), no interpretation.

A method is said to reach the best value only when the paired difference to every other method,
across the seeds they share, has a 95 % t interval beyond the finding's tie; otherwise the methods
whose interval reaches the tie are "indistinguishable at this number of seeds", and with one seed
no winner is named at all.
"""

from __future__ import annotations

from collections import defaultdict

from mixtures.experiment.report.comparison import LEVEL, Comparison, Difference, SeedValues, compare
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

Values = dict[str, dict[str, SeedValues]]  # {method: {column: {seed: value}}}


def values_by_point(state: RunState, dataset: str) -> dict[tuple, Values]:
    """``{sweep point (and init): {method: {column: {seed: value}}}}`` of the valid ok fits."""
    out: dict[tuple, Values] = {}
    for label, rows in summary_rows(state):
        if label["dataset"] != dataset:
            continue
        ok = [with_per_point(r) for r in rows if r["status"] == "ok" and not r.get("problems")]  # invalid: no winner
        point = tuple((k, v) for k, v in label.items() if k not in ("dataset", "method"))
        by_column = {column: {int(r["seed"]): float(r[column]) for r in ok if finite(r.get(column))}
                     for column in [c for c, *_ in FINDINGS] + ["bic"]}
        out.setdefault(point, {})[label["method"]] = by_column
    return out


def column_comparison(by_method: Values, column: str, better: str, tie: float) -> Comparison | None:
    return compare({m: v.get(column, {}) for m, v in by_method.items()}, better, tie)


def _difference_text(d: Difference) -> str:
    if d.n_seeds < 2:
        return f"{d.other} by {format_number(d.mean, 3)}"
    return f"{d.other} by {format_number(d.mean, 3)} [{format_number(d.low, 3)}, {format_number(d.high, 3)}]"


def comparison_sentence(found: Comparison, column: str, phrase: str) -> str:
    """One finding: the winner with its margins, or who is indistinguishable at this number of seeds."""
    number = f"{format_number(found.value, DIGITS[column])}{UNITS[column]}"
    extreme = phrase.split()[1]  # "highest", "lowest", "largest"...: a largest KL gap is not "the best"
    seeds = f"{found.n_seeds} seed{'s' if found.n_seeds != 1 else ''}"
    unit = UNITS[column].strip()
    ahead = [d for d in found.differences if d.beyond(found.tie)]
    level = [d for d in found.differences if not d.beyond(found.tie)]
    if found.n_seeds < 2:
        return (f"With one seed no winner is named for {phrase} (no interval): {found.best}'s value is the {extreme}, "
                f"{number}, ahead of " + ", ".join(map(_difference_text, found.differences)) + ".")
    basis = f"{unit + '; ' if unit else ''}{LEVEL:.0%} t intervals of the paired differences over {seeds}"
    if not level:
        verb = "reaches" if column in ("log_likelihood_per_point", "held_out_ll") else "has"
        return f"{found.best} {verb} {phrase}: {number}, ahead of {', '.join(map(_difference_text, ahead))} ({basis})."
    reach = "0" + (f" or the tolerance {found.tie:g}" if found.tie else "")
    sentence = (f"{names_list([found.best] + [d.other for d in level])} are indistinguishable on {phrase} at {seeds}: "
                f"{found.best}'s mean is the {extreme}, {number}, but "
                + ("the interval of its difference" if len(level) == 1 else "the intervals of its differences")
                + " (" + "; ".join(f"{d.other}: {format_number(d.mean, 3)} [{format_number(d.low, 3)}, "
                                   f"{format_number(d.high, 3)}]" for d in level)
                + f") reach{'es' if len(level) == 1 else ''} {reach}")
    if ahead:
        sentence += f"; {found.best} is ahead of " + ", ".join(map(_difference_text, ahead))
    return sentence + f" ({basis})."


def one_point(by_method: Values, selection: bool) -> list[str]:
    """Sentences for a dataset with one sweep point: each finding with its uncertainty across seeds."""
    sentences = []
    for column, better, phrase, tie in FINDINGS:
        found = column_comparison(by_method, column, better, tie)
        if found is None:
            continue
        if column == "kl_per_point":
            if found.value < ZERO_GAP:
                continue
            zero = [m for m, v in by_method.items() if v.get(column) and max(map(abs, v[column].values())) < ZERO_GAP]
            sentence = comparison_sentence(found, column, phrase)
            if zero:
                sentence = sentence[:-1] + (f"; {names_list(zero)} end{'s' if len(zero) == 1 else ''} with a gap of "
                                            "exactly 0 (to rounding).")
            sentences.append(sentence)
            continue
        sentences.append(comparison_sentence(found, column, phrase))
    if not selection:
        found = column_comparison(by_method, "bic", "min", 1e-6)
        if found is not None:
            sentences.append(comparison_sentence(found, "bic", "the lowest BIC"))
    return sentences


def many_points(points: dict[tuple, Values]) -> list[str]:
    """Sentences for a swept dataset: at how many sweep points each method wins beyond its interval, and at
    how many no method does."""
    sentences = []
    for column, better, phrase, tie in FINDINGS:
        counts: dict[str, int] = defaultdict(int)
        compared = undecided = 0
        for by_method in points.values():
            found = column_comparison(by_method, column, better, tie)
            if found is None or (column == "kl_per_point" and found.value < ZERO_GAP):
                continue
            compared += 1
            if found.winner is None:
                undecided += 1
            else:
                counts[found.winner] += 1
        if compared:
            ranked = sorted(counts.items(), key=lambda item: -item[1])
            parts = [f"{m} at {c} of {compared} sweep points" for m, c in ranked]
            if undecided:
                parts.append(f"no winner at {undecided} of {compared} (the best is indistinguishable from another "
                             f"at this number of seeds: a {LEVEL:.0%} t interval of the paired difference reaches 0"
                             + (f" or {tie:g}" if tie else "") + ")")
            sentences.append(f"{phrase[0].upper() + phrase[1:]}: " + "; ".join(parts) + ".")
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
    """A short paragraph per dataset of facts read off the results (no interpretation), after
    a loud line for every invalid fit (:func:`invalid_fits`)."""
    invalid = invalid_fits(state)
    paragraphs = ["\n".join(invalid)] if invalid else []
    for dataset, tasks in tasks_by_dataset(state).items():
        points = values_by_point(state, dataset)
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
