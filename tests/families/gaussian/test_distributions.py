"""The matrix-product ``log_prob`` of the component distributions (``mixtures.fused``).

Under enumeration the observation site's log densities ``(K, N)`` are one product
``C @ F``. These tests hold it to the term-by-term formula of the parent
distributions (``fused.enabled(False)``): log densities on offset data, the
enumerated loss and its gradient with respect to every global parameter (all
covariance types, D = 1, 2, 5, with and without subsampling), the shapes that
must fall back, JIT tracing, the feature cache, and float32 accuracy.
"""

import gc

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import JitTraceEnum_ELBO, TraceEnum_ELBO

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.core.family import fresh_param_store
from mixtures.core.queries import empty_guide, map_assignments, marginal_probabilities
from mixtures.families.gaussian import distributions as fused
from mixtures.families.gaussian.covariance import get_structure

from conftest import COVARIANCE_TYPES


def random_params(covariance_type: str, D: int, K: int = 3, offset: float = 0.0, spread: float = 1.0,
                  seed: int = 0, dtype=torch.float64) -> MixtureParams:
    """A random K-component mixture centred at ``offset`` with component scales ~ ``spread``."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=g, dtype=torch.float64) + 0.5
    locs = offset + 3.0 * spread * torch.randn(K, D, generator=g, dtype=torch.float64)
    factors = spread * torch.randn(K, D, D, generator=g, dtype=torch.float64) / D ** 0.5
    full = factors @ factors.transpose(-1, -2) + 0.3 * spread ** 2 * torch.eye(D, dtype=torch.float64)
    native = {"full": full, "tied": full[0], "diag": full.diagonal(dim1=-2, dim2=-1),
              "spherical": full.diagonal(dim1=-2, dim2=-1).mean(-1)}[covariance_type]
    return MixtureParams(weights / weights.sum(), locs, native, covariance_type).to(dtype)


def perturbed(params: MixtureParams, seed: int = 1) -> MixtureParams:
    """A start away from the truth: shifted means, inflated covariances, other weights."""
    g = torch.Generator().manual_seed(seed)
    scale = params.covariances.diagonal(dim1=-2, dim2=-1).sqrt()
    locs = params.locs + 0.7 * scale * torch.randn(params.locs.shape, generator=g, dtype=params.locs.dtype)
    native = params.native * (1.3 if params.cov_type.site == "variances" else 1.14)
    weights = params.weights.flip(0) + 0.1
    return MixtureParams.from_native(weights / weights.sum(), locs, native, params.cov_type)


def enumerated_distribution(params: MixtureParams, N: int):
    """The observation site's distribution as the enumerated program builds it: batch ``(K, N)``."""
    K = params.n_components
    z = torch.arange(K).reshape(K, 1)
    return params.cov_type.component_distribution(params.locs, params.native, z).expand((K, N))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls of the matrix-product route."""
    calls = []
    original = fused.features

    def counting(value, kind):
        calls.append(kind)
        return original(value, kind)

    monkeypatch.setattr(fused, "features", counting)
    return calls


# -- log densities --------------------------------------------------------------------------
@pytest.mark.parametrize("offset, spread", [(0.0, 1.0), (40.0, 0.1), (1e3, 1e-2), (1e3, 1.0)])
@pytest.mark.parametrize("D", [1, 2, 5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prob_equals_the_parents_on_offset_data(covariance_type, D, offset, spread, spy):
    params = random_params(covariance_type, D, offset=offset, spread=spread)
    X, _ = params.sample(500, seed=3)
    dist = enumerated_distribution(params, X.shape[0])
    fast = dist.log_prob(X)
    assert spy, "the matrix-product route was not taken"
    with fused.enabled(False):
        reference = dist.log_prob(X)
    assert fast.shape == reference.shape == (3, 500)
    # elementwise, relative to each density's own size (none is near 0 here)
    assert float(((fast - reference).abs() / reference.abs()).max()) < 1e-10
    # and the closed-form densities of EM (themselves rounded at eps · offset / spread)
    em = params.component_log_prob(X)
    torch.testing.assert_close(fast.T, em, rtol=1e-10, atol=1e-10 * float(em.abs().max()))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prob_of_other_shapes_falls_back(covariance_type, spy):
    params = random_params(covariance_type, 2)
    X, labels = params.sample(40, seed=3)
    cov_type = params.cov_type
    reference = params.component_log_prob(X)  # (N, K)
    # sampled assignments: one component per point
    picked = cov_type.component_distribution(params.locs, params.native, labels)
    torch.testing.assert_close(picked.log_prob(X), reference.gather(1, labels[:, None])[:, 0])
    # one point under every component, and every component without an index
    whole = cov_type.component_distribution(params.locs, params.native)
    torch.testing.assert_close(whole.log_prob(X[0]), reference[0])
    torch.testing.assert_close(whole.log_prob(X[:, None, :]), reference)
    # a single point against the enumerated batch
    single = enumerated_distribution(params, 1)
    torch.testing.assert_close(single.log_prob(X[:1]), reference[:1].T)
    assert not spy
    # draws keep working
    draws = enumerated_distribution(params, 7).sample()
    assert draws.shape == (3, 7, 2)
    assert enumerated_distribution(params, 7).rsample((2,)).shape == (2, 3, 7, 2)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_expand_keeps_the_parameters_own_shape(covariance_type, spy):
    params = random_params(covariance_type, 3)
    X, _ = params.sample(60, seed=3)
    dist = enumerated_distribution(params, 60).expand((2, 3, 60))  # a further batch dimension
    with fused.enabled(False):
        reference = dist.log_prob(X)
    fast = dist.log_prob(X)
    assert spy and fast.shape == reference.shape == (2, 3, 60)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=0)


def test_wide_full_features_fall_back(spy):
    # P = (D + 1)(D + 2)/2 features per point against K·D = 20 entries: the term-by-term route
    params = random_params("full", 20, K=1)
    X, _ = params.sample(30, seed=3)
    dist = enumerated_distribution(params, 30)
    torch.testing.assert_close(dist.log_prob(X), params.component_log_prob(X).T)
    assert not spy


# -- the enumerated loss and its gradients ------------------------------------------------------
def loss_and_gradients(model: GaussianMixture, params: MixtureParams, X: torch.Tensor,
                       subsample_size: int | None = None, jit: bool = False, seed: int = 0, elbo=None):
    """Enumerated loss and its gradients with respect to the constrained and unconstrained globals.

    With ``jit`` the compiled graph takes the unconstrained parameters as inputs: the
    constrained gradients are then ``None``.
    """
    if elbo is None:
        elbo = (JitTraceEnum_ELBO(max_plate_nesting=1, ignore_jit_warnings=True) if jit
                else TraceEnum_ELBO(max_plate_nesting=1))
    with fresh_param_store():
        pyro.set_rng_seed(seed)
        program = lambda data: model.model(data, params, subsample_size=subsample_size)  # noqa: E731
        with poutine.trace(param_only=True) as capture:
            loss = elbo.differentiable_loss(program, empty_guide, X)
        names = list(model.global_sites)
        constrained = [capture.trace.nodes[name]["value"] for name in names]
        unconstrained = [value.unconstrained() for value in constrained]
        grads = torch.autograd.grad(loss, unconstrained if jit else constrained + unconstrained)
    if jit:
        return float(loss.detach()), dict.fromkeys(names), dict(zip(names, grads))
    n = len(names)
    return float(loss.detach()), dict(zip(names, grads[:n])), dict(zip(names, grads[n:]))


@pytest.mark.parametrize("subsample_size", [None, 64])
@pytest.mark.parametrize("D", [1, 2, 5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gradients_equal_the_parents(covariance_type, D, subsample_size, spy):
    truth = random_params(covariance_type, D, offset=40.0, spread=0.5, seed=D)
    X, _ = truth.sample(400, seed=4)
    model = GaussianMixture(3, covariance_type)
    start = perturbed(truth)
    loss, grads, raw = loss_and_gradients(model, start, X, subsample_size)
    assert spy
    with fused.enabled(False):
        ref_loss, ref_grads, ref_raw = loss_and_gradients(model, start, X, subsample_size)
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=0)
    if subsample_size is None:
        assert loss == pytest.approx(-float(start.log_prob(X).sum()), rel=1e-10, abs=0)
    for name in model.global_sites:
        assert relative(grads[name], ref_grads[name]) < 1e-8, name
        assert relative(raw[name], ref_raw[name]) < 1e-8, name
        assert ref_grads[name].abs().max() > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace's own notice
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_jit_traced_loss_and_gradients(covariance_type, spy):
    truth = random_params(covariance_type, 2, offset=5.0)
    X, _ = truth.sample(300, seed=4)
    model = GaussianMixture(3, covariance_type)
    start = perturbed(truth)
    with fused.enabled(False):
        ref_loss, _, ref_grads = loss_and_gradients(model, start, X)
    # as run_pyro does: constants the tracer records (Pyro's among them) in the data's dtype
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        elbo = JitTraceEnum_ELBO(max_plate_nesting=1, ignore_jit_warnings=True)
        compiled = [loss_and_gradients(model, start, X, jit=True, elbo=elbo) for _ in range(3)]
    finally:
        torch.set_default_dtype(previous)
    for loss, _, grads in compiled:  # the trace, then the profiling executor's optimized runs
        assert loss == pytest.approx(ref_loss, rel=1e-10, abs=0)
        for name in model.global_sites:
            assert relative(grads[name], ref_grads[name]) < 1e-8, name
    assert spy


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posterior_queries_use_it(covariance_type, spy):
    params = random_params(covariance_type, 3, offset=40.0)
    X, _ = params.sample(200, seed=4)
    model = GaussianMixture(3, covariance_type)
    torch.testing.assert_close(marginal_probabilities(model, params, X), params.responsibilities(X),
                               rtol=0, atol=1e-10)
    assert torch.equal(map_assignments(model, params, X), params.joint_log_prob(X).argmax(-1))
    assert spy


def test_blocked_program_is_unchanged(spy):
    params = random_params("full", 2)
    X, _ = params.sample(100, seed=4)
    model = GaussianMixture(3, "full")
    with fresh_param_store(), poutine.block():
        trace = poutine.trace(poutine.enum(model.model, first_available_dim=-2)).get_trace(X, params)
    trace.compute_log_prob()
    obs = trace.nodes["obs"]
    with fused.enabled(False):
        reference = obs["fn"].log_prob(X)
    torch.testing.assert_close(obs["log_prob"], reference, rtol=1e-12, atol=0)
    assert spy


# -- float32 --------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_accuracy(covariance_type):
    truth = random_params(covariance_type, 5, offset=40.0, spread=0.5)
    X64, _ = truth.sample(2000, seed=4)
    exact = enumerated_distribution(truth, 2000).log_prob(X64)
    single = truth.to(torch.float32)
    X32 = X64.float()
    fast = enumerated_distribution(single, 2000).log_prob(X32).double()
    with fused.enabled(False):
        parent = enumerated_distribution(single, 2000).log_prob(X32).double()
    # the float32 input itself is rounded: compare with the exact densities of the rounded data
    exact = enumerated_distribution(truth, 2000).log_prob(X32.double())
    error, parent_error = relative(fast, exact), relative(parent, exact)
    assert error < 2e-5 and error < 10 * parent_error + 1e-6


# -- the feature cache ------------------------------------------------------------------------
def test_features_are_kept_per_tensor_and_version_inside_a_fit_only():
    fused.clear_cache()
    X = torch.randn(50, 3, dtype=torch.float64)
    assert fused.features(X, "pairs")[1] is not fused.features(X, "pairs")[1]  # outside a fit
    assert not fused._cache
    with fused.keeping_features():
        shift, F = fused.features(X, "pairs")
        with fused.keeping_features():  # nested (NUTS inside a fit...): the same cache
            assert fused.features(X, "pairs")[1] is F
        assert fused.features(X, "pairs")[1] is F
        assert fused.features(X.clone(), "pairs")[1] is not F
        X.add_(1.0)  # in place: a new version
        shift2, F2 = fused.features(X, "pairs")
        assert F2 is not F
        torch.testing.assert_close(shift2, shift + 1.0)
        torch.testing.assert_close(F2, F, rtol=0, atol=1e-12)  # the same centred data
        del X
        gc.collect()
        assert "pairs" not in fused._cache
        Y = torch.randn(50, 3, dtype=torch.float64)
        fused.features(Y, "pairs")
        assert "pairs" in fused._cache
    assert not fused._cache  # the fit is over: nothing is left behind


def test_a_fit_leaves_no_features_behind():
    truth = random_params("full", 2)
    X, _ = truth.sample(300, seed=4)
    mixtures.fit(GaussianMixture(3, "full"), X, "map", init=perturbed(truth), num_steps=3)
    assert not fused._cache


def test_large_features_are_not_kept(monkeypatch):
    fused.clear_cache()
    monkeypatch.setattr(fused, "MAX_CACHED_BYTES", 1000)
    X = torch.randn(50, 3, dtype=torch.float64)  # 10 x 50 float64 features: 4000 bytes
    with fused.keeping_features():
        assert fused.features(X, "pairs")[1] is not fused.features(X, "pairs")[1]
        assert not fused._cache


def test_features_layout():
    X = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=torch.float64)
    shift, F = fused.features(X, "pairs")
    x = X - shift
    torch.testing.assert_close(shift, torch.tensor([2.0, 4.0], dtype=torch.float64))
    expected = torch.stack([torch.ones(2, dtype=torch.float64), x[:, 0], x[:, 1], x[:, 0] ** 2,
                            x[:, 0] * x[:, 1], x[:, 1] ** 2])
    torch.testing.assert_close(F, expected)
    torch.testing.assert_close(fused.features(X, "squares")[1][3:], x.T ** 2)
    torch.testing.assert_close(fused.features(X, "norm")[1][3], (x ** 2).sum(1))


def test_fits_agree_with_the_term_by_term_route():
    truth = random_params("full", 2)
    X, _ = truth.sample(300, seed=4)
    model = GaussianMixture(3, "full")
    start = perturbed(truth)
    fast = mixtures.fit(model, X, "map", init=start, num_steps=30, patience=None)
    with fused.enabled(False):
        slow = mixtures.fit(model, X, "map", init=start, num_steps=30, patience=None)
    torch.testing.assert_close(fast.params.locs, slow.params.locs, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(fast.params.native, slow.params.native, rtol=1e-8, atol=1e-10)
    assert get_structure("full").name == fast.params.covariance_type


@pytest.mark.parametrize("shape", [(2, 2), (3, 4, 4), (1, 1, 1)])
def test_inverse_tril_gradient_is_exact(shape):
    """The closed-form backward of ``inverse_tril`` (``-Wᵀ ∂W Wᵀ``, lower triangle) against finite
    differences, and the inverse against a solve."""
    from mixtures.families.gaussian.distributions import inverse_tril

    generator = torch.Generator().manual_seed(len(shape))
    A = torch.randn(*shape, generator=generator, dtype=torch.float64)
    L = torch.linalg.cholesky(A @ A.transpose(-1, -2) + torch.eye(shape[-1], dtype=torch.float64))
    torch.testing.assert_close(inverse_tril(L) @ L, torch.eye(shape[-1], dtype=torch.float64).expand_as(L))
    # a perturbation of the lower triangle only (the factor's free entries)
    assert torch.autograd.gradcheck(lambda x: inverse_tril(x.tril()), (L.clone().requires_grad_(),))
