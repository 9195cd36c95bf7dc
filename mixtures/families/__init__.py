"""Mixture families, each in its own folder, written against :mod:`mixtures.core.family`.

``gaussian/`` is the first family (every routine); ``poisson/`` is a small second one
(counts) written only against the protocol; ``student_t/`` (robust t mixtures) reuses the
Gaussian covariance structures; ``noise/`` wraps any of them with a uniform noise component.
Importing this package registers them, so saved results of any family can be loaded
(:func:`mixtures.core.family.get_family`).
"""

from mixtures.core.family import FAMILIES, get_family
from mixtures.families.gaussian import GaussianMixture, GaussianPrior, MixtureParams
from mixtures.families.noise import NoiseRegion, NoisyMixture, NoisyParams
from mixtures.families.poisson import PoissonMixture, PoissonParams, PoissonPrior
from mixtures.families.student_t import StudentTMixture, StudentTParams, StudentTPrior

__all__ = ["FAMILIES", "get_family", "GaussianMixture", "GaussianPrior", "MixtureParams", "PoissonMixture",
           "PoissonParams", "PoissonPrior", "StudentTMixture", "StudentTParams", "StudentTPrior",
           "NoisyMixture", "NoisyParams", "NoiseRegion"]
