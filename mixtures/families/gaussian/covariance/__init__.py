"""Covariance structures of the Gaussian family, one module each, registered here once.

``STRUCTURES`` maps every structure's name to its (stateless) instance; ``get_structure``
also accepts a structure's aliases. Adding a structure: write ``<name>.py`` with a
:class:`~.base.CovarianceStructure` subclass and add it to ``_REGISTERED`` below.

Names: all fourteen of mclust's structures (``Σ_k = λ_k D_k A_k D_kᵀ``, :mod:`.eigen`) answer to
mclust's three letters. scikit-learn's four keep their names as the canonical ones (``"full"``
= VVV, ``"tied"`` = EEE, ``"diag"`` = VVI, ``"spherical"`` = VII) and take mclust's as aliases;
the other ten are canonical under mclust's names. So a saved fit, a results table or a
scikit-learn estimator that says ``"full"`` still says ``"full"``, and nothing that already
worked changes name; ``structure.mclust_name`` gives every structure's three letters (tables
of :mod:`mixtures.evaluation.selection` use them). ``"E"`` and ``"V"`` (mclust's names for
one-dimensional data) are aliases of EII and VII, which they equal for D = 1.
"""

from __future__ import annotations

from mixtures.core.validation import did_you_mean
from mixtures.families.gaussian.covariance.base import (
    CovarianceStructure,
    TrilStructure,
    VarianceStructure,
    cholesky_checked,
    precision_to_scale_tril,
)
from mixtures.families.gaussian.covariance.diag import DiagCovariance
from mixtures.families.gaussian.covariance.eei import EEICovariance
from mixtures.families.gaussian.covariance.eev import EEVCovariance
from mixtures.families.gaussian.covariance.eii import EIICovariance
from mixtures.families.gaussian.covariance.eve import EVECovariance
from mixtures.families.gaussian.covariance.evi import EVICovariance
from mixtures.families.gaussian.covariance.evv import EVVCovariance
from mixtures.families.gaussian.covariance.full import FullCovariance
from mixtures.families.gaussian.covariance.spherical import SphericalCovariance
from mixtures.families.gaussian.covariance.tied import TiedCovariance
from mixtures.families.gaussian.covariance.vee import VEECovariance
from mixtures.families.gaussian.covariance.vei import VEICovariance
from mixtures.families.gaussian.covariance.vev import VEVCovariance
from mixtures.families.gaussian.covariance.vve import VVECovariance

# scikit-learn's four first (their order is the plots' colours), then mclust's other ten in its order
_REGISTERED = (FullCovariance, TiedCovariance, DiagCovariance, SphericalCovariance,
               EIICovariance, EEICovariance, VEICovariance, EVICovariance, VEECovariance, EVECovariance,
               VVECovariance, EEVCovariance, VEVCovariance, EVVCovariance)

STRUCTURES: dict[str, CovarianceStructure] = {cls.name: cls() for cls in _REGISTERED}
#: the structures' names, in registration order (the one list of them in the package)
COVARIANCE_TYPES: tuple[str, ...] = tuple(STRUCTURES)
_ALIASES = {alias: structure for structure in STRUCTURES.values() for alias in structure.aliases}
#: the fourteen under mclust's names, in mclust's order (``mclust.options("emModelNames")``)
MCLUST_NAMES: tuple[str, ...] = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV",
                                 "EVV", "VVV")


def structure_names() -> tuple[str, ...]:
    """Every name a registered structure answers to: its name, then the aliases (mclust's
    ``VVV``, ``EEE``...), read from the registry at the call."""
    names = tuple(STRUCTURES)
    return names + tuple(alias for structure in STRUCTURES.values() for alias in structure.aliases
                         if alias not in names)


def get_structure(name: str | CovarianceStructure) -> CovarianceStructure:
    """A structure by name or alias, with a clear error for unknown names."""
    if isinstance(name, CovarianceStructure):
        return name
    try:
        return STRUCTURES.get(name) or _ALIASES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown covariance_type {name!r}{did_you_mean(name, STRUCTURES)}; choose one of "
                         f"{list(COVARIANCE_TYPES)} (or their mclust names "
                         f"{sorted(_ALIASES)}).") from None


#: the names of the first version (before structures were modules)
CovarianceType = CovarianceStructure
get_covariance_type = get_structure

__all__ = ["STRUCTURES", "COVARIANCE_TYPES", "MCLUST_NAMES", "get_structure", "structure_names", "CovarianceStructure",
           "TrilStructure", "VarianceStructure", "cholesky_checked", "precision_to_scale_tril", "FullCovariance",
           "TiedCovariance", "DiagCovariance", "SphericalCovariance"]
