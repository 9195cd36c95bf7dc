"""The ``mixtures`` command: run experiment configs, fit one model, select K.

``main(argv)`` returns the exit code: 0 on success, 2 for a bad config, bad data, bad
arguments or an output directory that cannot take the run (one clear line on stderr,
no traceback, before anything is fitted), 1 when a fit fails numerically, a run ends
with failed fits (unless ``--allow-failures``), a file cannot be written (disk full) or
anything unexpected happens (still one line; ``MIXTURES_TRACEBACK=1`` shows the
traceback), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import mixtures
from mixtures import evaluation, plot
from mixtures.core.files import check_writable
from mixtures.datafile import Table
from mixtures.experiment import (
    COVARIANCE_TYPES,
    SELECTION_DEFAULTS,
    ConfigError,
    RunDirectoryError,
    RunWriteError,
    bootstrap_command,
    load_config,
    read_results,
    run_experiment,
)
from mixtures.experiment.commandline import (
    PRIOR_OPTIONS,
    add_data_options,
    check_prior_fits,
    check_seed,
    fit_data,
    load_data,
    method_config,
    option_values,
    output_directory,
    prior_values,
    weighted_total,
)
from mixtures.experiment.outputs import (
    agreement,
    confusion_lines,
    write_fit_outputs,
    write_selection_table,
    write_views,
)
from mixtures.experiment.selection import (
    check_noise_method,
    iteration_options,
    model_label,
    noise_region,
    parse_starts,
    select_models,
    top_models,
)
from mixtures.families.gaussian.covariance import COVARIANCE_TYPES as STRUCTURE_NAMES
from mixtures.families.gaussian.covariance import MCLUST_NAMES
from mixtures.families.gaussian.priors import KINDS, SCALE_PRIORS, WEIGHT_PRIORS
from mixtures.inference.registry import ROUTINES
from mixtures.init import INITIALIZERS

PROGRAM = "mixtures"

MAIN_EPILOG = """\
examples:
  mixtures run configs/em_vs_vi.yaml                 EM vs hard EM vs k-means vs MAP vs SVI
  mixtures run configs/init.yaml --smoke --out /tmp/init   a tiny run to check the setup
  mixtures run configs/sample_size.yaml seeds=[0,1,2] model.covariance_type=diag
  mixtures fit old_faithful --k 2 --method em
  mixtures fit data.csv --k 3 --method svi --option num_steps=2000 --option lr=0.02
  mixtures select old_faithful --k-max 9 --out bic.png
  mixtures bootstrap old_faithful --lrt --covariance-type EEE --n-boot 99

Every command has its own help: mixtures run --help, mixtures fit --help, ...
"""

RUN_EPILOG = """\
The output directory holds run.json (which experiment it belongs to), config.yaml
(the resolved config), results.csv (one row per fit, every metric), histories/
(one CSV of per-iteration traces per fit), histories.csv (all traces in one long
table), figures/ and report.md. Rerunning the same command resumes: finished fits
are reused when their data, config, package version and stored files still match,
and refitted (with a note saying why) otherwise. Another experiment's directory is
refused unless --force. A run with failed fits exits 1 unless --allow-failures.
Overrides are OmegaConf key paths (dotted, list indices as [i] or .i) with YAML values:

  mixtures run configs/em_vs_vi.yaml model.n_components=3 seeds=[0,1]
  mixtures run configs/em_vs_vi.yaml methods[4].options.lr=0.01 --formats png,pdf
  mixtures run configs/separation.yaml --smoke --quiet --out /tmp/sep
"""

FIT_EPILOG = """\
DATA is a .csv, .npy or whitespace-separated text file (one point per row), or
the word old_faithful for the bundled Old Faithful data.

  mixtures fit old_faithful --k 2 --method em --init kmeans++ --seed 1
  mixtures fit points.txt --k 4 --method hard_em --covariance-type diag
  mixtures fit old_faithful --k 2 --method map --option num_steps=500 --option lr=0.05
  mixtures fit old_faithful --k 6 --method vb --weight-prior dirichlet_process --weight-concentration 0.1
  mixtures fit old_faithful --k 2 --method nuts --prior --option num_samples=200 --option warmup=200

A CSV with a header, pandas' index column and a text label column (iris saved by pandas):

  mixtures fit iris.csv --k 3 --method em --label-column species --out fit/
  mixtures fit iris.csv --k 3 --method vb --columns petal_length,petal_width --standardize

vb and nuts need a prior: --prior gives the library's default GaussianPrior() (also
used when no prior option is given), and each prior field has its own option.
"""

SELECT_EPILOG = """\
Fits every K = 1..k-max with every covariance type (default: mclust's fourteen) and
prints BIC, AIC and ICL (lower is better, scikit-learn's sign) and mclust's BIC
(2 loglik - p log N, higher is better, of EM's last E step as mclust reports it).
The defaults are mclust's: EM from the hierarchical-agglomeration start (init hc:
one tree for every K and type) to a relative tolerance of 1e-5, max_iter 1000, one
start; --tol gives an absolute tolerance instead, --init kmeans --n-init R k-means++
starts (seeds S, S+1, ...; the best non-singular start is kept); --starts
hc,kmeans++:5 fits every cell from hc and five k-means++ starts and keeps the best
final log-likelihood (never below the hc start's). They are those of
configs/model_selection.yaml (mixtures.experiment.SELECTION_DEFAULTS), so both give
the same table on its four types. Fits whose covariance collapsed onto the
reg_covar floor are flagged singular and excluded from the choice, as mclust does.

  mixtures select old_faithful                  # EEE K=3, mclust BIC -2314.316
  mixtures select old_faithful --k-max 6 --covariance-types full diag --out bic.png
  mixtures select data.csv --init kmeans --n-init 10 --tol 1e-8 --max-iter 5000
  mixtures select iris.csv --label-column species --out sel/   # sel/selection.csv, sel/bic.png
  mixtures select old_faithful --starts hc,kmeans++:5 --out sel/   # multi-start
"""


def _routines() -> list[str]:
    return sorted(ROUTINES)


def _inits() -> list[str]:
    return list(INITIALIZERS)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROGRAM, formatter_class=formatter, epilog=MAIN_EPILOG,
        description="Gaussian mixtures declared once as Pyro programs, fitted by EM, hard EM, "
                    "k-means, k-medians, MAP and SVI on one scale.")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch intra-op threads, at most the machine's CPUs (default 1: these fits are "
                             "small and a second thread mostly waits; raise it for large data)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands, formatter)
    _add_fit(commands, formatter)
    _add_select(commands, formatter)
    bootstrap_command.add_parser(commands, formatter)
    return parser


def _add_run(commands: Any, formatter: type) -> None:
    run = commands.add_parser("run", formatter_class=formatter, epilog=RUN_EPILOG,
                              help="run an experiment config (configs/*.yaml)",
                              description="Run every fit of a YAML experiment config and write results, "
                                          "figures and a report.")
    run.add_argument("config", metavar="CONFIG", help="YAML config file, e.g. configs/em_vs_vi.yaml")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="override config values (dotted paths, YAML values)")
    run.add_argument("--out", metavar="DIR", help="output directory (default: runs/<config name>[-smoke])")
    run.add_argument("--smoke", action="store_true",
                     help="apply the config's smoke block: tiny sizes, few steps")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    run.add_argument("--formats", metavar="LIST",
                     help="figure formats, comma-separated (png, pdf, svg); every figure is written as PNG, PDF and "
                          "SVG whatever this says")
    run.add_argument("--force", action="store_true",
                     help="replace what --out holds (another experiment's run, or this one's): the old run's "
                          "files are deleted first")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="fit in N worker processes, each with its share of --threads (at least 1); results are "
                          "identical to a sequential run (default 1)")
    run.add_argument("--dask", metavar="ADDRESS",
                     help="fit on a Dask cluster: a scheduler address (tcp://host:8786), or local[:N] to start N "
                          "local worker processes; results identical to a sequential run; needs "
                          "pip install \"mixtures[dask]\"")
    run.add_argument("--allow-failures", action="store_true",
                     help="exit 0 even when some fits failed (they are listed in results.csv and report.md)")


def _add_fit(commands: Any, formatter: type) -> None:
    fit = commands.add_parser("fit", formatter_class=formatter, epilog=FIT_EPILOG,
                              help="fit one mixture to a data file and print it",
                              description="Fit one Gaussian mixture and print its weights, means, "
                                          "covariances, log-likelihood, BIC and convergence.")
    fit.add_argument("data", metavar="DATA", help="data file, or old_faithful")
    fit.add_argument("--k", type=int, required=True, metavar="K", help="number of components")
    fit.add_argument("--method", required=True, choices=_routines(), metavar="M",
                     help="routine: " + ", ".join(_routines()))
    fit.add_argument("--covariance-type", default="full", choices=COVARIANCE_TYPES, metavar="T",
                     help="full (default), tied, diag or spherical")
    fit.add_argument("--init", default="kmeans", choices=_inits(), metavar="I",
                     help="initializer: " + ", ".join(_inits()) + " (default kmeans)")
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="random seed, 0 to 2**64 - 1 (default 0)")
    fit.add_argument("--n-init", type=int, default=1, metavar="R", help="restarts, best kept (default 1)")
    fit.add_argument("--reg-covar", type=float, default=1e-6, metavar="R",
                     help="added to covariance diagonals (default 1e-6)")
    fit.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                     help="routine option, repeatable (max_iter=500, tol=1e-8, num_steps=2000, lr=0.05...)")
    fit.add_argument("--out", metavar="DIR",
                     help="write params.json, assignments.csv (labels, uncertainty, responsibilities) and result.pt "
                          "into DIR (created if missing)")
    add_data_options(fit, weights=True)
    _add_prior_options(fit)


def _add_prior_options(command: argparse.ArgumentParser) -> None:
    """``--prior`` and one option per GaussianPrior field (YAML values, validated like a config's prior)."""
    group = command.add_argument_group(
        "prior", "a GaussianPrior for vb, nuts, MAP-EM (em) and svi/map with a prior; any field implies --prior, "
                 "unset fields take the library's data-scaled defaults")
    group.add_argument("--prior", action="store_true", help="use a prior (vb and nuts get the default one anyway)")
    helps = {"weight_prior": "/".join(WEIGHT_PRIORS), "weight_concentration": "alpha > 0 (a number or a list of K)",
             "mean_prior": "m0, a list of D numbers, e.g. [2, 70]", "mean_precision": "beta0 > 0",
             "degrees_of_freedom": "nu0 > D - 1", "covariance_prior": "Psi0: a number, a list (D) or a matrix",
             "kind": "/".join(KINDS), "scale_prior": "/".join(SCALE_PRIORS) + " (nonconjugate)",
             "lkj_concentration": "eta > 0 (nonconjugate)"}
    for name, option in PRIOR_OPTIONS.items():
        group.add_argument(option, dest=f"prior_{name}", metavar="V", help=helps[name])


def _add_select(commands: Any, formatter: type) -> None:
    select = commands.add_parser("select", formatter_class=formatter, epilog=SELECT_EPILOG,
                                 help="choose K and the covariance type by BIC/AIC/ICL",
                                 description="Model selection over K x covariance type.")
    select.add_argument("data", metavar="DATA", help="data file, or old_faithful")
    defaults = SELECTION_DEFAULTS
    select.add_argument("--k-max", type=int, default=defaults["k_max"], metavar="K",
                        help=f"largest K tried (default {defaults['k_max']})")
    names = list(dict.fromkeys([*STRUCTURE_NAMES, *MCLUST_NAMES, "E", "V"]))
    select.add_argument("--covariance-types", nargs="+", default=list(MCLUST_NAMES), choices=names, metavar="T",
                        help="types tried, by name or mclust name (default: mclust's fourteen)")
    select.add_argument("--method", default=defaults["method"], choices=_routines(), metavar="M",
                        help=f"routine (default {defaults['method']})")
    select.add_argument("--init", default=defaults["init"], choices=_inits(), metavar="I",
                        help=f"initializer (default {defaults['init']})")
    select.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the first start (default 0); start r uses seed S + r (at most 2**64 - 1)")
    select.add_argument("--n-init", type=int, default=defaults["n_init"], metavar="R",
                        help=f"starts per (K, type), the best non-singular one kept (default {defaults['n_init']})")
    select.add_argument("--starts", metavar="LIST",
                        help="multi-start, replacing --init/--n-init: initializers with counts, e.g. hc,kmeans++:5 "
                             "(the best final log-likelihood of a cell kept, never below the hc start's)")
    select.add_argument("--rtol", type=float, default=defaults["rtol"], metavar="T",
                        help=f"relative tolerance on the log-likelihood, mclust's rule (default {defaults['rtol']:g})")
    select.add_argument("--tol", type=float, default=defaults["tol"], metavar="T",
                        help="absolute tolerance, nats per point, instead of --rtol")
    select.add_argument("--max-iter", type=int, default=defaults["max_iter"], metavar="N",
                        help=f"iteration budget per start (default {defaults['max_iter']})")
    select.add_argument("--reg-covar", type=float, default=1e-6, metavar="R", help="default 1e-6")
    select.add_argument("--noise", nargs="?", const="box", default=None, metavar="REGION",
                        help="also fit every cell with a uniform noise component (mclust's 'with noise'; rows "
                             "labelled TYPE+noise): over the data's bounding box (the default, 'box'), its convex "
                             "'hull', or a given volume (a number)")
    select.add_argument("--out", metavar="PATH", help="a directory: write selection.csv (the full table at full "
                        "precision), bic.png and the best model's classification, uncertainty and density plots "
                        "there; PATH.png/.pdf: the BIC plot only")
    select.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_options(select)
    _add_prior_options(select)


# -------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixtures`` console script; returns the exit code."""
    parser = build_parser()
    try:
        # Overrides may come after options (run CONFIG --out DIR key=value): argparse leaves
        # such late positionals unrecognized, so they are collected here.
        args, extra = parser.parse_known_args(argv)
        late = [item for item in extra if not item.startswith("-")]
        if args.command != "run" or len(late) != len(extra):
            parser.parse_args(argv)  # reports the unrecognized arguments (exit 2)
        if late:
            args.overrides = list(args.overrides) + late
    except SystemExit as exit_:  # --help (0) and usage errors (2)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _set_threads(args.threads)
        return {"run": _run, "fit": _fit, "select": _select, "bootstrap": bootstrap_command.run}[args.command](args)
    except (ConfigError, RunDirectoryError, FileNotFoundError) as error:
        return _fail(str(error), 2)
    except RunWriteError as error:
        resume = "; finished fits are kept: rerun the same command to resume" if args.command == "run" else ""
        return _fail(f"{error}{resume}", 1)
    except OSError as error:
        return _fail(_os_message(error), 1)
    except (ValueError, TypeError) as error:  # DataError, ParameterError, bad options
        return _fail(f"{type(error).__name__}: {_one_line(error)}", 2)
    except FloatingPointError as error:  # DivergenceError: the fit broke down
        return _fail(f"the fit failed: {_one_line(error)}", 1)
    except MemoryError:
        return _fail("out of memory: use less data, fewer components or a smaller chunk_size", 1)
    except KeyboardInterrupt:
        message = "interrupted"
        if args.command == "run":
            message += "; finished fits are saved: rerun the same command to resume"
        return _fail(message, 130)
    except Exception as error:  # the promise: one line, never a traceback (unless asked for)
        if os.environ.get("MIXTURES_TRACEBACK"):
            raise
        return _fail(f"unexpected {type(error).__name__}: {_one_line(error)[:300]} (a bug in mixtures: please "
                     "report it; MIXTURES_TRACEBACK=1 shows the traceback)", 1)


def _one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split())


def _fail(message: str, code: int) -> int:
    print(f"{PROGRAM}: error: {_one_line(message)}", file=sys.stderr)
    return code


def _os_message(error: OSError) -> str:
    where = f" {error.filename!r}" if error.filename else ""
    hint = " (the disk is full)" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"cannot access{where}: {error.strerror or error}{hint}"


def _set_threads(threads: int) -> None:
    """torch's intra-op threads, at most the machine's CPUs (100000 threads crash OpenMP's allocator)."""
    cpus = os.cpu_count() or 1
    if not 1 <= threads <= cpus:
        raise ConfigError("--threads", "", f"must be from 1 to {cpus} (this machine's CPUs); got {threads}.",
                          f"integers from 1 to {cpus}")
    torch.set_num_threads(threads)


def _progress_disabled(quiet: bool) -> bool:
    return quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


# -------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(args.config, item, f"{item!r} is not a KEY=VALUE override.",
                              "overrides like model.n_components=3 after the config path")
    if args.formats:
        formats = [part.strip() for part in args.formats.split(",") if part.strip()]
        overrides.append("output.formats=[" + ", ".join(formats) + "]")
    cpus = os.cpu_count() or 1
    if not 1 <= args.jobs <= cpus:
        raise ConfigError("--jobs", "", f"must be from 1 to {cpus} (this machine's CPUs); got {args.jobs}.",
                          f"integers from 1 to {cpus}")
    config = load_config(args.config, overrides=overrides, smoke=args.smoke)
    default = Path("runs") / (Path(args.config).stem + ("-smoke" if args.smoke else ""))
    out = Path(args.out) if args.out else default
    out_dir = run_experiment(config, out, smoke=args.smoke, quiet=args.quiet, replace=args.force, jobs=args.jobs,
                             dask=args.dask,
                             log=lambda text: print(f"{PROGRAM}: {text}", file=sys.stderr))
    rows = read_results(out_dir / "results.csv")
    failed = sum(row["status"] != "ok" for row in rows)
    if not args.quiet:
        print(f"report: {out_dir / 'report.md'}")
    if failed and not args.allow_failures:
        return _fail(f"{failed} of {len(rows)} fits failed (their errors are in results.csv and under 'Failed fits' "
                     f"in {out_dir / 'report.md'}); --allow-failures exits 0 anyway", 1)
    if not args.quiet:
        print(f"{len(rows)} fits ({failed} failed) -> {out_dir}/")
    return 0


def _prior(args: argparse.Namespace) -> dict[str, Any] | None:
    """The prior fields given (``{}``: ``--prior`` alone), or ``None`` without any prior option."""
    given = {name: getattr(args, f"prior_{name}") for name in PRIOR_OPTIONS}
    fields = prior_values(given)
    return fields if fields or args.prior else None


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _matrix(rows: Any) -> str:
    return "[" + ", ".join("[" + ", ".join(_fmt(v) for v in row) + "]" for row in rows) + "]"


def _fit(args: argparse.Namespace) -> int:
    check_seed(args.seed, args.n_init)
    out_dir = output_directory(args.out) if args.out else None
    method, note = method_config(args.method, option_values(args.option), _prior(args))
    table, name = load_data(args)
    X = table.X
    check_prior_fits(method, X, [args.k], [args.covariance_type])
    model = mixtures.GaussianMixture(args.k, args.covariance_type, prior=method.gaussian_prior())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mixtures.fit(model, X, args.method, init=args.init, seed=args.seed, n_init=args.n_init,
                              reg_covar=args.reg_covar, **method.options, **fit_data(table))
    params = result.params
    n, d = X.shape
    criteria = evaluation.information_criteria(result, X, table.weights)
    log_likelihood = weighted_total(params.log_prob(X), table)  # weighted: as if each row were repeated w times
    print(f"{args.method} on {name}: {n} points, {d} feature(s); K={args.k}, {args.covariance_type} "
          f"covariances, init {args.init}, seed {args.seed}")
    if method.prior is not None:
        fields = ", ".join(f"{key}={value!r}" for key, value in method.prior.items())
        print(f"prior: GaussianPrior({fields})" + ("  (the library's defaults)" if not fields else ""))
    print()
    print(f"{'component':>9}  {'weight':>9}  mean")
    for k in range(params.n_components):
        mean = ", ".join(_fmt(v) for v in params.locs[k].tolist())
        print(f"{k:>9}  {float(params.weights[k]):>9.5g}  [{mean}]")
    print()
    print("covariances:")
    for k in range(params.n_components):
        print(f"  {k}: {_matrix(params.covariances[k].tolist())}")
    print()
    elbo = result.history.last("elbo")
    print(f"log-likelihood  {_fmt(log_likelihood)}  ({_fmt(log_likelihood / n)} per point)")
    if math.isfinite(elbo):
        print(f"ELBO            {_fmt(elbo)}")
    print(f"BIC             {_fmt(criteria['bic'])}   AIC {_fmt(criteria['aic'])}   "
          f"ICL {_fmt(criteria['icl'])}   (lower is better)")
    print(f"iterations      {result.n_iter}")
    print(f"converged       {'yes' if result.converged else 'no'}")
    singular = evaluation.is_singular(params, args.reg_covar)
    if singular:
        print("warning: a covariance collapsed onto the reg_covar floor (singular fit).")
    summary = {"data": name, "method": args.method, "init": args.init, "seed": args.seed, "n_init": args.n_init,
               "reg_covar": args.reg_covar, "log_likelihood": log_likelihood, "bic": criteria["bic"],
               "aic": criteria["aic"], "icl": criteria["icl"], "n_iter": int(result.n_iter),
               "converged": bool(result.converged), "singular": singular}
    if table.labels is not None:
        summary.update(_print_agreement(table, result.predict(X)))
    if out_dir is not None:
        for path in write_fit_outputs(out_dir, result, X, summary, table.feature_names, table.labels,
                                      table.label_names):
            print(f"wrote {path}")
    for message in dict.fromkeys([note] * bool(note) + [str(w.message).splitlines()[0] for w in caught]):
        print(f"warning: {message}", file=sys.stderr)
    return 0


def _print_agreement(table: Table, predicted: Any) -> dict[str, float]:
    """ARI, NMI and the aligned confusion table of the fit against the label column; returns the numbers."""
    found = agreement(table.labels, predicted)
    print()
    print(f"against the labels in {table.label_column!r}: ARI {_fmt(found['ari'])}   NMI {_fmt(found['nmi'])}   "
          f"accuracy after matching components to classes {_fmt(found['accuracy'])}")
    for line in confusion_lines(found["confusion"], table.label_names):
        print(line)
    return {"ari": found["ari"], "nmi": found["nmi"], "accuracy": found["accuracy"]}


def _figure_target(text: str) -> tuple[Path, tuple[str, ...], bool]:
    """Where ``select --out`` writes its plot (a stem and formats), checked before any fit: the folder
    exists and takes files (a directory target is created), and the target is not a directory. The last
    item says whether the target is a directory (which also takes selection.csv)."""
    out = Path(text).expanduser()
    formats: tuple[str, ...] = ("png",)
    directory = False
    if out.suffix.lower() in (".png", ".pdf"):
        formats, out = (out.suffix.lower()[1:],), out.with_suffix("")
    elif out.is_dir() or not out.suffix:
        if out.exists() and not out.is_dir():
            raise ConfigError("--out", "", f"{text!r} is a file, not a directory for bic.png.",
                              "a directory, or a file name ending in .png or .pdf")
        out, directory = output_directory(text) / "bic", True
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError("--out", "", f"the folder {str(folder)!r} does not exist or is not a directory.",
                          "a path in an existing directory")
    for fmt in formats:
        if out.with_suffix(f".{fmt}").is_dir():
            raise ConfigError("--out", "", f"{str(out.with_suffix('.' + fmt))!r} is a directory.", "a file name")
    try:
        check_writable(folder)
    except OSError as error:
        raise ConfigError("--out", "", f"cannot write in {str(folder)!r} ({error.strerror}).",
                          "a writable directory") from None
    return out, formats, directory


def _select(args: argparse.Namespace) -> int:
    for option, value in (("--k-max", args.k_max), ("--n-init", args.n_init), ("--max-iter", args.max_iter)):
        if value < 1:
            raise ConfigError(option, "", f"must be at least 1; got {value}.", "integers >= 1")
    for option, value in (("--tol", args.tol), ("--rtol", args.rtol)):
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise ConfigError(option, "", f"must be a finite number >= 0; got {value}.", "e.g. 1e-5")
    starts = _starts(args.starts)
    check_seed(args.seed, max([args.n_init] + [count for _, count in starts or ()]))
    target = _figure_target(args.out) if args.out else None
    options = iteration_options(args.method, args.tol, args.max_iter, args.rtol)
    method, note = method_config(args.method, options, _prior(args))
    table, name = load_data(args)
    X = table.X
    types = list(dict.fromkeys(args.covariance_types))
    check_prior_fits(method, X, range(1, args.k_max + 1), types)
    try:
        region = noise_region(args.noise, X)
        check_noise_method(args.method, region)
    except ValueError as error:
        raise ConfigError("--noise", "", str(error), "box, hull or a volume > 0, with a routine that runs it") from None
    if note:
        print(f"warning: {note}", file=sys.stderr)
    rows = select_models(X, args.k_max, types, method=args.method, init=args.init, seed=args.seed,
                         n_init=args.n_init, reg_covar=args.reg_covar, options=method.options,
                         progress=not _progress_disabled(args.quiet), prior=method.gaussian_prior(),
                         labels=table.labels, rtol=args.rtol, tol=args.tol, max_iter=args.max_iter,
                         noise=region, starts=starts, keep_results=target is not None and target[2])
    _print_selection(args, name, X, options, rows)
    usable = [r for r in rows if r["status"] == "ok" and not r["singular"]]
    if not usable:
        return _fail("no usable fit: every fit failed or was singular", 1)
    for criterion in ("bic", "aic", "icl"):
        best = min(usable, key=lambda r: r[criterion])
        against = f"; ARI {best['ari']:.4g}, NMI {best['nmi']:.4g} against {table.label_column!r}" \
            if table.labels is not None else ""
        print(f"best by {criterion.upper()}: K={best['n_components']}, {model_label(best)} "
              f"({criterion.upper()} {best[criterion]:.2f}{against})")
    top = ", ".join(f"{model_label(r)},{r['n_components']} {r['mclust_bic']:.3f}"
                    + (f" ({r['bic_difference']:+.3f})" if i else "") for i, r in enumerate(top_models(rows)))
    print(f"top models by mclust's BIC (higher is better): {top}")
    if target is not None and target[2]:  # a directory: the table and the best model's views too
        print(f"wrote {write_selection_table(target[0].parent / 'selection.csv', rows)}")
        best = top_models(rows)[0]
        for path in write_views(target[0].parent, X, best["result"], feature_names=table.feature_names,
                                title=f"{name}: {best['covariance_type']}, K={best['n_components']}"):
            print(f"wrote {path}")
    if target is not None:
        fig, ax = plot.subplots(1, 1, figsize=(6.5, 4.5))
        plot.plot_bic(ax, [{**r, "covariance_type": model_label(r)} for r in rows if r["status"] == "ok"],
                      title=f"{name}: BIC ({args.method})")
        for path in plot.save_figure(fig, target[0], formats=target[1]):  # atomic, through mixtures.core.files
            print(f"wrote {path}")
    return 0


def _starts(text: str | None) -> tuple[tuple[str, int], ...] | None:
    """``--starts`` parsed (:func:`~mixtures.experiment.selection.parse_starts`), or ``None``."""
    if text is None:
        return None
    try:
        return parse_starts(text)
    except ValueError as error:
        raise ConfigError("--starts", "", str(error).removeprefix("starts: "), "e.g. hc,kmeans++:5") from None


def _print_selection(args: argparse.Namespace, name: str, X: Any, options: dict[str, Any], rows: list[dict]) -> None:
    settings = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                         for key, value in options.items())
    seeds = f"seed {args.seed}" if args.n_init == 1 else f"seeds {args.seed}..{args.seed + args.n_init - 1}"
    plan = f"init {args.init}, {args.n_init} start(s) per model ({seeds})" if args.starts is None else \
        f"starts {args.starts} per model (seeds from {args.seed})"
    print(f"model selection on {name}: {X.shape[0]} points, {X.shape[1]} feature(s); {args.method}"
          + (f" ({settings})" if settings else "") + f", {plan}, the best non-singular start kept. Lower is better.")
    print()
    print(f"{'K':>3}  {'covariance':<10} {'log-lik':>12} {'BIC':>12} {'AIC':>12} {'ICL':>12} "
          f"{'iter':>5} {'converged':>9} {'mclust BIC':>12}  note")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['n_components']:>3}  {model_label(r):<10} {'':>12} {'':>12} {'':>12} {'':>12} "
                  f"{'':>5} {'':>9} {'':>12}  failed: {r['error']}")
            continue
        note = "singular (excluded)" if r["singular"] else ""
        if args.starts is not None and r["init"] != "hc" and math.isfinite(r["hc_log_likelihood"]):
            note += f"{'; ' if note else ''}{r['init']} seed {r['seed']}: " \
                    f"{r['log_likelihood'] - r['hc_log_likelihood']:+.2f} over hc"
        converged = f"{r['starts_converged']}/{r['starts']}"
        print(f"{r['n_components']:>3}  {model_label(r):<10} {r['log_likelihood']:>12.2f} "
              f"{r['bic']:>12.2f} {r['aic']:>12.2f} {r['icl']:>12.2f} {r['n_iter']:>5} {converged:>9} "
              f"{r['mclust_bic']:>12.3f}  {note}")
    print()
    print("converged: starts that met the tolerance before the iteration budget; iter: iterations of the "
          "kept start.")


__all__ = ["build_parser", "main", "select_models"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
