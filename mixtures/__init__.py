"""Mixture models declared once as Pyro programs, fitted by interchangeable routines.

>>> import mixtures
>>> X = mixtures.data.old_faithful()
>>> model = mixtures.GaussianMixture(2, "full")
>>> result = mixtures.fit(model, X, method="em", init="kmeans++", seed=0)
>>> result.history["log_likelihood"]

Layers (each imports only the ones below it; ``pyproject.toml``'s import contract checks it):
``core`` and ``kernels`` → ``families`` → ``init`` → ``inference`` → ``evaluation``, ``io``,
``data`` → ``plot``, ``sklearn`` → ``experiment`` → ``cli``.
"""

from mixtures import _compat, data
from mixtures.core.history import History
from mixtures.core.posterior import Posterior
from mixtures.core.result import FitResult
from mixtures.core.version import VERSION
from mixtures.errors import (
    ConvergenceWarning,
    DataError,
    DegenerateStartError,
    DivergenceError,
    ParameterError,
    PosteriorModeError,
    SingularCovarianceError,
)
from mixtures.evaluation import BootstrapResult, LRTResult, bootstrap, bootstrap_lrt
from mixtures.families import (
    GaussianMixture,
    GaussianPrior,
    MixtureParams,
    NoiseRegion,
    NoisyMixture,
    NoisyParams,
    PoissonMixture,
    PoissonParams,
    PoissonPrior,
    StudentTMixture,
    StudentTParams,
    StudentTPrior,
)
from mixtures.inference import ROUTINES, fit
from mixtures.inference.em import EMStep
from mixtures.io import load

_compat.install()

__version__ = VERSION

__all__ = [
    "GaussianMixture", "GaussianPrior", "MixtureParams", "PoissonMixture", "PoissonPrior", "PoissonParams",
    "fit", "ROUTINES", "FitResult", "History", "Posterior", "EMStep", "data", "load",
    "ConvergenceWarning", "DataError", "DegenerateStartError", "DivergenceError", "ParameterError",
    "PosteriorModeError", "SingularCovarianceError",
    "bootstrap", "bootstrap_lrt", "BootstrapResult", "LRTResult",
    "StudentTMixture", "StudentTParams", "StudentTPrior", "NoisyMixture", "NoisyParams", "NoiseRegion",
]
