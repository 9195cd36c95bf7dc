"""``StudentTMixture``: mixtures of multivariate t distributions, declared once as a Pyro program.

The generative story (the program is :class:`~mixtures.core.family.MixtureFamily`'s, written once)::

    z_n ~ Categorical(weights)                                  # site "assignment", enumerable
    x_n | z_n ~ MultivariateStudentT(ν[z_n], μ[z_n], Σ[z_n])    # site "obs"

The t is the scale mixture ``u_n ~ Gamma(ν/2, ν/2)``, ``x_n | u_n ~ N(μ, Σ / u_n)`` with ``u_n``
summed out analytically: the component distribution *is* the t density, so the assignment
stays the only latent variable Pyro enumerates, and MAP, SVI and NUTS run the program
unchanged. EM works on the completed model instead (the scales are the E step's latent
precision weights, :mod:`.statistics`); the test suite checks both reach the same optimum.

The scale matrices ``Σ_k`` use the Gaussian family's covariance structures (``"full"``,
``"tied"``, ``"diag"``, ``"spherical"``): their native tensors, constraints, whitening factors,
Mahalanobis distances, M-step estimates and prior statements. ``dof`` chooses how ``ν`` is
estimated: ``"free"`` (one per component, a root-find in EM, a ``pyro.param``/``pyro.sample``
site of shape ``(K,)``), ``"shared"`` (one for all) or a number (fixed, no site). Without a
prior ``ν`` lives in ``dof_bounds`` (EM's root-find and the program's interval constraint
agree); with a :class:`~.prior.StudentTPrior` it has a Gamma prior.
"""

from __future__ import annotations

from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from pyro import poutine
from torch import Tensor
from torch.distributions import constraints

from mixtures.core.family import COMPONENTS_PLATE, MixtureFamily, Statistics, register_family
from mixtures.core.summary import Summary, floored_counts
from mixtures.errors import ParameterError
from mixtures.families.gaussian import initialize as gaussian_start
from mixtures.families.gaussian.covariance import CovarianceStructure, get_structure
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.families.gaussian.standardize import Standardizer
from mixtures.families.student_t import dof as dof_rule
from mixtures.families.student_t import statistics
from mixtures.families.student_t.params import StudentTParams
from mixtures.families.student_t.prior import ResolvedStudentTPrior, StudentTPrior
from mixtures.families.weights import mode_weights, sample_weights, weight_site_values, weight_sites


@register_family
class StudentTMixture(Statistics, MixtureFamily):
    """A K-component mixture of multivariate t distributions (module docstring).

    Args:
        n_components: number of components K.
        covariance_type: the scale matrices' structure (a Gaussian covariance structure or its
            mclust name).
        dof: ``"free"`` (default), ``"shared"``, or a positive number (fixed degrees of freedom;
            a large one approaches the Gaussian mixture).
        dof_bounds: ``(low, high)`` where a free or shared ``ν`` is looked for without a prior.
        prior: ``None`` (maximum likelihood) or a :class:`~.prior.StudentTPrior` (a plain
            ``GaussianPrior`` is taken with ν's default Gamma(2, 0.1)); for MAP, SVI and NUTS.
    """

    name = "student_t"
    params_type = StudentTParams
    prior_type = StudentTPrior
    spec_fields = ("covariance_type", "dof", "dof_bounds")
    capabilities = frozenset({"program", "statistics"})

    def __init__(self, n_components: int, covariance_type: str | CovarianceStructure = "full", dof: Any = "free",
                 dof_bounds: Any = dof_rule.DEFAULT_DOF_BOUNDS, prior: Any = None):
        if prior is not None and not isinstance(prior, GaussianPrior):
            raise TypeError(f"prior must be a StudentTPrior or None; got {type(prior).__name__}.")
        if prior is not None and not isinstance(prior, StudentTPrior):
            prior = StudentTPrior.from_gaussian(prior)
        super().__init__(n_components, prior)
        self.cov_type: CovarianceStructure = get_structure(covariance_type)
        self.dof_mode, self.fixed_dof = dof_rule.parse_dof(dof)
        self.dof_bounds = dof_rule.parse_bounds(dof_bounds)

    @property
    def covariance_type(self) -> str:
        return self.cov_type.name

    def spec(self) -> dict[str, Any]:
        dof = self.fixed_dof if self.dof_mode == "fixed" else self.dof_mode
        return {"covariance_type": self.covariance_type, "dof": dof, "dof_bounds": list(self.dof_bounds)}

    def params_spec(self) -> dict[str, Any]:
        return {"covariance_type": self.covariance_type}

    def n_parameters(self, n_features: int) -> int:
        """``K − 1`` weights, ``K D`` locations, the structure's scale parameters, and ν: ``K`` (free),
        1 (shared) or 0 (fixed)."""
        K = self.n_components
        dof = {"free": K, "shared": 1, "fixed": 0}[self.dof_mode]
        return (K - 1) + K * n_features + self.cov_type.n_parameters(K, n_features) + dof

    # -- ν --------------------------------------------------------------------------------
    def initial_dof(self, like: Tensor) -> Tensor:
        """``ν`` ``(K,)`` of a start: the fixed value, or 10 within the bounds."""
        value = self.fixed_dof if self.dof_mode == "fixed" else min(max(dof_rule.INITIAL_DOF, self.dof_bounds[0]),
                                                                    self.dof_bounds[1])
        return like.new_full((self.n_components,), value)

    def _dof_value(self, dof: Tensor) -> Tensor:
        """A params' ``ν`` ``(K,)`` as the program's ``"dof"`` value (``()`` when shared), inside the bounds'
        open interval (the constraint's transform is infinite on its ends)."""
        low, high = self.dof_bounds
        inside = dof.clamp(low * (1 + 1e-12), high * (1 - 1e-12)) if self.prior is None else dof
        return inside[0].clone() if self.dof_mode == "shared" else inside

    def _dof_tensor(self, values: dict[str, Tensor], like: Tensor) -> Tensor:
        if self.dof_mode == "fixed":
            return like.new_full((self.n_components,), self.fixed_dof)
        return values["dof"].expand(self.n_components)

    # -- the program's pieces --------------------------------------------------------------
    def param_sites(self) -> dict[str, Any]:
        sites = {"weights": constraints.simplex, "locs": constraints.real, self.cov_type.site: self.cov_type.constraint}
        if self.dof_mode != "fixed":
            sites["dof"] = constraints.interval(*self.dof_bounds)
        return sites

    def values_from_params(self, params: StudentTParams) -> dict[str, Tensor]:
        values = {"weights": params.weights, "locs": params.locs, self.cov_type.site: params.native}
        if self.dof_mode != "fixed":
            values["dof"] = self._dof_value(params.dof)
        return values

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> StudentTParams:
        locs = values["locs"].detach()
        return StudentTParams.from_native(values["weights"].detach(), locs, values[self.cov_type.site].detach(),
                                          self._dof_tensor(values, locs).detach().clone(), self.cov_type,
                                          validate=validate)

    def prior_sites(self) -> tuple[str, ...]:
        structure = self.cov_type
        scales = structure.conjugate_sites if self.prior.kind == "conjugate" else structure.nonconjugate_sites
        return weight_sites(self.prior.weight_prior) + ("locs",) + scales + (("dof",) if self.dof_mode != "fixed"
                                                                            else ())

    def sample_globals(self, prior: ResolvedStudentTPrior) -> dict[str, Tensor]:
        weights = sample_weights(prior.weight_prior, prior.weight_concentration, self.n_components)
        declare = self.cov_type.declare_conjugate if prior.kind == "conjugate" else self.cov_type.declare_nonconjugate
        locs, native = declare(prior, self.n_components)
        values = {"weights": weights, "locs": locs, self.cov_type.site: native}
        if self.dof_mode == "free":
            with components_plate(self.n_components):
                values["dof"] = pyro.sample("dof", prior.dof_distribution())
        elif self.dof_mode == "shared":
            values["dof"] = pyro.sample("dof", prior.dof_distribution())
        return values

    def prior_site_values(self, params: StudentTParams) -> dict[str, Tensor]:
        values = {**weight_site_values(params.weights, self.prior.weight_prior), "locs": params.locs}
        if self.prior.kind == "conjugate":
            values.update(self.cov_type.conjugate_values(params.native, params.whitener()[0]))
        else:
            values.update(self.cov_type.nonconjugate_values(params.native, params.n_features))
        if self.dof_mode != "fixed":
            values["dof"] = self._dof_value(params.dof)
        return values

    def component_distribution(self, values: dict[str, Tensor], index: Tensor) -> Any:
        locs = values["locs"]
        K, D = locs.shape[-2:]
        scale_tril = self.cov_type.scale_tril(values[self.cov_type.site], K, D)
        return pdist.MultivariateStudentT(self._dof_tensor(values, locs)[index], locs[index], scale_tril[index])

    # -- hooks with defaults -----------------------------------------------------------------
    def standardizer(self, X: Tensor, distributed: bool = False) -> StudentTStandardizer:
        return StudentTStandardizer(X, self.cov_type, distributed)

    def with_global_prior(self, X: Tensor) -> StudentTMixture:
        """The prior's data-scaled defaults resolved on every rank's data (the Gaussian family's rule)."""
        if self.prior is None:
            return self
        gaussian = GaussianMixture(self.n_components, self.cov_type, prior=self.prior).with_global_prior(X)
        return self.with_prior(gaussian.prior)

    def with_weighted_prior(self, X: Tensor, sample_weight: Tensor, distributed: bool = False) -> StudentTMixture:
        """The prior's data-scaled defaults resolved on the weighted data (the Gaussian family's rule)."""
        if self.prior is None:
            return self
        gaussian = GaussianMixture(self.n_components, self.cov_type, prior=self.prior)
        return self.with_prior(gaussian.with_weighted_prior(X, sample_weight, distributed).prior)

    # -- initialization (the Gaussian starts, with ν added) --------------------------------------
    def _with_dof(self, start: MixtureParams, dof: Tensor | None = None) -> StudentTParams:
        dof = self.initial_dof(start.locs) if dof is None else dof
        return StudentTParams.from_native(start.weights, start.locs, start.native, dof, self.cov_type,
                                          validate=False)

    def params_from_responsibilities(self, X: Tensor, resp: Tensor, reg_covar: float = 1e-6,
                                     on_collapse: str = "error") -> StudentTParams:
        """The CM step with every scale ``u = 1`` (the Gaussian M step) and ν's start."""
        return self._with_dof(gaussian_start.params_from_responsibilities(self.cov_type, X, resp, reg_covar,
                                                                          on_collapse))

    def params_from_centres(self, X: Tensor, centres: Tensor, reg_covar: float = 1e-6,
                            on_collapse: str = "error") -> StudentTParams:
        return self._with_dof(gaussian_start.params_from_centres(self.cov_type, X, centres, reg_covar, on_collapse))

    def params_from_dict(self, values: dict[str, Any], X: Tensor, reg_covar: float = 1e-6,
                         on_collapse: str = "error") -> StudentTParams:
        """``{"locs", "weights"?, "scales"?, "dof"?}`` (``scales``: the scale matrices; missing ones as
        the Gaussian family's dict start)."""
        unknown = set(values) - {"weights", "locs", "scales", "dof"}
        if unknown:
            raise ParameterError(f"a t mixture's init dict takes locs, weights, scales and dof; got {sorted(unknown)}.")
        given = {("covariances" if key == "scales" else key): value for key, value in values.items() if key != "dof"}
        start = gaussian_start.params_from_dict(self.cov_type, self.n_components, given, X, reg_covar, on_collapse)
        dof = None
        if "dof" in values:
            dof = StudentTParams(start.weights, start.locs, start.covariances, values["dof"], self.cov_type).dof
        return self.check_params(self._with_dof(start, dof))

    # -- capability "statistics" ------------------------------------------------------------------
    def e_step(self, X: Any, params: StudentTParams, shift: Tensor, hard: bool = False,
               chunk_size: int | None = None, accumulate_dtype: torch.dtype | None = None,
               sample_weight: Tensor | None = None) -> Summary:
        return statistics.e_step(X, params, shift, hard, chunk_size, accumulate_dtype, sample_weight)

    def summarize(self, X: Tensor, resp: Tensor, shift: Tensor | None = None,
                  chunk_size: int | None = None) -> Summary:
        """Statistics of ``resp`` with every scale ``u = 1`` (no parameters to weigh them at)."""
        shift = X.mean(0) if shift is None else shift
        return statistics.unit_scale_summary(X, resp, self.cov_type, shift)

    def summarize_at(self, X: Tensor, params: StudentTParams, resp: Tensor, shift: Tensor) -> Summary:
        return statistics.summarize_at(X, params, resp, shift)

    def m_step(self, summary: Summary, reg_covar: float, prior: Any = None, keep: Tensor | None = None,
               previous: StudentTParams | None = None) -> StudentTParams:
        """CM step 1 then CM step 2 on the E step's statistics (:mod:`.statistics`); ``keep``: hard EM's
        emptied components keep ``previous``'s values."""
        if prior is not None:
            raise ValueError(
                "MAP-EM (EM with a prior) is not available for t mixtures: the conjugate posterior mode does not "
                "carry over to the scale-weighted statistics. Fit the same prior through the program with "
                "method='map', 'svi' or 'nuts', or use EM without a prior.")
        kept = keep is not None and previous is not None and bool(keep.any())
        estimating = statistics.keep_components(summary, previous, keep) if kept else summary
        dof = statistics.dof_step(summary, self.dof_mode, self.dof_bounds, self.fixed_dof)
        params = statistics.cm_step(estimating, self.cov_type, reg_covar, dof)
        if not kept:
            return params
        previous = previous.to(params.dtype)
        locs = torch.where(keep[:, None], previous.locs, params.locs)
        native = params.native
        if not self.cov_type.shared:
            native = torch.where(keep.reshape((-1,) + (1,) * (native.dim() - 1)), previous.native, native)
        return StudentTParams.from_native(self.mode_weights(summary.nk), locs, native,
                                          torch.where(keep, previous.dof, params.dof), self.cov_type, validate=False)

    def mode_weights(self, nk: Tensor, prior: Any = None) -> Tensor:
        if prior is not None:
            return mode_weights(nk, prior.weight_prior, prior.weight_concentration)
        floored = floored_counts(nk)
        return floored / floored.sum()

    def elbo(self, summary: Summary, params: StudentTParams) -> Tensor:
        return statistics.elbo(summary, params)

    def reseed_component(self, summary: Summary, component: int) -> Summary | None:
        """``component`` restarts at the pass's worst-explained point with the data's pooled scale matrix."""
        if self.cov_type.shared or summary.worst_point is None:
            return None
        return statistics.with_component(summary, component, self.cov_type, summary.nk.sum(),
                                         summary.worst_point - summary.shift)

    def pooled_component(self, summary: Summary, component: int) -> Summary | None:
        if self.cov_type.shared:
            return None
        tiny = 10 * torch.finfo(summary.nk.dtype).eps
        mass = summary.nk[component].clamp_min(tiny)
        point = summary.sux[component] / summary.su[component].clamp_min(tiny)
        return statistics.with_component(summary, component, self.cov_type, mass, point)


def components_plate(n_components: int) -> Any:
    """The ``"components"`` plate for one more site.

    The covariance structure's statements already opened a plate of that name, and a trace
    holds one plate site per name; the plate's own (subsample) site is hidden, so the new
    site carries the ``"components"`` frame (what NUTS' relabelling reads) without a second plate site.
    """
    with poutine.block(hide=[COMPONENTS_PLATE]):
        return pyro.plate(COMPONENTS_PLATE, n_components)


class StudentTStandardizer:
    """The Gaussian family's affine map ``x ↦ (x − centre) / scale`` on data and t parameters
    (locations and scale matrices map as a Gaussian's means and covariances; ν is unit-free)."""

    def __init__(self, X: Tensor, structure: CovarianceStructure, distributed: bool = False):
        self.gaussian = Standardizer(X, structure, distributed)
        self.log_jacobian = self.gaussian.log_jacobian
        self.scale = self.gaussian.scale  # (D,)

    def data(self, X: Tensor) -> Tensor:
        return self.gaussian.data(X)

    def params(self, params: StudentTParams, inverse: bool = False) -> StudentTParams:
        scale = self.gaussian.params(params.scale, inverse)
        return StudentTParams.from_native(scale.weights, scale.locs, scale.native, params.dof, scale.cov_type,
                                          validate=False)
