"""A one-component mixture's weight is 1 in every draw: not a chain that did not move."""

import torch

import mixtures
from mixtures.inference.pyro.labels import invariant_quantities
from mixtures.inference.pyro.nuts import _fixed_entries
from mixtures.inference.pyro.sampler_checks import mixing_problems


def test_constant_weight_of_one_component_is_fixed_by_construction():
    assert bool(_fixed_entries("weights", torch.Size([1]), torch.device("cpu")).all())
    assert not bool(_fixed_entries("weights", torch.Size([2]), torch.device("cpu")).any())
    r_hat = {"weights": torch.tensor([float("nan")])}
    fixed = {"weights": _fixed_entries("weights", torch.Size([1]), torch.device("cpu"))}
    assert mixing_problems(r_hat, {}, {}, fixed, num_chains=2) == []
    assert mixing_problems(r_hat, {}, {}, {}, num_chains=2)  # a site free to vary that never changed


def test_no_sorted_weights_invariant_for_one_component():
    params = mixtures.MixtureParams(torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64),
                                    torch.eye(2, dtype=torch.float64)[None], "full")
    draws = type(params).stack([params] * 4)
    X = torch.randn(10, 2, dtype=torch.float64)
    invariants, _ = invariant_quantities(draws, X, torch.arange(4, dtype=torch.float64), num_chains=2)
    assert "sorted_weights" not in invariants and invariants["log_likelihood"].shape == (2, 2)
