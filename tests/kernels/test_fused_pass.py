"""The fused E step's numerics: log₂ joint densities and exp2, entropy without log r, worst point.

``suffstats.e_step`` computes in bits (coefficients scaled by log₂ e, ``exp2``) and
the entropy as ``Σ log₂ T - Σ r a``; these tests hold it to the textbook formulas
(``logsumexp`` of the joint densities in nats) in float64 and float32, with
components whose responsibilities underflow.
"""

import pytest
import torch

from mixtures import MixtureParams
from mixtures.families.gaussian.statistics import default_shift, e_step

from conftest import COVARIANCE_TYPES


def far_params(covariance_type: str, dtype=torch.float64) -> MixtureParams:
    """Three overlapping components and one 60 standard deviations away (responsibilities
    underflow to 0 for most points, in both dtypes)."""
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1])
    locs = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [-0.5, 1.0, 0.3], [60.0, -60.0, 60.0]])
    full = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.8, 0.1], [0.0, 0.1, 1.2]])
    native = {"full": torch.stack([full, 0.7 * full, 1.3 * full, full]), "tied": full,
              "diag": torch.tensor([[1.0, 0.8, 1.2], [0.6, 1.0, 0.9], [1.5, 0.5, 1.0], [1.0, 1.0, 1.0]]),
              "spherical": torch.tensor([1.0, 0.6, 1.5, 1.0])}[covariance_type]
    return MixtureParams(weights, locs, native, covariance_type).to(dtype)


def reference(params: MixtureParams, X: torch.Tensor):
    """``(log-likelihood, entropy, labels, worst point)`` by the textbook formulas, float64."""
    params, X = params.to(torch.float64), X.double()
    joint = params.joint_log_prob(X)  # (N, K) nats
    log_norm = torch.logsumexp(joint, -1, keepdim=True)
    log_resp = joint - log_norm
    resp = log_resp.exp()
    entropy = -torch.where(resp > 0, resp * log_resp, 0.0).sum()
    return log_norm.sum(), entropy, joint.argmax(-1), X[int(log_norm.argmin())]


@pytest.mark.parametrize("chunk_size", [None, 97])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float64_matches_the_textbook_formulas(covariance_type, chunk_size):
    params = far_params(covariance_type)
    X, _ = params.sample(3000, seed=2)
    X = X + 40.0  # offset data: the moments' shift does the centring
    params = params.replace(locs=params.locs + 40.0)
    ll, entropy, labels, worst = reference(params, X)
    soft = e_step(X, params, default_shift(X), chunk_size=chunk_size)
    torch.testing.assert_close(soft.log_likelihood, ll, rtol=1e-12, atol=0)
    torch.testing.assert_close(soft.entropy, entropy, rtol=1e-12, atol=0)
    assert torch.equal(soft.worst_point, worst)
    torch.testing.assert_close(soft.nk, params.responsibilities(X).sum(0), rtol=1e-12, atol=1e-300)
    hard = e_step(X, params, default_shift(X), hard=True, chunk_size=chunk_size)
    assert torch.equal(hard.labels, labels)
    torch.testing.assert_close(hard.log_likelihood, ll, rtol=1e-12, atol=0)
    assert float(hard.entropy) == 0.0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_that_underflow_are_exactly_zero(covariance_type):
    params = far_params(covariance_type)
    X, labels = params.sample(2000, seed=3)
    summary = e_step(X, params, default_shift(X))
    far = labels == 3
    # the far component's mass is exactly its own points' (others' responsibilities are 0, not
    # subnormal) and the entropy has no NaN from 0 · log 0
    assert 0 < int(far.sum()) < 2000
    torch.testing.assert_close(summary.nk[3], far.sum().double(), rtol=1e-12, atol=0)
    assert torch.isfinite(summary.entropy) and float(summary.entropy) > 0


@pytest.mark.parametrize("far", [False, True])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_stays_close(covariance_type, far):
    params = far_params(covariance_type, torch.float32)
    if not far:  # the documented regime: data within a few standard deviations of the shift
        params = MixtureParams.from_native(params.weights[:3] / params.weights[:3].sum(), params.locs[:3],
                                           params.native if covariance_type == "tied" else params.native[:3],
                                           covariance_type)
    X, _ = params.sample(5000, seed=4)
    ll, entropy, _, _ = reference(params, X)
    # the expansion about the shift loses eps · |x - shift|² / σ² (60 σ away: ~1e-5 here)
    tolerance = 3e-5 if far else 2e-6
    for accumulate in (None, torch.float64):
        summary = e_step(X, params, default_shift(X), accumulate_dtype=accumulate)
        assert summary.log_likelihood.dtype == (accumulate or torch.float32)
        assert abs(float(summary.log_likelihood) - float(ll)) < tolerance * abs(float(ll))
        assert abs(float(summary.entropy) - float(entropy)) < 1e-5 * abs(float(entropy))


def test_empty_and_single_point_passes():
    params = far_params("full")
    X, _ = params.sample(1, seed=5)
    ll, entropy, _, worst = reference(params, X)
    one = e_step(X, params, default_shift(X))
    torch.testing.assert_close(one.log_likelihood, ll, rtol=1e-12, atol=0)
    torch.testing.assert_close(one.entropy, entropy, rtol=1e-10, atol=1e-15)
    assert torch.equal(one.worst_point, worst)
    empty = e_step(X[:0], params, default_shift(X))
    assert empty.n_points == 0 and float(empty.log_likelihood) == 0.0 and float(empty.entropy) == 0.0
