"""``mixtures bootstrap``: bootstrap standard errors and intervals of one fit, or the bootstrap LRT
for the number of components (:func:`mixtures.evaluation.bootstrap`, :func:`~mixtures.evaluation.bootstrap_lrt`).

The command's parser (:func:`add_parser`) and its body (:func:`run`) live here so that the
``mixtures`` command registers them with one line each.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from mixtures.core.files import atomic_write_text
from mixtures.evaluation import bootstrap, bootstrap_lrt
from mixtures.evaluation.resampling import KINDS
from mixtures.experiment.commandline import add_data_options, check_seed, load_data
from mixtures.experiment.config.errors import ConfigError
from mixtures.families.gaussian.covariance import COVARIANCE_TYPES, MCLUST_NAMES
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.inference import fit
from mixtures.init import INITIALIZERS

__all__ = ["add_parser", "run"]

EPILOG = """\
Without --lrt: fit K components (EM from the hc start to a relative tolerance of 1e-5, as
mclust) and bootstrap the fit: standard errors and percentile intervals of the weights, means
and covariances (mclust's MclustBootstrap; --kind nonparametric resamples rows, parametric
simulates from the fit, weighted draws Dirichlet point weights). With --lrt: the sequential
bootstrap likelihood-ratio test of K vs K + 1 (mclust's mclustBootstrapLRT): up to K = 8,
stopping at the first K not rejected, or every K up to --k-max. --jobs N runs the replicates in
N processes with the same numbers as one.

  mixtures bootstrap old_faithful --lrt --covariance-type EEE --n-boot 99
  mixtures bootstrap old_faithful --lrt --covariance-type VVV --k-max 3 --jobs 2
  mixtures bootstrap old_faithful --k 3 --covariance-type EEE --kind weighted --n-boot 199 --out se.csv
"""


def add_parser(commands: Any, formatter: type) -> None:
    """Register ``bootstrap`` among ``commands`` (argparse sub-parsers)."""
    command = commands.add_parser("bootstrap", formatter_class=formatter, epilog=EPILOG,
                                  help="bootstrap SEs and intervals of a fit, or the bootstrap LRT for K",
                                  description="Bootstrap inference for a Gaussian mixture, as mclust's "
                                              "MclustBootstrap and mclustBootstrapLRT.")
    command.add_argument("data", metavar="DATA", help="data file, or old_faithful")
    names = list(dict.fromkeys([*MCLUST_NAMES, *COVARIANCE_TYPES, "E", "V"]))
    command.add_argument("--covariance-type", default="VVV", choices=names, metavar="T",
                         help="structure, mclust's name or ours (default VVV)")
    command.add_argument("--lrt", action="store_true", help="the bootstrap LRT of K vs K + 1 instead of SEs")
    command.add_argument("--k", type=int, metavar="K", help="components of the fit to bootstrap (without --lrt)")
    command.add_argument("--kind", default="nonparametric", choices=KINDS, metavar="KIND",
                         help="nonparametric (default), parametric or weighted")
    command.add_argument("--k-max", type=int, metavar="K", help="--lrt: test every K up to this one")
    command.add_argument("--n-boot", type=int, default=999, metavar="B", help="replicates (default 999, mclust's)")
    command.add_argument("--level", type=float, default=None, metavar="A",
                         help="--lrt: significance level (default 0.05); otherwise the intervals' level "
                              "(default 0.95)")
    command.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (default 0)")
    command.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    command.add_argument("--init", default="hc", choices=list(INITIALIZERS), metavar="I",
                         help="start of the fits to the data (default hc)")
    command.add_argument("--rtol", type=float, default=1e-5, metavar="T", help="EM's relative tolerance (1e-5)")
    command.add_argument("--max-iter", type=int, default=1000, metavar="N", help="EM's budget (default 1000)")
    command.add_argument("--reg-covar", type=float, default=1e-6, metavar="R", help="default 1e-6")
    command.add_argument("--out", metavar="FILE", help="write the tidy table as CSV (full precision)")
    add_data_options(command)


def _check(args: argparse.Namespace) -> None:
    for option, value in (("--n-boot", args.n_boot), ("--jobs", args.jobs), ("--max-iter", args.max_iter)):
        if value < 1:
            raise ConfigError(option, "", f"must be at least 1; got {value}.", "integers >= 1")
    if not (args.rtol >= 0 and math.isfinite(args.rtol)):
        raise ConfigError("--rtol", "", f"must be a finite number >= 0; got {args.rtol}.", "e.g. 1e-5")
    if args.level is not None and not 0 < args.level < 1:
        raise ConfigError("--level", "", f"must be strictly between 0 and 1; got {args.level}.", "e.g. 0.05")
    if args.lrt and args.k is not None:
        raise ConfigError("--k", "", "does not apply to --lrt (the test runs K = 1, 2, ...; --k-max bounds it).",
                          "--k-max")
    if not args.lrt and args.k is None:
        raise ConfigError("--k", "", "is required without --lrt (the number of components of the fit to "
                          "bootstrap).", "an integer >= 1")
    if not args.lrt and args.k_max is not None:
        raise ConfigError("--k-max", "", "applies to --lrt only.", "--lrt --k-max K")
    check_seed(args.seed)


def _write(path: str, rows: list[dict[str, Any]]) -> None:
    """The tidy table as CSV, floats by their shortest round-trip ``repr``, empty cells for None."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(rows[0]) if rows else []
    writer.writerow(columns)
    writer.writerows([["" if r[c] is None else repr(r[c]) if isinstance(r[c], float) else r[c] for c in columns]
                      for r in rows])
    print(f"wrote {atomic_write_text(Path(path), buffer.getvalue())}")


def run(args: argparse.Namespace) -> int:
    """The body of ``mixtures bootstrap``; returns the exit code."""
    _check(args)
    table, name = load_data(args)
    X = table.X
    options = {"reg_covar": args.reg_covar, "rtol": args.rtol, "max_iter": args.max_iter}
    if args.lrt:
        result = bootstrap_lrt(X, args.covariance_type, n_boot=args.n_boot, k_max=args.k_max,
                               level=0.05 if args.level is None else args.level, seed=args.seed,
                               processes=args.jobs, init=args.init, **options)
        print(f"{name}: {X.shape[0]} points, {X.shape[1]} feature(s)")
        print(result)
        rows = result.table()
    else:
        level = 0.95 if args.level is None else args.level
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = fit(GaussianMixture(args.k, args.covariance_type), X, "em", init=args.init, seed=args.seed,
                           **options)
        result = bootstrap(original, X, args.kind, n_boot=args.n_boot, seed=args.seed, processes=args.jobs,
                           **options)
        rows = result.table(level)
        print(f"{name}: {args.covariance_type}, K={args.k}, log-likelihood {original.log_likelihood:.3f}; "
              f"{args.kind} bootstrap, {result.weights.shape[0]} of {args.n_boot} replicates fitted "
              f"({result.redrawn} redrawn, {result.unconverged} unconverged), {level:g} percentile intervals")
        print(f"{'parameter':<10} {'k':>2} {'i':>2} {'j':>2} {'estimate':>12} {'SE':>12} {'lower':>12} {'upper':>12}")
        for r in rows:
            i, j = ("" if r["i"] is None else r["i"]), ("" if r["j"] is None else r["j"])
            print(f"{r['parameter']:<10} {r['component']:>2} {i:>2} {j:>2} {r['estimate']:>12.5g} {r['se']:>12.5g} "
                  f"{r['lower']:>12.5g} {r['upper']:>12.5g}")
    if args.out:
        _write(args.out, rows)
    sys.stdout.flush()
    return 0
