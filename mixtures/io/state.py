"""The one serialization of ``mixtures`` objects: parameters, posteriors, models, histories.

Every object becomes a *state*: a dict of tensors and primitives (str, int, float, bool,
None, lists and dicts of them) that ``torch.save`` writes and ``torch.load(weights_only=True)``
reads without executing code, and that :func:`json_state` turns into JSON bit-exactly.
Result files (:mod:`mixtures.io`) and experiment records use these functions and nothing
else. Every reader checks what it reads and raises :class:`FormatError` naming the file
(``where``) and the field.

States name their family (``"family": "gaussian"``), so parameters and posteriors of any
registered family (:func:`mixtures.core.family.get_family`) come back as that family's
classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.family import FAMILIES, MixtureFamily, get_family
from mixtures.core.history import History
from mixtures.core.params import Params
from mixtures.core.posterior import Posterior
from mixtures.errors import ParameterError


class FormatError(ValueError):
    """A file is not a readable ``mixtures`` result (corrupted, foreign, or too new)."""


# -- primitives ----------------------------------------------------------------------------
def check_key(key: Any, where: str) -> str | int:
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return key
    raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str or int.")


def strict_primitive(value: Any, where: str) -> Any:
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
        return {check_key(k, where): strict_primitive(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [strict_primitive(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"{where} is a {type(value).__name__}, which a result file cannot hold; "
                    "use numbers, strings, tensors, or lists and dicts of them.")


def portable(values: dict[str, Any], where: str) -> tuple[dict[Any, Any], list[str]]:
    """``values`` with every entry that is not primitives and tensors replaced by its ``repr``
    string; returns the kept dict and the names that were stringified."""
    kept: dict[Any, Any] = {}
    stringified: list[str] = []
    for key, value in values.items():
        try:
            kept[check_key(key, where)] = strict_primitive(value, f"{where}[{key!r}]")
        except TypeError:
            kept[str(key)] = repr(value)
            stringified.append(str(key))
    return kept, stringified


def field(state: dict[str, Any], name: str, kind: Any, where: str, prefix: str = "") -> Any:
    """``state[name]`` of the given type(s), or a ``FormatError`` naming ``where`` and the field."""
    if not isinstance(state, dict) or name not in state:
        raise FormatError(f"{where!r} lacks the field {prefix + name!r}; the file is incomplete or "
                          "was not written by mixtures.io.save_result.")
    value = state[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    wrong_bool = isinstance(value, bool) and bool not in kinds
    if not isinstance(value, kinds) or wrong_bool:
        expected = " or ".join(k.__name__ for k in kinds)
        raise FormatError(f"{where!r}: field {prefix + name!r} must be {expected}; got {type(value).__name__}.")
    return value


# -- models ---------------------------------------------------------------------------------
#: the types a model's spec field may have in a state
SPEC_KINDS = (str, int, float, bool, list, dict, type(None))


def model_to_state(model: MixtureFamily) -> dict[str, Any]:
    """``{"family", "n_components", <spec fields>, "prior": fields or None}``."""
    prior = None
    if model.prior is not None:
        prior = {f.name: strict_primitive(getattr(model.prior, f.name), f"prior.{f.name}")
                 for f in dataclasses.fields(model.prior)}
    return {"family": model.name, "n_components": int(model.n_components), **model.spec(), "prior": prior}


def model_from_state(state: Any, where: str) -> MixtureFamily:
    """The model of :func:`model_to_state` (a state without ``family`` is a Gaussian mixture:
    format 1.x files)."""
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field 'model' must be a dict; got {type(state).__name__}.")
    family = _family(state.get("family", "gaussian"), where)
    n_components = field(state, "n_components", int, where, "model.")
    # spec fields are primitives (a structure's name, a t's fixed degrees of freedom, a wrapped
    # family's spec as a dict): what MixtureFamily.spec() promises
    spec = {name: field(state, name, SPEC_KINDS, where, "model.") for name in family.spec_fields}
    prior = _prior_from_state(family, state.get("prior"), where)
    try:
        return family(n_components, **spec, prior=prior)
    except (TypeError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid model fields: {error}") from error


def _family(name: Any, where: str) -> type:
    if not isinstance(name, str) or name not in FAMILIES:
        raise FormatError(f"{where!r}: unknown mixture family {name!r}; this mixtures knows {sorted(FAMILIES)}.")
    return get_family(name)


def _prior_from_state(family: type, state: Any, where: str) -> Any:
    if state is None:
        return None
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field 'model.prior' must be a dict or None; got {type(state).__name__}.")
    try:
        return family.prior_type(**state)
    except (TypeError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid model.prior: {error}") from error


# -- parameters ------------------------------------------------------------------------------
def params_tensors(params: Params) -> dict[str, Tensor]:
    """The parameters' tensors, detached CPU copies."""
    return {name: value.detach().cpu().clone() for name, value in params.tensors().items()}


def params_from_tensors(state: Any, family: type, spec: dict[str, Any], n_components: int, where: str,
                        name: str = "params") -> Params:
    """Parameters of ``family`` from their tensors, checked (validation alone: it renormalizes
    the weights, and loaded tensors must stay bit-exact)."""
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field {name!r} must be a dict of tensors; got {type(state).__name__}.")
    params_type = family.params_type
    tensors = {}
    for key in params_type.component_axes(spec):
        value = field(state, key, Tensor, where, f"{name}.")
        if not value.is_floating_point():
            raise FormatError(f"{where!r}: {name}.{key} must be a floating tensor; got {value.dtype}.")
        tensors[key] = value
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) > 1:
        raise FormatError(f"{where!r}: {name} tensors have mixed dtypes {sorted(map(str, dtypes))}.")
    try:
        params_type.from_tensors(tensors, spec, validate=True)
        params = params_type.from_tensors(tensors, spec, validate=False)
    except (ParameterError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid {name}: {error}") from error
    if params.n_components != n_components:
        raise FormatError(f"{where!r}: invalid {name}: K={params.n_components} but the model has "
                          f"K={n_components}.")
    return params


def params_to_state(params: Params) -> dict[str, Any]:
    """Self-describing state of ``params``: ``{"family", "spec", "tensors"}`` (CPU copies).

    The inverse is :func:`params_from_state`; :func:`json_state` makes it JSON-able.
    """
    return {"family": params.family, "spec": strict_primitive(params.spec(), "params.spec"),
            "tensors": params_tensors(params)}


def params_from_state(state: Any, where: str = "<state>") -> Params:
    """Parameters from :func:`params_to_state` output (checked; ``FormatError`` names ``where``)."""
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: parameters must be a dict; got {type(state).__name__}.")
    family = _family(state.get("family"), where)
    spec = field(state, "spec", dict, where)
    tensors = field(state, "tensors", dict, where)
    weights = field(tensors, "weights", Tensor, where, "tensors.")
    return params_from_tensors(tensors, family, spec, weights.shape[-1], where)


# -- posteriors -------------------------------------------------------------------------------
def posterior_to_state(posterior: Posterior, indices: Tensor | None = None) -> dict[str, Any]:
    """State of ``posterior`` (its draws, or those at ``indices``, as CPU tensors; other fields as
    primitives, or their ``repr`` when they are not). Inverse: :func:`posterior_from_state`."""
    return posterior_state(posterior if indices is None else posterior.subset(indices))[0]


def posterior_state(posterior: Posterior) -> tuple[dict[str, Any], list[str]]:
    """``(state, names of fields stored as repr strings)``."""
    if not isinstance(posterior, Posterior):
        raise TypeError(f"a posterior must be a mixtures Posterior; got {type(posterior).__name__}.")
    others, stringified = portable({"distribution": posterior.distribution, "diagnostics": posterior.diagnostics},
                                   "posterior")
    state = {"family": posterior.draws.family, "spec": strict_primitive(posterior.draws.spec(), "posterior.spec"),
             "tensors": params_tensors(posterior.draws), "kind": str(posterior.kind), **others}
    if posterior.log_density is not None:
        state["log_density"] = posterior.log_density.detach().cpu()
    return state, stringified


def posterior_from_state(state: Any, where: str = "<state>", model: MixtureFamily | None = None) -> Posterior:
    """A :class:`Posterior` from :func:`posterior_to_state` output (or a format-1 result file's
    Gaussian posterior fields), checked."""
    if not isinstance(state, dict):
        raise FormatError(f"{where!r}: field 'posterior' must be a dict or None; got {type(state).__name__}.")
    if "tensors" not in state and "cov_type" in state:  # format 1: a Gaussian posterior's own fields
        state = {"family": "gaussian", "spec": {"covariance_type": state["cov_type"]},
                 "tensors": {name: state.get(name) for name in ("weights", "locs", "native")}, **state}
    family = _family(state.get("family"), where)
    spec = field(state, "spec", dict, where, "posterior.")
    tensors = field(state, "tensors", dict, where, "posterior.")
    draws = {name: field(tensors, name, Tensor, where, "posterior.")
             for name in family.params_type.component_axes(spec)}
    weights = draws["weights"]
    K = model.n_components if model is not None else weights.shape[-1]
    if (weights.dim() != 2 or weights.shape[1] != K
            or any(t.dim() < 1 or t.shape[0] != weights.shape[0] for t in draws.values())):
        raise FormatError(f"{where!r}: posterior draws must share their first dimension S and have "
                          f"weights (S, {K}); got shapes { {name: tuple(t.shape) for name, t in draws.items()} }.")
    kind = field(state, "kind", str, where, "posterior.")
    try:
        stacked = family.params_type.from_tensors(draws, spec, validate=False)
        log_density = state.get("log_density")
        if log_density is not None and (not isinstance(log_density, Tensor) or log_density.shape != weights.shape[:1]):
            raise FormatError(f"{where!r}: posterior.log_density must be a tensor of shape ({weights.shape[0]},).")
        return Posterior(stacked, kind, state.get("distribution"), state.get("diagnostics") or {}, log_density)
    except (TypeError, ValueError) as error:
        raise FormatError(f"{where!r}: invalid posterior: {error}") from error


# -- histories ---------------------------------------------------------------------------------
def history_to_state(history: History) -> dict[str, Tensor]:
    return {name: history[name] for name in history.columns}


def history_from_state(state: dict[str, Any], where: str) -> History:
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


# -- JSON ----------------------------------------------------------------------------------------
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
