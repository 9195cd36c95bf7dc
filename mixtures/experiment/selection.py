"""Model selection over K x covariance type: ``mixtures select`` (and what configs/model_selection.yaml fits)."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm  # not tqdm.auto: in a notebook without ipywidgets it warns on import

from mixtures import evaluation
from mixtures.families.gaussian.covariance import MCLUST_NAMES
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.families.noise import NoiseRegion, NoisyMixture
from mixtures.inference import ROUTINES, fit
from mixtures.init import INITIALIZERS
from mixtures.kernels import parallel

#: mclust's EM stopping rule: the log-likelihood changed by less than this fraction of itself
MCLUST_RTOL = 1e-5
#: the absolute tolerance (nats per point) of routines without a relative one (vb, k-means...)
ABSOLUTE_TOL = 1e-6


def iteration_options(method: str, tol: float | None, max_iter: int, rtol: float | None = None) -> dict[str, Any]:
    """The stopping rule and budget under the routine's own option names (its record's ``tol_option``
    and ``budget_option``; MAP/SVI take ``num_steps``, NUTS neither).

    ``rtol`` (relative, mclust's rule) is used where the routine takes it and no absolute ``tol``
    is given; otherwise ``tol`` (nats per point; ``ABSOLUTE_TOL`` if None) goes to the routine's
    ``tol_option``."""
    routine = ROUTINES[method]
    options: dict[str, Any] = {}
    if tol is None and not (rtol is not None and "rtol" in routine.option_names):
        tol = ABSOLUTE_TOL
    if rtol is not None and tol is None and "rtol" in routine.option_names:
        options["rtol"] = rtol
    elif tol is not None and routine.tol_option is not None:
        options[routine.tol_option] = tol
    if routine.budget_option is not None:
        options[routine.budget_option] = max_iter
    return options


def parse_starts(starts: str | Sequence[str | tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """The starts of a multi-start selection as ``((initializer, count), ...)``.

    ``"hc,kmeans++:5"`` (the command line's ``--starts``) and ``["hc", ("kmeans++", 5)]`` both
    give ``(("hc", 1), ("kmeans++", 5))``: one hc start and five k-means++ starts (seeds
    ``seed``..``seed + 4``). Every name must be an initializer; counts are integers >= 1."""
    items = [part.strip() for part in starts.split(",")] if isinstance(starts, str) else list(starts)
    parsed = []
    for item in items:
        if isinstance(item, str):
            name, _, count_text = item.partition(":")
            try:
                count = int(count_text) if count_text.strip() else 1
            except ValueError:
                raise ValueError(f"starts: {item!r} has a count that is not an integer; write NAME or NAME:COUNT, "
                                 "e.g. 'hc,kmeans++:5'.") from None
        else:
            name, count = item
        name = name.strip()
        if name not in INITIALIZERS:
            raise ValueError(f"starts: unknown initializer {name!r}; use {', '.join(INITIALIZERS)} (e.g. "
                             "'hc,kmeans++:5').")
        if int(count) != count or count < 1:
            raise ValueError(f"starts: {name} needs a count >= 1; got {count!r}.")
        parsed.append((name, int(count)))
    if not parsed:
        raise ValueError("starts: give at least one start, e.g. 'hc,kmeans++:5'.")
    return tuple(parsed)


def _start_list(starts: Any, init: str, n_init: int, seed: int) -> list[tuple[str, int]]:
    """``[(initializer, seed), ...]`` of one cell: ``starts`` when given, else ``n_init`` starts of ``init``."""
    if starts is None:
        return [(init, seed + i) for i in range(n_init)]
    return [(name, seed + i) for name, count in parse_starts(starts) for i in range(count)]


def mclust_bic(result: Any, log_likelihood: float, n_parameters: int, n_points: int) -> float:
    """BIC in mclust's sign and as mclust reports it, ``2 ℓ − p log N`` (higher is better).

    mclust's EM reports the log-likelihood of its last E step, i.e. of the parameters before its
    final M step: for (hard) EM with a history of at least two rows that is the history's
    second-to-last row; for other routines ``ℓ`` is the final ``log_likelihood``. Ours
    (``-bic``) ends one M step further, so it is never lower."""
    if result.method in ("em", "hard_em"):
        trace = result.history.to_dict().get("log_likelihood", [])
        if len(trace) >= 2 and math.isfinite(trace[-2]):
            log_likelihood = float(trace[-2])
    return 2.0 * log_likelihood - n_parameters * math.log(n_points)


def _evaluate(result: Any, X: Tensor, reg_covar: float, labels: Tensor | None) -> dict[str, Any]:
    """A fit's row from ONE pass over ``X`` ``(N, D)``: the joint ``log π_k + log p(x_n | k)``
    ``(N, K)`` gives the log-likelihood, BIC and AIC (``result.bic``/``aic``), ICL
    (:func:`mixtures.evaluation.information_criteria`) and the labels (ties: lowest index, as
    ``result.predict``), where calling those would make four passes."""
    with parallel.one_torch_thread():  # fit pins them itself; this covers the evaluation after it
        joint = result.params.joint_log_prob(X)                      # (N, K)
        log_norm = torch.logsumexp(joint, -1)                        # (N,) log p(x_n)
        N, p = X.shape[0], result.n_parameters()
        log_likelihood = float(log_norm.sum())
        bic = -2.0 * log_likelihood + p * math.log(N)
        row = {"bic": bic, "aic": -2.0 * log_likelihood + 2.0 * p,
               "icl": bic - 2.0 * float((joint.max(-1).values - log_norm).sum()),
               "log_likelihood": log_likelihood, "mclust_bic": mclust_bic(result, log_likelihood, p, N),
               "singular": evaluation.is_singular(result.params, reg_covar)}
        if labels is not None:
            predicted = joint.argmax(-1)
            row.update(ari=evaluation.adjusted_rand_index(labels, predicted),
                       nmi=evaluation.normalized_mutual_info(labels, predicted))
    return row


def noise_region(noise: Any, X: Tensor) -> NoiseRegion | None:
    """The noise component's region of a selection's ``noise`` option (``None``: no noise rows): ``True`` or
    ``"box"`` the bounding box of ``X`` ``(N, D)``, ``"hull"`` its convex hull, a positive number a given volume
    (mclust's ``Vinv = 1/V``), or a :class:`~mixtures.families.noise.NoiseRegion`."""
    if noise is None or noise is False:
        return None
    if isinstance(noise, NoiseRegion):
        return noise
    if noise is True or noise in ("box", "hull"):
        return NoiseRegion.of(X, "box" if noise is True else noise)
    try:
        volume = float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be True, 'box', 'hull', a volume > 0 or a NoiseRegion; got {noise!r}.") from None
    if not (math.isfinite(volume) and volume > 0):
        raise ValueError(f"a noise volume must be finite and > 0; got {noise!r}.")
    return NoiseRegion.given(volume)


def check_noise_method(method: str, region: NoiseRegion | None) -> None:
    """Raise ``ValueError`` when noise rows are asked of a routine a noise component cannot run (VB, k-means)."""
    if region is None:
        return
    probe = NoisyMixture(GaussianMixture(1), region)
    missing = sorted(c for c in ROUTINES[method].requires if not probe.supports(c))
    if missing:
        usable = [name for name, r in ROUTINES.items() if all(probe.supports(c) for c in r.requires)]
        raise ValueError(f"method {method!r} needs {missing}, which a model with a noise component does not "
                         f"offer; use one of {', '.join(usable)}.")


def model_label(row: dict[str, Any]) -> str:
    """A row's model as tables and plots name it: its covariance type, ``+noise`` for a noise row."""
    return f"{row['covariance_type']}+noise" if row.get("noise") else str(row["covariance_type"])


def select_models(X: Any, k_max: int = 9, covariance_types: Sequence[str] | None = None, *, method: str = "em",
                  init: str = "hc", seed: int = 0, n_init: int = 1, reg_covar: float = 1e-6,
                  options: dict[str, Any] | None = None, progress: bool = False,
                  prior: GaussianPrior | None = None, labels: Tensor | None = None,
                  rtol: float | None = MCLUST_RTOL, tol: float | None = None,
                  max_iter: int = 1000, noise: Any = False, starts: str | Sequence[Any] | None = None,
                  keep_results: bool = False) -> list[dict[str, Any]]:
    """One row per (K, covariance type): the best of ``n_init`` starts (seeds ``seed``, ``seed + 1``...).

    Defaults as mclust's ``Mclust``: all fourteen structures (``covariance_types=None``:
    ``MCLUST_NAMES``), K = 1..9, EM from the hierarchical-agglomeration start (``init="hc"``: one
    tree, cached, cut at every K for every structure; deterministic below 2000 points, so more
    starts add nothing) to a relative tolerance ``rtol`` (mclust's 1e-5). ``tol`` (nats per
    point) replaces ``rtol`` by an absolute tolerance; ``init="kmeans", n_init=10`` gives
    k-means++ starts; ``options`` (the routine's own, e.g. ``{"tol": 1e-6}``) override all these.

    The best start is the non-singular one with the highest log-likelihood (a
    singular one only when every start is singular), as the model_selection
    config's report keeps the best seed. Rows hold ``n_components``,
    ``covariance_type``, ``status`` (``ok``/``failed``), ``log_likelihood``,
    ``bic``, ``aic``, ``icl`` (lower is better), ``mclust_bic`` (mclust's sign and reporting,
    :func:`mclust_bic`), ``n_iter``, ``converged``, ``singular``, ``seed``
    (of the kept start), ``starts`` and ``starts_converged``; failed ones ``error``.
    ``prior``: the models' prior (vb, nuts, MAP-EM). With given class ``labels (N,)``, rows also
    hold ``ari`` and ``nmi`` of the kept start's components against them.

    ``noise`` ("with noise", as mclust offers): every cell is also fitted with a uniform noise component
    (:class:`~mixtures.families.noise.NoisyMixture`: K clusters plus the noise) over the region
    :func:`noise_region` makes of it (``True``: the data's bounding box). Every row holds ``noise`` (bool);
    a noise row's K counts the clusters, and its BIC counts one more parameter (the noise weight; the
    volume is a constant). Its ICL and labels count the noise as a class.

    Multi-start mode: ``starts="hc,kmeans++:5"`` (or ``["hc", ("kmeans++", 5)]``, see
    :func:`parse_starts`) replaces ``init``/``n_init``: every cell is fitted from each start and
    keeps the best final log-likelihood (the same rule as above), so whenever the hc fit is usable
    (not singular) the kept row never ends below it. Rows then also hold ``init`` (the kept
    start's initializer) and ``hc_log_likelihood`` (the hc start's final log-likelihood, NaN when
    it failed or was singular). ``keep_results=True`` keeps each row's fitted ``FitResult`` under
    ``"result"`` (what ``select --out`` draws the best model from).
    """
    covariance_types = MCLUST_NAMES if covariance_types is None else covariance_types
    given = dict(options or {})
    options = iteration_options(method, tol, max_iter, rtol)
    if ROUTINES[method].tol_option in given:
        options.pop("rtol", None)  # an absolute tolerance in options replaces the default relative one
    options.update(given)
    region = noise_region(noise, X)
    check_noise_method(method, region)
    grid = [(k, t, None) for t in covariance_types for k in range(1, k_max + 1)]
    grid += [(k, t, region) for k, t, _ in grid] if region is not None else []  # the same cells with noise
    plan = _start_list(starts, init, n_init, seed)
    rows = []
    for k, cov_type, with_noise in tqdm(grid, disable=not progress, desc="select", unit="model", leave=False,
                                        file=sys.stderr):
        row: dict[str, Any] = {"n_components": k, "covariance_type": cov_type, "noise": with_noise is not None,
                               "status": "ok"}
        model = GaussianMixture(k, cov_type, prior=prior)
        model = model if with_noise is None else NoisyMixture(model, with_noise)
        if k > X.shape[0]:
            row.update(status="failed", error=f"K={k} exceeds the {X.shape[0]} points")
            rows.append(row)
            continue
        fitted, errors = [], []
        for start_init, start_seed in plan:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    result = fit(model, X, method, init=start_init, seed=start_seed, reg_covar=reg_covar, **options)
                    candidate = _evaluate(result, X, reg_covar, labels)
                    candidate.update(n_iter=int(result.n_iter), converged=bool(result.converged), seed=start_seed,
                                     init=start_init, **({"result": result} if keep_results else {}))
                    fitted.append(candidate)
                except (ValueError, FloatingPointError, RuntimeError) as error:
                    errors.append(" ".join(str(error).split())[:80])
        if not fitted:
            row.update(status="failed", error=errors[0])
        else:
            best = max(fitted, key=lambda c: (not c["singular"], c["log_likelihood"]))
            row.update(best, starts=len(fitted), starts_converged=sum(c["converged"] for c in fitted))
            if starts is not None:
                hc = [c["log_likelihood"] for c in fitted if c["init"] == "hc" and not c["singular"]]
                row["hc_log_likelihood"] = max(hc, default=math.nan)
        rows.append(row)
    return rows


def top_models(rows: Sequence[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """mclust's "top models based on the BIC criterion": the ``n`` usable rows (ok, not singular)
    with the highest ``mclust_bic``, best first, each with ``bic_difference`` to the best (≤ 0)."""
    usable = sorted((r for r in rows if r["status"] == "ok" and not r["singular"]),
                    key=lambda r: r["mclust_bic"], reverse=True)[:n]
    return [{**r, "bic_difference": r["mclust_bic"] - usable[0]["mclust_bic"]} for r in usable]
