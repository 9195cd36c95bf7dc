"""The ``data`` entries of a config: one pydantic model per ``kind`` (and per ``truth`` of synthetic data).

Pydantic picks the model by discriminated unions on ``kind`` and ``truth``; every entry is a
:class:`DataConfig`, whose fields its kind does not use stay ``None``, so the rest of the
experiment reads one shape. ``path`` is resolved against the validation context's ``base_dir``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from mixtures.experiment.config.block import Block
from mixtures.experiment.config.values import (
    MAX_NUMPY_SEED,
    MAX_SEED,
    Boolean,
    Name,
    check_choice,
    check_number,
    choice,
    integer,
    kind_of,
    nested_numbers,
    number,
    problem,
)
from mixtures.families.gaussian.covariance import structure_names
from mixtures.families.gaussian.params import MixtureParams
from mixtures.inference.registry import did_you_mean

#: every covariance structure name (and mclust alias) a config may give
COVARIANCE_TYPES = structure_names()
#: the structures a selection sweeps by default (scikit-learn's four)
SELECTION_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DATA_KINDS = ("old_faithful", "bundled", "file", "synthetic", "stars_cyg")
#: the data sets shipped in mixtures/datasets (``kind: bundled``), each a loader in mixtures.data
BUNDLED = ("old_faithful", "iris", "diabetes")
TRUTHS = ("given", "seed004", "seed003", "random")
FILE_FORMATS = ("auto", "csv", "whitespace", "parquet")
#: keys of each dataset kind, and of each truth of synthetic data
DATA_KEYS = {"old_faithful": ("name", "kind", "missing"), "stars_cyg": ("name", "kind", "missing"),
             "bundled": ("name", "kind", "dataset", "missing"),
             "file": ("name", "kind", "path", "format", "columns", "label_column", "index_column", "header",
                      "standardize", "weight_column", "missing"),
             "synthetic": ("name", "kind", "truth", "n", "n_test", "seed", "resample", "outliers", "missing")}
TRUTH_KEYS = {"given": ("weights", "means", "covariances"), "seed004": (), "seed003": ("n_components", "n_features"),
              "random": ("n_components", "n_features", "separation", "imbalance", "covariance_type")}
ALL_DATA_KEYS = tuple(dict.fromkeys(sum(DATA_KEYS.values(), ()) + sum(TRUTH_KEYS.values(), ())))
#: the tags of the dataset unions, which pydantic puts in error locations
UNION_TAGS = frozenset(DATA_KINDS + TRUTHS)


class DataConfig(Block):
    """One dataset (see the ``data`` keys in the README). Fields its ``kind``/``truth`` do not use are ``None``."""

    name: Name
    kind: str
    path: str | None = None
    format: str | None = None
    truth: str | None = None
    n: int | None = None
    n_test: int | None = None
    seed: int | None = None
    resample: bool | None = None
    weights: list | None = None
    means: list | None = None
    covariances: list | None = None
    n_components: int | None = None
    n_features: int | None = None
    separation: float | None = None
    imbalance: float | None = None
    covariance_type: str | None = None
    outliers: float | None = None
    columns: list | None = None
    label_column: str | int | None = None
    index_column: str | int | None = None
    header: bool | None = None
    standardize: bool | None = None
    dataset: str | None = None  # kind bundled: which of BUNDLED
    #: the fraction of entries removed completely at random (NaN) from the training data (every kind;
    #: ``mixtures.data.remove_at_random``, seeded by the complete data's digest; ``None``: none, as before)
    missing: Annotated[float | None, BeforeValidator(lambda v: None if v is None else check_missing_rate(v))] = None
    weight_column: str | int | None = None  # kind file: the column of per-point sample weights

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    def accepts(self, key: str) -> bool:
        """Whether a sweep key of :data:`DATA_SWEEP_KEYS` applies to this dataset."""
        if key == "missing":  # entries can be removed from any data
            return True
        return self.synthetic and (key in ("n", "outliers") or key in TRUTH_KEYS[self.truth])

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    @classmethod
    def unknown_key_hint(cls, name: Any, raw: dict) -> str:
        if name not in ALL_DATA_KEYS:
            return did_you_mean(name, cls.keys())
        truth = f" with truth {raw.get('truth')!r}" if raw.get("kind") == "synthetic" else ""
        return f" (it does not apply to kind {raw.get('kind')!r}{truth})"


class OldFaithfulData(DataConfig):
    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["old_faithful"]
    kind: Literal["old_faithful"]
    name: Name = "old_faithful"


class StarsCygData(DataConfig):
    """The bundled CYG OB1 stars (``mixtures.data.stars_cyg``): labels main sequence / giant, the giants its
    known outliers."""

    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["stars_cyg"]
    kind: Literal["stars_cyg"]
    name: Name = "stars_cyg"


class BundledData(DataConfig):
    """A data set shipped with the package (``mixtures.data.iris()``...), named by ``dataset``."""

    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["bundled"]
    required_keys: ClassVar[tuple[str, ...]] = ("dataset",)
    kind: Literal["bundled"]
    dataset: choice(BUNDLED)

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        if isinstance(raw.get("dataset"), str):
            raw.setdefault("name", raw["dataset"])
        return raw


class FileData(DataConfig):
    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["file"]
    kind: Literal["file"]
    path: str
    format: choice(FILE_FORMATS) = "auto"
    columns: Annotated[list | None, BeforeValidator(lambda value: _column_list(value))] = None
    label_column: Annotated[str | int | None, BeforeValidator(lambda value: _column(value, "label_column"))] = None
    index_column: Annotated[str | int | None, BeforeValidator(lambda value: _column(value, "index_column"))] = None
    weight_column: Annotated[str | int | None, BeforeValidator(lambda value: _column(value, "weight_column"))] = None
    header: Boolean | None = None  # None: detected
    standardize: Boolean | None = None  # None: off (unset keys stay out of the task fingerprint)

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        path = raw.get("path")
        if not isinstance(path, str) or not path:
            raise problem(f"must be the path of a data file; got {path!r}.", "a CSV or whitespace-separated "
                          "text file", at="path")
        resolved = resolve_path(path, (context or {}).get("base_dir"))
        if resolved is None:
            raise problem(f"file {path!r} not found (looked next to the config and in the working directory).",
                          "an existing data file", at="path")
        if not resolved.is_file():  # a directory, a device or a pipe: data.load cannot read it (or never ends)
            kind = "a directory" if resolved.is_dir() else "not a regular file"
            raise problem(f"{path!r} is {kind}, not a data file.", "a CSV, .npy or whitespace-separated text file",
                          at="path")
        raw.setdefault("name", re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(path).stem) or "file")
        return {**raw, "path": str(resolved)}


def _column(value: Any, key: str) -> str | int | None:
    """A column of a data file: its header name or its 0-based position."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0) \
            or (isinstance(value, str) and value):
        return value
    raise problem(f"must be a column name or a 0-based position; got {value!r}.", f"e.g. {key}: species or 5")


def _column_list(value: Any) -> list | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise problem(f"must be a non-empty list of column names or 0-based positions; got {value!r}.",
                      "e.g. [sepal_length, petal_length]")
    return [_column(item, "columns") for item in value]


class SyntheticData(DataConfig):
    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["synthetic"]
    kind: Literal["synthetic"]
    n: integer(2)
    n_test: integer(0) = 2000
    seed: integer(0, maximum=MAX_SEED) = 0
    resample: Boolean = False
    #: the fraction of the n training points replaced by uniform outliers over the inliers' bounding box
    #: widened by half its size on every side (``None``: none, and the data drawn as before the key existed)
    outliers: Annotated[float | None, BeforeValidator(lambda v: None if v is None else check_fraction(v))] = None

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        if raw.get("n") is None:
            raise problem("is required for synthetic data (training points to draw).", "integers >= 2", at="n")
        raw.setdefault("name", raw["truth"])
        return raw


class Seed004Data(SyntheticData):
    truth: Literal["seed004"]


class Seed003Data(SyntheticData):
    """Seed notebook 003's three random Gaussians; the default seed 3 reproduces its ``np.random.seed(3)`` draw."""

    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["synthetic"] + TRUTH_KEYS["seed003"]
    truth: Literal["seed003"]
    seed: integer(0, maximum=MAX_NUMPY_SEED) = 3  # numpy's legacy generator, as the notebook
    n_components: integer(1) = 3
    n_features: integer(1) = 2

    @model_validator(mode="after")
    def _equal_draws(self) -> Seed003Data:
        if self.n % self.n_components:
            raise problem(f"seed003 draws the same number of points per component, so n must be a multiple "
                          f"of n_components={self.n_components}; got {self.n}.",
                          f"multiples of {self.n_components}", at="n")
        return self


class RandomData(SyntheticData):
    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["synthetic"] + TRUTH_KEYS["random"]
    truth: Literal["random"]
    n_components: integer(1, nullable=True) = None  # None: the model's K
    n_features: integer(1) = 2
    separation: number(0) = 2.0
    imbalance: number(1.0) = 1.0
    covariance_type: choice(COVARIANCE_TYPES) = "full"


def check_fraction(value: Any, at: str = "") -> float:
    """A number in ``[0, 0.9]`` (a fraction of outliers)."""
    value = check_number(value, 0.0, at=at)
    if value > 0.9:
        raise problem(f"must be at most 0.9 (a fraction of the points); got {value!r}.", "a number in [0, 0.9]", at=at)
    return value


def check_missing_rate(value: Any, at: str = "") -> float:
    """A number in ``[0, 0.9]`` (a fraction of entries removed at random)."""
    value = check_number(value, 0.0, at=at)
    if value > 0.9:
        raise problem(f"must be at most 0.9 (a fraction of the entries removed at random); got {value!r}.",
                      "a number in [0, 0.9], e.g. missing: 0.2", at=at)
    return value


def _number_list(value: Any) -> list:
    """A list (of lists) of numbers as floats; ``1e-3``, which YAML 1.1 reads as text, is the number."""
    if not isinstance(value, list):
        raise problem(f"must be a list of numbers; got a {kind_of(value)} ({value!r}).", "a list (of lists) of numbers")
    return nested_numbers(value)


NumberList = Annotated[list, BeforeValidator(_number_list)]


class GivenData(SyntheticData):
    yaml_keys: ClassVar[tuple[str, ...]] = DATA_KEYS["synthetic"] + TRUTH_KEYS["given"]
    required_keys: ClassVar[tuple[str, ...]] = TRUTH_KEYS["given"]
    truth: Literal["given"]
    weights: NumberList
    means: NumberList
    covariances: NumberList

    @model_validator(mode="after")
    def _valid_mixture(self) -> GivenData:
        try:
            params = MixtureParams(self.weights, self.means, self.covariances, "full")
        except (ValueError, TypeError, RuntimeError) as error:
            raise problem(f"weights/means/covariances do not form a valid mixture: {error}",
                          "weights (K,) on the simplex, means (K, D), covariances (K, D, D) symmetric "
                          "positive definite", at="weights") from None
        return self.model_copy(update={"weights": params.weights.tolist(), "means": params.locs.tolist(),
                                       "covariances": params.covariances.tolist()})


DataEntry = Annotated[
    OldFaithfulData | StarsCygData | BundledData | FileData | Annotated[Seed004Data | Seed003Data | RandomData |
                                                                         GivenData,
                                           Field(discriminator="truth")],
    Field(discriminator="kind")]


def data_entries(raw: Any) -> list:
    """One mapping or a non-empty list of them, each with a known ``kind`` (and ``truth``)."""
    entries = [raw] if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise problem(f"must be a mapping or a non-empty list of mappings; got {raw!r}.",
                      "kind: " + ", ".join(DATA_KINDS))
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise problem(f"must be a mapping; got a {kind_of(entry)}.", "kind: " + ", ".join(DATA_KINDS), at=f"[{i}]")
        check_choice(entry.get("kind"), DATA_KINDS, at=f"[{i}].kind")
        if entry["kind"] == "synthetic":
            check_choice(entry.get("truth"), TRUTHS, at=f"[{i}].truth")
    return entries


def resolve_path(path: str, base_dir: str | Path | None) -> Path | None:
    """``path`` as given when absolute, else next to the config, else in the working directory (``None``: nowhere)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for folder in ([Path(base_dir)] if base_dir is not None else []) + [Path.cwd()]:
        if (folder / candidate).exists():
            return (folder / candidate).resolve()
    return None
