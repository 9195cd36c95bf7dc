"""The fast path of MAP and SVI equals ``TraceEnum_ELBO`` on the program: loss and every gradient.

Each case builds what ``mixtures.inference.pyro.common.optimize`` builds (fresh parameter store,
the program, the global and local guides), moves every unconstrained parameter to a random point,
and evaluates ``loss_and_grads`` twice from the same RNG state: Pyro's ``TraceEnum_ELBO`` on the
program (assignments enumerated) and :class:`FusedEnumELBO` (one fused pass). float64: 1e-10.
"""

import pyro
import pyro.poutine as poutine
import pytest
import torch
from torch.distributions import constraints

import mixtures
from mixtures import GaussianMixture, GaussianPrior, PoissonMixture, PoissonParams, PoissonPrior
from mixtures.core.family import MAX_PLATE_NESTING, fresh_param_store
from mixtures.inference.pyro import fused_elbo
from mixtures.inference.pyro.guides import choose_global_guide, combine_guides, floored_probabilities, mean_field_guide
from mixtures.init import initialize
from mixtures.kernels import fused_pass

from conftest import COVARIANCE_TYPES, true_params


def _evaluate(elbo, program, guide, X, seed):
    """``(loss, {parameter name: gradient})`` of one ``loss_and_grads`` from RNG state ``seed``."""
    pyro.set_rng_seed(seed)
    with poutine.trace(param_only=True) as capture:
        loss = elbo.loss_and_grads(program, guide, X)
    used = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
    used.update(getattr(elbo, "direct_params", {}))  # the fused path reads the mean-field logits from the store
    grads = {}
    for name, unconstrained in used.items():
        grads[name] = torch.zeros_like(unconstrained) if unconstrained.grad is None else unconstrained.grad.clone()
        unconstrained.grad = None
    return loss, grads


def compare(model, X, init, *, guide="delta", local_guide="enumerate", subsample_size=None, num_particles=1,
            seed=0, rtol=1e-10, edit=None, gradients=False):
    """Assert the fused ELBO's loss and gradients equal TraceEnum_ELBO's at a random point (moved by
    ``edit(unconstrained tensors)`` after; ``gradients=True``: return both gradients instead)."""
    def program(data):
        return model.model(data, subsample_size=subsample_size)

    with fresh_param_store():
        if model.prior is None:
            model.globals(init)
        global_guide = choose_global_guide(model, guide, program, init)
        local = initial_probs = None
        if local_guide == "mean_field":
            initial_probs = floored_probabilities(init.responsibilities(X))
            local = mean_field_guide(X.shape[0], initial_probs, subsample_size, enumerate_assignments=True)
        full_guide = combine_guides(global_guide, local)
        pyro.set_rng_seed(123)
        full_guide(X)  # autoguides set up (their prototype trace) before either evaluation
        generator = torch.Generator().manual_seed(seed)
        store = pyro.get_param_store()
        for name in list(store.keys()):  # a random point, not the start
            unconstrained = store._params[name]
            with torch.no_grad():
                unconstrained.add_(0.3 * torch.randn(unconstrained.shape, generator=generator,
                                                     dtype=unconstrained.dtype))
        if edit is not None:  # the case's own changes to the point (unconstrained tensors, in place)
            with torch.no_grad():
                edit(store._params)
        reference = pyro.infer.TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=MAX_PLATE_NESTING)
        fused = fused_elbo.FusedEnumELBO(model, X, global_guide=global_guide, num_particles=num_particles,
                                         subsample_size=subsample_size, mean_field_probs=initial_probs)
        loss, grads = _evaluate(reference, program, full_guide, X, seed)
        fast_loss, fast_grads = _evaluate(fused, program, full_guide, X, seed)
    if gradients:
        return fast_grads, grads
    assert abs(fast_loss - loss) <= rtol * abs(loss), (fast_loss, loss)
    assert set(fast_grads) == set(grads)
    for name, grad in grads.items():
        assert grad.abs().max() > 0 or name == "assignment_probs", name  # a gradient that is there
        scale = grad.abs().max()
        torch.testing.assert_close(fast_grads[name], grad, rtol=0, atol=rtol * float(scale) + 1e-300,
                                   msg=lambda m, name=name: f"{name}: {m}")
    return loss


def gaussian_setup(covariance_type, prior=None, n=600, seed=5):
    X, _ = true_params(covariance_type).sample(n, seed=seed)
    X = X + torch.tensor([30.0, -20.0], dtype=torch.float64)  # away from the origin: the shift matters
    model = GaussianMixture(3, covariance_type, prior=prior)
    init = initialize(GaussianMixture(3, covariance_type), X, "kmeans++", seed=1)
    return model, X, init


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_without_prior(covariance_type):
    model, X, init = gaussian_setup(covariance_type)
    loss = compare(model, X, init)
    with fresh_param_store():  # the loss is -log p(X | θ) at the moved point: a real number
        assert loss > 0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_with_conjugate_prior(covariance_type):
    model, X, init = gaussian_setup(covariance_type, GaussianPrior())
    compare(model, X, init)


@pytest.mark.parametrize("prior", [GaussianPrior(kind="nonconjugate"),
                                   GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.5)])
def test_other_priors(prior):
    model, X, init = gaussian_setup("full", prior)
    compare(model, X, init)


@pytest.mark.parametrize("guide", ["normal", "mvn"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_distributional_guides_same_draws(guide, covariance_type):
    model, X, init = gaussian_setup(covariance_type, GaussianPrior())
    compare(model, X, init, guide=guide, num_particles=2)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_mean_field_guide(covariance_type):
    model, X, init = gaussian_setup(covariance_type)
    compare(model, X, init, local_guide="mean_field")


def _saturate(params):
    """Mean-field logits where the Categorical's clamp of q to [eps, 1 - eps] is active: rows with one
    component at q ≈ 1 (> 1 - eps) and the others below eps, rows with a few tiny entries only."""
    logits = params["assignment_probs"]
    logits[:40] = torch.tensor([60.0, 0.0, 0.0], dtype=logits.dtype)  # q = (1 - 2e-26, 1e-26, 1e-26)
    logits[300:340, 1] -= 45.0  # q_1 ≈ 1e-20 < eps, the rest unclamped
    logits[500:510, 2] -= 800.0  # q_2 underflows to 0 (exp of -800): still the clamp's eps


def test_mean_field_clamped_entries_across_chunks(monkeypatch):
    """The fused mean-field term (softmax, clamp and the chain rule through both, chunk by chunk)
    against TraceEnum_ELBO on the program: chunks of 256 points (3 chunks), clamped q in some."""
    monkeypatch.setattr(fused_pass, "FUSED_CHUNK_BYTES", 1)  # the minimum chunk, 256 points
    model, X, init = gaussian_setup("full")
    compare(model, X, init, local_guide="mean_field", edit=_saturate)
    compare(model, X, init, local_guide="mean_field", edit=_saturate, subsample_size=300, seed=6)
    # a clamped entry's gradient is 0 (q ≈ 1 rows: all of it) or -q Σ q g over the others: entry by entry
    grads = compare(model, X, init, local_guide="mean_field", edit=_saturate, gradients=True)
    (fast, reference) = (grads[0]["assignment_probs"], grads[1]["assignment_probs"])
    assert (reference[:40] == 0).all() and (fast[:40] == 0).all()
    torch.testing.assert_close(fast[300:340, 1], reference[300:340, 1], rtol=1e-8, atol=1e-300)
    assert (reference[500:510, 2] == 0).all() and (fast[500:510, 2] == 0).all()  # q = 0: no gradient


def test_mean_field_clamped_q_weighs_a_far_component():
    """The clamp's eps, not q itself, weighs a component where every q is below it, and log eps is
    its log q: with that component 10⁴ away (log density ~-5e7) and its logits 1e8 below, eps·(C F)
    and eps·log q are visible in the loss (~4e-9 and ~7e-9 relative)."""
    def far(params):
        params["locs"][2] += 1e4
        params["assignment_probs"][:, 2] -= 1e8

    model, X, init = gaussian_setup("full")
    compare(model, X, init, local_guide="mean_field", edit=far)


def test_mean_field_weighted_equals_repeated_rows():
    """Integer point weights in the fused mean-field term are the rows repeated (loss, globals'
    gradients; each weighted row's logits gradient is the sum of its copies')."""
    model, X, init = gaussian_setup("diag", n=200)
    weights = torch.arange(200, dtype=torch.float64).remainder(3)  # 0, 1, 2: dropped, once, twice
    repeated = X.repeat_interleave(weights.long(), dim=0)
    probs = floored_probabilities(init.responsibilities(X))
    logits = probs.log() + 0.3 * torch.randn(probs.shape, generator=torch.Generator().manual_seed(0),
                                             dtype=probs.dtype)
    results = []
    for data, w, u in ((X, weights, logits), (repeated, None, logits.repeat_interleave(weights.long(), dim=0))):
        with fresh_param_store():
            model.globals(init)
            elbo = fused_elbo.FusedEnumELBO(model, data, mean_field_probs=probs, sample_weight=w)
            pyro.param("assignment_probs", torch.softmax(u, -1), constraint=constraints.simplex)
            loss, grads = _evaluate(elbo, None, None, data, 0)
        results.append((loss, grads))
    (loss, grads), (reference_loss, reference) = results
    assert abs(loss - reference_loss) <= 1e-12 * abs(reference_loss)
    for name in ("weights", "locs", "variances"):
        scale = float(reference[name].abs().max())
        torch.testing.assert_close(grads[name], reference[name], rtol=1e-11, atol=1e-11 * scale)
    summed = torch.zeros_like(grads["assignment_probs"]).index_add_(
        0, torch.arange(200).repeat_interleave(weights.long()), reference["assignment_probs"])
    torch.testing.assert_close(grads["assignment_probs"], summed, rtol=0, atol=1e-12)


@pytest.mark.parametrize("local_guide", ["enumerate", "mean_field"])
def test_minibatches_same_rows(local_guide):
    model, X, init = gaussian_setup("full")
    compare(model, X, init, local_guide=local_guide, subsample_size=97, seed=3)


def test_minibatch_mean_field_with_prior_and_normal_guide():
    model, X, init = gaussian_setup("diag", GaussianPrior())
    compare(model, X, init, guide="normal", local_guide="mean_field", subsample_size=50, seed=4)


def poisson_setup(prior=None):
    truth = PoissonParams([0.3, 0.7], [[2.0, 10.0, 0.5], [8.0, 1.0, 3.0]])
    X, _ = truth.sample(500, seed=0)
    model = PoissonMixture(2, prior=prior)
    init = initialize(PoissonMixture(2), X, "kmeans++", seed=1)
    return model, X, init


@pytest.mark.parametrize("prior", [None, PoissonPrior()])
def test_poisson_family_gets_the_fast_path(prior):
    model, X, init = poisson_setup(prior)
    compare(model, X, init)
    compare(model, X, init, local_guide="mean_field", subsample_size=64, seed=2)


def test_float32_close():
    model, X, init = gaussian_setup("full")
    compare(model, X.float(), init.to(torch.float32), rtol=2e-5)


def test_fits_use_the_fast_path_and_follow_the_program():
    """A MAP fit takes the fused path, and its whole trajectory is the program's (to rounding)."""
    model, X, init = gaussian_setup("full")
    assert fused_elbo.applies(model, init, X, guide="delta", local_guide="enumerate", local_estimator="enumerate",
                              jit=False, validate=False)
    assert not fused_elbo.applies(model, init, X, guide="delta", local_guide="mean_field", local_estimator="sample",
                                  jit=False, validate=False)
    fast = mixtures.fit(model, X, "map", init=init, num_steps=30, patience=None)
    with fused_elbo.enabled(False):
        slow = mixtures.fit(model, X, "map", init=init, num_steps=30, patience=None)
    torch.testing.assert_close(torch.as_tensor(fast.history["loss"]), torch.as_tensor(slow.history["loss"]),
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(fast.params.locs, slow.params.locs, rtol=1e-9, atol=0)
