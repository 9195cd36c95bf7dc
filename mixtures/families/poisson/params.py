"""``PoissonParams``: weights and rates of a mixture of independent Poissons (count data)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from mixtures.core.params import Params
from mixtures.core.validation import make_generator
from mixtures.errors import ParameterError


class PoissonParams(Params):
    """Weights ``(K,)`` and rates ``(K, D)`` of a K-component mixture of D independent Poissons.

    ``log p(x | k) = Σ_d x_d log λ_kd - λ_kd - log x_d!``. Immutable; the constructor copies
    and checks (weights on the simplex, rates positive), :meth:`from_tensors` with
    ``validate=False`` trusts its tensors (what routines use).
    """

    __slots__ = ("weights", "rates")
    family: ClassVar[str] = "poisson"

    def __init__(self, weights: Any, rates: Any):
        rates = torch.as_tensor(rates, dtype=torch.float64) if not isinstance(rates, Tensor) else rates.detach()
        rates = rates.clone() if rates.is_floating_point() else rates.to(torch.float64)
        weights = torch.as_tensor(weights).to(rates)
        if rates.dim() != 2:
            raise ParameterError(f"rates must have shape (K, D); got {tuple(rates.shape)}.")
        if tuple(weights.shape) != (rates.shape[0],):
            raise ParameterError(f"weights must have shape (K,) = ({rates.shape[0]},); got {tuple(weights.shape)}.")
        if not (torch.isfinite(rates).all() and (rates > 0).all()):
            raise ParameterError("rates must be finite and positive.")
        if not torch.isfinite(weights).all() or (weights < 0).any() or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ParameterError(f"weights must be non-negative and sum to 1; got {weights.tolist()}.")
        object.__setattr__(self, "weights", weights / weights.sum())
        object.__setattr__(self, "rates", rates)

    def __setattr__(self, name, value):
        raise AttributeError("PoissonParams is immutable; build a new one.")

    def __reduce__(self):
        return (PoissonParams.from_tensors, (self.tensors(), {}, False))

    @property
    def n_features(self) -> int:
        return self.rates.shape[-1]

    def tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "rates": self.rates}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], spec: dict[str, Any], validate: bool = True) -> PoissonParams:
        if validate:
            return cls(tensors["weights"], tensors["rates"])
        self = cls.__new__(cls)
        object.__setattr__(self, "weights", tensors["weights"])
        object.__setattr__(self, "rates", tensors["rates"])
        return self

    @classmethod
    def component_axes(cls, spec: dict[str, Any]) -> dict[str, int | None]:
        return {"weights": 0, "rates": 0}

    def component_log_prob(self, X: Any) -> Tensor:
        """``Σ_d x_d log λ_kd - λ_kd - log x_d!`` ``(N, K)``."""
        X = self._data(X)
        log_rates, totals = self.rates.log(), self.rates.sum(-1)
        return self._chunked(X, lambda rows: rows @ log_rates.T - totals
                             - torch.lgamma(rows + 1).sum(-1, keepdim=True))

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``(X (n, D), labels (n,))``, reproducible for a seed on CPU."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n!r}.")
        generator = make_generator(seed)
        labels = torch.multinomial(self.weights.cpu().double(), n, replacement=True, generator=generator) \
            if n else torch.zeros(0, dtype=torch.long)
        X = torch.poisson(self.rates.cpu().double()[labels], generator=generator)
        return X.to(device=self.device, dtype=self.dtype), labels.to(self.device)

    def match_costs(self, reference: Params) -> Tensor:
        """``(..., K, K)`` squared distances between log-rates (a scale-free matching cost)."""
        mine, theirs = self.rates.log(), reference.rates.log()
        return (mine.unsqueeze(-2) - theirs.unsqueeze(-3)).square().sum(-1)

    def __repr__(self) -> str:
        return f"PoissonParams(K={self.n_components}, D={self.n_features}, dtype={self.dtype})"
