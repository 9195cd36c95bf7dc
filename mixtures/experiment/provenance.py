"""How a run was made: ``provenance.json`` in every run directory, and the report's header line.

Recorded: the package version; the project's git commit (and whether the work tree had uncommitted
changes) when mixtures runs from a checkout, ``None`` with the reason otherwise (no checkout, no
``git`` executable, git failing: never an error); Python, torch, Pyro and numpy versions; torch's
thread settings and the thread variables of the environment; the machine (CPU model, logical
cores, platform); start and end times (UTC) and the duration; the resolved config and its
SHA-256. A rerun into the same directory keeps the earlier runs' essentials under ``previous``
and says so when the package version or the commit changed (its fits were then refitted, since
records are keyed on the version).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from mixtures.core.version import VERSION
from mixtures.experiment.config.schema import Config
from mixtures.experiment.store import write_file

PROVENANCE_FILE = "provenance.json"
PROVENANCE_FORMAT = "mixtures.experiment.provenance"
#: earlier runs kept in ``previous`` (oldest dropped first)
MAX_PREVIOUS = 50
#: where the package's sources live; a checkout has .git beside the package folder
SOURCE_ROOT = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def now() -> str:
    """The current time, UTC, ISO 8601 to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def git_commit(root: Path = SOURCE_ROOT, timeout: float = 10.0) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout at ``root``, or ``{"commit": None, "note": why}``."""
    if not (root / ".git").exists():
        return {"commit": None, "note": "not run from a git checkout (an installed package)"}
    executable = shutil.which("git")
    if executable is None:
        return {"commit": None, "note": "git is not installed"}
    try:
        commit = subprocess.run([executable, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=timeout, check=True).stdout.strip()
        status = subprocess.run([executable, "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return {"commit": None, "note": f"git failed: {' '.join(str(error).split())[:200]}"}
    return {"commit": commit, "dirty": bool(status.strip())}


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def config_sha256(config: Config) -> str:
    """SHA-256 of the resolved config as written to ``config.yaml``."""
    return hashlib.sha256(config.to_yaml().encode("utf-8")).hexdigest()


def collect(config: Config, started: str, fits: dict[str, int]) -> dict[str, Any]:
    """The provenance of this run (``started``: :func:`now` at its start; ``fits``: run/reused counts)."""
    ended = now()
    duration = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return {"format": PROVENANCE_FORMAT, "package_version": VERSION, "git": git_commit(),
            "python": platform.python_version(), "python_implementation": platform.python_implementation(),
            "torch": torch.__version__, "pyro": pyro.__version__, "numpy": np.__version__,
            "threads": {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
                        **{name: os.environ.get(name) for name in THREAD_VARIABLES}},
            "machine": {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "platform": platform.platform(),
                        "architecture": platform.machine()},
            "started": started, "ended": ended, "duration_s": round(duration, 3),
            "command": " ".join(sys.argv), "fits": fits,
            "config_sha256": config_sha256(config), "config": config.to_yaml()}


def read_previous(out_dir: Path) -> dict[str, Any] | None:
    """The provenance an earlier run left in ``out_dir`` (``None``: none, or unreadable)."""
    try:
        found = json.loads((out_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("format") == PROVENANCE_FORMAT else None


def _essentials(record: dict[str, Any]) -> dict[str, Any]:
    git = record.get("git") if isinstance(record.get("git"), dict) else {}
    return {"package_version": record.get("package_version"), "commit": git.get("commit"),
            "started": record.get("started"), "ended": record.get("ended"),
            "config_sha256": record.get("config_sha256")}


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Sentences on what differs from the previous run in the same directory (version, commit, config)."""
    if previous is None:
        return []
    said = []
    before, after = previous.get("package_version"), current["package_version"]
    if before != after:
        said.append(f"The previous run in this directory used mixtures {before}; this one used {after}: fits stored "
                    "under another version were refitted, not reused.")
    old_commit, new_commit = _essentials(previous)["commit"], current["git"].get("commit")
    if old_commit and new_commit and old_commit != new_commit:
        said.append(f"The previous run was made at commit {old_commit[:12]}; this one at {new_commit[:12]}.")
    if previous.get("config_sha256") not in (None, current["config_sha256"]):
        said.append("The resolved config differs from the previous run's (a changed config or overrides).")
    return said


def write_provenance(out_dir: Path, config: Config, started: str, fits: dict[str, int]) -> dict[str, Any]:
    """Collect this run's provenance, compare it with the previous run's, write ``provenance.json``; return it."""
    current = collect(config, started, fits)
    previous = read_previous(out_dir)
    current["changes"] = changes(previous, current)
    history = list(previous.get("previous", [])) if previous is not None else []
    if previous is not None:
        history.append(_essentials(previous))
    current["previous"] = history[-MAX_PREVIOUS:]
    write_file(out_dir / PROVENANCE_FILE, json.dumps(current, indent=1) + "\n")
    return current


def header_lines(provenance: dict[str, Any] | None) -> list[str]:
    """The report's provenance paragraph (``[]`` without provenance)."""
    if not provenance:
        return []
    git = provenance.get("git") or {}
    commit = (f"git {git['commit'][:12]}" + (" with uncommitted changes" if git.get("dirty") else "")
              if git.get("commit") else f"no git commit ({git.get('note', 'unknown')})")
    threads, machine = provenance.get("threads", {}), provenance.get("machine", {})
    text = (f"Made by mixtures {provenance['package_version']} ({commit}); Python {provenance['python']}, torch "
            f"{provenance['torch']}, Pyro {provenance['pyro']}, numpy {provenance['numpy']}; "
            f"{threads.get('torch_intra_op')} torch thread(s); {machine.get('cpu')}, {machine.get('logical_cores')} "
            f"logical cores; started {provenance['started']}, ended {provenance['ended']} "
            f"({provenance['duration_s']:.1f} s); config SHA-256 {provenance['config_sha256'][:16]}… "
            f"(all of it in [`{PROVENANCE_FILE}`]({PROVENANCE_FILE})).")
    return [text, ""] + [f"**Note:** {change}" for change in provenance.get("changes", [])] + \
        ([""] if provenance.get("changes") else [])
