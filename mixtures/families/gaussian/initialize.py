"""How the Gaussian family turns an initializer's output into parameters.

The initializers of :mod:`mixtures.init` (k-means++, k-means, random partitions, random
data points, given labels, responsibilities or dicts) are family-agnostic; they ask the
family for parameters from responsibilities, from centres, or from a dict of given
values. Here, each is the same M step as EM's (with ``reg_covar``), and a singular
covariance follows ``on_collapse``: an error naming the component (``"error"``), the
data's covariance for that component (``"reseed"``), or k-means' lenient rule for
routines that use only the start's centres (``"pool"``,
:func:`mixtures.families.gaussian.partition.induced_params`, which never fails).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixtures.core.summary import Summary, floored_counts
from mixtures.core.validation import numeric_array
from mixtures.errors import ParameterError, SingularCovarianceError
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.partition import induced_params
from mixtures.families.gaussian.statistics import m_step, pooled_component, summarize


def params_from_responsibilities(structure: CovarianceStructure, X: Tensor, resp: Tensor, reg_covar: float = 1e-6,
                                 on_collapse: str = "error") -> MixtureParams:
    """The M step from responsibilities ``resp`` ``(N, K)`` (module docstring for ``on_collapse``)."""
    return params_from_summary(structure, X, summarize(X, resp, structure), reg_covar, on_collapse)


def params_from_summary(structure: CovarianceStructure, X: Tensor, summary: Summary, reg_covar: float = 1e-6,
                        on_collapse: str = "error") -> MixtureParams:
    """:func:`params_from_responsibilities` from the responsibilities' statistics ``summary``
    (about ``default_shift(X)``); ``X`` ``(N, D)`` only gives the data's spread to ``"pool"``."""
    if on_collapse == "pool":
        means = summary.sx / floored_counts(summary.nk)[:, None] + summary.shift
        return induced_params(summary, structure, reg_covar, means,
                              lambda: float(X.var(0, correction=0).mean()))[0]
    pooled: set[int] = set()
    while True:
        try:
            return m_step(summary, structure, reg_covar)
        except SingularCovarianceError as error:
            if (on_collapse != "reseed" or error.component is None or error.component in pooled
                    or structure.shared):
                raise
            pooled.add(error.component)
            summary = pooled_component(summary, error.component, structure)


def pooled_params(structure: CovarianceStructure, X: Tensor, n_components: int, reg_covar: float,
                  on_collapse: str = "error") -> MixtureParams:
    """Every component = the whole data (its covariance in the structure)."""
    lenient = "pool" if on_collapse == "pool" else "error"
    resp = X.new_full((X.shape[0], n_components), 1.0 / n_components)
    return params_from_responsibilities(structure, X, resp, reg_covar, lenient)


def params_from_centres(structure: CovarianceStructure, X: Tensor, centres: Tensor, reg_covar: float = 1e-6,
                        on_collapse: str = "error") -> MixtureParams:
    """Equal weights, means ``centres`` ``(K, D)`` and the data's own covariance for every
    component (seed notebook 003's ``"random_from_data"``; scikit-learn instead starts from
    one-point clusters)."""
    K = centres.shape[0]
    native = pooled_params(structure, X, K, reg_covar, on_collapse).native
    return MixtureParams.from_native(X.new_full((K,), 1.0 / K), centres, native, structure, validate=False)


def params_from_dict(structure: CovarianceStructure, n_components: int, values: dict[str, Any], X: Tensor,
                     reg_covar: float = 1e-6, on_collapse: str = "error") -> MixtureParams:
    """Parameters from ``{"locs", "weights"?, "covariances"?}`` (missing weights equal, missing
    covariances the data's for every component); every given tensor follows the data's dtype
    and device."""
    unknown = set(values) - {"weights", "locs", "covariances"}
    if "locs" not in values or unknown:
        raise ParameterError(f"an init dict needs 'locs' and may give 'weights' and 'covariances'; "
                             f"got keys {sorted(values)}.")
    K, D = n_components, X.shape[1]
    locs = _given(values["locs"], "init['locs']", X)
    locs = locs.reshape(-1, 1) if locs.dim() == 1 and D == 1 else locs
    if tuple(locs.shape) != (K, D):
        raise ParameterError(f"init locs must have shape (K, D) = {(K, D)}; got {tuple(locs.shape)}.")
    if "covariances" in values:
        covariances = _given(values["covariances"], "init['covariances']", X)
    else:
        covariances = pooled_params(structure, X, K, reg_covar, on_collapse).covariances
    weights = _given(values["weights"], "init['weights']", X) if "weights" in values else X.new_full((K,), 1.0 / K)
    return MixtureParams(weights, locs, covariances, structure)


def _given(value: Any, name: str, X: Tensor) -> Tensor:
    """A user-given initial tensor, numeric (or a ``DataError`` naming it), in X's dtype and device."""
    if isinstance(value, Tensor):
        return value.detach().to(X)
    return torch.as_tensor(numeric_array(value, name)).to(X)
