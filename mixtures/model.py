"""``GaussianMixture``: the mixture declared once, as a Pyro program.

The generative story, for ``n = 1..N``::

    z_n ~ Categorical(weights)                 # site "assignment", enumerable
    x_n | z_n ~ Normal(locs[z_n], Σ[z_n])      # site "obs"

Without a prior the globals (``weights``, ``locs`` and the covariance's native
tensor, see :mod:`mixtures.covariance`) are ``pyro.param`` sites with the right
constraints; with a prior they become ``pyro.sample`` sites. Closed-form routines
(EM, k-means, ...) never run the program: they use the same densities through
:class:`~mixtures.params.MixtureParams`. Pyro routines (MAP, SVI, NUTS) run
``model.model`` itself, and the test suite checks that both agree to 1e-8.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from pyro import poutine
from torch import Tensor
from torch.distributions import constraints

import mixtures.transforms  # noqa: F401  (biject_to(positive_definite) for Wishart sites)
from mixtures.covariance import CovarianceType, get_covariance_type
from mixtures.errors import ParameterError
from mixtures.params import MixtureParams
from mixtures.priors import GaussianPrior, ResolvedPrior, inverse_stick_breaking, stick_breaking
from mixtures.validation import check_positive_int

#: the Pyro site names of the program
DATA_PLATE = "data"
COMPONENTS_PLATE = "components"
ASSIGNMENT = "assignment"
OBS = "obs"


class GaussianMixture:
    """A K-component Gaussian mixture with a given covariance type.

    Args:
        n_components: number of components K.
        covariance_type: ``"full"`` (default), ``"tied"``, ``"diag"`` or
            ``"spherical"``. One-dimensional data is D = 1 of any type.
        prior: optional :class:`~mixtures.priors.GaussianPrior`; ``None`` means
            maximum likelihood and ``pyro.param`` globals, a prior turns the globals
            into ``pyro.sample`` sites (see :mod:`mixtures.priors` for the sites).

    The object holds the *specification* only; fitted values live in a
    :class:`~mixtures.result.FitResult`.
    """

    def __init__(self, n_components: int, covariance_type: str = "full", prior: Any = None):
        self.n_components = check_positive_int(n_components, "n_components")
        self.cov_type: CovarianceType = get_covariance_type(covariance_type)
        if prior is not None and not isinstance(prior, GaussianPrior):
            raise TypeError(f"prior must be a mixtures.priors.GaussianPrior or None; got {type(prior).__name__}.")
        self.prior: GaussianPrior | None = prior
        self._resolved: tuple[weakref.ref, int, ResolvedPrior] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # the resolved-prior cache (a weak reference) is not part of the model's state
        return {**self.__dict__, "_resolved": None}

    @property
    def covariance_type(self) -> str:
        return self.cov_type.name

    @property
    def global_sites(self) -> tuple[str, ...]:
        """Names of the global sites.

        Without a prior: the ``pyro.param`` sites ``("weights", "locs", <native
        covariance site>)``. With a prior: the latent ``pyro.sample`` sites (e.g.
        ``("weights", "locs", "precision")``), see :mod:`mixtures.priors`.
        """
        if self.prior is None:
            return ("weights", "locs", self.cov_type.site)
        weights = ("weights",) if self.prior.weight_prior == "dirichlet" else ("stick_fractions",)
        if self.prior.kind == "conjugate":
            return weights + ("locs", "precision")
        correlation = ("corr_chol",) if self.cov_type.name in ("full", "tied") else ()
        return weights + ("locs",) + correlation + ("scales",)

    def resolved_prior(self, X: Tensor) -> ResolvedPrior:
        """The prior with data-scaled defaults filled in from ``X`` ``(N, D)`` (cached per tensor)."""
        if self.prior is None:
            raise ValueError("this model has no prior; give GaussianMixture(..., prior=GaussianPrior()).")
        # Keyed by the tensor's identity (a weak reference: a new tensor at a freed one's
        # address is new data) and its version counter (in-place writes invalidate).
        cached = self._resolved
        if cached is not None and cached[0]() is X and cached[1] == X._version:
            return cached[2]
        resolved = self.prior.resolve(X, self.n_components, self.cov_type)
        self._resolved = (weakref.ref(X), X._version, resolved)
        return resolved

    def n_parameters(self, n_features: int) -> int:
        """Free parameters: ``K - 1`` weights, ``K D`` means, and the covariances'.

        Covariances: full ``K D (D + 1) / 2``, tied ``D (D + 1) / 2``, diag ``K D``,
        spherical ``K``.
        """
        K = self.n_components
        return (K - 1) + K * n_features + self.cov_type.n_parameters(K, n_features)

    def check_params(self, params: MixtureParams) -> MixtureParams:
        """Raise unless ``params`` has this model's K and covariance type."""
        if params.n_components != self.n_components or params.covariance_type != self.covariance_type:
            raise ParameterError(
                f"parameters with K={params.n_components}, covariance_type={params.covariance_type!r} "
                f"do not fit this model (K={self.n_components}, "
                f"covariance_type={self.covariance_type!r})."
            )
        return params

    # -- the Pyro program -------------------------------------------------------------
    def globals(self, init: MixtureParams | None = None, X: Tensor | None = None) -> dict[str, Tensor]:
        """Declare the global sites; return ``{"weights", "locs", <native site>}`` values.

        Without a prior, ``init`` supplies initial values for ``pyro.param`` sites
        the parameter store does not hold yet. With a prior, the globals are
        sampled from it (its defaults resolved on the full data ``X``).
        """
        if self.prior is not None:
            return self._sample_globals(self.resolved_prior(X))
        values = {}
        inits = {} if init is None else {"weights": init.weights, "locs": init.locs,
                                           self.cov_type.site: init.native}
        site_constraints = {"weights": constraints.simplex, "locs": constraints.real,
                            self.cov_type.site: self.cov_type.constraint}
        store = pyro.get_param_store()
        for name in self.global_sites:
            if name not in store and name not in inits:
                raise ParameterError(
                    f"Pyro parameter {name!r} has no value: pass params=MixtureParams(...) to "
                    "model.model, or run the program inside a fitting routine."
                )
            if name in store and name in inits and not _same_values(store[name], inits[name]):
                # pyro.param would silently keep the stored value and ignore the given one
                raise ParameterError(
                    f"Pyro's parameter store already holds other values for {name!r} (from an earlier "
                    "program run), so the given params would be ignored. Run the program inside "
                    "mixtures.model.fresh_param_store(), or call pyro.clear_param_store() first."
                )
            # Cloned: Pyro optimizers update parameters in place and must not write
            # into tensors the caller owns.
            values[name] = pyro.param(name, lambda name=name: inits[name].detach().clone(),
                                      constraint=site_constraints[name])
        return values

    def model(self, X: Tensor | None, params: MixtureParams | None = None,
              subsample_size: int | None = None) -> Tensor:
        """The Pyro program ``p(X, z | θ)``.

        Args:
            X: ``(N, D)`` observations.
            params: initial values of the global ``pyro.param`` sites.
            subsample_size: minibatch size of the data plate (the log-likelihood
                is rescaled by ``N / subsample_size``).

        Returns:
            The assignments ``(N,)`` (or ``(B,)`` when subsampled); under parallel
            enumeration they carry enumeration dimensions on the left.
        """
        g = self.globals(params, X)
        with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=subsample_size) as rows:
            z = pyro.sample(ASSIGNMENT, pdist.Categorical(g["weights"]),
                            infer={"enumerate": "parallel"})
            component = self.cov_type.component_distribution(g["locs"], g[self.cov_type.site], z)
            pyro.sample(OBS, component, obs=X[rows] if subsample_size else X)
        return z

    def _sample_globals(self, prior: ResolvedPrior) -> dict[str, Tensor]:
        """The prior's ``pyro.sample`` sites; returns weights, locs and the native covariance."""
        K, D = self.n_components, prior.n_features
        if prior.weight_prior == "dirichlet":
            weights = pyro.sample("weights", pdist.Dirichlet(prior.weight_concentration))
        else:
            gamma = prior.weight_concentration
            fractions = pyro.sample("stick_fractions", pdist.Beta(
                torch.ones_like(gamma).expand(K - 1), gamma.expand(K - 1)).to_event(1))
            weights = stick_breaking(fractions)
        shared = self.cov_type.name == "tied"
        m0, beta0 = prior.mean_prior, prior.mean_precision
        if prior.kind == "conjugate":
            psi, dof = prior.covariance_prior, prior.degrees_of_freedom
            if self.cov_type.site == "scale_tril":
                wishart = pdist.Wishart(dof, precision_matrix=psi)
                if shared:
                    precision = pyro.sample("precision", wishart)
                with pyro.plate(COMPONENTS_PLATE, K):
                    if not shared:
                        precision = pyro.sample("precision", wishart)
                    locs = pyro.sample("locs", pdist.MultivariateNormal(m0, precision_matrix=beta0 * precision))
                native = precision_to_scale_tril(precision)
            else:
                rate = 0.5 * psi
                gamma_prior = pdist.Gamma(0.5 * dof, rate)
                with pyro.plate(COMPONENTS_PLATE, K):
                    if self.cov_type.name == "diag":
                        precision = pyro.sample("precision", gamma_prior.to_event(1))
                        scale = (beta0 * precision).rsqrt()
                    else:
                        precision = pyro.sample("precision", gamma_prior)
                        scale = (beta0 * precision).rsqrt().unsqueeze(-1).expand(K, D)
                    locs = pyro.sample("locs", pdist.Normal(m0, scale).to_event(1))
                native = precision.reciprocal()
            return {"weights": weights, "locs": locs, self.cov_type.site: native}
        # non-conjugate
        s = prior.scale_prior_scale
        if prior.spec.scale_prior == "half_cauchy":
            make_scale = lambda scale: pdist.HalfCauchy(scale)  # noqa: E731
        else:
            make_scale = lambda scale: pdist.LogNormal(scale.log(), torch.ones_like(scale))  # noqa: E731
        eta = torch.as_tensor(prior.spec.lkj_concentration, dtype=m0.dtype, device=m0.device)

        def correlation():
            if D == 1:
                return torch.ones(1, 1, dtype=m0.dtype, device=m0.device)
            return pyro.sample("corr_chol", pdist.LKJCholesky(D, eta))

        if shared:
            corr = correlation()
            scales = pyro.sample("scales", make_scale(s).to_event(1))
        with pyro.plate(COMPONENTS_PLATE, K):
            locs = pyro.sample("locs", pdist.Normal(m0, s / beta0.sqrt()).to_event(1))
            if self.cov_type.name == "full":
                corr = correlation()
                scales = pyro.sample("scales", make_scale(s).to_event(1))
            elif self.cov_type.name == "diag":
                scales = pyro.sample("scales", make_scale(s).to_event(1))
            elif self.cov_type.name == "spherical":
                scales = pyro.sample("scales", make_scale(s.mean()))
        if self.cov_type.site == "scale_tril":
            native = scales.unsqueeze(-1) * corr
        else:
            native = scales.square()
        return {"weights": weights, "locs": locs, self.cov_type.site: native}

    def site_values(self, params: MixtureParams) -> dict[str, Tensor]:
        """Values of :attr:`global_sites` that correspond to ``params`` (inverse of the model's maps)."""
        self.check_params(params)
        if self.prior is None:
            return {"weights": params.weights, "locs": params.locs, self.cov_type.site: params.native}
        values: dict[str, Tensor] = {"locs": params.locs}
        if self.prior.weight_prior == "dirichlet":
            values["weights"] = params.weights
        else:
            values["stick_fractions"] = inverse_stick_breaking(params.weights)
        if self.prior.kind == "conjugate":
            if self.cov_type.site == "scale_tril":
                whitening = params.whitener()[0]
                values["precision"] = whitening.transpose(-1, -2) @ whitening
            else:
                values["precision"] = params.native.reciprocal()
            return values
        if self.cov_type.site == "scale_tril":
            scales = params.native.square().sum(-1).sqrt()  # row norms of L = sqrt(diag Σ)
            if params.n_features > 1:
                values["corr_chol"] = params.native / scales.unsqueeze(-1)
            values["scales"] = scales
        else:
            values["scales"] = params.native.sqrt()
        return values

    def log_prior(self, params: MixtureParams, X: Tensor) -> Tensor:
        """``log p(θ)`` of the prior at ``params`` (0 without a prior); ``X`` resolves defaults."""
        if self.prior is None:
            return params.locs.new_zeros(())
        prior = self.resolved_prior(X)
        conditioned = poutine.condition(self._sample_globals, data=self.site_values(params))
        return poutine.trace(conditioned).get_trace(prior).log_prob_sum()

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> MixtureParams:
        """``MixtureParams`` from a dict of ``weights``, ``locs`` and native values (detached)."""
        return MixtureParams.from_native(
            values["weights"].detach(), values["locs"].detach(),
            values[self.cov_type.site].detach(), self.cov_type, validate=validate)

    def params_from_sites(self, site_values: dict[str, Tensor], X: Tensor) -> MixtureParams:
        """``MixtureParams`` from values of :attr:`global_sites` (e.g. a posterior draw)."""
        if self.prior is None:
            return self.params_from_values(site_values)
        conditioned = poutine.condition(self._sample_globals, data=site_values)
        with poutine.block():
            values = conditioned(self.resolved_prior(X))
        return self.params_from_values(values)

    def __repr__(self) -> str:
        return (f"GaussianMixture(n_components={self.n_components}, "
                f"covariance_type={self.covariance_type!r})")


def _same_values(stored: Tensor, given: Tensor) -> bool:
    """Whether a stored parameter holds ``given`` (up to its constraint's round trip)."""
    stored = stored.detach()
    return stored.shape == given.shape and torch.allclose(stored, given.to(stored), rtol=1e-9, atol=1e-12)


def precision_to_scale_tril(precision: Tensor) -> Tensor:
    """Lower Cholesky factor of ``precision⁻¹`` ``(..., D, D)`` without inverting ``precision``.

    Factor the index-reversed precision, then invert that small triangular factor.
    """
    flipped = torch.linalg.cholesky(torch.flip(precision, (-2, -1)))
    inverse_factor = torch.flip(flipped, (-2, -1)).transpose(-1, -2)
    eye = torch.eye(precision.shape[-1], dtype=precision.dtype, device=precision.device)
    return torch.linalg.solve_triangular(inverse_factor, eye.expand_as(precision), upper=False)


@contextlib.contextmanager
def fresh_param_store() -> Iterator[dict]:
    """Run Pyro code against an empty parameter store; the caller's store is restored."""
    with pyro.get_param_store().scope() as state:
        yield state
