"""PSIS, PSIS-LOO and WAIC (``mixtures.evaluation.psis``): a case whose Pareto shape is known in closed
form, and ArviZ (an independent implementation) to 1e-10."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mixtures.evaluation import psis


@pytest.mark.parametrize("sd_target", [math.sqrt(2.0), 2.0])
def test_k_hat_of_a_too_narrow_gaussian_proposal_is_the_closed_form(sd_target):
    # q = N(0, 1), p = N(0, s²): the ratio w = p/q ∝ exp(θ²(1 − 1/s²)/2) has P(w > t) ~ t^(−1/k)
    # with k = 1 − 1/s² (θ² ~ χ²₁ under q), i.e. 0.5 for s = √2 and 0.75 for s = 2
    k_true = 1.0 - 1.0 / sd_target ** 2
    estimates = []
    for seed in range(3):
        theta = np.random.default_rng(seed).normal(size=100_000)
        log_ratios = -0.5 * theta ** 2 / sd_target ** 2 + 0.5 * theta ** 2
        log_weights, k_hat = psis.psis(torch.as_tensor(log_ratios))
        estimates.append(float(k_hat))
        assert float(torch.logsumexp(log_weights, 0)) == pytest.approx(0.0, abs=1e-12)
    assert abs(np.mean(estimates) - k_true) < 0.07, estimates


def test_a_wider_proposal_has_a_light_tail_and_is_reliable():
    # q = N(0, 4), p = N(0, 1): bounded ratios, k ≤ 0 in the limit
    theta = 2.0 * np.random.default_rng(0).normal(size=20_000)
    _, k_hat = psis.psis(torch.as_tensor(-0.5 * theta ** 2 + 0.125 * theta ** 2))
    assert float(k_hat) < psis.good_k(20_000) and float(k_hat) < 0.3


def test_good_k_is_the_published_threshold():
    assert psis.good_k(100) == pytest.approx(0.5)
    assert psis.good_k(10_000) == pytest.approx(0.7)


def test_smoothed_weights_and_k_equal_arviz():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(0)
    log_ratios = rng.standard_t(2, size=(7, 400)) * 1.5
    log_weights, k_hat = psis.psis(torch.as_tensor(log_ratios))
    expected_weights, expected_k = az.psislw(log_ratios.copy())
    np.testing.assert_allclose(log_weights.numpy(), expected_weights, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(k_hat.numpy(), expected_k, rtol=1e-10, atol=1e-12)


def test_loo_and_waic_equal_arviz():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(0)
    S, N = 500, 40
    log_likelihood = rng.normal(size=(S, N)) * 1.5 - 1 + 2 * rng.normal(size=(1, N))
    data = az.from_dict(posterior={"mu": rng.normal(size=(1, S))}, log_likelihood={"y": log_likelihood[None]})
    with pytest.warns(UserWarning):  # ArviZ warns about the large k̂ and p_waic of this case
        expected = az.loo(data, pointwise=True, reff=1.0)
        expected_waic = az.waic(data, pointwise=True)
    result = psis.loo(torch.as_tensor(log_likelihood))
    assert result.elpd_loo == pytest.approx(float(expected.elpd_loo), rel=1e-10)
    assert result.se == pytest.approx(float(expected.se), rel=1e-10)
    assert result.p_loo == pytest.approx(float(expected.p_loo), rel=1e-10)
    np.testing.assert_allclose(result.pointwise.numpy(), expected.loo_i.values, rtol=1e-10)
    np.testing.assert_allclose(result.k_hat.numpy(), expected.pareto_k.values, rtol=1e-10, atol=1e-12)
    assert result.n_bad == int((expected.pareto_k.values > result.good_k).sum())
    waic = psis.waic(torch.as_tensor(log_likelihood))
    assert waic.elpd_waic == pytest.approx(float(expected_waic.elpd_waic), rel=1e-10)
    assert waic.se == pytest.approx(float(expected_waic.se), rel=1e-10)
    assert waic.p_waic == pytest.approx(float(expected_waic.p_waic), rel=1e-10)


def test_lppd_by_hand_and_short_inputs_refused():
    log_likelihood = torch.log(torch.tensor([[0.2, 0.5], [0.4, 0.1]], dtype=torch.float64))
    assert psis.lppd(log_likelihood).tolist() == pytest.approx([math.log(0.3), math.log(0.3)], rel=1e-15)
    with pytest.raises(ValueError, match="at least 5 draws"):
        psis.psis(torch.zeros(4))


def test_loo_with_a_constant_proposal_ratio_is_plain_loo():
    # draws from q = the posterior: log p(X, θ) − log q(θ) is constant, and the correction must vanish
    log_likelihood = torch.as_tensor(np.random.default_rng(3).normal(size=(300, 12)) - 2.0)
    plain = psis.loo(log_likelihood)
    corrected = psis.loo(log_likelihood, log_ratios=torch.full((300,), 17.5, dtype=torch.float64))
    assert corrected.elpd_loo == pytest.approx(plain.elpd_loo, rel=1e-12)
    torch.testing.assert_close(corrected.k_hat, plain.k_hat, rtol=1e-10, atol=1e-12)
