"""Deprecated: the experiment config moved to :mod:`mixtures.experiment.config`.

This module re-exports the old public names and warns on import; import from
``mixtures.experiment`` (or ``mixtures.experiment.config``) instead.
"""

import warnings

from mixtures.experiment.config import (  # noqa: F401  (re-exported)
    COVARIANCE_TYPES,
    DATA_SWEEP_KEYS,
    FORMATS,
    PRIOR_KEYS,
    SELECTION_DEFAULTS,
    SWEEP_KEYS,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    MetricsConfig,
    ModelConfig,
    OutputConfig,
    apply_overrides,
    apply_smoke,
    canonical_key,
    load_config,
    parse_config,
    parse_yaml,
)
from mixtures.experiment.report.figures import FIGURES as _REGISTRY

#: the registered figure names (now :data:`mixtures.experiment.report.figures.FIGURES`)
FIGURES = tuple(_REGISTRY)

warnings.warn("mixtures.config is deprecated; import from mixtures.experiment (or mixtures.experiment.config).",
              DeprecationWarning, stacklevel=2)
