"""The experiment config as pydantic models: what a YAML config may say, with defaults.

Every block is a frozen :class:`~.block.Block` (a pydantic model) that rejects unknown
keys with a did-you-mean; values are checked by the annotated types of :mod:`.values`,
dataset entries by :mod:`.data`, methods (and their routine options, by the routine's
record) by :mod:`.methods`, and relations between blocks by :meth:`Config._cross_check`.

The figure names of ``output.figures`` come from the validation context
(``{"figures": names}``, given by :func:`~.loading.parse_config` from the figure
registry, which sits above the config).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from mixtures.experiment.config.block import Block
from mixtures.experiment.config.data import (
    COVARIANCE_TYPES,
    SELECTION_COVARIANCE_TYPES,
    DataConfig,
    DataEntry,
    check_fraction,
    check_missing_rate,
    data_entries,
)
from mixtures.experiment.config.methods import MethodConfig, routine_names
from mixtures.experiment.config.reference import ReferenceConfig
from mixtures.experiment.config.sizes import memory_problem, run_bytes
from mixtures.experiment.config.values import (
    MAX_SEED,
    Name,
    check_choice,
    check_integer,
    check_number,
    choice,
    integer,
    kind_of,
    listing,
    number,
    problem,
)
from mixtures.inference.registry import ROUTINES, did_you_mean
from mixtures.init import INITIALIZERS

SWEEP_KEYS = ("n", "n_components", "n_features", "separation", "imbalance", "init", "method",
              "covariance_type", "outliers", "missing")
#: sweep keys that change the data (all but ``missing`` only meaningful for synthetic datasets)
DATA_SWEEP_KEYS = ("n", "n_features", "separation", "imbalance", "outliers", "missing")
FORMATS = ("png", "pdf", "svg")
#: most Monte Carlo draws for KL to the truth (its standard error falls as 1/sqrt(n): 1e8 draws already
#: take minutes and gigabytes per fit); memory is also checked against the machine (:mod:`.sizes`)
MAX_KL_SAMPLES = 10**8
TOP_LEVEL_KEYS = ("name", "description", "data", "model", "methods", "inits", "seeds", "sweep",
                  "metrics", "output", "reference", "smoke")

#: Model selection (``mixtures select`` and ``configs/model_selection.yaml``, which a test
#: holds to these values): as mclust, EM from the hierarchical-agglomeration start (one
#: deterministic start) to a relative tolerance of 1e-5 (``tol`` None: no absolute one). With
#: em's own defaults (k-means start, tol 1e-3, max_iter 100) tied K = 3 on Old Faithful stops at
#: BIC 2342.8 instead of 2314.31. ``covariance_types``: the four the config schema sweeps; the
#: command line's default is all fourteen of mclust's structures.
SELECTION_DEFAULTS: dict[str, Any] = {"method": "em", "init": "hc", "max_iter": 1000, "tol": None, "rtol": 1e-5,
                                      "n_init": 1, "k_max": 9, "covariance_types": SELECTION_COVARIANCE_TYPES}


def init_names(context: Any = None) -> tuple[str, ...]:
    return tuple(INITIALIZERS)


def figure_names(context: Any) -> tuple[str, ...]:
    """The registered figures, from the validation context (the registry sits above the config)."""
    if not context or "figures" not in context:
        raise TypeError("validating output.figures needs the figure names: Config.model_validate(raw, "
                        "context={'figures': ...}) (parse_config passes the registry's).")
    return tuple(context["figures"])


class ModelConfig(Block):
    required_keys: ClassVar[tuple[str, ...]] = ("n_components",)
    n_components: integer(1)
    covariance_type: choice(COVARIANCE_TYPES) = "full"
    reg_covar: number(0) = 1e-6


# -- sweep, metrics, output ---------------------------------------------------------------------
#: how each sweep value is checked (``method`` against the methods, in :meth:`Config._sweep_methods`)
SWEEP_VALUES = {
    "n": lambda v, at: check_integer(v, 2, at), "n_components": lambda v, at: check_integer(v, 1, at),
    "n_features": lambda v, at: check_integer(v, 1, at), "separation": lambda v, at: check_number(v, 0, at=at),
    "imbalance": lambda v, at: check_number(v, 1.0, at=at),
    "init": lambda v, at: check_choice(v, init_names(), at=at),
    "covariance_type": lambda v, at: check_choice(v, COVARIANCE_TYPES, at=at),
    "method": lambda v, at: v,
    "outliers": lambda v, at: check_fraction(v, at),
    "missing": lambda v, at: check_missing_rate(v, at),
}


def _sweep(raw: Any) -> dict[str, tuple]:
    """The sweep in file order (it orders tasks and names figures): ``{key: values}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise problem(f"must be a mapping; got a {kind_of(raw)} ({raw!r}).", "keys " + ", ".join(SWEEP_KEYS))
    sweep = {}
    for key, values in raw.items():
        if key not in SWEEP_VALUES:
            raise problem(f"unknown key {key!r}{did_you_mean(key, SWEEP_KEYS)}.", ", ".join(SWEEP_KEYS), at=str(key))
        if not isinstance(values, list) or not values:
            raise problem(f"must be a non-empty list; got {values!r}.", f"a list of {key} values", at=key)
        checked = [SWEEP_VALUES[key](value, f"{key}[{i}]") for i, value in enumerate(values)]
        if len(set(checked)) != len(checked):
            raise problem(f"lists a value twice: {checked}.", "distinct values", at=key)
        sweep[key] = tuple(checked)
    return sweep


class MetricsConfig(Block):
    kl_samples: integer(10, maximum=MAX_KL_SAMPLES) = 10000
    singular_rtol: number(0, exclusive=True) = 1e-3


def _figures(value: Any, info: ValidationInfo) -> tuple[str, ...]:
    names = figure_names(info.context)
    if value == "all":
        return names
    if value in ("none", None):
        return ()
    if not isinstance(value, list):
        raise problem(f"must be 'all', 'none' or a list; got {value!r}.", "all, none, or a list of " + ", ".join(names))
    return tuple(dict.fromkeys(check_choice(v, names, at=f"[{i}]") for i, v in enumerate(value)))


def _formats(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not value:
        raise problem(f"must be a list of formats; got {value!r}.", "[png] or [png, pdf]")
    formats = tuple(dict.fromkeys(check_choice(v, FORMATS, at=f"[{i}]") for i, v in enumerate(value)))
    if "png" not in formats:
        raise problem(f"must include png (report.md embeds PNG); got {list(formats)}.", "[png] or [png, pdf]")
    return formats


class OutputConfig(Block):
    figures: Annotated[tuple[str, ...], BeforeValidator(_figures)]
    formats: Annotated[tuple[str, ...], BeforeValidator(_formats)] = ("png",)
    max_cell_figures: integer(0) = 4
    dpi: integer(20) = 150

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        raw.setdefault("figures", "all")
        return raw


def _description(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise problem(f"must be text; got a {kind_of(value)}.", "a string")
    return value or ""


# -- the config -------------------------------------------------------------------------------------
class Config(Block):
    """A validated experiment config.

    ``sweep`` maps sweep keys (in file order) to their value tuples. ``source`` is the
    file it came from; ``header`` the comment lines at its top (the question it
    answers); ``smoke`` the raw smoke block (already applied when ``smoke_applied``);
    ``overrides`` the command-line overrides applied. Those four are set by the
    loader, never by the YAML.
    """

    yaml_keys: ClassVar[tuple[str, ...]] = TOP_LEVEL_KEYS
    required_keys: ClassVar[tuple[str, ...]] = ("data", "model", "methods")
    model: ModelConfig
    methods: listing(MethodConfig, "mappings {name, method, options}", distinct=False)
    inits: listing(choice(init_names), "initializer names " + ", ".join(init_names())) = ("kmeans",)
    seeds: listing(integer(0, maximum=MAX_SEED), "a list of integers from 0 to 2**64 - 1, e.g. [0, 1, 2]") = (0,)
    data: Annotated[tuple[DataEntry, ...], BeforeValidator(data_entries)]
    sweep: Annotated[dict[str, tuple], BeforeValidator(_sweep)] = Field(default_factory=dict)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    output: OutputConfig
    reference: ReferenceConfig | None = None
    name: Name = "experiment"
    description: Annotated[str, BeforeValidator(_description)] = ""
    smoke: dict | None = None
    source: str = "<config>"
    header: str = ""
    smoke_applied: bool = False
    overrides: tuple[str, ...] = ()

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        for block in ("metrics", "output"):  # null or absent: every default
            if raw.get(block) is None:
                raw[block] = {}
        return raw

    @field_validator("methods")
    @classmethod
    def _distinct_method_names(cls, methods: tuple[MethodConfig, ...]) -> tuple[MethodConfig, ...]:
        names = [m.name for m in methods]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise problem(f"the name {name!r} is used twice.", "a distinct display name per method",
                              at=f"[{i}].name")
        return methods

    @field_validator("data")
    @classmethod
    def _distinct_data_names(cls, data: tuple[DataConfig, ...]) -> tuple[DataConfig, ...]:
        names = [d.name for d in data]
        for i, name in enumerate(names):
            if names.count(name) > 1:
                raise problem(f"two datasets are named {name!r}.", "a distinct name per dataset", at=f"[{i}].name")
        return data

    @model_validator(mode="after")
    def _sweep_methods(self) -> Config:
        """``sweep.method`` names methods or routines; a bare routine name adds that routine with defaults."""
        names = [m.name for m in self.methods]
        extra = []
        for i, value in enumerate(self.sweep.get("method", ())):
            check_choice(value, tuple(dict.fromkeys(names + list(routine_names()))), at=f"sweep.method[{i}]")
            if value not in names:
                if ROUTINES[value].prior == "required":
                    raise problem(f"routine {value!r} needs a prior, which a bare routine name in the sweep cannot "
                                  "give.", "a methods entry with a prior, named in sweep.method", at="sweep.method")
                extra.append(MethodConfig(name=value, method=value))
        self._cross_check(self.methods + tuple(extra))
        return self.model_copy(update={"methods": self.methods + tuple(extra)}) if extra else self

    def _cross_check(self, methods: tuple[MethodConfig, ...]) -> None:
        names = [d.name for d in self.data]
        for name in (self.reference.top_models if self.reference is not None else ()):
            if name not in names:
                raise problem(f"no dataset is named {name!r}{did_you_mean(name, names)}.", ", ".join(names),
                              at=f"reference.top_models.{name}")
        for i, method in enumerate(methods):
            for j, dataset in enumerate(method.datasets or ()):
                if dataset not in names:
                    raise problem(f"no dataset is named {dataset!r}{did_you_mean(dataset, names)}.", ", ".join(names),
                                  at=f"methods[{i}].datasets[{j}]")
            if method.n_components is not None and "n_components" in self.sweep:
                raise problem("cannot fix a method's K while sweep.n_components varies it.", "one of the two",
                              at=f"methods[{i}].n_components")
        selected = self.sweep.get("method", [m.name for m in methods])
        for dataset in self.data:
            if not any(m.applies_to(dataset.name) for m in methods if m.name in selected):
                raise problem(f"no method runs on dataset {dataset.name!r} (every method lists other datasets).",
                              "datasets: [..., " + dataset.name + "] on some method, or remove the dataset",
                              at="methods")
        for key in DATA_SWEEP_KEYS:
            if key in self.sweep and not any(d.accepts(key) for d in self.data):
                users = "synthetic data" if key in ("n", "outliers") else "synthetic data with truth: random"
                raise problem(f"no dataset uses {key!r}: it only applies to {users}.", "sweep keys of the datasets "
                              "given, or model keys n_components, covariance_type, init, method", at=f"sweep.{key}")
        self._check_missing_handled(methods, selected)
        for i, dataset in enumerate(self.data):
            if dataset.synthetic:
                self._check_sizes(dataset, f"data[{i}]" if len(self.data) > 1 else "data", methods)

    def _check_missing_handled(self, methods: tuple[MethodConfig, ...], selected: Any) -> None:
        """Every method that runs on data with entries removed (``missing`` > 0) says how it handles them."""
        for dataset in self.data:
            rates = self.sweep.get("missing", (dataset.missing,)) if "missing" in self.sweep else (dataset.missing,)
            if not any(rate for rate in rates):
                continue
            for i, method in enumerate(methods):
                if method.name in selected and method.applies_to(dataset.name) and not method.handles_missing:
                    raise problem(f"method {method.name!r} runs on dataset {dataset.name!r}, which has entries "
                                  f"removed at random (missing: {max(r or 0 for r in rates):g}), but does not say "
                                  "what to do with them.", "missing: marginalize (the observed-data likelihood) "
                                  "or impute: mean (the baseline) on the method", at=f"methods[{i}]")

    def _check_sizes(self, dataset: DataConfig, where: str, methods: tuple[MethodConfig, ...]) -> None:
        """Enough points for every K fitted to a synthetic dataset, and seed003's equal draws."""
        ks = tuple(self.sweep.get("n_components", (self.model.n_components,)))
        ks += tuple(m.n_components for m in methods if m.n_components is not None and m.applies_to(dataset.name))
        ns = self.sweep.get("n", (dataset.n,)) if dataset.accepts("n") else (dataset.n,)
        n_key = "sweep.n" if "n" in self.sweep else f"{where}.n"
        if min(ns) < max(ks):
            raise problem(f"{min(ns)} training points are fewer than the model's {max(ks)} components.",
                          f"n >= {max(ks)}", at=n_key)
        if dataset.truth == "seed003" and any(n % dataset.n_components for n in ns):
            raise problem(f"seed003 draws n / n_components points per component; {list(ns)} are not all multiples "
                          f"of {dataset.n_components}.", f"multiples of {dataset.n_components}", at=n_key)
        if dataset.truth == "given" and "n_features" in self.sweep:
            raise problem("cannot change the dimension of given true parameters.", "truth: random to sweep n_features",
                          at="sweep.n_features")
        self._check_memory(dataset, where, ks, max(ns), n_key)

    def _check_memory(self, dataset: DataConfig, where: str, ks: tuple[int, ...], n: int, n_key: str) -> None:
        """The dataset's points, covariances, responsibilities and KL draws fit in this machine's memory."""
        if dataset.truth == "given":
            D, true_k, d_key = len(dataset.means[0]) if dataset.means else 1, len(dataset.weights), f"{where}.means"
        else:
            D = max(self.sweep.get("n_features", (dataset.n_features or 2,)) if dataset.accepts("n_features")
                    else (dataset.n_features or 2,))
            true_k = 2 if dataset.truth == "seed004" else (dataset.n_components or max(ks))
            d_key = "sweep.n_features" if "n_features" in self.sweep else f"{where}.n_features"
        K = max(ks + (true_k,))
        kl = self.metrics.kl_samples
        sizes = run_bytes(n, dataset.n_test, D, K, kl)
        keys = {"points": n_key, "responsibilities": n_key, "covariances": d_key, "kl": "metrics.kl_samples"}
        details = {"points": f"n = {n} points and {dataset.n_test} held out, D = {D} features",
                   "covariances": f"K = {K} covariance matrices of D x D = {D} x {D}",
                   "responsibilities": f"n = {n} points x K = {K} components",
                   "kl": f"kl_samples = {kl} draws x (D + K) = {D + K}"}
        found = memory_problem(sizes, keys, details)
        if found is not None:
            key, text, allowed = found
            raise problem(text, allowed, at=key)

    # -- use ----------------------------------------------------------------------------------
    def method(self, name: str) -> MethodConfig:
        for method in self.methods:
            if method.name == name:
                return method
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-ready data (reloadable with ``parse_config``)."""
        result: dict[str, Any] = {
            "name": self.name, "description": self.description, "data": [d.to_dict() for d in self.data],
            "model": self.model.model_dump(), "methods": [m.to_dict() for m in self.methods],
            "inits": list(self.inits), "seeds": list(self.seeds)}
        if self.sweep:
            result["sweep"] = {key: list(values) for key, values in self.sweep.items()}
        result["metrics"] = self.metrics.model_dump()
        output = self.output.model_dump()
        result["output"] = {key: list(value) if isinstance(value, tuple) else value for key, value in output.items()}
        if self.reference is not None:
            result["reference"] = self.reference.to_dict()
        return result

    def to_yaml(self) -> str:
        lines = [f"# resolved from {self.source}" + (" with its smoke block applied" if self.smoke_applied else "")]
        if self.overrides:
            lines.append("# overrides: " + " ".join(self.overrides))
        lines += [f"# {line}" if line else "#" for line in self.header.splitlines()]
        return "\n".join(lines) + "\n" + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None,
                                                        width=100)
