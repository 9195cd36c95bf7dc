"""Data-parallel fitting over torch.distributed: two gloo processes on loopback equal one process.

Each spawn costs seconds, so one spawn runs every method for one covariance type and
writes its results to files; the parent process compares them with single-process fits.
Cheap checks (errors, a one-rank group equals no group) run in-process on a world of size 1.
"""


import numpy as np
import pytest
import torch
import torch.distributed as dist
from fit_checks import one_rank_group, spawned_ranks

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior

from conftest import COVARIANCE_TYPES, true_params


def test_distributed_without_a_process_group_is_a_clear_error():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        mixtures.fit(GaussianMixture(2), X, distributed=True)


# -- every distributed routine, two ranks against one process ---------------------------------
N_POINTS = 601  # odd: the interleaved shards have 301 and 300 points


def _data(covariance_type: str) -> torch.Tensor:
    return true_params(covariance_type).sample(N_POINTS, seed=3)[0]


def _start(covariance_type: str) -> MixtureParams:
    """A generic start, away from any stationary point.

    A start at a partition's M step (kmeans++...) has gradients that are sums of
    cancelling terms (~0); Adam divides them by ~eps, which turns their rounding
    into visible differences between any two summation orders.
    """
    truth = true_params(covariance_type)
    shifted = truth.locs + torch.tensor([[0.7, -0.4], [-0.5, 0.6], [0.3, 0.8]], dtype=torch.float64)
    factor = 1.4 ** 0.5 if truth.cov_type.site == "scale_tril" else 1.4  # covariances x 1.4
    return MixtureParams.from_native(torch.tensor([0.4, 0.35, 0.25], dtype=torch.float64), shifted,
                                     factor * truth.native, covariance_type)


def _empty_cluster_case() -> tuple[torch.Tensor, torch.Tensor, MixtureParams]:
    """Rank 0: 400 points of the first two blobs; rank 1: two far outliers only (fewer than K).

    The third initial centre is far from everything, so its cluster is empty in the
    first pass; the globally farthest point, on rank 1, must take it.
    """
    truth = true_params("full")
    X, labels = truth.sample(600, seed=5)
    bulk = X[labels < 2][:400]
    outliers = torch.tensor([[0.5, -9.0], [8.0, -7.5]], dtype=torch.float64)
    locs = torch.cat([truth.locs[:2], torch.tensor([[60.0, 60.0]], dtype=torch.float64)])
    start = MixtureParams(torch.full((3,), 1 / 3, dtype=torch.float64), locs, truth.covariances, "full")
    return bulk, outliers, start


def _cases(covariance_type: str) -> dict[str, tuple]:
    """name -> (model, method, options); the same in the workers and in the parent."""
    prior = GaussianPrior()
    return {
        "em_prior": (GaussianMixture(3, covariance_type, prior=prior), "em", {"tol": 1e-9}),
        "map": (GaussianMixture(3, covariance_type), "map", {"num_steps": 150, "tol": 1e-6}),
        "map_prior": (GaussianMixture(3, covariance_type, prior=prior), "map",
                      {"num_steps": 60, "patience": None}),
        "svi_mean_field": (GaussianMixture(3, covariance_type), "svi",
                           {"guide": "delta", "local_guide": "mean_field", "num_steps": 40,
                            "patience": None}),
        "vb": (GaussianMixture(3, covariance_type, prior=prior), "vb", {"tol": 1e-8, "max_iter": 200}),
        "kmeans": (GaussianMixture(3, covariance_type), "kmeans", {"tol": 0.0}),
        "hard_em": (GaussianMixture(3, covariance_type), "hard_em", {"tol": 0.0, "max_iter": 200}),
    }


def _summary(result) -> dict:
    keep = {"weights": result.params.weights, "locs": result.params.locs, "native": result.params.native,
            "history": result.history.to_dict(), "n_iter": result.n_iter, "objective": result.objective,
            "converged": result.converged}
    for name in ("assignment_probs", "labels", "centers", "inertia"):
        if name in result.extras:
            keep[name] = result.extras[name]
    if result.posterior is not None:
        keep["posterior_locs"] = result.posterior.locs
    return keep


def _weighted_case() -> tuple[torch.Tensor, torch.Tensor, MixtureParams]:
    """101 points, integer weights 0..3 (sample_weight: each rank weighs its own shard), a fixed start."""
    generator = torch.Generator().manual_seed(5)
    X = torch.randn(101, 2, generator=generator, dtype=torch.float64)
    X[:50] += 3.0
    w = torch.randint(0, 4, (101,), generator=generator).double()
    start = MixtureParams(torch.tensor([0.5, 0.5], dtype=torch.float64), X[[0, 80]].clone(),
                          torch.eye(2, dtype=torch.float64).expand(2, 2, 2).clone(), "full")
    return X, w, start


def _weighted_methods() -> dict[str, tuple]:
    prior = GaussianPrior()  # its data-scaled defaults: the weighted moments of all ranks' data
    return {"em": (GaussianMixture(2, "full"), {"tol": 0.0, "max_iter": 10}),
            "kmeans": (GaussianMixture(2, "full"), {}),
            "vb": (GaussianMixture(2, "full", prior=prior), {"tol": 0.0, "max_iter": 10}),
            "map": (GaussianMixture(2, "full"), {"num_steps": 10, "patience": None})}


def _em_data(covariance_type: str) -> torch.Tensor:
    return true_params(covariance_type).sample(3000, seed=0)[0]


def _worker(rank, world_size, port, out_dir):
    """Every case of every covariance type in one spawn (each spawn costs seconds)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        results = {}
        for covariance_type in COVARIANCE_TYPES:
            # EM from kmeans++ computed on rank 0's shard and broadcast; uneven interleaved shards
            em_shard = _em_data(covariance_type)[rank::world_size]
            em = mixtures.fit(GaussianMixture(3, covariance_type), em_shard, method="em", init="kmeans++",
                              seed=4, tol=1e-9, distributed=True)
            results[covariance_type] = {"em": _summary(em)}
            shard = _data(covariance_type)[rank::world_size]
            for name, (model, method, options) in _cases(covariance_type).items():
                results[covariance_type][name] = _summary(mixtures.fit(
                    model, shard, method, init=_start(covariance_type), distributed=True, **options))
        bulk, outliers, start = _empty_cluster_case()
        results["kmeans_empty"] = _summary(mixtures.fit(GaussianMixture(3), bulk if rank == 0 else outliers,
                                                        "kmeans", init=start, distributed=True))
        X, w, start = _weighted_case()
        results["weighted"] = {method: _summary(mixtures.fit(model, X[rank::world_size], method, init=start,
                                                             sample_weight=w[rank::world_size], distributed=True,
                                                             **options))
                               for method, (model, options) in _weighted_methods().items()}
        for method in ("nuts", "kmedians"):
            try:
                mixtures.fit(GaussianMixture(3), _data("full")[rank::world_size], method, distributed=True)
            except ValueError as error:
                results[f"{method}_error"] = str(error)
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """The results of both ranks of one spawned two-process gloo group (run once per module)."""
    return spawned_ranks(_worker, tmp_path_factory.mktemp("distributed"), 2)


def _assert_same_on_every_rank(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            if key in ("time", "labels", "assignment_probs"):  # wall clock; per-shard values
                continue
            _assert_same_on_every_rank(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, list):  # a history column (NaN where undefined): bit-identical
        np.testing.assert_array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), err_msg=path)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, path


def _history_close(distributed: dict, single, rtol: float) -> None:
    """Every column but the clock, relative to its scale (kl = log_likelihood - elbo cancels to ~0)."""
    for column in distributed:
        if column == "time":
            continue
        expected = single.history[column]
        reference = single.history["log_likelihood" if column == "kl" else column]
        scale = float(reference[torch.isfinite(reference)].abs().max())
        torch.testing.assert_close(torch.tensor(distributed[column], dtype=torch.float64), expected,
                                   rtol=rtol, atol=rtol * scale, equal_nan=True, msg=column)


@pytest.mark.slow
def test_every_rank_returns_the_same_result(two_ranks):
    _assert_same_on_every_rank(two_ranks[0], two_ranks[1])


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_two_gloo_ranks_equal_a_single_process(two_ranks, covariance_type):
    """EM: rank 0 initialized from its own shard and broadcast; a single process started there agrees."""
    got = two_ranks[0][covariance_type]["em"]
    X = _em_data(covariance_type)
    model = GaussianMixture(3, covariance_type)
    start = mixtures.fit(model, X[0::2], init="kmeans++", seed=4, max_iter=0).params
    single = mixtures.fit(model, X, init=start, tol=1e-9)
    assert got["n_iter"] == single.n_iter
    torch.testing.assert_close(got["locs"], single.params.locs, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got["native"], single.params.native, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.tensor(got["history"]["log_likelihood"], dtype=torch.float64),
                               single.history["log_likelihood"], rtol=1e-10, atol=0)


#: relative tolerances against one process (measured: MAP ~1e-14, mean-field SVI ~6e-10,
#: VB and k-means ~3e-13; the mean-field probabilities sit near the simplex's boundary,
#: where the stick-breaking transform amplifies rounding)
TOLERANCES = {"em_prior": 1e-10, "map": 1e-10, "map_prior": 1e-10, "svi_mean_field": 1e-8, "vb": 1e-10,
              "kmeans": 1e-10, "hard_em": 1e-10}


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_distributed_method_equals_a_single_process(two_ranks, covariance_type):
    X = _data(covariance_type)
    for name, (model, method, options) in _cases(covariance_type).items():
        got, rtol = two_ranks[0][covariance_type][name], TOLERANCES[name]
        single = mixtures.fit(model, X, method, init=_start(covariance_type), **options)
        assert got["n_iter"] == single.n_iter and got["converged"] == single.converged, name
        for key in ("weights", "locs", "native"):
            torch.testing.assert_close(got[key], getattr(single.params, key), rtol=rtol, atol=rtol, msg=name)
        _history_close(got["history"], single, rtol)
        assert got["objective"] == pytest.approx(single.objective, rel=rtol, abs=0)
        shards = [two_ranks[r][covariance_type][name] for r in range(2)]
        if name == "svi_mean_field":  # local parameters: each rank holds its own points' rows
            for r in range(2):
                torch.testing.assert_close(shards[r]["assignment_probs"],
                                           single.extras["assignment_probs"][r::2], rtol=1e-7, atol=1e-9)
        if name in ("map", "kmeans", "hard_em"):  # labels are per shard
            for r in range(2):
                assert torch.equal(shards[r]["labels"], single.extras["labels"][r::2])
        if name == "vb":  # same q(θ), same seeded posterior draws
            torch.testing.assert_close(got["posterior_locs"], single.posterior.locs, rtol=1e-9, atol=1e-9)
        if name == "kmeans":
            torch.testing.assert_close(got["centers"], single.extras["centers"], rtol=rtol, atol=rtol)
            assert got["inertia"] == pytest.approx(single.extras["inertia"], rel=rtol)


@pytest.mark.slow
def test_kmeans_fills_an_empty_cluster_from_another_rank(two_ranks):
    bulk, outliers, start = _empty_cluster_case()
    single = mixtures.fit(GaussianMixture(3), torch.cat([bulk, outliers]), "kmeans", init=start)
    got = two_ranks[0]["kmeans_empty"]
    assert got["n_iter"] == single.n_iter
    torch.testing.assert_close(got["centers"], single.extras["centers"], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got["native"], single.params.native, rtol=1e-10, atol=1e-10)
    _history_close(got["history"], single, 1e-10)
    # the empty cluster took the farthest point, on rank 1; both outliers end up in it
    assert two_ranks[1]["kmeans_empty"]["labels"].tolist() == [2, 2] == single.extras["labels"][-2:].tolist()
    assert 2 not in got["labels"].tolist()


@pytest.mark.slow
def test_unsupported_methods_list_the_supported_ones(two_ranks):
    for method in ("nuts", "kmedians"):
        message = two_ranks[0][f"{method}_error"]
        assert "does not run distributed" in message
        for supported in ("em", "hard_em", "kmeans", "map", "svi", "vb"):
            assert repr(supported) in message


# -- in-process checks on a world of one rank ----------------------------------------------------
def test_a_one_rank_group_equals_no_group():
    """The distributed code paths (global moments, gathered candidates...) change nothing on one rank."""
    X = _data("diag")
    with one_rank_group():
        for name, (model, method, options) in _cases("diag").items():
            if method == "map" and model.prior is None:
                options = {**options, "num_steps": 30}
            plain = mixtures.fit(model, X, method, init=_start("diag"), **options)
            spread = mixtures.fit(model, X, method, init=_start("diag"), distributed=True, **options)
            assert spread.n_iter == plain.n_iter, name
            assert spread.model is model, name
            torch.testing.assert_close(spread.params.locs, plain.params.locs, rtol=1e-9, atol=1e-9, msg=name)
            torch.testing.assert_close(spread.history["log_likelihood"], plain.history["log_likelihood"],
                                       rtol=1e-10, atol=0, msg=name)
        # distributed k-means streams too (global moments and farthest points chunk by chunk)
        array = X.numpy()
        chunks = lambda: iter([array[i:i + 100] for i in range(0, len(array), 100)])  # noqa: E731
        streamed = mixtures.fit(GaussianMixture(3, "diag"), chunks, "kmeans", init=_start("diag"),
                                distributed=True)
        in_memory = mixtures.fit(GaussianMixture(3, "diag"), X, "kmeans", init=_start("diag"))
        assert streamed.n_iter == in_memory.n_iter
        torch.testing.assert_close(streamed.params.native, in_memory.params.native, rtol=1e-10, atol=1e-12)


def test_distributed_option_errors():
    X = _data("full")
    with one_rank_group():
        with pytest.raises(ValueError, match="guide='delta' only"):
            mixtures.fit(GaussianMixture(2, prior=GaussianPrior()), X, "svi", guide="normal", num_steps=2,
                         distributed=True)
        with pytest.raises(ValueError, match="minibatch size of each rank"):
            mixtures.fit(GaussianMixture(2), X, "svi", subsample_size=N_POINTS + 1, num_steps=2,
                         distributed=True)
        for method in ("nuts", "kmedians"):
            with pytest.raises(ValueError, match="does not run distributed"):
                mixtures.fit(GaussianMixture(2), X, method, distributed=True)


def test_minibatch_svi_runs_distributed():
    """Per-rank minibatches: a noisy loss, but the run completes with sensible global values."""
    X = _data("full")
    with one_rank_group():
        result = mixtures.fit(GaussianMixture(3), X, "svi", init=_start("full"), subsample_size=100,
                              num_steps=20, distributed=True)
    assert result.n_iter == 20 and not result.converged
    exact = float(result.params.log_prob(X).sum())
    assert result.history.last("log_likelihood") == pytest.approx(exact, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["em", "kmeans", "vb", "map"])
def test_weighted_shards_equal_a_weighted_single_process(two_ranks, method):
    """sample_weight: every rank weighs its own shard; the result is one process's on all the weighted data."""
    X, w, start = _weighted_case()
    model, options = _weighted_methods()[method]
    single = mixtures.fit(model, X, method, init=start, sample_weight=w, **options)
    got = two_ranks[0]["weighted"][method]
    torch.testing.assert_close(got["locs"], single.params.locs, rtol=1e-9, atol=1e-9)
    _history_close(got["history"], single, rtol=1e-9)
