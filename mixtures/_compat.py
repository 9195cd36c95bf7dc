"""Old module paths of ``mixtures`` (before the family seam), kept working with a warning.

``import mixtures.model`` (or ``from mixtures.params import MixtureParams``...) finds the
module at its new home and emits a ``DeprecationWarning`` naming it; the module object is
the new one, so nothing is duplicated. New code imports the new paths (or the names of
``mixtures`` itself).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

#: old module -> new module
MOVED = {
    "mixtures.model": "mixtures.families.gaussian.model",
    "mixtures.params": "mixtures.families.gaussian.params",
    "mixtures.covariance": "mixtures.families.gaussian.covariance",
    "mixtures.priors": "mixtures.families.gaussian.priors",
    "mixtures.suffstats": "mixtures.families.gaussian.statistics",
    "mixtures.conjugate": "mixtures.families.gaussian.conjugate",
    "mixtures.fused": "mixtures.families.gaussian.distributions",
    "mixtures.transforms": "mixtures.families.gaussian.transforms",
    "mixtures.gemm": "mixtures.kernels.gemm",
    "mixtures.result": "mixtures.core.result",
    "mixtures.posterior": "mixtures.core.posterior",
    "mixtures.stream": "mixtures.core.stream",
    "mixtures.distributed": "mixtures.core.comm",
    "mixtures.validation": "mixtures.core.validation",
    "mixtures.metrics": "mixtures.evaluation",
    "mixtures.inference.pyro_common": "mixtures.inference.pyro.common",
    "mixtures.inference.map": "mixtures.inference.pyro.map",
    "mixtures.inference.svi": "mixtures.inference.pyro.svi",
    "mixtures.inference.nuts": "mixtures.inference.pyro.nuts",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: Any) -> Any:
        warnings.warn(f"{spec.name} has moved to {self.target}; import it from there (the old path "
                      "will be removed in a future version).", DeprecationWarning, stacklevel=4)
        return importlib.import_module(self.target)

    def exec_module(self, module: Any) -> None:
        """The target module is already executed."""


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))
        return None


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
