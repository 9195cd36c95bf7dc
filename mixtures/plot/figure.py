"""Figures without pyplot: the one lazy matplotlib import, :func:`subplots` and :func:`save_figure`.

Every use of matplotlib in :mod:`mixtures.plot` goes through :func:`load_matplotlib`,
so importing the package imports no matplotlib at all, and plotting never imports
pyplot: figures are built on an Agg canvas directly, with no global figure registry
to leak memory in long experiment runs.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mixtures.core.files import atomic_write_with

#: image suffixes that :func:`save_figure` drops from a path (``"fig.png"`` means ``"fig"``)
_KNOWN_SUFFIXES = {".png", ".pdf", ".svg", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


def load_matplotlib(submodule: str = "") -> ModuleType:
    """``matplotlib`` (or ``matplotlib.<submodule>``), imported on first use.

    Selects the Agg backend when there is no display, but only while pyplot is not
    in use: a user's interactive session keeps its backend.
    """
    import matplotlib  # here, not at the top: importing mixtures.plot must not import matplotlib

    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return importlib.import_module(f"matplotlib.{submodule}") if submodule else matplotlib


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             squeeze: bool = True, **kwargs: Any):
    """``(fig, axes)`` like ``pyplot.subplots`` but without pyplot's global state.

    ``figsize`` defaults to 4.5 x 3.6 inches per panel; other keyword arguments go
    to ``Figure.subplots`` (``sharex``, ``sharey``...).
    """
    figure_class = load_matplotlib("figure").Figure
    canvas_class = load_matplotlib("backends.backend_agg").FigureCanvasAgg
    if figsize is None:
        figsize = (4.5 * ncols, 3.6 * nrows)
    fig = figure_class(figsize=figsize, layout="constrained")
    canvas_class(fig)  # attaches itself to fig: savefig needs a canvas
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def save_figure(fig: Any, path: str | os.PathLike, formats: Sequence[str] = ("png",), dpi: int = 150
                ) -> list[Path]:
    """Write ``fig`` as ``<path>.<format>`` for each format, atomically.

    Each file is written through :func:`mixtures.core.files.atomic_writer` (a
    temporary file beside the target with the usual permissions, fsync-ed, then
    renamed over it), so readers never see a half-written figure. A
    suffix already on ``path`` that names an image format is dropped
    (``"fig.png"`` and ``"fig"`` give the same files). Parent directories are
    created. PDFs carry no creation date, so reruns give identical files.

    Returns:
        The written paths, in the order of ``formats``.
    """
    if isinstance(formats, str):
        formats = (formats,)
    path = Path(path)
    if path.suffix.lower() in _KNOWN_SUFFIXES:
        path = path.with_suffix("")
    supported = fig.canvas.get_supported_filetypes()
    for fmt in formats:  # all checked before any is written
        if fmt not in supported:
            raise ValueError(f"unsupported figure format {fmt!r}; choose from {sorted(supported)}.")
    written = []
    for fmt in formats:
        target = path.parent / f"{path.name}.{fmt}"
        # no date: reruns give identical PDFs and SVGs
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Date": None} if fmt == "svg" else None
        atomic_write_with(target, functools.partial(fig.savefig, format=fmt, dpi=dpi, metadata=metadata),
                          make_parents=True)
        written.append(target)
    return written
