"""Stepwise (online) EM: reaches batch EM's optimum, is batch EM with η ≡ 1 on one full minibatch,
checked options, seeded, streamed = in memory, history conventions."""

import math
import warnings

import numpy as np
import pytest
import torch

import mixtures
from mixtures import ConvergenceWarning, GaussianMixture, MixtureParams, SingularCovarianceError
from mixtures.core.stream import StreamingData
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.inference.stepwise import _batch_sizes

from conftest import COVARIANCE_TYPES, assert_close, true_params

COLUMNS = ("iteration", "log_likelihood", "elbo", "kl", "time", "passes", "step_size")


def batch_em(model, X, start, steps):
    """``steps`` iterations of batch EM, no early stop."""
    return mixtures.fit(model, X, "em", init=start, max_iter=steps, tol=0.0, warn=False)


def one(t):
    return 1.0


@pytest.fixture(scope="module")
def large():
    """Well-separated 2-D, K=3 data, n = 20 000, and a k-means start."""
    X, _ = true_params("full").sample(20_000, seed=1)
    start = mixtures.fit(GaussianMixture(3), X, max_iter=0).params
    return X, start


@pytest.fixture(scope="module")
def small():
    X, _ = true_params("full").sample(1500, seed=3)
    return X


def start_of(X, covariance_type, seed=0):
    """A deliberately rough start (random points), so that EM needs several steps."""
    return mixtures.fit(GaussianMixture(3, covariance_type), X, init="random_from_data", seed=seed,
                        max_iter=0).params


def test_converges_to_the_batch_em_optimum(large):
    X, start = large
    model = GaussianMixture(3)
    reference = mixtures.fit(model, X, "em", init=start, tol=1e-10, max_iter=500)
    assert reference.converged
    result = mixtures.fit(model, X, "stepwise_em", init=start, batch_size=1000, num_epochs=10, seed=0)
    assert abs(result.score(X) - reference.score(X)) < 1e-3
    # same start, same labels: no alignment needed
    assert_close(result.params.weights, reference.params.weights, rtol=0, atol=5e-3)
    assert_close(result.params.locs, reference.params.locs, rtol=0, atol=3e-2)
    assert_close(result.params.covariances, reference.params.covariances, rtol=0, atol=5e-2)
    # the evaluated log-likelihood is on EM's total scale (subsample of 10 000 out of 20 000)
    assert abs(result.objective / len(X) - reference.score(X)) < 0.05
    assert result.history["passes"][-1] == 10.0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shuffle", [False, True])
def test_unit_step_size_on_one_full_minibatch_is_batch_em_step_by_step(small, covariance_type, shuffle):
    X = small
    model = GaussianMixture(3, covariance_type)
    start = start_of(X, covariance_type)
    steps = 6
    online = mixtures.fit(model, X, "stepwise_em", init=start, step_size=one, batch_size=len(X),
                          max_steps=steps, eval_every=1, shuffle=shuffle, seed=4)
    em = batch_em(model, X, start, steps)
    assert online.n_iter == em.n_iter == steps
    # eval subsample = all data and one row per step: EM's history, to rounding
    assert_close(online.history["iteration"], em.history["iteration"])
    for column in ("log_likelihood", "elbo", "kl"):
        assert_close(online.history[column][1:], em.history[column][1:], rtol=1e-12, atol=1e-9, msg=column)
    assert_close(online.history["log_likelihood"][0], em.history["log_likelihood"][0], rtol=1e-12, atol=0)
    assert_close(online.params.native, em.params.native, rtol=1e-12, atol=1e-12)
    assert_close(online.params.weights, em.params.weights, rtol=1e-12, atol=1e-14)
    assert_close(online.params.locs, em.params.locs, rtol=1e-12, atol=1e-12)
    # and step by step
    for k in (1, 2):
        partial = mixtures.fit(model, X, "stepwise_em", init=start, step_size=one, batch_size=len(X),
                               max_steps=k, shuffle=shuffle, seed=4)
        expected = batch_em(model, X, start, k).params.native
        assert_close(partial.params.native, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kappa", [None, 0.75, 1.0])
def test_first_update_on_all_the_data_is_one_batch_em_step(small, kappa):
    """``s`` starts as the first minibatch's statistics, so step 0 ignores η_0."""
    model = GaussianMixture(3)
    start = start_of(small, "full")
    online = mixtures.fit(model, small, "stepwise_em", init=start, kappa=kappa, batch_size=10 * len(small),
                          max_steps=1)
    em = batch_em(model, small, start, 1)
    assert_close(online.params.native, em.params.native, rtol=1e-12, atol=1e-12)
    assert_close(online.params.weights, em.params.weights, rtol=1e-12, atol=1e-14)
    expected_eta = 2.0 ** -(0.6 if kappa is None else kappa)
    assert_close(online.history["step_size"][1], expected_eta)


def test_second_step_blends_with_the_schedule_by_hand(small):
    """Two minibatches: θ_2 = M(N · ((1 - η_1) ŝ_0 + η_1 ŝ_1)) with η_1 = 3^-κ."""
    from mixtures.families.gaussian.statistics import default_shift, e_step, gaussian_summary, m_step

    X = small
    model = GaussianMixture(3, "diag")
    start = start_of(X, "diag")
    kappa = 0.8
    online = mixtures.fit(model, X, "stepwise_em", init=start, kappa=kappa, batch_size=len(X) // 2,
                          shuffle=False, max_steps=2, reg_covar=1e-4)
    shift = default_shift(X)
    first, second = X[: len(X) // 2], X[len(X) // 2:]
    s0 = e_step(first, start, shift)
    theta1 = m_step(gaussian_summary(s0.nk / len(first) * len(X), s0.sx / len(first) * len(X),
                                     s0.sxx / len(first) * len(X), shift, len(X), s0.log_likelihood, s0.entropy),
                    model.cov_type, 1e-4)
    s1 = e_step(second, theta1, shift)
    eta = 3.0 ** -kappa
    blend = [((1 - eta) * a / len(first) + eta * b / len(second)) * len(X)
             for a, b in ((s0.nk, s1.nk), (s0.sx, s1.sx), (s0.sxx, s1.sxx))]
    theta2 = m_step(gaussian_summary(*blend, shift, len(X), s1.log_likelihood, s1.entropy), model.cov_type, 1e-4)
    assert_close(online.params.native, theta2.native, rtol=1e-12, atol=1e-14)
    assert_close(online.params.locs, theta2.locs, rtol=1e-12, atol=1e-12)
    assert_close(online.history["step_size"][-1], eta)


@pytest.mark.parametrize("kappa", [0.5, 0.3, 0.0, -1.0, 1.01, 2, float("nan"), "0.7", True])
def test_kappa_outside_half_open_interval_is_rejected(small, kappa):
    with pytest.raises(ValueError, match=r"kappa must be a number in \(0.5, 1\]"):
        mixtures.fit(GaussianMixture(3), small, "stepwise_em", kappa=kappa, max_steps=1)


def test_invalid_options_are_rejected(small):
    model = GaussianMixture(3)
    with pytest.raises(ValueError, match="either kappa .* or step_size"):
        mixtures.fit(model, small, "stepwise_em", kappa=0.7, step_size=one)
    with pytest.raises(ValueError, match=r"step_size\(0\) = 0.0 is outside"):
        mixtures.fit(model, small, "stepwise_em", step_size=lambda t: 0.0)
    with pytest.raises(ValueError, match=r"step_size\(1\) = 1.5 is outside"):
        mixtures.fit(model, small, "stepwise_em", step_size=lambda t: 1.5 if t else 1.0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        mixtures.fit(model, small, "stepwise_em", batch_size=0)
    with pytest.raises(ValueError, match="eval_size must be an integer >= 1"):
        mixtures.fit(model, small, "stepwise_em", eval_size=2.5)
    with pytest.raises(ValueError, match="on_collapse must be"):
        mixtures.fit(model, small, "stepwise_em", on_collapse="ignore")
    with pytest.raises(ValueError, match="use method='em'"):
        mixtures.fit(GaussianMixture(3, prior=GaussianPrior()), small, "stepwise_em")


def test_reproducible_by_seed(small):
    model = GaussianMixture(3)
    runs = [mixtures.fit(model, small, "stepwise_em", batch_size=100, num_epochs=2, eval_size=500, seed=seed)
            for seed in (7, 7, 8)]
    first, same, other = runs
    assert torch.equal(first.params.native, same.params.native)
    assert torch.equal(first.params.locs, same.params.locs)
    assert torch.equal(first.extras["eval_indices"], same.extras["eval_indices"])
    for column in ("log_likelihood", "elbo", "passes", "step_size"):
        torch.testing.assert_close(first.history[column], same.history[column], rtol=0, atol=0,
                                   equal_nan=True)
    assert not torch.equal(first.params.locs, other.params.locs)
    assert not torch.equal(first.extras["eval_indices"], other.extras["eval_indices"])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_covariance_type_runs_with_the_documented_history(covariance_type):
    truth = true_params(covariance_type)
    X, _ = truth.sample(3000, seed=2)
    model = GaussianMixture(3, covariance_type)
    result = mixtures.fit(model, X, "stepwise_em", batch_size=200, num_epochs=3, eval_every=5, seed=1)
    history = result.history
    assert set(COLUMNS) <= set(history.columns)
    assert result.method == "stepwise_em" and result.n_iter == 45 and not result.converged
    # rows: init, every 5 steps (15 per epoch, 45 in all)
    assert history["iteration"].tolist() == list(range(0, 46, 5))
    passes = history["passes"]
    assert passes[0] == 0 and (passes.diff() > 0).all() and passes[-1] == 3.0
    assert_close(passes, history["iteration"] / 15)
    assert math.isnan(history["elbo"][0]) and math.isnan(history["step_size"][0])
    assert_close(history["step_size"][1:], (history["iteration"][1:] - 1 + 2) ** -0.6)
    assert_close(history["kl"][1:], history["log_likelihood"][1:] - history["elbo"][1:])
    assert (history["kl"][1:] >= -1e-9 * history["log_likelihood"][1:].abs()).all()
    # N <= eval_size: the column is the exact total log-likelihood
    assert_close(result.objective, result.params.log_prob(X).sum())
    assert result.extras["eval_indices"].tolist() == list(range(3000))
    assert result.score(X) > truth.log_prob(X).mean() - 0.01
    assert torch.isfinite(result.params.covariances).all()


def test_log_likelihood_column_is_the_scaled_mean_over_the_fixed_subsample(large):
    X, start = large
    result = mixtures.fit(GaussianMixture(3), X, "stepwise_em", init=start, batch_size=2000, num_epochs=1,
                          eval_size=700, eval_every=3, seed=5)
    indices = result.extras["eval_indices"]
    assert indices.shape == (700,) and (indices.diff() > 0).all() and indices.max() < len(X)
    assert_close(result.history["log_likelihood"][-1], len(X) * result.params.log_prob(X[indices]).mean())
    assert_close(result.history["log_likelihood"][0], len(X) * start.log_prob(X[indices]).mean())
    assert result.objective == result.history["log_likelihood"][-1]
    # 10 steps with eval_every=3: rows after steps 3, 6, 9 and the final one
    assert result.history["iteration"].tolist() == [0, 3, 6, 9, 10]
    assert_close(result.history["passes"], [0, 0.3, 0.6, 0.9, 1.0])
    kl = result.history["kl"][1:]
    assert (kl >= -1e-9 * result.history["log_likelihood"][1:].abs()).all()


def test_held_out_points_are_scored_at_every_evaluation(large):
    X, start = large
    train, test = X[:15_000], X[15_000:]
    result = mixtures.fit(GaussianMixture(3), train, "stepwise_em", init=start, batch_size=2000, num_epochs=1,
                          eval_every=3, seed=5, held_out=test)
    held_out = result.history["held_out_log_likelihood"]
    assert held_out.shape == (len(result.history),)
    assert_close(held_out[0], start.log_prob(test).mean())
    assert_close(held_out[-1], result.params.log_prob(test).mean())
    # the training column is unchanged by scoring held-out points
    plain = mixtures.fit(GaussianMixture(3), train, "stepwise_em", init=start, batch_size=2000, num_epochs=1,
                         eval_every=3, seed=5)
    assert torch.equal(plain.history["log_likelihood"], result.history["log_likelihood"])
    with pytest.raises(mixtures.DataError, match="held_out has 3 feature"):
        mixtures.fit(GaussianMixture(3), train, "stepwise_em", init=start, held_out=torch.zeros(5, 3))


def test_batch_sizes_split_an_epoch_evenly():
    assert _batch_sizes(1000, 256) == [250] * 4
    assert _batch_sizes(1001, 1000) == [1001]
    assert _batch_sizes(10, 100) == [10]
    assert _batch_sizes(7, 2) == [2, 2, 2, 1]
    sizes = _batch_sizes(20_000, 256)
    assert sum(sizes) == 20_000 and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("eval_size", [400, 10_000])
def test_streamed_equals_in_memory(small, eval_size):
    """Without shuffling, minibatches cut across chunks hold the same rows as in memory."""
    X = small
    model = GaussianMixture(3)
    start = start_of(X, "full")
    options = dict(init=start, batch_size=128, num_epochs=2, shuffle=False, eval_size=eval_size, seed=3,
                   eval_every=4)
    memory = mixtures.fit(model, X, "stepwise_em", **options)
    streamed = mixtures.fit(model, StreamingData(X.numpy(), chunk_size=333), "stepwise_em", **options)
    assert torch.equal(memory.extras["eval_indices"], streamed.extras["eval_indices"])
    assert_close(streamed.params.native, memory.params.native, rtol=1e-10, atol=1e-12)
    assert_close(streamed.params.locs, memory.params.locs, rtol=1e-10, atol=1e-12)
    for column in ("log_likelihood", "elbo", "passes", "step_size"):
        assert_close(streamed.history[column][1:], memory.history[column][1:], rtol=1e-10, atol=1e-8)
    # a callable source gives the same; shuffling within chunks is seeded
    chunks = [X[i:i + 500].numpy() for i in range(0, len(X), 500)]
    source = mixtures.fit(model, lambda: iter(chunks), "stepwise_em", **options)
    assert_close(source.params.locs, memory.params.locs, rtol=1e-10, atol=1e-12)
    shuffled = [mixtures.fit(model, StreamingData(X.numpy(), chunk_size=333), "stepwise_em",
                             **{**options, "shuffle": True}) for _ in range(2)]
    assert torch.equal(shuffled[0].params.locs, shuffled[1].params.locs)
    assert not torch.equal(shuffled[0].params.locs, memory.params.locs)


@pytest.mark.parametrize("later, message", [(1400, "fewer"), (1600, "more")])
def test_a_source_that_changes_between_passes_is_an_error(small, later, message):
    data = torch.cat([small, small[:100]]).numpy()
    state = {"n": 1500}

    def source():
        return iter([data[:state["n"]]])

    def step_size(t):
        state["n"] = later  # the source changes once the stepwise phase has started
        return 0.5

    with pytest.raises(ValueError, match=f"{message} points than on its first pass"):
        mixtures.fit(GaussianMixture(3), source, "stepwise_em", init=start_of(small, "full"), num_epochs=2,
                     eval_size=100, step_size=step_size)


def test_tol_stops_early_and_is_reported(large):
    X, start = large
    model = GaussianMixture(3)
    stopped = mixtures.fit(model, X, "stepwise_em", init=start, batch_size=1000, num_epochs=50, eval_every=5,
                           tol=1e-3, seed=0)
    assert stopped.converged and stopped.n_iter < 50 * 20
    means = stopped.history["log_likelihood"] / len(X)
    assert abs(means[-1] - means[-2]) < 1e-3
    with pytest.warns(ConvergenceWarning, match="did not meet tol"):
        budget = mixtures.fit(model, X, "stepwise_em", init=start, batch_size=1000, max_steps=3, tol=0.0)
    assert not budget.converged and budget.n_iter == 3


def test_warm_start_steps_are_batch_em_steps(small):
    model = GaussianMixture(3, "spherical")
    start = start_of(small, "spherical")
    warm = mixtures.fit(model, small, "stepwise_em", init=start, warm_start_steps=3, max_steps=0)
    assert_close(warm.params.native, batch_em(model, small, start, 3).params.native, rtol=1e-12, atol=1e-12)
    assert warm.history["iteration"].tolist() == [0, 1, 2, 3]
    assert warm.history["passes"].tolist() == [0, 1, 2, 3]
    assert warm.history["step_size"][1:].tolist() == [1.0] * 3
    # then the stepwise phase continues the count: one epoch of 5 steps, one row at its end
    both = mixtures.fit(model, small, "stepwise_em", init=start, warm_start_steps=2, batch_size=300,
                        num_epochs=1)
    assert both.history["iteration"].tolist() == [0, 1, 2, 7] and both.n_iter == 7
    assert both.history["passes"].tolist() == [0, 1, 2, 3]


@pytest.fixture
def collapsing_data():
    X = torch.cat([torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
                   torch.full((5, 2), 30.0, dtype=torch.float64)])  # 5 duplicated points, far out
    init = MixtureParams([0.5, 0.3, 0.2], [[0.0, 0.0], [1.0, 1.0], [30.0, 30.0]],
                         torch.eye(2).expand(3, 2, 2))
    return X, init


def test_collapse_raises_by_default_and_reseeds_when_asked(collapsing_data):
    X, init = collapsing_data
    model = GaussianMixture(3)
    with pytest.raises(SingularCovarianceError, match="component 2"):
        mixtures.fit(model, X, "stepwise_em", init=init, reg_covar=0.0, batch_size=1000)
    with pytest.warns(UserWarning, match="re-seeded"):
        result = mixtures.fit(model, X, "stepwise_em", init=init, reg_covar=0.0, batch_size=1000,
                              on_collapse="reseed", max_steps=5)
    assert result.extras["reseeded"][0] == (1, 2)
    assert torch.isfinite(result.params.covariances).all()
    assert_close(result.params.weights.sum(), 1.0)
    assert torch.linalg.eigvalsh(result.params.covariances).min() > 0
    # the fresh component starts with weight ≈ 1/N: one point replaces the 5 it held
    first = mixtures.fit(model, X, "stepwise_em", init=init, reg_covar=0.0, batch_size=1000,
                         on_collapse="reseed", max_steps=1, warn=False)
    assert_close(first.params.weights[2], 1.0 / (len(X) - 5 + 1), rtol=1e-9, atol=0)


def test_float32_stays_float32(small):
    X = small.float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = mixtures.fit(GaussianMixture(3), X, "stepwise_em", batch_size=300, num_epochs=1)
    assert result.params.dtype == torch.float32
    assert np.isfinite(result.objective)
