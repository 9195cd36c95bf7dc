"""No copy of the data: validation, initialization and a whole EM fit hold O(chunk) beyond the data.

Measured in a fresh process (Linux's ``VmHWM``, the peak resident size, reset after the imports
and after loading the data): 4·10⁶ points in 8 dimensions, float32 (122 MiB), K = 8. A copy of
the data, an ``(N,)`` int64 vector (31 MiB) or ``(N, K)`` responsibilities (122 MiB) would each
break the bound of 24 MiB (what is measured is 11-17 MiB whatever N: chunk buffers and the
allocator's own slack).
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import ctypes, json, sys
    from pathlib import Path
    import torch
    import mixtures
    from mixtures.core.validation import as_data
    from mixtures.init import initialize

    def peak():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    def reset():
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")

    torch.set_num_threads(1)
    model = mixtures.GaussianMixture(8, "full")
    warm = torch.randn(5000, 8)
    mixtures.fit(model, warm, "em", max_iter=2, init="kmeans", warn=False)
    del warm
    X = torch.randn(4_000_000, 8, generator=torch.Generator().manual_seed(0))
    X[::3, 0] += 6.0
    out = {}
    for name, run in (("as_data", lambda: as_data(X)),
                      ("kmeans++", lambda: initialize(model, X, "kmeans++", seed=0)),
                      ("kmeans", lambda: initialize(model, X, "kmeans", seed=0)),
                      ("fit", lambda: mixtures.fit(model, X, "em", max_iter=3, init="kmeans++", warn=False))):
        reset()
        before = peak()
        run()
        out[name] = peak() - before
    print(json.dumps(out))
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak counters")
def test_validation_initialization_and_fit_never_copy_the_data():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    extra = json.loads(done.stdout.strip().splitlines()[-1])
    for name, mib in extra.items():
        assert mib < 24.0, f"{name} used {mib:.1f} MiB beyond the 122 MiB of data: {extra}"
