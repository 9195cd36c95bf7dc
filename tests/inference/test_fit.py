"""Initializers, the fit() entry point, and clear errors on bad input."""

import numpy as np
import pytest
import torch

import mixtures
from mixtures import DataError, GaussianMixture, GaussianPrior, ParameterError
from mixtures.inference import ROUTINES
from mixtures.init import initialize
from mixtures.kernels.kmeans import kmeans_plusplus

from conftest import assert_close, true_params


@pytest.fixture(scope="module")
def data():
    X, labels = true_params().sample(900, seed=0)
    return X, labels


@pytest.mark.parametrize("init", ["kmeans", "kmeans++", "random", "random_from_data"])
def test_random_initializers_are_seeded_and_valid(data, covariance_type, init):
    X, _ = data
    model = GaussianMixture(3, covariance_type)
    a = initialize(model, X, init, seed=3)
    b = initialize(model, X, init, seed=3)
    assert torch.equal(a.locs, b.locs) and torch.equal(a.native, b.native)
    assert a.covariance_type == covariance_type and a.locs.shape == (3, 2)
    assert_close(a.weights.sum(), 1.0)
    assert torch.linalg.eigvalsh(a.covariances).min() > 0


def test_kmeans_init_recovers_separated_clusters(data):
    X, labels = data
    params = initialize(GaussianMixture(3), X, "kmeans", seed=0)
    truth = true_params()
    distances = torch.cdist(params.locs, truth.locs)
    assert (distances.min(0).values < 0.2).all()


def test_random_from_data_uses_data_points_and_data_covariance(data):
    X, _ = data
    params = initialize(GaussianMixture(3, "tied"), X, "random_from_data", seed=1)
    assert all((X == loc).all(-1).any() for loc in params.locs)
    assert_close(params.covariances[0], torch.cov(X.T, correction=0) + 1e-6 * torch.eye(2), rtol=1e-10, atol=1e-12)
    assert_close(params.weights, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_kmeans_plusplus_picks_distinct_far_points(data):
    X, _ = data
    centres = kmeans_plusplus(X, 3, torch.Generator().manual_seed(0))
    assert torch.cdist(centres, centres).masked_fill(torch.eye(3, dtype=torch.bool), 1e9).min() > 2.0


def test_init_from_responsibilities_and_labels_agree(data):
    X, labels = data
    model = GaussianMixture(3, "diag")
    from_labels = initialize(model, X, labels)
    from_resp = initialize(model, X, torch.nn.functional.one_hot(labels, 3).double())
    assert_close(from_labels.locs, from_resp.locs, rtol=1e-12, atol=1e-12)
    # label values are arbitrary: mapped to 0..K-1 in sorted order
    relabelled = initialize(model, X, (labels * 10 + 7).numpy())
    assert_close(relabelled.locs, from_labels.locs, rtol=1e-12, atol=1e-12)


def test_given_parameters_start_exactly_there(data):
    X, _ = data
    params = true_params("spherical")
    start = initialize(GaussianMixture(3, "spherical"), X, params)
    assert torch.equal(start.native, params.native)
    as_dict = initialize(GaussianMixture(3), X, true_params().as_dict())
    assert_close(as_dict.covariances, true_params().covariances)


@pytest.mark.parametrize("init, error, message", [
    (torch.zeros(10, dtype=torch.long), DataError, "10 entries"),
    (torch.tensor([0, 1] * 450), DataError, "2 distinct values"),
    (torch.full((900, 3), 0.5, dtype=torch.float64), DataError, "sum to 1"),
    ("banana", ValueError, "unknown init 'banana'"),
    ({"weights": [1.0]}, ParameterError, "needs 'locs'"),
    ({"locs": [[0.0, 0.0]]}, ParameterError, r"shape \(K, D\)"),
])
def test_bad_init_is_a_clear_error(data, init, error, message):
    X, _ = data
    with pytest.raises(error, match=message):
        initialize(GaussianMixture(3), X, init)


def test_init_params_of_another_model_are_rejected(data):
    X, _ = data
    with pytest.raises(ParameterError, match="do not fit this model"):
        mixtures.fit(GaussianMixture(3, "diag"), X, init=true_params("full"))


@pytest.mark.parametrize("X, message", [
    ([[0.0, float("nan")], [1.0, 2.0]], "NaN or infinite values in 1 row.*row 0"),
    ([[0.0, 1.0], [1.0, float("inf")]], "row 1"),
    (np.zeros((2, 2, 2)), r"shape \(N, D\)"),
    ([["a", "b"], ["c", "d"]], "must be numeric"),
    ([[1.0, 2.0], [3.0]], "not a rectangular array"),
    (np.zeros((0, 2)), "0 point"),
    ("abc", "must be an array of points.*got str 'abc'"),
    (None, "must be an array of points.*got NoneType"),
    ({"a": 1}, "must be an array of points.*got dict"),
    (3.0, "must be an array of points.*got float"),
])
def test_bad_data_is_a_clear_error(X, message):
    with pytest.raises(DataError, match=message):
        mixtures.fit(GaussianMixture(1), X)


def test_more_components_than_points_is_a_clear_error():
    with pytest.raises(DataError, match="fewer than the model's K=5 components"):
        mixtures.fit(GaussianMixture(5), np.random.default_rng(0).normal(size=(3, 2)))


def test_bad_options_are_clear_errors(data):
    X, _ = data
    with pytest.raises(ValueError, match="unknown method 'gibbs'"):
        mixtures.fit(GaussianMixture(2), X, method="gibbs")
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        GaussianMixture(0)
    with pytest.raises(ValueError, match="unknown covariance_type"):
        GaussianMixture(2, "banana")
    with pytest.raises(ValueError, match="reg_covar must be a finite non-negative number"):
        mixtures.fit(GaussianMixture(2), X, reg_covar=-1.0)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 0"):
        mixtures.fit(GaussianMixture(2), X, max_iter=-1)
    with pytest.raises(ValueError, match="n_init must be an integer >= 1"):
        mixtures.fit(GaussianMixture(2), X, n_init=0)
    unknown = r"method 'em' got an unexpected option 'max_iters' \(did you mean 'max_iter'\?\).*help\("
    with pytest.raises(TypeError, match=unknown):
        mixtures.fit(GaussianMixture(2), X, max_iters=3)
    for seed in ("a", 1.5, -1, True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer or None"):
            mixtures.fit(GaussianMixture(2), X, seed=seed)


def test_a_non_numeric_init_dict_names_its_entry(data):
    X, _ = data
    with pytest.raises(DataError, match=r"init\['locs'\] must be numeric.*init\['locs'\]\[0, 0\] = 'a'"):
        mixtures.fit(GaussianMixture(2), X, init={"locs": [["a", "b"], ["c", "d"]]})


def test_seed_none_draws_a_seed_once_and_records_it(data):
    X, _ = data
    first = mixtures.fit(GaussianMixture(3), X, init="random", seed=None, max_iter=5, warn=False)
    seed = first.extras["seed"]
    assert isinstance(seed, int)
    again = mixtures.fit(GaussianMixture(3), X, init="random", seed=seed, max_iter=5, warn=False)
    assert torch.equal(again.params.locs, first.params.locs)


def test_routine_warnings_point_at_the_callers_line(data):
    import warnings

    X, _ = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mixtures.fit(GaussianMixture(3), X, init="random", max_iter=1)
    assert [w.category.__name__ for w in caught] == ["ConvergenceWarning"]
    assert caught[0].filename == __file__


def test_input_types_are_accepted(data):
    X, _ = data
    as_list = mixtures.fit(GaussianMixture(3), X.tolist())
    as_numpy = mixtures.fit(GaussianMixture(3), X.numpy())
    as_int = mixtures.fit(GaussianMixture(3), (X * 100).round().to(torch.int64))
    assert torch.equal(as_list.params.locs, as_numpy.params.locs)
    assert as_int.params.dtype == torch.float64
    one_d = mixtures.fit(GaussianMixture(2), X[:, 0].numpy())
    assert one_d.params.locs.shape == (2, 1)


def test_predict_is_argmax_of_predict_proba(data):
    X, _ = data
    result = mixtures.fit(GaussianMixture(3), X, seed=0)
    assert torch.equal(result.predict(X), result.predict_proba(X).argmax(-1))
    samples, labels = result.sample(50, seed=1)
    assert samples.shape == (50, 2) and labels.shape == (50,)


def test_information_criteria_by_hand(data):
    X, _ = data
    for covariance_type, n_covariance in [("full", 9), ("tied", 3), ("diag", 6), ("spherical", 3)]:
        result = mixtures.fit(GaussianMixture(3, covariance_type), X, seed=0)
        p = 2 + 6 + n_covariance
        assert result.n_parameters() == p
        log_likelihood = float(result.score_samples(X).sum())
        assert result.bic(X) == pytest.approx(-2 * log_likelihood + p * np.log(len(X)), rel=1e-12)
        assert result.aic(X) == pytest.approx(-2 * log_likelihood + 2 * p, rel=1e-12)


def test_bic_matches_sklearn(data):
    from sklearn import mixture as sklearn_mixture
    X, _ = data
    for covariance_type in ("full", "tied", "diag", "spherical"):
        result = mixtures.fit(GaussianMixture(3, covariance_type), X, seed=0)
        reference = sklearn_mixture.GaussianMixture(3, covariance_type=covariance_type)
        reference.fit(X.numpy())
        assert reference._n_parameters() == result.n_parameters()


def test_the_result_records_how_it_was_fitted(data, tmp_path):
    X, _ = data
    result = mixtures.fit(GaussianMixture(3), X, init="kmeans++", seed=4, n_init=2, reg_covar=1e-5,
                          max_iter=7, tol=1e-4, warn=False)
    settings = result.extras["fit_settings"]
    assert settings == {"method": "em", "init": "kmeans++", "seed": 4, "n_init": 2, "reg_covar": 1e-5,
                        "dtype": None, "device": None, "chunk_size": None, "distributed": False,
                        "options": {"max_iter": 7, "tol": 1e-4, "warn": False}}
    result.save(tmp_path / "fit.pt")
    assert mixtures.load(tmp_path / "fit.pt").extras["fit_settings"] == settings
    given = mixtures.fit(GaussianMixture(3), X, init=result.params, max_iter=0)
    assert given.extras["fit_settings"]["init"] == "<MixtureParams>"


@pytest.mark.parametrize("method", sorted(name for name, r in ROUTINES.items() if "chunk_size" in r.option_names))
@pytest.mark.parametrize("bad", [-1, 0, 2.5])
def test_every_routine_refuses_a_bad_chunk_size_even_called_directly(method, bad):
    # (k-medians with chunk_size=-1 used to return floored covariances and converged=True)
    X, _ = true_params().sample(200, seed=0)
    routine = ROUTINES[method]
    model = GaussianMixture(3, prior=GaussianPrior() if routine.prior == "required" else None)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        mixtures.fit(model, X, method, chunk_size=bad)
    start = mixtures.fit(GaussianMixture(3), X, "kmeans").params
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        routine(model, X, start, seed=0, chunk_size=bad)


SCALE_BUDGET = {"em": {"max_iter": 200}, "hard_em": {}, "kmeans": {}, "kmedians": {}, "map": {"num_steps": 100},
                "svi": {"num_steps": 100}, "stepwise_em": {"num_epochs": 5, "batch_size": 16}, "vb": {"max_iter": 200}}


@pytest.mark.parametrize("scale", [1e-100, 1e-8, 1e-6, 1e6, 1e8, 1e100])
@pytest.mark.parametrize("method", sorted(SCALE_BUDGET))
def test_fit_of_scaled_data_is_the_scaled_fit(method, scale):
    # the default start, routine and result commute with X -> a X + b: routines whose covariances carry
    # reg_covar get it scaled by a² (it is in the data's units), MAP and SVI (no floor) take the
    # default, and the default prior of VB scales with X. (NUTS: sampling, not compared.)
    # (before: MAP, SVI and stepwise EM merged the clusters at small scales)
    g = torch.Generator().manual_seed(3)
    X = torch.randn(60, 2, generator=g, dtype=torch.float64)
    X[:25] += torch.tensor([4.0, -3.0], dtype=torch.float64)
    model = GaussianMixture(2, "full", prior=mixtures.GaussianPrior() if method == "vb" else None)
    floor = {} if method in ("map", "svi") else {"reg_covar": 1e-6 * scale ** 2}
    reference = mixtures.fit(model, X, method, **{"reg_covar": 1e-6}, **SCALE_BUDGET[method])
    shift = torch.tensor([30.0, -20.0], dtype=torch.float64) * scale  # b: far from the origin, in X's units
    scaled = mixtures.fit(model, X * scale + shift, method, **floor, **SCALE_BUDGET[method])
    assert_close(scaled.params.weights, reference.params.weights, rtol=1e-9, atol=1e-12)
    assert_close((scaled.params.locs - shift) / scale, reference.params.locs, rtol=1e-9, atol=1e-11)
    assert_close(scaled.params.covariances / scale ** 2, reference.params.covariances, rtol=1e-8, atol=1e-12)
    # log-likelihoods differ by the Jacobian N D log(1/a) only
    assert abs(scaled.log_likelihood - reference.log_likelihood + 60 * 2 * np.log(scale)) < 1e-9 * 60 * 2 * 14
    assert sorted(round(float(w), 2) for w in scaled.params.weights) == [0.42, 0.58]  # two clusters kept
