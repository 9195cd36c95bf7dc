"""Compare the speed of two checkouts of ``mixtures`` side by side, interleaved, in one run.

A refactoring must not cost speed; a shared, noisy machine makes two separate benchmark
runs incomparable. This script alternates the two trees within one run: each round runs a
fresh worker process per tree (``PYTHONPATH=<tree>``), in alternating order, and each worker
times the same steps on the same data through API both versions share:

* one EM iteration (``EMStep(model, X)(params)``: one fused pass and the M step);
* one MAP step (``fit(method="map")`` with ``num_steps=S`` minus ``num_steps=0``, over ``S``);
* one VB iteration (``fit(method="vb")`` with ``max_iter=S`` minus ``max_iter=0``, over ``S``).

The report is the median over rounds of each tree's time per step, their ratio, and the
log-likelihoods both reached (they must agree: the same mathematics). One thread.

    python experiments/ab_compare.py --before /path/to/old/checkout --after . [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: (label, n, d, K, covariance type, dtype, steps)
CASES = [
    ("em", 100_000, 2, 5, "full", "float64", 5),
    ("em", 100_000, 16, 16, "full", "float64", 3),
    ("em", 1_000_000, 8, 8, "full", "float32", 3),
    ("em", 1_000_000, 8, 8, "diag", "float64", 3),
    ("map", 100_000, 2, 5, "full", "float64", 10),
    ("map", 100_000, 16, 16, "full", "float64", 5),
    ("vb", 100_000, 8, 8, "full", "float64", 5),
    ("vb", 100_000, 8, 8, "diag", "float64", 5),
]


def worker(out: Path) -> None:
    """Time every case in this process (the tree on PYTHONPATH) and write JSON to ``out``."""
    import torch

    import mixtures
    from mixtures.inference.em import EMStep

    torch.set_num_threads(1)
    prior_type = getattr(mixtures, "GaussianPrior", None)
    if prior_type is None:  # versions before the family seam
        from mixtures.priors import GaussianPrior as prior_type
    results = []
    for label, n, d, k, cov, dtype, steps in CASES:
        generator = torch.Generator().manual_seed(0)
        X = torch.randn(n, d, generator=generator, dtype=torch.float64)
        X += 4.0 * torch.randint(0, k, (n, 1), generator=generator).double()
        X = X.to(getattr(torch, dtype))
        if label == "em":
            model = mixtures.GaussianMixture(k, cov)
            params = mixtures.fit(model, X, "em", max_iter=2, seed=0).params
            step = EMStep(model, X)
            step(params)  # warm-up
            start = time.perf_counter()
            for _ in range(steps):
                new_params, summary = step(params)
            seconds = (time.perf_counter() - start) / steps
            value = float(summary.log_likelihood)
        else:
            prior = prior_type() if label == "vb" else None
            model = mixtures.GaussianMixture(k, cov, prior=prior)
            params = mixtures.fit(mixtures.GaussianMixture(k, cov), X, "em", max_iter=2, seed=0).params
            budget = "num_steps" if label == "map" else "max_iter"
            extra = {"patience": None} if label == "map" else {"tol": 0.0, "warn": False}
            mixtures.fit(model, X, label, init=params, **{budget: 1}, **extra)  # warm-up
            start = time.perf_counter()
            mixtures.fit(model, X, label, init=params, **{budget: 0}, **extra)
            base = time.perf_counter() - start
            start = time.perf_counter()
            result = mixtures.fit(model, X, label, init=params, **{budget: steps}, **extra)
            seconds = (time.perf_counter() - start - base) / steps
            value = float(result.history["log_likelihood"][-1])
        results.append({"case": [label, n, d, k, cov, dtype], "seconds": seconds, "log_likelihood": value})
    out.write_text(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--_worker", dest="worker_out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_out is not None:
        worker(args.worker_out)
        return
    times: dict[str, list[list[dict]]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
        for name in order:
            tree = getattr(args, name).resolve()
            out = Path(f"/tmp/ab_{name}_{os.getpid()}.json")
            env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            subprocess.run([sys.executable, __file__, "--before", ".", "--after", ".", "--_worker", str(out)],
                           env=env, check=True, cwd=tree)
            times[name].append(json.loads(out.read_text()))
            print(f"round {round_ + 1}/{args.rounds}: {name} done", file=sys.stderr)
    lines = [f"# A/B: {args.before} (before) vs {args.after} (after), median of {args.rounds} interleaved rounds, "
             "1 thread", "",
             "| step | n | d | K | cov | dtype | before ms | after ms | after / before | log-lik before | "
             "log-lik after |", "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for index, (label, n, d, k, cov, dtype, _) in enumerate(CASES):
        before = statistics.median(run[index]["seconds"] for run in times["before"]) * 1e3
        after = statistics.median(run[index]["seconds"] for run in times["after"]) * 1e3
        ll_before, ll_after = times["before"][0][index]["log_likelihood"], times["after"][0][index]["log_likelihood"]
        lines.append(f"| {label} | {n:.0e} | {d} | {k} | {cov} | {dtype} | {before:.1f} | {after:.1f} | "
                     f"{after / before:.2f} | {ll_before:.6f} | {ll_after:.6f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
