"""The report's figures: one module per figure, each registered in :mod:`.registry` on import.

Adding a figure = one module here with ``@register("name")`` + its import line below.
"""

# isort: off
from mixtures.experiment.report.figures import (  # noqa: F401  (registration, in drawing order)
    ellipses,
    traces,
    kl_gap,
    error_vs,
    bic,
    contours,
    init_spread,
    posterior,
    weights,
    coclustering,
    passes,
    views,
)
# isort: on
from mixtures.experiment.report.figures.registry import FIGURES, Figure, FigureSet, FigureSpec, make_figures, register

__all__ = ["FIGURES", "Figure", "FigureSet", "FigureSpec", "make_figures", "register"]
