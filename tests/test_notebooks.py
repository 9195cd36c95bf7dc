"""The notebooks in ``experiments/notebooks/`` (the seed analyses on the package) run, unchanged.

Each notebook's code cells run in order in one fresh namespace in this process, with
matplotlib's Agg backend and the notebook's folder as working directory (as Jupyter runs
it); every figure left open after a cell is rendered (as the inline backend would) and
closed. A failing cell fails the test naming the notebook, the cell and its first line.

Why not a Jupyter kernel (nbclient, nbmake): a kernel per notebook costs its start-up plus
importing torch and Pyro again, seconds each, five times over; here the imports are paid
once by the test process. What a kernel adds is IPython syntax, so cells must be plain
Python: a line starting with ``%`` or ``!`` (magics, shell escapes) fails the test.

The notebooks are built from ``experiments/notebooks/sources/*.py`` by
``experiments/notebooks/build.py``; a notebook that differs from its source, or that holds
outputs, fails here too.
"""

from __future__ import annotations

import importlib.util
import io
import linecache
import re
import time
import traceback
import warnings
from pathlib import Path

import pytest
import torch

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the dev extra: pip install -e '.[dev]'")

FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("[0-9][0-9][0-9]_*.ipynb"))
SOURCES = sorted((FOLDER / "sources").glob("[0-9][0-9][0-9]_*.py"))
_IPYTHON_SYNTAX = re.compile(r"^\s*[%!]", re.MULTILINE)


def _builder():
    spec = importlib.util.spec_from_file_location("notebook_build", FOLDER / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_notebook_per_seed_and_one_source_per_notebook():
    assert [path.name[:3] for path in NOTEBOOKS][:5] == ["000", "001", "002", "003", "004"]
    assert [path.stem for path in SOURCES] == [path.stem for path in NOTEBOOKS]


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem[:3])
def test_notebook_is_built_from_its_source(source):
    build = _builder()
    committed = build.notebook_path(source).read_text(encoding="utf-8")
    assert committed == build.rendered(source), (
        f"{build.notebook_path(source).name} differs from sources/{source.name}: edit the source and run "
        "python experiments/notebooks/build.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name[:3])
def test_notebook_is_valid_and_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith(f"# {path.name[:3]} ")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs"
            assert not _IPYTHON_SYNTAX.search(cell.source), f"{path.name}: cells must be plain Python"


@pytest.fixture
def isolated(monkeypatch):
    """Agg figures, the notebook's folder as working directory, and the process's global state
    (torch's default dtype and RNG, matplotlib's settings, warning filters) restored afterwards."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    monkeypatch.chdir(FOLDER)
    dtype, rng = torch.get_default_dtype(), torch.get_rng_state()
    with warnings.catch_warnings(), matplotlib.rc_context():
        yield plt
        plt.close("all")
    torch.set_default_dtype(dtype)
    torch.set_rng_state(rng)


def _render_open_figures(plt) -> None:
    for number in plt.get_fignums():
        plt.figure(number).savefig(io.BytesIO(), format="png", dpi=20)
    plt.close("all")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name[:3])
def test_notebook_runs(path, isolated):
    notebook = nbformat.read(path, as_version=4)
    namespace = {"__name__": "__main__"}
    seconds, cpu_started = [], time.process_time()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        started = time.perf_counter()
        name = f"<{path.name} cell {index}>"
        linecache.cache[name] = (len(cell.source), None, cell.source.splitlines(True), name)  # lines in tracebacks
        failure = None
        try:
            exec(compile(cell.source, name, "exec"), namespace)
            _render_open_figures(isolated)
        except Exception:
            failure = traceback.format_exc()
        if failure is not None:
            first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            pytest.fail(f"{path.name}, cell {index} (id {cell.get('id')}, starting {first_line!r}) failed:\n{failure}",
                        pytrace=False)
        seconds.append(round(time.perf_counter() - started, 2))
    print(f"{path.name}: {sum(seconds):.1f} s wall ({time.process_time() - cpu_started:.1f} s CPU), "
          f"per code cell {seconds}")
