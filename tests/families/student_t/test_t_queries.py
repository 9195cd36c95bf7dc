"""What a fitted t mixture (alone or with a noise component) answers: densities and memberships against
Pyro's MultivariateStudentT and the program's own marginals, predictions, draws, BIC/ICL with the free
parameters counted by hand (ν per its option, the noise weight; the volume is a constant), the noise flags
on the result, and a save/load round trip of the noisy family."""

from __future__ import annotations

import math

import pyro.distributions as pdist
import pytest
import torch

import mixtures
from mixtures.core.queries import marginal_probabilities
from mixtures.evaluation import information_criteria
from mixtures.families import GaussianMixture, NoiseRegion, NoisyMixture, StudentTMixture, StudentTParams

from conftest import assert_close, true_params

BOX = NoiseRegion("box", 18.0 * 17.0, (-7.0, -5.0), (11.0, 12.0))


@pytest.fixture(scope="module")
def outlier_data():
    truth = true_params("full")
    truth = StudentTParams.from_native(truth.weights, truth.locs, truth.native,
                                       torch.tensor([4.0, 8.0, 20.0], dtype=torch.float64), "full")
    inliers, _ = truth.sample(500, seed=21)
    return torch.cat([inliers, BOX.sample(50, torch.Generator().manual_seed(22))])


def hand_log_joint(params: StudentTParams, X: torch.Tensor) -> torch.Tensor:
    """``log w_k + log t(x_n; ν_k, μ_k, Σ_k)`` ``(N, K)`` by Pyro's MultivariateStudentT, one component at a time."""
    columns = [pdist.MultivariateStudentT(params.dof[k], params.locs[k], params.scale_tril[k]).log_prob(X)
               for k in range(params.n_components)]
    return torch.stack(columns, -1) + params.weights.log()


@pytest.mark.parametrize("noise", [False, True])
def test_queries_against_pyros_density_and_the_programs_marginals(noise, outlier_data):
    X = outlier_data
    model = NoisyMixture(StudentTMixture(3, "full"), BOX) if noise else StudentTMixture(3, "full")
    result = mixtures.fit(model, X, "em", seed=0, tol=1e-8, max_iter=300, warn=False)
    clusters = result.params.base if noise else result.params
    joint = hand_log_joint(clusters, X)
    if noise:  # the placeholder's column is the noise's: weight ε, density 1/V
        joint[:, -1] = result.params.noise_weight.log() - math.log(BOX.volume)
    assert_close(result.score_samples(X), torch.logsumexp(joint, -1), rtol=1e-12, atol=1e-12)
    proba = result.predict_proba(X)
    assert_close(proba, torch.softmax(joint, -1), rtol=1e-10, atol=1e-12)
    assert_close(proba, marginal_probabilities(result.model, result.params, X), rtol=1e-10, atol=1e-12)
    assert torch.equal(result.predict(X), joint.argmax(-1))
    assert result.sample_assignments(X, seed=1).shape == (X.shape[0],)
    draws, labels = result.sample(4000, seed=3)
    assert draws.shape == (4000, 2) and int(labels.max()) < model.n_components
    frequencies = torch.bincount(labels, minlength=model.n_components).double() / 4000
    assert_close(frequencies, result.params.weights, rtol=0, atol=0.03)
    if noise:
        assert bool(BOX.contains(draws[labels == 3]).all())


@pytest.mark.parametrize("dof, count", [("free", 2 + 6 + 9 + 3), ("shared", 2 + 6 + 9 + 1), (5.0, 2 + 6 + 9)])
@pytest.mark.parametrize("noise", [False, True])
def test_bic_and_icl_count_the_degrees_of_freedom_and_the_noise_weight(dof, count, noise, outlier_data):
    """K = 3, D = 2, full: 2 weights, 6 locations, 9 scale entries, then ν by its option; noise adds its weight."""
    X = outlier_data
    clusters = StudentTMixture(3, "full", dof=dof)
    model = NoisyMixture(clusters, BOX) if noise else clusters
    result = mixtures.fit(model, X, "em", seed=0, tol=1e-6, max_iter=200, warn=False)
    p = count + (1 if noise else 0)
    assert result.n_parameters() == p
    log_likelihood = float(result.score_samples(X).sum())
    assert_close(result.bic(X), -2 * log_likelihood + p * math.log(X.shape[0]), rtol=1e-12, atol=0)
    proba = result.predict_proba(X)
    entropy_term = float(proba.gather(1, result.predict(X)[:, None]).log().sum())
    criteria = information_criteria(result, X)
    assert_close(criteria["icl"], result.bic(X) - 2 * entropy_term, rtol=1e-12, atol=0)
    assert_close(criteria["aic"], -2 * log_likelihood + 2 * p, rtol=1e-12, atol=0)


@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_the_result_reports_the_points_the_noise_wins(family, outlier_data):
    X = outlier_data
    clusters = GaussianMixture(3, "full") if family == "gaussian" else StudentTMixture(3, "full")
    result = mixtures.fit(NoisyMixture(clusters, BOX), X, "em", seed=0, tol=1e-8, max_iter=300, warn=False)
    flagged = result.is_noise(X)
    assert flagged.dtype == torch.bool and torch.equal(flagged, result.params.is_noise(X))
    joint = result.params.joint_log_prob(X)
    assert torch.equal(flagged, joint[:, 3] > joint[:, :3].max(-1).values)
    # the inliers are t-distributed (ν = 4 for one cluster): a Gaussian's clusters leave more tail points to the noise
    assert int(flagged[500:].sum()) >= 30 and int(flagged[:500].sum()) <= 30
    assert result.model.noise_component == 3
    plain = mixtures.fit(clusters, X, "em", seed=0, max_iter=20, warn=False)
    assert plain.model.noise_component is None and not bool(plain.is_noise(X).any())


@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_a_noisy_fit_survives_saving_and_loading(family, outlier_data, tmp_path):
    X = outlier_data
    clusters = GaussianMixture(3, "diag") if family == "gaussian" else StudentTMixture(3, "diag", dof="shared")
    result = mixtures.fit(NoisyMixture.over(X, clusters), X, "em", seed=0, max_iter=50, warn=False)
    loaded = mixtures.load(result.save(tmp_path / "noisy.pt"))
    assert type(loaded.model) is NoisyMixture and loaded.model.spec() == result.model.spec()
    assert loaded.model.region == result.model.region
    for name, value in result.params.tensors().items():
        assert torch.equal(loaded.params.tensors()[name], value)
    assert torch.equal(loaded.score_samples(X), result.score_samples(X))
    assert torch.equal(loaded.is_noise(X), result.is_noise(X))
    assert loaded.bic(X) == result.bic(X)
