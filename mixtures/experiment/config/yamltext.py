"""YAML input with bounds: what a config file, an override or a ``--option`` value may be.

PyYAML alone accepts three things a config must not be:

* **duplicate keys** (``data:`` twice): YAML 1.1 keeps the last one silently. The loader
  here refuses them, naming the key and both lines;
* **an alias bomb**: ``&a [1, 1]``, ``&b [*a, *a]``, ... is a few hundred bytes that
  expand to billions of values once copied, merged or validated. :func:`check_bounds`
  counts the values a document expands to (aliases followed, each shared block counted
  every time it is used, by memoization on identity, so counting costs the size of the
  document, not of its expansion) and refuses more than :data:`MAX_CONFIG_VALUES` or a
  nesting deeper than :data:`MAX_CONFIG_DEPTH` (or a block that contains itself);
* **an endless or huge file** (``/dev/zero``, a FIFO, a 10 GB file):
  :func:`read_config_text` reads regular files only and at most
  :data:`MAX_CONFIG_BYTES`.

Deeply nested text (``[[[[...]]]]`` 5000 levels) makes PyYAML's recursive composer raise
``RecursionError``; it is a :class:`ConfigError` here like every other problem.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from mixtures.experiment.config.errors import ConfigError

#: the largest config file read (bytes): configs are a few KiB; given true parameters of
#: a large mixture (K = 10, D = 100 full covariances) are about 2 MiB of text
MAX_CONFIG_BYTES = 8 * 2**20
#: the most values (mappings, lists and scalars, aliases expanded) a config may hold: shipped
#: configs hold a few hundred; given true parameters with K = 10, D = 50 about 26,000. (Command-line
#: overrides go through OmegaConf, which takes about 7 s per 100,000 values.)
MAX_CONFIG_VALUES = 100_000
#: the deepest nesting of mappings and lists a config may have (the schema needs 6)
MAX_CONFIG_DEPTH = 64


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping gives the same key twice."""

    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark):
        self.key = key
        where = (f"line {again.line + 1}, columns {first.column + 1} and {again.column + 1}" if first.line == again.line
                 else f"lines {first.line + 1} and {again.line + 1}")
        super().__init__(None, None, f"the key {key!r} is given twice in one mapping ({where}); YAML would "
                         "silently keep only the last", again)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (merge keys ``<<`` may be overridden)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = key in first
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
                if seen:
                    raise DuplicateKeyError(key, first[key], key_node.start_mark)
                first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_config_text(path: Path, source: str) -> str:
    """The text of a config file: a regular file of at most :data:`MAX_CONFIG_BYTES`, in UTF-8."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(source, "", "config file not found.",
                          "a path to a YAML file such as configs/em_vs_vi.yaml") from None
    except OSError as error:
        raise ConfigError(source, "", f"cannot read the config file ({error.strerror}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(source, "", "is a directory, not a config file.", "a YAML file such as configs/init.yaml")
    if not stat.S_ISREG(info.st_mode):  # /dev/zero, a FIFO, a socket: may never end
        raise ConfigError(source, "", "is not a regular file (a device, pipe or socket), so it may never end.",
                          "a YAML file")
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(source, "", f"cannot read the config file ({error.strerror}).") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB, far beyond any config.",
                          "a YAML config of a few KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(source, "", f"is not UTF-8 text (byte {error.start}): is it a binary file?",
                          "a YAML text file") from None


def load_yaml(text: str, source: str, key: str = "") -> Any:
    """``text`` parsed by :class:`UniqueKeyLoader` and checked by :func:`check_bounds`.

    ``key`` names where the text goes (an override's key path) in errors.
    """
    try:
        value = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as error:
        raise ConfigError(source, key, f"{error.problem}.", "each key once per mapping: remove or rename one"
                          ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(source, key, f"invalid YAML at {where}: {problem}.",
                          "YAML mappings and lists (check indentation, colons and brackets)") from None
    except RecursionError:
        raise ConfigError(source, key, "the YAML is nested too deeply to read.",
                          f"at most {MAX_CONFIG_DEPTH} levels of mappings and lists") from None
    check_bounds(value, source, key)
    return value


def _children(value: Any) -> list:
    if isinstance(value, dict):
        return list(value.keys()) + list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def check_bounds(value: Any, source: str, key: str = "") -> int:
    """The number of values ``value`` expands to; a :class:`ConfigError` beyond the bounds.

    Shared blocks (YAML aliases, Python objects used twice) count once per use, as every
    copy, merge and validation would expand them; each block is visited once (memoized
    by ``id``), so a bomb is measured in microseconds. A block that contains itself is refused.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values, depth) of finished containers
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if not children and not isinstance(node, (dict, list, tuple)):
            continue
        ident = id(node)
        if done:
            active.discard(ident)
            values, depth = 1, 1
            for child in children:
                size, level = sizes.get(id(child), (1, 0))
                values += size
                depth = max(depth, level + 1)
            sizes[ident] = (min(values, MAX_CONFIG_VALUES + 1), depth)
            if values > MAX_CONFIG_VALUES:
                raise ConfigError(source, key, f"expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases "
                                  "repeat a block wherever they are used).",
                                  "a config without aliases that multiply (configs hold thousands of values)")
            if depth > MAX_CONFIG_DEPTH:
                raise ConfigError(source, key, f"nests mappings and lists {depth} levels deep.",
                                  f"at most {MAX_CONFIG_DEPTH} levels")
            continue
        if ident in sizes:
            continue
        if ident in active:
            raise ConfigError(source, key, "a block contains itself (a YAML alias inside its own anchor).",
                              "blocks that do not refer to themselves")
        active.add(ident)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes.get(id(value), (1, 0))[0]
