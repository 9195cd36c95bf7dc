"""Experiments: YAML configs run into resumable run directories with results, figures and a report.

``mixtures run configs/X.yaml --out DIR`` is :func:`run_experiment` (see the README's
"Experiments and the command line"). Layers, each importing only those above it in this list:

* :mod:`.config` — the config schema (pydantic), loading, overrides, smoke overlay, errors;
* :mod:`.tasks` — the config expanded into fits with stable keys and derived seeds;
* :mod:`.datasets` — each task's data, made once per run;
* :mod:`.store` — the run directory: records, histories, posteriors, results.csv, RunState;
* :mod:`.records` — stored fits checked before reuse (inputs, fields, files: size, digest, parse);
* :mod:`.rundir` — whose run directory it is (``run.json``), whether it can be written, replacing it;
* :mod:`.report` — figures (a registry, one module per figure), tables, findings, report.md;
  it reads a run directory and never imports the runner;
* :mod:`.runner` — fitting, scoring and the run itself.
"""

from mixtures.experiment.config import (
    COVARIANCE_TYPES,
    DATA_SWEEP_KEYS,
    SELECTION_DEFAULTS,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    apply_overrides,
    canonical_key,
    load_config,
    parse_config,
)
from mixtures.experiment.datasets import DataBundle, DataCache, true_params
from mixtures.experiment.records import Verdict, check_record, load_records, read_record, task_inputs
from mixtures.experiment.report import FIGURES, make_figures, write_report
from mixtures.experiment.rundir import RunDirectoryError
from mixtures.experiment.runner import posterior_summary, run_experiment, run_task, score
from mixtures.experiment.store import (
    HISTORY_ID_COLUMNS,
    MAX_POSTERIOR_DRAWS,
    POSTERIOR_COLUMNS,
    RESULT_COLUMNS,
    TIME_COLUMNS,
    TRUTH_METRICS,
    RunState,
    RunWriteError,
    StoreError,
    params_from_record,
    read_histories,
    read_history,
    read_posterior,
    read_results,
    write_history,
    write_posterior,
    write_results,
)
from mixtures.experiment.tasks import RECORD_VERSION, Task, build_model, derived_seed, expand_tasks, kl_seed

__all__ = [
    "COVARIANCE_TYPES", "DATA_SWEEP_KEYS", "FIGURES", "HISTORY_ID_COLUMNS", "MAX_POSTERIOR_DRAWS", "POSTERIOR_COLUMNS",
    "RECORD_VERSION", "RESULT_COLUMNS", "SELECTION_DEFAULTS", "TIME_COLUMNS", "TRUTH_METRICS", "Config", "ConfigError",
    "DataBundle", "DataCache", "DataConfig", "MethodConfig", "RunDirectoryError", "RunState", "RunWriteError",
    "StoreError", "Task", "Verdict", "apply_overrides", "build_model", "canonical_key", "check_record",
    "derived_seed", "expand_tasks", "kl_seed", "load_config", "load_records", "make_figures", "params_from_record",
    "parse_config", "posterior_summary", "read_histories", "read_history", "read_posterior", "read_record",
    "read_results", "run_experiment", "run_task", "score", "task_inputs", "true_params", "write_history",
    "write_posterior", "write_report", "write_results",
]
