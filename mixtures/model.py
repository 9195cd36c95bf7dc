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
from typing import Any, Iterator

import pyro
import pyro.distributions as pdist
from torch import Tensor
from torch.distributions import constraints

from mixtures.covariance import CovarianceType, get_covariance_type
from mixtures.errors import ParameterError
from mixtures.params import MixtureParams
from mixtures.validation import check_positive_int

#: the Pyro site names of the program
DATA_PLATE = "data"
ASSIGNMENT = "assignment"
OBS = "obs"


class GaussianMixture:
    """A K-component Gaussian mixture with a given covariance type.

    Args:
        n_components: number of components K.
        covariance_type: ``"full"`` (default), ``"tied"``, ``"diag"`` or
            ``"spherical"``. One-dimensional data is D = 1 of any type.
        prior: optional prior over the globals (a later extension point; ``None``
            means maximum likelihood and ``pyro.param`` globals).

    The object holds the *specification* only; fitted values live in a
    :class:`~mixtures.result.FitResult`.
    """

    def __init__(self, n_components: int, covariance_type: str = "full", prior: Any = None):
        self.n_components = check_positive_int(n_components, "n_components")
        self.cov_type: CovarianceType = get_covariance_type(covariance_type)
        if prior is not None:
            raise NotImplementedError("priors are not available yet; pass prior=None")
        self.prior = prior

    @property
    def covariance_type(self) -> str:
        return self.cov_type.name

    @property
    def global_sites(self) -> tuple[str, str, str]:
        """Names of the global sites: ``("weights", "locs", <covariance site>)``."""
        return ("weights", "locs", self.cov_type.site)

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
    def globals(self, init: MixtureParams | None = None) -> dict[str, Tensor]:
        """Declare the global sites and return their current values.

        ``init`` supplies initial values for ``pyro.param`` sites the parameter
        store does not hold yet.
        """
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
        g = self.globals(params)
        with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=subsample_size) as rows:
            z = pyro.sample(ASSIGNMENT, pdist.Categorical(g["weights"]),
                            infer={"enumerate": "parallel"})
            component = self.cov_type.component_distribution(g["locs"], g[self.cov_type.site], z)
            pyro.sample(OBS, component, obs=X[rows] if subsample_size else X)
        return z

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> MixtureParams:
        """``MixtureParams`` from a dict of global site values (detached)."""
        return MixtureParams.from_native(
            values["weights"].detach(), values["locs"].detach(),
            values[self.cov_type.site].detach(), self.cov_type, validate=validate)

    def __repr__(self) -> str:
        return (f"GaussianMixture(n_components={self.n_components}, "
                f"covariance_type={self.covariance_type!r})")


@contextlib.contextmanager
def fresh_param_store() -> Iterator[dict]:
    """Run Pyro code against an empty parameter store; the caller's store is restored."""
    with pyro.get_param_store().scope() as state:
        yield state
