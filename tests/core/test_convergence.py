"""R-hat and ESS (``mixtures.core.convergence``) against the published formulas worked by hand and
against ArviZ (an independent implementation of Vehtari et al. 2021), to 1e-10."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mixtures.core import convergence


def autoregressive_chains(C: int = 4, S: int = 301, E: int = 3, shift: float = 0.3, seed: int = 0) -> np.ndarray:
    """``(C, S, E)`` AR(1) chains (coefficient 0.7) of Student-t(3) noise; chain 1 shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    values = np.zeros((C, S, E))
    noise = rng.standard_t(3, size=(C, S, E))
    for s in range(1, S):
        values[:, s] = 0.7 * values[:, s - 1] + noise[:, s]
    values[1] += shift
    return values


def test_classic_r_hat_by_hand():
    # chains (1, 2, 3) and (4, 5, 6): W = 1, B = S var(2, 5) = 3 * 4.5, R = sqrt((B/W + S - 1) / S)
    values = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])[..., None]
    assert convergence._classic_r_hat(values)[0] == pytest.approx(math.sqrt((13.5 + 2.0) / 3.0), rel=1e-15)


def test_split_and_rank_normalization_by_hand():
    values = np.array([[3.0, 1.0, 2.0, 9.0, 5.0], [4.0, 4.0, 0.0, 7.0, 8.0]])[..., None]
    split = convergence.split_chains(values)  # odd S: the middle draw is dropped
    assert split[:, :, 0].tolist() == [[3, 1], [4, 4], [9, 5], [7, 8]]
    z = convergence.rank_normalize(np.array([[1.0, 3.0], [3.0, 2.0]])[..., None])[:, :, 0]
    ranks = np.array([[1.0, 3.5], [3.5, 2.0]])  # tied draws share the average rank
    from scipy.stats import norm
    np.testing.assert_allclose(z, norm.ppf((ranks - 0.375) / 4.25), rtol=1e-14)


def test_independent_draws_have_ess_near_their_number_and_r_hat_near_one():
    values = np.random.default_rng(1).normal(size=(4, 1000, 1))
    assert abs(float(convergence.r_hat(values)) - 1) < 0.01
    assert 3000 < float(convergence.ess_bulk(values)) < 5000


@pytest.mark.parametrize("shift", [0.0, 0.3, 3.0])
def test_r_hat_and_ess_equal_arviz(shift):
    az = pytest.importorskip("arviz")
    values = autoregressive_chains(shift=shift)
    for e in range(values.shape[2]):
        draws = values[:, :, e]
        assert float(convergence.r_hat(torch.as_tensor(draws))) == pytest.approx(
            float(az.rhat(draws, method="rank")), rel=1e-10)
        assert float(convergence.ess_bulk(draws)) == pytest.approx(float(az.ess(draws, method="bulk")), rel=1e-10)
        assert float(convergence.ess_tail(draws)) == pytest.approx(float(az.ess(draws, method="tail")), rel=1e-10)
        assert float(convergence.ess(draws)) == pytest.approx(float(az.ess(draws, method="mean")), rel=1e-10)
    # elementwise over trailing dimensions, shaped like them
    assert convergence.r_hat(torch.as_tensor(values)).shape == (3,)
    if shift == 3.0:
        assert float(convergence.r_hat(values).min()) > 1.1  # a shifted chain is caught


def test_antithetic_chains_have_ess_above_their_length_as_in_arviz():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(2)
    draws = np.array([[(-1.0) ** i + 0.01 * rng.normal() for i in range(100)] for _ in range(2)])
    assert float(convergence.ess_bulk(draws)) > 200
    assert float(convergence.ess_bulk(draws)) == pytest.approx(float(az.ess(draws, method="bulk")), rel=1e-10)


def test_constant_entries_have_no_r_hat_and_short_chains_are_refused():
    values = np.zeros((2, 10, 1))
    assert math.isnan(float(convergence.r_hat(values)))
    assert float(convergence.ess_bulk(values)) == 20
    with pytest.raises(ValueError, match="at least 4 draws per chain"):
        convergence.r_hat(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shaped \(chains, draws"):
        convergence.r_hat(np.zeros(5))
