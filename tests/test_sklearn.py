"""mixtures.sklearn.GaussianMixture: scikit-learn's estimator checks (also for the Pyro and Bayesian
routines), every routine through the estimator, equality with mixtures.fit and with
sklearn.mixture.GaussianMixture from the same start, dtypes (numpy and torch inputs), fit_predict
from the fit's own labels, Pipeline, GridSearchCV."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mixtures
from mixtures.core.result import FitResult
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.sklearn import ConvergenceWarning, GaussianMixture

from conftest import COVARIANCE_TYPES, assert_close, true_params

FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
METHODS = ("em", "hard_em", "kmeans", "kmedians", "map", "svi", "stepwise_em", "vb", "nuts")
#: cheap settings per routine (NUTS has no max_iter: its budget is in method_options)
CHEAP = {"map": dict(max_iter=30), "svi": dict(max_iter=30),
         "nuts": dict(method_options={"warmup": 20, "num_samples": 20, "max_tree_depth": 4})}
#: what the estimator passes to mixtures.fit for max_iter=M and tol=T (documented in mixtures.sklearn)
MAPPED = {"em": ("max_iter", "tol"), "hard_em": ("max_iter", "tol"), "kmeans": ("max_iter", "tol"),
          "kmedians": ("max_iter", "tol"), "vb": ("max_iter", "tol"), "map": ("num_steps", "tol"),
          "svi": ("num_steps", "tol"), "stepwise_em": ("num_epochs", "tol"), "nuts": (None, None)}


def data(covariance_type="full", n=600, seed=3, dtype=torch.float64):
    """Points ``(n, 2)`` from a well-separated K=3 mixture, as a numpy array."""
    return true_params(covariance_type).sample(n, seed=seed)[0].to(dtype).numpy()


def sklearn_start(covariance_type, X):
    """A deliberately poor shared start (spread means, unit precisions) in scikit-learn's layout."""
    precisions = {"full": np.stack([np.eye(2)] * 3), "tied": np.eye(2), "diag": np.ones((3, 2)),
                  "spherical": np.ones(3)}[covariance_type]
    return dict(weights_init=np.array([0.3, 0.3, 0.4]), means_init=X[[0, 100, 200]].copy(),
                precisions_init=precisions)


# -- scikit-learn's own estimator checks ----------------------------------------------------
# Every check passes, for the closed-form routines, the Pyro ones (MAP and SVI: predict_proba
# through Pyro's marginals, also for K=1 and single points) and the Bayesian ones (VB with the
# default prior, SVI with a normal guide over a prior, NUTS), except scikit-learn's repeated-rows
# check of sample_weight where the identity cannot hold by construction (below; the identity
# itself is tested from a shared start for every routine in tests/inference/test_sample_weight.py).
# (check_array_api_input skips itself unless SCIPY_ARRAY_API is set.)
def weight_equivalence_cannot_hold(estimator):
    """``{check: reason}`` for scikit-learn's ``check_sample_weight_equivalence_on_dense_data``: it fits
    15 points in 30 dimensions from ``init_params`` with ``random_state=0`` on the weighted and on the
    repeated rows and compares ``predict_proba``."""
    check = "check_sample_weight_equivalence_on_dense_data"
    if estimator.method in ("svi", "nuts") and (estimator.method == "nuts" or estimator.prior is not None):
        return {check: "Monte Carlo draws (guide samples, NUTS) differ between N and Σw rows"}
    if estimator.method == "stepwise_em":
        return {check: "minibatches are cut by rows: the repeated rows make other minibatches"}
    if estimator.method == "vb" and estimator.n_components == 1:
        return {check: "the default prior's Ψ₀ (the data's covariance, 15 points in 30 dimensions) is singular: "
                       "the repeated-rows fit itself raises"}
    if estimator.n_components > 1:
        return {check: "the k-means start draws with probability ∝ weight, not the random numbers it draws on the "
                       "repeated rows: the two fits start from different points"}
    return {}


@parametrize_with_checks(expected_failed_checks=weight_equivalence_cannot_hold, estimators=[
    GaussianMixture(),
    GaussianMixture(n_components=2, covariance_type="diag", method="hard_em", n_init=2),
    GaussianMixture(method="map", max_iter=10),
    GaussianMixture(n_components=2, covariance_type="diag", method="map", max_iter=10),
    GaussianMixture(method="svi", max_iter=10),
    GaussianMixture(n_components=2, method="svi", max_iter=10, prior=GaussianPrior(),
                    method_options={"guide": "normal", "posterior_samples": 10}),
    GaussianMixture(method="vb"),
    GaussianMixture(n_components=2, covariance_type="spherical", method="vb",
                    method_options={"posterior_samples": 10}),
    GaussianMixture(n_components=2, method="stepwise_em"),
    GaussianMixture(method="nuts", method_options={"warmup": 5, "num_samples": 5, "max_tree_depth": 3}),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- every routine through the estimator -----------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_every_routine_fits_predicts_and_scores(method):
    X = data(n=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence notices of the short runs
        estimator = GaussianMixture(3, method=method, random_state=0, **CHEAP.get(method, {})).fit(X)
    assert estimator.result_.method == method
    labels = estimator.predict(X)
    proba = estimator.predict_proba(X)
    assert labels.shape == (300,) and labels.dtype == np.int64 and set(np.unique(labels)) <= {0, 1, 2}
    assert proba.shape == (300, 3) and np.allclose(proba.sum(1), 1.0)
    assert np.array_equal(proba.argmax(1), labels)
    scores = estimator.score_samples(X)
    assert scores.shape == (300,) and np.isfinite(scores).all()
    assert estimator.score(X) == pytest.approx(scores.mean(), rel=1e-12)
    assert estimator.lower_bound_ == pytest.approx(estimator.score(X), rel=1e-12)
    assert np.isfinite(estimator.bic(X)) and np.isfinite(estimator.aic(X))
    for name in FITTED_ARRAYS:
        assert np.isfinite(getattr(estimator, name)).all(), name
    # well-separated clusters: every routine finds them
    assert np.sort(estimator.weights_) == pytest.approx([0.2, 0.3, 0.5], abs=0.06)


@pytest.mark.parametrize("method", METHODS)
def test_max_iter_and_tol_reach_the_routine_under_its_own_names(method):
    X = data(n=300)
    settings = {**dict(max_iter=7, tol=1e-4), **CHEAP.get(method, {}), "max_iter": 7}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        estimator = GaussianMixture(3, method=method, random_state=5, n_init=1, **settings).fit(X)
        iterations, tolerance = MAPPED[method]
        options = dict(settings.get("method_options") or {})
        if iterations is not None:
            options[iterations] = 7
        if tolerance is not None:
            options[tolerance] = 1e-4
        prior = GaussianPrior() if method in ("vb", "nuts") else None
        result = mixtures.fit(mixtures.GaussianMixture(3, "full", prior=prior), X, method, seed=5,
                              reg_covar=1e-6, **options)
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(estimator.result_.params, name), getattr(result.params, name)), name
    assert estimator.n_iter_ == result.n_iter
    recorded = estimator.result_.extras["fit_settings"]["options"]
    assert {k: v for k, v in recorded.items() if k in ("max_iter", "num_steps", "num_epochs", "tol")} == \
        {k: v for k, v in options.items() if k in ("max_iter", "num_steps", "num_epochs", "tol")}


def test_prior_parameter():
    X = data(n=300)
    # vb and nuts need a prior: prior=None is the default GaussianPrior()
    default = GaussianMixture(3, method="vb", random_state=0).fit(X)
    explicit = GaussianMixture(3, method="vb", random_state=0, prior=GaussianPrior()).fit(X)
    assert default.result_.model.prior == GaussianPrior() and default.prior is None
    assert np.array_equal(default.means_, explicit.means_)
    # a prior reaches the model: Dirichlet-process VB, and MAP-EM for method="em"
    prior = GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.1)
    sparse = GaussianMixture(6, method="vb", random_state=0, prior=prior, max_iter=300).fit(X)
    assert sparse.result_.model.prior is prior
    assert (sparse.weights_ > 0.05).sum() == 3
    map_prior = GaussianPrior(weight_concentration=2.0, degrees_of_freedom=4.0)
    map_em = GaussianMixture(3, random_state=0, prior=map_prior).fit(X)
    reference = mixtures.fit(mixtures.GaussianMixture(3, prior=map_prior), X, seed=0, max_iter=100, tol=1e-3)
    assert np.array_equal(map_em.means_, reference.params.locs.numpy())
    assert "log_prior" in map_em.history_
    # maximum likelihood when no prior is given to a routine that does not need one
    assert GaussianMixture(3, random_state=0).fit(X).result_.model.prior is None
    # the parameter clones and grid-searches like any other
    assert clone(sparse).prior == prior
    with pytest.raises(ValueError, match="prior must be a mixtures.GaussianPrior"):
        GaussianMixture(3, method="vb", prior={"weight_prior": "dirichlet"}).fit(X)
    with pytest.raises(ValueError, match="stepwise_em fits maximum likelihood"):
        GaussianMixture(3, method="stepwise_em", prior=GaussianPrior()).fit(X)


def test_warnings_point_at_the_callers_line():
    X = data()
    for call in ("fit", "fit_predict"):
        with pytest.warns(SklearnConvergenceWarning) as record:
            getattr(GaussianMixture(3, max_iter=1, random_state=0), call)(X)
        assert {w.filename for w in record} == {__file__}, call


# -- equality with mixtures.fit and with scikit-learn -----------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_equals_mixtures_fit_on_same_seed(covariance_type):
    X = data(covariance_type)
    estimator = GaussianMixture(3, covariance_type=covariance_type, n_init=2, random_state=7).fit(X)
    result = mixtures.fit(mixtures.GaussianMixture(3, covariance_type), X, seed=7, n_init=2,
                          max_iter=100, tol=1e-3, reg_covar=1e-6)
    params = result.params
    assert np.array_equal(estimator.weights_, params.weights.numpy())
    assert np.array_equal(estimator.means_, params.locs.numpy())
    assert np.array_equal(estimator.precisions_cholesky_, params.precisions_cholesky.numpy())
    assert estimator.n_iter_ == result.n_iter and estimator.converged_ == result.converged
    assert np.array_equal(estimator.predict_proba(X), result.predict_proba(X).numpy())
    assert estimator.score(X) == result.score(X)
    assert estimator.history_.to_dict().keys() == result.history.to_dict().keys()
    assert_close(estimator.history_["log_likelihood"], result.history["log_likelihood"], rtol=0, atol=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_equals_sklearn_from_same_start(covariance_type):
    X = data(covariance_type)
    options = dict(covariance_type=covariance_type, tol=1e-6, max_iter=500,
                   **sklearn_start(covariance_type, X))
    theirs = SklearnGaussianMixture(3, **options).fit(X)
    ours = GaussianMixture(3, **options).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ > 3
    assert ours.converged_ and theirs.converged_
    for name in FITTED_ARRAYS:
        ours_value, theirs_value = getattr(ours, name), getattr(theirs, name)
        assert ours_value.shape == theirs_value.shape, name
        assert_close(ours_value, theirs_value, rtol=1e-10, atol=1e-11, msg=name)
    assert_close(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9, atol=1e-11)
    assert np.array_equal(ours.predict(X), theirs.predict(X))
    assert_close(ours.score_samples(X), theirs.score_samples(X), rtol=1e-11, atol=1e-11)
    assert_close(ours.score(X), theirs.score(X), rtol=1e-12, atol=0)
    assert_close(ours.bic(X), theirs.bic(X), rtol=1e-12, atol=0)
    assert_close(ours.aic(X), theirs.aic(X), rtol=1e-12, atol=0)
    # Ours is log-likelihood at the fitted parameters, scikit-learn's at the previous iteration's:
    # EM never decreases it, and convergence means the last change was below tol.
    assert ours.lower_bound_ == pytest.approx(ours.score(X), abs=1e-12)
    assert 0 <= ours.lower_bound_ - theirs.lower_bound_ < 1e-6


def test_partial_start_keeps_given_arrays():
    X = data()
    means = X[[0, 100, 200]].copy()
    estimator = GaussianMixture(3, means_init=means, max_iter=0, random_state=0).fit(X)
    assert_close(estimator.result_.init.locs, means, rtol=0, atol=0)
    assert_close(estimator.means_, means, rtol=0, atol=0)  # max_iter=0 returns the start
    start = mixtures.init.initialize(mixtures.GaussianMixture(3), torch.from_numpy(X), "kmeans", seed=0)
    assert_close(estimator.weights_, start.weights, rtol=0, atol=0)
    assert_close(estimator.precisions_cholesky_, start.precisions_cholesky, rtol=0, atol=0)


# -- attributes, dtypes, outputs ----------------------------------------------------------------
@pytest.mark.parametrize("covariance_type, shape", [
    ("full", (3, 2, 2)), ("tied", (2, 2)), ("diag", (3, 2)), ("spherical", (3,))])
def test_attribute_layouts(covariance_type, shape):
    X = data(covariance_type)
    estimator = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    for name in ("covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(estimator, name).shape == shape, name
    full = estimator.result_.params.covariances.numpy()
    expected = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
                "spherical": full[:, 0, 0]}[covariance_type]
    assert_close(estimator.covariances_, expected, rtol=1e-14, atol=0)
    if covariance_type in ("full", "tied"):  # precision = inverse of covariance
        eye = np.broadcast_to(np.eye(2), shape).copy()
        assert_close(estimator.covariances_ @ estimator.precisions_, eye, rtol=0, atol=1e-12)
        chol = estimator.precisions_cholesky_
        assert_close(chol @ np.swapaxes(chol, -1, -2), estimator.precisions_, rtol=1e-13, atol=1e-13)
    else:
        assert_close(estimator.covariances_ * estimator.precisions_, np.ones(shape), rtol=1e-13, atol=0)
        assert_close(estimator.precisions_cholesky_ ** 2, estimator.precisions_, rtol=1e-13, atol=0)
    assert estimator.weights_.shape == (3,) and estimator.means_.shape == (3, 2)
    assert estimator.n_features_in_ == 2 and estimator.history_ is estimator.result_.history
    assert estimator.lower_bound_ == pytest.approx(estimator.result_.log_likelihood / len(X), rel=1e-15)


def test_float32_in_float32_out():
    X = data(dtype=torch.float32)
    estimator = GaussianMixture(3, random_state=0).fit(X)
    for name in FITTED_ARRAYS:
        assert getattr(estimator, name).dtype == np.float32, name
    assert estimator.result_.params.dtype == torch.float32
    for output in (estimator.predict_proba(X), estimator.score_samples(X), estimator.sample(5)[0]):
        assert output.dtype == np.float32
    assert estimator.predict(X).dtype == np.int64 and estimator.sample(5)[1].dtype == np.int64
    # float64 data for a float32 fit: outputs stay in the fitted dtype
    assert estimator.predict_proba(X.astype(np.float64)).dtype == np.float32


def test_integers_become_float64():
    X = np.round(data() * 10).astype(np.int64)
    estimator = GaussianMixture(2, random_state=0).fit(X)
    assert estimator.means_.dtype == np.float64 and estimator.score_samples(X).dtype == np.float64
    reference = GaussianMixture(2, random_state=0).fit(X.astype(np.float64))
    assert np.array_equal(estimator.means_, reference.means_)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_torch_tensors_in_numpy_out_dtype_kept(dtype, requires_grad):
    X = torch.from_numpy(data()).to(dtype).requires_grad_(requires_grad)
    estimator = GaussianMixture(3, random_state=0).fit(X)
    numpy_dtype = {torch.float32: np.float32, torch.float64: np.float64}[dtype]
    for name in FITTED_ARRAYS:
        value = getattr(estimator, name)
        assert isinstance(value, np.ndarray) and value.dtype == numpy_dtype, name
    for output in (estimator.predict_proba(X), estimator.score_samples(X), estimator.sample(5)[0]):
        assert isinstance(output, np.ndarray) and output.dtype == numpy_dtype
    assert isinstance(estimator.predict(X), np.ndarray) and estimator.predict(X).dtype == np.int64
    assert estimator.fit_predict(X).dtype == np.int64
    assert X.grad is None and X.requires_grad == requires_grad  # detached, never touched
    # the same fit as the numpy array of the same dtype, bit for bit
    reference = GaussianMixture(3, random_state=0).fit(X.detach().numpy())
    for name in FITTED_ARRAYS:
        assert np.array_equal(getattr(estimator, name), getattr(reference, name)), name


@pytest.mark.parametrize("half", [lambda X: torch.from_numpy(X).half(),
                                  lambda X: torch.from_numpy(X).bfloat16(),
                                  lambda X: X.astype(np.float16)], ids=["torch-float16", "bfloat16", "numpy-float16"])
def test_half_precision_becomes_float32_as_in_the_core(half):
    X = half(data())
    estimator = GaussianMixture(3, random_state=0).fit(X)
    assert estimator.means_.dtype == np.float32 and estimator.result_.params.dtype == torch.float32
    assert estimator.predict_proba(X).dtype == np.float32
    exact = X.float().numpy() if isinstance(X, torch.Tensor) else X.astype(np.float32)
    core = mixtures.fit(mixtures.GaussianMixture(3), X, seed=estimator.result_.extras["seed"],
                        max_iter=100, tol=1e-3)
    assert core.params.dtype == torch.float32
    assert np.array_equal(estimator.means_, GaussianMixture(3, random_state=0).fit(exact).means_)


@pytest.mark.parametrize("convert", [lambda X: torch.from_numpy(np.round(X * 10)).long(),
                                     lambda X: torch.from_numpy(X > 0)], ids=["int64", "bool"])
def test_integer_and_boolean_tensors_become_float64(convert):
    X = convert(data())
    estimator = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    assert estimator.means_.dtype == np.float64
    reference = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X.double().numpy())
    assert np.array_equal(estimator.means_, reference.means_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dataframe_keeps_dtype_and_feature_names(dtype):
    import pandas as pd
    X = data().astype(dtype)
    frame = pd.DataFrame(X, columns=["a", "b"])
    estimator = GaussianMixture(3, random_state=0).fit(frame)
    assert list(estimator.feature_names_in_) == ["a", "b"]
    assert estimator.means_.dtype == dtype and estimator.predict_proba(frame).dtype == dtype
    assert np.array_equal(estimator.means_, GaussianMixture(3, random_state=0).fit(X).means_)


def test_non_contiguous_tensor():
    X = torch.from_numpy(np.ascontiguousarray(data().T)).T  # a transposed view
    assert not X.is_contiguous()
    estimator = GaussianMixture(3, random_state=0).fit(X)
    assert np.array_equal(estimator.means_, GaussianMixture(3, random_state=0).fit(X.contiguous()).means_)


@pytest.mark.parametrize("method", METHODS)
def test_fit_predict_uses_the_fits_own_labels_and_equals_fit_then_predict(method, monkeypatch):
    # Unconverged fits (2 iterations / steps): labels of an E step *before* the last M step would
    # differ from predict's; fit_predict must give the labels at the fitted parameters.
    X = data()
    settings = {**CHEAP.get(method, {}), "max_iter": 2} if method != "nuts" else CHEAP["nuts"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fitted = GaussianMixture(3, random_state=1, method=method, **settings).fit(X)
        expected = fitted.predict(X)
        estimator = GaussianMixture(3, random_state=1, method=method, **settings)
        # fit_predict takes another code path: it never calls predict (neither the estimator's
        # nor the result's), it reads the fit's final assignments
        for owner in (GaussianMixture, FitResult):
            monkeypatch.setattr(owner, "predict", lambda *args, **kwargs: pytest.fail("predict called"))
        labels = estimator.fit_predict(X)
    assert labels.dtype == np.int64 and labels.shape == (len(X),)
    assert np.array_equal(labels, expected)
    own = estimator.result_.extras.get("labels")
    if method in ("hard_em", "map", "svi", "nuts"):  # the routine's own final assignments
        assert np.array_equal(labels, own.numpy())


def test_fit_predict_of_kmeans_is_the_mixtures_not_the_nearest_centre():
    # k-means' own labels are nearest-centre assignments; the fitted mixture (unequal spreads)
    # puts boundary points elsewhere. fit_predict follows the mixture, as predict does.
    g = np.random.default_rng(0)
    X = np.concatenate([g.normal(0.0, 0.3, (200, 2)), g.normal([2.5, 0.0], 2.0, (200, 2))])
    estimator = GaussianMixture(2, method="kmeans", random_state=0)
    labels = estimator.fit_predict(X)
    nearest = estimator.result_.extras["labels"].numpy()
    assert not np.array_equal(labels, nearest)
    assert np.array_equal(labels, estimator.predict(X))


def test_sample_shapes_reproducibility_and_errors():
    X = data()
    estimator = GaussianMixture(3, random_state=4).fit(X)
    samples, labels = estimator.sample(7)
    assert samples.shape == (7, 2) and labels.shape == (7,)
    again, again_labels = estimator.sample(7)
    assert np.array_equal(samples, again) and np.array_equal(labels, again_labels)
    expected, expected_labels = estimator.result_.sample(7, seed=4)
    assert np.array_equal(samples, expected.numpy()) and np.array_equal(labels, expected_labels.numpy())
    with pytest.raises(ValueError, match="n_samples"):
        estimator.sample(0)


def test_random_state_kinds():
    X = data(n=200)
    first = GaussianMixture(3, init_params="random", max_iter=5, random_state=np.random.RandomState(3))
    second = clone(first).set_params(random_state=np.random.RandomState(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b = first.fit(X), second.fit(X)
        GaussianMixture(3, random_state=None).fit(X)
    assert np.array_equal(a.means_, b.means_)  # same RandomState state -> same drawn seed
    with pytest.raises(ValueError):
        GaussianMixture(3, random_state=-1).fit(X)
    with pytest.raises(ValueError):
        GaussianMixture(3, random_state="seed").fit(X)


def test_warm_start_continues_from_previous_parameters():
    X = data()
    start = sklearn_start("full", X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = GaussianMixture(3, max_iter=2, warm_start=True, **start).fit(X)
        first_params = warm.result_.params
        warm.fit(X)
        straight = GaussianMixture(3, max_iter=4, **start).fit(X)
    assert warm.result_.init is not None
    assert torch.equal(warm.result_.init.locs, first_params.locs)
    assert torch.equal(warm.result_.init.native, first_params.native)
    # EM is deterministic: 2 + 2 warm iterations = 4 iterations from the same start
    for name in FITTED_ARRAYS:
        assert_close(getattr(warm, name), getattr(straight, name), rtol=1e-12, atol=1e-13, msg=name)
    # changing the model's shape restarts from init_params instead of failing
    warm.set_params(n_components=2, weights_init=None, means_init=None, precisions_init=None).fit(X)
    assert warm.means_.shape == (2, 2)


def test_other_methods_and_options():
    X = data()
    kmeans = GaussianMixture(3, method="kmeans", random_state=0).fit(X)
    result = mixtures.fit(mixtures.GaussianMixture(3), X, method="kmeans", seed=0, max_iter=100, tol=1e-3)
    assert kmeans.result_.method == "kmeans"
    assert np.array_equal(kmeans.means_, result.params.locs.numpy())
    chunked = GaussianMixture(3, random_state=0, method_options={"chunk_size": 64}).fit(X)
    plain = GaussianMixture(3, random_state=0).fit(X)
    assert_close(chunked.means_, plain.means_, rtol=1e-12, atol=1e-12)
    # method_options override max_iter
    with pytest.warns(SklearnConvergenceWarning):
        overridden = GaussianMixture(3, random_state=0, method_options={"max_iter": 1}).fit(X)
    assert overridden.n_iter_ == 1


def test_convergence_warning_is_sklearns_and_mixtures():
    X = data()
    with pytest.warns(SklearnConvergenceWarning, match="max_iter=1") as record:
        GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    assert all(issubclass(w.category, mixtures.ConvergenceWarning) for w in record
               if issubclass(w.category, SklearnConvergenceWarning))


@pytest.mark.parametrize("params, match", [
    (dict(covariance_type="banana"), "covariance_type"),
    (dict(method="gibbs"), "method"),
    (dict(init_params="fancy"), "init_params"),
    (dict(n_init=0), "n_init"),
    (dict(tol=-1.0), "tol"),
    (dict(max_iter=-1), "max_iter"),
    (dict(method_options={"seed": 3}), "random_state"),
    (dict(method_options=[("tol", 1)]), "method_options"),
    (dict(means_init=np.zeros((2, 2))), r"means_init must have shape \(3, 2\)"),
    (dict(precisions_init=-np.ones(3), covariance_type="spherical"), "positive"),
    (dict(precisions_init=np.stack([-np.eye(2)] * 3)), "positive definite"),
    (dict(weights_init=np.array([0.5, 0.5, 0.5])), "sum to 1"),
])
def test_bad_parameters_raise_value_error(params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(3, **params).fit(data(n=50))


def test_input_errors():
    X = data(n=50)
    with pytest.raises(NotFittedError):
        GaussianMixture().score(X)
    with pytest.raises(ValueError, match="n_components = 5, n_samples = 4"):
        GaussianMixture(5).fit(X[:4])
    fitted = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="3 features"):
        fitted.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.fit(np.where(np.arange(100).reshape(50, 2) == 7, np.nan, X))


def test_pickle_round_trip():
    X = data()
    estimator = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    loaded = pickle.loads(pickle.dumps(estimator))
    assert np.array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    assert loaded.history_ is loaded.result_.history and len(loaded.history_) == len(estimator.history_)
    assert loaded.get_params() == estimator.get_params()


# -- composition with scikit-learn ----------------------------------------------------------
def test_pipeline_with_standard_scaler():
    X = data() * np.array([100.0, 0.01]) + np.array([5e3, -3.0])
    pipeline = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=2)).fit(X)
    scaled = StandardScaler().fit_transform(X)
    direct = GaussianMixture(3, random_state=2).fit(scaled)
    assert np.array_equal(pipeline.predict(X), direct.predict(scaled))
    assert pipeline.score(X) == pytest.approx(direct.score(scaled), rel=1e-14)
    assert_close(pipeline.score_samples(X), direct.score_samples(scaled), rtol=1e-14, atol=0)


def test_grid_search_selects_components_by_log_likelihood():
    X = data(n=450, seed=5)
    cv = KFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(GaussianMixture(random_state=0),
                        {"n_components": [1, 2, 3], "covariance_type": ["full", "spherical"]}, cv=cv)
    grid.fit(X)
    assert grid.best_params_["n_components"] == 3
    best = GaussianMixture(random_state=0, **grid.best_params_)
    assert grid.best_score_ == pytest.approx(cross_val_score(best, X, cv=cv).mean(), rel=1e-12)
    assert grid.best_estimator_.n_components == 3
    assert grid.score(X) == pytest.approx(grid.best_estimator_.score(X), rel=1e-15)
