"""Initializers: where a routine starts (family-agnostic; see :mod:`mixtures.init.initializers`)."""

from mixtures.init.initializers import (
    INITIALIZERS,
    InitSpec,
    check_init,
    initial_responsibilities,
    initialize,
    params_from_labels,
)

__all__ = ["INITIALIZERS", "InitSpec", "check_init", "initialize", "initial_responsibilities", "params_from_labels"]
