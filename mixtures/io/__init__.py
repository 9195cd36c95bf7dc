"""Saving and loading fitted results in a file that loads without executing code.

A result file is written by :func:`torch.save` and holds *only* tensors and
primitive containers (dict, list, tuple, str, int, float, bool, None), so it is
read back with ``torch.load(weights_only=True)``: unpickling never imports or
calls arbitrary objects. Layout (format ``"mixtures.FitResult"``, version 2.0)::

    format            "mixtures.FitResult"
    format_version    [major, minor]       readers refuse a newer major version
    mixtures_version  str                  the package version that wrote the file
    torch_version     str
    model             {"family": str, "n_components": int, <the family's spec fields, e.g.
                       "covariance_type": str>, "prior": None or the prior's fields}
    params            the parameters' tensors (Gaussian: {"weights": (K,), "locs": (K, D),
                       "native": the covariance structure's native tensor})
    init              same as params, or None
    history           {column: float64 tensor (T,)}   (column order kept)
    converged, n_iter, method, objective
    decoder           "closed_form" or "program" (how predict_proba answers)
    extras            routine extras that could be stored (see below)
    stringified_extras  names of extras stored as ``repr`` strings
    posterior         None, or {"family", "spec", "tensors" (the draws, leading dimension S),
                       "kind", "distribution", "diagnostics"}
    stringified_posterior  names of Posterior fields stored as ``repr`` strings
    config            optional dict of primitives (an experiment's configuration)

The parameters are stored as their own tensors (Cholesky factors, variances...), so a
round trip is bit-exact: predictions of the loaded result equal the original's. Format
1.x files (Gaussian mixtures before families existed) load too. The states of every
object are :mod:`mixtures.io.state`'s, the one serialization of the package.
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

import dataclasses
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

import mixtures.families  # noqa: F401  (registers every family, so files of any family load)
from mixtures.core import result as result_module
from mixtures.core.files import atomic_write_with
from mixtures.core.result import FitResult
from mixtures.core.version import VERSION
from mixtures.inference.registry import ROUTINES
from mixtures.io.state import (
    FormatError,
    field,
    history_from_state,
    history_to_state,
    json_state,
    model_from_state,
    model_to_state,
    params_from_state,
    params_from_tensors,
    params_tensors,
    params_to_state,
    portable,
    posterior_from_state,
    posterior_state,
    posterior_to_state,
    state_from_json,
    strict_primitive,
)

__all__ = ["FormatError", "FORMAT_NAME", "FORMAT_VERSION", "save_result", "load", "load_metadata",
           "result_to_state", "result_from_state", "params_to_state", "params_from_state", "posterior_to_state",
           "posterior_from_state", "json_state", "state_from_json"]

FORMAT_NAME = "mixtures.FitResult"
#: (major, minor): a minor bump only adds fields (older readers ignore them); a major
#: bump changes the meaning of existing fields (older readers refuse the file).
FORMAT_VERSION = (2, 0)

PathLike = str | os.PathLike


# -- writing --------------------------------------------------------------------------
def save_result(result: FitResult, path: PathLike, config: dict[str, Any] | None = None) -> Path:
    """Write ``result`` to ``path`` (conventionally ``*.pt``) atomically; return the path.

    Args:
        result: a :class:`~mixtures.core.result.FitResult`.
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
        state["config"] = strict_primitive(config, "config")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {str(path)!r}: it is a directory; give a file name such as "
                                f"{str(path / 'fit.pt')!r}.")
    atomic_write_with(path, lambda stream: torch.save(state, stream))
    return path


def result_to_state(result: FitResult, warn: bool = False) -> dict[str, Any]:
    """The file's content for ``result``: a dict of tensors and primitives (no code).

    :func:`save_result` writes it; :func:`result_from_state` is its inverse. ``warn``
    emits a ``UserWarning`` naming extras that had to be stored as strings.
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"save_result needs a mixtures.FitResult; got {type(result).__name__}.")
    extras, stringified = portable(result.extras, "extras")
    posterior, stringified_posterior = (None, []) if result.posterior is None else posterior_state(result.posterior)
    if warn:
        for what, names in (("extras", stringified), ("posterior fields", stringified_posterior)):
            if names:
                warnings.warn(f"{what} {names} are not tensors or primitives; they are saved as their "
                              "repr strings.", UserWarning, stacklevel=3)
    return {
        "format": FORMAT_NAME,
        "format_version": list(FORMAT_VERSION),
        "mixtures_version": VERSION,
        "torch_version": str(torch.__version__),
        "model": model_to_state(result.model),
        "params": params_tensors(result.params),
        "init": None if result.init is None else params_tensors(result.init),
        "history": history_to_state(result.history),
        "converged": bool(result.converged),
        "n_iter": int(result.n_iter),
        "method": str(result.method),
        "objective": float(result.objective),
        "decoder": str(result.decoder),
        "extras": extras,
        "stringified_extras": stringified,
        "posterior": posterior,
        "stringified_posterior": stringified_posterior,
        "config": None,
    }


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
    def tensors_on(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, dict):
            return {key: tensors_on(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            items = [tensors_on(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    posterior = result.posterior
    if posterior is not None:
        posterior = dataclasses.replace(posterior, draws=posterior.draws.on(device),
                                        distribution=tensors_on(posterior.distribution),
                                        diagnostics=tensors_on(posterior.diagnostics))
    return dataclasses.replace(result, params=result.params.on(device),
                               init=None if result.init is None else result.init.on(device), posterior=posterior)


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
        raise FileNotFoundError(f"no result file at {str(path)!r}" + (" (it is a directory)" if path.is_dir()
                                                                     else "") + ".")
    try:
        with warnings.catch_warnings():
            # torch's note on foreign pickle protocols; the FormatError below says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError... by cause
        raise FormatError(f"{str(path)!r} is not a readable mixtures result file: {_cause(error)}") from None
    _check_header(state, str(path))
    return state


def _cause(error: Exception) -> str:
    """What a failed ``torch.load(weights_only=True)`` means, by the failure's class.

    The weights-only unpickler raises ``UnpicklingError`` both for an object it refuses (an
    unsupported *global*: a class or function, which could run code) and for bytes it cannot
    read at all (an unsupported *operand*: not a pickle it knows); its text advises bypassing
    the check, which is never quoted. Truncated archives raise ``RuntimeError``/``EOFError``.
    """
    text = str(error)
    first = (text.strip().splitlines() or [""])[0]
    if isinstance(error, pickle.UnpicklingError) and "unsupported global" in text.lower():
        return ("it holds objects other than tensors and primitive containers, which are never unpickled "
                "(that could execute code): it was not written by mixtures.io.save_result.")
    if isinstance(error, pickle.UnpicklingError):
        first = "its bytes are not a pickle that torch.load(weights_only=True) reads"
    return (f"torch.load(weights_only=True) failed ({type(error).__name__}: {first[:200]}). The file is "
            "truncated or corrupted, or is not a torch.save file.")


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
            f"{FORMAT_VERSION[0]}.x. Upgrade mixtures to load it.")


def result_from_state(state: dict[str, Any], where: str = "<state>") -> FitResult:
    """Rebuild a :class:`FitResult` from :func:`result_to_state` output, checking every field."""
    _check_header(state, where)
    model = model_from_state(field(state, "model", dict, where), where)
    family, spec = type(model), model.params_spec()
    params = params_from_tensors(field(state, "params", dict, where), family, spec, model.n_components, where)
    init_state = state.get("init")
    init = None if init_state is None else params_from_tensors(init_state, family, spec, model.n_components, where,
                                                               "init")
    history = history_from_state(field(state, "history", dict, where), where)
    method = field(state, "method", str, where)
    decoder = state.get("decoder")
    if decoder is None:  # format 1: from the routine's record
        decoder = "program" if method in ROUTINES and ROUTINES[method].queries == "program" else "closed_form"
    posterior_state_ = state.get("posterior")
    return FitResult(
        model=model, params=params, history=history,
        converged=field(state, "converged", bool, where),
        n_iter=field(state, "n_iter", int, where),
        method=method,
        objective=float(field(state, "objective", (float, int), where)), init=init,
        extras=dict(field(state, "extras", dict, where)),
        posterior=None if posterior_state_ is None else posterior_from_state(posterior_state_, where, model),
        decoder=str(decoder),
    )


result_module.install_saver(save_result)
