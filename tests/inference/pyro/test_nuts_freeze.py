"""NUTS with frozen groups: the program conditioned on their prior sites; the draws hold them exactly."""

import pytest
import torch
from pyro import poutine
from pyro.infer.mcmc.util import initialize_model

import mixtures
from mixtures import GaussianMixture, GaussianPrior
from mixtures.core.family import MAX_PLATE_NESTING
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.nuts import held_sites, make_kernel, site_transforms
from mixtures.init import initialize

from conftest import true_params

pytestmark = pytest.mark.filterwarnings("ignore:Singular sample detected")


def problem(covariance_type="full", kind="conjugate"):
    X, _ = true_params("full").sample(120, seed=3)
    model = GaussianMixture(3, covariance_type, prior=GaussianPrior(kind=kind))
    return model, X, initialize(model, X, "kmeans++", seed=0)


@pytest.mark.parametrize("kind", ["conjugate", "nonconjugate"])
@pytest.mark.parametrize("groups", [("weights",), ("means",), ("covariances",), ("weights", "covariances")])
def test_potential_is_the_log_joint_of_the_conditioned_program(groups, kind):
    model, X, init = problem(kind=kind)
    held = held_sites(model, init, groups)
    transforms = site_transforms(model, X, init, tuple(held))
    assert set(transforms).isdisjoint(held) and held
    kernel = make_kernel(model, X, init, held=held)
    assert isinstance(kernel.potential_fn, potential.CollapsedPotential)
    start = {name: transforms[name](value) for name, value in model.site_values(init).items() if name not in held}
    _, reference, _, _ = initialize_model(poutine.condition(model.model, data=held), model_args=(X,),
                                          max_plate_nesting=MAX_PLATE_NESTING, transforms=transforms,
                                          initial_params=start)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        point = {name: (value + 0.2 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
                        ).requires_grad_() for name, value in start.items()}
        expected, value = reference(point), kernel.potential_fn(point)
        assert abs(float(value.detach()) - float(expected.detach())) <= 1e-10 * abs(float(expected.detach()))
        scale = max(float(g.abs().max()) for g in torch.autograd.grad(expected, list(point.values())))
        for got, want in zip(torch.autograd.grad(value, list(point.values())),
                             torch.autograd.grad(reference(point), list(point.values()))):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("groups", [("means",), ("weights", "covariances")])
def test_frozen_draws_are_the_given_values(groups):
    model, X, init = problem()
    result = mixtures.fit(model, X, "nuts", init=init, freeze=groups, num_chains=1, warmup=10, num_samples=4,
                          warn=False, seed=2)
    draws = result.posterior.draws
    for group, name in (("weights", "weights"), ("means", "locs"), ("covariances", "native")):
        held = getattr(init, name)
        assert torch.equal(getattr(draws, name), held.expand_as(getattr(draws, name))) == (group in groups)
        assert torch.equal(getattr(result.params, name), held) == (group in groups)
    assert not set(result.extras["samples"]) & set(held_sites(model, init, groups))  # no mixing to measure
    assert torch.equal(result.extras["relabel_permutations"], torch.arange(3).expand(4, 3))
