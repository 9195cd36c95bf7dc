"""Missing values (missing at random): the scope in which NaN entries mean "not observed".

``fit(model, X, missing="marginalize")`` runs its routine inside :func:`marginalizing`; so do
the queries of a result fitted that way (``FitResult.predict``, ``predict_proba``,
``score_samples``, ``impute``). Inside the scope, :func:`mixtures.core.validation.as_data`
accepts NaN entries (infinities stay errors) and a family that can marginalize (the Gaussian:
:mod:`mixtures.families.gaussian.missing`) computes every density from each point's observed
coordinates. Outside it NaN stays the error it always was, naming this option.

The scope is a context variable, not an argument threaded through every layer: the routines
(EM's passes, the Pyro program's observation site, the recorded log-likelihoods, the decoded
labels) then run unchanged on data with NaNs, and a family that cannot marginalize is never
reached (``fit`` refuses a routine whose record lacks ``missing``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

#: the values of ``fit(..., missing=...)``: ``None`` (NaN is an error) or ``"marginalize"``
MISSING_OPTIONS = (None, "marginalize")

_marginalizing: contextvars.ContextVar[bool] = contextvars.ContextVar("mixtures_marginalizing", default=False)


@contextlib.contextmanager
def marginalizing(flag: bool = True) -> Iterator[None]:
    """NaN entries of data mean missing values inside the block (module docstring)."""
    token = _marginalizing.set(bool(flag))
    try:
        yield
    finally:
        _marginalizing.reset(token)


def is_marginalizing() -> bool:
    """Whether NaN entries are missing values here (:func:`marginalizing`)."""
    return _marginalizing.get()


def check_missing(missing: Any) -> str | None:
    """``missing`` checked: ``None`` or ``"marginalize"``, else a ``ValueError`` naming both."""
    if missing is None or (isinstance(missing, str) and missing in MISSING_OPTIONS):
        return missing
    raise ValueError(f"missing must be None (NaN entries are an error) or 'marginalize' (NaN entries are missing "
                     f"at random: densities of the observed coordinates, expected statistics of the missing "
                     f"ones); got {missing!r}.")


def has_missing(X: Any) -> bool:
    """Whether the in-memory data ``X`` ``(N, D)`` hold a NaN entry (streamed data: False).

    One reduction without a temporary of the data's size (EM asks at every pass): a NaN makes
    the sum NaN; a NaN sum of NaN-free data (``inf - inf``) is told apart by the exact test.
    """
    if not (isinstance(X, Tensor) and X.is_floating_point()):
        return False
    return bool(torch.isnan(X.sum())) and bool(torch.isnan(X).any())


def observed_means(X: Tensor) -> Tensor:
    """Each feature's mean over its observed entries ``(D,)`` (0 for a feature never observed)."""
    observed = ~torch.isnan(X)
    counts = observed.sum(0)
    sums = torch.where(observed, X, torch.zeros((), dtype=X.dtype, device=X.device)).sum(0)
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.zeros_like(sums))


def mean_imputed(X: Tensor) -> Tensor:
    """``X`` ``(N, D)`` with every NaN replaced by its feature's observed mean (``X`` itself when
    nothing is missing): the data initializers start from, and the baseline the marginalized fit
    is compared with."""
    if not has_missing(X):
        return X
    return torch.where(torch.isnan(X), observed_means(X).expand_as(X), X)
