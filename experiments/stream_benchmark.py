"""Stream a large memory-mapped data set through EM: seconds per iteration and peak memory.

    python experiments/stream_benchmark.py [--n 100000000] [--d 8] [--k 8] [--iterations 2]
                                           [--path /tmp/mixtures_stream.npy] [--keep]

Writes an ``(n, d)`` float32 ``.npy`` file from a random mixture chunk by chunk
(never holding it in memory), then runs ``mixtures.fit(..., method="em")`` on
``np.load(path, mmap_mode="r")`` with a fixed number of iterations, one thread,
from the true parameters. Peak memory is the process's high-water mark of
resident memory (``VmHWM``, reset after the file is written); pages of the
memory-mapped file count while they are being read, the page cache does not.
Prints a markdown table (and appends it to ``experiments/BENCHMARK.md`` with
``--report``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import mixtures


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_data(path: Path, n: int, params: mixtures.MixtureParams, block: int = 1_000_000) -> float:
    """Sample ``n`` points into a float32 ``.npy`` file block by block; returns seconds."""
    start = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, params.n_features))
    for index, begin in enumerate(range(0, n, block)):
        rows = min(block, n - begin)
        X, _ = params.sample(rows, seed=index)
        out[begin:begin + rows] = X.numpy().astype(np.float32)
    out.flush()
    del out
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=1 << 16)
    parser.add_argument("--path", type=Path, default=Path("/tmp/mixtures_stream.npy"))
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument("--report", action="store_true", help="append the table to experiments/BENCHMARK.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    truth = mixtures.data.random_mixture(args.k, args.d, separation=2.0, seed=0)
    if not (args.path.exists() and np.load(args.path, mmap_mode="r").shape == (args.n, args.d)):
        print(f"writing {args.n:.0e} x {args.d} float32 points to {args.path} ...", flush=True)
        written = write_data(args.path, args.n, truth)
        print(f"  {written:.1f} s", flush=True)
    data = np.load(args.path, mmap_mode="r")
    start_params = truth.to(torch.float32)
    measured = _reset_peak()
    start = time.perf_counter()
    result = mixtures.fit(mixtures.GaussianMixture(args.k, "full"), data, init=start_params,
                          max_iter=args.iterations, tol=0.0, chunk_size=args.chunk_size,
                          accumulate_dtype=torch.float64, warn=False)
    elapsed = time.perf_counter() - start
    passes = args.iterations + 1  # the final pass scores the last parameters
    table = "\n".join([
        "| n | d | K | dtype | chunk | iterations | s / iteration (one pass) | peak memory (MiB) | log-lik / point |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        f"| {args.n:.0e} | {args.d} | {args.k} | float32 (float64 sums) | {args.chunk_size} | "
        f"{args.iterations} | {elapsed / passes:.1f} | "
        f"{_peak_mib():.0f}{'' if measured else ' (ru_maxrss)'} | {result.log_likelihood / args.n:.5f} |",
    ])
    print(table)
    if args.report:
        report = Path(__file__).with_name("BENCHMARK.md")
        with report.open("a") as handle:
            handle.write("\n## Streaming EM from a memory-mapped file\n\n"
                         f"`python experiments/stream_benchmark.py --n {args.n} --report` "
                         "(one thread; full covariance; peak = resident high-water mark of the "
                         "fit, data file in the page cache not counted):\n\n" + table + "\n")
    if not args.keep:
        os.remove(args.path)


if __name__ == "__main__":
    main()
