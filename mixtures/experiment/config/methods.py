"""The ``methods`` entries of a config: routine, options (checked by the routine's record), prior, K, datasets."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from mixtures.core.family import get_family
from mixtures.experiment.config.block import Block
from mixtures.experiment.config.values import (
    Boolean,
    Name,
    check_nonempty_list,
    check_number,
    choice,
    integer,
    kind_of,
    nested_numbers,
    number,
    problem,
)
from mixtures.families.gaussian.priors import KINDS, SCALE_PRIORS, WEIGHT_PRIORS, GaussianPrior
from mixtures.inference.registry import ROUTINES, Option, Routine, did_you_mean

#: options ``mixtures.fit`` itself takes besides the routine's (every routine accepts them)
FIT_OPTIONS = {"n_init": Option("n_init", 1, kind="int", minimum=1),
               "reg_covar": Option("reg_covar", 1e-6, kind="float", minimum=0)}
#: names the experiment sets itself, never routine options
#: the clusters' families a method may fit (``family:``)
FAMILIES = ("gaussian", "student_t")
#: how a method handles NaN entries (data with ``missing``): ``missing: marginalize`` fits the observed-data
#: likelihood (``fit(..., missing="marginalize")``); ``impute: mean`` fills each NaN with its feature's observed
#: mean before fitting (the baseline)
MISSING_HANDLING = ("marginalize",)
IMPUTATIONS = ("mean",)
RESERVED_OPTIONS = ("init", "seed", "method", "model", "X", "dtype", "device")


def routine_names(context: Any = None) -> tuple[str, ...]:
    return tuple(sorted(ROUTINES))


def _concentration(value: Any) -> Any:
    if isinstance(value, list):
        return [check_number(v, 0, exclusive=True, at=f"[{j}]") for j, v in enumerate(value)]
    return None if value is None else check_number(value, 0, exclusive=True)


def _vector(value: Any) -> Any:
    if value is None:
        return None
    return [check_number(v, at=f"[{j}]") for j, v in enumerate(value if isinstance(value, list) else [value])]


class PriorSpec(Block):
    """The fields of :class:`mixtures.priors.GaussianPrior` a method's ``prior`` may set (``null``: its default)."""

    weight_prior: choice(WEIGHT_PRIORS, nullable=True) = None
    weight_concentration: Annotated[Any, BeforeValidator(_concentration)] = None
    mean_prior: Annotated[Any, BeforeValidator(_vector)] = None
    mean_precision: number(0, exclusive=True, nullable=True) = None
    degrees_of_freedom: number(0, exclusive=True, nullable=True) = None
    covariance_prior: Annotated[Any, BeforeValidator(lambda v: None if v is None else nested_numbers(v))] = None
    kind: choice(KINDS, nullable=True) = None
    scale_prior: choice(SCALE_PRIORS, nullable=True) = None
    lkj_concentration: number(0, exclusive=True, nullable=True) = None

    def as_dict(self) -> dict[str, Any]:
        """The fields the config set, in declaration order."""
        return {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}

    @model_validator(mode="after")
    def _valid_prior(self) -> PriorSpec:
        try:
            GaussianPrior(**self.as_dict())
        except (TypeError, ValueError) as error:
            raise problem(f"is not a valid prior: {error}", ", ".join(type(self).model_fields)) from None
        return self


PRIOR_KEYS = tuple(PriorSpec.model_fields)


def option_values(option: Option) -> str:
    """What an option takes, as the "Allowed:" text (``finite numbers > 0``, ``integers >= 1``)."""
    if option.choices:
        text = ", ".join(option.choices)
    else:
        text = {"int": "integers", "float": "finite numbers", "bool": "true, false", "str": "text"}.get(
            option.kind, "any value")
        if option.kind in ("int", "float") and option.minimum is not None:
            if option.maximum is not None:
                text += f" in {'(' if option.exclusive_minimum else '['}{option.minimum:g}, {option.maximum:g}]"
            else:
                text += f" {'>' if option.exclusive_minimum else '>='} {option.minimum:g}"
    return text + (", or null" if option.nullable else "")


def check_routine_options(routine: Routine, options: dict) -> dict:
    """``options`` checked one by one by the routine's record (and ``mixtures.fit``'s own ``n_init``,
    ``reg_covar``); errors name the option below ``options``."""
    accepted = routine.option_names + tuple(name for name in FIT_OPTIONS if name not in routine.option_names)
    checked = {}
    for name, value in options.items():
        if not isinstance(name, str):
            raise problem("option names must be text.", "identifiers", at=str(name))
        if name in RESERVED_OPTIONS:
            raise problem(f"{name!r} is set by the experiment, not a routine option.",
                          "inits/seeds/model keys for init, seed and the model", at=name)
        option = routine.option(name) if name in routine.option_names else FIT_OPTIONS.get(name)
        if option is None:
            raise problem(f"routine {routine.name!r} has no option {name!r}{did_you_mean(name, accepted)}.",
                          ", ".join(accepted), at=name)
        if option.kind == "float" and isinstance(value, str):
            try:
                value = float(value)  # PyYAML 1.1 reads 1e-3 as text
            except ValueError:
                pass
        try:
            checked.update(routine.check_options({name: value}) if name in routine.option_names
                           else {name: option.check(value, routine.name)})
        except ValueError as error:
            raise problem(str(error).removeprefix(f"method {routine.name!r}: "), option_values(option),
                          at=name) from None
    return checked


class MethodConfig(Block):
    """``name``: display label; ``method``: routine name; ``options``: routine options (checked by its record).

    ``prior``: ``GaussianPrior`` fields (``{}`` = defaults) or ``None`` (no prior);
    ``n_components``: this method's K (``None``: the model's); ``datasets``: names of
    the datasets it runs on (``None``: all).
    """

    yaml_keys: ClassVar[tuple[str, ...]] = ("name", "method", "options", "prior", "n_components", "datasets",
                                            "family", "family_options", "noise",
                                            "missing", "impute")
    required_keys: ClassVar[tuple[str, ...]] = ("method",)
    method: choice(routine_names, noun="routine")
    name: Name
    options: dict[str, Any] = Field(default_factory=dict)
    prior: Annotated[PriorSpec | None, AfterValidator(lambda p: None if p is None else p.as_dict())] = None
    n_components: integer(1, nullable=True) = None
    datasets: Annotated[tuple[Name, ...] | None, BeforeValidator(
        lambda v: None if v is None else check_nonempty_list(v, "names of the config's datasets"))] = None
    #: the clusters' family (``student_t``: multivariate t components, ν free) and whether a uniform noise
    #: component over the training data's bounding box is added
    family: choice(FAMILIES) = "gaussian"
    #: the family's own settings besides K and the covariance structure (student_t: ``dof`` "free", "shared"
    #: or a number, ``dof_bounds``), checked by building the family once
    family_options: dict[str, Any] = Field(default_factory=dict)
    noise: Boolean = False
    #: NaN entries (see MISSING_HANDLING): at most one of the two; neither on data without NaN
    missing: choice(MISSING_HANDLING, nullable=True) = None
    impute: choice(IMPUTATIONS, nullable=True) = None

    @classmethod
    def shorthand(cls, raw: Any) -> Any:
        return {"method": raw} if isinstance(raw, str) else raw

    @classmethod
    def prepare(cls, raw: dict, context: Any) -> dict:
        raw.setdefault("name", raw["method"])
        if "prior" in raw and raw["prior"] is None:
            raw["prior"] = {}  # prior: null = every default
        if raw.get("options") is None:
            raw["options"] = {}
        return raw

    @field_validator("family_options", mode="before")
    @classmethod
    def _family_options(cls, options: Any, info: ValidationInfo) -> dict:
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise problem(f"must be a mapping of the family's settings; got a {kind_of(options)}.",
                          "e.g. {dof: shared}")
        family = get_family(info.data.get("family") or "gaussian")
        allowed = [field for field in family.spec_fields if field != "covariance_type"]
        for key in options:
            if key not in allowed:
                raise problem(f"family {family.name!r} has no setting {key!r}.",
                              ", ".join(allowed) if allowed else "none: leave family_options out", at=str(key))
        try:
            family(1, **options)
        except (TypeError, ValueError) as error:
            raise problem(str(error), None) from None
        return dict(options)

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, options: Any, info: ValidationInfo) -> dict:
        if not isinstance(options, dict):
            raise problem(f"must be a mapping of routine options; got a {kind_of(options)}.",
                          "e.g. {max_iter: 200, tol: 1.0e-6}")
        routine = ROUTINES.get(info.data.get("method"))
        return options if routine is None else check_routine_options(routine, options)

    @model_validator(mode="after")
    def _prior_fits_routine(self) -> MethodConfig:
        """Routines that need a prior get one, routines that cannot use one get none (the record's
        ``prior``, ``prior_kinds`` and ``needs_prior``)."""
        record = ROUTINES[self.method]
        if self.prior is None:
            if record.prior == "required":
                raise problem(f"routine {self.method!r} is Bayesian and needs a prior.",
                              "prior: {} for the default conjugate prior, or a mapping of " + ", ".join(PRIOR_KEYS),
                              at="prior")
            if record.needs_prior(self.options):
                raise problem(f"guide {self.options.get('guide')!r} approximates a posterior, which needs a "
                              "prior.", "prior: {} (or guide: delta for maximum likelihood)", at="prior")
            return self
        if record.prior == "rejected":
            rejecting = [name for name, r in sorted(ROUTINES.items()) if r.prior == "rejected"]
            raise problem(f"routine {self.method!r} fits no prior (maximum likelihood or clustering only).",
                          "no prior for " + ", ".join(rejecting) + "; em (MAP-EM), vb, svi, map or nuts with a prior",
                          at="prior")
        kind = self.prior.get("kind") or "conjugate"
        if kind not in record.prior_kinds:
            raise problem(f"routine {self.method!r} needs a {' or '.join(record.prior_kinds)} prior; got {kind!r}.",
                          "kind: conjugate (or method svi/nuts for nonconjugate)", at="prior.kind")
        return self

    @model_validator(mode="after")
    def _missing_fits_routine(self) -> MethodConfig:
        """``missing`` and ``impute`` exclude each other; ``missing: marginalize`` needs a routine that fits the
        observed-data likelihood (its record's ``missing``)."""
        if self.missing is not None and self.impute is not None:
            raise problem("sets both missing and impute: the NaN entries are either marginalized or imputed.",
                          "missing: marginalize, or impute: mean (the baseline)", at="impute")
        if self.missing is not None and not ROUTINES[self.method].missing:
            able = [name for name, r in sorted(ROUTINES.items()) if r.missing]
            raise problem(f"routine {self.method!r} cannot fit data with missing values.",
                          "missing: marginalize with " + ", ".join(able) + "; or impute: mean with any routine",
                          at="missing")
        if self.missing is not None and (self.family != "gaussian" or self.noise):
            raise problem("missing: marginalize needs the Gaussian family without a noise component.",
                          "family: gaussian and noise: false, or impute: mean", at="missing")
        return self

    @property
    def handles_missing(self) -> bool:
        """Whether the method says what to do with NaN entries (``missing`` or ``impute``)."""
        return self.missing is not None or self.impute is not None

    def applies_to(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets

    def gaussian_prior(self) -> GaussianPrior | None:
        """The :class:`mixtures.priors.GaussianPrior` of ``prior`` (``None`` without one)."""
        return None if self.prior is None else GaussianPrior(**self.prior)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "method": self.method, "options": dict(self.options)}
        if self.prior is not None:
            entry["prior"] = dict(self.prior)
        if self.n_components is not None:
            entry["n_components"] = self.n_components
        if self.datasets is not None:
            entry["datasets"] = list(self.datasets)
        if self.family != "gaussian" or self.noise:  # only when set: older configs resolve as before
            entry.update(family=self.family, noise=self.noise)
        if self.family_options:
            entry["family_options"] = dict(self.family_options)
        for key in ("missing", "impute"):  # only when set: older configs resolve as before
            if getattr(self, key) is not None:
                entry[key] = getattr(self, key)
        return entry
