"""``mixtures.sklearn.RobustMixture``: the estimator fits t mixtures and noise components, equals
:func:`mixtures.fit` on the same family and seed, flags noise, passes scikit-learn's estimator checks,
and refuses what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

import mixtures
from mixtures.families import GaussianMixture, NoiseRegion, NoisyMixture, StudentTMixture
from mixtures.sklearn import RobustMixture

from conftest import true_params


@pytest.fixture(scope="module")
def data():
    inliers, _ = true_params("full").sample(400, seed=31)
    outliers = NoiseRegion("box", 18.0 * 17.0, (-7.0, -5.0), (11.0, 12.0)).sample(40, torch.Generator().manual_seed(32))
    return torch.cat([inliers, outliers]).numpy()


@pytest.mark.parametrize("family, noise", [("student_t", False), ("student_t", True), ("gaussian", True)])
def test_equals_mixtures_fit_with_the_same_family_and_seed(family, noise, data):
    estimator = RobustMixture(3, family=family, noise=noise, dof="shared", random_state=0, max_iter=200,
                              tol=1e-6).fit(data)
    X = torch.from_numpy(data)
    clusters = StudentTMixture(3, "full", dof="shared") if family == "student_t" else GaussianMixture(3, "full")
    model = NoisyMixture.over(X, clusters) if noise else clusters
    result = mixtures.fit(model, X, "em", seed=0, max_iter=200, tol=1e-6, warn=False)
    for name, value in result.params.tensors().items():
        np.testing.assert_array_equal(estimator.result_.params.tensors()[name].numpy(), value.numpy())
    K = 3 + noise
    assert estimator.weights_.shape == (K,) and estimator.means_.shape == (3, 2)
    assert estimator.covariances_.shape == (3, 2, 2) and estimator.predict_proba(data).shape == (len(data), K)
    np.testing.assert_array_equal(estimator.predict(data), result.predict(X).numpy())
    np.testing.assert_array_equal(estimator.score_samples(data), result.score_samples(X).numpy())
    assert estimator.bic(data) == result.bic(X)
    if family == "student_t":
        assert estimator.dof_.shape == (3,) and len(set(estimator.dof_.tolist())) == 1
    flags = estimator.is_noise(data)
    np.testing.assert_array_equal(flags, estimator.predict(data) == 3)
    if noise:
        assert flags[400:].sum() >= 25 and flags[:400].sum() <= 10
        assert abs(estimator.noise_weight_ - 40 / 440) < 0.03 and estimator.noise_volume_ > 0
        assert estimator.sample(50)[1].max() <= 3
    else:
        assert not flags.any()


def test_fixed_dof_and_warm_start(data):
    estimator = RobustMixture(2, dof=5.0, random_state=1, max_iter=5, warm_start=True, tol=0.0)
    first = estimator.fit(data).result_.params
    assert (estimator.dof_ == 5.0).all()
    second = estimator.fit(data).result_
    assert mixtures.fit(StudentTMixture(2, "full", dof=5.0), torch.from_numpy(data), "em", init=first, max_iter=5,
                        tol=0.0, warn=False).log_likelihood == second.log_likelihood


@pytest.mark.parametrize("params, match", [
    ({"family": "poisson"}, "family must be"),
    ({"noise": "yes"}, "noise must be True or False"),
    ({"noise_region": "ball"}, "noise_region must be"),
    ({"means_init": np.zeros((2, 2))}, "RobustMixture starts from init_params"),
])
def test_bad_parameters_raise_value_error(params, match, data):
    with pytest.raises(ValueError, match=match):
        RobustMixture(2, **params).fit(data)


def test_scikit_learns_estimator_checks():
    # the k-means start draws ∝ weight, not the random numbers it draws on the repeated rows (and the
    # noise region is the bounding box of every row): scikit-learn's repeated-rows check cannot hold;
    # the identity from a shared start is tested in tests/inference/test_sample_weight.py
    start = {"check_sample_weight_equivalence_on_dense_data": "different random starts (see the comment)"}
    check_estimator(RobustMixture(2, max_iter=20), expected_failed_checks=start)
    check_estimator(RobustMixture(2, family="gaussian", noise=True, covariance_type="diag", max_iter=20),
                    expected_failed_checks=start)
    assert clone(RobustMixture(3, dof="shared", noise=True)).get_params()["noise"] is True
