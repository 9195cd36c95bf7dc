"""The Gaussian family: ``GaussianMixture`` and everything only Gaussian mixtures have.

Modules: ``model`` (the family: program pieces and capabilities), ``params``
(``MixtureParams``), ``covariance/`` (one module per covariance structure), ``priors``
(``GaussianPrior``), ``statistics`` (the fused E step, M step, ELBO), ``conjugate``
(MAP-EM's posterior mode), ``variational`` (CAVI's updates and bounds), ``partition``
(the mixture a partition induces), ``initialize`` (parameters from an initializer's
output), ``standardize`` (the affine map of gradient routines), ``distributions`` (Pyro
component distributions whose enumerated ``log_prob`` is one matrix product) and
``transforms`` (the unconstrained space of Wishart sites).
"""

from mixtures.families.gaussian.covariance import COVARIANCE_TYPES, STRUCTURES, get_structure
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior

__all__ = ["GaussianMixture", "MixtureParams", "GaussianPrior", "COVARIANCE_TYPES", "STRUCTURES", "get_structure"]
