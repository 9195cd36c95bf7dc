"""Questions answered by a family's Pyro program at fixed parameters, for any family.

* :func:`map_assignments`: the most probable component of every point, by Pyro's
  max-product ``infer_discrete(temperature=0)``;
* :func:`sample_assignments`: one draw of every assignment, ``infer_discrete(temperature=1)``;
* :func:`marginal_probabilities`: ``p(z_n = k | x_n, θ)`` from
  ``TraceEnum_ELBO.compute_marginals``.

Each runs the model's program with its globals fixed at the parameters
(:meth:`~mixtures.core.family.MixtureFamily.program_at`), against a fresh parameter
store and without touching torch's global random state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from pyro.infer import TraceEnum_ELBO, infer_discrete
from torch import Tensor

from mixtures.core.family import ASSIGNMENT, MAX_PLATE_NESTING, MixtureFamily
from mixtures.core.params import Params


@contextlib.contextmanager
def seeded_rng(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global RNG (Pyro samples from it) and restore it afterwards."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is None:
            torch.seed()
        else:
            torch.manual_seed(int(seed))
        yield


def empty_guide(*args: Any, **kwargs: Any) -> None:
    """A guide with no sample sites: every global is a ``pyro.param`` of the model."""


def _single_component(X: Tensor) -> Tensor:
    """Labels ``(N,)`` of a one-component mixture. Pyro does not enumerate a site with a
    single value (``infer_discrete`` then returns one label for the whole plate)."""
    return torch.zeros(X.shape[0], dtype=torch.long, device=X.device)


def map_assignments(model: MixtureFamily, params: Params, X: Any) -> Tensor:
    """Most probable component of every point, by max-product ``infer_discrete``: ``(N,)`` long.

    Equals ``argmax_k p(z_n = k | x_n, θ)``.
    """
    X = params._data(X)
    if model.n_components == 1:
        return _single_component(X)
    with model.program_at(params) as program, torch.no_grad():
        decoder = infer_discrete(program, first_available_dim=-1 - MAX_PLATE_NESTING, temperature=0)
        return decoder(X).reshape(-1).long()


def sample_assignments(model: MixtureFamily, params: Params, X: Any, seed: int | None = 0) -> Tensor:
    """One draw of every ``z_n ~ p(z_n | x_n, θ)`` by ``infer_discrete(temperature=1)``: ``(N,)``.

    Reproducible for a given ``seed`` (torch's global RNG is forked, not consumed).
    """
    X = params._data(X)
    if model.n_components == 1:
        return _single_component(X)
    with model.program_at(params) as program, torch.no_grad(), seeded_rng(seed, X.device):
        sampler = infer_discrete(program, first_available_dim=-1 - MAX_PLATE_NESTING, temperature=1)
        return sampler(X).reshape(-1).long()


def marginal_probabilities(model: MixtureFamily, params: Params, X: Any) -> Tensor:
    """Posterior membership probabilities ``p(z_n = k | x_n, θ)``: ``(N, K)``.

    From ``TraceEnum_ELBO(max_plate_nesting=1).compute_marginals`` on the program (the
    same numbers as ``params.responsibilities``, by another road).
    """
    X = params._data(X)
    if model.n_components == 1:
        return torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    n = X.shape[0]
    if n == 1:
        # compute_marginals fails on a plate of size 1 (pyro-ppl/pyro#3102, a KeyError in the
        # contraction); points are independent given θ, so a duplicate row changes nothing.
        X = X.expand(2, -1)
    with model.program_at(params) as program, torch.no_grad():
        elbo = TraceEnum_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
        marginal = elbo.compute_marginals(program, empty_guide, X)[ASSIGNMENT]
        return marginal.probs.reshape(X.shape[0], model.n_components)[:n]
