"""``ConfigError`` and the translation of pydantic's validation errors into it.

Pydantic reports a location (``("methods", 2, "options")``) and an error type; the
config reports the key path as the file spells it (``methods[2].options.lr``), the
problem, what is allowed, and which command-line override set the value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mixtures.experiment.config.values import ERROR_TYPE, join_path, kind_of
from mixtures.inference.registry import did_you_mean


class ConfigError(ValueError):
    """A config file, block or override is invalid.

    Attributes:
        file: the config file (or ``"<config>"``).
        key: the key path, e.g. ``methods[2].options.lr`` (``""`` for the document).
        problem: what is wrong.
        allowed: what is allowed there, as text.
    """

    def __init__(self, file: str, key: str, problem: str, allowed: str | None = None):
        self.file, self.key, self.problem, self.allowed = file, key, problem, allowed
        where = f"{file}: {key}" if key else file
        message = f"{where}: {problem}"
        if allowed:
            message += f" Allowed: {allowed}."
        super().__init__(message)


def override_origin(key: str, overridden: dict[str, str]) -> str:
    """`` (set by the command-line override 'x=1')`` when an override set ``key`` or a block above it."""
    origin = ""
    for path, override in overridden.items():
        if key == path or key.startswith(path + ".") or key.startswith(path + "["):
            origin = f" (set by the command-line override {override!r})"
    return origin


def key_path(location: tuple[Any, ...], tags: frozenset[str]) -> str:
    """Pydantic's location as a key path; the tags of discriminated unions (``"synthetic"``) dropped."""
    path = ""
    for i, part in enumerate(location):
        if isinstance(part, str) and part in tags and i > 0 and not isinstance(location[i - 1], str):
            continue  # a union tag right after a list index
        if isinstance(part, str) and part in tags and i > 1 and location[i - 1] in tags:
            continue  # a nested union's tag
        path = join_path(path, part)
    return path


def describe(error: dict[str, Any]) -> tuple[str, str, str | None]:
    """``(key path below the location, problem, allowed)`` of one pydantic error."""
    context = error.get("ctx") or {}
    kind, value = error["type"], error.get("input")
    if kind == ERROR_TYPE:
        return context.get("at", ""), context["problem"], context.get("allowed")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = context["discriminator"].strip("'")
        tags = context.get("expected_tags", "").replace("'", "")
        got = context.get("tag") if kind == "union_tag_invalid" else None
        from_registry = [t.strip() for t in tags.split(",") if t.strip()]
        hint = did_you_mean(got, from_registry) if got is not None else ""
        return field, f"{got!r} is not allowed{hint}.", tags or None
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        return "", f"must be a mapping; got a {kind_of(value)} ({value!r}).", None
    if kind == "missing":
        return "", "is required but missing.", None
    return "", f"{error.get('msg', 'is invalid')}; got {value!r}.", None


def from_validation_error(error: ValidationError, source: str, *, tags: frozenset[str],
                          overridden: dict[str, str], note: str = "",
                          rename: dict[str, str] | None = None) -> ConfigError:
    """The first problem of ``error`` as a :class:`ConfigError` (pydantic lists them in field order).

    ``rename`` maps key-path prefixes to what the file spells (``data[0]`` -> ``data`` for a
    single mapping); ``note`` is appended to the problem (e.g. that the smoke block is applied).
    """
    first = error.errors(include_url=False)[0]
    below, text, allowed = describe(first)
    key = key_path(first["loc"], tags)
    key = join_path(key, below) if below else key
    for old, new in (rename or {}).items():
        if key == old or key.startswith(old + ".") or key.startswith(old + "["):
            key = new + key[len(old):]
    return ConfigError(source, key, text + override_origin(key, overridden) + note, allowed)
