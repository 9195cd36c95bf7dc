"""Figures and ``report.md`` of an experiment run, read from its run directory (``store.RunState``).

Every figure draws a method in the same colour (the config's method order, ``C0``,
``C1``, ...), whichever methods it shows, and figures with several panels carry one
legend below them. The figures are registered in :mod:`.figures` (one module each; which
are drawn is ``output.figures``, each only where it applies). ``report.md`` embeds the
PNGs and: the methods (routine, options, prior), summary tables per dataset, sweep point
and method (mean ± sd over seeds), a "Findings" paragraph per dataset (:mod:`.findings`),
model selection winners, log-likelihood after a number of data passes, and the failed fits.
Every table is also written as CSV and LaTeX under ``tables/`` (:mod:`.exports`); every figure is
drawn in one style and saved as PNG, PDF and SVG; Findings compare methods by paired intervals
across seeds (:mod:`.comparison`).

The report never imports the runner: it reads what the run stored.
"""

from mixtures.experiment.report.document import write_report
from mixtures.experiment.report.figures import FIGURES, Figure, FigureSet, make_figures
from mixtures.experiment.report.findings import findings
from mixtures.experiment.report.formatting import markdown_table, mean_sd, point_slug
from mixtures.experiment.report.reading import data_passes, selection_winners
from mixtures.experiment.report.tables import methods_section, model_selection, passes_table, step_budget, summary_table

__all__ = ["FIGURES", "Figure", "FigureSet", "data_passes", "findings", "make_figures", "markdown_table", "mean_sd",
           "methods_section", "model_selection", "passes_table", "point_slug", "selection_winners", "step_budget",
           "summary_table", "write_report"]
