"""Whose run directory this is, and whether it can be written, checked before anything is fitted.

A run directory belongs to one experiment: ``run.json`` records its identity (the config's
``name`` and the absolute path of its file). Another experiment pointed at it is refused
with a message naming both, unless told to replace it (``replace=True``, ``mixtures run
--force``), and then every entry of the old run (:data:`RUN_ENTRIES`) is deleted before the
first write, so nothing of it survives mixed in; files that are not a run's are never
touched. A directory holding run files but no ``run.json`` (an older mixtures, or written
by hand) is refused the same way.

Before the first fit (:func:`check_output`): the output path is a directory or can be
made one, files can be created there (a read-only directory or file system, a full disk
are found by creating a probe file, since permission bits do not show them), and each of
the run's own entries that exists has the right kind (``records`` is a directory, not a
file; ``results.csv`` a file; none a symbolic link).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from mixtures.core.files import check_writable
from mixtures.core.version import VERSION
from mixtures.experiment.config.schema import Config
from mixtures.experiment.store import write_file

RUN_FILE = "run.json"
RUN_FORMAT = "mixtures.experiment.run"
#: what a run directory holds (name -> is a directory); nothing else is ever written or deleted
RUN_ENTRIES = {RUN_FILE: False, "config.yaml": False, "results.csv": False, "histories.csv": False,
               "report.md": False, "provenance.json": False, "records": True, "histories": True, "posteriors": True,
               "figures": True, "tables": True}
#: how to get past a refusal
REPLACE_HINT = "choose another --out, or pass --force (replace=True in Python) to replace it: its results are deleted"


class RunDirectoryError(ValueError):
    """The output directory cannot hold this run (another experiment's, not writable, damaged)."""


def identity(config: Config) -> dict[str, str]:
    """What makes two runs the same experiment: the config's name and the absolute path of its file."""
    source = Path(config.source)
    return {"name": config.name, "config": str(source.resolve()) if source.is_file() else config.source}


def _describe(experiment: Any) -> str:
    if isinstance(experiment, dict):
        return f"experiment {experiment.get('name')!r} (config {experiment.get('config')})"
    return "an unknown experiment"


def check_output(out_dir: Path, replace: bool = False) -> None:
    """Refuse an output path that cannot take a run's files, before anything is fitted."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"the output path {str(out_dir)!r} exists and is not a directory; give a directory.")
    existing = out_dir
    while not existing.exists():
        if existing.is_symlink():
            raise RunDirectoryError(f"cannot create {str(out_dir)!r}: {str(existing)!r} is a broken symbolic link.")
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirectoryError(f"cannot create {str(out_dir)!r}: {str(existing)!r} is a file, not a directory.")
    try:
        check_writable(existing)
    except OSError as error:
        raise RunDirectoryError(f"cannot write in {str(existing)!r} ({error.strerror}): the run could not store "
                                "its results; give a writable --out.") from None
    if replace or not out_dir.is_dir():
        return
    for name, is_directory in RUN_ENTRIES.items():
        path = out_dir / name
        if path.is_symlink():
            raise RunDirectoryError(f"{str(path)!r} is a symbolic link; a run directory's entries must be its own "
                                    f"({REPLACE_HINT}).")
        if path.exists() and path.is_dir() != is_directory:
            kind = "a directory" if is_directory else "a file"
            raise RunDirectoryError(f"{str(path)!r} should be {kind} of the run and is not: move it away, or pass "
                                    "--force (replace=True in Python) to replace the run directory.")


def check_owner(out_dir: Path, experiment: dict[str, str], replace: bool = False) -> None:
    """Refuse a directory that holds another experiment's run (or run files of unknown origin)."""
    if replace or not out_dir.is_dir():
        return
    path = out_dir / RUN_FILE
    if not path.exists():
        found = [name for name in RUN_ENTRIES if (out_dir / name).exists()]
        if found:
            raise RunDirectoryError(
                f"{str(out_dir)!r} holds run files ({', '.join(found[:4])}) but no {RUN_FILE}: they were written by "
                f"an older mixtures or by hand, so whose they are is unknown; {REPLACE_HINT}.")
        return
    owner = read_owner(path)
    if owner != experiment:
        raise RunDirectoryError(f"{str(out_dir)!r} holds the run of {_describe(owner)}; this is "
                                f"{_describe(experiment)}: {REPLACE_HINT}.")


def read_owner(path: Path) -> dict[str, str]:
    """The experiment a ``run.json`` names (a :class:`RunDirectoryError` when it is unreadable)."""
    try:
        with open(path, "rb") as stream:
            content = json.loads(stream.read(2**16).decode("utf-8"))
    except (OSError, ValueError) as error:
        raise RunDirectoryError(f"{str(path)!r} is unreadable ({type(error).__name__}), so whose run this is "
                                f"is unknown; {REPLACE_HINT}.") from None
    owner = content.get("experiment") if isinstance(content, dict) else None
    if not isinstance(content, dict) or content.get("format") != RUN_FORMAT or not isinstance(owner, dict):
        raise RunDirectoryError(f"{str(path)!r} is not a run identity file of mixtures; {REPLACE_HINT}.")
    return owner


def claim(out_dir: Path, experiment: dict[str, str], replace: bool = False) -> None:
    """Make ``out_dir`` this experiment's: with ``replace``, delete every entry of the run it held first."""
    if replace and out_dir.is_dir():
        for name in RUN_ENTRIES:
            remove(out_dir / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    content = {"format": RUN_FORMAT, "version": 1, "experiment": experiment, "written_by": VERSION}
    write_file(out_dir / RUN_FILE, json.dumps(content, indent=1) + "\n")


def remove(path: Path) -> None:
    """Delete a file, a symbolic link (not its target) or a directory tree; nothing when absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def forget_outputs(out_dir: Path) -> None:
    """Delete report.md, the figures and the tables: what this run will redraw must not describe stored fits it
    replaces."""
    remove(out_dir / "report.md")
    for folder in (out_dir / "figures", out_dir / "tables"):
        if folder.is_dir():
            for path in folder.iterdir():
                with contextlib.suppress(OSError):
                    remove(path)


def remove_stale_figures(out_dir: Path, keep: set[Path], folder: str = "figures") -> list[Path]:
    """Delete the files in ``figures/`` (or ``tables/``) that this run did not write (a renamed dataset's, an
    older run's)."""
    figures = out_dir / folder
    stale = [path for path in figures.iterdir() if path.resolve() not in keep] if figures.is_dir() else []
    for path in stale:
        with contextlib.suppress(OSError):
            remove(path)
    return stale
