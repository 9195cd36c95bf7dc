"""The one way ``mixtures`` writes a file: atomically, durably, with normal permissions.

Every writer in the package (saved results, experiment records, tables, histories,
posteriors, figures, reports) goes through :func:`atomic_writer`, so a crash or a kill
at any moment leaves either the old file or the new one, never a partial file:

1. the content goes to a fresh temporary file beside the target
   (``.<name>.<random>.tmp``), created with ``open(..., "x")`` so it gets the usual
   permissions of the user's umask (``tempfile.mkstemp`` would make it private, 0600);
2. it is flushed and ``fsync``-ed, then renamed over the target (``os.replace``, atomic
   on POSIX and Windows within one file system);
3. on any failure the temporary file is removed and the error propagates.

:data:`TEMPORARY_PATTERN` matches the temporaries a killed process may leave behind
(:func:`remove_stale_temporaries` deletes them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

#: names of the temporary files of :func:`atomic_writer`
TEMPORARY_PATTERN = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", *, make_parents: bool = False,
                  encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a stream whose content replaces ``path`` atomically when the block ends.

    Args:
        path: the target file.
        mode: ``"wb"`` (bytes) or ``"w"`` (text; ``encoding`` defaults to UTF-8, newlines
            written as given).
        make_parents: create missing parent directories (else a missing directory is a
            ``FileNotFoundError`` naming it).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'; got {mode!r}.")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {str(path)!r}: it is a directory; give a file name.")
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    text = mode == "w"
    stream = open(temporary, "x" if text else "xb", encoding=(encoding or "utf-8") if text else None,
                  newline="" if text else None)  # opened before the try: a failed open leaves nothing
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, make_parents: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_writer(path, "w", make_parents=make_parents) as stream:
        stream.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, make_parents: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_writer(path, "wb", make_parents=make_parents) as stream:
        stream.write(data)
    return Path(path)


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *,
                      make_parents: bool = False) -> Path:
    """Call ``write(stream)`` on a binary stream that replaces ``path`` atomically (e.g. ``torch.save``)."""
    with atomic_writer(path, "wb", make_parents=make_parents) as stream:
        write(stream)
    return Path(path)


def remove_stale_temporaries(directory: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory``; return them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    candidates = directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")
    removed = []
    for path in candidates:
        if path.is_file() and TEMPORARY_PATTERN.match(path.name):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def file_sha256(path: str | os.PathLike, chunk_size: int = 2**20) -> str:
    """The SHA-256 hex digest of a file's bytes (read in chunks of ``chunk_size``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def check_writable(directory: str | os.PathLike) -> None:
    """Raise the ``OSError`` that writing a file in ``directory`` would raise (read-only, full, not a
    directory...), by creating and deleting a temporary file there (named like :func:`atomic_writer`'s,
    so one a kill leaves behind is removed by :func:`remove_stale_temporaries`).

    Permission bits alone do not say it (root ignores them; a read-only mount does not show in them).
    """
    probe = Path(directory) / f".probe.{secrets.token_hex(8)}.tmp"
    descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(descriptor)
    os.unlink(probe)
