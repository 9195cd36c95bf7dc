"""NUTS's fused potential equals Pyro's potential of the program, value and gradient, to 1e-10.

Pyro's reference is ``initialize_model(model.model, ...)``'s potential (the program traced at
every call, the enumerated assignment contracted by ``TraceEinsumEvaluator``), with the same
transforms to unconstrained space. Points: the start moved by random unconstrained noise.
"""

import pytest
import torch
from pyro.infer.mcmc.util import initialize_model

import mixtures
from mixtures import GaussianMixture, GaussianPrior, PoissonMixture, PoissonParams, PoissonPrior
from mixtures.core.family import MAX_PLATE_NESTING
from mixtures.errors import DivergenceError
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.nuts import make_kernel, site_transforms
from mixtures.init import initialize

from conftest import COVARIANCE_TYPES, true_params

# initialize_model traces the program once from the prior (a Wishart draw may be near-singular)
pytestmark = pytest.mark.filterwarnings("ignore:Singular sample detected")


def compare(model, X, init, n_points=3, seed=0, rtol=1e-10):
    transforms = site_transforms(model, X, init)
    fused = potential.CollapsedPotential(model, X, transforms)
    start = {name: transforms[name](value) for name, value in model.site_values(init).items()}
    _, reference, _, _ = initialize_model(model.model, model_args=(X,), max_plate_nesting=MAX_PLATE_NESTING,
                                          transforms=transforms, initial_params=start)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_points):
        point = {name: (value + 0.2 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
                        ).requires_grad_() for name, value in start.items()}
        expected = reference(point)
        expected_grads = torch.autograd.grad(expected, list(point.values()))
        value = fused(point)
        grads = torch.autograd.grad(value, list(point.values()))
        value, expected = float(value.detach()), float(expected.detach())
        assert abs(value - expected) <= rtol * abs(expected), (value, expected)
        scale = max(float(g.abs().max()) for g in expected_grads)
        assert scale > 0
        for name, got, want in zip(point, grads, expected_grads):
            torch.testing.assert_close(got, want, rtol=0, atol=rtol * scale,
                                       msg=lambda m, name=name: f"{name}: {m}")


def gaussian(covariance_type, D=2, **prior):
    X, _ = true_params(covariance_type if D == 2 else "full").sample(300, seed=3)
    X = X[:, :D] + 10.0
    model = GaussianMixture(3, covariance_type, prior=GaussianPrior(**prior))
    init = initialize(model, X, "kmeans++", seed=0)
    return model, X, init


@pytest.mark.parametrize("kind", ["conjugate", "nonconjugate"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_potential_and_gradient(covariance_type, kind):
    compare(*gaussian(covariance_type, kind=kind))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_one_dimension_and_stick_breaking(covariance_type):
    compare(*gaussian(covariance_type, D=1))
    compare(*gaussian(covariance_type, weight_prior="dirichlet_process", weight_concentration=0.7))


def test_poisson_potential_and_gradient():
    X, _ = PoissonParams([0.4, 0.6], [[3.0, 9.0], [10.0, 1.0]]).sample(250, seed=1)
    model = PoissonMixture(2, prior=PoissonPrior())
    compare(model, X, initialize(model, X, "kmeans++", seed=0))


def test_nuts_uses_it_and_samples_the_posterior():
    model, X, init = gaussian("diag")
    kernel = make_kernel(model, X, init)
    assert isinstance(kernel.potential_fn, potential.CollapsedPotential)
    with potential.enabled(False):
        assert kernel.potential_fn is not None and make_kernel(model, X, init).potential_fn is None
    result = mixtures.fit(model, X, "nuts", init=init, warmup=100, num_samples=100, seed=1)
    # data: three well-separated clusters shifted by 10: the posterior means sit on the EM fit
    em = mixtures.fit(GaussianMixture(3, "diag"), X, "em", init=init)
    assert result.posterior.diagnostics["num_divergences"] == 0
    order = torch.cdist(result.params.locs, em.params.locs).argmin(-1)
    torch.testing.assert_close(result.params.locs, em.params.locs[order], rtol=0, atol=0.2)


@pytest.mark.parametrize("fused", [True, False])
def test_a_start_without_finite_density_is_refused_naming_what(fused):
    # issue #13: the message used to blame "badly scaled data / float32" whatever the cause;
    # it names the non-finite term (both potentials: the fused one and Pyro's program)
    model, X, init = gaussian("diag")
    far = init.replace(locs=init.locs + 1e200)
    dead = init.replace(weights=torch.tensor([0.0, 0.5, 0.5], dtype=X.dtype))
    with potential.enabled(fused):
        with pytest.raises(DivergenceError, match=r"at the start, the log-likelihood of 300 of 300 points is not "
                                                  r"finite \(point 0: -inf\): no component"):
            make_kernel(model, X, far)
        with pytest.raises(DivergenceError, match=r"at the start, site 'weights' is on the boundary of its "
                                                  r"support.*a weight of 0"):
            make_kernel(model, X, dead)


def test_a_start_with_a_nonfinite_gradient_names_the_site(monkeypatch):
    # finite prior and likelihood, a NaN gradient: the site whose gradient it is is named
    model, X, init = gaussian("diag")
    call = potential.CollapsedPotential.__call__

    def nan_gradient_for_locs(self, unconstrained):
        locs = unconstrained["locs"]
        return call(self, unconstrained) + (locs - locs.detach()).sqrt().sum() * 0.0  # d/dlocs: nan
    monkeypatch.setattr(potential.CollapsedPotential, "__call__", nan_gradient_for_locs)
    with pytest.raises(DivergenceError, match=r"gradient of the potential energy with respect to 'locs' is not "
                                              r"finite"):
        make_kernel(model, X, init)
