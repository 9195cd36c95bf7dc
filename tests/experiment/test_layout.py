"""The experiment package's shape: layering, the figure registry, and the deprecated module paths."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import mixtures.experiment as experiment
from mixtures.experiment import ConfigError, parse_config
from mixtures.experiment.report import figures

PACKAGE = Path(experiment.__file__).resolve().parent
MIXTURES = PACKAGE.parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_report_reads_the_store_and_never_imports_the_runner():
    for path in (PACKAGE / "report").rglob("*.py"):
        assert not any(name.startswith("mixtures.experiment.runner") for name in imported_modules(path)), path


def test_lower_layers_never_import_the_experiment_package():
    allowed = {MIXTURES / "cli.py", MIXTURES / "config.py", MIXTURES / "report.py"}
    for path in MIXTURES.rglob("*.py"):
        if PACKAGE in path.parents or path in allowed:
            continue
        assert not any(name.startswith("mixtures.experiment") for name in imported_modules(path)), path


def test_experiment_modules_import_at_the_top_except_matplotlib():
    for path in list(PACKAGE.rglob("*.py")) + [MIXTURES / "cli.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    # optional dependencies only: matplotlib, and Dask's distributed for --dask
                    assert module.startswith(("matplotlib", "distributed")), \
                        f"{path.name}: {function.name} imports {module}"


def test_every_figure_is_registered_once_from_its_own_module():
    assert list(figures.FIGURES) == ["ellipses", "traces", "kl_gap", "error_vs", "bic", "contours", "init_spread",
                                     "posterior", "weights", "coclustering", "passes", "views"]
    for name, spec in figures.FIGURES.items():
        assert spec.name == name and spec.draw.__module__ == f"mixtures.experiment.report.figures.{name}"
    with pytest.raises(ValueError, match="already registered"):
        figures.register("traces")(lambda state, dataset, tasks: [])


RAW = {"data": {"kind": "old_faithful"}, "model": {"n_components": 2}, "methods": ["em"]}


def test_output_figures_are_the_registered_names(monkeypatch):
    assert parse_config(RAW).output.figures == tuple(figures.FIGURES)
    with pytest.raises(ConfigError) as caught:
        parse_config({**RAW, "output": {"figures": ["traces", "kl-gap"]}})
    assert caught.value.key == "output.figures[1]" and "did you mean 'kl_gap'" in str(caught.value)
    # a new figure module is one registration away from being accepted
    monkeypatch.setitem(figures.FIGURES, "extra", figures.FigureSpec("extra", lambda state, dataset, tasks: []))
    assert parse_config({**RAW, "output": {"figures": ["extra"]}}).output.figures == ("extra",)


@pytest.mark.parametrize("old, new, name", [("mixtures.config", "mixtures.experiment.config", "load_config"),
                                            ("mixtures.report", "mixtures.experiment.report", "mean_sd")])
def test_old_module_paths_still_work_and_warn(monkeypatch, old, new, name):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated"):
        shim = importlib.import_module(old)
    assert getattr(shim, name) is getattr(importlib.import_module(new), name)
    monkeypatch.delitem(sys.modules, old, raising=False)  # the next import warns again
