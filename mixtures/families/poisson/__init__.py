"""The Poisson family: mixtures of independent Poissons for count data (``PoissonMixture``).

A small second family that proves the seam: two modules written only against
:mod:`mixtures.core.family`, and MAP, SVI, NUTS, EM, hard EM and stepwise EM run on it
unchanged.
"""

from mixtures.families.poisson.model import PoissonMixture, PoissonPrior
from mixtures.families.poisson.params import PoissonParams

__all__ = ["PoissonMixture", "PoissonPrior", "PoissonParams"]
