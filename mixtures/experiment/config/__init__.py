"""Experiment configs: YAML files validated into frozen pydantic models.

A config (see ``configs/*.yaml`` and the README's "Experiments and the command line")
names the data, the model, the fitting methods, initializers and seeds, an optional
sweep, and metric/output options; :mod:`.schema` says what each key may hold,
:mod:`.loading` reads files, overrides and the smoke overlay, :mod:`.errors` turns
every problem into a :class:`ConfigError` naming the file, the key path and what is allowed.
"""

from mixtures.experiment.config.data import COVARIANCE_TYPES, DataConfig
from mixtures.experiment.config.errors import ConfigError

# loading imports the figure registry (mixtures.experiment.report), whose modules import the config's
# submodules, never this package: so the order of these imports does not matter.
from mixtures.experiment.config.loading import (
    apply_overrides,
    apply_smoke,
    canonical_key,
    load_config,
    parse_config,
    parse_yaml,
)
from mixtures.experiment.config.methods import PRIOR_KEYS, MethodConfig
from mixtures.experiment.config.schema import (
    DATA_SWEEP_KEYS,
    FORMATS,
    SELECTION_DEFAULTS,
    SWEEP_KEYS,
    Config,
    MetricsConfig,
    ModelConfig,
    OutputConfig,
)

__all__ = ["COVARIANCE_TYPES", "DATA_SWEEP_KEYS", "FORMATS", "PRIOR_KEYS", "SELECTION_DEFAULTS", "SWEEP_KEYS",
           "Config", "ConfigError", "DataConfig", "MethodConfig", "MetricsConfig", "ModelConfig", "OutputConfig",
           "apply_overrides", "apply_smoke", "canonical_key", "load_config", "parse_config", "parse_yaml"]
