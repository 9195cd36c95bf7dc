"""The t family's densities against independent references: Pyro's ``MultivariateStudentT``, torch's
univariate ``StudentT``, Pyro's own ``TraceEnum_ELBO`` on the program, and the sampler's moments."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro.infer import TraceEnum_ELBO

import mixtures
from mixtures.core.family import fresh_param_store
from mixtures.core.queries import empty_guide, marginal_probabilities
from mixtures.errors import ParameterError
from mixtures.families import StudentTMixture, StudentTParams

from conftest import COVARIANCE_TYPES, assert_close, true_params


def t_params(structure: str, dof=(3.0, 7.5, 40.0)) -> StudentTParams:
    gaussian = true_params(structure)
    return StudentTParams.from_native(gaussian.weights, gaussian.locs, gaussian.native,
                                      torch.tensor(dof, dtype=torch.float64), structure)


@pytest.mark.parametrize("structure", COVARIANCE_TYPES)
def test_log_density_equals_pyros_multivariate_t(structure):
    params = t_params(structure)
    X, _ = params.sample(500, seed=1)
    X = torch.cat([X, torch.tensor([[40.0, -30.0], [1e3, 1e3]], dtype=torch.float64)])  # far into the tails
    reference = pdist.MultivariateStudentT(params.dof.unsqueeze(-1), params.locs.unsqueeze(1),
                                           params.scale_tril.unsqueeze(1)).log_prob(X).T   # (N, K)
    assert_close(params.component_log_prob(X), reference, rtol=1e-12, atol=1e-10)
    assert_close(params.log_prob(X), torch.logsumexp(reference + params.weights.log(), -1), rtol=1e-12, atol=1e-10)


def test_one_dimensional_density_equals_torch_student_t():
    params = StudentTParams([0.3, 0.7], [[-1.0], [2.0]], [[[0.5]], [[2.0]]], [2.5, 11.0])
    X = torch.linspace(-30, 30, 301, dtype=torch.float64).unsqueeze(-1)
    reference = torch.distributions.StudentT(params.dof, params.locs[:, 0], params.scale_matrices[:, 0, 0].sqrt())
    assert_close(params.component_log_prob(X), reference.log_prob(X), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("structure", COVARIANCE_TYPES)
@pytest.mark.parametrize("dof", ["free", "shared", 6.0])
def test_the_programs_enumerated_loss_is_the_exact_log_likelihood(structure, dof):
    params = t_params(structure, (6.0, 6.0, 6.0))
    X, _ = params.sample(300, seed=2)
    model = StudentTMixture(3, structure, dof=dof)
    with fresh_param_store():
        loss = TraceEnum_ELBO(max_plate_nesting=1).loss(lambda data: model.model(data, params), empty_guide, X)
    assert_close(-loss, params.log_prob(X).sum(), rtol=1e-12, atol=1e-8)
    assert_close(marginal_probabilities(model, params, X), params.responsibilities(X), rtol=1e-9, atol=1e-12)
    pyro.clear_param_store()


def test_sampler_follows_the_scale_mixture():
    """``δ/D ~ F(D, ν)``: ``E[δ] = D ν/(ν − 2)``; the sample covariance is ``ν/(ν − 2) Σ``."""
    params = StudentTParams([1.0], [[1.0, -2.0]], [[[2.0, 0.6], [0.6, 1.0]]], [6.0])
    X, labels = params.sample(200_000, seed=4)
    assert torch.equal(labels, torch.zeros_like(labels))
    maha = params.mahalanobis(X)[:, 0]
    assert abs(float(maha.mean()) - 2 * 6.0 / 4.0) < 0.03  # se ≈ 0.011
    assert_close(torch.cov(X.T), params.covariance_matrices()[0], rtol=0.03, atol=0.03)
    assert torch.equal(params.sample(1000, seed=4)[0], params.sample(1000, seed=4)[0])  # reproducible


def test_parameters_check_their_degrees_of_freedom():
    with pytest.raises(ParameterError, match="positive"):
        StudentTParams([1.0], [[0.0]], [[[1.0]]], [-1.0])
    with pytest.raises(ParameterError, match="shape"):
        StudentTParams([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], [1.0, 2.0, 3.0])
    params = StudentTParams([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], 4.0)  # one number: every component's
    assert params.dof.tolist() == [4.0, 4.0]
    assert math.isinf(float(StudentTParams([1.0], [[0.0]], [[[1.0]]], 1.5).covariance_matrices().max()))


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="dof must be"):
        StudentTMixture(2, dof="bogus")
    with pytest.raises(ValueError, match="fixed dof"):
        StudentTMixture(2, dof=-3)
    with pytest.raises(ValueError, match="dof_bounds"):
        StudentTMixture(2, dof_bounds=(5, 1))
    with pytest.raises(TypeError, match="StudentTPrior"):
        StudentTMixture(2, prior="flat")
    assert StudentTMixture(2, "VVV").covariance_type == "full"  # mclust names work as for the Gaussian family


def test_parameter_counts_include_the_degrees_of_freedom():
    K, D = 3, 2
    gaussian = mixtures.GaussianMixture(K, "full").n_parameters(D)
    assert StudentTMixture(K, "full").n_parameters(D) == gaussian + K
    assert StudentTMixture(K, "full", dof="shared").n_parameters(D) == gaussian + 1
    assert StudentTMixture(K, "full", dof=4).n_parameters(D) == gaussian
    assert StudentTMixture(K, "tied").n_parameters(D) == mixtures.GaussianMixture(K, "tied").n_parameters(D) + K
