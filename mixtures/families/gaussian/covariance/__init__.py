"""Covariance structures of the Gaussian family, one module each, registered here once.

``STRUCTURES`` maps every structure's name to its (stateless) instance; ``get_structure``
also accepts a structure's aliases (mclust's three-letter names). Adding a structure:
write ``<name>.py`` with a :class:`~.base.CovarianceStructure` subclass and add it to
``_REGISTERED`` below.
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
from mixtures.families.gaussian.covariance.full import FullCovariance
from mixtures.families.gaussian.covariance.spherical import SphericalCovariance
from mixtures.families.gaussian.covariance.tied import TiedCovariance

_REGISTERED = (FullCovariance, TiedCovariance, DiagCovariance, SphericalCovariance)

STRUCTURES: dict[str, CovarianceStructure] = {cls.name: cls() for cls in _REGISTERED}
#: the structures' names, in registration order (the one list of them in the package)
COVARIANCE_TYPES: tuple[str, ...] = tuple(STRUCTURES)
_ALIASES = {alias: structure for structure in STRUCTURES.values() for alias in structure.aliases}


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

__all__ = ["STRUCTURES", "COVARIANCE_TYPES", "get_structure", "CovarianceStructure", "TrilStructure",
           "VarianceStructure", "cholesky_checked", "precision_to_scale_tril", "FullCovariance",
           "TiedCovariance", "DiagCovariance", "SphericalCovariance"]
