"""Every table of report.md also as CSV and LaTeX, under ``tables/`` of the run directory.

A :class:`Table` is what the report shows: a header and rows of cells as printed (numbers to the
digits they carry, ``–`` for none). ``tables/<name>.csv`` holds all of its columns (the report may
show fewer: :meth:`Table.narrow`), ``tables/<name>.tex`` a booktabs ``tabular`` of the columns shown,
with LaTeX's special characters escaped (``\\usepackage{booktabs}``; Unicode such as ``±`` or ``–``
is kept: use a Unicode engine or ``\\usepackage[utf8]{inputenc}``). Files are written atomically
through :mod:`mixtures.core.files`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixtures.core.files import atomic_write_text
from mixtures.experiment.report.formatting import markdown_table, slug

#: LaTeX's special characters and their escapes (backslash first, so escapes are not escaped again)
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SPECIAL = re.compile("|".join(re.escape(c) for c in _LATEX_ESCAPES))
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


_MINUS = re.compile(r"(?<![\w.])-(?=[\d.])")


def latex_escape(text: Any) -> str:
    """``text`` with LaTeX's special characters escaped (``a_b & 5%`` -> ``a\\_b \\& 5\\%``) and the sign of a
    negative number set as a minus (``-4.2`` -> ``$-$4.2``)."""
    escaped = _LATEX_SPECIAL.sub(lambda match: _LATEX_ESCAPES[match.group()], str(text))
    return _MINUS.sub("$-$", escaped)


@dataclass
class Table:
    """A table of the report: ``name`` (its files' stem), ``header`` and ``rows`` of printed cells."""

    name: str
    header: list[str]
    rows: list[list[Any]]
    caption: str = ""
    hidden: list[str] = field(default_factory=list)  # columns the report leaves to the files

    def narrow(self, drop: Iterable[str]) -> Table:
        """This table with the columns named in ``drop`` hidden from :meth:`markdown` (kept in the files)."""
        return Table(self.name, self.header, self.rows, self.caption, [h for h in self.header if h in set(drop)])

    def markdown(self) -> str:
        keep = [i for i, h in enumerate(self.header) if h not in self.hidden]
        return markdown_table([self.header[i] for i in keep], [[row[i] for i in keep] for row in self.rows])

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows([["" if cell == "–" else cell for cell in row] for row in self.rows])
        return buffer.getvalue()

    def latex(self) -> str:
        """A booktabs ``table`` with a ``tabular`` of the columns the report shows: numeric ones right-aligned."""
        keep = [i for i, h in enumerate(self.header) if h not in self.hidden]
        numeric = [all(_NUMBER.match(str(row[i]).split(" ")[0]) or str(row[i]) in ("–", "")
                       for row in self.rows) and any(str(row[i]) not in ("–", "") for row in self.rows)
                   for i in keep]
        spec = "".join("r" if n else "l" for n in numeric)
        lines = [r"\begin{table}[htbp]", r"\centering"]
        if self.caption:
            lines.append(r"\caption{" + latex_escape(self.caption) + "}")
        lines += [r"\label{tab:" + slug(self.name) + "}", r"\begin{tabular}{" + spec + "}", r"\toprule",
                  " & ".join(latex_escape(self.header[i]) for i in keep) + r" \\", r"\midrule"]
        lines += [" & ".join(latex_escape(row[i]) for i in keep) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"


def write_tables(out_dir: Path, tables: Sequence[Table]) -> list[Path]:
    """Write ``tables/<name>.csv`` and ``tables/<name>.tex`` of each table; return the paths."""
    paths = []
    for table in tables:
        stem = out_dir / "tables" / slug(table.name)
        paths.append(atomic_write_text(stem.with_suffix(".csv"), table.csv()))
        paths.append(atomic_write_text(stem.with_suffix(".tex"), table.latex()))
    return paths


def links(table: Table) -> str:
    """Where the table's files are, naming the columns only the CSV has."""
    stem = f"tables/{slug(table.name)}"
    only = f"; the CSV also has {', '.join(table.hidden)}" if table.hidden else ""
    return f"This table as [CSV]({stem}.csv) and [LaTeX]({stem}.tex){only}."
