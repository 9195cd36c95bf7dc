"""k-means++ on large data seeds from a sample; the nearest-centre start sums its statistics by chunk."""

import pytest
import torch

from mixtures import GaussianMixture, PoissonMixture, PoissonParams
from mixtures.core.validation import make_generator
from mixtures.init import initialize, params_from_labels
from mixtures.kernels import kmeans

from conftest import COVARIANCE_TYPES, true_params


def test_large_data_seed_from_a_sample_of_data_points(monkeypatch):
    X, _ = true_params("full").sample(5000, seed=1)
    monkeypatch.setattr(kmeans, "SEEDING_SAMPLE", 700)
    centres = kmeans.kmeans_plusplus(X, 3, make_generator(4))
    again = kmeans.kmeans_plusplus(X, 3, make_generator(4))
    assert torch.equal(centres, again)
    # every centre is a data point, and they are the seeding of the drawn sample
    assert all(bool((X == centre).all(-1).any()) for centre in centres)
    generator = make_generator(4)
    sample = X[torch.randint(5000, (700,), generator=generator)]
    monkeypatch.setattr(kmeans, "SEEDING_SAMPLE", 1 << 17)
    assert torch.equal(kmeans.kmeans_plusplus(sample, 3, generator), centres)


def test_blocked_distances_change_nothing(monkeypatch):
    X, _ = true_params("diag").sample(3000, seed=2)
    whole = kmeans.kmeans_plusplus(X, 3, make_generator(0))
    monkeypatch.setattr(kmeans, "_SEEDING_BLOCK", 128)
    assert torch.equal(kmeans.kmeans_plusplus(X, 3, make_generator(0)), whole)


@pytest.mark.parametrize("init", ["kmeans", "kmeans++"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partition_statistics_by_chunk_give_the_same_start(covariance_type, init):
    """The start from summed chunk statistics is bit for bit the M step on the full one-hot
    responsibilities of the same nearest-centre labels."""
    X, _ = true_params(covariance_type).sample(20000, seed=3)  # several chunks of the partition pass
    model = GaussianMixture(3, covariance_type)
    start = initialize(model, X, init, seed=5)
    centres = kmeans.kmeans_plusplus(X, 3, make_generator(5))
    labels = kmeans.lloyd(X, centres)[1] if init == "kmeans" else kmeans.assign(X, centres)[0]
    expected = params_from_labels(model, X, labels)
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(start, name), getattr(expected, name)), name


def test_poisson_start_by_chunk():
    X, _ = PoissonParams([0.3, 0.7], [[2.0, 10.0], [8.0, 1.0]]).sample(9000, seed=0)
    model = PoissonMixture(2)
    start = initialize(model, X, "kmeans", seed=3)
    labels = kmeans.lloyd(X, kmeans.kmeans_plusplus(X, 2, make_generator(3)))[1]
    expected = params_from_labels(model, X, labels)
    torch.testing.assert_close(start.rates, expected.rates, rtol=1e-13, atol=0)
    torch.testing.assert_close(start.weights, expected.weights, rtol=1e-13, atol=0)
