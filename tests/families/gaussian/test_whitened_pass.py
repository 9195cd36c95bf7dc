"""The whitened E step of wide full-covariance data equals the fused feature pass (float64, 1e-10).

Both routes of :func:`mixtures.families.gaussian.statistics.e_step` on the same data and
parameters (``WHITENING_FROM_D`` moved to force each): log-likelihood, entropy, every statistic,
hard labels, point weights, several chunks, float32 data with float64 sums, the worst point.
"""

import pytest
import torch

import mixtures
from mixtures import MixtureParams
from mixtures.core.stream import StreamingData
from mixtures.errors import ConvergenceWarning
from mixtures.families.gaussian import statistics, whitened
from mixtures.init import initialize
from mixtures.kernels import parallel

D, K = 12, 3


def _problem(n=700, seed=0):
    """Overlapping components (soft responsibilities), far from the origin."""
    generator = torch.Generator().manual_seed(seed)
    locs = 0.4 * torch.randn(K, D, generator=generator, dtype=torch.float64)
    factors = torch.randn(K, D, D, generator=generator, dtype=torch.float64)
    covariances = factors @ factors.transpose(-1, -2) / D + 0.5 * torch.eye(D, dtype=torch.float64)
    truth = MixtureParams(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), locs, covariances)
    X, _ = truth.sample(n, seed=seed + 1)
    start = MixtureParams(truth.weights, locs + 0.3, 1.2 * covariances)
    return X + 40.0, MixtureParams(start.weights, start.locs + 40.0, start.covariances)


def _both(monkeypatch, X, params, shift=None, **options):
    shift = X[:50].mean(0).to(X.dtype) if shift is None else shift
    results = {}
    for route, threshold in (("features", 10**6), ("whitened", 1)):
        monkeypatch.setattr(whitened, "WHITENING_FROM_D", threshold)
        assert whitened.uses_whitening(params.cov_type, K, D) == (route == "whitened")
        results[route] = statistics.e_step(X, params, shift, **options)
    return results["features"], results["whitened"]


def _assert_equal(reference, fast, rtol):
    for name in ("log_likelihood", "entropy"):
        value, expected = getattr(fast, name), getattr(reference, name)
        assert abs(float(value - expected)) <= rtol * max(abs(float(expected)), 1e-300), name
    torch.testing.assert_close(fast.nk, reference.nk, rtol=rtol, atol=rtol * float(reference.nk.max()))
    for name, moment in reference.moments.items():
        scale = float(moment.abs().max())
        torch.testing.assert_close(fast.moments[name], moment, rtol=rtol, atol=rtol * scale, msg=name)
    assert fast.n_points == reference.n_points


@pytest.mark.parametrize("chunk_size", [None, 128])
def test_soft_step_equals_the_feature_pass(monkeypatch, chunk_size):
    X, params = _problem()
    reference, fast = _both(monkeypatch, X, params, chunk_size=chunk_size)
    assert float(reference.entropy) > 10.0  # soft responsibilities: the entropy is a real check
    _assert_equal(reference, fast, 1e-10)
    torch.testing.assert_close(fast.worst_point, reference.worst_point, rtol=0, atol=0)


def test_hard_weighted_and_float32(monkeypatch):
    X, params = _problem()
    reference, fast = _both(monkeypatch, X, params, hard=True, chunk_size=200)
    _assert_equal(reference, fast, 1e-10)
    assert torch.equal(fast.labels, reference.labels)
    weights = torch.arange(X.shape[0], dtype=torch.float64).remainder(3)  # 0, 1, 2
    reference, fast = _both(monkeypatch, X, params, sample_weight=weights, chunk_size=256)
    _assert_equal(reference, fast, 1e-10)
    torch.testing.assert_close(fast.worst_point, reference.worst_point, rtol=0, atol=0)
    reference, fast = _both(monkeypatch, X.float(), params.to(torch.float32), accumulate_dtype=torch.float64)
    assert fast.nk.dtype == torch.float64
    _assert_equal(reference, fast, 2e-5)


def test_em_fit_takes_the_route_and_matches(monkeypatch):
    """Whole EM fits through each route: the same trajectory to rounding."""
    X, params = _problem(n=400)
    model = mixtures.GaussianMixture(K, "full")
    fits, calls, original = {}, [], whitened.whitened_pass

    def counted(*args, **options):
        calls.append(1)
        return original(*args, **options)

    monkeypatch.setattr(whitened, "whitened_pass", counted)
    for route, threshold in (("features", 10**6), ("whitened", 1)):
        monkeypatch.setattr(whitened, "WHITENING_FROM_D", threshold)
        calls.clear()
        with pytest.warns(ConvergenceWarning):  # 5 iterations, tol 0: stopped by the budget, as asked
            fits[route] = mixtures.fit(model, X, "em", init=params, max_iter=5, tol=0.0)
        assert bool(calls) == (route == "whitened")
    torch.testing.assert_close(torch.as_tensor(fits["whitened"].history["log_likelihood"]),
                               torch.as_tensor(fits["features"].history["log_likelihood"]), rtol=1e-10, atol=0)
    torch.testing.assert_close(fits["whitened"].params.covariances, fits["features"].params.covariances,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("structure", ["VEV", "EEV", "VEE"])
def test_decomposed_structures_take_the_route_too(monkeypatch, structure):
    """Any matrix-statistic structure with a whitening factor per component: the same E step."""
    X, _ = _problem()
    params = initialize(mixtures.GaussianMixture(K, structure), X, "kmeans++", seed=1)
    reference, fast = _both(monkeypatch, X, params, chunk_size=300)
    _assert_equal(reference, fast, 1e-10)


def test_streamed_data(monkeypatch):
    """Chunks from a stream (250 points each) give the in-memory statistics (labels are not kept)."""
    X, params = _problem()
    reference, _ = _both(monkeypatch, X, params)
    _, fast = _both(monkeypatch, StreamingData(X.numpy(), chunk_size=250), params, shift=X[:50].mean(0))
    _assert_equal(reference, fast, 1e-10)


def test_chunk_workers_give_the_same_bits(monkeypatch):
    """Two pass workers: the same statistics bit for bit as one (chunks summed in order)."""
    X, params = _problem()
    monkeypatch.setattr(whitened, "WHITENING_FROM_D", 1)
    soft, hard = [], []
    for threads in (1, 2):
        with parallel.using(threads):
            assert parallel.workers() == threads
            soft.append(statistics.e_step(X, params, X[:50].mean(0), chunk_size=100))
            hard.append(statistics.e_step(X, params, X[:50].mean(0), chunk_size=100, hard=True))
    for name in ("sx", "sxx"):
        assert torch.equal(soft[0].moments[name], soft[1].moments[name])
    for name in ("nk", "log_likelihood", "entropy", "worst_point"):
        assert torch.equal(getattr(soft[0], name), getattr(soft[1], name)), name
    assert torch.equal(hard[0].labels, hard[1].labels) and torch.equal(hard[0].nk, hard[1].nk)
