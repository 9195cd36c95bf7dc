"""``NoisyMixture``: any family plus a uniform noise component (mclust's ``Vinv``), through the protocol only.

The program (the protocol's, written once) has ``K + 1`` components::

    z_n ~ Categorical(weights)                    # weights (K + 1,): the clusters', then the noise ε
    x_n | z_n = k ~ base component k  (k < K)     # the wrapped family's distribution
    x_n | z_n = K ~ Uniform(region)               # density 1/V, V the region's volume

It wraps a family *with K + 1 components* whose last component is a placeholder (its weight
is the noise's, see :mod:`.params`): the wrapped family's global sites and prior are used
unchanged (a Dirichlet prior on the weights covers the noise weight too, as mclust's), so
MAP, SVI and NUTS run the same program for any family, and NUTS' relabelling permutes the
clusters and never the noise (:meth:`NoisyParams.match_costs`).

Capability ``"statistics"`` (when the wrapped family has it): the E step computes the ``K + 1``
responsibilities itself (:func:`mixtures.families.passes.responsibility_pass`) and asks the
wrapped family for the statistics of the clusters' responsibilities at its parameters
(:meth:`~mixtures.core.family.Statistics.summarize_at`; the t family weighs them with its
latent scales there); the noise's only statistic is its mass ``N_K``. The M step is the
wrapped family's (the placeholder gets regular statistics: all the data's) with the
weights ``∝ N_k`` including the noise's, the maximum-likelihood (or, under a Dirichlet prior,
posterior-mode) weights of the ``K + 1``-component mixture.

The region is a constant of the model (``NoiseRegion.box(X)``, ``.hull(X)`` or a given
volume; :meth:`NoisyMixture.over` computes it from the data). Gradient routines run in the
data's own units: the region does not follow a standardization.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor

from mixtures.core.family import FAMILIES, MixtureFamily, Statistics, get_family, register_family
from mixtures.core.summary import Summary
from mixtures.errors import DataError
from mixtures.families.noise.params import NoisyParams
from mixtures.families.noise.region import NoiseRegion
from mixtures.families.passes import responsibility_pass

_INHERIT = object()


def _prior_fields(**fields: Any) -> dict[str, Any]:
    """A saved prior's fields, handed to the constructor (which knows the wrapped family's prior type)."""
    return fields


@register_family
class NoisyMixture(Statistics, MixtureFamily):
    """``base``'s clusters plus a uniform noise component over ``region`` (module docstring).

    Args:
        base: the clusters' model (any registered family, e.g. ``GaussianMixture(3, "full")`` or
            ``StudentTMixture(3)``); its ``K`` clusters become components ``0..K-1`` and the noise
            component ``K``. (A saved model passes the total ``K + 1`` with ``base_family``/``base_spec``.)
        region: a :class:`~.region.NoiseRegion` (or its spec dict).
        prior: the clusters' family's prior over all ``K + 1`` weights and the clusters' parameters;
            by default ``base``'s own.
    """

    name = "noisy"
    params_type = NoisyParams
    prior_type = _prior_fields
    spec_fields = ("base_family", "base_spec", "region")

    def __init__(self, base: MixtureFamily | int, region: NoiseRegion | dict | None = None, *,
                 base_family: str | None = None, base_spec: dict | None = None, prior: Any = _INHERIT):
        if isinstance(base, MixtureFamily):
            if isinstance(base, NoisyMixture):
                raise TypeError("the model already has a noise component.")
            family, spec, total = type(base), base.spec(), base.n_components + 1
            prior = base.prior if prior is _INHERIT else prior
        elif isinstance(base, int) and not isinstance(base, bool) and base_family in FAMILIES:
            family, spec, total = get_family(base_family), dict(base_spec or {}), base
        else:
            raise TypeError(f"base must be a mixture family (e.g. GaussianMixture(3)); got {type(base).__name__}.")
        prior = None if prior is _INHERIT else prior
        if isinstance(prior, dict):
            prior = family.prior_type(**prior)
        if region is None:
            raise ValueError("a noise component needs its region: NoisyMixture(base, NoiseRegion.box(X)) (or .hull(X), "
                             "NoiseRegion.given(volume)), or NoisyMixture.over(X, base).")
        #: the wrapped family with K + 1 components (the last a placeholder for the noise)
        self.base = family(total, **spec, prior=prior)
        self.region = NoiseRegion.from_spec(region)
        super().__init__(total, self.base.prior)
        self.capabilities = frozenset({"program"} | ({"statistics"} if self.base.supports("statistics") else set()))

    @classmethod
    def over(cls, X: Any, base: MixtureFamily, region: str = "box") -> NoisyMixture:
        """``base`` plus noise over the bounding ``"box"`` or convex ``"hull"`` of ``X`` ``(N, D)``."""
        return cls(base, NoiseRegion.of(X, region))

    @property
    def n_clusters(self) -> int:
        return self.n_components - 1

    @property
    def noise_component(self) -> int:
        """The noise is the last component, ``K``."""
        return self.n_components - 1

    @property
    def prior_only_components(self) -> tuple[int, ...]:
        """The placeholder cluster behind the noise: its density is replaced by the uniform one."""
        return (self.noise_component,)

    def clusters_model(self) -> MixtureFamily:
        """The wrapped family with ``K`` components (what the clusters alone are)."""
        return type(self.base)(self.n_clusters, **self.base.spec(), prior=self.base.prior)

    def spec(self) -> dict[str, Any]:
        return {"base_family": self.base.name, "base_spec": self.base.spec(), "region": self.region.to_spec()}

    def params_spec(self) -> dict[str, Any]:
        return {"base_family": self.base.name, "base_spec": self.base.params_spec(), "region": self.region.to_spec()}

    def with_prior(self, prior: Any) -> NoisyMixture:
        return NoisyMixture(self.n_components, self.region, base_family=self.base.name, base_spec=self.base.spec(),
                            prior=prior)

    def n_parameters(self, n_features: int) -> int:
        """The clusters' free parameters and the noise weight (the volume is a constant)."""
        return self.clusters_model().n_parameters(n_features) + 1

    def validate_data(self, X: Tensor) -> None:
        self.base.validate_data(X)
        if self.region.n_features not in (None, X.shape[1]):
            raise DataError(f"the noise region has D={self.region.n_features} but X has {X.shape[1]} features; "
                            "compute the region from these data (NoiseRegion.box(X)).")

    def resolved_prior(self, X: Tensor) -> Any:
        return self.base.resolved_prior(X)

    def with_global_prior(self, X: Tensor) -> NoisyMixture:
        resolved = self.base.with_global_prior(X)
        return self if resolved is self.base else self.with_prior(resolved.prior)

    def with_weighted_prior(self, X: Tensor, sample_weight: Tensor, distributed: bool = False) -> NoisyMixture:
        resolved = self.base.with_weighted_prior(X, sample_weight, distributed)
        return self if resolved is self.base else self.with_prior(resolved.prior)

    def fitting(self) -> Any:
        return self.base.fitting()

    # -- the program's pieces: the wrapped family's, and the noise's density --------------------
    def param_sites(self) -> dict[str, Any]:
        return self.base.param_sites()

    def values_from_params(self, params: NoisyParams) -> dict[str, Tensor]:
        return self.base.values_from_params(params.base)

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> NoisyParams:
        return NoisyParams(self.base.params_from_values(values, validate), self.region)

    def prior_sites(self) -> tuple[str, ...]:
        return self.base.prior_sites()

    def sample_globals(self, prior: Any) -> dict[str, Tensor]:
        return self.base.sample_globals(prior)

    def prior_site_values(self, params: NoisyParams) -> dict[str, Tensor]:
        return self.base.prior_site_values(params.base)

    def component_distribution(self, values: dict[str, Tensor], index: Tensor) -> Any:
        return NoiseComponent(self.base.component_distribution(values, index), index == self.n_clusters, self.region)

    # -- initialization ----------------------------------------------------------------------
    def params_from_responsibilities(self, X: Tensor, resp: Tensor, reg_covar: float = 1e-6,
                                     on_collapse: str = "error") -> NoisyParams:
        """The clusters' start from ``K`` columns of ``resp`` ``(N, K + 1)``, the noise from the other.

        An initializer's ``K + 1`` groups are unordered: every column is tried as the noise (the
        others start the clusters by the wrapped family's M step, the noise weight is the column's
        mass fraction, at least ``1/N``) and the start with the highest log-likelihood is kept (a
        scattered group of outliers, or, when the partition has none, the group the clusters
        explain best without).
        """
        best, best_value, error = None, -math.inf, None
        for noise in range(self.n_components):
            keep = [k for k in range(self.n_components) if k != noise]
            try:
                clusters = self.clusters_model().params_from_responsibilities(X, resp[:, keep], reg_covar,
                                                                              on_collapse)
            except (ValueError, FloatingPointError, RuntimeError) as failure:  # a singular group: not this one
                error = failure
                continue
            start = NoisyParams.from_clusters(clusters, resp[:, noise].mean().clamp(1.0 / X.shape[0], 0.5),
                                              self.region)
            value = float(start.log_prob(X).sum())
            if best is None or value > best_value:
                best, best_value = start, value
        if best is None:
            raise error
        return best

    def params_from_centres(self, X: Tensor, centres: Tensor, reg_covar: float = 1e-6,
                            on_collapse: str = "error") -> NoisyParams:
        """The first ``K`` centres start the clusters; the noise starts with weight ``1/(K + 1)``."""
        clusters = self.clusters_model().params_from_centres(X, centres[:self.n_clusters], reg_covar, on_collapse)
        return NoisyParams.from_clusters(clusters, 1.0 / self.n_components, self.region)

    def params_from_dict(self, values: dict[str, Any], X: Tensor, reg_covar: float = 1e-6,
                         on_collapse: str = "error") -> NoisyParams:
        """The clusters' dict (their family's keys) plus an optional ``"noise_weight"`` (default ``1/(K + 1)``)."""
        values = dict(values)
        epsilon = values.pop("noise_weight", 1.0 / self.n_components)
        clusters = self.clusters_model().params_from_dict(values, X, reg_covar, on_collapse)
        return self.check_params(NoisyParams.from_clusters(clusters, epsilon, self.region))

    # -- capability "statistics" -----------------------------------------------------------------
    def statistics_shift(self, X: Any) -> Tensor:
        return self.base.statistics_shift(X)

    def e_step(self, X: Any, params: NoisyParams, shift: Tensor, hard: bool = False, chunk_size: int | None = None,
               accumulate_dtype: torch.dtype | None = None, sample_weight: Tensor | None = None) -> Summary:
        """One pass: the ``K + 1`` responsibilities, the clusters' statistics (the wrapped family's at its
        parameters) and the noise's mass."""
        log_weights = params.weights.log()
        names: list[str] = []

        def joint(rows: Tensor) -> tuple[Tensor, Any]:
            clusters = params.base.component_log_prob(rows)[:, :-1]
            noise = clusters.new_full((rows.shape[0], 1), -self.region.log_volume)
            return torch.cat([clusters, noise], -1) + log_weights, None

        def statistics(rows: Tensor, resp: Tensor, context: Any) -> list[Tensor]:
            part = self.base.summarize_at(rows, params.base, _without_noise(resp), shift)
            names[:] = list(part.moments)
            return list(part.moments.values())

        totals = responsibility_pass(X, shift, self.n_components, joint, statistics, hard, chunk_size,
                                     accumulate_dtype, sample_weight)
        return Summary(totals.nk, dict(zip(names, totals.sums)), shift.to(totals.nk.dtype), totals.n_points,
                       totals.log_likelihood, totals.entropy, totals.labels, totals.worst_point)

    def summarize(self, X: Tensor, resp: Tensor, shift: Tensor | None = None,
                  chunk_size: int | None = None) -> Summary:
        part = self.base.summarize(X, _without_noise(resp), shift, chunk_size)
        return _with_noise_mass(part, resp)

    def summarize_at(self, X: Tensor, params: NoisyParams, resp: Tensor, shift: Tensor) -> Summary:
        return _with_noise_mass(self.base.summarize_at(X, params.base, _without_noise(resp), shift), resp)

    def _clusters_summary(self, summary: Summary) -> Summary:
        """The statistics the wrapped family's M step sees: the noise's mass taken out, and the
        placeholder given regular ones when the family can say what they are: the mass of all
        the data at the shift with its spread (the family's re-seeding rule, at the shift rather
        than the pass's worst point: the same on every rank). The M step then sets the placeholder
        to cluster 0's values (:meth:`NoisyParams.placeholder_of_cluster_0`)."""
        noise = self.n_clusters
        nk = summary.nk.clone()
        nk[noise] = 0.0
        clusters = summary.replace(nk=nk)
        filled = None
        if clusters.shift is not None:
            filled = self.base.reseed_component(clusters.replace(worst_point=clusters.shift), noise)
        return clusters if filled is None else filled.replace(worst_point=summary.worst_point)

    def m_step(self, summary: Summary, reg_covar: float, prior: Any = None, keep: Tensor | None = None,
               previous: NoisyParams | None = None) -> NoisyParams:
        base = self.base.m_step(self._clusters_summary(summary), reg_covar, prior,
                                keep=keep, previous=None if previous is None else previous.base)
        tensors = {**base.tensors(), "weights": self.mode_weights(summary.nk, prior).to(base.dtype)}
        base = NoisyParams.placeholder_of_cluster_0(type(base).from_tensors(tensors, base.spec(), validate=False))
        return NoisyParams(base, self.region)

    def mode_weights(self, nk: Tensor, prior: Any = None) -> Tensor:
        return self.base.mode_weights(nk, prior)

    def elbo(self, summary: Summary, params: NoisyParams) -> Tensor:
        """The clusters' ELBO terms (the wrapped family's, without the noise's mass) plus the noise's
        ``N_K (log ε − log V)``; the entropy is of all ``K + 1`` responsibilities."""
        noise = self.n_clusters
        nk = summary.nk.clone()
        nk[noise] = 0.0
        clusters = self.base.elbo(summary.replace(nk=nk), params.base)
        mass = summary.nk[noise]
        noise_term = torch.where(mass > 0, mass * (params.weights[noise].log() - self.region.log_volume),
                                 mass.new_zeros(()))
        return clusters + noise_term

    def reseed_component(self, summary: Summary, component: int) -> Summary | None:
        if component == self.n_clusters:  # the noise never collapses: it has no parameters
            return None
        return self._keeping_noise(self.base.reseed_component, summary, component)

    def pooled_component(self, summary: Summary, component: int) -> Summary | None:
        if component == self.n_clusters:
            return None
        return self._keeping_noise(self.base.pooled_component, summary, component)

    def _keeping_noise(self, change: Any, summary: Summary, component: int) -> Summary | None:
        noise = self.n_clusters
        nk = summary.nk.clone()
        nk[noise] = 0.0
        changed = change(summary.replace(nk=nk), component)
        if changed is None:
            return None
        nk = changed.nk.clone()
        nk[noise] = summary.nk[noise]
        return changed.replace(nk=nk)


def _without_noise(resp: Tensor) -> Tensor:
    """``resp`` ``(n, K + 1)`` with the noise's column zeroed (the clusters' responsibilities, the
    placeholder getting none)."""
    return torch.cat([resp[:, :-1], resp.new_zeros(resp.shape[0], 1)], -1)


def _with_noise_mass(summary: Summary, resp: Tensor) -> Summary:
    nk = summary.nk.clone()
    nk[-1] = resp[:, -1].sum()
    entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum()
    return summary.replace(nk=nk, entropy=entropy)


class NoiseComponent(TorchDistribution):
    """The component an enumerated assignment picks: the wrapped family's where ``is_noise`` is False,
    the uniform ``1/V`` where it is True (batch: their broadcast; event: the wrapped one's)."""

    arg_constraints: dict = {}

    def __init__(self, clusters: Any, is_noise: Tensor, region: NoiseRegion, validate_args: Any = None):
        self.clusters, self.is_noise, self.region = clusters, is_noise, region
        batch_shape = torch.broadcast_shapes(clusters.batch_shape, is_noise.shape)
        super().__init__(batch_shape, clusters.event_shape, validate_args=False)

    @property
    def support(self) -> Any:
        return self.clusters.support

    def log_prob(self, value: Tensor) -> Tensor:
        clusters = self.clusters.log_prob(value)
        noise = torch.full_like(clusters, -self.region.log_volume)
        return torch.where(self.is_noise, noise, clusters)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            clusters = self.clusters.expand(self.batch_shape).sample(sample_shape)
            flat = clusters.reshape(-1, clusters.shape[-1])
            noise = self.region.sample(flat.shape[0], dtype=flat.dtype, device=flat.device).reshape(clusters.shape)
            return torch.where(self.is_noise.unsqueeze(-1), noise, clusters)

    def expand(self, batch_shape: Any, _instance: Any = None) -> NoiseComponent:
        batch_shape = torch.Size(batch_shape)
        return NoiseComponent(self.clusters.expand(batch_shape), self.is_noise.expand(batch_shape), self.region)

