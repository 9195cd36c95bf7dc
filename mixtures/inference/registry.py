"""The table of inference routines behind :func:`mixtures.fit`.

A routine is a function ``routine(model, X, init, **options) -> FitResult`` where
``X`` is validated ``(N, D)`` data and ``init`` the starting ``MixtureParams``.
Adding a routine = writing one module in ``mixtures/inference/`` that decorates
its entry point with ``@register("name")`` and importing it in
``mixtures/inference/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable

Routine = Callable[..., "object"]
ROUTINES: dict[str, Routine] = {}


def register(name: str) -> Callable[[Routine], Routine]:
    def decorator(routine: Routine) -> Routine:
        if name in ROUTINES:
            raise ValueError(f"an inference routine named {name!r} is already registered")
        ROUTINES[name] = routine
        return routine
    return decorator


def get_routine(name: str) -> Routine:
    try:
        return ROUTINES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(ROUTINES)}.") from None
