"""What ``mixtures fit`` and ``select`` check before fitting, validated as a config's method entry is.

A routine with its ``--option`` values and prior options (``--prior``, ``--weight-prior``,
``--weight-concentration``, ...) becomes a :class:`~mixtures.experiment.config.MethodConfig`,
so the command line and config files accept and refuse the same things; errors name the
command-line option (``--weight-concentration: must be a finite number > 0; got -1.0.``).
Seeds are checked against torch's 64-bit range, the data path must be a regular file, and
a prior must fit the data (mean of length D, covariance prior shaped for each covariance
type tried) before the first fit. :func:`add_data_options` and :func:`load_data` are how both
commands read DATA (columns, a label column, header, index column); ``fit`` also takes
``--weights COLUMN`` (``add_data_options(weights=True)``, :func:`fit_data`): per-point sample weights.
:func:`output_directory` checks ``--out DIR`` before anything is fitted.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch import Tensor

from mixtures.core.files import check_writable
from mixtures.data import OLD_FAITHFUL_COLUMNS, old_faithful
from mixtures.datafile import FORMATS, Table, parse_columns, read_table
from mixtures.experiment.config.errors import ConfigError, from_validation_error
from mixtures.experiment.config.methods import MethodConfig
from mixtures.experiment.config.values import MAX_SEED
from mixtures.experiment.config.yamltext import load_yaml
from mixtures.inference.registry import ROUTINES

#: prior fields (GaussianPrior's) -> their command-line options
PRIOR_OPTIONS = {"weight_prior": "--weight-prior", "weight_concentration": "--weight-concentration",
                 "mean_prior": "--mean-prior", "mean_precision": "--mean-precision",
                 "degrees_of_freedom": "--degrees-of-freedom", "covariance_prior": "--covariance-prior",
                 "kind": "--prior-kind", "scale_prior": "--scale-prior", "lkj_concentration": "--lkj-concentration"}


def option_values(items: Sequence[str]) -> dict[str, Any]:
    """``["max_iter=500", "tol=1e-8"]`` -> ``{"max_iter": 500, "tol": "1e-8"}`` (YAML values, duplicate keys and
    alias bombs refused; the routine's record converts and checks them)."""
    options: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError("--option", item, f"{item!r} is not KEY=VALUE.", "e.g. --option max_iter=500")
        key, text = item.split("=", 1)
        key = key.strip()
        if key in options:
            raise ConfigError("--option", key, "is given twice.", "each option once")
        options[key] = load_yaml(text, "--option", key) if text.strip() else None
    return options


def prior_values(given: Mapping[str, str | None]) -> dict[str, Any]:
    """The prior fields given on the command line (``{field: text}``, ``None`` = not given), read as YAML."""
    return {name: load_yaml(text, PRIOR_OPTIONS[name]) for name, text in given.items() if text is not None}


def _option_of(key: str) -> tuple[str, str]:
    """A MethodConfig key path -> ``(command-line option, key below it)``."""
    if key.startswith("prior."):
        field, _, rest = key.removeprefix("prior.").partition(".")
        name = field.split("[")[0]
        return PRIOR_OPTIONS.get(name, "--prior"), field[len(name):] + rest
    if key.startswith("options."):
        return "--option", key.removeprefix("options.")
    return ("--prior" if key.startswith("prior") else "--method"), ""


def method_config(method: str, options: dict[str, Any], prior: dict[str, Any] | None) -> tuple[MethodConfig, str]:
    """The routine, its options and prior validated as a config's method entry; ``(method, note)``.

    ``prior``: the fields given (``{}`` = ``--prior`` alone: the library's defaults; ``None``:
    none). A routine that needs a prior (vb, nuts, svi with a distributional guide) gets
    the default one when none is given, and ``note`` says so.
    """
    routine = ROUTINES[method]
    note = ""
    if prior is None and (routine.prior == "required" or routine.needs_prior(options)):
        prior, note = {}, f"{method} needs a prior: using the library's default GaussianPrior() (see --prior)"
    raw: dict[str, Any] = {"method": method, "options": options}
    if prior is not None:
        raw["prior"] = prior
    try:
        return MethodConfig.model_validate(raw), note
    except ValidationError as error:
        found = from_validation_error(error, "<command line>", tags=frozenset(), overridden={})
        option, below = _option_of(found.key)
        raise ConfigError(option, below, found.problem, found.allowed) from None


def check_prior_fits(method: MethodConfig, X: Tensor, n_components: Iterable[int],
                     covariance_types: Iterable[str]) -> None:
    """The method's prior resolves on ``X`` ``(N, D)`` for every K and covariance type tried."""
    prior = method.gaussian_prior()
    if prior is None:
        return
    for covariance_type in covariance_types:
        for k in n_components:
            try:
                prior.resolve(X, k, covariance_type)
            except (ValueError, RuntimeError) as error:
                field = next((name for name in PRIOR_OPTIONS if name in str(error)), None)
                raise ConfigError(PRIOR_OPTIONS.get(field, "--prior"), "", f"does not fit the data (D={X.shape[1]}, "
                                  f"K={k}, {covariance_type}): {error}",
                                  "--mean-prior of length D; --covariance-prior (D, D) for full/tied, (D,) for "
                                  "diag, a number for spherical") from None


def check_seed(seed: int, n_starts: int = 1, option: str = "--seed") -> None:
    """``seed`` .. ``seed + n_starts - 1`` are seeds torch takes (0 .. 2**64 - 1)."""
    if not 0 <= seed or seed + n_starts - 1 > MAX_SEED:
        span = "" if n_starts == 1 else f" (starts use seeds {seed}..{seed + n_starts - 1})"
        raise ConfigError(option, "", f"must be from 0 to {MAX_SEED} (2**64 - 1); got {seed}{span}.",
                          "integers from 0 to 2**64 - 1")


def check_data_path(text: str) -> Path:
    """The path of a data file: when it exists, a regular file (not a directory, device or pipe; a missing
    file is left to :func:`mixtures.data.load`, whose error says where it looked)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise ConfigError(text, "", f"is {kind}, not a data file.", "a .csv, .npy or text file, or old_faithful")
    return path


def add_data_options(command: argparse.ArgumentParser, weights: bool = False) -> None:
    """How DATA is read: columns, a label column, the header, an index column, standardization; with
    ``weights``, also ``--weights COLUMN`` (:func:`add_weight_option`)."""
    group = command.add_argument_group(
        "data file", "CSV (or whitespace text, or Parquet with pandas+pyarrow) with an optional header, index "
                     "column and label column; with --label-column, ARI, NMI and the aligned confusion table are "
                     "reported against the labels")
    group.add_argument("--columns", metavar="LIST",
                       help="feature columns, comma-separated names or 0-based positions (default: all but the index "
                            "and label columns)")
    group.add_argument("--label-column", metavar="C", help="column of class labels (text or numbers), name or position")
    group.add_argument("--index-column", metavar="C",
                       help="column of row names to drop (default: the first column when its header is empty, as "
                            "pandas writes)")
    group.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                       help="whether the first line names the columns (default: detected, a header has no numbers)")
    group.add_argument("--format", dest="data_format", default="auto", choices=FORMATS, metavar="F",
                       help="/".join(FORMATS) + " (default auto: from the extension)")
    group.add_argument("--standardize", action="store_true", help="centre each feature and scale it to unit sd")
    if weights:
        add_weight_option(group)


def add_weight_option(command: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--weights COLUMN``: a column of the data file holding per-point sample weights (``fit(sample_weight=)``)."""
    command.add_argument("--weights", metavar="C", dest="weight_column",
                         help="column of per-point sample weights (finite, >= 0; an integer weight counts the row "
                              "that many times), name or position; not a feature")


def fit_data(table: Table) -> dict[str, Any]:
    """The data keywords of ``mixtures.fit`` beyond ``X``: ``sample_weight`` when the table has weights."""
    return {} if table.weights is None else {"sample_weight": table.weights}


def weighted_total(values: Tensor, table: Table) -> float:
    """``Σ_n w_n v_n`` of per-point values ``(N,)`` (``Σ_n v_n`` without weights)."""
    return float(values.sum() if table.weights is None else (table.weights.to(values) * values).sum())


def _column(text: str | None) -> str | int | None:
    return int(text) if text is not None and text.strip().isdigit() else text


def load_data(args: argparse.Namespace) -> tuple[Table, str]:
    """The data of ``fit``/``select``: points, and labels when ``--label-column`` is given."""
    columns = parse_columns(args.columns) if args.columns is not None else None
    weight_column = getattr(args, "weight_column", None)
    if args.data == "old_faithful":
        given = [option for option, value in (("--columns", columns), ("--label-column", args.label_column),
                                              ("--index-column", args.index_column), ("--header", args.header),
                                              ("--weights", weight_column))
                 if value is not None]
        if given:
            raise ConfigError(given[0], "", "does not apply to the bundled old_faithful data.", "a data file")
        table = Table(old_faithful(), feature_names=OLD_FAITHFUL_COLUMNS)
        if args.standardize:
            table.X = (table.X - table.X.mean(0)) / table.X.std(0)
        return table, "old_faithful"
    table = read_table(check_data_path(args.data), columns=columns, label_column=_column(args.label_column),
                       index_column=_column(args.index_column), header=args.header, format=args.data_format,
                       standardize=args.standardize, weight_column=_column(weight_column))
    return table, args.data


def output_directory(text: str) -> Path:
    """``--out DIR`` of ``fit``/``select``: created when missing, checked writable before any fit."""
    out = Path(text).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", "", f"{text!r} is a file, not a directory.", "a directory (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_writable(out)
    except OSError as error:
        raise ConfigError("--out", "", f"cannot write in {text!r} ({error.strerror or error}).",
                          "a writable directory") from None
    return out
