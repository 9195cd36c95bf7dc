"""Tests of mixtures.plot.traces: history traces and the KL gap."""

from __future__ import annotations

import numpy as np
import pytest

from mixtures import History, plot


def test_plot_traces_and_kl_gap(data, results, render):
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
    render(fig, "traces")
    with pytest.raises(ValueError, match="pass n_points=N"):
        plot.plot_traces(axes[0], histories)
    with pytest.raises(ValueError, match="x must be"):
        plot.plot_traces(axes[0], histories, x="epoch", per_point=False)
    with pytest.raises(KeyError, match="no history has"):
        plot.plot_traces(axes[0], histories, column="grad_norm", per_point=False)


def test_kl_gap_from_columns_symlog_and_identically_zero_gaps(render):
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
    render(fig, "klgap")
