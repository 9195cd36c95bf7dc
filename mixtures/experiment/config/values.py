"""Leaf value types of the config schema: pydantic annotated types with the config's own messages.

Each type is an ``Annotated`` type whose ``BeforeValidator`` accepts exactly what the
config documents (an integer is never a boolean; ``1e-3``, which PyYAML 1.1 reads as
text, is the number it means) and otherwise raises :func:`problem`: a
``PydanticCustomError`` carrying the problem, what is allowed, and optionally a key
path below the failing location (``at``), which :mod:`.errors` turns into a
``ConfigError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from mixtures.inference.registry import did_you_mean

#: the pydantic error type of every problem raised by the schema
ERROR_TYPE = "config"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: the largest seed: torch's generators take 64-bit seeds
MAX_SEED = 2**64 - 1
#: the largest seed of numpy's legacy generator (seed notebook 003's data)
MAX_NUMPY_SEED = 2**32 - 1


def problem(text: str, allowed: str | None = None, at: str = "") -> PydanticCustomError:
    """A schema error: ``text`` says what is wrong, ``allowed`` what would be right, ``at`` a
    key path below the location pydantic reports (``"options.lr"``, ``"[1][0]"``)."""
    return PydanticCustomError(ERROR_TYPE, "{problem}", {"problem": text, "allowed": allowed, "at": at})


def kind_of(value: Any) -> str:
    """The YAML word for the type of ``value`` (for "got a list")."""
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (dict, "mapping"), (list, "list"), (str, "string"),
                       ((int, float), "number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def join_path(base: str, key: Any) -> str:
    """``join_path("methods[0]", "options")`` -> ``"methods[0].options"``; indices as ``[i]``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if not base or str(key).startswith("["):
        return f"{base}{key}"
    return f"{base}.{key}"


# -- checks ----------------------------------------------------------------------------
def check_integer(value: Any, minimum: int | None = None, at: str = "", maximum: int | None = None) -> int:
    """``value`` as an int within the bounds. A whole number written ``1e4`` (text to YAML 1.1) or
    ``1.0e4`` is the integer it means; booleans and fractions are refused."""
    value = _whole_number(value)
    low = minimum is not None and isinstance(value, int) and value < minimum
    high = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or low or high:
        bound = "" if minimum is None else f" >= {minimum}"
        if maximum is not None:
            bound = f" from {minimum} to {maximum}" if minimum is not None else f" <= {maximum}"
        raise problem(f"must be an integer{bound}; got {value!r}.", f"integers{bound}", at)
    return value


def _whole_number(value: Any) -> Any:
    """``"1e4"`` and ``1.0e4`` -> ``10000``; anything else unchanged."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def check_number(value: Any, minimum: float | None = None, exclusive: bool = False, at: str = "") -> float:
    if isinstance(value, str):
        try:  # PyYAML 1.1 reads 1e-3 (no dot) as text: accept the number it obviously means
            value = float(value)
        except ValueError:
            pass
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if exclusive else value >= minimum
    if not ok:
        allowed = "finite numbers" + ("" if minimum is None else f" {'>' if exclusive else '>='} {minimum:g}")
        raise problem(f"must be {allowed.replace('finite numbers', 'a finite number')}; got {value!r}.",
                      allowed, at)
    return float(value)


def check_choice(value: Any, choices: Sequence[str], noun: str | None = None, at: str = "") -> str:
    if not isinstance(value, str) or value not in choices:
        text = f"unknown {noun} {value!r}" if noun else f"{value!r} is not allowed"
        raise problem(f"{text}{did_you_mean(value, choices)}.", ", ".join(choices), at)
    return value


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise problem(f"{value!r} is not a usable name (it labels tables and file names).",
                      "letters, digits and _ . + - (starting with a letter or digit)")
    return value


def check_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem(f"must be true or false; got {value!r}.", "true, false")
    return value


def check_nonempty_list(value: Any, what: str) -> list:
    if not isinstance(value, list) or not value:
        raise problem(f"must be a non-empty list; got {value!r}.", what)
    return value


def check_distinct(values: Sequence[Any]) -> None:
    if len(set(values)) != len(values):
        twice = next(value for i, value in enumerate(values) if value in values[:i])
        raise problem(f"lists {twice!r} twice: {list(values)}.", "distinct values")


def nested_numbers(value: Any, at: str = "") -> Any:
    """A number, a list of numbers or a list of lists (a matrix), as floats."""
    if isinstance(value, list):
        return [nested_numbers(item, f"{at}[{i}]") for i, item in enumerate(value)]
    return check_number(value, at=at)


# -- annotated types ---------------------------------------------------------------------
def integer(minimum: int | None = None, nullable: bool = False, maximum: int | None = None) -> Any:
    """An integer ``>= minimum`` and ``<= maximum`` (``None`` too when ``nullable``)."""
    def validate(value: Any) -> int | None:
        return None if nullable and value is None else check_integer(value, minimum, maximum=maximum)
    return Annotated[int | None if nullable else int, BeforeValidator(validate)]


def number(minimum: float | None = None, exclusive: bool = False, nullable: bool = False) -> Any:
    """A finite number (``> minimum`` when ``exclusive``, else ``>=``), as a float."""
    def validate(value: Any) -> float | None:
        return None if nullable and value is None else check_number(value, minimum, exclusive)
    return Annotated[float | None if nullable else float, BeforeValidator(validate)]


def choice(choices: Sequence[str] | Callable[[Any], Sequence[str]], noun: str | None = None,
           nullable: bool = False) -> Any:
    """One of ``choices``; a callable is given the validation context (registries known only then)."""
    def validate(value: Any, info: ValidationInfo) -> str | None:
        if nullable and value is None:
            return None
        return check_choice(value, tuple(choices(info.context) if callable(choices) else choices), noun)
    return Annotated[str | None if nullable else str, BeforeValidator(validate)]


def listing(item: Any, what: str, distinct: bool = True) -> Any:
    """A non-empty list of ``item`` values (distinct ones by default), as a tuple."""
    def validate(value: Any) -> list:
        values = check_nonempty_list(value, what)
        if distinct and all(isinstance(v, (str, int, float)) for v in values):
            check_distinct(values)
        return values
    return Annotated[tuple[item, ...], BeforeValidator(validate)]


Name = Annotated[str, BeforeValidator(check_name)]
Boolean = Annotated[bool, BeforeValidator(check_boolean)]
