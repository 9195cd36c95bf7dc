"""Gaussian mixtures declared once as a Pyro program, fitted by interchangeable routines.

>>> import mixtures
>>> X = mixtures.data.old_faithful()
>>> model = mixtures.GaussianMixture(2, "full")
>>> result = mixtures.fit(model, X, method="em", init="kmeans++", seed=0)
>>> result.history["log_likelihood"]
"""

from mixtures import data
from mixtures.errors import (
                             ConvergenceWarning,
                             DataError,
                             DivergenceError,
                             ParameterError,
                             PosteriorModeError,
                             SingularCovarianceError,
)
from mixtures.inference import fit
from mixtures.inference.em import EMStep
from mixtures.io import load
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.result import FitResult, History

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture", "MixtureParams", "fit", "FitResult", "History", "EMStep", "data", "load",
    "ConvergenceWarning", "DataError", "DivergenceError", "ParameterError", "PosteriorModeError",
    "SingularCovarianceError",
]
