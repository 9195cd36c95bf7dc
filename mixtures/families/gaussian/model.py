"""``GaussianMixture``: the Gaussian family, declared once as a Pyro program.

The generative story, for ``n = 1..N`` (written once for every family in
:class:`~mixtures.core.family.MixtureFamily`)::

    z_n ~ Categorical(weights)                 # site "assignment", enumerable
    x_n | z_n ~ Normal(locs[z_n], Σ[z_n])      # site "obs"

Without a prior the globals (``weights``, ``locs`` and the covariance structure's
native tensor, see :mod:`mixtures.families.gaussian.covariance`) are ``pyro.param``
sites with the right constraints; with a prior they become ``pyro.sample`` sites
(:mod:`mixtures.families.gaussian.priors`). Closed-form routines (EM, k-means, VB)
never run the program: they use the same densities through the family's
capabilities (sufficient statistics, the variational update, induced partitions).
Pyro routines (MAP, SVI, NUTS) run ``model.model`` itself, and the test suite checks
that both agree to 1e-8.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints

import mixtures.families.gaussian.transforms  # noqa: F401  (biject_to(positive_definite) for Wishart sites)
from mixtures.core import comm
from mixtures.core.family import (
    LogJointForm,
    MixtureFamily,
    Partition,
    Statistics,
    Variational,
    register_family,
)
from mixtures.core.missing import has_missing, is_marginalizing, mean_imputed
from mixtures.core.summary import Summary
from mixtures.core.weights import weighted_mean_cov
from mixtures.errors import ParameterError
from mixtures.families.gaussian import (
    conjugate,
    distributions,
    initialize,
    missing,
    partition,
    statistics,
    variational,
)
from mixtures.families.gaussian.covariance import STRUCTURES, CovarianceStructure, get_structure
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior, ResolvedPrior
from mixtures.families.gaussian.standardize import Standardizer
from mixtures.families.weights import sample_weights, weight_site_values, weight_sites


@register_family
class GaussianMixture(Statistics, Variational, Partition, MixtureFamily):
    """A K-component Gaussian mixture with a given covariance structure.

    Args:
        n_components: number of components K.
        covariance_type: a covariance structure's name (``"full"`` (default), ``"tied"``,
            ``"diag"``, ``"spherical"``, or any of mclust's fourteen: ``"EII"``, ``"VII"``,
            ``"EEI"``, ..., ``"VVV"``), see :mod:`mixtures.families.gaussian.covariance`.
            One-dimensional data is D = 1 of any structure (mclust's ``"E"``, ``"V"``).
        prior: optional :class:`~mixtures.families.gaussian.priors.GaussianPrior`; ``None``
            means maximum likelihood and ``pyro.param`` globals, a prior turns the globals
            into ``pyro.sample`` sites.

    The object holds the *specification* only; fitted values live in a
    :class:`~mixtures.core.result.FitResult`.
    """

    name = "gaussian"
    params_type = MixtureParams
    prior_type = GaussianPrior
    spec_fields = ("covariance_type",)
    capabilities = frozenset({"program", "statistics", "variational", "partition", "missing"})

    def __init__(self, n_components: int, covariance_type: str | CovarianceStructure = "full", prior: Any = None):
        if prior is not None and not isinstance(prior, GaussianPrior):
            raise TypeError(f"prior must be a mixtures.GaussianPrior or None; got {type(prior).__name__}.")
        super().__init__(n_components, prior)
        self.cov_type: CovarianceStructure = get_structure(covariance_type)
        if prior is not None and prior.kind not in self.cov_type.prior_kinds:
            with_prior = [s.name for s in STRUCTURES.values() if prior.kind in s.prior_kinds]
            raise ValueError(f"covariance_type {self.cov_type.name!r} has no {prior.kind} prior; the structures with "
                             f"one are {with_prior} (mclust's VVV, EEE, VVI, VII). Fit {self.cov_type.name!r} without "
                             "a prior (em, hard_em, stepwise_em, kmeans, kmedians, map, svi), or choose one of those.")

    @property
    def covariance_type(self) -> str:
        return self.cov_type.name

    def spec(self) -> dict[str, Any]:
        return {"covariance_type": self.covariance_type}

    params_spec = spec

    def n_parameters(self, n_features: int) -> int:
        """Free parameters: ``K - 1`` weights, ``K D`` means, and the covariance structure's."""
        K = self.n_components
        return (K - 1) + K * n_features + self.cov_type.n_parameters(K, n_features)

    def check_params(self, params: MixtureParams) -> MixtureParams:
        """Raise unless ``params`` has this model's K and covariance type."""
        if (not isinstance(params, MixtureParams) or params.n_components != self.n_components
                or params.covariance_type != self.covariance_type):
            K = getattr(params, "n_components", "?")
            kind = getattr(params, "covariance_type", type(params).__name__)
            raise ParameterError(
                f"parameters with K={K}, covariance_type={kind!r} do not fit this model (K={self.n_components}, "
                f"covariance_type={self.covariance_type!r}).")
        return params

    # -- the program's pieces --------------------------------------------------------------
    def param_sites(self) -> dict[str, Any]:
        return {"weights": constraints.simplex, "locs": constraints.real, self.cov_type.site: self.cov_type.constraint}

    def values_from_params(self, params: MixtureParams) -> dict[str, Tensor]:
        return {"weights": params.weights, "locs": params.locs, self.cov_type.site: params.native}

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> MixtureParams:
        return MixtureParams.from_native(values["weights"].detach(), values["locs"].detach(),
                                         values[self.cov_type.site].detach(), self.cov_type, validate=validate)

    def prior_sites(self) -> tuple[str, ...]:
        """Weights' site, ``"locs"``, and the structure's (e.g. ``("weights", "locs", "precision")``)."""
        structure = self.cov_type
        covariance = structure.conjugate_sites if self.prior.kind == "conjugate" else structure.nonconjugate_sites
        return weight_sites(self.prior.weight_prior) + ("locs",) + covariance

    def sample_globals(self, prior: ResolvedPrior) -> dict[str, Tensor]:
        weights = sample_weights(prior.weight_prior, prior.weight_concentration, self.n_components)
        declare = self.cov_type.declare_conjugate if prior.kind == "conjugate" else self.cov_type.declare_nonconjugate
        locs, native = declare(prior, self.n_components)
        return {"weights": weights, "locs": locs, self.cov_type.site: native}

    def prior_site_values(self, params: MixtureParams) -> dict[str, Tensor]:
        values = {**weight_site_values(params.weights, self.prior.weight_prior), "locs": params.locs}
        if self.prior.kind == "conjugate":
            values.update(self.cov_type.conjugate_values(params.native, params.whitener()[0]))
        else:
            values.update(self.cov_type.nonconjugate_values(params.native, params.n_features))
        return values

    def component_distribution(self, values: dict[str, Tensor], index: Tensor) -> Any:
        base = self.cov_type.component_distribution(values["locs"], values[self.cov_type.site], index)
        if not is_marginalizing() or index is None:
            return base
        # NaN entries are missing values: the observation site's density is each point's observed block's
        locs, native = values["locs"], values[self.cov_type.site]
        covariances = self.cov_type.to_full(native, self.n_components, locs.shape[-1])
        return missing.ObservedBlockNormal(base, locs, covariances, index)

    # -- hooks with defaults ---------------------------------------------------------------
    def fitting(self) -> contextlib.AbstractContextManager:
        """Keep the data's features between the program's evaluations during a fit (the
        enumerated ``log_prob`` is one matrix product over them: :mod:`..distributions`)."""
        return distributions.keeping_features()

    def standardizer(self, X: Tensor, distributed: bool = False) -> Standardizer:
        return Standardizer(X, self.cov_type, distributed)

    def with_global_prior(self, X: Tensor) -> GaussianMixture:
        """This model whose prior's data-scaled defaults are resolved on *all* ranks' data.

        A prior's ``mean_prior`` and ``covariance_prior`` default to the mean and the
        empirical covariance (``ddof=1``) of ``X``; on a shard those would differ from rank
        to rank. This returns a copy whose prior has them filled in from the global moments
        (every other field as given), so that every rank runs the program a single process
        holding all the data would (equal to rounding). A model without a prior, or whose
        prior gives both, is returned as it is.
        """
        prior = self.prior
        if prior is None or (prior.mean_prior is not None and prior.covariance_prior is not None):
            return self
        if is_marginalizing():  # NaN entries (missing values): the moments of the globally mean-imputed data
            X = torch.where(torch.isnan(X), comm.global_observed_means(X), X)
        n, mean, cov = comm.global_mean_cov(X)
        changes = {}
        if prior.mean_prior is None:
            changes["mean_prior"] = mean
        if prior.covariance_prior is None:
            if n < 2:
                raise ValueError("the default covariance_prior needs at least 2 points over all ranks; "
                                 "give covariance_prior.")
            changes["covariance_prior"] = self.cov_type.prior_scale(cov)
        return self.with_prior(prior.with_(**changes))

    def with_weighted_prior(self, X: Tensor, sample_weight: Tensor, distributed: bool = False) -> GaussianMixture:
        """:meth:`with_global_prior` on the weighted data: ``mean_prior`` and ``covariance_prior`` default
        to the weighted mean and covariance (those of the data with rows repeated, ``ddof=1`` on ``Σ w``)."""
        prior = self.prior
        if prior is None or (prior.mean_prior is not None and prior.covariance_prior is not None):
            return self
        total, mean, cov = weighted_mean_cov(X, sample_weight, distributed)
        changes = {}
        if prior.mean_prior is None:
            changes["mean_prior"] = mean
        if prior.covariance_prior is None:
            if total <= 1:
                raise ValueError("the default covariance_prior is the data's covariance, which needs a total "
                                 f"sample_weight above 1 (got {total:g}); give covariance_prior.")
            changes["covariance_prior"] = self.cov_type.prior_scale(cov)
        return self.with_prior(prior.with_(**changes))

    # -- initialization -----------------------------------------------------------------------
    def params_from_responsibilities(self, X: Tensor, resp: Tensor, reg_covar: float = 1e-6,
                                     on_collapse: str = "error") -> MixtureParams:
        return initialize.params_from_responsibilities(self.cov_type, X, resp, reg_covar, on_collapse)

    def params_from_centres(self, X: Tensor, centres: Tensor, reg_covar: float = 1e-6,
                            on_collapse: str = "error") -> MixtureParams:
        return initialize.params_from_centres(self.cov_type, X, centres, reg_covar, on_collapse)

    def params_from_dict(self, values: dict[str, Any], X: Tensor, reg_covar: float = 1e-6,
                         on_collapse: str = "error") -> MixtureParams:
        return self.check_params(initialize.params_from_dict(self.cov_type, self.n_components, values, X, reg_covar,
                                                                  on_collapse))

    # -- frozen parameters (mixtures.core.freeze) ---------------------------------------------
    def frozen_sites(self, groups: tuple[str, ...]) -> dict[str, str]:
        return {"weights": "weights", "means": "locs", "covariances": self.cov_type.site}

    def frozen_prior_sites(self, groups: tuple[str, ...]) -> tuple[str, ...]:
        structure = self.cov_type
        covariance = structure.conjugate_sites if self.prior.kind == "conjugate" else structure.nonconjugate_sites
        sites = {"weights": weight_sites(self.prior.weight_prior), "means": ("locs",), "covariances": covariance}
        return tuple(site for group in groups for site in sites[group])

    def summary_about_means(self, summary: Summary, locs: Tensor) -> Summary:
        """Statistics whose M step has means ``locs`` ``(K, D)`` and the covariances of the scatter
        about them (EM with frozen means). Statistics are linear in the responsibilities, so the
        second moment's correction is the structure's own ``second_moment`` of three pseudo-points
        per component; see :func:`mixtures.families.gaussian.statistics.about_means`."""
        return statistics.about_means(summary, self.cov_type, locs)

    # -- capability "statistics" -------------------------------------------------------------
    def params_from_statistics(self, summary: Summary, X: Tensor, reg_covar: float = 1e-6,
                               on_collapse: str = "error") -> MixtureParams:
        return initialize.params_from_summary(self.cov_type, X, summary, reg_covar, on_collapse)

    def e_step(self, X: Any, params: MixtureParams, shift: Tensor, hard: bool = False,
               chunk_size: int | None = None, accumulate_dtype: torch.dtype | None = None,
               sample_weight: Tensor | None = None) -> Summary:
        if has_missing(X):  # NaN entries are missing values (fit(..., missing="marginalize")): expected statistics
            return missing.e_step(X, params, shift, hard, chunk_size, accumulate_dtype, sample_weight=sample_weight)
        return statistics.e_step(X, params, shift, hard, chunk_size, accumulate_dtype, sample_weight)

    def summarize_at(self, X: Tensor, params: MixtureParams, resp: Tensor, shift: Tensor) -> Summary:
        if has_missing(X):  # the missing coordinates' expected statistics under each component at params
            return missing.summarize_at(X, params, resp, shift)
        return self.summarize(X, resp, shift)

    def summarize(self, X: Tensor, resp: Tensor, shift: Tensor | None = None,
                  chunk_size: int | None = None) -> Summary:
        # NaN entries (missing values): a start from given responsibilities has no parameters to condition
        # on, so their statistics are those of the mean-imputed data (the data initializers see)
        return statistics.summarize(mean_imputed(X), resp, self.cov_type, shift, chunk_size)

    def m_step(self, summary: Summary, reg_covar: float, prior: ResolvedPrior | None = None,
               keep: Tensor | None = None, previous: MixtureParams | None = None) -> MixtureParams:
        if keep is not None and bool(keep.any()):
            return statistics.m_step_keeping(summary, self.cov_type, reg_covar, keep, previous,
                                             lambda s: self.m_step(s, reg_covar, prior),
                                             self.mode_weights(summary.nk, prior))
        if prior is not None:
            return conjugate.posterior_mode(summary, self.cov_type, prior, reg_covar)
        return statistics.m_step(summary, self.cov_type, reg_covar)

    def mode_weights(self, nk: Tensor, prior: ResolvedPrior | None = None) -> Tensor:
        if prior is not None:
            return conjugate.mode_weights(nk, prior)
        return statistics.ml_weights(nk)

    def elbo(self, summary: Summary, params: MixtureParams) -> Tensor:
        return statistics.elbo(summary, params)

    def log_joint_form(self, values: dict[str, Tensor], shift: Tensor) -> LogJointForm:
        return LogJointForm(*distributions.log_joint_form(self.cov_type, values, shift))

    def reseed_component(self, summary: Summary, component: int) -> Summary | None:
        if self.cov_type.shared:  # a shared covariance has no component statistics to replace
            return None
        return statistics.reseed_component(summary, component, self.cov_type)

    def pooled_component(self, summary: Summary, component: int) -> Summary | None:
        if self.cov_type.shared:
            return None
        return statistics.pooled_component(summary, component, self.cov_type)

    # -- capability "variational" --------------------------------------------------------------
    def variational(self, X: Tensor, updates: str, reg_covar: float, distributed: bool = False
                    ) -> variational.GaussianVariational:
        return variational.GaussianVariational(self, X, updates, reg_covar, distributed)

    # -- capability "partition" -----------------------------------------------------------------
    def partition_centres(self, params: MixtureParams) -> Tensor:
        return params.locs

    def partition_mixture(self, X: Any, centres: Tensor, reg_covar: float, shift: Tensor, metric: str = "l2",
                          chunk_size: int | None = None, distributed: bool = False,
                          sample_weight: Tensor | None = None) -> tuple:
        return partition.induced_mixture(self.cov_type, X, centres, reg_covar, shift, metric, chunk_size,
                                         distributed, sample_weight)
