"""EM and hard EM: equal to scikit-learn from the same start, monotone, ELBO/KL identities, errors."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import mixture as sklearn_mixture

import mixtures
from mixtures import (
    ConvergenceWarning,
    DataError,
    DivergenceError,
    EMStep,
    GaussianMixture,
    MixtureParams,
    SingularCovarianceError,
)
from mixtures.families.gaussian.statistics import e_step, elbo
from mixtures.init import initialize

from conftest import COVARIANCE_TYPES, assert_close, true_params


def sklearn_precisions(params: MixtureParams) -> np.ndarray:
    """scikit-learn's ``precisions_init`` layout for the same parameters."""
    cov = params.covariances.numpy()
    return {
        "full": np.linalg.inv(cov),
        "tied": np.linalg.inv(cov[0]),
        "diag": 1.0 / np.diagonal(cov, axis1=1, axis2=2),
        "spherical": 1.0 / cov[:, 0, 0],
    }[params.covariance_type]


def sklearn_covariances(params: MixtureParams) -> np.ndarray:
    cov = params.covariances.numpy()
    return {"full": cov, "tied": cov[0], "diag": np.diagonal(cov, axis1=1, axis2=2),
            "spherical": cov[:, 0, 0]}[params.covariance_type]


@pytest.fixture(scope="module")
def offset_data():
    """Overlapping clusters far from the origin (stresses cancellation in the M step)."""
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]])
    X = np.concatenate([rng.normal(0, 1, (300, 3)), rng.normal(2.5, 0.7, (200, 3)) @ mixing,
                        rng.normal(-2, 1.5, (150, 3))])
    return X + 40.0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter, tol", [(1, 1e-3), (2000, 1e-10)], ids=["one-iteration", "converged"])
def test_em_equals_sklearn_from_the_same_start(offset_data, covariance_type, max_iter, tol):
    # the tolerances as absolute bounds: per-sample log-likelihood 1e-8, parameters 1e-6
    # (measured: ~1e-11 and ~1e-12 after tens of iterations)
    X = offset_data
    model = GaussianMixture(3, covariance_type)
    start = initialize(model, torch.as_tensor(X), "random_from_data", seed=1)
    reference = sklearn_mixture.GaussianMixture(
        3, covariance_type=covariance_type, weights_init=start.weights.numpy(),
        means_init=start.locs.numpy(), precisions_init=sklearn_precisions(start),
        max_iter=max_iter, tol=tol, reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn when max_iter=1
        reference.fit(X)
        result = mixtures.fit(model, X, init=start, max_iter=max_iter, tol=tol)
    assert result.n_iter == reference.n_iter_
    assert result.converged == reference.converged_
    if max_iter > 1:  # a real run to convergence, not one step in disguise
        assert result.converged and result.n_iter > 10
    assert_close(result.score(X), reference.score(X), rtol=0, atol=1e-8)
    assert_close(result.score_samples(X), reference.score_samples(X), rtol=0, atol=1e-8)
    assert_close(result.params.weights, reference.weights_, rtol=0, atol=1e-6)
    assert_close(result.params.locs, reference.means_, rtol=0, atol=1e-6)
    assert_close(sklearn_covariances(result.params), reference.covariances_, rtol=0, atol=1e-6)
    assert_close(result.params.precisions_cholesky, reference.precisions_cholesky_, rtol=0, atol=1e-6)
    # scikit-learn's lower_bound_ is the mean log-likelihood of the E step before the last M step
    assert_close(result.history["log_likelihood"][-2] / len(X), reference.lower_bound_, rtol=0, atol=1e-8)
    assert_close(result.predict_proba(X), reference.predict_proba(X), rtol=0, atol=1e-8)


def test_history_columns_and_identities(separated_data):
    _, X, _ = separated_data
    model = GaussianMixture(3, separated_data[0].covariance_type)
    result = mixtures.fit(model, X, init="random_from_data", seed=0, tol=1e-8, max_iter=200)
    history = result.history
    assert set(("iteration", "log_likelihood", "elbo", "kl", "time")) <= set(history.columns)
    assert len(history) == result.n_iter + 1
    assert history["iteration"].tolist() == list(range(result.n_iter + 1))
    assert torch.isnan(history["elbo"][0])  # no q produced the initialization
    assert_close(history["kl"][1:], history["log_likelihood"][1:] - history["elbo"][1:], rtol=1e-12, atol=1e-9)
    assert (history["kl"][1:] >= -1e-8 * history["log_likelihood"][1:].abs()).all()
    # EM: ELBO(q_t, θ_t) is sandwiched between log p(X | θ_{t-1}) and log p(X | θ_t)
    ll = history["log_likelihood"]
    assert (history["elbo"][1:] >= ll[:-1] - 1e-8 * ll[:-1].abs()).all()
    assert (torch.diff(history["time"]) >= 0).all()
    assert result.log_likelihood == pytest.approx(float(result.score_samples(X).sum()), rel=1e-12)


def test_elbo_equals_log_likelihood_right_after_an_e_step(covariance_type):
    params = true_params(covariance_type)
    X, _ = params.sample(500, seed=2)
    shifted = params.replace(locs=params.locs + 0.3)
    summary = e_step(X, shifted, X.mean(0))
    assert_close(elbo(summary, shifted), summary.log_likelihood, rtol=1e-12, atol=1e-9)
    assert_close(summary.log_likelihood, shifted.log_prob(X).sum(), rtol=1e-12, atol=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_components=st.integers(1, 3), n_features=st.integers(1, 3),
       covariance_type=st.sampled_from(COVARIANCE_TYPES), data_seed=st.integers(0, 10_000))
def test_log_likelihood_never_decreases(n_components, n_features, covariance_type, data_seed):
    generator = torch.Generator().manual_seed(data_seed)
    X = torch.randn(60 * n_components, n_features, generator=generator, dtype=torch.float64)
    X[: len(X) // 2] += 3.0  # some structure
    model = GaussianMixture(n_components, covariance_type)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = mixtures.fit(model, X, init="random", seed=data_seed, reg_covar=0.0,
                                  max_iter=30, tol=0.0)
    except (SingularCovarianceError, DivergenceError):
        return  # collapse without regularization: not a well-posed case
    ll = result.history["log_likelihood"]
    assert (torch.diff(ll) >= -1e-9 * ll[1:].abs()).all(), ll
    assert (result.history["kl"][1:] >= -1e-9 * ll[1:].abs()).all()


def test_max_iter_zero_returns_the_initialization():
    params = true_params()
    X, _ = params.sample(300, seed=0)
    result = mixtures.fit(GaussianMixture(3), X, init=params, max_iter=0)
    assert result.n_iter == 0 and not result.converged
    assert torch.equal(result.params.locs, params.locs)
    assert len(result.history) == 1
    assert result.log_likelihood == pytest.approx(float(params.log_prob(X).sum()), rel=1e-12)


def test_convergence_warning_and_relative_tolerance():
    params = true_params()
    X, _ = params.sample(600, seed=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        mixtures.fit(GaussianMixture(3), X, init="random", max_iter=2, tol=0.0)
    # from random responsibilities a loose tolerance stops at the symmetric saddle: flagged, not converged
    with pytest.warns(UserWarning, match="stopped at a saddle"):
        stuck = mixtures.fit(GaussianMixture(3), X, init="random", rtol=1e-2)
    assert not stuck.converged and stuck.extras["indistinguishable_components"]
    loose = mixtures.fit(GaussianMixture(3), X, init="kmeans", rtol=1e-2)
    tight = mixtures.fit(GaussianMixture(3), X, init="random", rtol=1e-10, max_iter=1000)
    assert loose.converged and tight.converged and loose.n_iter < tight.n_iter
    ll = tight.history["log_likelihood"]
    assert abs(ll[-2] - ll[-3]) <= 1e-10 * abs(ll[-2])


def test_singular_covariance_names_the_component_and_reg_covar():
    X = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 1.0], [6.0, 2.0], [5.5, 0.0]],
                     dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])  # component 0 lies on a line: rank 1
    with pytest.raises(SingularCovarianceError, match="component 0.*reg_covar"):
        mixtures.fit(GaussianMixture(2), X, init=labels, reg_covar=0.0, max_iter=1)
    # the default regularization makes the same start well posed
    mixtures.fit(GaussianMixture(2), X, init=labels, max_iter=1, warn=False)


def test_divergence_is_a_clear_error():
    # values whose squares overflow are refused up front ...
    with pytest.raises(DataError, match="Standardize the data"):
        mixtures.fit(GaussianMixture(2, "spherical"), [[0.0], [0.5], [1.0], [1e200]])
    # ... and a point whose density underflows to 0 under every component during the fit is a
    # DivergenceError (float32: a squared distance of 1e42 overflows)
    params = MixtureParams([0.5, 0.5], [[0.0], [1.0]], [1e-12, 1e-12], "spherical").to(torch.float32)
    X = torch.tensor([[0.0], [1.0], [1.0], [1e15]], dtype=torch.float32)
    with pytest.raises(DivergenceError, match="standardize the data"):
        mixtures.fit(GaussianMixture(2, "spherical"), X, init=params)


def test_em_step_is_inspectable():
    params = true_params()
    X, _ = params.sample(400, seed=0)
    step = EMStep(GaussianMixture(3), X, reg_covar=0.0)
    resp = step.responsibilities(params)
    summary = step.e_step(params)
    assert_close(summary.nk, resp.sum(0), rtol=1e-12, atol=1e-12)
    new = step.m_step(summary)
    nk = resp.sum(0)
    means = resp.T @ X / nk[:, None]
    assert_close(new.locs, means, rtol=1e-10, atol=1e-12)
    diff = X.unsqueeze(1) - means
    covs = torch.einsum("nk,nki,nkj->kij", resp, diff, diff) / nk[:, None, None]
    assert_close(new.covariances, covs, rtol=1e-9, atol=1e-12)
    assert_close(new.weights, nk / len(X), rtol=1e-12, atol=1e-14)


def test_hard_em_is_classification_em():
    params = true_params()
    X, _ = params.sample(1000, seed=4)
    result = mixtures.fit(GaussianMixture(3), X, method="hard_em", init="kmeans++", seed=0)
    assert result.converged
    labels = result.extras["labels"]
    # fixed point: the parameters are the M step of their own hard assignments
    assert torch.equal(labels, result.predict(X))
    for k in range(3):
        members = X[labels == k]
        assert_close(result.params.locs[k], members.mean(0), rtol=1e-10, atol=1e-12)
        assert_close(result.params.weights[k], len(members) / len(X), rtol=1e-10, atol=1e-12)
    history = result.history
    # the ELBO of one-hot q is the classification log-likelihood; KL >= 0
    assert (history["kl"][1:] >= 0).all()
    joint = result.params.joint_log_prob(X)
    classification = joint.gather(1, labels[:, None]).sum()
    assert_close(history["elbo"][-1], classification, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_hard_em_keeps_an_empty_component_without_reg_covar(covariance_type):
    # the third centre attracts no point: its statistics are empty, and with reg_covar=0 its own
    # estimate would be singular; the documented rule keeps its previous mean and covariance
    X = torch.tensor([0.0, 0.5, 1.0, 1.5, 10.0, 10.5, 11.0, 11.7], dtype=torch.float64).unsqueeze(-1)
    native = {"full": torch.full((3, 1, 1), 1.5), "tied": torch.full((1, 1), 1.5), "diag": torch.full((3, 1), 1.5),
              "spherical": torch.full((3,), 1.5)}[covariance_type].double()
    start = MixtureParams(torch.full((3,), 1 / 3, dtype=torch.float64), [[0.5], [10.5], [100.0]], native,
                          covariance_type)
    with pytest.warns(UserWarning, match=r"hard EM emptied component\(s\) \[2\]"):
        result = mixtures.fit(GaussianMixture(3, covariance_type), X, method="hard_em", init=start, reg_covar=0.0)
    assert result.converged and result.extras["empty_components"] == [2]
    assert result.extras["labels"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert float(result.params.locs[2, 0]) == 100.0
    assert 0 < float(result.params.weights[2]) < 1e-15
    x = X.squeeze(-1)
    members = [x[:4], x[4:]]
    assert_close(result.params.locs[:2, 0], [float(m.mean()) for m in members], rtol=1e-13, atol=1e-13)
    assert_close(result.params.weights[:2], [0.5, 0.5], rtol=1e-13, atol=0)
    variances = torch.stack([m.var(unbiased=False) for m in members])
    covariances = result.params.covariances.reshape(3)
    if covariance_type == "tied":  # the shared covariance pools the two clusters (an empty one adds nothing)
        assert_close(covariances, variances.mean().expand(3), rtol=1e-12, atol=0)
    else:
        assert_close(covariances[:2], variances, rtol=1e-12, atol=0)
        assert torch.equal(result.params.native[2], start.native[2])  # the previous value, not a re-estimate


def test_hard_em_empty_full_component_keeps_its_cholesky_factor_bit_for_bit():
    params = true_params()
    X, _ = params.sample(300, seed=3)
    far = MixtureParams(params.weights, torch.cat([params.locs[:2], torch.tensor([[80.0, -80.0]],
                                                                              dtype=torch.float64)]),
                        params.covariances, "full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = mixtures.fit(GaussianMixture(3), X, method="hard_em", init=far, reg_covar=0.0, max_iter=50)
    assert result.extras["empty_components"] == [2]
    assert torch.equal(result.params.native[2], far.native[2])
    assert torch.equal(result.params.locs[2], far.locs[2])


def test_em_float32_keeps_dtype_and_agrees_with_float64():
    params = true_params()
    X, _ = params.sample(2000, seed=1)
    r64 = mixtures.fit(GaussianMixture(3), X, init=params, tol=1e-6)
    r32 = mixtures.fit(GaussianMixture(3), X.float(), init=params, tol=1e-6)
    assert r32.params.locs.dtype == torch.float32
    assert_close(r32.params.locs, r64.params.locs, rtol=1e-4, atol=1e-4)


def test_same_seed_same_result_bit_for_bit():
    params = true_params("diag")
    X, _ = params.sample(800, seed=0)
    runs = [mixtures.fit(GaussianMixture(3, "diag"), X, init="kmeans++", seed=7, n_init=3) for _ in range(2)]
    assert torch.equal(runs[0].params.locs, runs[1].params.locs)
    assert runs[0].history.to_dict()["log_likelihood"] == runs[1].history.to_dict()["log_likelihood"]


def test_restarts_keep_the_best_final_objective():
    params = true_params()
    X, _ = params.sample(600, seed=0)
    result = mixtures.fit(GaussianMixture(3), X, init="random", seed=0, n_init=4)
    objectives = result.extras["restart_objectives"]
    assert len(objectives) == 4
    assert result.objective == max(objectives)


@pytest.fixture
def collapsing_data():
    X = torch.cat([torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
                   torch.full((5, 2), 30.0, dtype=torch.float64)])  # 5 duplicated points, far out
    init = MixtureParams([0.5, 0.3, 0.2], [[0.0, 0.0], [1.0, 1.0], [30.0, 30.0]], torch.eye(2).expand(3, 2, 2))
    return X, init


def test_collapse_is_an_error_naming_the_component_by_default(collapsing_data):
    X, init = collapsing_data
    with pytest.raises(SingularCovarianceError, match="component 2") as caught:
        mixtures.fit(GaussianMixture(3), X, init=init, reg_covar=0.0)
    assert caught.value.component == 2


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_collapse_reseeds_at_the_worst_explained_point_when_asked(collapsing_data, covariance_type):
    X, init = collapsing_data
    start = MixtureParams(init.weights, init.locs, init.covariances if covariance_type == "full" else
                          (torch.ones(3, 2, dtype=torch.float64) if covariance_type == "diag"
                           else torch.ones(3, dtype=torch.float64)), covariance_type)
    with pytest.warns(UserWarning, match="re-seeded"):
        result = mixtures.fit(GaussianMixture(3, covariance_type), X, init=start, reg_covar=0.0,
                              on_collapse="reseed", max_iter=3, warn=True)
    iteration, component = result.extras["reseeded"][0]
    assert (iteration, component) == (1, 2)
    assert torch.isfinite(result.params.locs).all() and torch.isfinite(result.params.covariances).all()
    assert_close(result.params.weights.sum(), 1.0)
    assert torch.linalg.eigvalsh(result.params.covariances).min() > 0
    with pytest.raises(ValueError, match="on_collapse must be"):
        mixtures.fit(GaussianMixture(3, covariance_type), X, init=start, on_collapse="ignore")


def test_float32_data_with_float64_accumulation():
    params = true_params()
    X, _ = params.sample(20_000, seed=3)
    step = EMStep(GaussianMixture(3), X.float(), accumulate_dtype=torch.float64)
    summary = step.e_step(params.to(torch.float32))
    assert summary.nk.dtype == torch.float64 and summary.sxx.dtype == torch.float64
    reference = e_step(X, params, step.shift.double())
    assert_close(summary.nk, reference.nk, rtol=1e-5, atol=1e-3)
    result = mixtures.fit(GaussianMixture(3), X.float(), init=params, accumulate_dtype="float64", tol=1e-6)
    exact = mixtures.fit(GaussianMixture(3), X, init=params, tol=1e-6)
    assert result.params.dtype == torch.float32  # parameters follow the data
    assert_close(result.params.locs, exact.params.locs, rtol=1e-4, atol=1e-4)


def test_an_emptied_soft_component_is_flagged_and_reseeded_once_when_asked():
    # one start far from the data: soft EM leaves it with ~0 responsibility
    X, _ = true_params("full").sample(600, seed=2)
    truth = true_params("full")
    start = truth.replace(locs=torch.cat([truth.locs[:2], torch.tensor([[1e4, 1e4]], dtype=torch.float64)]))
    with pytest.warns(UserWarning, match=r"degenerate component\(s\) \[2\]: empty"):
        plain = mixtures.fit(GaussianMixture(3), X, init=start, max_iter=50)
    assert plain.extras["empty_components"] == [2] and plain.params.weights[2] < 1e-12
    with pytest.warns(UserWarning, match="re-seeded"):
        reseeded = mixtures.fit(GaussianMixture(3), X, init=start, max_iter=300, on_collapse="reseed")
    assert [k for _, k in reseeded.extras["reseeded"]] == [2]
    assert reseeded.extras["empty_components"] == [] and reseeded.params.weights.min() > 0.1
    assert reseeded.log_likelihood > plain.log_likelihood + 100


def test_a_component_on_the_reg_covar_floor_is_flagged():
    # a cluster of identical points: its covariance is exactly reg_covar * I
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(200, 2)), np.full((30, 2), 8.0)])
    start = MixtureParams(np.array([0.8, 0.2]), np.array([[0.0, 0.0], [8.0, 8.0]]), np.eye(2)[None].repeat(2, 0),
                          "full")
    with pytest.warns(UserWarning, match=r"on the reg_covar floor or numerically singular\) \[1\]"):
        result = mixtures.fit(GaussianMixture(2), X, init=start, reg_covar=1e-4)
    assert result.extras["collapsed_components"] == [1]
