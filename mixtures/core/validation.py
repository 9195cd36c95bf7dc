"""Up-front validation of user input (data arrays, integer options, seeds).

Every routine funnels its data through :func:`as_data` so that bad input fails
before any work is done, with a message that says what is wrong, where, and how
to fix it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.missing import is_marginalizing
from mixtures.errors import DataError

ArrayLike = Any  # torch.Tensor | np.ndarray | nested sequences | pandas objects

#: dtypes the routines compute in (Cholesky factorizations need float32 or float64)
SUPPORTED_DTYPES = (torch.float32, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)
# ("float" is left out: float32 in torch, float64 in numpy)
#: torch generators take seeds in [0, 2**64)
MAX_SEED = 2 ** 64
_DTYPE_NAMES = {"float32": torch.float32, "single": torch.float32, "float64": torch.float64,
                "double": torch.float64}


def resolve_dtype(dtype: Any) -> torch.dtype | None:
    """``torch.float32`` / ``torch.float64`` from a torch dtype, a numpy dtype or a name.

    ``None`` stays ``None`` (keep the data's dtype). Half precision and non-float
    dtypes raise ``ValueError``: the routines factorize covariances, which needs
    float32 or float64.
    """
    if dtype is None or dtype in SUPPORTED_DTYPES:
        return dtype
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype.lower().removeprefix("torch.")]
    if not isinstance(dtype, (torch.dtype, str)):
        try:  # numpy dtypes and scalar types (np.float32, np.dtype("float64"))
            kind = np.dtype(dtype)
        except TypeError:
            kind = None
        if kind == np.float32:
            return torch.float32
        if kind == np.float64:
            return torch.float64
    hint = " (half precision is too coarse for covariance factorizations)" \
        if dtype in _HALF_DTYPES or str(dtype) in ("float16", "half", "bfloat16") else ""
    raise ValueError(f"dtype must be torch.float32 or torch.float64 (or None to keep the data's); "
                     f"got {dtype!r}{hint}.")


def as_data(
    X: ArrayLike,
    *,
    name: str = "X",
    dtype: Any = None,
    device: torch.device | str | None = None,
    min_points: int = 1,
    n_features: int | None = None,
) -> Tensor:
    """Validate data and return it as a floating tensor ``(N, D)``.

    dtype rules (``dtype=None``):

    ==============================================  ==================================
    input                                           result
    ==============================================  ==================================
    float32 / float64 tensor or array               same dtype (a tensor is not copied)
    float16 / bfloat16 tensor, float16 array        float32 (exact; the routines need
                                                    float32 or float64)
    longdouble array                                float64
    integer, boolean, lists, DataFrames             float64
    ==============================================  ==================================

    ``dtype`` (``torch.float32``/``torch.float64``, or ``"float32"``...) overrides
    them. A tensor that requires grad is detached (fits are not differentiable);
    numpy arrays with negative strides, a non-native byte order or read-only
    memory are copied; a pandas object's NaN/``pd.NA`` become NaN (and are
    reported with their index label). 1-D input is read as N points in one
    dimension.

    Raises:
        DataError: non-numeric values (naming the first such entry), masked
            entries, rank other than 1 or 2, fewer than ``min_points`` points, a
            feature count other than ``n_features``, NaN/inf entries (the message
            gives the first offending row), or values so large that sums of their
            squares overflow the dtype (standardize the data, or use float64).
        ValueError: an unsupported ``dtype`` or a device that does not exist here.
    """
    dtype = resolve_dtype(dtype)
    index = None
    if isinstance(X, Tensor):
        tensor = X.detach()
        if tensor.layout != torch.strided:  # sparse input
            tensor = tensor.to_dense()
        if tensor.is_complex():
            raise DataError(f"{name} is complex; mixtures of real Gaussians need real data.")
        if tensor.dtype in _HALF_DTYPES:
            tensor = tensor.to(torch.float32)
        elif not tensor.is_floating_point():
            tensor = tensor.to(torch.float64)
    else:
        if hasattr(X, "to_numpy") and hasattr(X, "index"):  # pandas, without importing pandas
            index = X.index
            X = _frame_to_numpy(X)
        elif hasattr(X, "to_numpy"):
            X = X.to_numpy()
        tensor = torch.as_tensor(numeric_array(X, name))
    if dtype is not None:
        tensor = tensor.to(dtype)
    if device is not None:
        tensor = _to_device(tensor, device, name)
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
    if N:
        _check_values(tensor, name, index)
    return tensor.contiguous()


def _frame_to_numpy(frame: Any) -> np.ndarray:
    """A DataFrame/Series as a float64 array (missing values -> NaN), else its raw values.

    Date and duration columns are refused, like numpy ``datetime64`` arrays: pandas would
    turn them into nanoseconds since 1970, numbers no mixture of their values should see.
    """
    _refuse_time_columns(frame)
    try:
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):  # non-numeric columns: reported by numeric_array
        return frame.to_numpy()


def _refuse_time_columns(frame: Any) -> None:
    """A ``DataError`` naming the first datetime / timedelta column of a DataFrame (or Series)."""
    dtypes = getattr(frame, "dtypes", None)
    if hasattr(dtypes, "items"):  # a DataFrame: one dtype per column
        columns = list(dtypes.items())
    else:  # a Series (its dtypes is its one dtype)
        columns = [(getattr(frame, "name", None), getattr(frame, "dtype", dtypes))]
    for column, dtype in columns:
        kind = getattr(dtype, "kind", None)
        if kind not in ("M", "m"):
            continue
        where = "X" if column is None else f"X column {column!r}"
        if kind == "M":
            raise DataError(
                f"{where} holds dates (dtype {dtype}), not numbers: pandas would turn them into nanoseconds "
                "since 1970. Drop the column, or convert it to a number on a meaningful scale first, e.g. "
                "days since the first date: (t - t.min()).dt.total_seconds() / 86400.")
        raise DataError(
            f"{where} holds durations (dtype {dtype}), not numbers: pandas would turn them into nanoseconds. "
            "Drop the column, or convert it to a number in meaningful units first, e.g. hours: "
            "t.dt.total_seconds() / 3600.")


def numeric_array(X: Any, name: str) -> np.ndarray:
    """A numpy array torch can take without copying surprises, or a ``DataError``."""
    if isinstance(X, np.ma.MaskedArray):
        masked = np.ma.getmaskarray(X)
        if masked.any():
            first = tuple(int(i) for i in np.argwhere(masked)[0])
            raise DataError(f"{name} is a masked array with {int(masked.sum())} masked entries (the first "
                            f"at {name}{list(first)}); remove or impute them, then pass a plain array.")
        X = X.data
    try:
        array = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise DataError(f"{name} is not a rectangular array: {exc}. Give an (N, D) array.") from None
    if array.ndim == 0:  # a scalar, None, a string, a dict...: not an array of points
        raise DataError(f"{name} must be an array of points, shape (N, D) (or (N,) for 1-D data); got "
                        f"{type(X).__name__} {X!r:.60}.")
    if array.dtype.kind == "c":
        raise DataError(f"{name} is complex; mixtures of real Gaussians need real data.")
    if array.dtype == object:
        array = _object_to_float(array, name)
    elif array.dtype.kind in "USVMm":
        raise DataError(_non_numeric_message(array, name))
    if array.dtype.kind == "f" and array.dtype.itemsize <= 2:
        return array.astype(np.float32)  # float16: exact in float32
    if array.dtype.kind != "f" or array.dtype.itemsize > 8 or not array.dtype.isnative:
        # integers, booleans, longdouble (not a torch dtype), big-endian files
        return array.astype(np.float64)
    if any(stride < 0 for stride in array.strides) or not array.flags.writeable:
        # torch cannot view negative strides, and warns about (and may write to) read-only memory
        return array.copy()
    return array


def _object_to_float(array: np.ndarray, name: str) -> np.ndarray:
    """An object array of real numbers (e.g. Python ints too large for int64) as float64."""
    is_number = np.frompyfunc(
        lambda v: isinstance(v, (numbers.Real, np.bool_)) and not isinstance(v, (str, bytes)), 1, 1)
    numeric = is_number(array).astype(bool) if array.size else np.ones(array.shape, bool)
    if not numeric.all():
        raise DataError(_non_numeric_message(array, name, ~numeric))
    return array.astype(np.float64)


def _non_numeric_message(array: np.ndarray, name: str, bad: np.ndarray | None = None) -> str:
    if bad is None:  # strings, bytes, dates: which entries do not even parse as numbers?
        parses = np.frompyfunc(_parses_as_float, 1, 1)
        bad = ~parses(array).astype(bool) if array.size else np.zeros(array.shape, bool)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        value = array[where]
        value = value.item() if isinstance(value, np.generic) else value  # np.str_('a') -> 'a'
        entry = f"the first non-numeric entry is {name}{list(where)} = {value!r}"
        if value is None:
            entry += " (missing values must be NaN, and then removed or imputed)"
    else:
        return (f"{name} must be numeric; got an array of dtype {array.dtype} (strings that look like "
                "numbers): convert the entries with float() first.")
    return (f"{name} must be numeric; got an array of dtype {array.dtype}: {entry}. "
            "Convert columns to numbers (and drop identifiers or labels) first.")


def _parses_as_float(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _to_device(tensor: Tensor, device: Any, name: str) -> Tensor:
    try:
        return tensor.to(device)
    except (RuntimeError, AssertionError, TypeError) as exc:  # bad name, or no such backend here
        raise ValueError(f"cannot move {name} to device {device!r}: {exc}. Check the device name "
                         "(e.g. 'cpu', 'cuda', 'cuda:0') and that this PyTorch build supports it.") from None


def _check_values(tensor: Tensor, name: str, index: Any = None) -> None:
    """NaN/inf rows, and magnitudes whose sums of squares overflow ``tensor.dtype``."""
    N, D = tensor.shape
    # one reduction over the data, no temporary of its size (|X| would be a copy); NaN propagates
    low, high = (float(value) for value in torch.aminmax(tensor))
    peak = max(-low, high)
    if not math.isfinite(peak) and is_marginalizing():  # NaN entries are missing values (mixtures.core.missing)
        tensor = _check_missing_entries(tensor, name, index)
        low, high = (float(value) for value in torch.aminmax(tensor))
        peak = max(-low, high)
    if not math.isfinite(peak):
        finite = torch.isfinite(tensor).all(-1)
        bad_rows = torch.nonzero(~finite).reshape(-1)
        first = int(bad_rows[0])
        label = "" if index is None else f" (index label {index[first]!r})"
        nan_hint = (" (NaN entries that mark missing values can be marginalized: fit(..., "
                    "missing='marginalize'))") if bool(torch.isnan(tensor).any()) else ""
        raise DataError(
            f"{name} contains NaN or infinite values in {bad_rows.numel()} row(s), the first "
            f"at row {first}{label}. Remove or impute those rows before fitting{nan_hint}."
        )
    # Moments sum N * D squares; past this bound they overflow to inf (then NaN) mid-fit.
    limit = math.sqrt(torch.finfo(tensor.dtype).max / (16.0 * N * D))
    _check_spread(tensor, name, 1.0 / limit)
    if peak > limit:
        raise DataError(
            f"{name} has values up to {peak:.3g} in magnitude: sums of their squares overflow "
            f"{str(tensor.dtype).removeprefix('torch.')} (limit about {limit:.3g} for {N} x {D} data). "
            "Standardize the data (subtract each feature's mean, divide by its standard deviation)"
            + (" or use dtype=torch.float64." if tensor.dtype != torch.float64 else ".")
        )


def _check_missing_entries(tensor: Tensor, name: str, index: Any = None) -> Tensor:
    """``tensor`` ``(N, D)`` with its NaN entries (missing values) replaced by 0, for the range checks
    that follow (infinite entries stay, and are errors there); a row with no observed value is a
    ``DataError`` naming it."""
    missing = torch.isnan(tensor)
    empty = torch.nonzero(missing.all(-1)).reshape(-1)
    if empty.numel():
        first = int(empty[0])
        label = "" if index is None else f" (index label {index[first]!r})"
        raise DataError(f"{name} has {empty.numel()} row(s) with no observed value, the first at row {first}"
                        f"{label}: such a point carries no information about the mixture. Remove those rows.")
    return torch.where(missing, torch.zeros((), dtype=tensor.dtype, device=tensor.device), tensor)


def _check_spread(tensor: Tensor, name: str, smallest: float) -> None:
    """A ``DataError`` for a feature whose values vary by less than ``smallest`` (but do vary).

    The mirror image of the overflow bound: a variance ``s²`` of such a feature underflows to
    subnormal numbers or 0, and precisions ``1 / s²`` summed over the data overflow, so
    covariances cannot be represented in the dtype. (A feature that does not vary at all is a
    constant feature: ``reg_covar`` handles it.)
    """
    spread = tensor.amax(0) - tensor.amin(0)  # (D,)
    tiny = (spread > 0) & (spread < smallest)
    if not bool(tiny.any()):
        return
    feature = int(torch.nonzero(tiny)[0])
    value = float(spread[feature])
    factor = 10.0 ** math.ceil(-math.log10(value))
    precision = str(tensor.dtype).removeprefix("torch.")
    raise DataError(
        f"feature {feature} of {name} varies by only {value:.3g} (max - min): {precision} cannot represent "
        f"its variance (squares of such deviations underflow, their inverses overflow; a feature must vary "
        f"by at least about {smallest:.3g} for {tensor.shape[0]} x {tensor.shape[1]} data). Rescale the "
        f"data, e.g. multiply {name} by {factor:.0e}, or standardize it (subtract each feature's mean, divide "
        "by its standard deviation).")


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


def check_seed(seed: Any) -> int | None:
    """``seed`` as a non-negative int, or ``None``; anything else is a ``ValueError``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}.")
    if seed >= MAX_SEED:  # torch generators take 64-bit seeds
        raise ValueError(f"seed must be below 2**64 = {MAX_SEED} (torch's generators take 64-bit seeds); got "
                         f"{seed}. Use a smaller seed, e.g. seed % 2**64.")
    return int(seed)


def check_chunk_size(value: Any, name: str = "chunk_size") -> int | None:
    """``value`` as a positive int (``None`` stays ``None``: the routine's default), or a ``ValueError``.

    An integral float (``1e6``, from a config) is accepted, as routine options accept it.
    """
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer (rows per chunk) or None for the default; "
                         f"got {value!r}.")
    return int(value)


def fresh_seed() -> int:
    """A seed drawn from the operating system's entropy (what ``seed=None`` means)."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])


def make_generator(seed: int | None, device: torch.device | str | None = None) -> torch.Generator:
    """A seeded ``torch.Generator``; ``None`` draws a fresh seed from the OS."""
    generator = torch.Generator(device=device or "cpu")
    seed = check_seed(seed)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def spawn_seeds(seed: int | None, n: int) -> list[int]:
    """``n`` independent child seeds of ``seed`` (reproducible restarts)."""
    sequence = np.random.SeedSequence(seed)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in sequence.spawn(n)]


def did_you_mean(word: Any, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for a close match of ``word`` among ``choices``, else ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
