"""``mixtures.evaluation.to_arviz``: a NUTS run (2 chains) and a VB fit as ArviZ ``InferenceData``; ArviZ's
summary and LOO on them equal ``mixtures.core.convergence`` and ``mixtures.evaluation.psis`` on the same
draws; clear errors for a result without a posterior and without ArviZ."""

from __future__ import annotations

import builtins
import functools
import warnings

import numpy as np
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, GaussianPrior, MixtureParams
from mixtures.core import convergence
from mixtures.evaluation import psis
from mixtures.evaluation.arviz import to_arviz

az = pytest.importorskip("arviz")

CHAINS, DRAWS, N = 2, 40, 60


@functools.lru_cache(maxsize=1)
def data() -> torch.Tensor:
    locs = torch.tensor([[-3.0, -3.0], [3.0, 3.0]], dtype=torch.float64)
    cov = torch.eye(2, dtype=torch.float64).expand(2, 2, 2).clone()
    X, _ = MixtureParams(torch.tensor([0.4, 0.6], dtype=torch.float64), locs, cov, "full").sample(N, seed=1)
    return X


@functools.lru_cache(maxsize=1)
def nuts_result() -> mixtures.FitResult:
    # wiring, not accuracy: a short run (flagged invalid by its own checks, which the attrs must carry)
    return mixtures.fit(GaussianMixture(2, "diag", prior=GaussianPrior()), data(), "nuts", seed=0, warmup=40,
                        num_samples=DRAWS, num_chains=CHAINS, chain_processes=1, max_tree_depth=4, warn=False)


@functools.lru_cache(maxsize=1)
def vb_result() -> mixtures.FitResult:
    return mixtures.fit(GaussianMixture(2, "full", prior=GaussianPrior()), data(), "vb", seed=0,
                        posterior_samples=200)


def by_chain(values: torch.Tensor, chains: int) -> np.ndarray:
    return values.detach().double().numpy().reshape((chains, -1) + tuple(values.shape[1:]))


def test_nuts_sample_stats_have_energy_and_bfmi_works():
    result = nuts_result()
    idata = to_arviz(result, data())
    energy = idata.sample_stats["energy"]
    assert energy.dims == ("chain", "draw") and energy.shape == (CHAINS, DRAWS)
    per_chain = result.posterior.diagnostics["energy"]
    np.testing.assert_array_equal(energy.values, np.asarray(per_chain))
    assert np.isfinite(energy.values).all() and len(np.unique(energy.values)) == CHAINS * DRAWS
    assert (idata.sample_stats["n_steps"].values >= 1).all()
    assert (idata.sample_stats["n_steps"].values <= 2 ** 4).all()  # max_tree_depth=4
    bfmi = az.bfmi(idata)
    assert bfmi.shape == (CHAINS,) and np.isfinite(bfmi).all() and (bfmi > 0).all()
    # E-BFMI's estimator (Betancourt 2016, eq. 23): Σ (E_n - E_{n-1})² / Σ (E_n - Ē)², per chain
    values = energy.values
    expected = np.square(np.diff(values, axis=1)).sum(axis=1) / np.square(values - values.mean(1, keepdims=True)).sum(1)
    np.testing.assert_allclose(bfmi, expected, rtol=1e-12)


def test_nuts_groups_have_chain_draw_layout_and_named_dims():
    result = nuts_result()
    idata = to_arviz(result, data())
    assert set(idata.groups()) == {"posterior", "log_likelihood", "sample_stats", "observed_data"}
    post = idata.posterior
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["locs"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert post["locs"].shape == (CHAINS, DRAWS, 2, 2)
    # draw c * num_samples + i of the posterior is (chain c, draw i)
    np.testing.assert_array_equal(post["locs"].values[1, 3], result.posterior.locs[DRAWS + 3].numpy())
    np.testing.assert_array_equal(post["covariances"].values, by_chain(result.posterior.covariances, CHAINS))
    # per-point log-likelihood of every draw
    log_lik = idata.log_likelihood["x"]
    assert log_lik.dims == ("chain", "draw", "point") and log_lik.shape == (CHAINS, DRAWS, N)
    expected = result.posterior.draw(DRAWS + 7).log_prob(data()).numpy()
    np.testing.assert_allclose(log_lik.values[1, 7], expected, rtol=0, atol=1e-12)
    # the per-draw totals are the history's log_likelihood column
    np.testing.assert_allclose(log_lik.values.sum(-1).ravel(), result.history["log_likelihood"], rtol=1e-12)
    assert idata.observed_data["x"].dims == ("point", "feature")
    np.testing.assert_array_equal(idata.observed_data["x"].values, data().numpy())


def test_nuts_sample_stats_are_the_samplers():
    result = nuts_result()
    stats = to_arviz(result).sample_stats
    diagnostics = result.posterior.diagnostics
    assert stats["diverging"].dtype == bool and stats["diverging"].shape == (CHAINS, DRAWS)
    assert int(stats["diverging"].sum()) == diagnostics["num_divergences"]
    np.testing.assert_array_equal(stats["diverging"].values.ravel(), np.asarray(result.history["divergent"]) == 1)
    np.testing.assert_array_equal(stats["step_size"].values[:, 0], diagnostics["step_size"])
    np.testing.assert_array_equal(stats["mean_accept_prob"].values[:, -1], diagnostics["mean_accept_prob"])
    np.testing.assert_array_equal(stats["lp"].values.ravel(), result.history["log_joint"])
    # an invalid run stays visibly invalid after conversion
    idata = to_arviz(result)
    assert idata.posterior.attrs["converged"] == int(result.converged)
    assert idata.posterior.attrs["problems"] == "; ".join(result.extras["problems"])
    assert idata.posterior.attrs["method"] == "nuts" and idata.sample_stats.attrs["posterior_kind"] == "mcmc"


def test_without_X_there_is_no_log_likelihood_group():
    assert set(to_arviz(nuts_result()).groups()) == {"posterior", "sample_stats"}


def test_az_summary_r_hat_and_ess_equal_mixtures_convergence():
    result = nuts_result()
    summary = az.summary(to_arviz(result), var_names=["weights", "locs"], round_to="none")
    for name, values in (("weights", result.posterior.weights), ("locs", result.posterior.locs)):
        draws = torch.as_tensor(by_chain(values, CHAINS))
        for column, statistic in (("r_hat", convergence.r_hat), ("ess_bulk", convergence.ess_bulk),
                                  ("ess_tail", convergence.ess_tail)):
            ours = statistic(draws).reshape(-1).numpy()
            theirs = summary.loc[[row for row in summary.index if row.startswith(name + "[")], column].to_numpy()
            np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=0)
    assert summary["r_hat"].notna().all()


def test_az_loo_equals_mixtures_psis_loo():
    result = nuts_result()
    idata = to_arviz(result, data())
    log_lik = torch.as_tensor(idata.log_likelihood["x"].values.reshape(CHAINS * DRAWS, N))
    # ArviZ's relative efficiency with several chains: the mean ESS (of the mean) over every posterior entry
    ess = np.concatenate([convergence.ess(torch.as_tensor(idata.posterior[name].values)).reshape(-1).numpy()
                          for name in idata.posterior.data_vars])
    r_eff = float(ess.mean()) / (CHAINS * DRAWS)
    with warnings.catch_warnings():  # a short run has points with a large k̂: ArviZ warns, which is its job
        warnings.simplefilter("ignore", UserWarning)
        theirs = az.loo(idata, pointwise=True)
    ours = psis.loo(log_lik, r_eff=r_eff)
    assert theirs["elpd_loo"] == pytest.approx(ours.elpd_loo, rel=0, abs=1e-8)
    assert theirs["se"] == pytest.approx(ours.se, rel=0, abs=1e-8)
    assert theirs["p_loo"] == pytest.approx(ours.p_loo, rel=0, abs=1e-8)
    np.testing.assert_allclose(theirs["loo_i"].values, ours.pointwise.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(theirs["pareto_k"].values, ours.k_hat.numpy(), rtol=0, atol=1e-8)


def test_vb_draws_from_q_are_one_chain_and_loo_matches():
    result = vb_result()
    idata = to_arviz(result, data())
    assert set(idata.groups()) == {"posterior", "log_likelihood", "observed_data"}  # no sampler statistics
    assert idata.posterior["covariances"].shape == (1, 200, 2, 2, 2)
    np.testing.assert_array_equal(idata.posterior["weights"].values[0], result.posterior.weights.numpy())
    assert idata.posterior.attrs["posterior_kind"] == "variational" and idata.posterior.attrs["method"] == "vb"
    summary = az.summary(idata, var_names=["locs"], round_to="none")
    ours = convergence.ess_bulk(result.posterior.locs[None]).reshape(-1).numpy()
    np.testing.assert_allclose(summary["ess_bulk"].to_numpy(), ours, rtol=1e-10, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = az.loo(idata)  # one chain: r_eff = 1 on both sides
    ours_loo = psis.loo(torch.as_tensor(idata.log_likelihood["x"].values[0]))
    assert theirs["elpd_loo"] == pytest.approx(ours_loo.elpd_loo, rel=0, abs=1e-8)
    assert theirs["p_loo"] == pytest.approx(ours_loo.p_loo, rel=0, abs=1e-8)


def test_a_point_estimate_has_no_posterior_to_convert():
    em = mixtures.fit(GaussianMixture(2, "full"), data(), "em", seed=0)
    with pytest.raises(ValueError, match=r"'em' result has none.*method='nuts'"):
        to_arviz(em, data())
    with pytest.raises(TypeError, match="result must be a FitResult"):
        to_arviz(em.params)


def test_data_of_the_wrong_width_is_named():
    with pytest.raises(ValueError, match="feature"):
        to_arviz(vb_result(), data()[:, :1])


def test_missing_arviz_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_arviz(name, *args, **kwargs):
        if name == "arviz" or name.startswith("arviz."):
            raise ImportError("No module named 'arviz'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_arviz)
    with pytest.raises(ImportError, match=r"pip install arviz"):
        to_arviz(vb_result())
