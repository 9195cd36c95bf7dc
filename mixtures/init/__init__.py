"""Initializers: where a routine starts (family-agnostic; see :mod:`mixtures.init.initializers`)."""

from mixtures.init.initializers import (
    INITIALIZERS,
    InitSpec,
    initial_responsibilities,
    initialize,
    params_from_labels,
)

__all__ = ["INITIALIZERS", "InitSpec", "initialize", "initial_responsibilities", "params_from_labels"]
