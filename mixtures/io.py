"""Saving and loading fitted results in a file that loads without executing code.

A result file is written by :func:`torch.save` and holds *only* tensors and
primitive containers (dict, list, tuple, str, int, float, bool, None), so it is
read back with ``torch.load(weights_only=True)``: unpickling never imports or
calls arbitrary objects. Layout (format ``"mixtures.FitResult"``, version 1.0)::

    format            "mixtures.FitResult"
    format_version    [major, minor]       readers refuse a newer major version
    mixtures_version  str                  the package version that wrote the file
    torch_version     str
    model             {"n_components": int, "covariance_type": str,
                       "prior": None or the GaussianPrior's fields}
    params            {"weights": (K,), "locs": (K, D), "native": per type}
    init              same as params, or None
    history           {column: float64 tensor (T,)}   (column order kept)
    converged, n_iter, method, objective
    extras            routine extras that could be stored (see below)
    stringified_extras  names of extras stored as ``repr`` strings
    posterior         None, or the Posterior's fields (draws as tensors, cov_type by name)
    stringified_posterior  names of Posterior fields stored as ``repr`` strings
    config            optional dict of primitives (an experiment's configuration)

``native`` is the covariance's native tensor (:mod:`mixtures.covariance`), so a
round trip is bit-exact: predictions of the loaded result equal the original's.
Tensors are stored on the CPU and load on the CPU; ``load(path, device="cuda")``
moves the parameters, the initial parameters and the posterior (its draws and the
tensors of its ``distribution`` and ``diagnostics``) to a device, bits unchanged.
Extras stay on the CPU (they record the fit).

The fit's settings (``extras["fit_settings"]``: method, init, seed, n_init, reg_covar,
dtype, device and the routine's options, as primitives) are extras like any other
and are saved with the result.

Extras: primitives (and dicts / lists / tuples of them, dict keys str or int),
tensors (kept as tensors, moved to the CPU), numpy arrays (stored as tensors:
they load as tensors) and numpy scalars (stored as Python numbers) are kept.
Anything else (a callable, an arbitrary object...) is replaced by its ``repr``
string; its top-level extras key is listed in ``stringified_extras`` and a
``UserWarning`` names it at save time. A posterior's ``distribution`` and
``diagnostics`` follow the same rule (listed in ``stringified_posterior``).

Files are written atomically: to a temporary file in the target's directory,
then renamed over the target, so an interrupted save never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.covariance import COVARIANCE_TYPES, CovarianceType, get_covariance_type
from mixtures.errors import ParameterError
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.posterior import Posterior
from mixtures.priors import GaussianPrior
from mixtures.result import FitResult, History

__all__ = ["FormatError", "FORMAT_NAME", "FORMAT_VERSION", "save_result", "load", "load_metadata",
           "params_to_state", "params_from_state", "posterior_to_state", "posterior_from_state",
           "json_state", "state_from_json"]

FORMAT_NAME = "mixtures.FitResult"
#: (major, minor): a minor bump only adds fields (older readers ignore them); a major
#: bump changes the meaning of existing fields (older readers refuse the file).
FORMAT_VERSION = (1, 0)

PathLike = str | os.PathLike


class FormatError(ValueError):
    """A file is not a readable ``mixtures`` result (corrupted, foreign, or too new)."""


# -- writing --------------------------------------------------------------------------


def save_result(result: FitResult, path: PathLike, config: dict[str, Any] | None = None) -> Path:
    """Write ``result`` to ``path`` (conventionally ``*.pt``) atomically; return the path.

    Args:
        result: a :class:`~mixtures.result.FitResult`.
        path: destination file; its directory must exist. An existing file is replaced.
        config: optional dict of primitives stored alongside (e.g. the experiment's
            configuration); read it back with :func:`load_metadata`.

    Raises:
        TypeError: ``result`` is not a FitResult, or ``config`` or the model's prior
            hold values other than primitives, tensors and containers of them.
    """
    path = Path(path)
    state = result_to_state(result, warn=True)
    if config is not None:
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict; got {type(config).__name__}.")
        state["config"] = _strict_primitive(config, "config")
    _atomic_torch_save(state, path)
    return path


def result_to_state(result: FitResult, warn: bool = False) -> dict[str, Any]:
    """The file's content for ``result``: a dict of tensors and primitives (no code).

    :func:`save_result` writes it; :func:`result_from_state` is its inverse. ``warn``
    emits a ``UserWarning`` naming extras that had to be stored as strings.
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"save_result needs a mixtures.FitResult; got {type(result).__name__}.")
    model = result.model
    import mixtures  # here, not at import time: mixtures/__init__ imports this module

    extras, stringified = _portable_extras(result.extras)
    posterior, stringified_posterior = _posterior_state(result.posterior)
    if warn:
        for what, names in (("extras", stringified), ("posterior fields", stringified_posterior)):
            if names:
                warnings.warn(f"{what} {names} are not tensors or primitives; they are saved as their "
                              "repr strings.", UserWarning, stacklevel=3)
    return {
        "format": FORMAT_NAME,
        "format_version": list(FORMAT_VERSION),
        "mixtures_version": str(getattr(mixtures, "__version__", "unknown")),
        "torch_version": str(torch.__version__),
        "model": {"n_components": int(model.n_components), "covariance_type": model.covariance_type,
                  "prior": _prior_state(model.prior)},
        "params": _params_state(result.params),
        "init": None if result.init is None else _params_state(result.init),
        "history": {name: result.history[name] for name in result.history.columns},
        "converged": bool(result.converged),
        "n_iter": int(result.n_iter),
        "method": str(result.method),
        "objective": float(result.objective),
        "extras": extras,
        "stringified_extras": stringified,
        "posterior": posterior,
        "stringified_posterior": stringified_posterior,
        "config": None,
    }


def _prior_state(prior: GaussianPrior | None) -> dict[str, Any] | None:
    if prior is None:
        return None
    return {f.name: _strict_primitive(getattr(prior, f.name), f"prior.{f.name}")
            for f in dataclasses.fields(prior)}


def _posterior_state(posterior: Posterior | None) -> tuple[dict[str, Any] | None, list[str]]:
    if posterior is None:
        return None, []
    if not isinstance(posterior, Posterior):
        raise TypeError(f"result.posterior must be a mixtures.posterior.Posterior or None; "
                        f"got {type(posterior).__name__}.")
    state: dict[str, Any] = {}
    stringified: list[str] = []
    for f in dataclasses.fields(posterior):
        value = getattr(posterior, f.name)
        if isinstance(value, CovarianceType):
            state[f.name] = value.name
            continue
        try:
            state[f.name] = _strict_primitive(value, f"posterior.{f.name}")
        except TypeError:
            state[f.name] = repr(value)
            stringified.append(f.name)
    return state, stringified


def _params_state(params: MixtureParams) -> dict[str, Tensor]:
    return {name: getattr(params, name).detach().cpu().clone() for name in ("weights", "locs", "native")}


def _portable_extras(extras: dict[str, Any]) -> tuple[dict[Any, Any], list[str]]:
    kept: dict[Any, Any] = {}
    stringified: list[str] = []
    for key, value in extras.items():
        try:
            kept[_check_key(key, "extras")] = _strict_primitive(value, f"extras[{key!r}]")
        except TypeError:
            kept[str(key)] = repr(value)
            stringified.append(str(key))
    return kept, stringified


def _check_key(key: Any, where: str) -> str | int:
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return key
    raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str or int.")


def _strict_primitive(value: Any, where: str) -> Any:
    """``value`` as primitives and CPU tensors, or ``TypeError`` naming ``where``."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()  # before the builtins: np.float64 subclasses float but is not unpicklable
    if value is None or type(value) in (bool, int, float, str):
        return value
    for builtin in (int, float, str):  # subclasses (IntEnum...) as their builtin, like json.dumps
        if isinstance(value, builtin):
            return builtin(value)
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(np.array(value))  # a copy: the file must not alias caller memory
    if isinstance(value, dict):
        return {_check_key(k, where): _strict_primitive(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_strict_primitive(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"{where} is a {type(value).__name__}, which a result file cannot hold; "
                    "use numbers, strings, tensors, or lists and dicts of them.")


def _atomic_torch_save(state: dict[str, Any], path: Path) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot save to {str(path)!r}: directory {str(directory)!r} does not exist.")
    # A fresh name opened with "xb" (not tempfile.mkstemp, which makes the file private, 0600):
    # the saved file gets the usual permissions of the user's umask.
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    stream = open(temporary, "xb")  # opened before the try: a failed open has nothing to clean up
    try:
        with stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# -- reading --------------------------------------------------------------------------


def load(path: PathLike, device: Any = None) -> FitResult:
    """Read a result written by :func:`save_result` (or ``FitResult.save``).

    Nothing in the file is executed: it is read with ``torch.load(weights_only=True)``.
    Tensors load with the dtype they were saved with, and predictions of the loaded
    result equal the saved one's bit for bit.

    Args:
        path: the file.
        device: where the parameters, the initial parameters and the posterior go
            (``"cpu"``, ``"cuda"``, a ``torch.device``...); None keeps them on the CPU.
            Extras stay on the CPU.

    Raises:
        FileNotFoundError: no such file.
        FormatError: the file is truncated or corrupted, is not a mixtures result
            (another ``torch.save`` payload, a text file...), was written by a newer
            major format version, or holds inconsistent fields. The message names
            the file and what is wrong.
        ValueError: ``device`` is not a device name, or that device is not available.
    """
    state = _read(path)
    target = None if device is None else _check_device(device)
    result = result_from_state(state, where=str(path))
    return result if target is None else _to_device(result, target)


def _check_device(device: Any) -> torch.device:
    try:
        target = torch.device(device)
        torch.empty(0, device=target)  # is it available here?
    except (RuntimeError, TypeError, AssertionError) as error:
        raise ValueError(f"cannot load onto device {device!r}: {error}. Check the device name "
                         "('cpu', 'cuda', 'cuda:0', 'mps') and that it is available, or load with "
                         "device=None (the CPU).") from None
    return target


def _to_device(result: FitResult, device: torch.device) -> FitResult:
    """``result`` with its parameters, initial parameters and posterior on ``device`` (bits kept)."""
    def params_on(params: MixtureParams | None) -> MixtureParams | None:
        if params is None:
            return None
        # from_native without validation: MixtureParams.to would renormalize the weights
        return MixtureParams.from_native(params.weights.to(device), params.locs.to(device),
                                         params.native.to(device), params.cov_type, validate=False)

    def tensors_on(value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.to(device)
        if isinstance(value, dict):
            return {key: tensors_on(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            items = [tensors_on(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    posterior = result.posterior
    if posterior is not None:
        posterior = dataclasses.replace(
            posterior, weights=posterior.weights.to(device), locs=posterior.locs.to(device),
            native=posterior.native.to(device), distribution=tensors_on(posterior.distribution),
            diagnostics=tensors_on(posterior.diagnostics))
    return dataclasses.replace(result, params=params_on(result.params), init=params_on(result.init),
                               posterior=posterior)


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The file's header: ``format``, ``format_version``, ``mixtures_version``,
    ``torch_version``, ``model``, ``method``, ``stringified_extras`` and ``config``
    (the dict given to :func:`save_result`, or None)."""
    state = _read(path)
    keys = ("format", "format_version", "mixtures_version", "torch_version", "model", "method",
            "stringified_extras", "stringified_posterior", "config")
    return {key: state.get(key) for key in keys}


def _read(path: PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no result file at {str(path)!r}.")
    try:
        with warnings.catch_warnings():
            # torch's note on foreign pickle protocols; the FormatError below says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError... by cause
        summary = _error_summary(error)
        if summary.startswith("WeightsUnpickler error"):
            cause = ("It holds objects other than tensors and primitive containers, which are never "
                     "unpickled (that could execute code): it was not written by mixtures.io.save_result.")
        else:
            cause = "The file is truncated or corrupted, or is not a torch.save file."
        raise FormatError(
            f"{str(path)!r} is not a readable mixtures result file: torch.load(weights_only=True) "
            f"failed ({type(error).__name__}: {summary}). {cause}"
        ) from error
    _check_header(state, str(path))
    return state


def _error_summary(error: Exception) -> str:
    """The informative line of a ``torch.load`` error (its first, or the unpickler's refusal)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refusal = [line for line in lines if line.startswith("WeightsUnpickler error")]
    # torch's advice to allowlist the refused global is cut: that is what must not happen here
    return (refusal or lines or [type(error).__name__])[0].split(". Please use")[0]


def _check_header(state: Any, where: str) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        found = (f"a dict with keys {sorted(map(str, state))[:8]}" if isinstance(state, dict)
                 else f"a {type(state).__name__}")
        raise FormatError(f"{where!r} is not a mixtures result file: it holds {found}, not a "
                          f"{FORMAT_NAME!r} record. Was it written by mixtures.io.save_result?")
    version = state.get("format_version")
    if (not isinstance(version, (list, tuple)) or len(version) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in version)):
        raise FormatError(f"{where!r}: format_version must be [major, minor] integers; got {version!r}.")
    if version[0] > FORMAT_VERSION[0]:
        raise FormatError(
            f"{where!r} was written in format version {version[0]}.{version[1]} (by mixtures "
            f"{state.get('mixtures_version', '?')}); this mixtures reads format versions up to "
            f"{FORMAT_VERSION[0]}.x. Upgrade mixtures to load it."
        )
    # An older major version does not exist yet; a newer minor only adds fields we ignore.


def result_from_state(state: dict[str, Any], where: str = "<state>") -> FitResult:
    """Rebuild a :class:`FitResult` from :func:`result_to_state` output, checking every field."""
    _check_header(state, where)
    model_state = _field(state, "model", dict, where)
    n_components = _field(model_state, "n_components", int, where, "model.")
    covariance_type = _field(model_state, "covariance_type", str, where, "model.")
    if covariance_type not in COVARIANCE_TYPES:
        raise FormatError(f"{where!r}: unknown covariance_type {covariance_type!r} in model.")
    prior = _prior_from_state(model_state.get("prior"), where)
    try:
        model = GaussianMixture(n_components, covariance_type, prior=prior)
    except (TypeError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid model fields: {error}") from error
    params = _params_from_state(_field(state, "params", dict, where), model, where, "params")
    init_state = state.get("init")
    init = None if init_state is None else _params_from_state(init_state, model, where, "init")
    history = _history_from_state(_field(state, "history", dict, where), where)
    extras = _field(state, "extras", dict, where)
    objective = _field(state, "objective", (float, int), where)
    return FitResult(
        model=model, params=params, history=history,
        converged=_field(state, "converged", bool, where),
        n_iter=_field(state, "n_iter", int, where),
        method=_field(state, "method", str, where),
        objective=float(objective), init=init, extras=dict(extras),
        posterior=_posterior_from_state(state.get("posterior"), model, where),
    )


def _prior_from_state(state: Any, where: str) -> GaussianPrior | None:
    if state is None:
        return None
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field 'model.prior' must be a dict or None; "
                          f"got {type(state).__name__}.")
    try:
        return GaussianPrior(**state)
    except (TypeError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid model.prior: {error}") from error


def _posterior_from_state(state: Any, model: GaussianMixture, where: str) -> Posterior | None:
    if state is None:
        return None
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field 'posterior' must be a dict or None; "
                          f"got {type(state).__name__}.")
    draws = {name: _field(state, name, Tensor, where, "posterior.") for name in ("weights", "locs", "native")}
    weights, K = draws["weights"], model.n_components
    if (weights.dim() != 2 or weights.shape[1] != K
            or any(t.dim() < 1 or t.shape[0] != weights.shape[0] for t in draws.values())):
        raise FormatError(f"{where!r}: posterior draws must share their first dimension S and have "
                          f"weights (S, {K}); got shapes "
                          f"{ {name: tuple(t.shape) for name, t in draws.items()} }.")
    fields = dict(state)
    try:
        fields["cov_type"] = get_covariance_type(_field(state, "cov_type", str, where, "posterior."))
        return Posterior(**fields)
    except (TypeError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid posterior: {error}") from error


def _field(state: dict[str, Any], name: str, kind: Any, where: str, prefix: str = "") -> Any:
    if name not in state:
        raise FormatError(f"{where!r} lacks the field {prefix + name!r}; the file is incomplete or "
                          "was not written by mixtures.io.save_result.")
    value = state[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    wrong_bool = isinstance(value, bool) and bool not in kinds
    if not isinstance(value, kinds) or wrong_bool:
        expected = " or ".join(k.__name__ for k in kinds)
        raise FormatError(f"{where!r}: field {prefix + name!r} must be {expected}; "
                          f"got {type(value).__name__}.")
    return value


def _params_from_state(state: Any, model: GaussianMixture, where: str, name: str) -> MixtureParams:
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field {name!r} must be a dict of tensors; got {type(state).__name__}.")
    tensors = {}
    for key in ("weights", "locs", "native"):
        value = _field(state, key, Tensor, where, f"{name}.")
        if not value.is_floating_point():
            raise FormatError(f"{where!r}: {name}.{key} must be a floating tensor; got {value.dtype}.")
        tensors[key] = value
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) > 1:
        raise FormatError(f"{where!r}: {name} tensors have mixed dtypes {sorted(map(str, dtypes))}.")
    try:
        # Validation alone: it renormalizes the weights, and the loaded tensors must stay bit-exact.
        MixtureParams.from_native(tensors["weights"], tensors["locs"], tensors["native"],
                                  model.cov_type, validate=True)
        params = MixtureParams.from_native(tensors["weights"], tensors["locs"], tensors["native"],
                                           model.cov_type, validate=False)
        return model.check_params(params)
    except ParameterError as error:
        raise FormatError(f"{where!r}: invalid {name}: {error}") from error


def _history_from_state(state: dict[str, Any], where: str) -> History:
    columns: dict[str, list[float]] = {}
    for name, column in state.items():
        if not isinstance(name, str) or not isinstance(column, Tensor) or column.dim() != 1:
            raise FormatError(f"{where!r}: history column {name!r} must be a 1-D tensor "
                              f"under a str name; got {type(column).__name__}.")
        columns[name] = column.to(torch.float64).tolist()
    try:
        return History.from_dict(columns)
    except ValueError as error:
        raise FormatError(f"{where!r}: invalid history: {error}") from error


# -- the one serialization of parameters and posteriors ------------------------------------
def params_to_state(params: MixtureParams) -> dict[str, Any]:
    """Self-describing state of ``params``: its covariance type and its tensors (CPU copies).

    The inverse is :func:`params_from_state`; :func:`json_state` makes it JSON-able. Result
    files and experiment records both store parameters this way, bit-exact.
    """
    return {"covariance_type": params.covariance_type, **_params_state(params)}


def params_from_state(state: Any, where: str = "<state>") -> MixtureParams:
    """:class:`MixtureParams` from :func:`params_to_state` output (checked; ``FormatError`` names ``where``)."""
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: parameters must be a dict; got {type(state).__name__}.")
    covariance_type = _field(state, "covariance_type", str, where)
    if covariance_type not in COVARIANCE_TYPES:
        raise FormatError(f"{where!r}: unknown covariance_type {covariance_type!r}.")
    K = _field(state, "weights", Tensor, where).shape[0]
    return _params_from_state(state, GaussianMixture(max(K, 1), covariance_type), where, "params")


def posterior_to_state(posterior: Posterior, indices: Tensor | None = None) -> dict[str, Any]:
    """State of ``posterior`` (its draws, or those at ``indices``, as CPU tensors; other fields as
    primitives, or their ``repr`` when they are not). Inverse: :func:`posterior_from_state`."""
    if indices is not None:
        pick = lambda t: t.detach().index_select(0, indices.to(t.device))  # noqa: E731
        posterior = dataclasses.replace(posterior, weights=pick(posterior.weights), locs=pick(posterior.locs),
                                        native=pick(posterior.native))
    return _posterior_state(posterior)[0]


def posterior_from_state(state: Any, where: str = "<state>") -> Posterior:
    """A :class:`Posterior` from :func:`posterior_to_state` output (checked)."""
    weights = _field(state, "weights", Tensor, where, "posterior.") if isinstance(state, dict) else None
    if weights is None or weights.dim() != 2:
        raise FormatError(f"{where!r}: posterior weights must be an (S, K) tensor.")
    cov_type = _field(state, "cov_type", str, where, "posterior.")
    if cov_type not in COVARIANCE_TYPES:
        raise FormatError(f"{where!r}: unknown covariance type {cov_type!r} in posterior.")
    return _posterior_from_state(state, GaussianMixture(weights.shape[1], cov_type), where)


_TENSOR_TAG = "__tensor__"


def json_state(state: Any) -> Any:
    """``state`` with every tensor as ``{"__tensor__": dtype, "shape": [...], "data": [...]}``.

    Python's ``json`` writes floats by their shortest round-trip ``repr``, so a tensor of
    float64 (or float32) values comes back bit-exact from :func:`state_from_json`.
    """
    if isinstance(state, Tensor):
        tensor = state.detach().cpu()
        return {_TENSOR_TAG: str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
                "data": tensor.reshape(-1).tolist()}
    if isinstance(state, dict):
        return {key: json_state(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return [json_state(value) for value in state]
    return state


def state_from_json(obj: Any, where: str = "<json>") -> Any:
    """Inverse of :func:`json_state` (a malformed tensor entry is a ``FormatError`` naming ``where``)."""
    if isinstance(obj, dict) and _TENSOR_TAG in obj:
        dtype = getattr(torch, str(obj[_TENSOR_TAG]), None)
        if not isinstance(dtype, torch.dtype) or not isinstance(obj.get("data"), list) \
                or not isinstance(obj.get("shape"), list):
            raise FormatError(f"{where!r}: malformed tensor entry {str(obj)[:80]!r}.")
        try:
            return torch.tensor(obj["data"], dtype=dtype).reshape(obj["shape"])
        except (TypeError, ValueError, RuntimeError) as error:
            raise FormatError(f"{where!r}: malformed tensor entry: {error}") from None
    if isinstance(obj, dict):
        return {key: state_from_json(value, where) for key, value in obj.items()}
    if isinstance(obj, list):
        return [state_from_json(value, where) for value in obj]
    return obj
