"""Tests of mixtures.plot.figure: saving figures, and never touching pyplot."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from mixtures import plot


def test_save_figure_png_and_pdf_atomically(tmp_path, assert_png):
    fig, ax = plot.subplots()
    ax.plot([0, 1], [0, 1])
    target = tmp_path / "nested" / "dir" / "figure.png"  # suffix dropped, directories created
    paths = plot.save_figure(fig, target, formats=("png", "pdf"))
    assert paths == [tmp_path / "nested/dir/figure.png", tmp_path / "nested/dir/figure.pdf"]
    assert_png(paths[0])
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    # overwriting works and leaves no temporary files behind
    first_pdf = paths[1].read_bytes()
    plot.save_figure(fig, tmp_path / "nested" / "dir" / "figure", formats=("png", "pdf"))
    assert sorted(p.name for p in (tmp_path / "nested" / "dir").iterdir()) == ["figure.pdf", "figure.png"]
    assert paths[1].read_bytes() == first_pdf  # no creation date: reproducible
    with pytest.raises(ValueError, match="unsupported figure format"):
        plot.save_figure(fig, tmp_path / "x", formats=("docx",))
    assert not (tmp_path / "x.docx").exists()



@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("eps", b"%!PS-Adobe-3.0 EPSF"), ("ps", b"%!PS")])
def test_save_figure_text_formats_through_the_binary_atomic_stream(tmp_path, fmt, magic):
    fig, ax = plot.subplots()
    ax.plot([0, 1], [0, 1])
    (path,) = plot.save_figure(fig, tmp_path / f"figure.{fmt}", formats=fmt)
    assert path == tmp_path / f"figure.{fmt}" and path.read_bytes().startswith(magic)


def test_save_figure_gets_normal_permissions_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    fig, ax = plot.subplots()
    ax.plot([0, 1], [0, 1])
    (path,) = plot.save_figure(fig, tmp_path / "figure")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # the umask's, not mkstemp's private 0600
    before = path.read_bytes()

    def fail_halfway(stream, **kwargs):
        stream.write(b"\x89PNG half a figure")
        raise RuntimeError("renderer died")

    monkeypatch.setattr(fig, "savefig", fail_halfway)
    with pytest.raises(RuntimeError, match="renderer died"):
        plot.save_figure(fig, tmp_path / "figure")
    assert path.read_bytes() == before  # the old figure stays whole
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # and no temporary is left


def test_importing_and_plotting_never_touch_pyplot():
    code = (
        "import sys, torch; import mixtures.plot as p\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "fig, ax = p.subplots(); p.add_covariance_ellipse(ax, [0, 0], torch.eye(2))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


#: every public name of the single module mixtures.plot before it became a package
PUBLIC_NAMES = (
    "COVARIANCE_STYLES", "LINESTYLES", "MARKERS", "TRUTH_STYLE", "add_covariance_ellipse", "add_rate_guide",
    "ellipse_geometry", "gap_is_zero", "kl_gap_values", "method_colors", "plot_bic", "plot_density_contours",
    "plot_kl_gap", "plot_metric_vs", "plot_mixture", "plot_posterior_ellipses", "plot_traces",
    "plot_weight_intervals", "save_figure", "subplots", "symlog_ticks",
    "VIEWS", "plot_classification", "plot_uncertainty", "plot_view", "view_figure",  # mclust's views
)


def test_the_package_exports_every_public_name_of_the_old_module():
    namespace: dict = {}
    exec(f"from mixtures.plot import {', '.join(PUBLIC_NAMES)}", namespace)  # the form report.py and users write
    assert all(namespace[name] is getattr(plot, name) for name in PUBLIC_NAMES)
    assert sorted(plot.__all__) == sorted(PUBLIC_NAMES)


def test_each_module_imports_on_its_own_without_matplotlib():
    # a fresh interpreter; each module imported first with every mixtures.plot module forgotten, so an
    # import cycle inside the package shows up whichever module a caller imports first
    code = (
        "import importlib, pkgutil, sys\n"
        "import mixtures.plot\n"
        "names = [m.name for m in pkgutil.iter_modules(mixtures.plot.__path__, 'mixtures.plot.')]\n"
        "assert len(names) >= 8, names\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('mixtures.plot')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'matplotlib']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
