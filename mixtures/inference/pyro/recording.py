"""Pyro's NUTS recording, at every iteration, the Hamiltonian and the number of leapfrog steps.

ArviZ's ``sample_stats`` ``energy`` (for ``az.bfmi`` and ``az.plot_energy``) and ``n_steps``
are not kept by Pyro's kernel. :class:`RecordingNUTS` is Pyro's ``NUTS`` unchanged but for two
attributes read after each ``sample`` call (e.g. by ``MCMC``'s ``hook_fn``):

``energy``
    ``H = U(q) + K(p) = U(q) + ½ pᵀ M⁻¹ p`` at the start of the iteration's trajectory: ``q``
    the state the iteration starts from (the previous draw) and ``p ~ N(0, M)`` the momentum
    just drawn. This is the energy the momentum resampling leaves the chain at, which is what
    the energy Bayesian fraction of missing information measures (Betancourt 2016, §6.1:
    E-BFMI compares the spread of the energy changes between iterations with the energy's
    marginal spread). Stan's ``energy__`` is the Hamiltonian at the selected point of the same
    trajectory; the two differ by the integrator's energy error along it (the slice keeps it
    small), and Pyro does not keep the selected point's momentum.
``n_steps``
    potential-and-gradient evaluations of the iteration (``2^depth - 1`` leapfrog steps for a
    full tree; ``max_tree_depth = 10`` caps it at 1023).

``start_variances`` (set before ``setup``, e.g. by
:func:`mixtures.inference.pyro.potential.curvature_variances`): the inverse mass matrix warmup starts
from, instead of the identity (a dense block starts diagonal), with the step size searched again
under it. Pyro's windowed adaptation keeps it through the first window (75 iterations by default)
and then estimates it from the draws as usual; a start on the posterior's scales saves that window
the full-depth trees the identity gives when the coordinates' scales differ by orders of magnitude.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.infer import NUTS
from torch import Tensor

__all__ = ["RecordingNUTS"]


class _Counted:
    """A potential function counting its calls."""

    def __init__(self, function: Any):
        self.function, self.calls = function, 0

    def __call__(self, params: Any) -> Any:
        self.calls += 1
        return self.function(params)


class RecordingNUTS(NUTS):
    """``pyro.infer.NUTS`` with ``energy``, ``n_steps`` (module docstring) and ``momentum`` (the
    iteration's ``p``, by mass-matrix group, for checking ``energy``) after each ``sample`` call."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.energy, self.n_steps, self.momentum = math.nan, 0, None
        self.start_variances: dict[str, Tensor] | None = None
        self._counted: _Counted | None = None

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        super().setup(warmup_steps, *args, **kwargs)  # a program's potential is built here
        if not isinstance(self.potential_fn, _Counted):
            self.potential_fn = _Counted(self.potential_fn)
        self._counted = self.potential_fn
        if self.start_variances is not None and self.initial_params:
            self._start_mass_matrix(self.start_variances)

    def _start_mass_matrix(self, variances: dict[str, Tensor]) -> None:
        adapter = self.mass_matrix_adapter
        start = {}
        for group, matrix in adapter.inverse_mass_matrix.items():
            diagonal = torch.cat([variances[name].reshape(-1) for name in group]).to(matrix)
            start[group] = diagonal if matrix.dim() == 1 else torch.diag(diagonal)
        adapter.inverse_mass_matrix = start
        self._adapter.reset_step_size_adaptation(self._initial_params)

    def _sample_r(self, name: str) -> Any:
        r, r_unscaled = super()._sample_r(name)
        # the iteration's start: the cached potential energy is U(q) of the state it starts from
        self.energy = float(self._potential_energy_last + self._kinetic_energy(r_unscaled))
        self.momentum = r
        return r, r_unscaled

    def sample(self, params: Any) -> Any:
        before = self._counted.calls if self._counted is not None else 0
        result = super().sample(params)
        self.n_steps = (self._counted.calls if self._counted is not None else 0) - before
        return result
