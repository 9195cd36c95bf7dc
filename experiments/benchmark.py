"""Time one EM iteration of ``mixtures`` against scikit-learn's, on the same data and start.

One iteration is the E step plus the M step:

* ours: ``mixtures.inference.em.EMStep(model, X)(params)`` (one fused chunked pass);
* scikit-learn: ``gm._e_step(X)`` then ``gm._m_step(X, log_resp)`` on a
  ``sklearn.mixture.GaussianMixture`` whose ``weights_``, ``means_``,
  ``covariances_`` and ``precisions_cholesky_`` are set from the same
  :class:`mixtures.MixtureParams` (private API of scikit-learn 1.x: ``_e_step``
  returns ``(mean log-likelihood, log_resp (N, K))``, ``_m_step`` overwrites the
  four attributes).

Both compute in the data's dtype (scikit-learn keeps float32 data and float32
parameters in float32 throughout). For every configuration the report gives the
median wall and CPU times of several repeats after a warm-up, their ratios, the
relative difference of the log-likelihoods and of the new parameters, and the
peak extra memory of one iteration measured in a fresh subprocess (peak resident
size after the iteration minus once the data are loaded).

A last section times steps of the ``"map"`` routine when it is registered.
Rewriting the report keeps any hand-written text below :data:`ANALYSIS_MARKER`.

Run it with the OpenBLAS overrides of some machines removed, so that numpy's
OpenBLAS picks its own kernel (the report prints which one ran)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv/bin/python \\
        experiments/benchmark.py [--quick] [--threads N] [--out experiments/BENCHMARK.md]

Other options: ``--repeats R``, ``--no-memory``, ``--no-map``. To measure a modified
copy of the package, put it first on ``PYTHONPATH`` and write to another ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import mixtures
from mixtures import MixtureParams
from mixtures.inference.em import EMStep

Tensor = torch.Tensor

REG_COVAR = 1e-6
FULL_SIZES = [(100_000, 2, 5), (100_000, 16, 16), (1_000_000, 8, 8)]
QUICK_SIZES = [(20_000, 2, 3), (20_000, 8, 4)]
COV_TYPES = ["full", "diag"]
DTYPES = {"float64": torch.float64, "float32": torch.float32}
MAP_SIZES = [(100_000, 2, 5), (100_000, 16, 16)]
QUICK_MAP_SIZES = [(5_000, 2, 3)]
DOC_COMMAND = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv/bin/python "
               "experiments/benchmark.py")


# -- problems -------------------------------------------------------------------------
def make_problem(n: int, d: int, k: int, seed: int = 0) -> tuple[Tensor, MixtureParams]:
    """Data ``X`` ``(n, d)`` float64 from a random full-covariance mixture, and a full start.

    The start is the truth with shifted means and inflated covariances, so the
    responsibilities are soft and the iteration does real work.
    """
    generator = torch.Generator().manual_seed(seed)
    locs = 3.0 * torch.randn(k, d, generator=generator, dtype=torch.float64)
    factors = torch.randn(k, d, d, generator=generator, dtype=torch.float64)
    covariances = factors @ factors.transpose(-1, -2) / d + 0.5 * torch.eye(d, dtype=torch.float64)
    weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
    X, _ = MixtureParams(weights, locs, covariances).sample(n, seed=seed + 1)
    noise = torch.randn(k, d, generator=generator, dtype=torch.float64)
    start = MixtureParams(weights, locs + 0.5 * noise, 1.3 * covariances)
    return X, start


def start_for(start: MixtureParams, cov_type: str, dtype: torch.dtype) -> MixtureParams:
    """The start in ``cov_type`` (diag keeps the diagonal) and ``dtype``."""
    if cov_type == "full":
        params = start
    else:
        variances = start.covariances.diagonal(dim1=-2, dim2=-1)
        params = MixtureParams(start.weights, start.locs, variances, cov_type)
    return params.to(dtype)


def fresh(params: MixtureParams) -> MixtureParams:
    """A new container over the same tensors: drops the cached whitener so each repeat pays it."""
    return MixtureParams.from_native(params.weights, params.locs, params.native, params.cov_type,
                                     validate=False)


def sklearn_model(params: MixtureParams):
    """A scikit-learn GaussianMixture holding ``params`` (in their dtype)."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    gm = SkGaussianMixture(params.n_components, covariance_type=params.covariance_type,
                           reg_covar=REG_COVAR)
    set_sklearn_params(gm, params)
    return gm


def set_sklearn_params(gm, params: MixtureParams) -> None:
    gm.weights_ = params.weights.numpy().copy()
    gm.means_ = params.locs.numpy().copy()
    if params.covariance_type == "full":
        gm.covariances_ = params.covariances.numpy().copy()
    else:  # diag: variances (K, D)
        gm.covariances_ = params.native.numpy().copy()
    gm.precisions_cholesky_ = params.precisions_cholesky.numpy().copy()


def sklearn_iteration(gm, X: np.ndarray) -> float:
    """One scikit-learn EM iteration; returns the total log-likelihood of the E step."""
    mean_log_likelihood, log_resp = gm._e_step(X)
    gm._m_step(X, log_resp)
    return float(mean_log_likelihood) * X.shape[0]


def median_time(run: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls after ``warmup`` calls; also returns every time."""
    times, _ = timed_runs(run, repeats, warmup)
    return statistics.median(times), times


def timed_runs(run: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (all threads of this process) of each of ``repeats`` calls.

    On a shared machine CPU time is the steadier number: waiting for a core does
    not count, only contention for caches and memory does.
    """
    for _ in range(warmup):
        run()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(np.float64).tiny))


# -- one configuration ----------------------------------------------------------------
@dataclass
class Row:
    n: int
    d: int
    k: int
    cov: str
    dtype: str
    ours: float
    sklearn: float
    ours_times: list
    sklearn_times: list
    ours_cpu: float
    sklearn_cpu: float
    ll_ours: float
    ll_sklearn: float
    params_rel: float
    sklearn_dtypes: str
    ours_mib: float = float("nan")
    sklearn_mib: float = float("nan")
    data_mib: float = float("nan")

    @property
    def ratio(self) -> float:
        return self.sklearn / self.ours

    @property
    def cpu_ratio(self) -> float:
        return self.sklearn_cpu / self.ours_cpu

    @property
    def ll_rel(self) -> float:
        return abs(self.ll_ours - self.ll_sklearn) / abs(self.ll_sklearn)


def bench_config(X64: Tensor, start: MixtureParams, cov: str, dtype_name: str,
                 repeats: int) -> Row:
    dtype = DTYPES[dtype_name]
    X = X64.to(dtype)
    params = start_for(start, cov, dtype)
    model = mixtures.GaussianMixture(params.n_components, covariance_type=cov)
    X_np = X.numpy()

    last = {}

    def ours():
        last["ours"] = EMStep(model, X, reg_covar=REG_COVAR)(fresh(params))

    gm = sklearn_model(params)

    def sk():
        set_sklearn_params(gm, params)
        last["sklearn"] = sklearn_iteration(gm, X_np)

    ours_times, ours_cpu = timed_runs(ours, repeats)
    sk_times, sk_cpu = timed_runs(sk, repeats)
    (new_params, summary), ll_sklearn = last["ours"], last["sklearn"]
    new_cov = new_params.covariances.numpy() if cov == "full" else new_params.native.numpy()
    params_rel = max(relative_difference(new_params.locs.numpy(), gm.means_),
                     relative_difference(new_cov, gm.covariances_),
                     relative_difference(new_params.weights.numpy(), gm.weights_))
    _, log_resp = gm._e_step(X_np)
    sklearn_dtypes = f"log_resp {log_resp.dtype}, covariances_ {gm.covariances_.dtype}"
    n, d = X.shape
    return Row(n, d, params.n_components, cov, dtype_name, statistics.median(ours_times),
               statistics.median(sk_times), ours_times, sk_times, statistics.median(ours_cpu),
               statistics.median(sk_cpu), float(summary.log_likelihood), ll_sklearn, params_rel,
               sklearn_dtypes)


# -- peak memory in a subprocess ---------------------------------------------------------
def _maxrss_mib() -> float:
    """Peak resident memory of this process (MiB).

    ``VmHWM`` of ``/proc/self/status`` is the per-process counter behind
    ``getrusage(RUSAGE_SELF).ru_maxrss``; ``ru_maxrss`` itself also keeps the peak
    of the forked copy of the parent (exec carries it over: hundreds of MiB here)
    and cannot be reset, so it is only the fallback where /proc is missing.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak() -> None:
    """Start a new high-water mark at the current resident size.

    Imports and the warm-up leave freed memory behind: without this, an iteration
    using less than those transient peaks would not move ``ru_maxrss`` at all.
    ``malloc_trim`` hands freed heap pages back (else they are reused without
    showing up), and writing 5 to ``/proc/self/clear_refs`` resets the peak
    ``VmHWM`` (Linux ≥ 4.0).
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux/glibc: the numbers are upper bounds of the true peak
        pass


def memory_child(spec: dict) -> dict:
    """Run in a fresh process: peak extra memory of one iteration beyond the loaded data (MiB)."""
    dtype = DTYPES[spec["dtype"]]
    params = MixtureParams.from_native(*(torch.tensor(spec[key], dtype=dtype)
                                         for key in ("weights", "locs", "native")),
                                       spec["cov"], validate=False)
    torch.set_num_threads(spec["threads"])
    with threadpool_limits(spec["threads"]):
        # warm up the libraries (thread pools, BLAS buffers) on a small sample of the start
        tiny, _ = params.sample(64 * params.n_components * params.n_features, seed=0)
        model = mixtures.GaussianMixture(params.n_components, covariance_type=spec["cov"])
        if spec["impl"] == "ours":
            EMStep(model, tiny)(fresh(params))
        else:
            sklearn_iteration(sklearn_model(params), tiny.numpy())
        del tiny
        _reset_peak()
        before_data = _maxrss_mib()
        X_np = np.load(spec["path"])  # allocates exactly the array: no transient peak
        loaded = _maxrss_mib()
        if spec["impl"] == "ours":
            EMStep(model, torch.from_numpy(X_np), reg_covar=REG_COVAR)(fresh(params))
        else:
            sklearn_iteration(sklearn_model(params), X_np)
        after = _maxrss_mib()
    return {"data_mib": loaded - before_data, "iteration_mib": after - loaded}


def measure_memory(X64: Tensor, start: MixtureParams, cov: str, dtype_name: str, threads: int,
                   workdir: Path) -> dict:
    params = start_for(start, cov, DTYPES[dtype_name])
    path = workdir / f"X_{X64.shape[0]}_{X64.shape[1]}_{dtype_name}.npy"
    if not path.exists():
        np.save(path, X64.to(DTYPES[dtype_name]).numpy())
    results = {}
    for impl in ("ours", "sklearn"):
        spec = {"impl": impl, "cov": cov, "dtype": dtype_name, "threads": threads, "path": str(path),
                "weights": params.weights.tolist(), "locs": params.locs.tolist(),
                "native": params.native.tolist()}
        out = subprocess.run([sys.executable, __file__, "--_memory-child"], input=json.dumps(spec),
                             capture_output=True, text=True, env=os.environ.copy())
        if out.returncode:
            raise RuntimeError(f"memory subprocess for {impl} {cov} {dtype_name} failed:\n{out.stderr}")
        results[impl] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


# -- MAP steps ------------------------------------------------------------------------------
def map_available() -> bool:
    from mixtures.inference import ROUTINES

    if "map" not in ROUTINES:
        try:  # the module may exist without being imported by the package yet
            import mixtures.inference.map  # noqa: F401
        except ImportError:
            return False
    return "map" in ROUTINES


def _time_map(model, X: Tensor, start: MixtureParams, num_steps: int, jit: bool) -> tuple[float, int]:
    """Seconds of one ``fit(method="map")`` of ``num_steps`` steps, and the steps it took."""
    began = time.perf_counter()
    result = mixtures.fit(model, X, method="map", init=start, num_steps=num_steps,
                          eval_every=num_steps, jit=jit, patience=None)
    return time.perf_counter() - began, int(result.history.last("iteration"))


def bench_map(sizes, budget: float, quick: bool) -> list[dict]:
    """Per-step time of ``fit(method="map")`` (full covariance), eager and jit.

    ``per_step`` = total time / steps (includes setup, compilation and the history's
    evaluations); ``marginal`` = (T(2 + S) - T(2)) / S, which cancels them. S is chosen
    so that the longer run takes about ``budget`` seconds (3 to 20 steps).
    """
    rows = []
    base = 2
    for n, d, k in sizes:
        X, start = make_problem(n, d, k, seed=1)
        model = mixtures.GaussianMixture(k, "full")
        step = EMStep(model, X)
        em_time, _ = median_time(lambda step=step, start=start: step(fresh(start)), 1 if quick else 3)
        for jit in (False, True):
            try:
                # warm-up: first-call costs (imports, Pyro's caches) must not count
                _time_map(model, X, start, base, jit)
                total_short, steps_short = _time_map(model, X, start, base, jit)
                steps = int(min(20, max(3, budget * base / total_short)))
                total_long, steps_long = _time_map(model, X, start, base + steps, jit)
            except Exception as error:  # a young routine: report it, do not lose the benchmark
                rows.append({"n": n, "d": d, "k": k, "jit": jit, "error": f"{type(error).__name__}: {error}"})
                continue
            rows.append({"n": n, "d": d, "k": k, "jit": jit, "steps": steps_long,
                         "per_step": total_long / steps_long,
                         "marginal": (total_long - total_short) / (steps_long - steps_short),
                         "em": em_time})
    return rows


# -- report ----------------------------------------------------------------------------------
def machine_info(threads: int) -> list[str]:
    import sklearn

    lines = [
        f"- python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}",
        f"- CPU: {_cpu_name()}, {os.cpu_count()} logical cores; threads used: {threads} "
        f"(torch.set_num_threads and threadpoolctl.threadpool_limits)",
        f"- torch BLAS: {'MKL' if torch.backends.mkl.is_available() else 'not MKL'}; "
        f"torch parallel backend: {torch.__config__.parallel_info().splitlines()[-1].strip()}",
        "- environment: " + ", ".join(f"{var}={os.environ.get(var, '(unset)')}" for var in
                                      ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                                       "MKL_NUM_THREADS")),
        "- threadpoolctl.threadpool_info() inside the limits:",
    ]
    with threadpool_limits(threads):
        for pool in threadpool_info():
            lines.append(f"  - {pool.get('internal_api')} {pool.get('version')} "
                         f"architecture={pool.get('architecture', '-')} threads={pool.get('num_threads')} "
                         f"({Path(pool.get('filepath', '')).name})")
    return lines


#: everything after this line of an existing report is hand-written analysis, kept across runs
ANALYSIS_MARKER = "<!-- analysis: text below this line is kept when benchmark.py rewrites the file -->"


def _kept_analysis(path: Path) -> str:
    if path.exists():
        old = path.read_text()
        if ANALYSIS_MARKER in old:
            return "\n" + ANALYSIS_MARKER + old.split(ANALYSIS_MARKER, 1)[1]
    return ""


def _count(n: int) -> str:
    """``100000`` -> ``1e5``."""
    exponent = int(round(np.log10(n))) if n > 0 else 0
    return f"1e{exponent}" if n == 10 ** exponent else str(n)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(path: Path, rows: list[Row], map_rows: list[dict] | str, args, elapsed: float) -> None:
    lines = [
        "# One EM iteration: mixtures vs scikit-learn",
        "",
        "Generated by `experiments/benchmark.py`. One iteration = E step + M step on the same data "
        "and the same starting parameters: ours is `EMStep(model, X)(params)`, scikit-learn's is "
        "`gm._e_step(X)` + `gm._m_step(X, log_resp)`. Times are medians of "
        f"{args.repeats} repeats after one warm-up; **ratio = scikit-learn time / our time** "
        "(> 1: we are faster). `CPU` columns are the medians of the process CPU time, steadier "
        "than wall time when other jobs share the cores. `LL rel` is |ΔlogL| / |logL| of the E "
        "step; `params rel` is the largest max|Δ| / max|value| over the new weights, means and "
        "covariances. Memory is the peak extra resident memory of one iteration in a fresh process "
        "beyond the loaded data (peak resident size after the iteration minus after loading X; "
        "`VmHWM`, the counter behind `ru_maxrss`, reset after the imports).",
        "",
        "Command:",
        "",
        "```",
        f"cd /work/main && {DOC_COMMAND}" + "".join(f" {a}" for a in sys.argv[1:]),
        "```",
        "",
        "`env -u` removes the OpenBLAS overrides that some machines set (they force a slower "
        "kernel for the current numpy); the BLAS libraries actually loaded are listed below.",
        "",
        "## Machine",
        "",
        *machine_info(args.threads),
        f"- load average (1 min) at the start / end of the run: {args.load_start:.1f} / "
        f"{os.getloadavg()[0]:.1f} (2 cores shared with other jobs: wall times above ~1 core's "
        "worth of load are inflated; compare the CPU columns)",
        "",
        "## One EM iteration",
        "",
        "| n | d | K | cov | dtype | ours (ms) | sklearn (ms) | ratio | CPU ours (ms) "
        "| CPU sklearn (ms) | CPU ratio | LL rel | params rel | ours MiB | sklearn MiB | data MiB |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {_count(r.n)} | {r.d} | {r.k} | {r.cov} | {r.dtype} | {1e3 * r.ours:.1f} | "
            f"{1e3 * r.sklearn:.1f} | **{r.ratio:.2f}** | {1e3 * r.ours_cpu:.1f} | "
            f"{1e3 * r.sklearn_cpu:.1f} | {r.cpu_ratio:.2f} | {r.ll_rel:.1e} | {r.params_rel:.1e} | "
            f"{r.ours_mib:.1f} | {r.sklearn_mib:.1f} | {r.data_mib:.1f} |")
    lines += ["", "Spread of the repeats (min–max, ms):", ""]
    for r in rows:
        lines.append(f"- ({_count(r.n)}, {r.d}, {r.k}) {r.cov} {r.dtype}: ours "
                     f"{1e3 * min(r.ours_times):.1f}–{1e3 * max(r.ours_times):.1f}, sklearn "
                     f"{1e3 * min(r.sklearn_times):.1f}–{1e3 * max(r.sklearn_times):.1f}")
    float32_rows = [r for r in rows if r.dtype == "float32"]
    if float32_rows:
        lines += ["", f"scikit-learn with float32 data and float32 parameters stays in float32: "
                  f"{float32_rows[0].sklearn_dtypes} (checked on every float32 row). Ours also "
                  "computes and accumulates in the data's dtype, so float32 differences are "
                  "rounding of two float32 computations."]
    lines += ["", "## MAP steps (`fit(method=\"map\")`, full covariance)", ""]
    if isinstance(map_rows, str):
        lines.append(map_rows)
    else:
        lines += ["`per step` = total time of `fit(..., num_steps=S, eval_every=S, patience=None)` / S, "
                  "including setup, compilation and the history's evaluations; `marginal` = "
                  "(T(2+S) − T(2)) / S, which cancels them. "
                  "`EM` is one EM iteration at the same size.", "",
                  "| n | d | K | jit | S | per step (ms) | marginal (ms) | EM iteration (ms) "
                  "| marginal / EM |",
                  "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
        for m in map_rows:
            if "error" in m:
                lines.append(f"| {_count(m['n'])} | {m['d']} | {m['k']} | {m['jit']} | – | failed: "
                             f"{m['error'][:120]} | | | |")
            else:
                lines.append(f"| {_count(m['n'])} | {m['d']} | {m['k']} | {m['jit']} | {m['steps']} | "
                             f"{1e3 * m['per_step']:.1f} | {1e3 * m['marginal']:.1f} | "
                             f"{1e3 * m['em']:.1f} | {m['marginal'] / m['em']:.1f} |")
    lines += ["", f"Total benchmark time: {elapsed:.0f} s.", ""]
    text = "\n".join(lines) + _kept_analysis(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run under 30 s")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and BLAS (default 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default experiments/BENCHMARK.md; with --quick a file in "
                             "the temporary directory, so that a smoke run never replaces the report)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per configuration")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-map", action="store_true", help="skip the MAP section")
    # internal: run one memory measurement, spec as JSON on stdin
    parser.add_argument("--_memory-child", dest="memory_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.load(sys.stdin))))
        return
    if args.threads < 1:
        parser.error("--threads must be a positive integer")
    here = Path(__file__).resolve().parent
    if args.out is None:
        args.out = (Path(tempfile.gettempdir()) / "mixtures_BENCHMARK_quick.md" if args.quick
                    else here / "BENCHMARK.md")
    args.repeats = args.repeats or (3 if args.quick else 5)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    began = time.perf_counter()
    args.load_start = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as workdir:
        for n, d, k in sizes:
            X64, start = make_problem(n, d, k)
            for cov in COV_TYPES:
                for dtype_name in DTYPES:
                    row = bench_config(X64, start, cov, dtype_name, args.repeats)
                    # memory in quick mode only for the first configuration, to stay a smoke run
                    if not args.no_memory and (not args.quick or not rows):
                        memory = measure_memory(X64, start, cov, dtype_name, args.threads, Path(workdir))
                        row.ours_mib = memory["ours"]["iteration_mib"]
                        row.sklearn_mib = memory["sklearn"]["iteration_mib"]
                        row.data_mib = memory["ours"]["data_mib"]
                    rows.append(row)
                    print(f"({n:.0e}, {d}, {k}) {cov:4s} {dtype_name}: ours {1e3 * row.ours:8.1f} ms, "
                          f"sklearn {1e3 * row.sklearn:8.1f} ms, ratio {row.ratio:5.2f} "
                          f"(CPU {row.cpu_ratio:5.2f}), "
                          f"LL rel {row.ll_rel:.1e}, params rel {row.params_rel:.1e}, "
                          f"MiB ours {row.ours_mib:.1f} sklearn {row.sklearn_mib:.1f}", flush=True)
        map_rows: list[dict] | str
        if args.no_map:
            map_rows = "Skipped (`--no-map`)."
        elif map_available():
            map_rows = bench_map(QUICK_MAP_SIZES if args.quick else MAP_SIZES,
                                 budget=2.0 if args.quick else 30.0, quick=args.quick)
            for m in map_rows:
                print("map", m, flush=True)
        else:
            map_rows = 'Skipped: `"map"` is not in `mixtures.inference.ROUTINES`.'
        if isinstance(map_rows, str):
            print("MAP section:", map_rows, flush=True)
    write_report(args.out, rows, map_rows, args, time.perf_counter() - began)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
