"""The Student-t family: mixtures of multivariate t distributions (``StudentTMixture``), robust to outliers.

Modules: ``model`` (the family: program pieces, starts, capability "statistics"), ``params``
(``StudentTParams`` and the t log density), ``statistics`` (ECM's E step with the latent
precision weights, CM steps, ELBO), ``dof`` (how ν is estimated: free, shared or fixed, and
the root-find) and ``prior`` (``StudentTPrior``: the Gaussian family's prior plus a Gamma on ν).
The scale matrices reuse the Gaussian family's covariance structures.
"""

from mixtures.families.student_t.model import StudentTMixture
from mixtures.families.student_t.params import StudentTParams
from mixtures.families.student_t.prior import StudentTPrior

__all__ = ["StudentTMixture", "StudentTParams", "StudentTPrior"]
