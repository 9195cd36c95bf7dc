"""Reading a config: YAML, command-line overrides (OmegaConf key paths), the smoke overlay, validation.

Command-line overrides ``key=value`` use OmegaConf key paths, dotted with list indices
(``model.n_components=3``, ``seeds=[0,1]``, ``methods[1].options.lr=0.01`` or
``methods.1.options.lr=0.01``), applied with ``OmegaConf.update`` (see
:func:`apply_overrides`); values are parsed as YAML (duplicate keys and alias bombs refused) and validated like the
file. The ``smoke`` block is the config's own structure, deep-merged over it when
running with ``--smoke`` (mappings merge, lists and scalars replace; a mapping under
``data`` applies to every synthetic dataset), plus ``options``: ``{routine: {option:
value}}`` merged into the options of every method using that routine.

Every problem raises :class:`ConfigError` naming the file, the key path and what is
allowed, before anything is written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigIndexError, OmegaConfBaseException
from pydantic import ValidationError

from mixtures.experiment.config.data import UNION_TAGS
from mixtures.experiment.config.errors import ConfigError, from_validation_error
from mixtures.experiment.config.methods import routine_names
from mixtures.experiment.config.schema import TOP_LEVEL_KEYS, Config
from mixtures.experiment.config.values import kind_of
from mixtures.experiment.config.yamltext import check_bounds, load_yaml, read_config_text
from mixtures.experiment.report.figures import FIGURES
from mixtures.inference.registry import did_you_mean

#: where an override error says what a key path may look like
KEY_PATH_HELP = "dotted keys with list indices, e.g. model.n_components, methods[1].options.lr or methods.1.options.lr"


def load_config(path: str | Path, overrides: Sequence[str] = (), smoke: bool = False) -> Config:
    """Read, override and validate a YAML config.

    Args:
        path: the YAML file.
        overrides: ``"key.path=value"`` strings (YAML values).
        smoke: apply the config's ``smoke`` block (tiny sizes for a quick run).

    Raises:
        ConfigError: unreadable file, invalid YAML, or an invalid value, naming the
            file, the key path and the allowed values.
    """
    path = Path(path)
    source = str(path)
    text = read_config_text(path, source)
    return parse_config(parse_yaml(text, source), source=source, overrides=overrides, smoke=smoke,
                        header=header_comment(text), base_dir=path.resolve().parent)


def parse_yaml(text: str, source: str = "<config>") -> dict:
    """Safe YAML with errors turned into :class:`ConfigError` (line and column): duplicate keys,
    alias bombs and deep nesting refused (:mod:`.yamltext`)."""
    raw = load_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "", f"the document must be a mapping of keys; got a {kind_of(raw)}.",
                          "top-level keys " + ", ".join(TOP_LEVEL_KEYS))
    return raw


def header_comment(text: str) -> str:
    """The leading ``#`` comment block of a YAML file (the question the config answers)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            lines.append(stripped.lstrip("#").strip() if stripped != "#" else "")
        elif stripped or lines:
            break
    return "\n".join(lines).strip()


def parse_config(raw: dict, *, source: str = "<config>", overrides: Sequence[str] = (), smoke: bool = False,
                 header: str = "", base_dir: str | Path | None = None) -> Config:
    """Validate a raw config mapping (as loaded from YAML) into a :class:`Config`.

    ``raw`` is not modified. See :func:`load_config` for the arguments. The smoke block
    is validated even when unused, so a broken one fails early.
    """
    check_bounds(raw, source)  # before anything copies or validates an alias bomb
    raw = copy.deepcopy(raw)
    overridden = apply_overrides(raw, overrides, source)
    check_bounds(raw, source)
    config = validate(raw, source, overridden, base_dir)
    if raw.get("smoke") is not None:
        smoke_config = validate(apply_smoke(raw, raw["smoke"], source), source, overridden, base_dir,
                                note=" (after applying the smoke block)")
        if smoke:
            config = smoke_config
    return config.model_copy(update={"source": source, "header": header, "smoke_applied": smoke,
                                     "overrides": tuple(overrides)})


def validate(raw: dict, source: str, overridden: dict[str, str], base_dir: str | Path | None,
             note: str = "") -> Config:
    """:class:`Config` of ``raw``, pydantic's first problem as a :class:`ConfigError`."""
    try:
        return Config.model_validate(raw, context={"base_dir": base_dir, "figures": tuple(FIGURES)})
    except ValidationError as error:
        rename = {"data[0]": "data"} if isinstance(raw.get("data"), dict) else {}  # one mapping, not a list
        raise from_validation_error(error, source, tags=UNION_TAGS, overridden=overridden, note=note,
                                    rename=rename) from None


# -- overrides -------------------------------------------------------------------------------
def canonical_key(key: str) -> str:
    """``"methods.1.options.lr"`` -> ``"methods[1].options.lr"`` (the form errors name keys in)."""
    return re.sub(r"\.(\d+)(?=[.\[]|$)", r"[\1]", key.strip())


def apply_overrides(raw: dict, overrides: Sequence[str], source: str = "<config>") -> dict[str, str]:
    """Apply ``key=value`` overrides to ``raw`` in place, with OmegaConf.

    The key is an OmegaConf key path (``model.n_components``, ``methods[1].options.lr``
    or ``methods.1.options.lr``; missing mappings on the way are created) applied with
    ``OmegaConf.update(..., merge=False)``: the value replaces what was there (a mapping
    value replaces the whole mapping). The value is read as YAML (:func:`.yamltext.load_yaml`), as the
    file is (``1e-3`` stays text to YAML 1.1 and is accepted where a number is expected).
    Interpolations (``${...}``) are not resolved: values are taken literally.

    Returns ``{key path: override text}`` (key paths in ``[i]`` form) so that later
    errors can say which override set a bad value.
    """
    if not overrides:
        return {}
    tree = _override_tree(raw, source)
    applied: dict[str, str] = {}
    for override in overrides:
        key, value = _split_override(override, source)
        try:
            OmegaConf.update(tree, key, value, merge=False)
        except ConfigIndexError as error:
            parent = getattr(error, "parent_node", None)
            size = len(parent) if parent is not None else 0
            raise ConfigError(source, canonical_key(str(getattr(error, "full_key", None) or key)),
                              f"override {override!r} indexes past the end of a list of {size}.",
                              f"indices 0..{max(size - 1, 0)}") from None
        except (OmegaConfBaseException, ValueError, TypeError, KeyError) as error:
            problem = " ".join(str(getattr(error, "msg", None) or error).split("full_key")[0].split())
            raise ConfigError(source, canonical_key(key), f"override {override!r} cannot be applied ({problem}).",
                              KEY_PATH_HELP + "; an index only where there is a list, a name only where there "
                              "is a mapping") from None
        applied[canonical_key(key)] = override
    raw.clear()
    raw.update(OmegaConf.to_container(tree, resolve=False))
    return applied


def _override_tree(raw: dict, source: str) -> Any:
    """``raw`` as an OmegaConf ``DictConfig`` (which applies the overrides)."""
    try:
        return OmegaConf.create(raw)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or ""
        problem = str(getattr(error, "msg", None) or error).splitlines()[0]
        raise ConfigError(source, str(key), f"the config cannot take command-line overrides: {problem}.",
                          "text keys; values that are mappings, lists, text, numbers, booleans or null") from None


def _split_override(override: str, source: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` -> ``("a.b", [1, 2])``: a readable key path and a YAML value."""
    if "=" not in override:
        raise ConfigError(source, override, f"command-line override {override!r} has no '='.",
                          "key=value, e.g. model.n_components=3 or seeds=[0,1]")
    key, text = override.split("=", 1)
    key = key.strip()
    if not key or key[0] in ".[" or key.endswith(".") or ".." in key or " " in key:
        raise ConfigError(source, key, f"cannot read the key path {key!r}.", KEY_PATH_HELP)
    try:
        return key, load_yaml(text, source, canonical_key(key)) if text.strip() else None
    except ConfigError as error:
        problem = error.problem
        if problem.startswith("invalid YAML "):
            problem = f"is not valid YAML ({problem.removeprefix('invalid YAML ').rstrip('.')})."
        raise ConfigError(source, canonical_key(key), f"the value of override {override!r} {problem}",
                          error.allowed or "YAML scalars and flow lists/mappings, e.g. [0, 1]") from None


# -- smoke overlay ---------------------------------------------------------------------------
def deep_merge(base: Any, overlay: Any) -> Any:
    """``overlay`` over ``base``: mappings merge key by key, anything else replaces (copies)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def apply_smoke(raw: dict, smoke: Any, source: str = "<config>") -> dict:
    """``raw`` with its smoke block merged in (a new dict; the ``smoke`` key removed)."""
    if not isinstance(smoke, dict):
        raise ConfigError(source, "smoke", f"must be a mapping; got a {kind_of(smoke)}.",
                          "a mapping of config keys (data, model, seeds, sweep, ...) and options")
    allowed = tuple(k for k in TOP_LEVEL_KEYS if k not in ("smoke", "name", "description")) + ("options",)
    for key in smoke:
        if key not in allowed:
            raise ConfigError(source, f"smoke.{key}", f"unknown key {key!r}{did_you_mean(key, allowed)}.",
                              ", ".join(allowed))
    merged = {key: copy.deepcopy(value) for key, value in raw.items() if key != "smoke"}
    for key, value in smoke.items():
        if key == "options":
            continue
        if key == "data" and isinstance(value, dict):
            merged["data"] = _shrink_data(merged.get("data"), value)
        else:
            merged[key] = deep_merge(merged.get(key), value) if key in merged else copy.deepcopy(value)
    if smoke.get("options") is not None:
        _merge_smoke_options(merged, smoke["options"], source)
    return merged


def _shrink_data(data: Any, overlay: dict) -> Any:
    """A smoke ``data`` mapping applies to every synthetic dataset (sizes do not apply to real data)."""
    synthetic = lambda entry: isinstance(entry, dict) and entry.get("kind") == "synthetic"  # noqa: E731
    if isinstance(data, list):
        return [deep_merge(entry, overlay) if synthetic(entry) else entry for entry in data]
    return deep_merge(data, overlay) if synthetic(data) or not isinstance(data, dict) else data


def _merge_smoke_options(merged: dict, options: Any, source: str) -> None:
    """Merge ``{routine: {option: value}}`` into every method of that routine (and sweep-only routines)."""
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ConfigError(source, "smoke.options", "must map routine names to option mappings.",
                          "e.g. {em: {max_iter: 5}, svi: {num_steps: 20}}")
    routines = routine_names()
    for routine in options:
        if routine not in routines:
            raise ConfigError(source, f"smoke.options.{routine}", f"unknown routine {routine!r}"
                              f"{did_you_mean(routine, routines)}.", ", ".join(routines))
    methods = merged.get("methods")
    if not isinstance(methods, list):
        return
    for entry in methods:
        routine = entry.get("method", entry.get("name")) if isinstance(entry, dict) else None
        if routine in options:
            entry["options"] = {**(entry.get("options") or {}), **options[routine]}
    sweep = merged.get("sweep")
    named = {entry.get("name", entry.get("method")) for entry in methods if isinstance(entry, dict)}
    for routine in (sweep.get("method") or []) if isinstance(sweep, dict) else []:
        if isinstance(routine, str) and routine not in named and routine in options:
            methods.append({"name": routine, "method": routine, "options": dict(options[routine])})
