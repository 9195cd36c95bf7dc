"""What the drawing functions accept, turned into what they draw from (internal to :mod:`mixtures.plot`).

Tensors become float64 NumPy arrays, results become their parameters, and a
``D``-dimensional mixture becomes its marginal over the two plotted dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.result import FitResult, params_of
from mixtures.families.gaussian.params import MixtureParams


def to_numpy(value: Any) -> np.ndarray:
    """``value`` (tensor, array or nested sequence) as a float64 NumPy array of the same shape."""
    if isinstance(value, Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def as_params(value: Any, name: str) -> MixtureParams:
    """The Gaussian parameters of a ``MixtureParams`` or ``FitResult`` (read, never fitted)."""
    return params_of(value, name, MixtureParams)


def fits_dict(fits: Any) -> dict[str, MixtureParams]:
    """``{label: MixtureParams}`` from ``None``, one fit (labelled ``"fit"``) or a dict of fits."""
    if fits is None:
        return {}
    if isinstance(fits, (MixtureParams, FitResult)):
        return {"fit": as_params(fits, "fits")}
    if not isinstance(fits, Mapping):
        raise TypeError("fits must be a dict {label: MixtureParams or FitResult}; "
                        f"got {type(fits).__name__}.")
    return {str(label): as_params(value, f"fits[{label!r}]") for label, value in fits.items()}


def marginal(params: MixtureParams, dims: Sequence[int]) -> MixtureParams:
    """The mixture's marginal over ``dims``: means ``(K, len(dims))``, full covariances
    ``(K, len(dims), len(dims))`` (sub-vectors and sub-blocks; weights unchanged)."""
    index = torch.as_tensor(list(dims), dtype=torch.long, device=params.device)
    cov = params.covariances.index_select(-1, index).index_select(-2, index)
    return MixtureParams(params.weights, params.locs.index_select(-1, index), cov, "full")


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` converts to a finite float (``None``, strings and NaN do not)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
