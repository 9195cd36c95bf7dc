"""The base of every config block: a frozen pydantic model whose keys are checked with a did-you-mean."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from mixtures.experiment.config.values import kind_of, problem
from mixtures.inference.registry import did_you_mean


class Block(BaseModel):
    """A mapping of the config: unknown keys are errors naming the close match and every key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: the keys a YAML mapping may hold here (``None``: the fields)
    yaml_keys: ClassVar[tuple[str, ...] | None] = None
    #: keys that must be present and not null
    required_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return cls.yaml_keys if cls.yaml_keys is not None else tuple(cls.model_fields)

    @classmethod
    def shorthand(cls, raw: Any) -> Any:
        """Hook: another spelling of the block (a method given by its routine name)."""
        return raw

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        """Hook: defaults that depend on other keys, once the keys are known to be valid."""
        return raw

    @classmethod
    def unknown_key_hint(cls, name: Any, raw: dict) -> str:
        return did_you_mean(name, cls.keys())

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: Any, info: ValidationInfo) -> Any:
        raw = cls.shorthand(raw)
        keys = cls.keys()
        if not isinstance(raw, dict):
            raise problem(f"must be a mapping; got a {kind_of(raw)} ({raw!r}).", "keys " + ", ".join(keys))
        for name in raw:
            if name not in keys:
                raise problem(f"unknown key {name!r}{cls.unknown_key_hint(name, raw)}.", ", ".join(keys),
                              at=str(name))
        for name in cls.required_keys:
            if raw.get(name) is None:
                raise problem("is required but missing.", "see the documented keys: " + ", ".join(keys), at=name)
        return cls.prepare(dict(raw), info.context)
