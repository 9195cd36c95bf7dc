"""Many missingness patterns: one E step and the program's observed-data log-density, per-pattern vs batched.

Data: ``random_mixture(K, D, seed=0)`` sampled ``N`` times (seed 1), then ``remove_at_random(rate, seed=2)``;
at N = 20 000, D = 10, rate 0.1 that leaves several hundred distinct patterns in a handful of
observed-count groups. Each candidate code tree (a checkout of the package: ``--baseline`` is the
per-pattern code, the current tree the batched one) runs in its own single-threaded process and times,
from the true parameters:

* ``complete``: ``GaussianMixture.e_step`` on the complete data (the fused pass: the reference cost);
* ``first e_step``: the first pass on the data with NaNs, finding its patterns included (once per fit);
* ``e_step``: the later passes (``mixtures.families.gaussian.missing.e_step``; EM's iterations);
* ``log_prob``: ``MixtureParams.component_log_prob`` of the data with NaNs (the Pyro observation site's table).

Processes alternate between the trees (``--rounds`` each, ``--reps`` timings of each kind per process), and
the table reports medians of CPU time (``time.process_time``). The summaries of both trees are compared
(largest relative difference). Writes ``experiments/MISSING_PATTERNS.md``.

    PYTHONPATH=. python experiments/missing_patterns_benchmark.py --baseline /tmp/mixtures_base
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import mixtures
from mixtures.core.missing import marginalizing
n, d, k, reps = (int(value) for value in sys.argv[1:4] + sys.argv[5:6])
rate, out = float(sys.argv[4]), sys.argv[6]
truth = mixtures.data.random_mixture(k, d, seed=0)
X, _ = truth.sample(n, seed=1)
Xm = mixtures.data.remove_at_random(X, rate, seed=2)
model = mixtures.GaussianMixture(k, "full")
shift = torch.zeros(d, dtype=torch.float64)
patterns = int(torch.unique(torch.isnan(Xm), dim=0).shape[0])
groups = int(torch.unique((~torch.isnan(Xm)).sum(1)).numel())
def timed(f):
    start = time.process_time(); value = f(); return time.process_time() - start, value
times = {"complete": [], "e_step": [], "log_prob": []}
with marginalizing():
    Xm = mixtures.core.validation.as_data(Xm)  # the tensor fit's passes see (patterns are kept for it)
    times["first_e_step"] = [timed(lambda: model.e_step(Xm, truth, shift))[0]]  # finding the patterns included
    for _ in range(reps):
        times["complete"].append(timed(lambda: model.e_step(X, truth, shift))[0])
    for _ in range(reps):
        t, summary = timed(lambda: model.e_step(Xm, truth, shift)); times["e_step"].append(t)
    for _ in range(reps):
        t, table = timed(lambda: truth.component_log_prob(Xm)); times["log_prob"].append(t)
torch.save({"nk": summary.nk, "sx": summary.sx, "sxx": summary.sxx,
            "log_likelihood": summary.log_likelihood, "entropy": summary.entropy, "table": table}, out)
print(json.dumps({"times": times, "patterns": patterns, "groups": groups, "file": mixtures.__file__}))
"""


def run_tree(tree: Path, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", WORKER, str(args.n), str(args.d), str(args.k), str(args.rate),
                           str(args.reps), str(out)], env=env, capture_output=True, text=True, check=True,
                          cwd=out.parent)  # not the working directory: "-c" puts it first on sys.path
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found["file"].startswith(str(tree)):
        raise RuntimeError(f"the worker imported {found['file']}, not the tree {tree}")
    return found


def largest_difference(first: dict, second: dict) -> float:
    """The largest relative difference ``|a - b| / max(|b|, 1)`` over every tensor of two saved summaries."""
    return max(float(((first[key] - second[key]).abs() / second[key].abs().clamp_min(1.0)).max()) for key in first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the per-pattern code")
    parser.add_argument("--current", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("MISSING_PATTERNS.md"))
    args = parser.parse_args()
    import torch  # noqa: PLC0415 (the parent only compares saved summaries)

    from mixtures.core.files import atomic_write_text  # noqa: PLC0415

    trees = {"per-pattern (baseline)": args.baseline, "batched by observed count": args.current}
    times: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    loads, info, saved = [], {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                loads.append(os.getloadavg()[0])
                out = Path(folder) / f"{round_}-{len(saved)}.pt"
                info = run_tree(tree, args, out)
                saved[name] = torch.load(out)
                for kind, values in info["times"].items():
                    times[name].setdefault(kind, []).extend(values)
    difference = largest_difference(saved["batched by observed count"], saved["per-pattern (baseline)"])
    lines = ["# Many missingness patterns: per-pattern vs batched by observed count", "",
             f"Generated by `experiments/missing_patterns_benchmark.py` (N = {args.n}, D = {args.d}, K = {args.k}, "
             f"{args.rate:.0%} of the entries removed at random: {info['patterns']} patterns in {info['groups']} "
             f"observed-count groups). Median CPU seconds of {args.rounds * args.reps} timings per tree ({args.rounds} "
             "of the first e_step), one "
             f"thread, processes alternating between the trees; load average during the run "
             f"{min(loads):.1f}-{max(loads):.1f} on a shared 2-core machine. `complete`: the fused E step on the "
             "complete data; `first e_step`: the first pass on the data with NaNs (finding the patterns included, "
             "once per fit); `e_step`: the later passes (EM's iterations); `log_prob`: the observed blocks' "
             "densities `(N, K)` (the Pyro observation site). Largest relative difference between the two "
             f"trees' summaries (statistics, log-likelihood, entropy, densities): {difference:.1e}.", "",
             "| code | complete (s) | first e_step (s) | e_step (s) | e_step / complete | log_prob (s) "
             "| log_prob / complete |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in trees:
        median = {kind: statistics.median(values) for kind, values in times[name].items()}
        lines.append(f"| {name} | {median['complete']:.4f} | {median['first_e_step']:.4f} | {median['e_step']:.4f} | "
                     f"{median['e_step'] / median['complete']:.1f} | {median['log_prob']:.4f} | "
                     f"{median['log_prob'] / median['complete']:.1f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    atomic_write_text(args.out, report)


if __name__ == "__main__":
    main()
