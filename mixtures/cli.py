"""The ``mixtures`` command: run experiment configs, fit one model, select K.

``main(argv)`` returns the exit code: 0 on success, 2 for a bad config, bad data
or bad arguments (one clear line on stderr, no traceback), 1 when a fit fails
numerically, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

import mixtures
from mixtures import data, evaluation, plot
from mixtures.experiment import (
    COVARIANCE_TYPES,
    SELECTION_DEFAULTS,
    ConfigError,
    load_config,
    read_results,
    run_experiment,
)
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

Every command has its own help: mixtures run --help, mixtures fit --help, ...
"""

RUN_EPILOG = """\
The output directory holds config.yaml (the resolved config), results.csv (one
row per fit, every metric), histories/ (one CSV of per-iteration traces per fit),
histories.csv (all traces in one long table), figures/ and report.md. Rerunning
the same command resumes: finished fits are skipped. Overrides are OmegaConf
key paths (dotted, list indices as [i] or .i) with YAML values:

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
"""

SELECT_EPILOG = """\
Fits every K = 1..k-max with every covariance type and prints BIC, AIC and ICL
(lower is better, scikit-learn's sign). Each (K, type) is fitted from --n-init
starts (seeds S, S+1, ...) and the best non-singular start is kept. The defaults
(EM, k-means starts, tol 1e-6, max_iter 1000, 3 starts) are those of
configs/model_selection.yaml (mixtures.experiment.SELECTION_DEFAULTS), so both give
the same table. Fits whose covariance collapsed onto the reg_covar floor are
flagged singular and excluded from the choice, as mclust does.

  mixtures select old_faithful                  # tied K=3, BIC 2314.30
  mixtures select old_faithful --k-max 6 --covariance-types full diag --out bic.png
  mixtures select data.csv --tol 1e-8 --max-iter 5000 --n-init 10
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
                        help="torch intra-op threads (default 1: these fits are small and a second "
                             "thread mostly waits; raise it for large data)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands, formatter)
    _add_fit(commands, formatter)
    _add_select(commands, formatter)
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
    run.add_argument("--formats", metavar="LIST", help="figure formats, comma-separated: png or png,pdf")


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
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    fit.add_argument("--n-init", type=int, default=1, metavar="R", help="restarts, best kept (default 1)")
    fit.add_argument("--reg-covar", type=float, default=1e-6, metavar="R",
                     help="added to covariance diagonals (default 1e-6)")
    fit.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                     help="routine option, repeatable (max_iter=500, tol=1e-8, num_steps=2000, lr=0.05...)")


def _add_select(commands: Any, formatter: type) -> None:
    select = commands.add_parser("select", formatter_class=formatter, epilog=SELECT_EPILOG,
                                 help="choose K and the covariance type by BIC/AIC/ICL",
                                 description="Model selection over K x covariance type.")
    select.add_argument("data", metavar="DATA", help="data file, or old_faithful")
    defaults = SELECTION_DEFAULTS
    select.add_argument("--k-max", type=int, default=defaults["k_max"], metavar="K",
                        help=f"largest K tried (default {defaults['k_max']})")
    select.add_argument("--covariance-types", nargs="+", default=list(defaults["covariance_types"]),
                        choices=COVARIANCE_TYPES, metavar="T", help="types tried (default: all four)")
    select.add_argument("--method", default=defaults["method"], choices=_routines(), metavar="M",
                        help=f"routine (default {defaults['method']})")
    select.add_argument("--init", default=defaults["init"], choices=_inits(), metavar="I",
                        help=f"initializer (default {defaults['init']})")
    select.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the first start (default 0); start r uses seed S + r")
    select.add_argument("--n-init", type=int, default=defaults["n_init"], metavar="R",
                        help=f"starts per (K, type), the best non-singular one kept (default {defaults['n_init']})")
    select.add_argument("--tol", type=float, default=defaults["tol"], metavar="T",
                        help=f"convergence tolerance, nats per point (default {defaults['tol']:g})")
    select.add_argument("--max-iter", type=int, default=defaults["max_iter"], metavar="N",
                        help=f"iteration budget per start (default {defaults['max_iter']})")
    select.add_argument("--reg-covar", type=float, default=1e-6, metavar="R", help="default 1e-6")
    select.add_argument("--out", metavar="PATH", help="write the BIC plot (PATH.png/.pdf, or a directory)")
    select.add_argument("--quiet", action="store_true", help="no progress bar")


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
    if args.threads < 1:
        return _fail(f"--threads must be at least 1; got {args.threads}", 2)
    torch.set_num_threads(args.threads)
    try:
        return {"run": _run, "fit": _fit, "select": _select}[args.command](args)
    except ConfigError as error:
        return _fail(str(error), 2)
    except FileNotFoundError as error:
        return _fail(str(error), 2)
    except (ValueError, TypeError) as error:  # DataError, ParameterError, bad options
        return _fail(f"{type(error).__name__}: {_one_line(error)}", 2)
    except FloatingPointError as error:  # DivergenceError: the fit broke down
        return _fail(f"the fit failed: {_one_line(error)}", 1)
    except KeyboardInterrupt:
        message = "interrupted"
        if args.command == "run":
            message += "; finished fits are saved: rerun the same command to resume"
        return _fail(message, 130)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _fail(message: str, code: int) -> int:
    print(f"{PROGRAM}: error: {_one_line(message)}", file=sys.stderr)
    return code


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
    config = load_config(args.config, overrides=overrides, smoke=args.smoke)
    default = Path("runs") / (Path(args.config).stem + ("-smoke" if args.smoke else ""))
    out = Path(args.out) if args.out else default
    out_dir = run_experiment(config, out, smoke=args.smoke, quiet=args.quiet)
    if not args.quiet:
        rows = read_results(out_dir / "results.csv")
        failed = sum(row["status"] != "ok" for row in rows)
        print(f"{len(rows)} fits ({failed} failed) -> {out_dir}/")
        print(f"report: {out_dir / 'report.md'}")
    return 0


def _load_data(text: str):
    if text == "old_faithful":
        return data.old_faithful(), "old_faithful"
    return data.load(text), text


def _options(items: Sequence[str]) -> dict[str, Any]:
    options = {}
    for item in items:
        if "=" not in item:
            raise ConfigError("--option", item, f"{item!r} is not KEY=VALUE.", "e.g. --option max_iter=500")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError("--option", key, f"cannot read the value {text!r}.", "YAML scalars") from None
        if isinstance(value, str):
            try:
                value = float(value)  # 1e-8 is text to YAML 1.1
            except ValueError:
                pass
        options[key.strip()] = value
    return options


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _matrix(rows: Any) -> str:
    return "[" + ", ".join("[" + ", ".join(_fmt(v) for v in row) + "]" for row in rows) + "]"


def _fit(args: argparse.Namespace) -> int:
    X, name = _load_data(args.data)
    options = _options(args.option)
    model = mixtures.GaussianMixture(args.k, args.covariance_type)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = mixtures.fit(model, X, args.method, init=args.init, seed=args.seed, n_init=args.n_init,
                                  reg_covar=args.reg_covar, **options)
        except TypeError as error:
            raise ConfigError("--option", "", f"routine {args.method!r} rejected an option: {error}.",
                              f"the options in help(mixtures.inference.ROUTINES[{args.method!r}])") from None
    params = result.params
    n, d = X.shape
    criteria = evaluation.information_criteria(result, X)
    log_likelihood = float(params.log_prob(X).sum())
    print(f"{args.method} on {name}: {n} points, {d} feature(s); K={args.k}, {args.covariance_type} "
          f"covariances, init {args.init}, seed {args.seed}")
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
    if evaluation.is_singular(params, args.reg_covar):
        print("warning: a covariance collapsed onto the reg_covar floor (singular fit).")
    for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught):
        print(f"warning: {message}", file=sys.stderr)
    return 0


def _iteration_options(method: str, tol: float, max_iter: int) -> dict[str, Any]:
    """``tol``/``max_iter`` under the routine's own option names (its record's ``tol_option`` and
    ``budget_option``; MAP/SVI take ``num_steps``, NUTS neither)."""
    routine = ROUTINES[method]
    options: dict[str, Any] = {}
    if routine.tol_option is not None:
        options[routine.tol_option] = tol
    if routine.budget_option is not None:
        options[routine.budget_option] = max_iter
    return options


def select_models(X: Any, k_max: int, covariance_types: Sequence[str], *, method: str = "em",
                  init: str = "kmeans", seed: int = 0, n_init: int = 1, reg_covar: float = 1e-6,
                  options: dict[str, Any] | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """One row per (K, covariance type): the best of ``n_init`` starts (seeds ``seed``, ``seed + 1``...).

    The best start is the non-singular one with the highest log-likelihood (a
    singular one only when every start is singular), as the model_selection
    config's report keeps the best seed. Rows hold ``n_components``,
    ``covariance_type``, ``status`` (``ok``/``failed``), ``log_likelihood``,
    ``bic``, ``aic``, ``icl``, ``n_iter``, ``converged``, ``singular``, ``seed``
    (of the kept start), ``starts`` and ``starts_converged``; failed ones ``error``.
    """
    options = dict(options or {})
    grid = [(k, t) for t in covariance_types for k in range(1, k_max + 1)]
    rows = []
    for k, cov_type in tqdm(grid, disable=not progress, desc="select", unit="model", leave=False,
                            file=sys.stderr):
        row: dict[str, Any] = {"n_components": k, "covariance_type": cov_type, "status": "ok"}
        if k > X.shape[0]:
            row.update(status="failed", error=f"K={k} exceeds the {X.shape[0]} points")
            rows.append(row)
            continue
        starts, errors = [], []
        for start in range(n_init):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    result = mixtures.fit(mixtures.GaussianMixture(k, cov_type), X, method, init=init,
                                          seed=seed + start, reg_covar=reg_covar, **options)
                    candidate = dict(evaluation.information_criteria(result, X))
                    candidate.update(log_likelihood=float(result.params.log_prob(X).sum()),
                                     singular=evaluation.is_singular(result.params, reg_covar),
                                     n_iter=int(result.n_iter), converged=bool(result.converged),
                                     seed=seed + start)
                    starts.append(candidate)
                except (ValueError, FloatingPointError, RuntimeError) as error:
                    errors.append(_one_line(error)[:80])
        if not starts:
            row.update(status="failed", error=errors[0])
        else:
            best = max(starts, key=lambda c: (not c["singular"], c["log_likelihood"]))
            row.update(best, starts=len(starts), starts_converged=sum(c["converged"] for c in starts))
        rows.append(row)
    return rows


def _select(args: argparse.Namespace) -> int:
    if args.k_max < 1:
        raise ConfigError("--k-max", "", f"must be at least 1; got {args.k_max}.", "integers >= 1")
    if args.n_init < 1:
        raise ConfigError("--n-init", "", f"must be at least 1; got {args.n_init}.", "integers >= 1")
    if args.max_iter < 1:
        raise ConfigError("--max-iter", "", f"must be at least 1; got {args.max_iter}.", "integers >= 1")
    if not (args.tol >= 0 and math.isfinite(args.tol)):
        raise ConfigError("--tol", "", f"must be a finite number >= 0; got {args.tol}.", "e.g. 1e-6")
    X, name = _load_data(args.data)
    types = list(dict.fromkeys(args.covariance_types))
    options = _iteration_options(args.method, args.tol, args.max_iter)
    rows = select_models(X, args.k_max, types, method=args.method, init=args.init, seed=args.seed,
                         n_init=args.n_init, reg_covar=args.reg_covar, options=options,
                         progress=not _progress_disabled(args.quiet))
    usable = [r for r in rows if r["status"] == "ok" and not r["singular"]]
    settings = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                         for key, value in options.items())
    seeds = f"seed {args.seed}" if args.n_init == 1 else f"seeds {args.seed}..{args.seed + args.n_init - 1}"
    print(f"model selection on {name}: {X.shape[0]} points, {X.shape[1]} feature(s); {args.method}"
          + (f" ({settings})" if settings else "") + f", init {args.init}, {args.n_init} start(s) per model "
          f"({seeds}), the best non-singular start kept. Lower is better.")
    print()
    print(f"{'K':>3}  {'covariance':<10} {'log-lik':>12} {'BIC':>12} {'AIC':>12} {'ICL':>12} "
          f"{'iter':>5} {'converged':>9}  note")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['n_components']:>3}  {r['covariance_type']:<10} {'':>12} {'':>12} {'':>12} {'':>12} "
                  f"{'':>5} {'':>9}  failed: {r['error']}")
            continue
        note = "singular (excluded)" if r["singular"] else ""
        converged = f"{r['starts_converged']}/{r['starts']}"
        print(f"{r['n_components']:>3}  {r['covariance_type']:<10} {r['log_likelihood']:>12.2f} "
              f"{r['bic']:>12.2f} {r['aic']:>12.2f} {r['icl']:>12.2f} {r['n_iter']:>5} {converged:>9}  {note}")
    print()
    print("converged: starts that met the tolerance before the iteration budget; iter: iterations of the "
          "kept start.")
    if not usable:
        return _fail("no usable fit: every fit failed or was singular", 1)
    for criterion in ("bic", "aic", "icl"):
        best = min(usable, key=lambda r: r[criterion])
        print(f"best by {criterion.upper()}: K={best['n_components']}, {best['covariance_type']} "
              f"({criterion.upper()} {best[criterion]:.2f})")
    if args.out:
        out = Path(args.out)
        formats = ("png",)
        if out.suffix.lower() in (".png", ".pdf"):
            formats = (out.suffix.lower()[1:],)
            out = out.with_suffix("")
        elif out.is_dir() or not out.suffix:
            out = out / "bic"
        fig, ax = plot.subplots(1, 1, figsize=(6.5, 4.5))
        plot.plot_bic(ax, [r for r in rows if r["status"] == "ok"], title=f"{name}: BIC ({args.method})")
        for path in plot.save_figure(fig, out, formats=formats):  # atomic, through mixtures.core.files
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
