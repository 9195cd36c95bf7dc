"""Streaming EM: memory-mapped and chunk-iterator sources equal the in-memory fit."""

import numpy as np
import pytest
import torch

import mixtures
from mixtures import DataError, GaussianMixture
from mixtures.core.stream import StreamingData, predict_chunks, score_stream

from conftest import COVARIANCE_TYPES, assert_close, true_params


@pytest.fixture(scope="module")
def memmap_data(tmp_path_factory):
    X, _ = true_params().sample(12_000, seed=0)
    path = tmp_path_factory.mktemp("stream") / "X.npy"
    np.save(path, X.numpy())
    return X, np.load(path, mmap_mode="r")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("hard", [False, True])
def test_streamed_fit_equals_in_memory_fit(memmap_data, covariance_type, hard):
    X, mapped = memmap_data
    method = "hard_em" if hard else "em"
    model = GaussianMixture(3, covariance_type)
    start = mixtures.fit(model, X, max_iter=0).params
    in_memory = mixtures.fit(model, X, method=method, init=start, tol=1e-9)
    from_map = mixtures.fit(model, mapped, method=method, init=start, tol=1e-9, chunk_size=2500)
    from_chunks = mixtures.fit(model, lambda: (X[i:i + 999].numpy() for i in range(0, len(X), 999)),
                               method=method, init=start, tol=1e-9)
    for streamed in (from_map, from_chunks):
        assert streamed.n_iter == in_memory.n_iter
        assert_close(streamed.params.locs, in_memory.params.locs, rtol=1e-10, atol=1e-10)
        assert_close(streamed.params.covariances, in_memory.params.covariances, rtol=1e-10, atol=1e-10)
        assert_close(streamed.params.weights, in_memory.params.weights, rtol=1e-10, atol=1e-12)
        assert_close(streamed.history["log_likelihood"], in_memory.history["log_likelihood"], rtol=1e-10, atol=0)


def test_streamed_initialization_uses_a_reservoir_sample(memmap_data):
    X, mapped = memmap_data
    result = mixtures.fit(GaussianMixture(3), mapped, init="kmeans++", seed=0, init_sample_size=2000)
    truth = true_params()
    assert (torch.cdist(result.params.locs, truth.locs).min(0).values < 0.1).all()
    again = mixtures.fit(GaussianMixture(3), mapped, init="kmeans++", seed=0, init_sample_size=2000)
    assert torch.equal(result.params.locs, again.params.locs)


def test_reservoir_sample_is_uniform_and_without_replacement():
    values = np.arange(10_000, dtype=np.float64)
    stream = StreamingData(values[:, None], chunk_size=777)
    means = []
    for seed in range(40):
        sample = stream.reservoir_sample(500, torch.Generator().manual_seed(seed)).reshape(-1)
        assert sample.unique().numel() == 500
        means.append(float(sample.mean()))
    # the mean of a uniform sample of 500 from 0..9999 has sd ~ 2886/sqrt(500) ~ 129; over 40 seeds ~ 20
    assert abs(np.mean(means) - 4999.5) < 80
    small = StreamingData(values[:10, None]).reservoir_sample(50, torch.Generator().manual_seed(0))
    assert sorted(small.reshape(-1).tolist()) == list(range(10))


def test_prediction_and_scoring_chunk_by_chunk(memmap_data, tmp_path):
    X, mapped = memmap_data
    result = mixtures.fit(GaussianMixture(3), X, seed=0)
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.int64, shape=(len(X),))
    predict_chunks(result, mapped, out=out, chunk_size=1000)
    assert np.array_equal(np.asarray(out), result.predict(X).numpy())
    generated = torch.cat(list(predict_chunks(result, mapped, chunk_size=5000)))
    assert torch.equal(generated, result.predict(X))
    assert score_stream(result.params, mapped) == pytest.approx(float(result.score_samples(X).sum()), rel=1e-12)


def test_fit_result_predicts_and_scores_streamed_data(memmap_data, tmp_path):
    X, mapped = memmap_data
    result = mixtures.fit(GaussianMixture(3), X, seed=0)
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.int64, shape=(len(X),))
    assert result.predict(mapped, out=out) is out
    assert np.array_equal(np.asarray(out), result.predict(X).numpy())
    chunks = lambda: (X[i:i + 777].numpy() for i in range(0, len(X), 777))  # noqa: E731
    for source in (mapped, chunks):
        assert torch.equal(result.predict(source), result.predict(X))
        assert_close(result.score_samples(source), result.score_samples(X), rtol=0, atol=0)
        assert result.score(source) == pytest.approx(result.score(X), rel=1e-12)
        assert result.bic(source) == pytest.approx(result.bic(X), rel=1e-12)
        assert result.aic(source) == pytest.approx(result.aic(X), rel=1e-12)
    with pytest.raises(ValueError, match="out= is for streamed data"):
        result.predict(X, out=out)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_empty_chunks_of_a_stream_are_skipped(memmap_data, dtype):
    # e.g. a filtered file or a DataLoader's last batch; float32 runs the oneDNN products
    X, _ = memmap_data
    X = X.to(dtype)
    empty = np.zeros((0, 2), dtype=X.numpy().dtype)

    def chunks():
        yield empty
        yield X[:5000].numpy()
        yield empty
        yield X[5000:].numpy()

    model = GaussianMixture(3)
    start = mixtures.fit(model, X, max_iter=0).params
    in_memory = mixtures.fit(model, X, init=start, max_iter=5)
    streamed = mixtures.fit(model, chunks, init=start, max_iter=5, chunk_size=5000)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert_close(streamed.params.locs, in_memory.params.locs, rtol=tol, atol=tol)
    assert_close(streamed.history["log_likelihood"], in_memory.history["log_likelihood"], rtol=tol, atol=0)


def test_a_bad_chunk_is_reported_with_its_rows():
    chunks = [np.zeros((5, 2)), np.ones((5, 2))]
    chunks[1][3, 1] = np.nan
    with pytest.raises(DataError, match="chunk starting at row 5.*row 3"):
        mixtures.fit(GaussianMixture(2), lambda: iter(chunks), init={"locs": [[0.0, 0.0], [1.0, 1.0]]})
    with pytest.raises(DataError, match="3 feature"):
        mixtures.fit(GaussianMixture(2), lambda: iter([np.zeros((4, 2)), np.zeros((4, 3))]),
                     init={"locs": [[0.0, 0.0], [1.0, 1.0]]})


def test_streaming_needs_a_streaming_routine(memmap_data):
    _, mapped = memmap_data
    with pytest.raises(ValueError, match="needs the data in memory.*'em', 'hard_em', 'kmeans'"):
        mixtures.fit(GaussianMixture(2), mapped, method="kmedians")
    with pytest.raises(ValueError, match="labels or responsibilities"):
        mixtures.fit(GaussianMixture(2), mapped, init=np.zeros(len(mapped), dtype=int))


def test_streamed_kmeans_equals_in_memory_kmeans(memmap_data):
    X, mapped = memmap_data
    start = {"locs": X[:3].clone()}
    in_memory = mixtures.fit(GaussianMixture(3, "diag"), X, method="kmeans", init=start, tol=0.0)
    streamed = mixtures.fit(GaussianMixture(3, "diag"), mapped, method="kmeans", init=start, tol=0.0,
                            chunk_size=1700)
    assert streamed.n_iter == in_memory.n_iter
    assert_close(streamed.extras["centers"], in_memory.extras["centers"], rtol=1e-10, atol=1e-12)
    assert streamed.extras["inertia"] == pytest.approx(in_memory.extras["inertia"], rel=1e-10)
    assert_close(streamed.history["log_likelihood"], in_memory.history["log_likelihood"], rtol=1e-10, atol=0)
    assert streamed.extras["labels"] is None  # not kept: memory stays bounded by the chunk


def test_memory_maps_are_read_as_files_and_views_by_slicing(memmap_data):
    from mixtures.core.stream import _readable_map

    X, mapped = memmap_data
    assert _readable_map(mapped)
    view = mapped[100:]  # a view into the map: read by slicing
    assert not _readable_map(view)
    for source, expected in ((mapped, X), (view, X[100:])):
        chunks = list(StreamingData(source, chunk_size=777).chunks())
        assert torch.equal(torch.cat(chunks), expected)


@pytest.mark.parametrize("bad", [-1, 0])
def test_a_bad_chunk_size_of_a_memory_map_is_named(memmap_data, bad):
    _, mapped = memmap_data
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        mixtures.fit(GaussianMixture(3), mapped, chunk_size=bad, max_iter=2)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        list(StreamingData(mapped).chunks(bad))


def test_chunks_are_never_larger_than_the_data(memmap_data):
    from mixtures.core.stream import bounded_chunk_size

    X, mapped = memmap_data
    assert StreamingData(np.asarray(X[:300]), chunk_size=10 ** 9).chunk_size == 300
    assert bounded_chunk_size(10 ** 9, X[:300]) == 300 and bounded_chunk_size(None, X) is None
    assert bounded_chunk_size(10 ** 9, StreamingData(mapped)) == X.shape[0]
    huge = mixtures.fit(GaussianMixture(3), X[:3000], chunk_size=10 ** 9, max_iter=5)
    default = mixtures.fit(GaussianMixture(3), X[:3000], max_iter=5)
    assert torch.equal(huge.params.locs, default.params.locs)


@pytest.mark.parametrize("init", ["kmeans", "kmeans++", "random", "random_from_data"])
def test_default_start_of_a_stream_is_the_in_memory_start_when_the_data_fit_in_the_sample(memmap_data, init):
    # 12 000 points <= init_sample_size (100 000): the reservoir holds every point in order and the
    # initializer draws from the same generator state, so start and fit equal the in-memory ones
    X, mapped = memmap_data
    in_memory = mixtures.fit(GaussianMixture(3), X, init=init, seed=5, tol=1e-9)
    streamed = mixtures.fit(GaussianMixture(3), mapped, init=init, seed=5, tol=1e-9, chunk_size=777)
    assert torch.equal(streamed.init.locs, in_memory.init.locs)
    assert torch.equal(streamed.init.covariances, in_memory.init.covariances)
    assert streamed.n_iter == in_memory.n_iter
    assert_close(streamed.params.locs, in_memory.params.locs, rtol=1e-10, atol=1e-10)
    assert abs(streamed.log_likelihood - in_memory.log_likelihood) < 1e-10 * abs(in_memory.log_likelihood)
    # a sample smaller than the data is another start (a uniform subsample): not the in-memory one
    sampled = mixtures.fit(GaussianMixture(3), mapped, init=init, seed=5, max_iter=0, init_sample_size=1000)
    assert not torch.equal(sampled.init.locs, in_memory.init.locs)
