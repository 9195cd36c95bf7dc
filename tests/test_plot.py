"""Tests of mixtures.plot: ellipse geometry, and every plotting function rendering to PNG."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, History, MixtureParams, plot

DT = torch.float64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rotation(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def assert_png(path) -> None:
    assert path.exists(), path
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC


def render(fig, tmp_path, name: str):
    paths = plot.save_figure(fig, tmp_path / name)
    assert paths == [tmp_path / f"{name}.png"]
    assert_png(paths[0])
    return paths[0]


@pytest.fixture(scope="module")
def truth() -> MixtureParams:
    return MixtureParams(torch.tensor([0.3, 0.7], dtype=DT),
                         torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=DT),
                         torch.stack([torch.eye(2, dtype=DT), 0.5 * torch.eye(2, dtype=DT)]))


@pytest.fixture(scope="module")
def data(truth):
    return truth.sample(300, seed=0)


@pytest.fixture(scope="module")
def results(data):
    X, _ = data
    em = mixtures.fit(GaussianMixture(2, "full"), X, method="em", seed=0, max_iter=30)
    hard = mixtures.fit(GaussianMixture(2, "full"), X, method="hard_em", seed=0, max_iter=30)
    return {"em": em, "hard_em": hard}


# -- geometry ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_std", [1.0, 2.0, 3.0])
def test_axis_aligned_ellipses(n_std):
    assert plot.ellipse_geometry(np.diag([4.0, 1.0]), n_std) == pytest.approx((4 * n_std, 2 * n_std, 0.0))
    width, height, angle = plot.ellipse_geometry(torch.diag(torch.tensor([1.0, 4.0])), n_std)
    assert (width, height, angle) == pytest.approx((4 * n_std, 2 * n_std, 90.0))


@pytest.mark.parametrize("degrees", [45.0, 135.0, 10.0, 170.0, 90.0, 0.0, 225.0, -45.0])
def test_rotated_ellipses_recover_their_angle_mod_180(degrees):
    R = rotation(degrees)
    cov = R @ np.diag([9.0, 1.0]) @ R.T
    width, height, angle = plot.ellipse_geometry(cov, n_std=2.0)
    assert width == pytest.approx(12.0, rel=1e-12)
    assert height == pytest.approx(4.0, rel=1e-12)
    assert 0.0 <= angle < 180.0
    assert angle == pytest.approx(degrees % 180.0, abs=1e-9)


def test_isotropic_and_degenerate_ellipses():
    width, height, angle = plot.ellipse_geometry(2.5 * np.eye(2), n_std=2.0)
    assert width == height == pytest.approx(4 * math.sqrt(2.5))
    assert angle == 0.0
    # rank one: a segment of length 2 n_std sqrt(λ) along (1, 1)
    width, height, angle = plot.ellipse_geometry(np.ones((2, 2)), n_std=1.0)
    assert (width, height, angle) == pytest.approx((2 * math.sqrt(2.0), 0.0, 45.0), abs=1e-12)


def test_geometry_agrees_with_an_eigendecomposition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        A = rng.normal(size=(2, 2))
        cov = A @ A.T + 0.1 * np.eye(2)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        width, height, angle = plot.ellipse_geometry(cov, n_std=1.5)
        assert width == pytest.approx(3.0 * math.sqrt(eigenvalues[1]), rel=1e-10)
        assert height == pytest.approx(3.0 * math.sqrt(eigenvalues[0]), rel=1e-10)
        direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        assert abs(direction @ eigenvectors[:, 1]) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("cov, message", [
    (np.eye(3), r"\(2, 2\)"),
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
    (np.array([[np.nan, 0.0], [0.0, 1.0]]), "NaN"),
])
def test_geometry_rejects_bad_matrices(cov, message):
    with pytest.raises(ValueError, match=message):
        plot.ellipse_geometry(cov)


def test_geometry_rejects_bad_n_std():
    with pytest.raises(ValueError, match="n_std"):
        plot.ellipse_geometry(np.eye(2), n_std=0.0)


def test_add_covariance_ellipse_patch(tmp_path):
    fig, ax = plot.subplots()
    R = rotation(30.0)
    cov = R @ np.diag([4.0, 0.25]) @ R.T
    patch = plot.add_covariance_ellipse(ax, torch.tensor([10.0, -5.0]), torch.as_tensor(cov), n_std=2.0,
                                        edgecolor="red")
    assert patch in ax.patches
    assert patch.center == pytest.approx((10.0, -5.0))
    assert patch.width == pytest.approx(8.0)
    assert patch.height == pytest.approx(2.0)
    assert patch.angle == pytest.approx(30.0)
    assert patch.get_facecolor()[3] == 0.0  # unfilled by default
    # the axes limits contain the whole ellipse
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    half = 2.0 * np.sqrt(np.diag(cov))
    assert x0 <= 10.0 - half[0] and x1 >= 10.0 + half[0]
    assert y0 <= -5.0 - half[1] and y1 >= -5.0 + half[1]
    render(fig, tmp_path, "ellipse")
    with pytest.raises(ValueError, match="mean must have 2 entries"):
        plot.add_covariance_ellipse(ax, [0.0, 0.0, 0.0], np.eye(2))


# -- rendering ------------------------------------------------------------------------

def test_plot_mixture_2d(tmp_path, truth, data, results):
    X, labels = data
    fig, axes = plot.subplots(1, 2)
    ax = plot.plot_mixture(axes[0], X, {"em": results["em"], "hard": results["hard_em"].params},
                           truth=truth, labels=labels, title="two fits")
    assert ax is axes[0]
    # two components per fit plus the truth
    assert len(ax.patches) == 6
    assert ax.get_title() == "two fits"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["em", "hard", "truth"]
    plot.plot_mixture(axes[1], X.numpy(), results["em"].params)
    render(fig, tmp_path, "mixture2d")


def test_plot_mixture_1d_and_3d(tmp_path):
    one_d = MixtureParams(torch.tensor([0.4, 0.6], dtype=DT), torch.tensor([[-2.0], [2.0]], dtype=DT),
                          torch.tensor([0.5, 1.0], dtype=DT), "spherical")
    X1, _ = one_d.sample(200, seed=1)
    three_d = MixtureParams(torch.tensor([0.5, 0.5], dtype=DT),
                            torch.tensor([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]], dtype=DT),
                            torch.tensor([[1.0, 2.0, 0.5], [0.5, 0.5, 2.0]], dtype=DT), "diag")
    X3, _ = three_d.sample(200, seed=2)
    fig, axes = plot.subplots(1, 2)
    plot.plot_mixture(axes[0], X1, {"fit": one_d}, truth=one_d)
    assert len(axes[0].lines) == 2  # fitted and true densities
    plot.plot_mixture(axes[1], X3, {"fit": three_d}, dims=(0, 2))
    # marginal over dims (0, 2): variances (1, 0.5) and (0.5, 2): axis-aligned 2-sigma ellipses
    geometry = sorted((p.width, p.height, p.angle) for p in axes[1].patches)
    assert geometry[0] == pytest.approx((4.0, 4 * math.sqrt(0.5), 0.0))
    assert geometry[1] == pytest.approx((4 * math.sqrt(2.0), 4 * math.sqrt(0.5), 90.0))
    render(fig, tmp_path, "mixture1d3d")
    with pytest.raises(ValueError, match="D=2 features but X has 3"):
        wrong = MixtureParams(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
        plot.plot_mixture(axes[1], X3, {"wrong": wrong})


def test_plot_density_contours(tmp_path, truth, data, results):
    X, _ = data
    fig, axes = plot.subplots(1, 2)
    ax = plot.plot_density_contours(axes[0], X, results["em"], masses=(0.5, 0.9))
    assert ax is axes[0]
    plot.plot_density_contours(axes[1], X, truth, per_component=True)
    assert len(axes[1].patches) == 2 * 3  # one ellipse per component and mass
    # per-component 50% region of a unit Gaussian in 2-D: radius sqrt(2 log 2)
    first = axes[1].patches[0]
    assert first.width == pytest.approx(2 * math.sqrt(2 * math.log(2.0)))
    render(fig, tmp_path, "contours")
    with pytest.raises(ValueError, match="masses"):
        plot.plot_density_contours(axes[0], X, truth, masses=(0.5, 1.0))


def test_hpd_contour_levels_enclose_their_mass():
    # single standard Gaussian: the 50% region is the disc of radius sqrt(2 log 2)
    gaussian = MixtureParams(torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT),
                             torch.eye(2, dtype=DT)[None])
    X, _ = gaussian.sample(50, seed=0)
    fig, ax = plot.subplots()
    plot.plot_density_contours(ax, X, gaussian, masses=(0.5,), n_samples=200_000)
    contour = [c for c in ax.collections if hasattr(c, "levels")][0]
    expected = -math.log(2 * math.pi) - math.log(2.0)  # log density at r² = 2 log 2
    assert contour.levels[0] == pytest.approx(expected, abs=0.01)


def test_plot_traces_and_kl_gap(tmp_path, data, results):
    X, _ = data
    N = X.shape[0]
    fig, axes = plot.subplots(1, 3)
    histories = {name: result.history for name, result in results.items()}
    plot.plot_traces(axes[0], histories, n_points=N)
    em_line = axes[0].lines[0]
    np.testing.assert_allclose(em_line.get_ydata(), results["em"].history["log_likelihood"].numpy() / N,
                               rtol=1e-15)
    np.testing.assert_allclose(em_line.get_xdata(), results["em"].history["iteration"].numpy())
    plot.plot_traces(axes[1], results, column="elbo", x="time", per_point=False)
    assert axes[1].get_xlabel() == "time (s)"
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), results["em"].history["elbo"].numpy())
    plot.plot_kl_gap(axes[2], histories)
    render(fig, tmp_path, "traces")
    with pytest.raises(ValueError, match="pass n_points=N"):
        plot.plot_traces(axes[0], histories)
    with pytest.raises(ValueError, match="x must be"):
        plot.plot_traces(axes[0], histories, x="epoch", per_point=False)
    with pytest.raises(KeyError, match="no history has"):
        plot.plot_traces(axes[0], histories, column="grad_norm", per_point=False)


def test_kl_gap_from_columns_symlog_and_identically_zero_gaps(tmp_path):
    history = History()
    for i in range(5):
        history.append(iteration=i, log_likelihood=-100.0 + i, elbo=-100.0 + i - 2.0 ** -i, time=0.1 * i)
    crisp = History()  # MAP: the ELBO is the log-likelihood (rounding aside)
    for i in range(3):
        crisp.append(iteration=i, log_likelihood=-50.0, elbo=-50.0, kl=2e-13 if i else 0.0, time=0.1 * i)
    svi = History()  # a mean-field q starts at the exact posterior: its row 0 gap is exactly 0
    for i, gap in enumerate((0.0, 1.0, 0.1, 0.01)):
        svi.append(iteration=i, log_likelihood=-80.0, elbo=-80.0 - gap, time=0.1 * i)
    fig, axes = plot.subplots(1, 2)
    plot.plot_kl_gap(axes[0], {"soft": history.to_dict()}, per_point=True, n_points=10)
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), 2.0 ** -np.arange(5) / 10, rtol=1e-12)
    assert axes[0].get_yscale() == "symlog"
    colors = {"MAP": "C3", "SVI": "C4"}
    plot.plot_kl_gap(axes[1], {"MAP": crisp, "SVI": svi}, colors=colors)
    assert axes[1].get_yscale() == "symlog"  # the zeros stay on the axis (a log axis sends them to -inf)
    map_line, svi_dot, svi_line = axes[1].lines
    assert map_line.get_label() == "MAP (≡ 0)" and (map_line.get_ydata() == 0).all()
    assert any("gap ≡ 0: MAP" in t.get_text() for t in axes[1].texts)
    assert map_line.get_color() == "C3" and svi_line.get_color() == "C4" and svi_dot.get_color() == "C4"
    # SVI's exact 0 at row 0 is a dot on the 0 line, not joined to the curve
    assert list(svi_dot.get_xdata()) == [0] and list(svi_dot.get_ydata()) == [0.0]
    assert np.isnan(svi_line.get_ydata()[0]) and svi_line.get_ydata()[1] == 1.0
    assert -1e-2 < axes[1].get_ylim()[0] < 0.0  # the 0 line sits just above the bottom spine
    assert plot.gap_is_zero(crisp) and not plot.gap_is_zero(svi)
    # ticks: 0, then decades from ten times the linear threshold (no "0" / "10^-k" collision)
    ticks = [t for t in axes[1].get_yticks() if axes[1].get_ylim()[0] <= t <= axes[1].get_ylim()[1]]
    assert ticks[0] == 0.0 and ticks[1] >= 10 * axes[1].yaxis.get_transform().linthresh * 0.999
    render(fig, tmp_path, "klgap")


def test_plot_metric_vs_averages_repeats(tmp_path):
    table = []
    for method, slope in (("em", 1.0), ("svi", 2.0)):
        for n in (100, 1000, 10000):
            for seed in range(3):
                table.append({"method": method, "n": n, "seed": seed,
                              "means_rmse": slope / math.sqrt(n) * (1 + 0.1 * seed)})
    table.append({"method": "em", "n": 50, "means_rmse": float("nan")})  # skipped
    fig, ax = plot.subplots()
    plot.plot_metric_vs(ax, table, x="n", y="means_rmse", logx=True, logy=True)
    em_line = ax.lines[0]
    np.testing.assert_allclose(em_line.get_xdata(), [100, 1000, 10000])
    np.testing.assert_allclose(em_line.get_ydata(), 1.1 / np.sqrt([100, 1000, 10000]), rtol=1e-12)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["em", "svi"]
    render(fig, tmp_path, "metric")
    with pytest.raises(KeyError, match="group"):
        plot.plot_metric_vs(ax, [{"n": 1, "y": 2}], x="n", y="y")


def test_plot_bic_excludes_singular_fits_from_best(tmp_path):
    table = []
    for cov_type, offset in (("full", 0.0), ("diag", 30.0), ("spherical", 60.0)):
        for k in range(1, 6):
            table.append({"n_components": k, "covariance_type": cov_type,
                          "bic": 1000.0 - 40 * min(k, 3) + 5 * k + offset, "singular": False})
    # diag K=5 collapsed onto tied values: the lowest BIC of all, but singular
    table = [row for row in table if (row["covariance_type"], row["n_components"]) not in (("diag", 4),
                                                                                            ("diag", 5))]
    table.append({"n_components": 5, "covariance_type": "diag", "bic": 500.0, "singular": True})
    table.append({"n_components": 4, "covariance_type": "diag", "bic": float("nan"), "singular": False})
    # a restart of full K=2 that collapsed: the non-singular restart is the one shown
    table.append({"n_components": 2, "covariance_type": "full", "bic": 400.0, "singular": True})
    fig, ax = plot.subplots()
    plot.plot_bic(ax, table, title="BIC")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "best: full, K=3" in texts
    assert "singular (excluded)" in texts
    # the plotted values are -bic; the line breaks (NaN, mclust's NA) at diag K=4 (a failed fit, no BIC)
    # and at diag K=5 (singular: a hollow marker off the line)
    diag_line = [line for line in ax.lines if line.get_label() == "diag"][0]
    assert list(diag_line.get_xdata()) == [1, 2, 3, 4, 5]
    assert diag_line.get_ydata()[0] == pytest.approx(-(1000.0 - 40 + 5 + 30.0))
    assert np.isnan(diag_line.get_ydata()[3:]).all()
    hollow = [c for c in ax.collections if len(c.get_offsets()) and c.get_facecolor().size == 0]
    assert [list(c.get_offsets()[0]) for c in hollow] == [[5.0, -500.0]]
    full_line = [line for line in ax.lines if line.get_label() == "full"][0]
    assert full_line.get_ydata()[1] == pytest.approx(-(1000.0 - 80 + 10))
    assert "mclust" in ax.get_ylabel()
    render(fig, tmp_path, "bic")


def test_plot_bic_zooms_on_the_best_models(tmp_path):
    # K=1 and spherical far below the rest (as on Old Faithful): the y axis covers the best models
    table = []
    for cov_type, offset in (("full", 0.0), ("tied", 3.0), ("diag", 12.0), ("spherical", 900.0)):
        for k in range(1, 10):
            bic = 2314.0 + offset + (300.0 if k == 1 else 4.0 * abs(k - 3))
            table.append({"n_components": k, "covariance_type": cov_type, "bic": bic, "singular": False})
    fig, axes = plot.subplots(1, 2)
    plot.plot_bic(axes[0], table)
    low, high = axes[0].get_ylim()
    assert high > -2314.0 and low > -2400.0  # zoomed: K=1 (-2614) and spherical (-3214...) are below
    assert "spherical (below the axis)" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert any("below the axis" in t.get_text() for t in axes[0].texts)
    plot.plot_bic(axes[1], table, zoom=False)
    assert axes[1].get_ylim()[0] < -3214.0
    render(fig, tmp_path, "bic_zoom")


def test_plot_bic_hollow_marker_for_a_singular_only_cell(tmp_path):
    table = [{"n_components": 1, "covariance_type": "diag", "bic": 100.0, "singular": False},
             {"n_components": 2, "covariance_type": "diag", "bic": 50.0, "singular": True}]
    fig, ax = plot.subplots()
    plot.plot_bic(ax, table)
    hollow = [c for c in ax.collections if len(c.get_offsets()) and c.get_facecolor().size == 0
              and c.get_edgecolor().size]
    assert len(hollow) == 1 and list(hollow[0].get_offsets()[0]) == [2.0, -50.0]
    assert "best: diag, K=1" in [t.get_text() for t in ax.get_legend().get_texts()]
    render(fig, tmp_path, "bic_hollow")


# -- saving ---------------------------------------------------------------------------

def test_save_figure_png_and_pdf_atomically(tmp_path):
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


def test_plot_mixture_without_fits(tmp_path):
    fig, ax = plot.subplots()
    plot.plot_mixture(ax, torch.zeros(3, 2) + torch.arange(3.0)[:, None], None, title="points only")
    render(fig, tmp_path, "points")


def test_importing_and_plotting_never_touch_pyplot():
    code = (
        "import sys, torch; import mixtures.plot as p\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "fig, ax = p.subplots(); p.add_covariance_ellipse(ax, [0, 0], torch.eye(2))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_plot_metric_vs_categorical_x(tmp_path):
    table = [{"method": "em", "init": init, "ll": value}
             for init, value in (("kmeans", 1.0), ("random", 3.0), ("kmeans", 2.0), ("kmeans++", 0.5))]
    fig, ax = plot.subplots()
    plot.plot_metric_vs(ax, table, x="init", y="ll")
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.5, 3.0, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["kmeans", "random", "kmeans++"]
    render(fig, tmp_path, "metric_categorical")


def test_posterior_uncertainty_plots(tmp_path):
    from mixtures.families.gaussian.priors import GaussianPrior
    from mixtures.plot import plot_posterior_ellipses, plot_weight_intervals, save_figure, subplots

    truth = MixtureParams([0.5, 0.5], [[0.0, 0.0], [4.0, 4.0]], torch.eye(2).expand(2, 2, 2).double())
    X, _ = truth.sample(200, seed=0)
    model = mixtures.GaussianMixture(2, "full", prior=GaussianPrior())
    vb = mixtures.fit(model, X, method="vb", init=truth, posterior_samples=50)
    em = mixtures.fit(mixtures.GaussianMixture(2), X, init=truth)
    fig, axes = subplots(1, 2)
    plot_posterior_ellipses(axes[0], X, vb, n_draws=10)
    assert len(axes[0].patches) == 20  # 10 draws x 2 components
    plot_weight_intervals(axes[1], {"VB": vb, "EM": em})
    paths = save_figure(fig, tmp_path / "uncertainty")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="needs a Posterior"):
        plot_posterior_ellipses(axes[0], X, em)


# -- aspect, names, colours, dodging ---------------------------------------------------

def test_equal_aspect_keeps_a_circle_round(tmp_path):
    """A unit circle (covariance I) drawn with aspect="equal" has the same extent in display units both ways."""
    circle = MixtureParams(torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT), torch.eye(2, dtype=DT)[None])
    X = torch.tensor([[-10.0, -0.5], [10.0, 0.5]], dtype=DT)  # data 20 wide, 1 tall
    fig, axes = plot.subplots(1, 2, figsize=(8.0, 4.0))
    plot.plot_mixture(axes[0], X, {"fit": circle}, aspect="equal", feature_names=["width (m)", "height (m)"])
    plot.plot_mixture(axes[1], X, {"fit": circle})
    fig.canvas.draw()
    patch = axes[0].patches[0]
    assert patch.width == pytest.approx(4.0) and patch.height == pytest.approx(4.0)
    extent = patch.get_window_extent()
    assert extent.width == pytest.approx(extent.height, rel=0.01)
    assert axes[0].get_aspect() == 1.0 and axes[0].get_adjustable() == "datalim"
    assert axes[0].get_xlabel() == "width (m)" and axes[0].get_ylabel() == "height (m)"
    auto = axes[1].patches[0].get_window_extent()
    assert auto.height > 1.5 * auto.width  # auto aspect: the same circle drawn as a tall ellipse
    assert axes[1].get_xlabel() == "$x_0$"
    render(fig, tmp_path, "aspect")
    with pytest.raises(ValueError, match="aspect"):
        plot.plot_mixture(axes[0], X, {"fit": circle}, aspect="square")
    with pytest.raises(ValueError, match="feature_names"):
        plot.plot_mixture(axes[0], X, {"fit": circle}, feature_names=["one"])


def test_method_colors_are_one_map_for_every_plot(tmp_path, data, results):
    X, _ = data
    colors = plot.method_colors(["EM", "hard-EM", "k-means", "MAP"])
    assert colors == {"EM": "C0", "hard-EM": "C1", "k-means": "C2", "MAP": "C3"}
    fig, axes = plot.subplots(1, 3)
    # a figure showing a subset keeps each method's colour
    plot.plot_mixture(axes[0], X, {"hard-EM": results["hard_em"]}, colors=colors)
    assert axes[0].lines[0].get_color() == "C1"
    plot.plot_traces(axes[1], {"MAP": results["em"].history}, n_points=X.shape[0], colors=colors, legend=False)
    assert axes[1].lines[0].get_color() == "C3" and axes[1].get_legend() is None
    plot.plot_weight_intervals(axes[2], {"k-means": results["em"]}, colors=colors)
    assert tuple(axes[2].collections[0].get_facecolor()[0]) == pytest.approx(
        __import__("matplotlib").colors.to_rgba("C2"))
    render(fig, tmp_path, "colors")


def test_plot_metric_vs_dodges_coinciding_methods_and_marks_estimates_near_zero(tmp_path):
    table = []
    for method in ("EM", "MAP"):  # identical values: EM would hide behind MAP without dodging
        for n in (100, 1000, 10000):
            for seed in range(2):
                table.append({"method": method, "n": n, "kl_truth": 1.0 / n if n < 10000 else 1e-5 * (-1) ** seed,
                              "kl_truth_se": 1e-4})
    fig, ax = plot.subplots()
    plot.plot_metric_vs(ax, table, "n", "kl_truth", logx=True, symlogy=True, dodge=0.1, se="kl_truth_se",
                        colors={"EM": "C0", "MAP": "C3"}, markers={"EM": "o", "MAP": "s"},
                        xlabel="training points n", ylabel="KL(truth ‖ fit) (nats)")
    em, map_ = (container.lines[0] for container in ax.containers)
    assert em.get_marker() == "o" and map_.get_marker() == "s" and em.get_linestyle() != map_.get_linestyle()
    assert em.get_color() == "C0" and map_.get_color() == "C3"
    ratio = np.asarray(map_.get_xdata()) / np.asarray(em.get_xdata())
    np.testing.assert_allclose(ratio, 10 ** 0.1)  # multiplicative dodge on a log axis: one decade x 0.1
    np.testing.assert_allclose(np.sort([t for t in ax.get_xticks() if 50 < t < 20000]), [100, 1000, 10000])
    assert ax.get_yscale() == "symlog" and ax.get_xlabel() == "training points n"
    # n = 10000: mean 0 with Monte Carlo se 1e-4/sqrt(2): within 2 SE of 0, drawn hollow
    hollow = [c for c in ax.collections if len(c.get_offsets()) and len(c.get_facecolor())
              and np.allclose(c.get_facecolor()[0][:3], 1.0)]
    assert len(hollow) == 2 and all(c.get_offsets()[0][0] > 5000 for c in hollow)
    line = plot.add_rate_guide(ax, [100, 1000, 10000], 1e-2, -1.0, label="∝ 1/n")
    np.testing.assert_allclose(line.get_ydata(), [1e-2, 1e-3, 1e-4])
    assert plot.add_rate_guide(ax, [100], 1.0) is None
    render(fig, tmp_path, "dodge")


def test_symlog_ticks_leave_room_between_zero_and_the_first_decade():
    fig, ax = plot.subplots()
    ax.plot([0, 1e-4, 1e-2, 3.0], [0, 1, 2, 3])
    ax.set_xscale("symlog", linthresh=1e-4)
    plot.symlog_ticks(ax, "x", 1e-4, 3.0)
    assert list(ax.get_xticks()) == pytest.approx([0.0, 1e-3, 1e-2, 1e-1, 1.0])  # none past the data
    plot.symlog_ticks(ax, "x", 1e-12, 1.0, max_ticks=5)  # many decades: thinned
    assert len(ax.get_xticks()) <= 6 and ax.get_xticks()[0] == 0.0
