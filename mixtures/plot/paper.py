"""The one style of every report figure: sizes, fonts, lines and file settings for a paper.

:func:`paper_style` is a context in which a figure is drawn and saved; the experiment report
draws every registered figure inside it, so all of them share these settings. Text stays text in
SVG and PDF (TrueType, type 42: editable and searchable), and the files carry no dates or random
ids, so a rerun writes identical SVGs and PDFs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mixtures.plot.figure import load_matplotlib

#: matplotlib settings of every report figure
PAPER_RC: dict[str, Any] = {
    "font.size": 9.0, "axes.titlesize": 9.0, "axes.labelsize": 9.0, "xtick.labelsize": 8.0, "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0, "figure.titlesize": 10.0,
    "lines.linewidth": 1.4, "lines.markersize": 4.5, "axes.linewidth": 0.8,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "axes.spines.top": False, "axes.spines.right": False,
    "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "svg.hashsalt": "mixtures",
}
#: formats every report figure is written in (the config's ``output.formats`` may add others)
PAPER_FORMATS = ("png", "pdf", "svg")


@contextmanager
def paper_style() -> Iterator[None]:
    """Draw and save figures in the report's one style (:data:`PAPER_RC`)."""
    with load_matplotlib().rc_context(PAPER_RC):
        yield
