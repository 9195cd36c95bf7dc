"""The ``reference`` block of a config: published results a run is read against (mclust's top models).

::

    reference:
      source: "mclust 6.0, Mclust(data) summaries"
      top_models:                       # per dataset name: [structure, K, BIC in mclust's sign], best first
        faithful: [[EEE, 3, -2314.316], [VVE, 2, -2320.433], [VEE, 3, -2322.103]]

The report's "Against the reference" section (:mod:`mixtures.experiment.report.reference`) sets the
run's own top models (by ``mclust_bic``) beside these, with the run's value at each published model.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator

from mixtures.experiment.config.block import Block
from mixtures.experiment.config.data import COVARIANCE_TYPES
from mixtures.experiment.config.values import check_choice, check_integer, check_number, kind_of, problem

#: one published model: (covariance structure, K, BIC in mclust's sign)
Published = tuple[str, int, float]


def _top_models(raw: Any) -> dict[str, tuple[Published, ...]]:
    if not isinstance(raw, dict) or not raw:
        raise problem(f"must map dataset names to lists of [structure, K, BIC]; got {raw!r}.",
                      "e.g. faithful: [[EEE, 3, -2314.316]]")
    models: dict[str, tuple[Published, ...]] = {}
    for name, entries in raw.items():
        if not isinstance(entries, list) or not entries:
            raise problem(f"must be a non-empty list of [structure, K, BIC]; got {entries!r}.",
                          "e.g. [[EEE, 3, -2314.316]]", at=str(name))
        checked = []
        for i, entry in enumerate(entries):
            at = f"{name}[{i}]"
            if not isinstance(entry, list) or len(entry) != 3:
                raise problem(f"must be [structure, K, BIC]; got a {kind_of(entry)} ({entry!r}).",
                              "e.g. [EEE, 3, -2314.316]", at=at)
            checked.append((check_choice(entry[0], COVARIANCE_TYPES, at=f"{at}[0]"),
                            check_integer(entry[1], 1, at=f"{at}[1]"), check_number(entry[2], at=f"{at}[2]")))
        models[str(name)] = tuple(checked)
    return models


class ReferenceConfig(Block):
    required_keys: ClassVar[tuple[str, ...]] = ("top_models",)
    source: str = ""
    top_models: Annotated[dict[str, tuple[Published, ...]], BeforeValidator(_top_models)]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "top_models": {name: [list(entry) for entry in entries]
                                                      for name, entries in self.top_models.items()}}
