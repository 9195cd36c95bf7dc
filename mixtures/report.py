"""Deprecated: the report moved to :mod:`mixtures.experiment.report`.

This module re-exports the old public names and warns on import; import from
``mixtures.experiment.report`` instead.
"""

import warnings

from mixtures.experiment.report import (  # noqa: F401  (re-exported)
    Figure,
    FigureSet,
    data_passes,
    findings,
    make_figures,
    markdown_table,
    mean_sd,
    methods_section,
    model_selection,
    passes_table,
    point_slug,
    selection_winners,
    step_budget,
    summary_table,
    write_report,
)

warnings.warn("mixtures.report is deprecated; import from mixtures.experiment.report.", DeprecationWarning,
              stacklevel=2)
