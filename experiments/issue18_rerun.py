"""Re-measure two of issue #18's goals in one run, interleaved, and print Markdown rows.

* **Wide data** (``benchmark.WIDE_SIZES``, full covariance, float64 and float32): one EM iteration
  (``EMStep``) on the route the E step takes now (whitening at D ≥ ``WHITENING_FROM_D``), the same
  iteration forced onto the fused feature route, and scikit-learn's ``_e_step`` + ``_m_step``,
  one call of each per round; GFLOP/s from ``benchmark.em_flops`` on each route's own count, and
  % of the matmul peak measured in this run (``benchmark.matmul_peak``, CPU time).
* **Steps over an EM iteration** (``goals_benchmark.step_rows``): MAP, mean-field SVI, the Pyro
  program and NumPyro (when installed).

Run from the repository root: ``PYTHONPATH=$PWD python experiments/issue18_rerun.py [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import benchmark
import goals_benchmark
import torch
from threadpoolctl import threadpool_limits

import mixtures
from mixtures.families.gaussian import whitened
from mixtures.inference.em import EMStep
from mixtures.kernels import parallel


def _timed(runs: dict, repeats: int) -> dict[str, float]:
    """Median process CPU seconds of each callable, one call of each per round after a warm-up."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            began = time.process_time()
            run()
            times[name].append(time.process_time() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def _wide_config(n: int, d: int, k: int, dtype: torch.dtype, repeats: int, peaks: dict) -> str:
    X64, start = benchmark.make_problem(n, d, k)
    X, params = X64.to(dtype), benchmark.start_for(start, "full", dtype)
    model = mixtures.GaussianMixture(k, "full")
    gm = benchmark.sklearn_model(params)
    X_np, last = X.numpy(), {}
    threshold = whitened.WHITENING_FROM_D

    def ours(route):
        whitened.WHITENING_FROM_D = threshold if route == "now" else 10 ** 9
        try:
            with parallel.using(1):
                last[route] = EMStep(model, X, reg_covar=benchmark.REG_COVAR)(benchmark.fresh(params))
        finally:
            whitened.WHITENING_FROM_D = threshold

    def sk():
        benchmark.set_sklearn_params(gm, params)
        benchmark.sklearn_iteration(gm, X_np)

    cpu = _timed({"now": lambda: ours("now"), "features": lambda: ours("features"), "sklearn": sk}, repeats)
    flops_now = benchmark.em_flops(n, d, k, "full")
    whitened.WHITENING_FROM_D = 10 ** 9
    flops_features = benchmark.em_flops(n, d, k, "full")
    whitened.WHITENING_FROM_D = threshold
    name = str(dtype).removeprefix("torch.")
    peak = peaks[name]["cpu"]
    ll_now, ll_features = (float(last[r][1].log_likelihood) for r in ("now", "features"))
    route = "whitening" if whitened.uses_whitening(model.cov_type, k, d) else "features"
    now, features, sklearn = (1e3 * cpu[r] for r in ("now", "features", "sklearn"))
    rate = flops_now / cpu["now"] / 1e9
    return (f"| {n:.0e} | {d} | {k} | {name} | {route} | {now:.1f} | {features:.1f} | {sklearn:.1f} | "
            f"{sklearn / now:.2f} | {rate:.1f} | {100 * rate / peak:.0f} % | "
            f"{100 * flops_features / cpu['features'] / 1e9 / peak:.0f} % | "
            f"{abs(ll_now - ll_features) / abs(ll_features):.1e} |")


def wide_rows(repeats: int, peaks: dict) -> list[str]:
    lines = ["| n | d | K | dtype | route | ours CPU (ms) | features route CPU (ms) | sklearn CPU (ms) | "
             "CPU ratio (sklearn / ours) | GFLOP/s | % of peak | features route % of peak | LL rel (routes) |",
             "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d, k in benchmark.WIDE_SIZES:
        for dtype in (torch.float64, torch.float32):
            lines.append(_wide_config(n, d, k, dtype, repeats, peaks))
            print(lines[-1], flush=True)
    return lines


def step_lines(repeats: int) -> list[str]:
    rows = goals_benchmark.step_rows(benchmark.make_problem, benchmark.start_for, goals_benchmark.STEP_SIZES,
                                     repeats, quick=False)
    lines = ["| routine | n | d | K | dtype | step CPU (ms) | EM CPU (ms) | step / EM (CPU) | goal |",
             "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for row in rows:
        ratio = row["step_cpu"] / row["em_cpu"]
        limits = {"MAP": goals_benchmark.GOALS["map"], "SVI mean-field": goals_benchmark.GOALS["svi"]}
        limit = limits.get(row["routine"])
        goal = "–" if limit is None else ("**met**" if ratio <= limit else f"**not met** ({ratio / limit:.2f}× over)")
        lines.append(f"| {row['routine']} | {row['n']:.0e} | {row['d']} | {row['k']} | {row['dtype']} | "
                     f"{1e3 * row['step_cpu']:.1f} | {1e3 * row['em_cpu']:.1f} | {ratio:.2f} | {goal} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("wide", "steps"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        with open("/proc/loadavg") as load:
            print("load average at start:", load.read().split()[:3], flush=True)
        if args.only != "steps":
            peaks = benchmark.matmul_peak(1)
            print("peaks (GFLOP/s by CPU time):", {k: round(v["cpu"], 1) for k, v in peaks.items()}, flush=True)
            print("\n".join(wide_rows(args.repeats, peaks)))
        if args.only != "wide":
            print("\n".join(step_lines(args.repeats)))
        with open("/proc/loadavg") as load:
            print("load average at end:", load.read().split()[:3], flush=True)


if __name__ == "__main__":
    main()
