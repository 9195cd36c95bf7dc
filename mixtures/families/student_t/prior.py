"""``StudentTPrior``: the Gaussian family's prior on weights, locations and scale matrices, and a Gamma prior on ν.

Every field of :class:`~mixtures.families.gaussian.priors.GaussianPrior` means what it means
there (conjugate Normal–Wishart or non-conjugate LKJ/scales, declared by the covariance
structure; for a t the "covariance" sites are the scale matrices ``Σ_k``), plus

    ν_k ~ Gamma(dof_shape, rate=dof_rate)         (site ``"dof"``: one per component, or one shared)

with Juárez & Steel's (2010) default ``Gamma(2, 0.1)`` (mean 20, mode 10): it keeps ν away from
0 and lets the data decide between heavy tails and a nearly Gaussian component.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pyro.distributions as pdist
from torch import Tensor

from mixtures.families.gaussian.priors import GaussianPrior, ResolvedPrior


@dataclass(frozen=True)
class StudentTPrior(GaussianPrior):
    """A :class:`GaussianPrior` plus ``ν ~ Gamma(dof_shape, dof_rate)`` (module docstring)."""

    dof_shape: float = 2.0
    dof_rate: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        for name in ("dof_shape", "dof_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number; got {value!r}.")

    @classmethod
    def from_gaussian(cls, prior: GaussianPrior, **dof_fields: Any) -> StudentTPrior:
        """The t prior with ``prior``'s fields (and the given ``dof_shape``/``dof_rate``)."""
        return cls(**{f.name: getattr(prior, f.name) for f in fields(GaussianPrior)}, **dof_fields)

    def resolve(self, X: Tensor, model: Any, covariance_type: Any = None) -> ResolvedStudentTPrior:
        """The Gaussian part resolved on ``X`` ``(N, D)`` (its defaults), and the Gamma's parameters as tensors."""
        gaussian = super().resolve(X, model, covariance_type)
        values = {f.name: getattr(gaussian, f.name) for f in fields(ResolvedPrior)}
        return ResolvedStudentTPrior(**values, dof_shape=X.new_tensor(float(self.dof_shape)),
                                     dof_rate=X.new_tensor(float(self.dof_rate)))


@dataclass(frozen=True)
class ResolvedStudentTPrior(ResolvedPrior):
    """A resolved Gaussian prior (what the covariance structures declare from) with ν's Gamma."""

    dof_shape: Tensor = None
    dof_rate: Tensor = None

    def dof_distribution(self) -> Any:
        return pdist.Gamma(self.dof_shape, self.dof_rate)
