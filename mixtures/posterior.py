"""``Posterior``: a distribution over a mixture's parameters, as draws.

Bayesian routines (VB, SVI with a distributional guide, NUTS) attach one to
their :class:`~mixtures.result.FitResult` as ``result.posterior``. It is held as
``S`` draws of the parameters (exact draws from a variational distribution, or
MCMC samples after relabelling), which serves every summary uniformly:
posterior means, credible intervals, the posterior predictive density and the
number of components in use. Routines with an analytic posterior also keep it
in ``distribution`` (any object; e.g. the variational parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixtures.covariance import CovarianceType
from mixtures.params import MixtureParams
from mixtures.validation import as_data


@dataclass
class Posterior:
    """``S`` posterior draws of the parameters.

    Attributes:
        weights: ``(S, K)``. locs: ``(S, K, D)``. native: ``(S, *native_shape)``
            (Cholesky factors or variances, see :mod:`mixtures.covariance`).
        cov_type: the covariance type of the draws.
        kind: how the draws were made (``"variational"``, ``"mcmc"``).
        distribution: an analytic description when there is one (routine-specific).
        diagnostics: e.g. ``r_hat`` and ``ess`` per site for MCMC.
    """

    weights: Tensor
    locs: Tensor
    native: Tensor
    cov_type: CovarianceType
    kind: str
    distribution: Any = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def n_draws(self) -> int:
        return self.weights.shape[0]

    def draw(self, index: int) -> MixtureParams:
        """Draw ``index`` as :class:`MixtureParams`."""
        return MixtureParams.from_native(self.weights[index], self.locs[index], self.native[index],
                                         self.cov_type, validate=False)

    @property
    def covariances(self) -> Tensor:
        """Full covariance matrices of every draw ``(S, K, D, D)``."""
        K, D = self.locs.shape[-2:]
        return torch.stack([self.cov_type.to_full(n, K, D) for n in self.native])

    def mean(self) -> dict[str, Tensor]:
        """Posterior means of ``weights`` ``(K,)``, ``locs`` ``(K, D)``, ``covariances`` ``(K, D, D)``."""
        return {"weights": self.weights.mean(0), "locs": self.locs.mean(0),
                "covariances": self.covariances.mean(0)}

    def mean_params(self) -> MixtureParams:
        """The posterior means as a mixture (for log-likelihood traces and predictions)."""
        weights = self.weights.mean(0)
        return MixtureParams.from_native(weights / weights.sum(), self.locs.mean(0), _mean_native(self),
                                         self.cov_type, validate=False)

    def credible_interval(self, level: float = 0.9) -> dict[str, tuple[Tensor, Tensor]]:
        """Equal-tailed intervals of ``weights``, ``locs`` and ``covariances`` (elementwise)."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1); got {level}.")
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=self.weights.dtype)
        out = {}
        for name, values in (("weights", self.weights), ("locs", self.locs), ("covariances", self.covariances)):
            low, high = torch.quantile(values, q.to(values.device), dim=0)
            out[name] = (low, high)
        return out

    def predictive_log_prob(self, X: Any) -> Tensor:
        """Posterior predictive ``log p(x | data) ≈ log mean_s p(x | θ_s)`` for every point ``(N,)``."""
        X = as_data(X, dtype=self.weights.dtype, device=self.weights.device, min_points=0)
        log_probs = torch.stack([self.draw(s).log_prob(X) for s in range(self.n_draws)])
        return torch.logsumexp(log_probs, 0) - math.log(self.n_draws)

    def components_in_use(self, threshold: float = 0.01) -> Tensor:
        """Posterior draws of the number of components with weight above ``threshold`` ``(S,)``."""
        return (self.weights > threshold).sum(-1)

    def expected_components(self, threshold: float = 0.01) -> float:
        """Posterior mean number of components with weight above ``threshold``."""
        return float(self.components_in_use(threshold).double().mean())


def _mean_native(posterior: Posterior) -> Tensor:
    """Native form of the mean covariance (Cholesky of the mean matrix, or mean variances)."""
    if posterior.cov_type.site == "variances":
        return posterior.native.mean(0)
    mean_cov = (posterior.native @ posterior.native.transpose(-1, -2)).mean(0)
    return torch.linalg.cholesky(mean_cov)
