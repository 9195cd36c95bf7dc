"""The table of inference routines behind :func:`mixtures.fit`: one record per routine.

A routine is a function ``run(model, X, init, *, seed, reg_covar, **options) -> FitResult``
with every option a keyword parameter with a default; :func:`register` turns it into a
:class:`Routine` record. The record is the one place that says what a routine needs and
offers, and every layer reads it instead of keeping its own table:

* :func:`mixtures.fit` checks the family's capabilities (``requires``), the prior
  (``prior``, ``prior_kinds``), streaming and distributed support, and the options
  (:meth:`Routine.check_options`, names and types from the signature);
* the experiment config validates ``methods[i].options`` against the same schema;
* the scikit-learn estimator maps ``max_iter``/``tol`` through ``budget_option`` and
  ``tol_option`` and knows which routines label their own points (``own_labels``);
* the report explains each routine's KL gap (``gap``) and counts its data passes
  (``passes``); ``FitResult.predict_proba`` answers through the program for routines
  with ``queries="program"``;
* ``fit(..., missing="marginalize")`` runs only routines whose record says ``missing`` (they fit
  the observed-data likelihood of data with NaN entries, :mod:`mixtures.core.missing`) on a family
  with the capability ``"missing"``, and names them otherwise;
* ``fit`` scales the start's ``reg_covar`` to the data and flags components left on the
  floor according to ``covariance_floor``, and refuses or repairs a dead start unless the
  routine reports dead components itself (``flags_dead_start``).

Adding a routine = one module in ``mixtures/inference/`` whose entry point is decorated
with ``@register("name", ...)``, plus its import line in ``mixtures/inference/__init__.py``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mixtures.core.validation import did_you_mean

#: capabilities a family may offer (``mixtures.core.family``); "program" is every family's
CAPABILITIES = ("program", "statistics", "variational", "partition", "missing")
PRIOR_POLICIES = ("required", "optional", "rejected")
PRIOR_KINDS = ("conjugate", "nonconjugate")
#: how the report counts data passes: one per iteration, the history's ``passes`` column,
#: minibatch steps (``iteration × subsample_size / N``), or none (samplers)
PASS_RULES = ("iteration", "column", "steps", "none")
#: parameters every routine receives from :func:`mixtures.fit`, never routine options
FIT_PARAMETERS = ("model", "X", "init", "seed", "reg_covar", "init_responsibilities", "distributed", "labels",
                  "freeze", "sample_weight")


@dataclass(frozen=True)
class Option:
    """One routine option: its name, default and what values it takes.

    ``kind`` is ``"int"``, ``"float"``, ``"bool"``, ``"str"`` or ``"any"`` (callables,
    tuples...: passed through unchecked); ``choices`` restrict a ``"str"``; ``minimum``
    bounds a number; ``nullable`` allows ``None``.
    """

    name: str
    default: Any
    kind: str = "any"
    nullable: bool = False
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """What the option takes, as text (for error messages and the CLI)."""
        if self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "any":
            text = "any value"
        else:
            text = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[self.kind]
            if self.minimum is not None and self.maximum is not None:
                text += f" in {'(' if self.exclusive_minimum else '['}{self.minimum:g}, {self.maximum:g}]"
            elif self.minimum is not None:
                text += f" {'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        return text + (" (or null)" if self.nullable else "")

    def check(self, value: Any, routine: str) -> Any:
        """``value`` converted to the option's kind, or a ``ValueError`` naming routine, option and rule."""
        if value is None and (self.nullable or self.default is None):
            return None
        ok = True
        if self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "int":
            if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
                value = int(value)
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            value = int(value) if ok else value
        elif self.kind == "float":
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        elif self.kind == "str":
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
        if ok and self.minimum is not None and self.kind in ("int", "float"):
            ok = value > self.minimum if self.exclusive_minimum else value >= self.minimum
        if ok and self.maximum is not None and self.kind in ("int", "float"):
            ok = value <= self.maximum
        if not ok:
            hint = did_you_mean(value, self.choices) if self.choices else ""
            raise ValueError(f"method {routine!r}: {self.name} must be {self.describe()}; got {value!r}{hint}.")
        return value


@dataclass(frozen=True)
class Routine:
    """What one inference routine needs and offers (module docstring)."""

    name: str
    run: Callable[..., Any]
    summary: str = ""
    requires: frozenset[str] = frozenset({"program"})
    prior: str = "optional"
    prior_kinds: tuple[str, ...] = PRIOR_KINDS
    #: options that make a prior necessary: ``{option: values}`` (e.g. SVI's distributional guides)
    prior_required_by: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    budget_option: str | None = "max_iter"
    tol_option: str | None = "tol"
    gap: str = ""
    passes: str = "iteration"
    streaming: bool = False
    distributed: bool = False
    takes_responsibilities: bool = False
    starts_from_centres: bool = False
    own_labels: bool = False
    training_likelihood: bool = True
    queries: str = "closed_form"
    #: the routine's covariances carry ``reg_covar`` (a floor in every M step or update); without
    #: one (MAP, SVI, NUTS) ``reg_covar`` only keeps the start positive definite, in the data's
    #: standardized units (:func:`mixtures.fit`)
    covariance_floor: bool = True
    #: the routine finds components that hold no responsibility itself and states them in its result
    #: (``extras["empty_components"]`` with a warning; EM, hard EM): ``fit`` passes it a given start as is
    #: instead of refusing a dead one (:mod:`mixtures.inference.starts`)
    flags_dead_start: bool = False
    #: the routine honours partial labels (``fit(..., labels=...)``, :mod:`mixtures.core.labels`): it takes a
    #: ``labels`` keyword, a long tensor ``(N,)`` with -1 for unknown
    labels: bool = False
    #: the routine holds parameter groups fixed (``fit(..., freeze=...)``, :mod:`mixtures.core.freeze`): it takes
    #: a ``freeze`` keyword, a tuple of group names
    freeze: bool = False
    #: the routine takes ``sample_weight`` ``(N,)`` (:mod:`mixtures.core.weights`); set by :func:`register`
    #: from the signature (a ``sample_weight`` keyword), so the flag cannot disagree with the code
    sample_weight: bool = False
    #: the routine fits data with missing values (``fit(..., missing="marginalize")``, :mod:`mixtures.core.missing`)
    #: to the observed-data likelihood, on a family with the capability ``"missing"``
    missing: bool = False
    #: option values for a trial fit: the routine's own checks of its options (those the record cannot
    #: type) run at little cost, as the experiment runner does before it writes anything; default: one
    #: iteration of ``budget_option`` (:attr:`trial`)
    trial_options: Mapping[str, Any] | None = None

    def __post_init__(self):
        unknown = set(self.requires) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"routine {self.name!r} requires unknown capabilities {sorted(unknown)}; "
                             f"known: {list(CAPABILITIES)}.")
        if self.prior not in PRIOR_POLICIES:
            raise ValueError(f"routine {self.name!r}: prior must be one of {PRIOR_POLICIES}.")
        if self.passes not in PASS_RULES:
            raise ValueError(f"routine {self.name!r}: passes must be one of {PASS_RULES}.")

    # -- options ------------------------------------------------------------------------
    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(f"method {self.name!r} has no option {name!r}")

    def default(self, name: str) -> Any:
        """The default value of option ``name``."""
        return self.option(name).default

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked against the schema: an unknown name is a ``TypeError`` with a
        did-you-mean and the accepted names, a bad value a ``ValueError`` naming the rule."""
        checked = {}
        for name, value in options.items():
            try:
                option = self.option(name)
            except KeyError:
                raise TypeError(f"method {self.name!r} got an unexpected option {name!r}"
                                f"{did_you_mean(name, self.option_names)}; its options are "
                                f"{', '.join(self.option_names)} (documented in "
                                f"help({self.run.__module__}.{self.run.__name__})).") from None
            checked[name] = option.check(value, self.name)
        return checked

    @property
    def trial(self) -> dict[str, Any]:
        """Options overriding a fit's for a trial run (:attr:`trial_options`; one iteration of the budget)."""
        if self.trial_options is not None:
            return dict(self.trial_options)
        return {self.budget_option: 1} if self.budget_option else {}

    # -- priors -------------------------------------------------------------------------
    def needs_prior(self, options: Mapping[str, Any]) -> bool:
        """Whether a fit with these options needs the model to have a prior."""
        if self.prior == "required":
            return True
        return any(options.get(name, self.default(name) if name in self.option_names else None) in values
                   for name, values in self.prior_required_by.items())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)


ROUTINES: dict[str, Routine] = {}

#: constraints of options that share a name across routines (the signature gives type and default)
COMMON_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "max_iter": {"minimum": 0}, "num_steps": {"minimum": 0}, "tol": {"minimum": 0}, "rtol": {"minimum": 0},
    "chunk_size": {"minimum": 1}, "eval_every": {"minimum": 1}, "num_particles": {"minimum": 1},
    "subsample_size": {"minimum": 1}, "posterior_samples": {"minimum": 1},
    "lr": {"minimum": 0, "exclusive_minimum": True}, "lr_decay": {"minimum": 0, "exclusive_minimum": True},
    "on_collapse": {"choices": ("error", "reseed")},
}


def register(name: str, **record: Any) -> Callable[[Callable[..., Any]], Routine]:
    """Decorator: register ``run`` under ``name`` with the fields of :class:`Routine`.

    ``constraints`` (``{option: {"minimum": 0, "choices": (...)...}}``) refine the option
    schema read from the signature (:func:`options_from_signature`); the decorated name is
    bound to the record, which is callable like the function.
    """
    constraints = record.pop("constraints", {})

    def decorator(run: Callable[..., Any]) -> Routine:
        if name in ROUTINES:
            raise ValueError(f"an inference routine named {name!r} is already registered")
        record.setdefault("sample_weight", "sample_weight" in inspect.signature(run).parameters)
        routine = Routine(name=name, run=run, options=options_from_signature(run, constraints), **record)
        ROUTINES[name] = routine
        return routine

    return decorator


def get_routine(name: str) -> Routine:
    try:
        return ROUTINES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}{did_you_mean(name, ROUTINES)}; "
                         f"choose one of {sorted(ROUTINES)}.") from None


def options_from_signature(run: Callable[..., Any], constraints: Mapping[str, Mapping[str, Any]] = ()
                           ) -> tuple[Option, ...]:
    """The option schema of a routine: its keyword parameters (but :data:`FIT_PARAMETERS`),
    kind and nullability from the annotations, the default from the signature, and the
    ``constraints`` given (or :data:`COMMON_CONSTRAINTS` for well-known names)."""
    try:
        hints = typing.get_type_hints(run)
    except Exception:  # unresolvable annotations: fall back to the defaults' types
        hints = {}
    options = []
    for parameter in inspect.signature(run).parameters.values():
        if parameter.name in FIT_PARAMETERS or parameter.kind in (inspect.Parameter.VAR_POSITIONAL,
                                                                   inspect.Parameter.VAR_KEYWORD):
            continue
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(f"routine option {parameter.name!r} of {run.__qualname__} needs a default.")
        kind, nullable = _kind_of(hints.get(parameter.name), parameter.default)
        extra = dict(COMMON_CONSTRAINTS.get(parameter.name, {}))
        extra.update(constraints.get(parameter.name, {}))
        if "choices" in extra:
            kind = "str"
        options.append(Option(parameter.name, parameter.default, kind=kind, nullable=nullable, **extra))
    return tuple(options)


def _kind_of(hint: Any, default: Any) -> tuple[str, bool]:
    """``(kind, nullable)`` of an annotation such as ``int``, ``float | None``, ``str | Callable``."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else ()
    members = [a for a in args if a is not type(None)] if union else ([hint] if hint is not None else [])
    nullable = type(None) in args or default is None
    simple = {bool: "bool", int: "int", float: "float", str: "str"}
    kinds = {simple.get(member) for member in members}
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop(), nullable
    if kinds == {"int", "float"}:
        return "float", nullable
    if not members:  # no annotation: the default's type
        return simple.get(type(default), "any"), nullable
    return "any", nullable
