"""Streamed EM with partial labels, sample weights and missing values equals the in-memory fit.

The labels and weights of a stream are (N,) arrays aligned with its rows (a read-only memmap is read
chunk by chunk); each chunk is summarized as in-memory data would be and the chunks' statistics added.
"""

import numpy as np
import pytest
import torch

import mixtures
from mixtures import DataError, GaussianMixture
from mixtures.data import remove_at_random

N = 400


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Three blobs in 3-D, a start, a third of the points labelled, integer weights, 20 % missing entries,
    and memory maps of the data, the labels and the weights."""
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(N, 3, generator=generator, dtype=torch.float64)
    X[:150] += 3.0
    X[150:280, 0] -= 4.0
    truth = torch.cat([torch.zeros(150), torch.ones(130), torch.full((120,), 2.0)]).long()
    labels = torch.where(torch.arange(N) % 3 == 0, truth, -1)
    weights = torch.randint(0, 4, (N,), generator=generator).double()
    missing = remove_at_random(X, 0.2, seed=1)
    start = mixtures.fit(GaussianMixture(3, "full"), X, max_iter=0).params
    folder = tmp_path_factory.mktemp("pointwise")
    maps = {}
    for name, values in (("X", X), ("labels", labels), ("weights", weights), ("missing", missing)):
        np.save(folder / f"{name}.npy", values.numpy())
        maps[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    return X, labels, weights, missing, start, maps


def _chunks(array: np.ndarray, size: int = 97):
    return lambda: (array[i:i + size] for i in range(0, len(array), size))


def _assert_same_fit(streamed, in_memory):
    assert streamed.n_iter == in_memory.n_iter
    for name in ("weights", "locs", "covariances"):
        torch.testing.assert_close(getattr(streamed.params, name), getattr(in_memory.params, name), rtol=1e-10,
                                   atol=1e-10, msg=name)
    for column in ("log_likelihood", "elbo"):
        torch.testing.assert_close(streamed.history[column], in_memory.history[column], rtol=1e-10, atol=0,
                                   equal_nan=True, msg=column)


@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_streamed_labels_equal_the_in_memory_labelled_fit(case, method):
    X, labels, _, _, start, maps = case
    model = GaussianMixture(3, "full")
    in_memory = mixtures.fit(model, X, method, init=start, labels=labels, tol=1e-8, max_iter=25, warn=False)
    from_maps = mixtures.fit(model, maps["X"], method, init=start, labels=maps["labels"], tol=1e-8, max_iter=25,
                             warn=False, chunk_size=64)
    from_chunks = mixtures.fit(model, _chunks(X.numpy()), method, init=start, labels=labels, tol=1e-8, max_iter=25,
                               warn=False)
    for streamed in (from_maps, from_chunks):
        _assert_same_fit(streamed, in_memory)
    # a named initializer: the stream's reservoir sample holds all the data, the start is reordered to the labels
    named = mixtures.fit(model, X, method, init="kmeans", labels=labels, max_iter=5, warn=False)
    named_streamed = mixtures.fit(model, maps["X"], method, init="kmeans", labels=maps["labels"], max_iter=5,
                                  warn=False, chunk_size=64)
    torch.testing.assert_close(named_streamed.init.locs, named.init.locs, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(named_streamed.params.locs, named.params.locs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_streamed_weights_equal_weighted_and_repeated_rows(case, method):
    X, _, weights, _, start, maps = case
    model = GaussianMixture(3, "full")
    in_memory = mixtures.fit(model, X, method, init=start, sample_weight=weights, tol=1e-8, warn=False)
    repeated = mixtures.fit(model, X.repeat_interleave(weights.long(), 0), method, init=start, tol=1e-8, warn=False)
    streamed = mixtures.fit(model, maps["X"], method, init=start, sample_weight=maps["weights"], tol=1e-8,
                            warn=False, chunk_size=50)
    _assert_same_fit(streamed, in_memory)
    _assert_same_fit(streamed, repeated)


@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_streamed_missing_values_equal_the_in_memory_marginalized_fit(case, method):
    _, _, _, missing, start, maps = case
    model = GaussianMixture(3, "full")
    options = {"init": start, "missing": "marginalize", "tol": 1e-8, "max_iter": 25, "warn": False}
    in_memory = mixtures.fit(model, missing, method, **options)
    streamed = mixtures.fit(model, maps["missing"], method, chunk_size=64, **options)
    _assert_same_fit(streamed, in_memory)
    # a named start on the (whole-data) reservoir sample: NaN filled with its observed means, as in memory
    named = mixtures.fit(model, missing, method, init="kmeans", missing="marginalize", max_iter=3, warn=False)
    named_streamed = mixtures.fit(model, _chunks(missing.numpy()), method, init="kmeans", missing="marginalize",
                                  max_iter=3, warn=False)
    torch.testing.assert_close(named_streamed.params.locs, named.params.locs, rtol=1e-10, atol=1e-10)


def test_streamed_labels_and_weights_are_checked_chunk_by_chunk(case):
    X, labels, weights, missing, start, maps = case
    model = GaussianMixture(3, "full")
    with pytest.raises(DataError, match=r"one entry per row of the streamed data, 400; got 399"):
        mixtures.fit(model, maps["X"], "em", init=start, labels=labels[:-1].numpy())
    bad = labels.clone()
    bad[350] = 7
    with pytest.raises(DataError, match=r"label 7 at point 30 .*counted from row 320 of the stream"):
        mixtures.fit(model, maps["X"], "em", init=start, labels=bad.numpy(), chunk_size=64)
    negative = weights.clone()
    negative[390] = -1.0
    with pytest.raises(DataError, match="negative value.*at position 390"):
        mixtures.fit(model, maps["X"], "em", init=start, sample_weight=negative.numpy(), chunk_size=64)
    with pytest.raises(DataError, match="sums to zero"):
        mixtures.fit(model, maps["X"], "em", init=start, sample_weight=np.zeros(N))
    with pytest.raises(DataError, match="one-dimensional array aligned"):
        mixtures.fit(model, maps["X"], "em", init=start, sample_weight=weights.numpy()[:, None])
    # routines that cannot: a clear error naming the ones that can
    with pytest.raises(ValueError, match=r"streamed data works with \['em', 'hard_em'\]"):
        mixtures.fit(model, maps["X"], "kmeans", init=start, sample_weight=maps["weights"])
    with pytest.raises(ValueError, match=r"streamed data works with \['em', 'hard_em'\]"):
        mixtures.fit(model, maps["missing"], "stepwise_em", init=start, missing="marginalize")
    with pytest.raises(ValueError, match="cannot fix labelled points"):
        mixtures.fit(model, maps["X"], "kmeans", init=start, labels=maps["labels"])
