"""Exceptions and warnings raised by ``mixtures``.

Every error says what is wrong and how to fix it; they subclass the builtin a
caller would naturally catch (``ValueError`` for bad input, ``FloatingPointError``
for numerical breakdown).
"""

from __future__ import annotations


class DataError(ValueError):
    """The data given to a routine is unusable (NaN, wrong shape, too few points...)."""


class ParameterError(ValueError):
    """Mixture parameters are inconsistent (shapes, simplex, positive definiteness)."""


class SingularCovarianceError(ParameterError):
    """A covariance matrix is not (numerically) symmetric positive definite.

    ``component`` is the index of the offending component (None for a shared one).
    """

    def __init__(self, message: str, component: int | None = None):
        super().__init__(message)
        self.component = component


class PosteriorModeError(ParameterError):
    """MAP-EM's M step has no usable posterior mode for a component.

    Raised for a component holding less than one point of responsibility under a
    prior that gives an empty component no mode (a weight concentration below 1,
    or too few covariance degrees of freedom); see :mod:`mixtures.conjugate`.

    Attributes:
        component: index of the offending component.
        n_k: its responsibility mass ``N_k`` (for a stick-breaking tail, the tail's).
        fields: the ``GaussianPrior`` fields responsible, e.g. ``("weight_concentration",)``.
    """

    def __init__(self, message: str, component: int | None = None, n_k: float | None = None,
                 fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.component = component
        self.n_k = n_k
        self.fields = fields


class DegenerateStartError(ParameterError):
    """A fit's start has dead components: they hold (numerically) no responsibility (a weight
    of 0, a mean far from every point, a responsibility column of zeros), so no routine can
    revive them; or some point has zero density under every component.

    ``components`` lists the dead components (empty when only points are unexplained).
    """

    def __init__(self, message: str, components: list[int] | None = None):
        super().__init__(message)
        self.components = list(components or [])


class DivergenceError(FloatingPointError):
    """A fit produced a non-finite objective (a component collapsed onto points)."""


class ConvergenceWarning(UserWarning):
    """A routine stopped at ``max_iter`` before meeting its tolerance."""
