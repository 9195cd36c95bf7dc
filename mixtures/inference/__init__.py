"""Inference routines behind one entry point, :func:`fit`.

Each routine lives in its own module and registers itself with its record (see
:mod:`mixtures.inference.registry`): closed-form routines on the family's statistics
(``em``, ``stepwise``, ``kmeans``, ``vb``) and Pyro routines on the family's program
(``pyro/``: ``map``, ``svi``, ``nuts``). Importing this package registers them all.
"""

from mixtures.inference import em, kmeans, online_vb, stepwise, vb  # noqa: F401  (registration)
from mixtures.inference.fit import fit
from mixtures.inference.pyro import map as _map  # noqa: F401  (registration)
from mixtures.inference.pyro import nuts, svi  # noqa: F401  (registration)
from mixtures.inference.registry import ROUTINES, Routine, get_routine, register

__all__ = ["fit", "register", "ROUTINES", "Routine", "get_routine"]
