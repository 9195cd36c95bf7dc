"""``fused_pass(..., likelihood_offsets=o)``: the log-likelihood ``Σ_n log Σ_k exp(j_kn + o_k)``
beside the responsibilities of ``j`` (variational Bayes' plug-in log-likelihood).

Both routes (the shortcut through the responsibilities, and the log-sum-exp of its own for
offsets too wide for it) against the textbook formula in float64, in float32 to float32's
precision, with components whose responsibilities underflow.
"""

import math

import pytest
import torch
from kernels.test_fused_pass import far_params

from mixtures.kernels import fused_pass as kernel

from conftest import COVARIANCE_TYPES


def coefficients_of(params, shift):
    whitening, half_log_det = params.whitener()
    structure = params.cov_type
    return structure.log_joint_coefficients(params.weights.log(), params.locs - shift, whitening, half_log_det)


def run(params, X, offsets, chunk_size=None):
    shift = X.mean(0)
    structure = params.cov_type
    return kernel.fused_pass(X, coefficients_of(params, shift), shift, structure.moment_feature_writer,
                             structure.n_moment_features(X.shape[1]), chunk_size=chunk_size,
                             likelihood_offsets=offsets)


def textbook(params, X, offsets):
    """``(Σ log Σ exp(j + o), entropy of softmax(j), nk)`` in float64."""
    joint = params.to(torch.float64).joint_log_prob(X.double())
    resp = torch.softmax(joint, -1)
    entropy = -torch.special.xlogy(resp, resp).sum()
    return torch.logsumexp(joint + offsets.double(), -1).sum(), entropy, resp.sum(0)


@pytest.mark.parametrize("spread", [0.0, 3.0, 200.0, 700.0])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_offsets_give_the_offset_log_likelihood_and_keep_the_responsibilities(covariance_type, spread):
    params = far_params(covariance_type)
    X, _ = params.sample(2000, seed=3)
    # o_3 lifts the far component (its responsibilities underflow) by up to 700 nats: the
    # responsibilities set to 0 then carry weight, and the pass must take the exact route
    offsets = torch.tensor([0.3, -0.2, 0.1, spread], dtype=torch.float64)
    shortcut = kernel._OffsetLikelihood(offsets, X).shortcut
    assert shortcut == (spread * kernel.LOG2_E < 900)  # ~950 bits of room in float64
    expected_ll, expected_entropy, expected_nk = textbook(params, X, offsets)
    for chunk_size in (None, 333):
        sums = run(params, X, offsets, chunk_size)
        torch.testing.assert_close(sums.log_likelihood, expected_ll, rtol=1e-12, atol=0)
        torch.testing.assert_close(sums.entropy, expected_entropy, rtol=1e-12, atol=0)
        torch.testing.assert_close(sums.sums[:, 0], expected_nk, rtol=1e-12, atol=1e-300)
    # without offsets the pass is unchanged: the normalizer of the responsibilities
    plain = run(params, X, None)
    torch.testing.assert_close(plain.log_likelihood, textbook(params, X, torch.zeros(4))[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("spread", [0.0, 20.0, 80.0])
def test_float32_offsets_to_float32_precision(spread):
    params = far_params("full")
    X, _ = params.sample(3000, seed=4)
    offsets = torch.tensor([0.3, -0.2, 0.1, spread], dtype=torch.float64)
    # float32 has ~90 bits of room: 80 nats (115 bits) takes the exact route
    assert kernel._OffsetLikelihood(offsets, X.float()).shortcut == (spread < 50)
    expected, _, _ = textbook(params, X, offsets)
    single = params.to(torch.float32)
    sums = run(single, X.float(), offsets.float())
    assert sums.log_likelihood.dtype == torch.float32
    # the far component sits 60 sd from the shift: the features' expansion loses ~1e-5 there
    # (test_fused_pass.test_float32_stays_close); the offsets add float32 rounding, no more
    torch.testing.assert_close(sums.log_likelihood.double(), expected, rtol=3e-5, atol=0)
    if spread == 0:  # zero offsets: the same number as the pass without them, to float32 rounding
        zero = run(single, X.float(), torch.zeros(4))
        plain = run(single, X.float(), None)
        torch.testing.assert_close(zero.log_likelihood, plain.log_likelihood, rtol=2e-7, atol=0)


def test_a_component_with_minus_infinite_offset_drops_out():
    params = far_params("diag")
    X, _ = params.sample(500, seed=5)
    offsets = torch.tensor([0.0, 0.0, -math.inf, 0.0], dtype=torch.float64)
    expected = torch.logsumexp(params.joint_log_prob(X)[:, [0, 1, 3]], -1).sum()
    torch.testing.assert_close(run(params, X, offsets).log_likelihood, expected, rtol=1e-12, atol=0)
