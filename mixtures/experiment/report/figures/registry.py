"""The figure registry: each figure module registers its drawing function by name.

A drawing function ``draw(state, dataset, tasks) -> list[Figure]`` draws one dataset's
figures of its kind (none where the figure does not apply). Registering a figure also
says what it needs stored at fit time: ``first_iteration(task)`` marks the tasks whose
parameters after one iteration the figure draws (drawing never fits a model).
Adding a figure = one module in this folder with ``@register("name")`` + its import line
in ``figures/__init__.py``; ``output.figures`` accepts the registered names.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mixtures.experiment.report.reading import tasks_by_dataset
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task
from mixtures.plot.paper import paper_style


@dataclass
class Figure:
    """A written figure: its kind (a registered name), title, files and a caption."""

    kind: str
    title: str
    paths: list[Path]
    caption: str = ""
    dataset: str = ""


@dataclass
class FigureSet:
    figures: list[Figure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


Draw = Callable[[RunState, str, list[Task]], list[Figure]]


@dataclass(frozen=True)
class FigureSpec:
    name: str
    draw: Draw
    first_iteration: Callable[[Task], bool] | None = None


#: registered figures, in the order they are drawn and listed in report.md
FIGURES: dict[str, FigureSpec] = {}


def register(name: str, *, first_iteration: Callable[[Task], bool] | None = None) -> Callable[[Draw], Draw]:
    """Decorator: register ``draw`` as figure ``name`` (see the module docstring)."""
    def decorator(draw: Draw) -> Draw:
        if name in FIGURES:
            raise ValueError(f"a figure named {name!r} is already registered")
        FIGURES[name] = FigureSpec(name, draw, first_iteration)
        return draw

    return decorator


def make_figures(state: RunState) -> FigureSet:
    """Draw every applicable figure of ``output.figures``; returns what was written.

    A figure that cannot be drawn is reported (in ``problems`` and in report.md), never
    fatal: the fits are already safe on disk.
    """
    wanted = set(state.config.output.figures)
    result = FigureSet()
    with warnings.catch_warnings(), paper_style():  # one style for every figure
        warnings.simplefilter("ignore")  # matplotlib layout chatter must not fail a finished run
        for dataset, tasks in tasks_by_dataset(state).items():
            for spec in FIGURES.values():
                if spec.name not in wanted:
                    continue
                try:
                    result.figures += spec.draw(state, dataset, tasks)
                except Exception as error:  # noqa: BLE001 - reported in report.md
                    result.problems.append(f"{spec.name} figure for {dataset}: {type(error).__name__}: {error}")
    return result
