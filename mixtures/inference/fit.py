"""``fit``: one entry point for every routine and family.

``fit`` validates the data and the routine's options up front, checks that the family
has what the routine requires (its record in :mod:`mixtures.inference.registry`),
initializes (:mod:`mixtures.init`), runs restarts and keeps the best final objective.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.family import MixtureFamily
from mixtures.core.freeze import check_freeze
from mixtures.core.labels import check_labels
from mixtures.core.missing import check_missing, marginalizing, mean_imputed
from mixtures.core.params import Params
from mixtures.core.pointwise import aligned_start, positive_count, streamed_labels, streamed_weights, weight_total
from mixtures.core.result import FitResult
from mixtures.core.stream import StreamingData, as_stream, is_streaming_source
from mixtures.core.validation import (
    as_data,
    check_chunk_size,
    check_nonnegative_float,
    check_positive_int,
    check_seed,
    fresh_seed,
    spawn_seeds,
)
from mixtures.core.weights import check_sample_weight
from mixtures.errors import DataError
from mixtures.inference.registry import ROUTINES, Routine, get_routine
from mixtures.inference.starts import check_distributed_start, checked_start, flag_degenerate, flag_indistinguishable
from mixtures.init import InitSpec, check_init, initial_responsibilities, initialize
from mixtures.kernels import parallel


def fit(model: MixtureFamily, X: Any, method: str = "em", *, init: InitSpec = "kmeans",
        seed: int | None = 0, n_init: int = 1, reg_covar: float = 1e-6,
        dtype: Any = None, device: Any = None, chunk_size: int | None = None,
        init_sample_size: int = 100_000, distributed: bool = False, threads: int | None = None,
        labels: Any = None, freeze: Any = None, sample_weight: Any = None, missing: str | None = None,
        **options: Any) -> FitResult:
    """Fit ``model`` to data ``X`` ``(N, D)`` with the routine ``method``.

    Args:
        model: a mixture family, e.g. :class:`~mixtures.families.gaussian.GaussianMixture`
            or :class:`~mixtures.families.poisson.PoissonMixture`; the routine must find the
            capabilities it requires in the family (its record's ``requires``).
        X: data ``(N, D)`` or ``(N,)``: a tensor (float dtype kept), numpy array,
            nested list or DataFrame (converted to float64).
        method: one of ``mixtures.inference.ROUTINES`` (``"em"``, ``"hard_em"``,
            ``"kmeans"``, ``"kmedians"``...); its options are checked against the routine's
            record before anything runs.
        init: initializer (see :mod:`mixtures.init`).
        seed: seeds initialization (and any randomness of the routine); restarts
            use independent child seeds. Same seed, same result, bit for bit on CPU.
            ``None`` draws a seed from the OS once, recorded in ``result.extras["seed"]``
            (so even that fit can be repeated).
        n_init: restarts; the one with the best final ``objective`` is returned
            (deterministic inits run once). The other restarts' objectives are in
            ``result.extras["restart_objectives"]``.
        reg_covar: added to covariance diagonals in every M step.
        dtype, device: cast the data (the parameters follow the data).
        chunk_size: rows per chunk of a streamed source.
        init_sample_size: points of the reservoir sample random initializers use
            on streamed data (default 100 000).
        threads: worker threads of the passes over the data (:mod:`mixtures.kernels.parallel`):
            chunks are spread across them (the calling thread is one), each running its chunk
            single-threaded, and torch's own intra-op threads are pinned to 1 for the duration of
            the fit (no spin-waiting). ``None`` (default): each kind of pass runs on 1 and on
            ``torch.get_num_threads()`` workers (all cores unless the process set fewer; the
            ``mixtures`` command sets 1), then on whichever was faster, re-measured every 8th pass:
            an idle machine gets the second core, a machine loaded by other sessions (where a
            second worker can be slower, see ``experiments/BENCHMARK.md``) keeps one. Results do
            not depend on it, bit for bit.
        distributed: call ``fit`` in every rank of an initialized ``torch.distributed``
            process group, each with its own shard ``X``; routines with
            ``distributed`` in their record (``"em"``, ``"hard_em"``, ``"kmeans"``, ``"map"``,
            ``"svi"``, ``"vb"``) all-reduce their statistics (or, for ``"map"`` and
            ``"svi"``, their gradients) and every rank returns the same parameters,
            history and objective as one process holding all the data (equal to
            rounding); per-point extras (``labels``, ``assignment_probs``) describe
            the rank's own shard. Initialization is computed on rank 0's shard and
            broadcast; a prior's data-scaled defaults are resolved on all ranks' data
            (the family's ``with_global_prior``).
        labels: ``(N,)`` partial labels for semi-supervised fitting: a component index for a point
            whose component is known, ``-1`` for unknown (:mod:`mixtures.core.labels`); routines with
            ``labels`` in their record (``"em"``, ``"hard_em"``, ``"vb"``, ``"map"``, ``"svi"``, ``"nuts"``)
            fix those points' assignments, others refuse. Streamed data (EM, hard EM): an ``(N,)`` array
            aligned with the stream's rows (a read-only ``np.memmap`` is read chunk by chunk); distributed
            (EM, hard EM): this rank's shard's labels.
        freeze: parameter groups (``"weights"``, ``"means"``, ``"covariances"``) held at their values in
            ``init`` (parameters or a dict, not an initializer's name) while the rest is fitted
            (:mod:`mixtures.core.freeze`); routines with ``freeze`` in their record (``"em"``,
            ``"hard_em"``, ``"map"``, ``"svi"``, ``"vb"``, ``"nuts"``) honour it, others refuse.
        sample_weight: ``(N,)`` finite non-negative weights of the points, of positive sum
            (:mod:`mixtures.core.weights`): point ``n``'s log-likelihood term counts ``w_n`` times,
            so integer weights fit the data with rows repeated (from the same start) and zero
            weights the data without those rows. Every trace in the history is the weighted one;
            ``N`` in per-point tolerances and in empty-component flags is ``Σ_n w_n``. The named
            initializers ``"kmeans"``, ``"kmeans++"``, ``"random"`` and ``"random_from_data"`` use
            the weights (weighted D² seeding, weighted Lloyd, weighted M steps, no zero-weight point
            as a centre); ``"hc"`` builds its tree on the positive-weight rows, unweighted. Routines
            with ``sample_weight`` in their record take it; others raise. Streamed data (EM, hard EM): an
            ``(N,)`` array aligned with the stream's rows, read chunk by chunk.
            ``labels``, ``freeze``, ``sample_weight`` and ``missing`` combine in every routine that takes
            each of them (integer weights: the rows repeated with their labels and NaN entries).
        missing: ``None`` (NaN entries are an error) or ``"marginalize"``: NaN entries are values
            missing at random, fitted by the observed-data likelihood (:mod:`mixtures.core.missing`;
            the Gaussian family; routines with ``missing`` in their record: ``"em"``, ``"hard_em"``,
            ``"stepwise_em"``, ``"vb"``, ``"map"``, ``"svi"``, ``"nuts"``; streamed: ``"em"``, ``"hard_em"``;
            distributed: the distributed routines). The start is computed on the
            data with each NaN replaced by its feature's observed mean; the result's queries then accept
            NaN too.
        **options: routine options (``max_iter``, ``tol``...), see each routine.

    Streaming: ``X`` may also be a memory-mapped array (``np.load(path, mmap_mode="r")``),
    a callable returning a fresh iterator of ``(n_i, D)`` chunks, or a
    :class:`~mixtures.core.stream.StreamingData`; routines with ``streaming`` in their record
    (``"em"``, ``"hard_em"``, ``"kmeans"``, ``"stepwise_em"``) then work pass by pass
    with memory bounded by the chunk.

    Every routine receives ``reg_covar`` and its restart's ``seed`` besides ``options``;
    a routine whose record says ``takes_responsibilities`` also receives
    ``init_responsibilities`` ``(N, K)`` when ``init`` is a partition or responsibilities.
    """
    if not isinstance(model, MixtureFamily):
        raise TypeError(f"model must be a mixture family (e.g. mixtures.GaussianMixture); got {type(model).__name__}.")
    missing = check_missing(missing)
    with parallel.using("auto" if threads is None else threads, most=torch.get_num_threads()), \
            marginalizing(missing == "marginalize"):
        result = _fit(model, X, method, init=init, seed=seed, n_init=n_init, reg_covar=reg_covar, dtype=dtype,
                      device=device, chunk_size=chunk_size, init_sample_size=init_sample_size,
                      distributed=distributed, labels=labels, freeze=freeze, sample_weight=sample_weight,
                      missing=missing, **options)
    if missing is not None:
        result.extras["fit_settings"]["missing"] = missing
    return result


def _fit(model: MixtureFamily, X: Any, method: str, *, init: InitSpec, seed: int | None, n_init: int,
         reg_covar: float, dtype: Any, device: Any, chunk_size: int | None, init_sample_size: int,
         distributed: bool, labels: Any = None, freeze: Any = None, sample_weight: Any = None,
         missing: str | None = None, **options: Any) -> FitResult:
    """:func:`fit` inside its thread setting."""
    routine = get_routine(method)
    _check_capabilities(routine, model)
    if missing is not None:
        _check_missing_support(routine, model, X)
    options = routine.check_options(options)
    seed = check_seed(seed)
    if seed is None:
        seed = fresh_seed()
    n_init = check_positive_int(n_init, "n_init")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    chunk_size = check_chunk_size(chunk_size)
    check_init(init)
    X, options = _prepared_data(model, routine, X, dtype, device, chunk_size, options)
    weights = _checked_weights(routine, X, sample_weight)
    if weights is not None:
        options = {**options, "sample_weight": weights}
    run_model = model
    if distributed:
        comm.check_initialized()
        if not routine.distributed:
            supported = sorted(name for name, r in ROUTINES.items() if r.distributed)
            raise ValueError(f"method {method!r} does not run distributed yet; use one of {supported}.")
        options = {**options, "distributed": True}
    if weights is not None:  # a prior's data-scaled defaults: the moments of the (all ranks') weighted data
        run_model = model.with_weighted_prior(mean_imputed(X) if missing is not None else X, weights, distributed)
    elif distributed:  # every rank must see the same prior: its defaults come from all the data, not the shard
        run_model = model.with_global_prior(X)
    if labels is not None:
        options = {**options, "labels": _checked_labels(routine, model, X, labels, distributed)}
    if freeze is not None:
        options = {**options, "freeze": _checked_freeze(routine, model, init, freeze)}
    N = comm.global_count(X.shape[0], X.device) if distributed else X.shape[0]
    if weights is not None:  # points that count, and (for the flags) the number they stand for
        N = positive_count(weights)
        N = comm.global_count(N, X.device) if distributed else N
    if model.n_components > N:
        raise DataError(f"X has {N} point(s){'' if weights is None else ' of positive weight'}, fewer than the "
                        f"model's K={model.n_components} components; use fewer components or more data.")
    if options.get("chunk_size") is not None:  # no buffer for more rows than the data hold
        options = {**options, "chunk_size": min(options["chunk_size"], max(1, X.shape[0]))}
    start_X = mean_imputed(X) if missing is not None else X  # initializers see no NaN
    if routine.takes_responsibilities:
        resp = initial_responsibilities(model, start_X, init)
        if resp is not None:
            options = {**options, "init_responsibilities": resp}
    start_of = _start_maker(routine, model, start_X, init, reg_covar, init_sample_size, distributed, options)
    if options.get("labels") is not None and isinstance(init, str):  # an initializer's components in the labels' order
        start_of = _aligned(start_of, X, options["labels"], distributed)
    seeds = spawn_seeds(seed, n_init) if (isinstance(init, str) and n_init > 1) else [seed]
    best, objectives = _best_of_restarts(routine, run_model, X, seeds, start_of, reg_covar, options)
    n_points = N if weights is None else _global_total(weights, distributed)
    flag_degenerate(best, start_X, n_points=n_points, reg_covar=reg_covar, floor=routine.covariance_floor,
                    flag_empty=routine.prior != "required")
    flag_indistinguishable(best, start_X, n_points=n_points)
    best.model = model  # the caller's model (not a distributed run's globally resolved copy)
    best.decoder = "program" if routine.queries == "program" else "closed_form"
    best.extras["restart_objectives"] = objectives
    best.extras["seed"] = seed
    best.extras["fit_settings"] = _settings(method, init, seed, n_init, reg_covar, dtype, device, chunk_size,
                                            distributed, options)
    return best


def _start_maker(routine: Routine, model: MixtureFamily, X: Any, init: InitSpec, reg_covar: float,
                 init_sample_size: int, distributed: bool, options: dict[str, Any]
                 ) -> Callable[[int], tuple[Params, list[int]]]:
    """``restart seed -> (start, repaired components)``: the initializer's parameters, checked for
    dead components (:mod:`mixtures.inference.starts`: repaired under ``on_collapse="reseed"`` or
    for a named initializer, else refused). Distributed runs compute the start on rank 0's shard
    and broadcast it; every rank then checks it on all ranks' data (refused, never repaired).
    k-means and k-medians use only the start's centres, and their empty-cluster rule moves a
    centre that holds no point: their starts are not checked. EM and hard EM (``flags_dead_start``)
    state a given start's dead components in their result (``extras["empty_components"]``): their
    start is checked only when it is to be repaired (a named initializer, ``on_collapse="reseed"``).

    Routines without a covariance floor (MAP, SVI, NUTS) get the start's ``reg_covar`` in the
    data's standardized units (times the family's mean squared standardizing scale), so their fits
    do not depend on the data's units; the others add ``reg_covar`` as given, as their M steps do.
    """
    # routines that use only the start's centres (k-means, k-medians) never fail on its covariances
    collapse_rule = "pool" if routine.starts_from_centres else options.get("on_collapse", "error")
    start_reg = reg_covar if routine.covariance_floor else reg_covar * _squared_scale(model, X)
    repair = options.get("on_collapse") == "reseed" or isinstance(init, str)
    resp = options.get("init_responsibilities")

    def sample() -> Tensor:  # the points a repaired component takes its spread from
        if not isinstance(X, StreamingData):
            return X
        generator = torch.Generator().manual_seed(0)
        return mean_imputed(X.reservoir_sample(check_positive_int(init_sample_size, "init_sample_size"), generator))

    def start_of(restart_seed: int) -> tuple[Params, list[int]]:
        make = lambda: _initialize(model, X, init, restart_seed, start_reg, init_sample_size, collapse_rule,  # noqa: E731
                                   options.get("sample_weight"))
        # k-means, k-medians: an empty cluster takes the farthest point; EM, hard EM: a given start's
        # dead components are flagged in the result (or re-seeded mid-fit under on_collapse="reseed")
        if routine.starts_from_centres or (routine.flags_dead_start and (distributed or not repair)):
            return (comm.agreed_start(X, make) if distributed else make()), []
        if distributed:
            start = comm.agreed_start(X, make)
            check_distributed_start(start, X, routine.name, resp)
            return start, []
        return checked_start(model, X, make(), repair=repair, reg_covar=start_reg, method=routine.name,
                             sample=sample, responsibilities=resp)

    return start_of


def _aligned(start_of: Callable[[int], tuple[Params, list[int]]], X: Any, labels: Any, distributed: bool
             ) -> Callable[[int], tuple[Params, list[int]]]:
    """``start_of`` whose starts have their components reordered to agree with the labels (of every
    chunk of a stream, of every rank's shard)."""
    def aligned(restart_seed: int) -> tuple[Params, list[int]]:
        start, repaired = start_of(restart_seed)
        return aligned_start(start, X, labels, distributed), repaired

    return aligned


def _squared_scale(model: MixtureFamily, X: Any) -> float:
    """The mean squared scale of the family's standardizer on ``X`` (1 without one, or streamed)."""
    if isinstance(X, StreamingData):
        return 1.0
    standardizer = model.standardizer(X)
    if standardizer is None:
        return 1.0
    return float(standardizer.scale.square().mean())


def _prepared_data(model: MixtureFamily, routine: Routine, X: Any, dtype: Any, device: Any,
                   chunk_size: int | None, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The data validated (in memory) or wrapped (streamed), and the options it adds."""
    if not is_streaming_source(X):
        X = as_data(X, dtype=dtype, device=device)
        model.validate_data(X)
        return X, options if chunk_size is None else {**options, "chunk_size": chunk_size}
    if not routine.streaming:
        streaming = sorted(name for name, r in ROUTINES.items() if r.streaming)
        raise ValueError(f"method {routine.name!r} needs the data in memory; streamed data works with {streaming}.")
    if model.prior is not None:
        raise ValueError("priors resolve their defaults from the data: load the data in memory, or "
                         "fit without a prior when streaming.")
    X = as_stream(X, dtype=dtype, device=device, chunk_size=chunk_size)
    return X, {**options, "chunk_size": chunk_size or X.chunk_size}


def _best_of_restarts(routine: Routine, model: MixtureFamily, X: Any, seeds: list[int], start_of: Any,
                      reg_covar: float, options: dict[str, Any]) -> tuple[FitResult, list[float]]:
    """Run the routine from every restart's start; return the best final objective and all of them.

    A failing restart (a ``ValueError`` or ``FloatingPointError``) is skipped with a warning
    when there are others; when every restart fails, the last error is raised.
    """
    best: FitResult | None = None
    objectives: list[float] = []
    last_error: Exception | None = None
    for restart_seed in seeds:
        try:
            start, repaired = start_of(restart_seed)
            result = _run_routine(routine, model, X, start, reg_covar=reg_covar, seed=restart_seed, **options)
            _note_repairs(result, repaired, routine.name)
        except (FloatingPointError, ValueError) as error:
            if len(seeds) == 1:
                raise
            warnings.warn(f"restart with seed {restart_seed} failed: {error}", UserWarning, stacklevel=4)
            objectives.append(float("nan"))
            last_error = error
            continue
        objectives.append(result.objective)
        if best is None or result.objective > best.objective:
            best = result
    if best is None:
        raise last_error  # every restart failed
    return best, objectives


def _note_repairs(result: FitResult, repaired: list[int], method: str) -> None:
    """List the start's re-seeded components as ``(0, k)`` in ``extras["reseeded"]``, with a warning."""
    if not repaired:
        return
    result.extras["reseeded"] = [(0, k) for k in repaired] + list(result.extras.get("reseeded", []))
    warnings.warn(f"the start of {method!r} had dead component(s) {repaired} (no responsibility at any point): "
                  "re-seeded at the worst-explained points with the data's spread and weight 1/K (listed in "
                  "extras['reseeded'] as (0, component)).", UserWarning, stacklevel=4)


def _settings(method: str, init: Any, seed: int, n_init: int, reg_covar: float, dtype: Any, device: Any,
              chunk_size: int | None, distributed: bool, options: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a ``fit`` call as primitives (saved with the result: how it was made).

    A given initializer is named by its kind (its values are ``result.init``); an option
    that is not a primitive (a callable step size, a tensor) is named by its type.
    """
    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            return list(value)
        return f"<{type(value).__name__}>"

    kept = {name: plain(value) for name, value in options.items() if name != "init_responsibilities"}
    return {"method": method, "init": init if isinstance(init, str) else f"<{type(init).__name__}>",
            "seed": seed, "n_init": n_init, "reg_covar": reg_covar,
            "dtype": None if dtype is None else str(dtype), "device": None if device is None else str(device),
            "chunk_size": chunk_size, "distributed": distributed, "options": kept}


def _run_routine(routine: Routine, *args: Any, **kwargs: Any) -> FitResult:
    """``routine(*args, **kwargs)``, its warnings re-issued as raised by the caller of :func:`fit`.

    Routines warn from various depths; recording and re-issuing here makes every
    ``ConvergenceWarning`` point at the user's ``fit(...)`` line, where filters by
    module and line apply as users expect.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = routine(*args, **kwargs)  # options were checked against the record up front
    for warning in caught:  # _run_routine -> _best_of_restarts -> _fit -> fit -> the caller
        warnings.warn(warning.message, warning.category, stacklevel=5)
    return result


def _initialize(model: MixtureFamily, X: Any, init: InitSpec, seed: int | None, reg_covar: float,
                init_sample_size: int, on_collapse: str = "error", sample_weight: Tensor | None = None):
    """Initialize on the data (weighted with ``sample_weight``), or on a reservoir sample of streamed data."""
    if not isinstance(X, StreamingData):
        return initialize(model, X, init, seed=seed, reg_covar=reg_covar, on_collapse=on_collapse,
                          sample_weight=sample_weight)
    if not isinstance(init, (str, dict, Params)):
        raise ValueError("streamed data can start from an initializer name, the model's parameters or a dict; "
                         "labels or responsibilities of every point are not supported.")
    generator = torch.Generator().manual_seed(int(seed))
    # NaN entries (missing values): the sample's, filled with its observed means (initializers see no NaN)
    sample = mean_imputed(X.reservoir_sample(check_positive_int(init_sample_size, "init_sample_size"), generator))
    return initialize(model, sample, init, reg_covar=reg_covar, generator=generator,
                      on_collapse=on_collapse)


def _checked_labels(routine: Routine, model: MixtureFamily, X: Any, labels: Any, distributed: bool) -> Tensor:
    """``labels`` checked against the data and the model (:func:`mixtures.core.labels.check_labels`), or a
    clear error when the routine or the setting cannot honour them."""
    if not routine.labels:
        working = sorted(name for name, r in ROUTINES.items() if r.labels)
        raise ValueError(f"method {routine.name!r} cannot fix labelled points' assignments; methods that take "
                         f"labels=...: {working}.")
    if distributed and routine.name not in _DISTRIBUTED_LABELS:
        raise ValueError(f"labels=... with distributed=True works with {list(_DISTRIBUTED_LABELS)} (each rank passes "
                         f"its shard's labels); method {routine.name!r} needs the data in one process.")
    if isinstance(X, StreamingData):  # an (N,) array aligned with the stream, read chunk by chunk
        return streamed_labels(labels, X.n_points, model.n_components)
    return check_labels(labels, X.shape[0], model.n_components, device=X.device)


#: routines whose distributed runs take each rank's labels (statistics with one-hot rows, all-reduced)
_DISTRIBUTED_LABELS = ("em", "hard_em")


def _checked_freeze(routine: Routine, model: MixtureFamily, init: Any, freeze: Any) -> tuple[str, ...]:
    """The frozen groups, or a clear error when the routine, the family or the start cannot give them."""
    groups = check_freeze(freeze)
    if not groups:
        return groups
    if not routine.freeze:
        working = sorted(name for name, r in ROUTINES.items() if r.freeze)
        raise ValueError(f"method {routine.name!r} cannot hold parameters fixed; methods that take freeze=...: "
                         f"{working}.")
    model.frozen_sites(groups)  # the family names its groups (or says it cannot)
    if isinstance(init, str):
        raise ValueError(f"freeze={groups} holds values you give: pass init=parameters (e.g. a MixtureParams) or a "
                         f"dict, not the initializer {init!r}.")
    return groups


def _checked_weights(routine: Routine, X: Any, sample_weight: Any) -> Tensor | None:
    """``sample_weight`` validated against ``X`` (:func:`mixtures.core.weights.check_sample_weight`), or a
    clear error when the routine or the data path cannot honour weights."""
    if sample_weight is None:
        return None
    if not routine.sample_weight:
        weighted = sorted(name for name, r in ROUTINES.items() if r.sample_weight)
        raise ValueError(f"method {routine.name!r} does not take sample_weight; methods that do: {weighted}.")
    if isinstance(X, StreamingData):  # an (N,) array aligned with the stream, read chunk by chunk
        if routine.name not in ("em", "hard_em"):
            raise ValueError(f"sample_weight with streamed data works with ['em', 'hard_em']; method {routine.name!r} "
                             "needs the data in memory.")
        return streamed_weights(sample_weight, X.n_points, X.dtype)
    return check_sample_weight(sample_weight, X)


def _global_total(weights: Tensor, distributed: bool) -> float:
    """``Σ_n w_n`` over this process's (or, distributed, every rank's) points."""
    total = weight_total(weights)
    return float(comm.all_reduce_sum(total)[0]) if distributed else float(total)


def _check_missing_support(routine: Routine, model: MixtureFamily, X: Any) -> None:
    """A clear error when ``missing="marginalize"`` meets a routine, family or data source that cannot."""
    if not routine.missing:
        working = sorted(name for name, r in ROUTINES.items() if r.missing)
        raise ValueError(f"method {routine.name!r} cannot fit data with missing values yet; missing='marginalize' "
                         f"works with {working}.")
    if not model.supports("missing"):
        raise ValueError(f"{type(model).__name__} cannot marginalize missing values (its capabilities are "
                         f"{sorted(model.capabilities)}); GaussianMixture can.")
    if is_streaming_source(X) and routine.name not in ("em", "hard_em"):
        raise ValueError(f"missing='marginalize' with streamed data works with ['em', 'hard_em'] (patterns grouped "
                         f"chunk by chunk); method {routine.name!r} needs the data in memory.")


def _check_capabilities(routine: Routine, model: MixtureFamily) -> None:
    """A clear error when the family lacks a capability the routine requires."""
    missing = sorted(routine.requires - model.capabilities)
    if not missing:
        return
    working = sorted(name for name, r in ROUTINES.items() if r.requires <= model.capabilities)
    raise ValueError(f"method {routine.name!r} needs the capabilit{'ies' if len(missing) > 1 else 'y'} "
                     f"{missing} of the mixture family, which {type(model).__name__} does not have "
                     f"(it has {sorted(model.capabilities)}). Methods that work with it: {working}.")
