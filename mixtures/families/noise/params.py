"""``NoisyParams``: a mixture's parameters with a uniform noise component as its last component.

The container holds the wrapped family's parameters for ``K + 1`` components (``base``)
and the noise region. The weights are ``base.weights`` ``(K + 1,)``, the last one the noise
weight ``ε``; component ``K`` of ``base`` is a *placeholder*: its weight is the noise's, its
other tensors are regular values of the wrapped family (so that ``base`` is a valid
container, draws stack and permute like the wrapped family's) that no density uses:
``log p(x | K) = −log V``. Starts and EM's M steps make them a copy of cluster 0's (so that
the container does not depend on the shift or the rank that computed it); the Pyro routines
keep what the program holds (the start's values, or under a prior draws from that prior,
which are part of the posterior and its log prior). :meth:`clusters` drops the placeholder.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from mixtures.core.family import get_family
from mixtures.core.params import Params
from mixtures.core.validation import make_generator
from mixtures.errors import ParameterError
from mixtures.families.noise.region import NoiseRegion


class NoisyParams(Params):
    """Parameters of a noisy mixture (module docstring).

    Args:
        base: the wrapped family's parameters for ``K + 1`` components (the last a placeholder
            whose weight is the noise's).
        region: the :class:`~.region.NoiseRegion`.

    :meth:`from_clusters` builds one from ``K`` clusters' parameters and a noise weight.
    """

    __slots__ = ("base", "region")
    family: ClassVar[str] = "noisy"

    base: Params
    region: NoiseRegion

    def __init__(self, base: Params, region: NoiseRegion | dict):
        if not isinstance(base, Params):
            raise ParameterError(f"base must be a family's parameters; got {type(base).__name__}.")
        if base.n_components < 2:
            raise ParameterError("a noisy mixture has at least one cluster and the noise: base needs K + 1 >= 2 "
                                 "components.")
        region = NoiseRegion.from_spec(region)
        if region.n_features is not None and region.n_features != base.n_features:
            raise ParameterError(f"the noise region has D={region.n_features} but the parameters D={base.n_features}.")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "region", region)

    @classmethod
    def from_clusters(cls, clusters: Params, noise_weight: float | Tensor, region: NoiseRegion) -> NoisyParams:
        """``K`` clusters' parameters (weights renormalized to ``1 − ε``) plus the noise of weight ``ε``.

        The placeholder component is a copy of cluster 0 (any valid values do).
        """
        epsilon = torch.as_tensor(noise_weight, dtype=clusters.dtype, device=clusters.device)
        if not bool((epsilon >= 0) & (epsilon < 1)):
            raise ParameterError(f"the noise weight must be in [0, 1); got {float(epsilon)!r}.")
        axes = type(clusters).component_axes(clusters.spec())
        tensors = {}
        for name, value in clusters.tensors().items():
            axis = axes.get(name)
            tensors[name] = value if axis is None else torch.cat([value, value.narrow(axis, 0, 1)], axis)
        weights = clusters.weights / clusters.weights.sum()
        tensors["weights"] = torch.cat([(1 - epsilon) * weights, epsilon.reshape(1)])
        return cls(type(clusters).from_tensors(tensors, clusters.spec(), validate=False), region)

    @staticmethod
    def placeholder_of_cluster_0(base: Params) -> Params:
        """``base`` ``(K + 1)`` with the placeholder's tensors (all but its weight) set to cluster 0's:
        one convention everywhere (starts, M steps), whatever produced them."""
        axes = type(base).component_axes(base.spec())
        tensors = {}
        for name, value in base.tensors().items():
            axis = axes.get(name)
            if axis is None or name == "weights":
                tensors[name] = value
                continue
            last = torch.tensor([value.shape[axis] - 1], device=value.device)
            tensors[name] = value.index_copy(axis, last, value.narrow(axis, 0, 1))
        return type(base).from_tensors(tensors, base.spec(), validate=False)

    def __setattr__(self, name, value):
        raise AttributeError("NoisyParams is immutable; build a new one.")

    def __reduce__(self):
        return (NoisyParams.from_tensors, (self.tensors(), self.spec(), False))

    # -- facts -----------------------------------------------------------------------------
    @property
    def weights(self) -> Tensor:
        return self.base.weights

    @property
    def n_features(self) -> int:
        return self.base.n_features

    @property
    def noise_weight(self) -> Tensor:
        """``ε``, the weight of the noise (``()``, or ``(S,)`` for stacked draws)."""
        return self.weights[..., -1]

    def clusters(self) -> Params:
        """The ``K`` clusters as the wrapped family's parameters (weights renormalized to sum to 1)."""
        K = self.n_components - 1
        kept = self.base.permuted(torch.arange(K, device=self.device))
        tensors = dict(kept.tensors())
        tensors["weights"] = tensors["weights"] / tensors["weights"].sum(-1, keepdim=True)
        return type(kept).from_tensors(tensors, kept.spec(), validate=False)

    # -- densities -------------------------------------------------------------------------
    def component_log_prob(self, X: Any) -> Tensor:
        """``(N, K + 1)``: the clusters' log densities, then ``−log V`` for the noise."""
        X = self._data(X)
        clusters = self.base.component_log_prob(X)[:, :-1]
        noise = clusters.new_full((X.shape[0], 1), -self.region.log_volume)
        return torch.cat([clusters, noise], -1)

    def is_noise(self, X: Any) -> Tensor:
        """``(N,)`` bool: the points whose noise responsibility wins (most probable component ``K``)."""
        return self.joint_log_prob(X).argmax(-1) == self.n_components - 1

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``(X (n, D), labels (n,))``; label ``K`` is noise, drawn uniformly from the region."""
        generator = make_generator(seed)
        base_seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        X, labels = self.base.sample(n, base_seed)
        noise = labels == self.n_components - 1
        if bool(noise.any()):
            X = X.clone()
            X[noise] = self.region.sample(int(noise.sum()), generator, X.dtype, X.device)
        return X, labels

    # -- the family's Params interface ------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        return self.base.tensors()

    def spec(self) -> dict[str, Any]:
        return {"base_family": self.base.family, "base_spec": self.base.spec(), "region": self.region.to_spec()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], spec: dict[str, Any], validate: bool = True) -> NoisyParams:
        base_type = get_family(spec["base_family"]).params_type
        base = base_type.from_tensors(tensors, spec["base_spec"], validate=validate)
        if not validate:
            self = cls.__new__(cls)
            object.__setattr__(self, "base", base)
            object.__setattr__(self, "region", NoiseRegion.from_spec(spec["region"]))
            return self
        return cls(base, spec["region"])

    @classmethod
    def component_axes(cls, spec: dict[str, Any]) -> dict[str, int | None]:
        return get_family(spec["base_family"]).params_type.component_axes(spec["base_spec"])

    @classmethod
    def mean_of(cls, draws: NoisyParams) -> NoisyParams:
        return cls.from_tensors(type(draws.base).mean_of(draws.base).tensors(), draws.spec(), validate=False)

    def summary_tensors(self) -> dict[str, Tensor]:
        return self.base.summary_tensors()

    def match_costs(self, reference: Params) -> Tensor:
        """The wrapped family's costs between clusters; the noise matches only the noise (relabelling
        never moves it)."""
        costs = self.base.match_costs(reference.base).clone()
        finite = costs[torch.isfinite(costs)]
        barrier = (finite.abs().max() if finite.numel() else costs.new_tensor(0.0)) * 1e3 + 1e6
        costs[..., -1, :] = barrier
        costs[..., :, -1] = barrier
        costs[..., -1, -1] = 0.0
        return costs

    def collapsed_components(self, reg_covar: float, rtol: float = 1e-3, atol: float = 0.0) -> list[int]:
        """The wrapped family's collapsed clusters (the placeholder is no component)."""
        noise = self.n_components - 1
        return [k for k in self.base.collapsed_components(reg_covar, rtol, atol) if k != noise]

    def __repr__(self) -> str:
        return (f"NoisyParams(K={self.n_components - 1} clusters + noise (weight {float(self.noise_weight):.4g}, "
                f"{self.region.kind} of volume {self.region.volume:.6g}), base={self.base!r})")
