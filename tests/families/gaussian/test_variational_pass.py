"""VB's pass through the fused kernel (``variational.vb_pass``) against the textbook E step.

The textbook: ``log ρ_nk = E[log π_k] + ½ E[log |Λ_k|] − D/2 log 2π − ½ D/β_k
− ½ (x − m_k)ᵀ E[Λ_k] (x − m_k)`` term by term, ``r = softmax(log ρ)``, the statistics of
``r`` summed over points, and ``log p(X | θ̄)`` at the plug-in parameters, all in float64.
"""

import pytest
import torch

from mixtures import GaussianMixture, GaussianPrior, MixtureParams
from mixtures.core.summary import default_shift
from mixtures.families.gaussian import variational
from mixtures.kernels import fused_pass as kernel

from conftest import COVARIANCE_TYPES, true_params


def q_after_one_update(covariance_type, weight_prior, updates, X, K=3, concentration=0.01):
    model = GaussianMixture(K, covariance_type, prior=GaussianPrior(weight_prior=weight_prior,
                                                                     weight_concentration=concentration))
    cavi = model.variational(X, updates, 1e-6)
    start = true_params(covariance_type)
    if K > 3:  # spare components far from the data: VB switches them off
        weights = torch.cat([start.weights * 0.999, torch.full((K - 3,), 0.001 / (K - 3), dtype=torch.float64)])
        locs = torch.cat([start.locs, torch.full((K - 3, 2), 50.0, dtype=torch.float64)])
        native = start.native if covariance_type == "tied" else torch.cat([start.native, start.native[:K - 3]])
        start = MixtureParams.from_native(weights, locs, native, start.cov_type)
    shift = default_shift(X)
    return cavi.update(model.e_step(X, start, shift)), shift


def textbook(X, q, shift):
    structure, D = q.cov_type, q.n_features
    whitening, half_log_det = structure.whitener(q.native, D)
    Xc = X - shift
    component = structure.component_log_prob(Xc, q.means - shift, whitening, half_log_det)
    log_rho = component + q.expected_log_weights() + 0.5 * q.expected_log_det_precision() + half_log_det \
        - 0.5 * D / q.mean_precision
    resp = torch.softmax(log_rho, -1)
    return {"nk": resp.sum(0), "sx": resp.T @ Xc, "sxx": structure.second_moment(Xc, resp),
            "entropy": -torch.special.xlogy(resp, resp).sum(), "log_likelihood": q.plug_in().log_prob(X).sum()}


@pytest.mark.parametrize("updates", ["sklearn", "model"])
@pytest.mark.parametrize("weight_prior", ["dirichlet", "dirichlet_process"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_fused_vb_pass_is_the_textbook_e_step(covariance_type, weight_prior, updates):
    X, _ = true_params(covariance_type).sample(1200, seed=8)
    X = X + 25.0  # data off the origin: the shift does the centring
    q, shift = q_after_one_update(covariance_type, weight_prior, updates, X, K=5)
    expected = textbook(X, q, shift)
    for chunk_size in (None, 257):
        summary = variational.vb_pass(X, q, shift, chunk_size)
        for name in ("nk", "sx", "sxx"):
            torch.testing.assert_close(getattr(summary, name), expected[name], rtol=1e-11, atol=1e-9)
        torch.testing.assert_close(summary.entropy, expected["entropy"], rtol=1e-11, atol=1e-9)
        torch.testing.assert_close(summary.log_likelihood, expected["log_likelihood"], rtol=1e-12, atol=0)
    plug_in_only = variational.vb_pass(X, q, shift, statistics=False)
    torch.testing.assert_close(plug_in_only.log_likelihood, expected["log_likelihood"], rtol=1e-12, atol=0)


def test_a_switched_off_component_takes_the_exact_route():
    # a small DP concentration and two spare components far away: E[log π_k] of the last one
    # is ~1000 nats below log E[π_k] (ψ(γ) ≈ -1/γ), beyond the shortcut's ~950 bits of room
    X, _ = true_params("full").sample(1500, seed=9)
    q, shift = q_after_one_update("full", "dirichlet_process", "model", X, K=5, concentration=1e-3)
    _, offsets = variational.expected_log_joint_coefficients(q, shift)
    assert not kernel._OffsetLikelihood(offsets, X).shortcut
    expected = textbook(X, q, shift)
    summary = variational.vb_pass(X, q, shift)
    torch.testing.assert_close(summary.log_likelihood, expected["log_likelihood"], rtol=1e-12, atol=0)
    torch.testing.assert_close(summary.nk, expected["nk"], rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_float32_vb_pass_to_float32_precision(covariance_type):
    X, _ = true_params(covariance_type).sample(4000, seed=10)
    q, shift = q_after_one_update(covariance_type, "dirichlet", "sklearn", X)
    expected = textbook(X, q, shift)
    q32 = variational.VariationalParameters.from_dict(
        {key: (value.float() if isinstance(value, torch.Tensor) else value) for key, value in q.as_dict().items()})
    summary = variational.vb_pass(X.float(), q32, shift.float())
    assert summary.nk.dtype == torch.float32
    torch.testing.assert_close(summary.nk.double(), expected["nk"], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(summary.log_likelihood.double(), expected["log_likelihood"], rtol=2e-6, atol=0)
