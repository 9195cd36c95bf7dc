"""Experiment configs: YAML files loaded into typed, validated dataclasses.

A config (see ``configs/*.yaml``) names the data, the model, the fitting methods,
initializers and seeds, an optional sweep, and metric/output options::

    data:                       # one dataset, or a list of them (each with a name)
      - {name: faithful, kind: old_faithful}
      - {name: seed004, kind: synthetic, truth: seed004, n: 500, n_test: 5000, seed: 0}
    model: {n_components: 2, covariance_type: full}
    methods:                    # display name, routine (mixtures.inference.ROUTINES), options
      - {name: EM, method: em, options: {max_iter: 200, tol: 1.0e-6}}
      - {name: SVI, method: svi, options: {num_steps: 1000, lr: 0.05}}
      - {name: VB, method: vb, prior: {}}   # a prior: GaussianPrior fields ({} = defaults)
    inits: [kmeans]
    seeds: [0, 1, 2]
    sweep: {n: [100, 1000]}     # cartesian product over n, n_components, n_features,
                                # separation, imbalance, init, method, covariance_type
    metrics: {kl_samples: 10000}
    output: {figures: all, formats: [png, pdf]}
    smoke: {...}                # overlay applied by ``--smoke`` (tiny sizes, few steps)

Data entries (``kind``):

``old_faithful``
    the bundled Old Faithful eruptions (272 × 2).
``file``
    ``path`` (relative to the config file's folder, else to the working
    directory) and ``format`` (``auto``, ``csv``, ``whitespace``).
``synthetic``
    ``truth`` is ``given`` (``weights``, ``means``, ``covariances``), ``seed004``
    (the true mixture of seed notebook 004), ``seed003`` (seed notebook 003's three
    random Gaussians) or ``random`` (``n_components`` — null follows the model's
    K —, ``n_features``, ``separation``, ``imbalance``, ``covariance_type``);
    ``n`` training points and ``n_test`` held-out points (0: none) are drawn with
    the data ``seed`` (seed003: ``n / n_components`` points per component,
    exactly the notebook's draw with its default seed 3); ``resample: true``
    draws fresh training data for every fit seed (replicates for error bars).

Sweep keys ``n``, ``n_features``, ``separation``, ``imbalance`` apply to the
synthetic datasets that use them (others are not multiplied);
``n_components`` and ``covariance_type`` set the fitted model; ``init``
replaces ``inits``; ``method`` selects entries of ``methods`` by name (a bare
routine name adds that routine with default options).

``model``: ``n_components``, ``covariance_type``, ``reg_covar`` (default 1e-6; a
method's ``options.reg_covar`` overrides it). ``methods[i].options`` go to the
routine (and ``n_init`` to :func:`mixtures.fit`); well-known options are
type-checked on load, and routines with an explicit signature (MAP, SVI, NUTS,
stepwise EM) reject unknown names on load too.

A method entry may also carry:

``prior``
    a mapping of :class:`mixtures.priors.GaussianPrior` fields (``{}``: every
    default, e.g. ``{weight_prior: dirichlet_process, weight_concentration: 0.1}``);
    the method then fits ``GaussianMixture(K, covariance_type, prior=GaussianPrior(**prior))``.
    ``em`` with a prior is MAP-EM, ``vb`` and ``nuts`` need one, ``svi``/``map``
    with ``guide: normal`` or ``mvn`` need one; ``kmeans``, ``kmedians`` and
    ``stepwise_em`` take none. Shapes (``mean_prior`` ``(D,)``,
    ``covariance_prior`` per covariance type) are checked against the data
    before anything is written.
``n_components``
    this method's K instead of ``model.n_components`` (e.g. a truncated
    Dirichlet process with more components than the data need); not with
    ``sweep.n_components``. The data (and a random truth's K) still follow the model's K.
``datasets``
    the names of the datasets the method runs on (default: all of them).

``metrics``: ``kl_samples`` (Monte Carlo draws for KL to the truth), ``singular_rtol``
(tolerance of :func:`mixtures.metrics.is_singular`). ``output``: ``figures``
(``all``, ``none`` or a list of :data:`FIGURES`, see :mod:`mixtures.report`),
``formats`` (``[png]`` or ``[png, pdf]``), ``max_cell_figures`` (ellipse figures
per dataset), ``dpi``.

The ``smoke`` block is the config's own structure, deep-merged over it when
running with ``--smoke`` (mappings merge, lists and scalars replace; a mapping
under ``data`` applies to every synthetic dataset), plus ``options``:
``{routine: {option: value}}`` merged into the options of every method using
that routine.

Command-line overrides ``key=value`` use OmegaConf key paths, dotted with list
indices (``model.n_components=3``, ``seeds=[0,1]``, ``methods[1].options.lr=0.01``
or ``methods.1.options.lr=0.01``), applied with ``OmegaConf.update`` (see
:func:`apply_overrides`); values are parsed by ``yaml.safe_load`` and validated
like the file. The file itself is read by PyYAML (errors name the line).

Every problem raises :class:`ConfigError` (a ``ValueError``) naming the file,
the key path and what is allowed, before anything is written.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DATA_KINDS = ("old_faithful", "file", "synthetic")
TRUTHS = ("given", "seed004", "seed003", "random")
FILE_FORMATS = ("auto", "csv", "whitespace")
SWEEP_KEYS = ("n", "n_components", "n_features", "separation", "imbalance", "init", "method",
              "covariance_type")
#: sweep keys that change the data (only meaningful for synthetic datasets)
DATA_SWEEP_KEYS = ("n", "n_features", "separation", "imbalance")
FIGURES = ("ellipses", "traces", "kl_gap", "error_vs", "bic", "contours", "init_spread", "posterior",
           "weights", "passes")
FORMATS = ("png", "pdf")

TOP_LEVEL_KEYS = ("name", "description", "data", "model", "methods", "inits", "seeds", "sweep",
                  "metrics", "output", "smoke")
MODEL_KEYS = ("n_components", "covariance_type", "reg_covar")
METHOD_KEYS = ("name", "method", "options", "prior", "n_components", "datasets")
#: fields of mixtures.priors.GaussianPrior a method's ``prior`` may set
PRIOR_KEYS = ("weight_prior", "weight_concentration", "mean_prior", "mean_precision", "degrees_of_freedom",
              "covariance_prior", "kind", "scale_prior", "lkj_concentration")
#: Pyro guides over the globals that approximate a posterior (they need a prior)
DISTRIBUTIONAL_GUIDES = ("normal", "mvn")
METRICS_KEYS = ("kl_samples", "singular_rtol")
OUTPUT_KEYS = ("figures", "formats", "max_cell_figures", "dpi")
DATA_COMMON_KEYS = ("name", "kind")
DATA_KEYS = {
    "old_faithful": (),
    "file": ("path", "format"),
    "synthetic": ("truth", "n", "n_test", "seed", "resample"),
}
TRUTH_KEYS = {
    "given": ("weights", "means", "covariances"),
    "seed004": (),
    "seed003": ("n_components", "n_features"),
    "random": ("n_components", "n_features", "separation", "imbalance", "covariance_type"),
}
ALL_DATA_KEYS = tuple(dict.fromkeys(
    DATA_COMMON_KEYS + sum(DATA_KEYS.values(), ()) + sum(TRUTH_KEYS.values(), ())))

#: types of well-known routine options, checked on load (other options go to the routine as is).
_INT_OPTIONS = {"max_iter": 0, "num_steps": 0, "eval_every": 1, "num_particles": 1,
                "subsample_size": 1, "chunk_size": 1, "n_init": 1,
                # nuts
                "warmup": 0, "num_samples": 4, "num_chains": 1, "max_tree_depth": 1,
                # stepwise_em
                "batch_size": 1, "num_epochs": 0, "max_steps": 0, "eval_size": 1, "warm_start_steps": 0,
                # vb, svi: draws kept in result.posterior
                "posterior_samples": 1}
_FLOAT_OPTIONS = {"lr": "positive", "tol": "nonnegative", "rtol": "nonnegative",
                  "reg_covar": "nonnegative", "lr_decay": "positive", "kappa": "positive",
                  "target_accept_prob": "positive"}
_BOOL_OPTIONS = ("jit", "track_likelihood", "validate", "warn", "jit_compile", "full_mass", "relabel",
                 "progress_bar", "shuffle", "standardize")
_CHOICE_OPTIONS = {"guide": ("delta",) + DISTRIBUTIONAL_GUIDES, "local_guide": ("enumerate", "mean_field"),
                   "local_estimator": ("enumerate", "sample"), "updates": ("sklearn", "model"),
                   "on_collapse": ("error", "reseed")}
#: options that ``mixtures.fit`` itself takes (every routine accepts them)
_FIT_OPTIONS = ("n_init", "reg_covar")
#: options owned by the experiment, never passed as routine options.
_RESERVED_OPTIONS = ("init", "seed", "method", "model", "X", "dtype", "device")

#: Model selection (``mixtures select`` and ``configs/model_selection.yaml``, which a test
#: holds to these values): EM to a tight tolerance from several k-means starts (seeds
#: 0, 1, 2), the best non-singular start kept per (K, covariance type). With em's own
#: defaults (tol 1e-3, max_iter 100, one start) tied K = 3 on Old Faithful stops at
#: BIC 2342.8 instead of its optimum 2314.30.
SELECTION_DEFAULTS: dict[str, Any] = {"method": "em", "init": "kmeans", "max_iter": 1000, "tol": 1e-6,
                                      "n_init": 3, "k_max": 9, "covariance_types": COVARIANCE_TYPES}

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ConfigError(ValueError):
    """A config file, block or override is invalid.

    Attributes:
        file: the config file (or ``"<config>"``).
        key: the key path, e.g. ``methods[2].options.lr`` (``""`` for the document).
        allowed: what is allowed there, as text.
    """

    def __init__(self, file: str, key: str, problem: str, allowed: str | None = None):
        self.file, self.key, self.problem, self.allowed = file, key, problem, allowed
        where = f"{file}: {key}" if key else file
        message = f"{where}: {problem}"
        if allowed:
            message += f" Allowed: {allowed}."
        super().__init__(message)


# -------------------------------------------------------------------------------------------
# dataclasses
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """One dataset. Fields not used by its ``kind``/``truth`` stay ``None``."""

    name: str
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

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    def accepts(self, key: str) -> bool:
        """Whether a sweep key of :data:`DATA_SWEEP_KEYS` applies to this dataset."""
        if not self.synthetic:
            return False
        return key == "n" or key in TRUTH_KEYS[self.truth]

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class ModelConfig:
    n_components: int
    covariance_type: str = "full"
    reg_covar: float = 1e-6


@dataclass(frozen=True)
class MethodConfig:
    """``name``: display label; ``method``: routine name; ``options``: routine options.

    ``prior``: ``GaussianPrior`` fields (``{}`` = defaults) or ``None`` (no prior);
    ``n_components``: this method's K (``None``: the model's); ``datasets``: names of
    the datasets it runs on (``None``: all).
    """

    name: str
    method: str
    options: dict = field(default_factory=dict)
    prior: dict | None = None
    n_components: int | None = None
    datasets: tuple[str, ...] | None = None

    def applies_to(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets

    def gaussian_prior(self) -> Any:
        """The :class:`mixtures.priors.GaussianPrior` of ``prior`` (``None`` without one)."""
        if self.prior is None:
            return None
        from mixtures.priors import GaussianPrior

        return GaussianPrior(**self.prior)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "method": self.method, "options": _plain(self.options)}
        if self.prior is not None:
            entry["prior"] = _plain(self.prior)
        if self.n_components is not None:
            entry["n_components"] = self.n_components
        if self.datasets is not None:
            entry["datasets"] = list(self.datasets)
        return entry


@dataclass(frozen=True)
class MetricsConfig:
    kl_samples: int = 10000
    singular_rtol: float = 1e-3


@dataclass(frozen=True)
class OutputConfig:
    figures: tuple[str, ...] = FIGURES
    formats: tuple[str, ...] = ("png",)
    max_cell_figures: int = 4
    dpi: int = 150


@dataclass(frozen=True)
class Config:
    """A validated experiment config.

    ``sweep`` maps sweep keys (in file order) to their value tuples. ``source`` is
    the file it came from; ``header`` the comment lines at its top (the question
    it answers); ``smoke`` the raw smoke block (already applied when
    ``smoke_applied``).
    """

    data: tuple[DataConfig, ...]
    model: ModelConfig
    methods: tuple[MethodConfig, ...]
    inits: tuple[str, ...] = ("kmeans",)
    seeds: tuple[int, ...] = (0,)
    sweep: dict = field(default_factory=dict)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    name: str = "experiment"
    description: str = ""
    smoke: dict | None = None
    source: str = "<config>"
    header: str = ""
    smoke_applied: bool = False
    overrides: tuple[str, ...] = ()

    def method(self, name: str) -> MethodConfig:
        for method in self.methods:
            if method.name == name:
                return method
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-ready data (reloadable with :func:`parse_config`)."""
        data = [entry.to_dict() for entry in self.data]
        result: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "data": data,
            "model": asdict(self.model),
            "methods": [m.to_dict() for m in self.methods],
            "inits": list(self.inits),
            "seeds": list(self.seeds),
        }
        if self.sweep:
            result["sweep"] = {key: list(values) for key, values in self.sweep.items()}
        result["metrics"] = asdict(self.metrics)
        result["output"] = {"figures": list(self.output.figures), "formats": list(self.output.formats),
                            "max_cell_figures": self.output.max_cell_figures, "dpi": self.output.dpi}
        return result

    def to_yaml(self) -> str:
        lines = [f"# resolved from {self.source}"
                 + (" with its smoke block applied" if self.smoke_applied else "")]
        if self.overrides:
            lines.append("# overrides: " + " ".join(self.overrides))
        lines += [f"# {line}" if line else "#" for line in self.header.splitlines()]
        return "\n".join(lines) + "\n" + yaml.safe_dump(self.to_dict(), sort_keys=False,
                                                        default_flow_style=None, width=100)


def _plain(value: Any) -> Any:
    return copy.deepcopy(value)


# -------------------------------------------------------------------------------------------
# loading
# -------------------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: Sequence[str] = (), smoke: bool = False) -> Config:
    """Read, override and validate a YAML config.

    Args:
        path: the YAML file.
        overrides: ``"key.path=value"`` strings (values parsed by ``yaml.safe_load``).
        smoke: apply the config's ``smoke`` block (tiny sizes for a quick run).

    Raises:
        ConfigError: unreadable file, invalid YAML, or an invalid value, naming the
            file, the key path and the allowed values.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "config file not found.",
                          "a path to a YAML file such as configs/em_vs_vi.yaml") from None
    except OSError as error:
        raise ConfigError(source, "", f"cannot read the config file ({error.strerror}).") from None
    raw = parse_yaml(text, source)
    return parse_config(raw, source=source, overrides=overrides, smoke=smoke,
                        header=_header_comment(text), base_dir=path.resolve().parent)


def parse_yaml(text: str, source: str = "<config>") -> dict:
    """``yaml.safe_load`` with errors turned into :class:`ConfigError` (line and column)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(source, "", f"invalid YAML at {where}: {problem}.",
                          "YAML mappings and lists (check indentation, colons and brackets)") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "", f"the document must be a mapping of keys; got a {_kind(raw)}.",
                          "top-level keys " + ", ".join(TOP_LEVEL_KEYS))
    return raw


def _header_comment(text: str) -> str:
    """The leading ``#`` comment block of a YAML file (the question the config answers)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            lines.append(stripped.lstrip("#").strip() if stripped != "#" else "")
        elif stripped == "" and not lines:
            continue
        else:
            break
    return "\n".join(lines).strip()


def parse_config(raw: dict, *, source: str = "<config>", overrides: Sequence[str] = (),
                 smoke: bool = False, header: str = "", base_dir: str | Path | None = None) -> Config:
    """Validate a raw config mapping (as loaded from YAML) into a :class:`Config`.

    ``raw`` is not modified. See :func:`load_config` for the arguments.
    """
    raw = copy.deepcopy(raw)
    overridden = apply_overrides(raw, overrides, source)
    checker = _Checker(source, overridden)
    config = checker.config(raw, header=header, base_dir=base_dir)
    smoke_block = raw.get("smoke")
    if smoke_block is not None:
        # The smoke block is validated even when unused, so a broken one fails early.
        merged = apply_smoke(raw, smoke_block, source)
        smoke_config = _Checker(source, overridden, note=" (after applying the smoke block)").config(
            merged, header=header, base_dir=base_dir)
        if smoke:
            config = smoke_config
    if smoke:
        config = _replace(config, smoke_applied=True)
    return _replace(config, overrides=tuple(overrides))


def _replace(config: Config, **changes: Any) -> Config:
    values = {name: getattr(config, name) for name in config.__dataclass_fields__}
    values.update(changes)
    return Config(**values)


# -------------------------------------------------------------------------------------------
# overrides and smoke overlay
# -------------------------------------------------------------------------------------------
#: where an override error says what a key path may look like
_KEY_PATH_HELP = "dotted keys with list indices, e.g. model.n_components, methods[1].options.lr or methods.1.options.lr"


def _override_tree(raw: dict, source: str) -> Any:
    """``raw`` as an OmegaConf ``DictConfig`` (which applies the overrides)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.create(raw)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or ""
        problem = str(getattr(error, "msg", None) or error).splitlines()[0]
        raise ConfigError(source, str(key), f"the config cannot take command-line overrides: {problem}.",
                          "text keys; values that are mappings, lists, text, numbers, booleans or null") from None


def canonical_key(key: str) -> str:
    """``"methods.1.options.lr"`` -> ``"methods[1].options.lr"`` (the form errors name keys in)."""
    return re.sub(r"\.(\d+)(?=[.\[]|$)", r"[\1]", key.strip())


def apply_overrides(raw: dict, overrides: Sequence[str], source: str = "<config>") -> dict[str, str]:
    """Apply ``key=value`` overrides to ``raw`` in place, with OmegaConf.

    The key is an OmegaConf key path (``model.n_components``, ``methods[1].options.lr``
    or ``methods.1.options.lr``; missing mappings on the way are created) applied
    with ``OmegaConf.update(..., merge=False)``: the value replaces what was there
    (a mapping value replaces the whole mapping). The value is read by
    ``yaml.safe_load``, as the file is (``1e-3`` stays text to YAML 1.1 and is
    accepted where a number is expected). Interpolations (``${...}``) are not
    resolved: values are taken literally.

    Returns ``{key path: override text}`` (key paths in ``[i]`` form) so that later
    errors can say which override set a bad value.
    """
    if not overrides:
        return {}
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigIndexError, OmegaConfBaseException

    tree = _override_tree(raw, source)
    applied: dict[str, str] = {}
    for override in overrides:
        if "=" not in override:
            raise ConfigError(source, override, f"command-line override {override!r} has no '='.",
                              "key=value, e.g. model.n_components=3 or seeds=[0,1]")
        key, text = override.split("=", 1)
        key = key.strip()
        if not key or key[0] in ".[" or key.endswith(".") or ".." in key or " " in key:
            raise ConfigError(source, key, f"cannot read the key path {key!r}.", _KEY_PATH_HELP)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or "invalid YAML"
            raise ConfigError(source, key, f"the value of override {override!r} is not valid YAML "
                              f"({problem}).", "YAML scalars and flow lists/mappings, e.g. [0, 1]") from None
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
            raise ConfigError(source, canonical_key(key), f"override {override!r} cannot be applied "
                              f"({problem}).", _KEY_PATH_HELP + "; an index only where there is a list, "
                              "a name only where there is a mapping") from None
        applied[canonical_key(key)] = override
    raw.clear()
    raw.update(OmegaConf.to_container(tree, resolve=False))
    return applied


def _deep_merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = _deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def apply_smoke(raw: dict, smoke: Any, source: str = "<config>") -> dict:
    """``raw`` with its smoke block merged in (a new dict; the ``smoke`` key removed)."""
    if not isinstance(smoke, dict):
        raise ConfigError(source, "smoke", f"must be a mapping; got a {_kind(smoke)}.",
                          "a mapping of config keys (data, model, seeds, sweep, ...) and options")
    allowed = tuple(k for k in TOP_LEVEL_KEYS if k not in ("smoke", "name", "description")) + ("options",)
    for key in smoke:
        if key not in allowed:
            raise ConfigError(source, f"smoke.{key}", f"unknown key {key!r}{_did_you_mean(key, allowed)}.",
                              ", ".join(allowed))
    merged = {key: copy.deepcopy(value) for key, value in raw.items() if key != "smoke"}
    for key, value in smoke.items():
        if key == "options":
            continue
        if key == "data" and isinstance(value, dict) and isinstance(merged.get("data"), list):
            merged["data"] = [_deep_merge(entry, value)
                              if isinstance(entry, dict) and entry.get("kind") == "synthetic" else entry
                              for entry in merged["data"]]
        elif key == "data" and isinstance(value, dict) and isinstance(merged.get("data"), dict) \
                and merged["data"].get("kind") != "synthetic":
            continue  # sizes do not apply to real data
        else:
            merged[key] = _deep_merge(merged.get(key), value) if key in merged else copy.deepcopy(value)
    options = smoke.get("options")
    if options is not None:
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ConfigError(source, "smoke.options", "must map routine names to option mappings.",
                              "e.g. {em: {max_iter: 5}, svi: {num_steps: 20}}")
        routines = available_routines()
        for routine in options:
            if routine not in routines:
                raise ConfigError(source, f"smoke.options.{routine}", f"unknown routine {routine!r}"
                                  f"{_did_you_mean(routine, routines)}.", ", ".join(routines))
        methods = merged.get("methods")
        if isinstance(methods, list):
            for entry in methods:
                if isinstance(entry, dict) and entry.get("method", entry.get("name")) in options:
                    routine = entry.get("method", entry.get("name"))
                    entry["options"] = {**(entry.get("options") or {}), **options[routine]}
        sweep_methods = (merged.get("sweep") or {}).get("method") if isinstance(merged.get("sweep"), dict) \
            else None
        if isinstance(sweep_methods, list) and isinstance(methods, list):
            named = {entry.get("name", entry.get("method")) for entry in methods if isinstance(entry, dict)}
            for routine in sweep_methods:
                if isinstance(routine, str) and routine not in named and routine in options:
                    methods.append({"name": routine, "method": routine, "options": dict(options[routine])})
    return merged


# -------------------------------------------------------------------------------------------
# validation
# -------------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def available_routines() -> tuple[str, ...]:
    """Names registered in ``mixtures.inference.ROUTINES`` (imported lazily)."""
    from mixtures.inference import ROUTINES

    return tuple(sorted(ROUTINES))


def available_inits() -> tuple[str, ...]:
    from mixtures.init import INITIALIZERS

    return tuple(INITIALIZERS)


class _Checker:
    """Validates one raw config mapping, raising ConfigError with file and key path."""

    def __init__(self, source: str, overridden: dict[str, str] | None = None, note: str = ""):
        self.source = source
        self.overridden = overridden or {}
        self.note = note

    # -- error helpers ------------------------------------------------------------------
    def error(self, key: str, problem: str, allowed: str | None = None) -> ConfigError:
        origin = ""
        for path, override in self.overridden.items():
            if key == path or key.startswith(path + ".") or key.startswith(path + "["):
                origin = f" (set by the command-line override {override!r})"
        return ConfigError(self.source, key, problem + origin + self.note, allowed)

    def mapping(self, value: Any, key: str, allowed_keys: Sequence[str], required: Sequence[str] = ()
                ) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping; got a {_kind(value)} ({value!r}).",
                             "keys " + ", ".join(allowed_keys))
        for name in value:
            if name not in allowed_keys:
                where = f"{key}.{name}" if key else str(name)
                raise self.error(where, f"unknown key {name!r}{_did_you_mean(name, allowed_keys)}.",
                                 ", ".join(allowed_keys))
        for name in required:
            if value.get(name) is None:
                where = f"{key}.{name}" if key else name
                raise self.error(where, "is required but missing.", "see the documented keys: "
                                 + ", ".join(allowed_keys))
        return value

    def choice(self, value: Any, key: str, choices: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.error(key, f"{value!r} is not allowed{_did_you_mean(value, choices)}.",
                             ", ".join(choices))
        return value

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            bound = f"integers >= {minimum}" if minimum is not None else "integers"
            raise self.error(key, f"must be an integer{'' if minimum is None else f' >= {minimum}'}; "
                             f"got {value!r}.", bound)
        return value

    def number(self, value: Any, key: str, sign: str = "any", *, minimum: float | None = None) -> float:
        if isinstance(value, str):
            # PyYAML reads 1e-3 (no dot) as text; accept the number it obviously means.
            try:
                value = float(value)
            except ValueError:
                pass
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if ok and sign == "positive":
            ok = value > 0
        if ok and sign == "nonnegative":
            ok = value >= 0
        if ok and minimum is not None:
            ok = value >= minimum
        if not ok:
            allowed = {"positive": "finite numbers > 0", "nonnegative": "finite numbers >= 0"}.get(
                sign, "finite numbers")
            if minimum is not None:
                allowed = f"finite numbers >= {minimum}"
            wanted = allowed.replace("finite numbers", "a finite number")
            raise self.error(key, f"must be {wanted}; got {value!r}.", allowed)
        return float(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false; got {value!r}.", "true, false")
        return value

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not _NAME_PATTERN.match(value):
            raise self.error(key, f"{value!r} is not a usable name (it labels tables and file names).",
                             "letters, digits and _ . + - (starting with a letter or digit)")
        return value

    def nonempty_list(self, value: Any, key: str, what: str) -> list:
        if not isinstance(value, list) or not value:
            raise self.error(key, f"must be a non-empty list; got {value!r}.", what)
        return value

    # -- blocks -------------------------------------------------------------------------
    def config(self, raw: dict, header: str = "", base_dir: str | Path | None = None) -> Config:
        self.mapping(raw, "", TOP_LEVEL_KEYS, required=("data", "model", "methods"))
        model = self.model(raw["model"])
        methods = self.methods(raw["methods"])
        inits = tuple(self.init(value, f"inits[{i}]") for i, value in enumerate(
            self.nonempty_list(raw.get("inits", ["kmeans"]), "inits", "initializer names "
                               + ", ".join(available_inits()))))
        if len(set(inits)) != len(inits):
            raise self.error("inits", f"lists an initializer twice: {list(inits)}.", "distinct names")
        seeds = self.seeds(raw.get("seeds", [0]))
        data = self.data(raw["data"], base_dir)
        sweep = self.sweep(raw.get("sweep"), methods)
        methods = self.add_sweep_methods(methods, sweep)
        metrics = self.metrics(raw.get("metrics"))
        output = self.output(raw.get("output"))
        name = self.name(raw.get("name", "experiment"), "name")
        description = raw.get("description", "") or ""
        if not isinstance(description, str):
            raise self.error("description", f"must be text; got a {_kind(description)}.", "a string")
        config = Config(data=data, model=model, methods=methods, inits=inits, seeds=seeds, sweep=sweep,
                        metrics=metrics, output=output, name=name, description=description,
                        smoke=raw.get("smoke"), source=self.source, header=header)
        self.cross_check(config)
        return config

    def model(self, raw: Any) -> ModelConfig:
        self.mapping(raw, "model", MODEL_KEYS, required=("n_components",))
        return ModelConfig(
            n_components=self.integer(raw["n_components"], "model.n_components", 1),
            covariance_type=self.choice(raw.get("covariance_type", "full"), "model.covariance_type",
                                        COVARIANCE_TYPES),
            reg_covar=self.number(raw.get("reg_covar", 1e-6), "model.reg_covar", "nonnegative"),
        )

    def methods(self, raw: Any) -> tuple[MethodConfig, ...]:
        routines = available_routines()
        entries = self.nonempty_list(raw, "methods", "mappings {name, method, options}")
        methods = []
        for i, entry in enumerate(entries):
            key = f"methods[{i}]"
            if isinstance(entry, str):  # shorthand: a bare routine name
                entry = {"method": entry}
            self.mapping(entry, key, METHOD_KEYS, required=("method",))
            routine = entry["method"]
            if not isinstance(routine, str) or routine not in routines:
                raise self.error(f"{key}.method", f"unknown routine {routine!r}"
                                 f"{_did_you_mean(routine, routines)}.", ", ".join(routines))
            name = self.name(entry.get("name", routine), f"{key}.name")
            options = self.options(entry.get("options") or {}, f"{key}.options")
            self.option_names(routine, options, f"{key}.options")
            prior = self.prior(entry["prior"], f"{key}.prior") if "prior" in entry else None
            self.prior_fits_routine(routine, prior, options, key)
            k = entry.get("n_components")
            k = None if k is None else self.integer(k, f"{key}.n_components", 1)
            datasets = entry.get("datasets")
            if datasets is not None:
                datasets = self.nonempty_list(datasets, f"{key}.datasets", "names of the config's datasets")
                datasets = tuple(self.name(value, f"{key}.datasets[{j}]") for j, value in enumerate(datasets))
            methods.append(MethodConfig(name=name, method=routine, options=options, prior=prior,
                                        n_components=k, datasets=datasets))
        names = [m.name for m in methods]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise self.error(f"methods[{i}].name", f"the name {name!r} is used twice.",
                                 "a distinct display name per method")
        return tuple(methods)

    def options(self, raw: Any, key: str) -> dict:
        if not isinstance(raw, dict):
            raise self.error(key, f"must be a mapping of routine options; got a {_kind(raw)}.",
                             "e.g. {max_iter: 200, tol: 1.0e-6}")
        options = dict(raw)
        for name, value in raw.items():
            where = f"{key}.{name}"
            if not isinstance(name, str):
                raise self.error(where, "option names must be text.", "identifiers")
            if name in _RESERVED_OPTIONS:
                raise self.error(where, f"{name!r} is set by the experiment, not a routine option.",
                                 "inits/seeds/model keys for init, seed and the model")
            if name in _INT_OPTIONS:
                self.integer(value, where, _INT_OPTIONS[name])
            elif name in _FLOAT_OPTIONS and not (name == "rtol" and value is None):
                options[name] = self.number(value, where, _FLOAT_OPTIONS[name])
            elif name in _BOOL_OPTIONS:
                self.boolean(value, where)
            elif name in _CHOICE_OPTIONS:
                self.choice(value, where, _CHOICE_OPTIONS[name])
            elif name == "patience" and value is not None and value != "auto":
                self.integer(value, where, 1)
        return options

    def prior(self, raw: Any, key: str) -> dict:
        """A method's ``prior``: GaussianPrior fields, type-checked; ``null``/``{}`` = all defaults."""
        from mixtures.priors import KINDS, SCALE_PRIORS, WEIGHT_PRIORS, GaussianPrior

        if raw is None:
            raw = {}
        self.mapping(raw, key, PRIOR_KEYS)
        prior = dict(raw)
        for name, value in raw.items():
            where = f"{key}.{name}"
            if value is None:
                continue  # the data-scaled default
            if name == "weight_prior":
                self.choice(value, where, WEIGHT_PRIORS)
            elif name == "kind":
                self.choice(value, where, KINDS)
            elif name == "scale_prior":
                self.choice(value, where, SCALE_PRIORS)
            elif name in ("mean_precision", "degrees_of_freedom", "lkj_concentration"):
                prior[name] = self.number(value, where, "positive")
            elif name == "weight_concentration":
                if isinstance(value, list):
                    prior[name] = [self.number(v, f"{where}[{j}]", "positive") for j, v in enumerate(value)]
                else:
                    prior[name] = self.number(value, where, "positive")
            elif name == "mean_prior":
                values = value if isinstance(value, list) else [value]
                prior[name] = [self.number(v, f"{where}[{j}]") for j, v in enumerate(values)]
            elif name == "covariance_prior":
                prior[name] = self.nested_numbers(value, where)
        try:
            GaussianPrior(**prior)
        except (TypeError, ValueError) as error:
            raise self.error(key, f"is not a valid prior: {error}", ", ".join(PRIOR_KEYS)) from None
        return prior

    def nested_numbers(self, value: Any, key: str) -> Any:
        """A number, a list of numbers or a list of lists (a matrix), as floats."""
        if isinstance(value, list):
            return [self.nested_numbers(v, f"{key}[{j}]") for j, v in enumerate(value)]
        return self.number(value, key)

    def prior_fits_routine(self, routine: str, prior: dict | None, options: dict, key: str) -> None:
        """Routines that need a prior get one; routines that cannot use one do not (the routine
        records' ``prior``, ``prior_kinds`` and ``prior_required_by``)."""
        from mixtures.inference import ROUTINES

        record = ROUTINES[routine]
        if prior is None:
            if record.prior == "required":
                raise self.error(f"{key}.prior", f"routine {routine!r} is Bayesian and needs a prior.",
                                 "prior: {} for the default conjugate prior, or a mapping of "
                                 + ", ".join(PRIOR_KEYS))
            if record.needs_prior(options):
                guide = options.get("guide")
                raise self.error(f"{key}.prior", f"guide {guide!r} approximates a posterior, which needs "
                                 "a prior.", "prior: {} (or guide: delta for maximum likelihood)")
            return
        if record.prior == "rejected":
            rejecting = [name for name, r in sorted(ROUTINES.items()) if r.prior == "rejected"]
            raise self.error(f"{key}.prior", f"routine {routine!r} fits no prior (maximum likelihood or "
                             "clustering only).", "no prior for " + ", ".join(rejecting)
                             + "; em (MAP-EM), vb, svi, map or nuts with a prior")
        kind = prior.get("kind", "conjugate")
        if kind not in record.prior_kinds:
            raise self.error(f"{key}.prior.kind", f"routine {routine!r} needs a "
                             f"{' or '.join(record.prior_kinds)} prior; got {kind!r}.",
                             "kind: conjugate (or method svi/nuts for nonconjugate)")

    def option_names(self, routine: str, options: dict, key: str) -> None:
        """Unknown option names are errors (the routine's record lists its options)."""
        from mixtures.inference import ROUTINES

        accepted = list(ROUTINES[routine].option_names)
        accepted += [name for name in _FIT_OPTIONS if name not in accepted]
        for name in options:
            if name not in accepted:
                raise self.error(f"{key}.{name}", f"routine {routine!r} has no option {name!r}"
                                 f"{_did_you_mean(name, accepted)}.", ", ".join(accepted))

    def init(self, value: Any, key: str) -> str:
        return self.choice(value, key, available_inits())

    def seeds(self, raw: Any) -> tuple[int, ...]:
        values = self.nonempty_list(raw, "seeds", "a list of integers >= 0, e.g. [0, 1, 2]")
        seeds = tuple(self.integer(value, f"seeds[{i}]", 0) for i, value in enumerate(values))
        if len(set(seeds)) != len(seeds):
            raise self.error("seeds", f"lists a seed twice: {list(seeds)}.", "distinct integers")
        return seeds

    def data(self, raw: Any, base_dir: str | Path | None) -> tuple[DataConfig, ...]:
        if isinstance(raw, dict):
            entries = [(raw, "data")]
        elif isinstance(raw, list) and raw:
            entries = [(entry, f"data[{i}]") for i, entry in enumerate(raw)]
        else:
            raise self.error("data", f"must be a mapping or a non-empty list of mappings; got {raw!r}.",
                             "kind: " + ", ".join(DATA_KINDS))
        datasets = tuple(self.dataset(entry, key, base_dir) for entry, key in entries)
        names = [d.name for d in datasets]
        for (_, key), name in zip(entries, names):
            if names.count(name) > 1:
                raise self.error(f"{key}.name", f"two datasets are named {name!r}.",
                                 "a distinct name per dataset")
        return datasets

    def dataset(self, raw: Any, key: str, base_dir: str | Path | None) -> DataConfig:
        if not isinstance(raw, dict):
            raise self.error(key, f"must be a mapping; got a {_kind(raw)}.", "kind: " + ", ".join(DATA_KINDS))
        kind = self.choice(raw.get("kind"), f"{key}.kind", DATA_KINDS)
        allowed = DATA_COMMON_KEYS + DATA_KEYS[kind]
        if kind == "synthetic":
            truth = self.choice(raw.get("truth"), f"{key}.truth", TRUTHS)
            allowed = allowed + TRUTH_KEYS[truth]
        for name in raw:
            if name not in allowed:
                hint = ""
                if name in ALL_DATA_KEYS:
                    hint = f" (it does not apply to kind {kind!r}" + (
                        f" with truth {raw.get('truth')!r})" if kind == "synthetic" else ")")
                raise self.error(f"{key}.{name}", f"unknown key {name!r}"
                                 f"{hint or _did_you_mean(name, allowed)}.", ", ".join(allowed))
        if kind == "old_faithful":
            return DataConfig(name=self.name(raw.get("name", "old_faithful"), f"{key}.name"), kind=kind)
        if kind == "file":
            path = raw.get("path")
            if not isinstance(path, str) or not path:
                raise self.error(f"{key}.path", f"must be the path of a data file; got {path!r}.",
                                 "a CSV or whitespace-separated text file")
            resolved = _resolve_path(path, base_dir)
            if resolved is None:
                raise self.error(f"{key}.path", f"file {path!r} not found (looked next to the config and "
                                 "in the working directory).", "an existing data file")
            default_name = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(path).stem) or "file"
            return DataConfig(name=self.name(raw.get("name", default_name), f"{key}.name"), kind=kind,
                              path=str(resolved),
                              format=self.choice(raw.get("format", "auto"), f"{key}.format", FILE_FORMATS))
        truth = raw["truth"]
        values: dict[str, Any] = {
            "name": self.name(raw.get("name", truth), f"{key}.name"), "kind": kind, "truth": truth,
            "n": self.integer(raw.get("n"), f"{key}.n", 2) if raw.get("n") is not None else None,
            "n_test": self.integer(raw.get("n_test", 2000), f"{key}.n_test", 0),
            # seed003's default seed 3 reproduces the notebook's np.random.seed(3) draw
            "seed": self.integer(raw.get("seed", 3 if truth == "seed003" else 0), f"{key}.seed", 0),
            "resample": self.boolean(raw.get("resample", False), f"{key}.resample"),
        }
        if values["n"] is None:
            raise self.error(f"{key}.n", "is required for synthetic data (training points to draw).",
                             "integers >= 2")
        if truth == "given":
            self.mapping(raw, key, allowed, required=("weights", "means", "covariances"))
            values.update(self.given_truth(raw, key))
        elif truth == "seed003":
            values["n_components"] = self.integer(raw.get("n_components", 3), f"{key}.n_components", 1)
            values["n_features"] = self.integer(raw.get("n_features", 2), f"{key}.n_features", 1)
            if values["n"] % values["n_components"]:
                raise self.error(f"{key}.n", f"seed003 draws the same number of points per component, so n "
                                 f"must be a multiple of n_components={values['n_components']}; got "
                                 f"{values['n']}.", f"multiples of {values['n_components']}")
        elif truth == "random":
            k = raw.get("n_components")
            values["n_components"] = None if k is None else self.integer(k, f"{key}.n_components", 1)
            values["n_features"] = self.integer(raw.get("n_features", 2), f"{key}.n_features", 1)
            values["separation"] = self.number(raw.get("separation", 2.0), f"{key}.separation",
                                               "nonnegative")
            values["imbalance"] = self.number(raw.get("imbalance", 1.0), f"{key}.imbalance", minimum=1.0)
            values["covariance_type"] = self.choice(raw.get("covariance_type", "full"),
                                                    f"{key}.covariance_type", COVARIANCE_TYPES)
        return DataConfig(**values)

    def given_truth(self, raw: dict, key: str) -> dict[str, Any]:
        from mixtures.params import MixtureParams

        try:
            params = MixtureParams(raw["weights"], raw["means"], raw["covariances"], "full")
        except (ValueError, TypeError, RuntimeError) as error:
            raise self.error(f"{key}.weights", f"weights/means/covariances do not form a valid mixture: "
                             f"{error}", "weights (K,) on the simplex, means (K, D), covariances (K, D, D) "
                             "symmetric positive definite") from None
        return {"weights": params.weights.tolist(), "means": params.locs.tolist(),
                "covariances": params.covariances.tolist()}

    def sweep(self, raw: Any, methods: tuple[MethodConfig, ...]) -> dict[str, tuple]:
        if raw is None:
            return {}
        self.mapping(raw, "sweep", SWEEP_KEYS)
        routines = available_routines()
        names = [m.name for m in methods]
        sweep: dict[str, tuple] = {}
        for name, values in raw.items():
            key = f"sweep.{name}"
            values = self.nonempty_list(values, key, f"a list of {name} values")
            checked = []
            for i, value in enumerate(values):
                where = f"{key}[{i}]"
                if name == "n":
                    checked.append(self.integer(value, where, 2))
                elif name in ("n_components", "n_features"):
                    checked.append(self.integer(value, where, 1))
                elif name == "separation":
                    checked.append(self.number(value, where, "nonnegative"))
                elif name == "imbalance":
                    checked.append(self.number(value, where, minimum=1.0))
                elif name == "init":
                    checked.append(self.init(value, where))
                elif name == "covariance_type":
                    checked.append(self.choice(value, where, COVARIANCE_TYPES))
                elif name == "method":
                    choices = tuple(dict.fromkeys(names + list(routines)))
                    checked.append(self.choice(value, where, choices))
            if len(set(checked)) != len(checked):
                raise self.error(key, f"lists a value twice: {checked}.", "distinct values")
            sweep[name] = tuple(checked)
        return sweep

    def add_sweep_methods(self, methods: tuple[MethodConfig, ...], sweep: dict) -> tuple[MethodConfig, ...]:
        names = {m.name for m in methods}
        extra = [MethodConfig(name=value, method=value, options={})
                 for value in sweep.get("method", ()) if value not in names]
        from mixtures.inference import ROUTINES

        for value in sweep.get("method", ()):
            if value not in names and ROUTINES[value].prior == "required":
                raise self.error("sweep.method", f"routine {value!r} needs a prior, which a bare routine "
                                 "name in the sweep cannot give.",
                                 "a methods entry with a prior, named in sweep.method")
        return methods + tuple(extra)

    def metrics(self, raw: Any) -> MetricsConfig:
        if raw is None:
            return MetricsConfig()
        self.mapping(raw, "metrics", METRICS_KEYS)
        return MetricsConfig(
            kl_samples=self.integer(raw.get("kl_samples", 10000), "metrics.kl_samples", 10),
            singular_rtol=self.number(raw.get("singular_rtol", 1e-3), "metrics.singular_rtol", "positive"),
        )

    def output(self, raw: Any) -> OutputConfig:
        if raw is None:
            return OutputConfig()
        self.mapping(raw, "output", OUTPUT_KEYS)
        figures = raw.get("figures", "all")
        if figures == "all":
            figures = list(FIGURES)
        elif figures in ("none", None):
            figures = []
        elif isinstance(figures, list):
            figures = [self.choice(value, f"output.figures[{i}]", FIGURES) for i, value in enumerate(figures)]
        else:
            raise self.error("output.figures", f"must be 'all', 'none' or a list; got {figures!r}.",
                             "all, none, or a list of " + ", ".join(FIGURES))
        formats = raw.get("formats", ["png"])
        if isinstance(formats, str):
            formats = [part.strip() for part in formats.split(",")]
        if not isinstance(formats, list) or not formats:
            raise self.error("output.formats", f"must be a list of formats; got {formats!r}.",
                             "[png] or [png, pdf]")
        formats = [self.choice(value, f"output.formats[{i}]", FORMATS) for i, value in enumerate(formats)]
        if "png" not in formats:
            raise self.error("output.formats", f"must include png (report.md embeds PNG); got {formats}.",
                             "[png] or [png, pdf]")
        return OutputConfig(figures=tuple(dict.fromkeys(figures)), formats=tuple(dict.fromkeys(formats)),
                            max_cell_figures=self.integer(raw.get("max_cell_figures", 4),
                                                          "output.max_cell_figures", 0),
                            dpi=self.integer(raw.get("dpi", 150), "output.dpi", 20))

    # -- relations between blocks --------------------------------------------------------
    def cross_check(self, config: Config) -> None:
        names = [d.name for d in config.data]
        for i, method in enumerate(config.methods):
            for j, dataset in enumerate(method.datasets or ()):
                if dataset not in names:
                    raise self.error(f"methods[{i}].datasets[{j}]", f"no dataset is named {dataset!r}"
                                     f"{_did_you_mean(dataset, names)}.", ", ".join(names))
            if method.n_components is not None and "n_components" in config.sweep:
                raise self.error(f"methods[{i}].n_components", "cannot fix a method's K while "
                                 "sweep.n_components varies it.", "one of the two")
        selected = config.sweep.get("method", [m.name for m in config.methods])
        for dataset in config.data:
            if not any(m.applies_to(dataset.name) for m in config.methods if m.name in selected):
                raise self.error("methods", f"no method runs on dataset {dataset.name!r} (every method "
                                 "lists other datasets).", "datasets: [..., " + dataset.name + "] on some "
                                 "method, or remove the dataset")
        for key in DATA_SWEEP_KEYS:
            if key in config.sweep and not any(d.accepts(key) for d in config.data):
                users = "synthetic data" if key == "n" else "synthetic data with truth: random"
                raise self.error(f"sweep.{key}", f"no dataset uses {key!r}: it only applies to {users}.",
                                 "sweep keys of the datasets given, or model keys "
                                 "n_components, covariance_type, init, method")
        for i, dataset in enumerate(config.data):
            if not dataset.synthetic:
                continue
            ks = config.sweep.get("n_components", (config.model.n_components,))
            ks = tuple(ks) + tuple(m.n_components for m in config.methods
                                   if m.n_components is not None and m.applies_to(dataset.name))
            where = f"data[{i}]" if len(config.data) > 1 else "data"
            ns = config.sweep.get("n", (dataset.n,)) if dataset.accepts("n") else (dataset.n,)
            if min(ns) < max(ks):
                raise self.error(f"{where}.n" if "n" not in config.sweep else "sweep.n",
                                 f"{min(ns)} training points are fewer than the model's "
                                 f"{max(ks)} components.", f"n >= {max(ks)}")
            if dataset.truth == "seed003" and any(n % dataset.n_components for n in ns):
                raise self.error("sweep.n" if "n" in config.sweep else f"{where}.n",
                                 f"seed003 draws n / n_components points per component; {list(ns)} are "
                                 f"not all multiples of {dataset.n_components}.",
                                 f"multiples of {dataset.n_components}")
            if dataset.truth == "given" and "n_features" in config.sweep:
                raise self.error("sweep.n_features", "cannot change the dimension of given true parameters.",
                                 "truth: random to sweep n_features")


def _resolve_path(path: str, base_dir: str | Path | None) -> Path | None:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for folder in ([Path(base_dir)] if base_dir is not None else []) + [Path.cwd()]:
        if (folder / candidate).exists():
            return (folder / candidate).resolve()
    return None
