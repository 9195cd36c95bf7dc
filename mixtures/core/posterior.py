"""``Posterior``: a distribution over a mixture's parameters, as draws.

Bayesian routines (VB, SVI with a distributional guide, NUTS) attach one to their
:class:`~mixtures.core.result.FitResult` as ``result.posterior``. It is held as ``S``
draws of the parameters (exact draws from a variational distribution, or MCMC samples
after relabelling): the family's own parameter container with a leading draw dimension
``S`` on every tensor (:meth:`~mixtures.core.params.Params.stack`). That serves every
summary uniformly, for every family: posterior means, credible intervals, the posterior
predictive density and the number of components in use. Routines with an analytic
posterior also keep it in ``distribution`` (e.g. the variational parameters).

The draws' tensors read as attributes: ``posterior.weights`` ``(S, K)`` and, for a
Gaussian mixture, ``posterior.locs`` ``(S, K, D)``, ``posterior.native``,
``posterior.covariances`` ``(S, K, D, D)`` and ``posterior.cov_type``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixtures.core.params import Params
from mixtures.core.validation import as_data


@dataclass
class Posterior:
    """``S`` posterior draws of the parameters.

    Attributes:
        draws: the family's parameters with a leading draw dimension ``S``.
        kind: how the draws were made (``"variational"``, ``"mcmc"``).
        distribution: an analytic description when there is one (routine-specific).
        diagnostics: e.g. ``r_hat`` and ``ess`` per site for MCMC.
        log_density: ``(S,)`` ``log q(θ_s)`` of each draw under the distribution it was drawn
            from, on the prior's sites (the variables :meth:`MixtureFamily.log_prior` is a
            density of), or ``None``. Variational posteriors fill it, so the draws can be
            importance-weighted against the model's joint (:mod:`mixtures.evaluation.variational`).
    """

    draws: Params
    kind: str
    distribution: Any = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    log_density: Tensor | None = None

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not fields: the draws' tensors and views
        if name.startswith("__") or name == "draws":
            raise AttributeError(name)
        return getattr(self.draws, name)

    @property
    def n_draws(self) -> int:
        return self.draws.weights.shape[0]

    def draw(self, index: int) -> Params:
        """Draw ``index`` as the family's parameters."""
        return self.draws.index(index)

    def subset(self, indices: Tensor) -> Posterior:
        """The draws at ``indices`` (other fields kept)."""
        log_density = None if self.log_density is None else self.log_density[indices.to(self.log_density.device)]
        return Posterior(self.draws.index(indices.to(self.draws.device)), self.kind, self.distribution,
                         self.diagnostics, log_density)

    def mean_params(self) -> Params:
        """The posterior means as a mixture (for log-likelihood traces and predictions)."""
        return type(self.draws).mean_of(self.draws)

    def mean(self) -> dict[str, Tensor]:
        """Posterior means of the summary tensors (Gaussian: ``weights``, ``locs``, ``covariances``)."""
        return {name: values.mean(0) for name, values in self.draws.summary_tensors().items()}

    def credible_interval(self, level: float = 0.9) -> dict[str, tuple[Tensor, Tensor]]:
        """Equal-tailed intervals (elementwise) of the summary tensors."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1); got {level}.")
        out = {}
        for name, values in self.draws.summary_tensors().items():
            q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=values.dtype, device=values.device)
            low, high = torch.quantile(values, q, dim=0)
            out[name] = (low, high)
        return out

    def predictive_log_prob(self, X: Any) -> Tensor:
        """Posterior predictive ``log p(x | data) ≈ log mean_s p(x | θ_s)`` for every point ``(N,)``."""
        X = as_data(X, dtype=self.draws.dtype, device=self.draws.device, min_points=0)
        log_probs = torch.stack([self.draw(s).log_prob(X) for s in range(self.n_draws)])
        return torch.logsumexp(log_probs, 0) - math.log(self.n_draws)

    def components_in_use(self, threshold: float = 0.01) -> Tensor:
        """Posterior draws of the number of components with weight above ``threshold`` ``(S,)``."""
        return (self.draws.weights > threshold).sum(-1)

    def expected_components(self, threshold: float = 0.01) -> float:
        """Posterior mean number of components with weight above ``threshold``."""
        return float(self.components_in_use(threshold).double().mean())
