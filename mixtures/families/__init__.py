"""Mixture families, each in its own folder, written against :mod:`mixtures.core.family`.

``gaussian/`` is the first family (every routine); ``poisson/`` is a small second one
(counts) written only against the protocol. Importing this package registers them, so
saved results of any family can be loaded (:func:`mixtures.core.family.get_family`).
"""

from mixtures.core.family import FAMILIES, get_family
from mixtures.families.gaussian import GaussianMixture, GaussianPrior, MixtureParams
from mixtures.families.poisson import PoissonMixture, PoissonParams, PoissonPrior

__all__ = ["FAMILIES", "get_family", "GaussianMixture", "GaussianPrior", "MixtureParams", "PoissonMixture",
           "PoissonParams", "PoissonPrior"]
