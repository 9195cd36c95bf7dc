"""A fit's posterior as an ArviZ ``InferenceData``, so ArviZ's plots and diagnostics work on it.

:func:`to_arviz` converts the :class:`~mixtures.core.posterior.Posterior` of a Bayesian routine
(``"nuts"``, ``"vb"``, ``"svi"`` with a distributional guide) into groups laid out as ArviZ expects,
every array ``(chain, draw, ...)``:

``posterior``
    the draws' summary tensors (:meth:`~mixtures.core.params.Params.summary_tensors`: Gaussian
    ``weights (C, S, K)``, ``locs (C, S, K, D)``, ``covariances (C, S, K, D, D)``; Poisson
    ``rates``; Student-t ``scale_matrices`` and ``dof``), with named dimensions ``component``,
    ``feature`` and ``feature_bis`` (a second feature axis). NUTS draws are the relabelled ones;
    draw ``c * num_samples + i`` of ``result.posterior`` is ``(chain c, draw i)``. Draws from a
    variational ``q`` are independent and form one chain.
``log_likelihood`` (when ``X`` is given)
    ``x``: ``log p(x_n | θ_s)`` ``(C, S, N)`` (dimension ``point``), the per-point terms ``az.loo``
    and ``az.waic`` need; ``observed_data`` holds ``X`` itself ``(N, D)``.
``sample_stats`` (NUTS only)
    ``diverging`` (bool), ``lp`` (``log p(X, θ_s)``, the history's ``log_joint``: the log joint in
    constrained space, without the Jacobian of the sampler's transforms), ``step_size`` (the
    adapted step size, fixed after warmup, so exact per draw), ``mean_accept_prob`` (the
    chain's mean NUTS acceptance statistic, repeated over its draws: the sampler keeps no
    per-draw value), ``energy`` (the Hamiltonian ``U(q) + K(p)`` of every draw's iteration, at
    the start of its trajectory: :mod:`mixtures.inference.pyro.recording`; what ``az.bfmi`` and
    ``az.plot_energy`` read) and ``n_steps`` (the iteration's potential-and-gradient evaluations).

The ``attrs`` of every group name the routine, the posterior's kind, ``converged`` and the NUTS
``problems``, so an invalid run does not look like a valid one once converted.

ArviZ is an optional dependency (the ``dev`` extra); it is imported only when converting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.posterior import Posterior
from mixtures.core.result import FitResult
from mixtures.core.validation import as_data
from mixtures.core.version import VERSION

__all__ = ["to_arviz", "chain_layout", "pointwise_log_likelihood"]

#: routines whose result carries a posterior (what the error for any other result suggests)
_BAYESIAN = "method='nuts', method='vb', or method='svi' with a prior and a distributional guide"


def _require_arviz() -> Any:
    try:
        import arviz
    except ImportError as error:
        raise ImportError("to_arviz needs ArviZ, which is not installed: `pip install arviz` "
                          "(or `pip install mixtures[dev]`).") from error
    return arviz


def _require_posterior(result: Any) -> Posterior:
    if not isinstance(result, FitResult):
        raise TypeError(f"result must be a FitResult (what mixtures.fit returns); got {type(result).__name__}.")
    if result.posterior is None:
        raise ValueError(f"to_arviz converts posterior draws, and this {result.method!r} result has none (a point "
                         f"estimate). Fit with a Bayesian routine: {_BAYESIAN}.")
    return result.posterior


def chain_layout(result: FitResult) -> tuple[int, int]:
    """``(C, S)``: chains and draws per chain of ``result.posterior`` (its draws are chain after chain).

    MCMC: one chain per entry of the diagnostics' ``step_size``; variational draws: one chain.
    """
    posterior = _require_posterior(result)
    total = posterior.n_draws
    chains = len(posterior.diagnostics.get("step_size", [])) if posterior.kind == "mcmc" else 1
    chains = max(chains, 1)
    if total % chains:
        raise ValueError(f"the posterior's {total} draws do not split into {chains} chains of equal length.")
    return chains, total // chains


def _numpy(value: Tensor) -> np.ndarray:
    return value.detach().cpu().double().numpy()


def _dims(name: str, shape: tuple[int, ...], n_components: int, n_features: int) -> list[str]:
    """Names of the axes of a parameter of one draw: ``component`` first when it indexes components,
    ``feature``/``feature_bis`` for the axes of length D, ``<name>_dim_<i>`` otherwise."""
    dims, features = [], ["feature", "feature_bis"]
    for axis, size in enumerate(shape):
        if axis == 0 and size == n_components:
            dims.append("component")
        elif size == n_features and features:
            dims.append(features.pop(0))
        else:
            dims.append(f"{name}_dim_{axis}")
    return dims


def pointwise_log_likelihood(posterior: Posterior, X: Any) -> Tensor:
    """``log p(x_n | θ_s)`` for every draw and point ``(S, N)`` (a loop over draws, each vectorized
    over the data)."""
    X = as_data(X, dtype=posterior.draws.dtype, device=posterior.draws.device,
                n_features=posterior.draws.n_features)
    return torch.stack([posterior.draw(s).log_prob(X) for s in range(posterior.n_draws)])


def _sample_stats(result: FitResult, chains: int, draws: int) -> dict[str, np.ndarray]:
    """NUTS's per-draw statistics ``(C, S)`` (module docstring)."""
    diagnostics = result.posterior.diagnostics
    diverging = np.zeros((chains, draws), dtype=bool)
    for c, indices in enumerate(diagnostics.get("divergences", [])):
        diverging[c, [i for i in indices if 0 <= i < draws]] = True
    stats = {"diverging": diverging}
    if "log_joint" in result.history.columns:
        stats["lp"] = np.asarray(result.history["log_joint"], dtype=float).reshape(chains, draws)
    for name in ("energy", "n_steps"):  # per draw (a result saved before they were recorded has none)
        per_draw = diagnostics.get(name)
        if per_draw is not None and all(len(chain) == draws for chain in per_draw):
            stats[name] = np.asarray(per_draw, dtype=float if name == "energy" else np.int64).reshape(chains, draws)
    for name in ("step_size", "mean_accept_prob"):
        if name in diagnostics:
            per_chain = np.asarray(diagnostics[name], dtype=float)
            stats[name] = np.repeat(per_chain[:, None], draws, axis=1)
    return stats


def to_arviz(result: FitResult, X: Any = None) -> Any:
    """``result``'s posterior as an ``arviz.InferenceData`` (groups in the module docstring).

    Args:
        result: a fit with a posterior (``"nuts"``, ``"vb"``, ``"svi"`` with a distributional guide).
        X: ``(N, D)`` data for the ``log_likelihood`` and ``observed_data`` groups (the training data
            for ``az.loo``/``az.waic``); ``None`` leaves both out.

    Raises:
        ValueError: the result has no posterior (EM, MAP, k-means... are point estimates).
        ImportError: ArviZ is not installed.
    """
    posterior = _require_posterior(result)
    az = _require_arviz()
    chains, draws = chain_layout(result)
    K, D = posterior.draws.n_components, posterior.draws.n_features
    groups: dict[str, Any] = {"posterior": {}}
    dims: dict[str, list[str]] = {}
    for name, value in posterior.draws.summary_tensors().items():
        shape = tuple(value.shape[1:])
        groups["posterior"][name] = _numpy(value).reshape((chains, draws) + shape)
        dims[name] = _dims(name, shape, K, D)
    if X is not None:
        data = as_data(X, dtype=posterior.draws.dtype, device=posterior.draws.device, n_features=D)
        log_likelihood = pointwise_log_likelihood(posterior, data)
        groups["log_likelihood"] = {"x": _numpy(log_likelihood).reshape(chains, draws, -1)}
        groups["observed_data"] = {"x": _numpy(data)}
        dims["x"] = ["point"]
    if posterior.kind == "mcmc":
        groups["sample_stats"] = _sample_stats(result, chains, draws)
    attrs = {"inference_library": "mixtures", "inference_library_version": VERSION, "method": result.method,
             "posterior_kind": posterior.kind, "converged": int(bool(result.converged)),
             "problems": "; ".join(result.extras.get("problems", []))}
    idata = az.from_dict(**groups, dims=dims)
    if X is not None:
        idata.observed_data = idata.observed_data.rename({"x_dim_1": "feature"})
    for group in idata.groups():  # from_dict would set them on one group only
        idata[group].attrs.update(attrs)
    return idata
