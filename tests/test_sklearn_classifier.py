"""The mixture classifier (EDDA, MclustDA) against scikit-learn's discriminant analyses and its checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mixtures
from mixtures.classifier import MixtureClassifier


def iris() -> tuple[np.ndarray, np.ndarray]:
    """The bundled iris (R's row order: 50 setosa, 50 versicolor, 50 virginica) and species codes."""
    return mixtures.data.iris().numpy(), np.repeat(np.array(["setosa", "versicolor", "virginica"]), 50)


# The interface checks on a few structures (an iterative one, VEV, among them; all fourteen run in
# test_edda_default_fits_all_fourteen_structures) and MclustDA on a small grid (every fit is EM).
@parametrize_with_checks([
    MixtureClassifier(covariance_types=["VVV", "EEE", "VII", "VEV"]),
    MixtureClassifier("mclustda", covariance_types=["full", "spherical"], n_components=2, max_iter=20,
                      random_state=0),
])
def test_sklearn_classifier_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("solver", ["svd", "eigen"])
def test_edda_vvv_is_quadratic_discriminant_analysis(solver):
    X, y = iris()
    ours = MixtureClassifier(covariance_types=["VVV"], reg_covar=0).fit(X, y)
    reference = QuadraticDiscriminantAnalysis(solver=solver, reg_param=0).fit(X, y)
    assert ours.covariance_type_ == "full"
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), rtol=0, atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_given_priors_weigh_the_class_densities():
    X, y = iris()
    priors = np.array([0.2, 0.3, 0.5])
    ours = MixtureClassifier(covariance_types=["VVV"], reg_covar=0, priors=priors).fit(X, y)
    reference = QuadraticDiscriminantAnalysis(reg_param=0, priors=priors).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), rtol=0, atol=1e-8)
    np.testing.assert_array_equal(ours.priors_.numpy(), priors)


@pytest.mark.parametrize("solver", ["lsqr", "eigen"])
def test_edda_eee_is_linear_discriminant_analysis(solver):
    X, y = iris()
    # (given priors would also weight scikit-learn's pooled covariance: the class proportions here)
    ours = MixtureClassifier(covariance_types=["EEE"], reg_covar=0).fit(X, y)
    reference = LinearDiscriminantAnalysis(solver=solver).fit(X, y)
    assert ours.covariance_type_ == "tied"
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.predict_log_proba(X), reference.predict_log_proba(X), rtol=1e-9, atol=1e-9)


def test_edda_picks_the_structure_with_the_best_bic_by_hand():
    X, y = iris()
    ours = MixtureClassifier(covariance_types=["VVV", "EEE", "VII"], reg_covar=0).fit(X, y)
    codes = np.repeat(np.arange(3), 50)
    N, D, C = 150, 4, 3
    for name, n_cov in (("full", C * D * (D + 1) // 2), ("tied", D * (D + 1) // 2), ("spherical", C)):
        covariances = [np.cov(X[codes == c].T, bias=True) for c in range(C)]
        if name == "tied":
            covariances = [sum(covariances) / C] * C
        elif name == "spherical":
            covariances = [np.eye(D) * np.trace(S) / D for S in covariances]
        log_likelihood = 0.0
        for c in range(C):
            diff = X[codes == c] - X[codes == c].mean(0)
            _, logdet = np.linalg.slogdet(covariances[c])
            maha = np.einsum("nd,de,ne->n", diff, np.linalg.inv(covariances[c]), diff)
            log_likelihood += float(np.sum(-0.5 * (maha + logdet + D * np.log(2 * np.pi))))
        expected = -2 * log_likelihood + (C * D + n_cov) * np.log(N)
        assert ours.bic_[name] == pytest.approx(expected, rel=1e-12)
    assert ours.covariance_type_ == min(ours.bic_, key=ours.bic_.get)


def test_edda_default_fits_all_fourteen_structures():
    X, y = iris()
    ours = MixtureClassifier().fit(X, y)
    assert len(ours.bic_) == 14 and all(np.isfinite(list(ours.bic_.values())))
    assert ours.covariance_type_ == min(ours.bic_, key=ours.bic_.get)
    assert ours.score(X, y) > 0.95


def test_mclustda_posterior_is_class_mixture_densities_times_priors():
    X, y = iris()
    ours = MixtureClassifier("mclustda", covariance_types=["VVV", "VII"], n_components=2, random_state=0,
                             max_iter=50).fit(X, y)
    assert len(ours.results_) == 3 and ours.n_components_.shape == (3,)
    log_density = np.stack([r.score_samples(mixtures.data.iris()).numpy() for r in ours.results_], axis=1)
    joint = log_density + np.log(ours.priors_.numpy())
    expected = np.exp(joint - np.logaddexp.reduce(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(ours.predict_proba(X), expected, rtol=1e-12, atol=1e-15)
    for c, scores in enumerate(ours.bic_):  # each class keeps its lowest BIC
        assert scores[(ours.covariance_type_[c], int(ours.n_components_[c]))] == min(scores.values())
    assert ours.score(X, y) > 0.95


def test_pipeline_and_cross_validation():
    X, y = iris()
    pipeline = make_pipeline(StandardScaler(), MixtureClassifier(covariance_types=["VVV", "EEE"]))
    scores = cross_val_score(pipeline, X, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.95


@pytest.mark.parametrize("params, match", [
    ({"mode": "lda"}, "mode must be one of"),
    ({"covariance_types": ["nope"]}, "unknown covariance_type"),
    ({"covariance_types": []}, "non-empty"),
    ({"priors": [0.5, 0.5]}, "priors must be 3 positive numbers"),
    ({"mode": "mclustda", "n_components": 0}, "n_components must be an integer >= 1"),
])
def test_bad_parameters(params, match):
    X, y = iris()
    with pytest.raises(ValueError, match=match):
        MixtureClassifier(**params).fit(X, y)
