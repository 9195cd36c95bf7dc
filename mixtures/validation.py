"""Up-front validation of user input (data arrays, integer options, seeds).

Every routine funnels its data through :func:`as_data` so that bad input fails
before any work is done, with a message that says what is wrong, where, and how
to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.errors import DataError

ArrayLike = Any  # torch.Tensor | np.ndarray | nested sequences | pandas objects


def as_data(
    X: ArrayLike,
    *,
    name: str = "X",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    min_points: int = 1,
    n_features: int | None = None,
) -> Tensor:
    """Validate data and return it as a floating tensor ``(N, D)``.

    Float tensors keep their dtype; anything else (numpy arrays, lists, integer or
    boolean tensors, pandas objects) becomes float64 unless ``dtype`` is given.
    1-D input is read as N points in one dimension.

    Raises:
        DataError: non-numeric values, rank other than 1 or 2, fewer than
            ``min_points`` points, a feature count other than ``n_features``, or
            NaN/inf entries (the message gives the first offending row).
    """
    if isinstance(X, Tensor):
        tensor = X.detach()
        if tensor.is_complex():
            raise DataError(f"{name} is complex; mixtures of real Gaussians need real data.")
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.float64)
    else:
        if hasattr(X, "to_numpy"):  # pandas DataFrame / Series without importing pandas
            X = X.to_numpy()
        try:
            array = np.asarray(X)
        except ValueError as exc:  # ragged nested lists
            raise DataError(f"{name} is not a rectangular array: {exc}. Give an (N, D) array.") from None
        if array.dtype == object or array.dtype.kind in "USVMm":
            raise DataError(
                f"{name} must be numeric; got an array of dtype {array.dtype}. "
                "Convert columns to numbers (and drop identifiers or labels) first."
            )
        if array.dtype.kind == "c":
            raise DataError(f"{name} is complex; mixtures of real Gaussians need real data.")
        tensor = torch.as_tensor(array.astype(np.float64) if array.dtype.kind != "f" else array)
        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float64)
    if dtype is not None:
        tensor = tensor.to(dtype)
    if device is not None:
        tensor = tensor.to(device)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(-1)
    if tensor.dim() != 2:
        raise DataError(
            f"{name} must have shape (N, D) (or (N,) for 1-D data); got shape {tuple(tensor.shape)}."
        )
    N, D = tensor.shape
    if D == 0:
        raise DataError(f"{name} has no features (shape {tuple(tensor.shape)}).")
    if N < min_points:
        raise DataError(f"{name} has {N} point(s); at least {min_points} are needed.")
    if n_features is not None and D != n_features:
        raise DataError(
            f"{name} has {D} feature(s) but the model was fitted on {n_features}."
        )
    finite = torch.isfinite(tensor).all(-1)
    if not finite.all():
        bad_rows = torch.nonzero(~finite).reshape(-1)
        raise DataError(
            f"{name} contains NaN or infinite values in {bad_rows.numel()} row(s), the first "
            f"at row {int(bad_rows[0])}. Remove or impute those rows before fitting."
        )
    return tensor.contiguous()


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_nonnegative_float(value: Any, name: str) -> float:
    """Return ``value`` as a float >= 0 or raise ``ValueError`` naming it."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number; got {value!r}.") from None
    if not result >= 0 or result == float("inf"):
        raise ValueError(f"{name} must be a finite non-negative number; got {value!r}.")
    return result


def make_generator(seed: int | None, device: torch.device | str | None = None) -> torch.Generator:
    """A seeded ``torch.Generator``; ``None`` draws a fresh seed from the OS."""
    generator = torch.Generator(device=device or "cpu")
    if seed is None:
        generator.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer or None; got {seed!r}.")
        generator.manual_seed(int(seed))
    return generator


def spawn_seeds(seed: int | None, n: int) -> list[int]:
    """``n`` independent child seeds of ``seed`` (reproducible restarts)."""
    sequence = np.random.SeedSequence(seed)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in sequence.spawn(n)]
