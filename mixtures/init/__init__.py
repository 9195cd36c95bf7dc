"""Initializers: where a routine starts (family-agnostic; see :mod:`mixtures.init.initializers`)."""

from mixtures.init.hc import HCTree, hc_tree, quantile_classes, scaled_svd
from mixtures.init.initializers import (
    INITIALIZERS,
    InitSpec,
    check_init,
    hc_start,
    initial_responsibilities,
    initialize,
    params_from_labels,
)

__all__ = ["INITIALIZERS", "InitSpec", "check_init", "initialize", "initial_responsibilities", "params_from_labels",
           "hc_start", "hc_tree", "HCTree", "quantile_classes", "scaled_svd"]
