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

In the same run the report also gives:

* the machine's matmul peak (best of several square products by each of
  ``torch.mm``, oneDNN and numpy's OpenBLAS, in float64 and float32,
  :func:`matmul_peak`) and the fraction of it that one EM
  iteration reaches, from the explicit FLOP count of :func:`em_flops`;
* the largest configuration again at ``--also-threads`` threads (default 2);
* ``torch.compile`` of the per-chunk kernel (one chunk function, compiled with
  ``dynamic=False``; the loop over chunks stays in Python), against the eager
  ``e_step`` (:func:`bench_compile`);
* steps of the Pyro routines (``fit(method="map")``, SVI with the mean-field
  local guide, minibatch SVI), eager and JIT, against one EM iteration, and a
  ``torch.profiler`` profile of one MAP step, eager and JIT, and of one EM
  iteration (:func:`profile_steps`).

Rewriting the report keeps any hand-written text below :data:`ANALYSIS_MARKER`.

Run it with the OpenBLAS overrides of some machines removed, so that numpy's
OpenBLAS picks its own kernel (the report prints which one ran)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python \\
        experiments/benchmark.py [--quick] [--threads N] [--out experiments/BENCHMARK.md]

Other options: ``--repeats R``, ``--no-memory``, ``--no-map`` (no Pyro section),
``--no-profile``, ``--no-compile``, ``--also-threads T`` (0: none), ``--svi-batch B``.
To measure a modified copy of the package, put it first on ``PYTHONPATH`` and
write to another ``--out``.
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
from mixtures.families.gaussian import distributions as fused
from mixtures.families.gaussian import statistics as suffstats
from mixtures.families.gaussian import whitened
from mixtures.inference.em import EMStep
from mixtures.kernels import fused_pass, gemm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import goals_benchmark  # noqa: E402  (a sibling script module, not part of the package)

Tensor = torch.Tensor

REG_COVAR = 1e-6
FULL_SIZES = [(100_000, 2, 5), (100_000, 16, 16), (1_000_000, 8, 8)]
QUICK_SIZES = [(20_000, 2, 3), (20_000, 8, 4)]
#: wide data (issue #18): EM rows only, after the others (no 2-thread / accumulate rows)
WIDE_SIZES = [(20_000, 64, 8), (100_000, 128, 8)]
QUICK_WIDE_SIZES = [(5_000, 64, 4)]
COV_TYPES = ["full", "diag"]
DTYPES = {"float64": torch.float64, "float32": torch.float32}
#: float32 data and chunks, statistics summed over chunks in float64 (``accumulate_dtype``):
#: an extra row for the largest size
ACCUMULATE = "float32, f64 sums"
MAP_SIZES = [(100_000, 2, 5), (100_000, 16, 16)]
QUICK_MAP_SIZES = [(5_000, 2, 3)]
#: where the MAP step is profiled
PROFILE_SIZE = (100_000, 16, 16)
QUICK_PROFILE_SIZE = (5_000, 2, 3)
#: torch.compile of the per-chunk kernel is measured here (full covariance, both dtypes)
COMPILE_SIZE = (1_000_000, 8, 8)
QUICK_COMPILE_SIZE = (20_000, 8, 4)
#: side of the square matmuls that measure the machine's peak
PEAK_SIZE = 1024
DOC_COMMAND = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python "
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


# -- FLOPs and the machine's matmul peak --------------------------------------------------
def moment_feature_count(d: int, cov: str) -> int:
    """``M``, the second-order features per point of the fused pass (full: pairs, diag: squares)."""
    return d * (d + 1) // 2 if cov == "full" else d


def em_flops(n: int, d: int, k: int, cov: str) -> float:
    """Floating-point operations of one EM iteration of ours, counted explicitly on the route
    the E step takes (:func:`mixtures.families.gaussian.whitened.uses_whitening`).

    Feature route, per point, with ``P = 1 + D + M`` features (``M`` = :func:`moment_feature_count`):

    * ``4·K·P``: the two GEMMs, ``C @ F`` (log joint densities) and ``resp @ Fᵀ``
      (all statistics), a multiply and an add per term;
    * ``D + M``: centring and the second-order features;
    * ``8·K + 7``: the softmax and entropy, each elementwise operation or reduction
      step counted as one (max, subtract, threshold, ``exp2``, sum, multiply, entropy
      product and sum, ``K`` each; ``log2``, reciprocal, add, the log-likelihood sum,
      ``amin`` and the entropy's two sums, one each).

    Whitening route (full covariance, D ≥ ``WHITENING_FROM_D``), per point:

    * ``2·(D+1)·K·D``: ``[x - shift, 1] @ [Wᵀ; -b]`` (the zeros of the triangular ``W_k``
      included: the GEMM multiplies them);
    * ``2·D·K·D``: the second moments ``(x - shift)ᵀ @ [r_k (x - shift)]_k``; ``2·K·D`` the first
      moments; ``K`` the counts;
    * ``D + 3·K·D + K``: centring, squares and their sums over ``D``, the weighted points, the
      log joint; ``8·K + 7`` as above.

    The M step (``O(K·D³)``) is left out: < 0.01 % of the total at the sizes here.
    At (1e6, 8, 8) full the GEMMs are 91 % of the count.
    """
    if cov == "full" and whitened.uses_whitening(mixtures.GaussianMixture(k, "full").cov_type, k, d):
        gemms = 2 * (d + 1) * k * d + 2 * d * k * d + 2 * k * d + k
        return float(n) * (gemms + d + 3 * k * d + k + 8 * k + 7)
    m = moment_feature_count(d, cov)
    p = 1 + d + m
    return float(n) * (4 * k * p + d + m + 8 * k + 7)


def matmul_peak(threads: int, size: int = PEAK_SIZE, repeats: int = 7) -> dict[str, dict]:
    """GFLOP/s of square products at ``threads`` threads: the machine's attainable matmul peak.

    Three kernels, because no single one reaches the machine's peak everywhere:
    ``torch.mm`` (MKL, which takes its AVX2 path on AMD processors), oneDNN through
    :func:`mixtures.gemm.matmul` (float32 only; float64 falls back to ``torch.mm``)
    and numpy's ``@`` (OpenBLAS, whose kernel is chosen from the instruction set).
    ``2·size³`` flops per product; the best (shortest) of ``repeats`` products after
    a warm-up, by wall and by process CPU time. ``"wall"`` and ``"cpu"`` are the best
    over the kernels (the peak), ``"kernels"`` each kernel's. Run inside the
    caller's thread limits.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        peaks = {}
        for name, dtype in DTYPES.items():
            generator = torch.Generator().manual_seed(0)
            A = torch.randn(size, size, generator=generator, dtype=dtype)
            B = torch.randn(size, size, generator=generator, dtype=dtype)
            out = torch.empty(size, size, dtype=dtype)
            A_np, B_np, out_np = A.numpy(), B.numpy(), out.numpy()
            kernels = {"torch.mm": lambda A=A, B=B, out=out: torch.mm(A, B, out=out),
                       "numpy": lambda A=A_np, B=B_np, out=out_np: np.matmul(A, B, out=out)}
            if gemm.backend(dtype) == "onednn":
                kernels["oneDNN"] = lambda A=A, B=B: gemm.matmul(A, B)
            flops = 2.0 * size ** 3
            by_kernel = {}
            for kernel, run in kernels.items():
                wall, cpu = timed_runs(run, repeats, warmup=2)
                by_kernel[kernel] = {"wall": flops / min(wall) / 1e9, "cpu": flops / min(cpu) / 1e9}
            peaks[name] = {clock: max(k[clock] for k in by_kernel.values()) for clock in ("wall", "cpu")}
            peaks[name]["kernels"] = by_kernel
        return peaks
    finally:
        torch.set_num_threads(previous)


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
    threads: int = 1
    ours_cpu_times: list | None = None

    @property
    def flops(self) -> float:
        return em_flops(self.n, self.d, self.k, self.cov)

    def gflops(self, clock: str) -> float:
        """Our GFLOP/s (:func:`em_flops`) by median wall or CPU time."""
        return self.flops / (self.ours if clock == "wall" else self.ours_cpu) / 1e9

    @property
    def compute_dtype(self) -> str:
        return "float64" if self.dtype == "float64" else "float32"

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
                 repeats: int, threads: int = 1, warmup: int = 1) -> Row:
    """One configuration; ``dtype_name`` is a key of :data:`DTYPES` or :data:`ACCUMULATE`."""
    dtype = torch.float32 if dtype_name == ACCUMULATE else DTYPES[dtype_name]
    accumulate = torch.float64 if dtype_name == ACCUMULATE else None
    X = X64.to(dtype)
    params = start_for(start, cov, dtype)
    model = mixtures.GaussianMixture(params.n_components, covariance_type=cov)
    X_np = X.numpy()

    last = {}

    def ours():
        last["ours"] = EMStep(model, X, reg_covar=REG_COVAR, accumulate_dtype=accumulate)(fresh(params))

    gm = sklearn_model(params)

    def sk():
        set_sklearn_params(gm, params)
        last["sklearn"] = sklearn_iteration(gm, X_np)

    ours_times, ours_cpu = timed_runs(ours, repeats, warmup)
    sk_times, sk_cpu = timed_runs(sk, repeats, warmup)
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
               sklearn_dtypes, threads=threads, ours_cpu_times=ours_cpu)


def bench_threads(X64: Tensor, start: MixtureParams, threads: int, repeats: int) -> list[Row]:
    """The configurations of one size again at ``threads`` threads (torch and BLAS)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            return [bench_config(X64, start, cov, dtype_name, repeats, threads=threads, warmup=2)
                    for cov in COV_TYPES for dtype_name in DTYPES]
    finally:
        torch.set_num_threads(previous)


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


# -- torch.compile of the per-chunk kernel ---------------------------------------------------
def chunk_kernel(x: Tensor, shift: Tensor, coefficients: Tensor, rows: Tensor | None, cols: Tensor | None,
                 floor: float) -> tuple[Tensor, Tensor, Tensor]:
    """The per-chunk work of :func:`mixtures.suffstats.e_step`, written functionally for
    ``torch.compile``: features, log₂ joint GEMM, softmax in bits with the same floor, stats GEMM.

    ``coefficients`` are in bits (``C · log₂ e``); ``rows, cols`` index the pair features (full
    covariance); ``None``: squares (diag). Returns ``(Σ_n r_nk F_mn (K, P), Σ_n log₂ p(x_n),
    Σ_n Σ_k r_nk log₂ r_nk)``.
    """
    xt = (x - shift).T
    second = xt.square() if rows is None else xt[rows] * xt[cols]
    features = torch.cat([torch.ones_like(xt[:1]), xt, second])
    joint = coefficients @ features
    top = joint.amax(0, keepdim=True)
    log_resp = joint - top
    log_resp = torch.where(log_resp > floor, log_resp, fused_pass.UNDERFLOW)
    resp = log_resp.exp2()
    total = resp.sum(0, keepdim=True)
    resp = resp / total
    log_total = total.log2()
    return resp @ features.T, (top + log_total).sum(), (log_resp * resp).sum() - log_total.sum()


def kernel_pass(kernel: Callable, X: Tensor, params: MixtureParams, shift: Tensor, chunk: int,
                tail_kernel: Callable = chunk_kernel) -> tuple[Tensor, Tensor, Tensor]:
    """One E pass with ``kernel`` on every full chunk (a Python loop: the compiled graph is
    one chunk, never an unrolled loop) and the eager kernel on the shorter last chunk."""
    K, D = params.n_components, params.n_features
    cov_type = params.cov_type
    whitening, half_log_det = params.whitener()
    coefficients = cov_type.log_joint_coefficients(params.weights.log(), params.locs - shift,
                                                   whitening, half_log_det) * fused_pass.LOG2_E
    floor = fused_pass._floor(X.dtype, K)
    rows, cols = (torch.triu_indices(D, D) if cov_type.name in ("full", "tied") else (None, None))
    sums = X.new_zeros(K, coefficients.shape[1])
    log_likelihood, entropy = X.new_zeros(()), X.new_zeros(())
    for begin in range(0, X.shape[0], chunk):
        x = X[begin:begin + chunk]
        run = kernel if x.shape[0] == chunk else tail_kernel
        chunk_sums, chunk_ll, chunk_xlogx = run(x, shift, coefficients, rows, cols, floor)
        sums += chunk_sums
        log_likelihood += chunk_ll
        entropy -= chunk_xlogx
    return sums, log_likelihood * fused_pass.LN_2, entropy * fused_pass.LN_2


def bench_compile(n: int, d: int, k: int, repeats: int) -> list[dict]:
    """Eager ``e_step`` vs the eager and the compiled chunk kernel, full covariance, both dtypes.

    Compilation time = wall time of the first compiled pass minus an eager pass
    (Inductor may compile in worker processes, whose CPU time the process clock
    misses), cold: Inductor's on-disk caches in an empty directory. Pass times are
    medians of ``repeats`` process-CPU times.
    """
    X64, start = make_problem(n, d, k)
    rows = []
    for dtype_name, dtype in DTYPES.items():
        X = X64.to(dtype)
        chunk = min(X.shape[0], suffstats.fused_chunk_size(k, d, moment_feature_count(d, "full"), X.element_size()))
        row = {"n": n, "d": d, "k": k, "dtype": dtype_name, "chunk": chunk}
        try:
            torch._dynamo.reset()
            row.update(_compile_measurements(X, start_for(start, "full", dtype), chunk, repeats))
        except Exception as error:  # noqa: BLE001 - a missing compiler must not lose the benchmark
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        finally:
            torch._dynamo.reset()
        rows.append(row)
    return rows


def _compile_measurements(X: Tensor, params: MixtureParams, chunk: int, repeats: int) -> dict:
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    shift = suffstats.default_shift(X)
    compiled = torch.compile(chunk_kernel, dynamic=False, fullgraph=True)
    runs = {"e_step": lambda: suffstats.e_step(X, params, shift),
            "kernel": lambda: kernel_pass(chunk_kernel, X, params, shift, chunk),
            "compiled": lambda: kernel_pass(compiled, X, params, shift, chunk)}
    eager_wall, _ = timed_runs(runs["kernel"], 1, 0)
    # a cold compilation: Inductor's on-disk caches (FX graphs, compiled C++) in an empty directory
    with tempfile.TemporaryDirectory() as cache, temporary_cache_dir(cache):
        began = time.perf_counter()
        runs["compiled"]()
        out = {"compile_s": time.perf_counter() - began - eager_wall[0]}
    for name, run in runs.items():
        _, cpu = timed_runs(run, repeats)
        out[name], out[name + "_times"] = statistics.median(cpu), cpu
    reference = float(suffstats.e_step(X, params, shift).log_likelihood)
    out["ll_rel"] = abs(float(runs["compiled"]()[1]) - reference) / abs(reference)
    return out


# -- MAP steps ------------------------------------------------------------------------------
def map_available() -> bool:
    from mixtures.inference import ROUTINES

    if "map" not in ROUTINES:
        try:  # the module may exist without being imported by the package yet
            import mixtures.inference.map  # noqa: F401
        except ImportError:
            return False
    return "map" in ROUTINES


def pyro_variants(svi_batch: int) -> list[tuple[str, str, dict, bool]]:
    """``(label, method, options, fused)`` of the Pyro routines timed per step (delta globals).

    ``fused=False`` runs under ``mixtures.fused.enabled(False)``: the observation site's
    ``log_prob`` term by term (Pyro's ``MultivariateNormal``), the formula before the
    matrix-product route, for a before/after comparison in the same run.
    """
    return [("MAP (enumerated)", "map", {}, True),
            ("MAP (enumerated), term-by-term log_prob", "map", {}, False),
            ("SVI mean-field", "svi", {"local_guide": "mean_field"}, True),
            (f"SVI minibatch B={svi_batch}", "svi", {"subsample_size": svi_batch}, True)]


def _time_fit(model, X: Tensor, start: MixtureParams, method: str, options: dict, num_steps: int,
              jit: bool) -> tuple[float, float, int]:
    """Wall and CPU seconds of one ``fit(method=...)`` of ``num_steps`` steps, and the steps taken."""
    began, began_cpu = time.perf_counter(), time.process_time()
    result = mixtures.fit(model, X, method=method, init=start, num_steps=num_steps,
                          eval_every=num_steps, jit=jit, patience=None, **options)
    return (time.perf_counter() - began, time.process_time() - began_cpu,
            int(result.history.last("iteration")))


def bench_pyro(sizes, budget: float, quick: bool, svi_batch: int) -> list[dict]:
    """Per-step time of the Pyro routines (full covariance), eager and jit.

    ``per_step`` = total wall time / steps (includes setup, compilation and the history's
    evaluations); ``marginal`` = (T(2 + S) - T(2)) / S, which cancels them, by wall and by
    CPU time. S is chosen so that the longer run takes about ``budget`` seconds (3 to 20
    steps). ``em`` / ``em_cpu``: median wall / CPU time of one EM iteration at the same size.
    """
    rows = []
    base = 2
    for n, d, k in sizes:
        X, start = make_problem(n, d, k, seed=1)
        model = mixtures.GaussianMixture(k, "full")
        step = EMStep(model, X)
        em_wall, em_cpu = timed_runs(lambda step=step, start=start: step(fresh(start)), 1 if quick else 5)
        for label, method, options, fused_log_prob in pyro_variants(min(svi_batch, n)):
            for jit in (False, True):
                row = {"routine": label, "n": n, "d": d, "k": k, "jit": jit,
                       "batch": options.get("subsample_size"),
                       "em": statistics.median(em_wall), "em_cpu": statistics.median(em_cpu)}
                try:
                    with fused.enabled(fused_log_prob):
                        # warm-up: first-call costs (imports, Pyro's caches) must not count
                        _time_fit(model, X, start, method, options, base, jit)
                        short, short_cpu, steps_short = _time_fit(model, X, start, method, options, base, jit)
                        steps = int(min(20, max(3, budget * base / short)))
                        long, long_cpu, steps_long = _time_fit(model, X, start, method, options,
                                                               base + steps, jit)
                except Exception as error:  # noqa: BLE001 - a young routine: report it, keep the rest
                    rows.append({**row, "error": f"{type(error).__name__}: {error}"})
                    continue
                rows.append({**row, "steps": steps_long, "per_step": long / steps_long,
                             "marginal": (long - short) / (steps_long - steps_short),
                             "marginal_cpu": (long_cpu - short_cpu) / (steps_long - steps_short)})
    return rows


def _op_self_times(run: Callable[[], object], counts: bool = False) -> dict:
    """Self CPU seconds per torch operator of ``run()`` (``torch.profiler``); with ``counts``,
    ``(seconds, calls)`` per ``(operator, input shapes)``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=counts) as prof:
        run()
    if counts:
        return {(event.key, str(event.input_shapes)): (event.self_cpu_time_total / 1e6, event.count)
                for event in prof.key_averages(group_by_input_shape=True)}
    return {event.key: event.self_cpu_time_total / 1e6 for event in prof.key_averages()}


def obs_log_prob_seconds(X: Tensor, start: MixtureParams, fused_log_prob: bool, repeats: int = 5) -> float:
    """Median CPU seconds of the observation site's part of a step: ``log_prob`` of the data under
    the enumerated components ``(K, N)`` and its backward to the global parameters."""
    locs = start.locs.clone().requires_grad_()
    native = start.native.clone().requires_grad_()
    K = start.n_components
    z = torch.arange(K).reshape(K, 1)

    def run():
        dist = start.cov_type.component_distribution(locs, native, z).expand((K, X.shape[0]))
        dist.log_prob(X).sum().backward()

    with fused.enabled(fused_log_prob), fused.keeping_features():
        run()  # features of X kept from here on, as in an optimization loop
        return statistics.median(timed_runs(run, repeats)[1])


def _min_profile(profiles) -> dict:
    """Per ``(operator, shapes)``: the smallest self time over ``profiles`` (same call counts)."""
    best: dict = {}
    for profile in profiles:
        for key, (seconds, calls) in profile.items():
            best[key] = (min(seconds, best[key][0]), calls) if key in best else (seconds, calls)
    return best


def profile_steps(n: int, d: int, k: int, steps: int, top: int = 12) -> dict:
    """Where a MAP step (eager, jit, and eager with the term-by-term ``log_prob``) and an EM
    iteration spend their time.

    A step's profile is the difference of the per-operator self CPU times of
    ``fit(method="map")`` with ``base + steps`` and with ``base`` steps, divided by
    ``steps``: setup, the final evaluation, the labels and (jit) tracing and the
    profiling executor's first optimizing runs cancel. Operators (by input shapes) called as
    often in both runs (one-off work such as the labels' validation of ``(N, D, D)`` factors)
    are left out: their difference is only the variation of one call. ``outside ops`` is the
    marginal CPU time per step (unprofiled runs) minus the operators' self time:
    Python, Pyro's messengers and autograd's bookkeeping outside any operator.
    ``obs``: the observation site's ``log_prob`` and its backward alone
    (:func:`obs_log_prob_seconds`), by route; the rest of a step is Pyro's enumeration
    (the contraction over the assignments), the Categorical site and Adam.
    """
    base = 3
    X, start = make_problem(n, d, k, seed=1)
    model = mixtures.GaussianMixture(k, "full")
    out: dict = {"n": n, "d": d, "k": k, "steps": steps, "base": base}
    for key, jit, fused_log_prob in (("eager", False, True), ("jit", True, True), ("eager_term", False, False)):
        def fit(num_steps, jit=jit):
            return mixtures.fit(model, X, method="map", init=start, num_steps=num_steps,
                                eval_every=num_steps, jit=jit, patience=None)

        try:
            with fused.enabled(fused_log_prob):
                fit(base)  # warm-up
                # the smaller of two profiles per operator: this VM inflates single runs of the
                # large-memory operators by up to 3x (page faults), never deflates them
                one = _min_profile(_op_self_times(lambda: fit(base), counts=True) for _ in range(2))
                many = _min_profile(_op_self_times(lambda: fit(base + steps), counts=True) for _ in range(2))
                # unprofiled CPU per step: medians of 3 runs each (1 for the slow term-by-term route)
                repeats = 3 if fused_log_prob else 1
                cpu_one = statistics.median(_time_fit(model, X, start, "map", {}, base, jit)[1]
                                            for _ in range(repeats))
                cpu_many = statistics.median(_time_fit(model, X, start, "map", {}, base + steps, jit)[1]
                                             for _ in range(repeats))
        except Exception as error:  # noqa: BLE001
            out[key] = {"error": f"{type(error).__name__}: {error}"}
            continue
        per_op: dict[str, float] = {}
        for (name, shapes), (seconds, calls) in many.items():
            before, before_calls = one.get((name, shapes), (0.0, 0))
            if calls > before_calls:
                per_op[name] = per_op.get(name, 0.0) + (seconds - before) / steps
        step_cpu = (cpu_many - cpu_one) / steps
        ranked = sorted(per_op.items(), key=lambda item: -item[1])
        out[key] = {"step_cpu": step_cpu, "ops": ranked[:top],
                    "ops_total": sum(v for v in per_op.values() if v > 0)}
    out["obs"] = {"fused": obs_log_prob_seconds(X, start, True),
                  "term": obs_log_prob_seconds(X, start, False, repeats=3)}
    step = EMStep(model, X)
    step(fresh(start))
    em_ops = _op_self_times(lambda: step(fresh(start)))
    _, em_cpu = timed_runs(lambda: step(fresh(start)), 3)
    out["em"] = {"step_cpu": statistics.median(em_cpu),
                 "ops": sorted(em_ops.items(), key=lambda item: -item[1])[:6],
                 "ops_total": sum(em_ops.values())}
    return out


# -- report ----------------------------------------------------------------------------------
def machine_info(threads: int) -> list[str]:
    import sklearn

    lines = [
        f"- python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}",
        f"- CPU: {_cpu_name()}, {os.cpu_count()} logical cores; threads used: {threads} "
        f"(torch.set_num_threads and threadpoolctl.threadpool_limits)",
        f"- torch BLAS: {'MKL' if torch.backends.mkl.is_available() else 'not MKL'}; oneDNN "
        f"{'available' if torch.backends.mkldnn.is_available() else 'not available'}; our E-step GEMMs: "
        f"float32 {gemm.backend(torch.float32)}, float64 {gemm.backend(torch.float64)}; "
        f"MIXTURES_GEMM={os.environ.get('MIXTURES_GEMM', '(unset)')}; "
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


def _peak_lines(peaks: dict[int, dict]) -> list[str]:
    lines = []
    for threads, peak in sorted(peaks.items()):
        kernels = "; ".join(
            f"{name}: " + ", ".join(f"{kernel} {k['cpu']:.1f} / {k['wall']:.1f}" for kernel, k in p["kernels"].items())
            for name, p in peak.items())
        lines.append(f"- matmul peak at {threads} thread{'s' if threads > 1 else ''} (best of 7 products of "
                     f"{PEAK_SIZE}x{PEAK_SIZE} by each kernel, GFLOP/s by CPU / wall time): {kernels}. "
                     "Peak = the best kernel: "
                     + ", ".join(f"{name} {p['cpu']:.1f} / {p['wall']:.1f}" for name, p in peak.items()))
    return lines


def _spread(times: list[float]) -> str:
    return f"{1e3 * min(times):.1f}–{1e3 * max(times):.1f}"


def _em_table(rows: list[Row], peaks: dict[int, dict]) -> list[str]:
    lines = [
        "| n | d | K | cov | dtype | ours (ms) | sklearn (ms) | ratio | CPU ours (ms) "
        "| CPU sklearn (ms) | CPU ratio | GFLOP/s | % of peak | LL rel | params rel | ours MiB "
        "| sklearn MiB | data MiB |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        peak = peaks[r.threads][r.compute_dtype]["cpu"]
        lines.append(
            f"| {_count(r.n)} | {r.d} | {r.k} | {r.cov} | {r.dtype} | {1e3 * r.ours:.1f} | "
            f"{1e3 * r.sklearn:.1f} | **{r.ratio:.2f}** | {1e3 * r.ours_cpu:.1f} | "
            f"{1e3 * r.sklearn_cpu:.1f} | {r.cpu_ratio:.2f} | {r.gflops('cpu'):.1f} | "
            f"{100 * r.gflops('cpu') / peak:.0f} % | {r.ll_rel:.1e} | {r.params_rel:.1e} | "
            f"{r.ours_mib:.1f} | {r.sklearn_mib:.1f} | {r.data_mib:.1f} |")
    return lines


def _threads_table(thread_rows: list[Row], rows: list[Row], peaks: dict[int, dict]) -> list[str]:
    single = {(r.n, r.d, r.k, r.cov, r.dtype): r for r in rows}
    lines = [
        "| n | d | K | cov | dtype | ours (ms) | sklearn (ms) | ratio | CPU ours (ms) | CPU sklearn (ms) "
        "| ours: 1-thread wall / this wall | GFLOP/s (wall) | % of peak (wall) | LL rel |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in thread_rows:
        one = single.get((r.n, r.d, r.k, r.cov, r.dtype))
        scaling = f"{one.ours / r.ours:.2f}" if one else "–"
        peak = peaks[r.threads][r.compute_dtype]["wall"]
        lines.append(
            f"| {_count(r.n)} | {r.d} | {r.k} | {r.cov} | {r.dtype} | {1e3 * r.ours:.1f} | "
            f"{1e3 * r.sklearn:.1f} | **{r.ratio:.2f}** | {1e3 * r.ours_cpu:.1f} | {1e3 * r.sklearn_cpu:.1f} | "
            f"{scaling} | {r.gflops('wall'):.1f} | {100 * r.gflops('wall') / peak:.0f} % | {r.ll_rel:.1e} |")
    lines += ["", "Spread of the repeats (min–max wall ms): "
              + "; ".join(f"{r.cov} {r.dtype} ours {_spread(r.ours_times)}, sklearn {_spread(r.sklearn_times)}"
                          for r in thread_rows)]
    return lines


def _compile_lines(compile_rows: list[dict] | str) -> list[str]:
    if isinstance(compile_rows, str):
        return [compile_rows]
    lines = [
        "`chunk_kernel` (in this script) is the per-chunk work of `suffstats.e_step` written "
        "functionally; `torch.compile(chunk_kernel, dynamic=False, fullgraph=True)` compiles one "
        "chunk (the loop over chunks stays in Python; the shorter last chunk runs eager). CPU ms "
        "per E pass, median of the repeats; `compile` = wall seconds of the first compiled pass "
        "minus an eager one; `break-even` = compile / (e_step − compiled) passes.",
        "",
        "| n | d | K | cov | dtype | chunk | e_step eager (ms) | kernel eager (ms) | kernel compiled (ms) "
        "| e_step / compiled | compile (s) | break-even (passes) | LL rel (compiled vs e_step) |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in compile_rows:
        head = f"| {_count(c['n'])} | {c['d']} | {c['k']} | full | {c['dtype']} | {c['chunk']} |"
        if "error" in c:
            lines.append(head + f" failed: {c['error'][:160]} | | | | | | |")
            continue
        gain = c["e_step"] - c["compiled"]
        breakeven = f"{c['compile_s'] / gain:.0f}" if gain > 0 else "never"
        lines.append(head + f" {1e3 * c['e_step']:.1f} | {1e3 * c['kernel']:.1f} | {1e3 * c['compiled']:.1f} | "
                     f"{c['e_step'] / c['compiled']:.2f} | {c['compile_s']:.1f} | {breakeven} | {c['ll_rel']:.1e} |")
    lines += ["", "Spread (min–max CPU ms): " + "; ".join(
        f"{c['dtype']} e_step {_spread(c['e_step_times'])}, compiled {_spread(c['compiled_times'])}"
        for c in compile_rows if "error" not in c)]
    return lines


def _pyro_lines(pyro_rows: list[dict] | str) -> list[str]:
    if isinstance(pyro_rows, str):
        return [pyro_rows]
    lines = [
        "Delta (point-estimate) globals, full covariance. `per step` = total wall time of "
        "`fit(..., num_steps=S, eval_every=S, patience=None)` / S, including setup, compilation and "
        "the history's evaluations; `marginal` = (T(2+S) − T(2)) / S, which cancels them (wall and "
        "CPU). `EM` = one EM iteration at the same size (median wall / CPU). `step / EM` uses the CPU "
        "times. For minibatch SVI a pass over the data is N/B steps: `pass / EM` = N/B × marginal "
        "CPU / EM CPU. The observation site's `log_prob` under the enumerated components is one "
        "matrix product (`mixtures.fused`); the `term-by-term log_prob` rows run the same fit with "
        "`mixtures.fused.enabled(False)` (Pyro's `MultivariateNormal.log_prob`, the formula before).",
        "",
        "| routine | n | d | K | jit | S | per step (ms) | marginal (ms) | marginal CPU (ms) "
        "| EM iteration (ms, wall / CPU) | step / EM | pass / EM |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in pyro_rows:
        head = f"| {m['routine']} | {_count(m['n'])} | {m['d']} | {m['k']} | {m['jit']} |"
        if "error" in m:
            lines.append(head + f" – | failed: {m['error'][:120]} | | | | | |")
            continue
        ratio = m["marginal_cpu"] / m["em_cpu"]
        per_pass = f"{ratio * m['n'] / m['batch']:.1f}" if m["batch"] else "–"
        lines.append(head + f" {m['steps']} | {1e3 * m['per_step']:.1f} | {1e3 * m['marginal']:.1f} | "
                     f"{1e3 * m['marginal_cpu']:.1f} | {1e3 * m['em']:.1f} / {1e3 * m['em_cpu']:.1f} | "
                     f"**{ratio:.1f}** | {per_pass} |")
    return lines


def _profile_lines(profile: dict | str) -> list[str]:
    if isinstance(profile, str):
        return [profile]
    lines = [
        f"`torch.profiler` at ({_count(profile['n'])}, {profile['d']}, {profile['k']}), full, one thread. "
        f"A step = (profile of `fit(method=\"map\", num_steps={profile['base']} + {profile['steps']})` − "
        f"profile of `num_steps={profile['base']}`) / {profile['steps']}: per-operator self CPU time, the "
        "smaller of two profiles of each fit (setup, "
        "final evaluation, labels, JIT tracing and the profiling executor's first runs cancel; operators "
        "called as often in both runs with the same input shapes, one-off work, are left out). "
        "`outside ops` = the step's CPU time in unprofiled runs minus the operators' self time "
        "(Python, Pyro's messengers, autograd bookkeeping; negative when the profiler's own overhead "
        "inflates the operators). `%` = share of the operators' total. `EM` = one EM iteration, same "
        "data, profiled directly.",
        "",
    ]
    obs = profile.get("obs")
    if obs:
        lines += [f"Observation site alone (`log_prob` of the data under the enumerated components and "
                  f"its backward, features cached, median CPU): matrix product {1e3 * obs['fused']:.1f} ms, "
                  f"term by term {1e3 * obs['term']:.1f} ms. The rest of a step is Pyro's enumeration "
                  "(contraction over the assignments), the Categorical site and Adam.", ""]
    for key, title in (("eager", "MAP step, eager"), ("jit", "MAP step, JIT (`JitTraceEnum_ELBO`)"),
                       ("eager_term", "MAP step, eager, term-by-term `log_prob` (`fused.enabled(False)`, "
                                      "the formula before the matrix product)"),
                       ("em", "EM iteration")):
        entry = profile.get(key)
        if entry is None:
            continue
        if "error" in entry:
            lines += [f"**{title}**: failed: {entry['error'][:160]}", ""]
            continue
        step = entry["step_cpu"]
        lines += [f"**{title}**: {1e3 * step:.1f} ms CPU per step (unprofiled); operators' self time "
                  f"{1e3 * entry['ops_total']:.1f} ms; outside ops {1e3 * (step - entry['ops_total']):.1f} ms.",
                  "", "| operator | self CPU ms per step | % of operators |", "|---|---:|---:|"]
        for name, seconds in entry["ops"]:
            lines.append(f"| `{name}` | {1e3 * seconds:.2f} | {100 * seconds / entry['ops_total']:.0f} % |")
        lines.append("")
    return lines


def write_report(path: Path, rows: list[Row], results: dict, args, elapsed: float) -> None:
    peaks = results["peaks"]
    lines = [
        "# One EM iteration: mixtures vs scikit-learn",
        "",
        "Generated by `experiments/benchmark.py`. One iteration = E step + M step on the same data "
        "and the same starting parameters: ours is `EMStep(model, X)(params)`, scikit-learn's is "
        "`gm._e_step(X)` + `gm._m_step(X, log_resp)`. Times are medians of "
        f"{args.repeats} repeats after one warm-up; **ratio = scikit-learn time / our time** "
        "(> 1: we are faster). `CPU` columns are the medians of the process CPU time "
        "(`time.process_time`, all threads of the process), steadier than wall time when other "
        "jobs share the cores. `GFLOP/s` = the explicit count of `em_flops` (per point "
        "4·K·P for the two GEMMs, P = 1 + D + M features, M = D(D+1)/2 full or D diag, plus "
        "D + M + 8·K + 7 elementwise operations; on the whitening route of full covariances at "
        f"D ≥ {whitened.WHITENING_FROM_D} instead 2·(D+1)·K·D + 2·D·K·D + 2·K·D + K for the GEMMs plus "
        "D + 3·K·D + 9·K + 7; M step not counted) / our median CPU time; "
        "`% of peak` = that / the best square-matmul GFLOP/s (CPU time) of any of the three kernels "
        "measured in this run in the same dtype (float32 for the float32 rows). Our float32 GEMMs run on "
        f"`{gemm.backend(torch.float32)}`, float64 on `{gemm.backend(torch.float64)}` "
        "(`mixtures/gemm.py`). `LL rel` is |ΔlogL| / |logL| of the E "
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
        *_peak_lines(peaks),
        f"- load average (1 min) at the start / end of the run: {args.load_start:.1f} / "
        f"{os.getloadavg()[0]:.1f} (2 cores shared with other jobs: wall times above ~1 core's "
        "worth of load are inflated; compare the CPU columns)",
        "",
        "## One EM iteration",
        "",
        *_em_table(rows, peaks),
        "",
        "Spread of the repeats (min–max, ms; ours wall / ours CPU / sklearn wall):",
        "",
    ]
    for r in rows:
        lines.append(f"- ({_count(r.n)}, {r.d}, {r.k}) {r.cov} {r.dtype}: ours {_spread(r.ours_times)} / "
                     f"{_spread(r.ours_cpu_times)}, sklearn {_spread(r.sklearn_times)}")
    float32_rows = [r for r in rows if r.dtype == "float32"]
    if float32_rows:
        lines += ["", f"scikit-learn with float32 data and float32 parameters stays in float32: "
                  f"{float32_rows[0].sklearn_dtypes} (checked on every float32 row). Ours also "
                  "computes and accumulates in the data's dtype, so float32 differences are "
                  f"rounding of two float32 computations; the `{ACCUMULATE}` rows compute each chunk "
                  "in float32 and sum the chunks' statistics in float64 (`accumulate_dtype`)."]
    thread_rows = results.get("thread_rows")
    if thread_rows:
        threads = thread_rows[0].threads
        lines += ["", f"## At {threads} threads", "",
                  f"The ({_count(thread_rows[0].n)}, {thread_rows[0].d}, {thread_rows[0].k}) rows again with "
                  f"torch and the BLAS libraries at {threads} threads, same run, medians of "
                  f"{len(thread_rows[0].ours_times)} repeats after two warm-ups. Wall times here (CPU time "
                  f"counts both threads); `% of peak (wall)` against the {threads}-thread matmul peak by "
                  "wall time. With other jobs on the machine the second thread often waits for a core.",
                  "", *_threads_table(thread_rows, rows, peaks)]
    if results.get("goals"):
        lines += ["", "## Goals of issue #18", "", *goals_benchmark.report_lines(results["goals"], _count)]
    lines += ["", "## `torch.compile` of the per-chunk kernel", "", *_compile_lines(results["compile"])]
    lines += ["", "## Pyro steps against an EM iteration", "", *_pyro_lines(results["pyro"])]
    lines += ["", "## Profile of a MAP step", "", *_profile_lines(results["profile"])]
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
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run under a minute")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and BLAS (default 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default experiments/BENCHMARK.md; with --quick a file in "
                             "the temporary directory, so that a smoke run never replaces the report)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per configuration")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-map", action="store_true", help="skip the Pyro (MAP / SVI) steps and profile")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile of a MAP step")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip torch.compile of the per-chunk kernel (compiling takes 5-60 s)")
    parser.add_argument("--also-threads", type=int, default=2,
                        help="time the largest size again at this many threads (default 2; 0: skip)")
    parser.add_argument("--svi-batch", type=int, default=1024, help="minibatch size of the SVI rows (default 1024)")
    parser.add_argument("--no-goals", action="store_true", help="skip issue #18's goal rows (goals_benchmark.py)")
    parser.add_argument("--goals-repeats", type=int, default=None, help="interleaved rounds of the goal rows")
    # internal: run one memory measurement, spec as JSON on stdin
    parser.add_argument("--_memory-child", dest="memory_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.load(sys.stdin))))
        return
    if args.threads < 1:
        parser.error("--threads must be a positive integer")
    if args.also_threads < 0 or args.svi_batch < 1:
        parser.error("--also-threads must be >= 0 and --svi-batch >= 1")
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
    results: dict = {}
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as workdir:
        results["peaks"] = {args.threads: matmul_peak(args.threads)}
        print("matmul peak", results["peaks"], flush=True)
        for n, d, k in sizes:
            X64, start = make_problem(n, d, k)
            largest = (n, d, k) == sizes[-1]
            for cov in COV_TYPES:
                for dtype_name in list(DTYPES) + ([ACCUMULATE] if largest else []):
                    row = bench_config(X64, start, cov, dtype_name, args.repeats, threads=args.threads)
                    # memory in quick mode only for the first configuration, to stay a smoke run
                    if not args.no_memory and dtype_name in DTYPES and (not args.quick or not rows):
                        memory = measure_memory(X64, start, cov, dtype_name, args.threads, Path(workdir))
                        row.ours_mib = memory["ours"]["iteration_mib"]
                        row.sklearn_mib = memory["sklearn"]["iteration_mib"]
                        row.data_mib = memory["ours"]["data_mib"]
                    rows.append(row)
                    print(f"({n:.0e}, {d}, {k}) {cov:4s} {dtype_name}: ours {1e3 * row.ours:8.1f} ms "
                          f"(CPU {1e3 * row.ours_cpu:8.1f}), sklearn {1e3 * row.sklearn:8.1f} ms, ratio "
                          f"{row.ratio:5.2f} (CPU {row.cpu_ratio:5.2f}), LL rel {row.ll_rel:.1e}, "
                          f"params rel {row.params_rel:.1e}, MiB ours {row.ours_mib:.1f} "
                          f"sklearn {row.sklearn_mib:.1f}", flush=True)
            if largest and args.also_threads and args.also_threads != args.threads:
                with threadpool_limits(args.also_threads):
                    results["peaks"][args.also_threads] = matmul_peak(args.also_threads)
                # more repeats: a second thread is the first to suffer from other jobs
                results["thread_rows"] = bench_threads(X64, start, args.also_threads, max(7, args.repeats))
                for row in results["thread_rows"]:
                    print(f"{args.also_threads} threads: {row.cov} {row.dtype}: ours {1e3 * row.ours:.1f} ms, "
                          f"sklearn {1e3 * row.sklearn:.1f} ms, ratio {row.ratio:.2f}", flush=True)
        for n, d, k in QUICK_WIDE_SIZES if args.quick else WIDE_SIZES:
            X64, start = make_problem(n, d, k)
            for dtype_name in DTYPES:
                row = bench_config(X64, start, "full", dtype_name, args.repeats, threads=args.threads)
                rows.append(row)
                print(f"wide ({n:.0e}, {d}, {k}) full {dtype_name}: ours {1e3 * row.ours:.1f} ms, sklearn "
                      f"{1e3 * row.sklearn:.1f} ms, ratio {row.ratio:.2f}", flush=True)
        if args.no_goals:
            results["goals"] = None
        else:
            results["goals"] = goals_benchmark.run(make_problem, start_for, args.goals_repeats or args.repeats,
                                                   args.quick)
            # the raw rows beside the report, to re-render or check it
            args.out.with_suffix(".goals.json").write_text(json.dumps(results["goals"], indent=1, default=str))
        if args.no_compile:
            results["compile"] = "Skipped (`--no-compile`)."
        else:
            results["compile"] = bench_compile(*(QUICK_COMPILE_SIZE if args.quick else COMPILE_SIZE),
                                                repeats=args.repeats)
            for c in results["compile"]:
                print("compile", {key: value for key, value in c.items() if not key.endswith("_times")},
                      flush=True)
        if args.no_map:
            results["pyro"] = results["profile"] = "Skipped (`--no-map`)."
        elif map_available():
            results["pyro"] = bench_pyro(QUICK_MAP_SIZES if args.quick else MAP_SIZES,
                                         budget=2.0 if args.quick else 15.0, quick=args.quick,
                                         svi_batch=args.svi_batch)
            for m in results["pyro"]:
                print("pyro", m, flush=True)
            if args.no_profile:
                results["profile"] = "Skipped (`--no-profile`)."
            else:
                results["profile"] = profile_steps(*(QUICK_PROFILE_SIZE if args.quick else PROFILE_SIZE),
                                                   steps=2 if args.quick else 6)
                print("profile", {key: value.get("step_cpu") if isinstance(value, dict) else value
                                  for key, value in results["profile"].items()}, flush=True)
        else:
            results["pyro"] = results["profile"] = 'Skipped: `"map"` is not in `mixtures.inference.ROUTINES`.'
    write_report(args.out, rows, results, args, time.perf_counter() - began)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
