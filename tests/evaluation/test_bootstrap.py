"""Bootstrap standard errors, intervals and the bootstrap LRT (mixtures.evaluation.resampling, lrt)."""

from __future__ import annotations

import math

import pytest
import torch

import mixtures
from mixtures import GaussianMixture, GaussianPrior, MixtureParams
from mixtures.core.validation import make_generator
from mixtures.errors import SingularCovarianceError
from mixtures.evaluation import lrt as lrt_module
from mixtures.evaluation import resampling as bootstrap_module
from mixtures.evaluation.lrt import bootstrap_lrt
from mixtures.evaluation.replicates import attempt_seeds, replicate_seeds
from mixtures.evaluation.resampling import MAX_ATTEMPTS, _weighted_em, bootstrap

from conftest import assert_close

EM = {"rtol": 1e-8, "max_iter": 1000}


def two_separated(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, MixtureParams]:
    """Two spherical components 20 standard deviations apart (sd 1 and 2), weights 0.6 / 0.4."""
    truth = MixtureParams(torch.tensor([0.6, 0.4], dtype=torch.float64),
                          torch.tensor([[0.0, 0.0], [20.0, 20.0]], dtype=torch.float64),
                          torch.tensor([1.0, 4.0], dtype=torch.float64), "spherical")
    X, _ = truth.sample(n, seed=seed)
    return X, truth


def test_weighted_em_with_integer_weights_is_em_on_the_repeated_rows():
    X, _ = two_separated(120)
    start = mixtures.fit(GaussianMixture(2, "VVV"), X, "em", init="hc", **EM)
    rows = torch.randint(X.shape[0], (X.shape[0],), generator=torch.Generator().manual_seed(5))
    counts = torch.bincount(rows, minlength=X.shape[0]).double()
    weighted, converged = _weighted_em(start.model, X, counts, start.params, 1e-6, 1e-8, 1000)
    repeated = mixtures.fit(GaussianMixture(2, "VVV"), X[rows], "em", init=start.params, **EM)
    assert converged and repeated.converged
    assert_close(weighted.weights, repeated.params.weights, rtol=1e-10, atol=1e-12)
    assert_close(weighted.locs, repeated.params.locs, rtol=1e-10, atol=1e-10)
    assert_close(weighted.covariances, repeated.params.covariances, rtol=1e-9, atol=1e-10)


def test_one_gaussian_replicates_are_the_resamples_moments_and_the_se_is_the_analytic_one():
    X, _ = two_separated(150, seed=1)
    X = X[:, :1] + 0.1 * X[:, 1:]                          # one cluster's worth of 1-D data is enough
    result = mixtures.fit(GaussianMixture(1, "VVV"), X, "em", init="hc", **EM)
    B, seed = 99, 3
    boot = bootstrap(result, X, "nonparametric", n_boot=B, seed=seed, processes=1, **EM)
    assert boot.failed == 0 and boot.redrawn == 0 and boot.locs.shape == (B, 1, 1)
    # every replicate is the closed-form fit of its own resample (first draw of its own seed)
    for b in (0, 17, B - 1):
        draw_seed = attempt_seeds(replicate_seeds(seed, B)[b], MAX_ATTEMPTS)[0]
        rows = torch.randint(X.shape[0], (X.shape[0],), generator=make_generator(draw_seed))
        resample = X[rows]
        assert_close(boot.locs[b, 0], resample.mean(0), rtol=1e-12, atol=1e-12)
        assert_close(boot.covariances[b, 0, 0, 0], resample.var(0, correction=0)[0] + 1e-6, rtol=1e-9)
    # the bootstrap SE of a mean is sqrt(σ²_ML / N); B = 99 estimates it within ~7% (one sd): 25% is 3.5 sd
    analytic = math.sqrt(float(X.var(correction=0)) / X.shape[0])
    assert boot.standard_errors()["locs"].item() == pytest.approx(analytic, rel=0.25)


@pytest.mark.parametrize("kind", ["nonparametric", "parametric", "weighted"])
def test_se_of_a_mean_in_a_well_separated_mixture_is_sd_over_root_nk(kind):
    X, truth = two_separated(200)
    result = mixtures.fit(GaussianMixture(2, "VII"), X, "em", init="hc", **EM)
    boot = bootstrap(result, X, kind, n_boot=49, seed=0, processes=1, **EM)
    assert boot.failed == 0
    order = torch.argsort(result.params.locs[:, 0])        # component 0 at the origin, 1 at (20, 20)
    nk = X.shape[0] * result.params.weights[order]
    sd = result.params.covariances[order].diagonal(dim1=-2, dim2=-1).sqrt()  # (K, D)
    expected = sd / nk.sqrt()[:, None]
    # 49 replicates estimate an SE within ~10% (one sd): 35% is 3.5 sd, and a wrong SE is off by far more
    assert_close(boot.standard_errors()["locs"][order], expected, rtol=0.35, atol=0)
    # the weight's SE: sqrt(π (1 − π) / N) (binomial counts), as every kind reproduces here
    pi = result.params.weights[order]
    assert_close(boot.standard_errors()["weights"][order], (pi * (1 - pi) / X.shape[0]).sqrt(), rtol=0.35, atol=0)


def test_swapped_labels_are_aligned_to_the_original_fit(monkeypatch):
    X, _ = two_separated(100)
    result = mixtures.fit(GaussianMixture(2, "VVV"), X, "em", init="hc", **EM)
    original = bootstrap_module._replicate_fit
    calls = []

    def swapping(kind, model, data, start, options, seed):
        params, converged = original(kind, model, data, start, options, seed)
        calls.append(seed)
        return (params.permuted(torch.tensor([1, 0])) if len(calls) % 2 else params), converged

    monkeypatch.setattr(bootstrap_module, "_replicate_fit", swapping)
    boot = bootstrap(result, X, "parametric", n_boot=6, seed=0, processes=1, **EM)
    assert len(calls) == 6
    # every replicate's component k sits near the original component k (20 sd apart otherwise)
    assert (boot.locs - result.params.locs).abs().max() < 1.0
    assert (boot.weights - result.params.weights).abs().max() < 0.2


def test_tidy_table_and_intervals():
    X, _ = two_separated(100)
    result = mixtures.fit(GaussianMixture(2, "EEE"), X, "em", init="hc", **EM)
    boot = bootstrap(result, X, "weighted", n_boot=19, seed=2, processes=1, **EM)
    rows = boot.table(level=0.9)
    K, D = 2, 2
    assert len(rows) == K + K * D + K * D * (D + 1) // 2
    lower, upper = boot.intervals(0.9)["locs"]
    mean = [r for r in rows if r["parameter"] == "mean" and r["component"] == 1 and r["i"] == 0][0]
    assert mean["se"] == boot.locs[:, 1, 0].std().item()
    assert mean["lower"] == lower[1, 0].item() and mean["upper"] == upper[1, 0].item()
    # percentiles as R's quantile (type 7): linear interpolation between order statistics
    ordered = torch.sort(boot.locs[:, 1, 0]).values
    position = 0.05 * (19 - 1)
    low = ordered[int(position)] + (position - int(position)) * (ordered[int(position) + 1] - ordered[int(position)])
    assert mean["lower"] == pytest.approx(low.item(), rel=1e-12)
    assert all(r["lower"] <= r["upper"] for r in rows)


def test_parallel_replicates_equal_sequential_ones_bit_for_bit():
    X, _ = two_separated(80)
    result = mixtures.fit(GaussianMixture(2, "VVV"), X, "em", init="hc", **EM)
    for kind in ("nonparametric", "weighted"):
        one = bootstrap(result, X, kind, n_boot=6, seed=4, processes=1)
        two = bootstrap(result, X, kind, n_boot=6, seed=4, processes=2)
        assert torch.equal(one.locs, two.locs) and torch.equal(one.covariances, two.covariances)
    sequential = bootstrap_lrt(X, "VII", n_boot=4, k_max=1, seed=1, processes=1)
    parallel = bootstrap_lrt(X, "VII", n_boot=4, k_max=1, seed=1, processes=2)
    assert torch.equal(sequential.distribution[1], parallel.distribution[1])


def test_lrt_rejects_one_component_and_keeps_two_on_two_separated_components():
    X, _ = two_separated(120)
    lrt = bootstrap_lrt(X, "VII", n_boot=19, seed=0, processes=1)
    table = lrt.table()
    assert [r["n_components"] for r in table] == [1, 2]          # stopped at the first K not rejected
    assert table[0]["rejected"] and not table[1]["rejected"] and lrt.chosen == 2
    assert table[0]["p_value"] == pytest.approx(1 / 20)          # no replicate reaches the observed LRTS
    for row in table:                                            # mclust's p-value from the distribution
        boot = lrt.distribution[row["n_components"]]
        assert row["p_value"] == (1 + int((boot >= row["statistic"]).sum())) / (boot.numel() + 1)
        assert row["replicates"] == 19 and row["failed"] == 0
        assert row["statistic"] == pytest.approx(2 * (row["log_likelihood_alternative"] - row["log_likelihood_null"]))
    assert "1 vs 2" in str(lrt)


def test_lrt_with_k_max_runs_every_test():
    X, _ = two_separated(60)
    lrt = bootstrap_lrt(X, "EII", n_boot=2, k_max=3, seed=0, level=0.5, processes=1)
    assert [r["n_components"] for r in lrt.table()] == [1, 2, 3] and lrt.stopped == "k_max"


@pytest.mark.parametrize("kwargs, match", [
    ({"n_boot": 0}, "n_boot"), ({"n_boot": 2.5}, "n_boot"), ({"k_max": 0}, "k_max"), ({"k_max": 30}, "k_max"),
    ({"covariance_type": "XYZ"}, "unknown covariance_type"), ({"level": 1.5}, "level"),
])
def test_lrt_bad_input_is_named(kwargs, match):
    X, _ = two_separated(30)
    with pytest.raises(ValueError, match=match):
        bootstrap_lrt(X, **{"n_boot": 2, **kwargs})


def test_bootstrap_bad_input_is_named():
    X, _ = two_separated(40)
    result = mixtures.fit(GaussianMixture(2, "VII"), X, "em", init="hc")
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(result, X, n_boot=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        bootstrap(result, X, "jackknife", n_boot=2)
    with pytest.raises(ValueError, match="features"):
        bootstrap(result, X[:, :1], n_boot=2)
    with pytest.raises(TypeError, match="FitResult"):
        bootstrap(result.params, X, n_boot=2)
    with pytest.raises(ValueError, match="processes"):
        bootstrap(result, X, n_boot=2, processes=0)
    prior_fit = mixtures.fit(GaussianMixture(2, "VII", prior=GaussianPrior()), X, "em", init="hc")
    with pytest.raises(ValueError, match="prior"):
        bootstrap(prior_fit, X, n_boot=2)
    with pytest.raises(ValueError, match="at least 2 replicates"):
        bootstrap(result, X, n_boot=1).standard_errors()


def test_replicates_that_cannot_be_fitted_are_redrawn_counted_or_given_up(monkeypatch):
    X, _ = two_separated(60)
    result = mixtures.fit(GaussianMixture(2, "VII"), X, "em", init="hc", **EM)
    original = bootstrap_module._replicate_fit
    first_draws = {attempt_seeds(s, MAX_ATTEMPTS)[0] for s in replicate_seeds(0, 4)}

    def failing_first(kind, model, data, start, options, seed):
        if seed in first_draws:
            raise SingularCovarianceError("component 1 collapsed")
        return original(kind, model, data, start, options, seed)

    monkeypatch.setattr(bootstrap_module, "_replicate_fit", failing_first)
    boot = bootstrap(result, X, "nonparametric", n_boot=4, seed=0, processes=1, **EM)
    assert (boot.redrawn, boot.failed, boot.weights.shape[0]) == (4, 0, 4)

    def failing(*args):
        raise SingularCovarianceError("component 1 collapsed")

    monkeypatch.setattr(bootstrap_module, "_replicate_fit", failing)
    boot = bootstrap(result, X, "nonparametric", n_boot=3, seed=0, processes=1)
    assert boot.failed == 3 and boot.weights.shape == (0, 2)
    with pytest.raises(ValueError, match="0 of 3 were"):
        boot.table()
    monkeypatch.setattr(bootstrap_module, "_replicate_fit", original)
    budget = bootstrap(result, X, "weighted", n_boot=3, seed=0, processes=1, rtol=0.0, max_iter=2)
    assert budget.unconverged == 3                      # refits that stopped on their budget say so


def test_an_lrt_without_fitted_replicates_has_no_p_value_and_stops(monkeypatch):
    X, _ = two_separated(60)

    def failing(*args):
        raise SingularCovarianceError("component 1 collapsed")

    monkeypatch.setattr(lrt_module, "_refit", failing)
    lrt = bootstrap_lrt(X, "VII", n_boot=2, k_max=3, seed=0, processes=1)
    (row,) = lrt.table()
    assert math.isnan(row["p_value"]) and not row["rejected"] and row["failed"] == 2 and row["replicates"] == 0
    assert "no replicate of 1 vs 2 could be fitted" in lrt.stopped and lrt.chosen is None
