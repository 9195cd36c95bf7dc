"""Build the notebooks ``experiments/notebooks/NNN_*.ipynb`` from their sources in ``sources/``.

Each source is a Python file in the "percent" format (Jupytext's, VS Code's, Spyder's): a line
``# %%`` starts a code cell and ``# %% [markdown]`` a markdown cell, whose lines are comments
(``# `` stripped). The sources are what is edited and reviewed (plain diffs, linted by ruff);
the committed notebooks, what users open, are built from them without outputs::

    python experiments/notebooks/build.py            # rewrite the notebooks
    python experiments/notebooks/build.py --check    # exit 1 if a notebook differs from its source

``tests/test_notebooks.py`` fails when a notebook and its source differ, and runs every notebook.
Needs ``nbformat`` (in the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"
_CELL = "# %%"
_MARKDOWN = "# %% [markdown]"
_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def _split_cells(text: str) -> list[tuple[str, list[str]]]:
    """``(kind, lines)`` of each cell of a percent-format source, in order."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith(_MARKDOWN):
            cells.append(("markdown", []))
        elif line.startswith(_CELL):
            cells.append(("code", []))
        elif not cells:
            if line.strip():
                raise ValueError(f"text before the first '{_CELL}' line: {line!r}")
        else:
            cells[-1][1].append(line)
    return cells


def _markdown_line(line: str, source: Path) -> str:
    if line in ("", "#"):  # a blank line between cells, or an empty markdown line
        return ""
    if not line.startswith("# "):
        raise ValueError(f"{source.name}: a markdown cell's lines start with '# '; got {line!r}")
    return line[2:]


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of one source: cells in order, no outputs, ids ``<NNN>-<position>`` (stable)."""
    cells = []
    for position, (kind, lines) in enumerate(_split_cells(source.read_text(encoding="utf-8"))):
        if kind == "markdown":
            lines = [_markdown_line(line, source) for line in lines]
        text = "\n".join(lines).strip("\n")
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cells.append(make(text, id=f"{source.stem[:3]}-{position:02d}"))
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=_METADATA)
    nbformat.validate(notebook)
    return notebook


def notebook_path(source: Path) -> Path:
    return HERE / f"{source.stem}.ipynb"


def rendered(source: Path) -> str:
    """The exact text of the notebook built from ``source`` (as ``nbformat.write`` writes it)."""
    return nbformat.writes(build(source)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report notebooks that differ from their sources")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("[0-9][0-9][0-9]_*.py")):
        target, text = notebook_path(source), rendered(source)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(HERE.parents[1])}")
    if stale:
        print(f"out of date with their sources: {', '.join(stale)}; run python experiments/notebooks/build.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
