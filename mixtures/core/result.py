"""``FitResult``: what every inference routine returns, the same type for every routine and family.

History columns shared by all routines (one row per iteration or evaluation):

``iteration``
    the number of steps taken to reach the row's parameters (EM iterations,
    optimizer steps...); row 0 is the initialization.
``log_likelihood``
    exact marginal log-likelihood ``log p(X | θ)`` summed over the data, in nats,
    at the parameters *after* that step's update. Never includes a log prior.
``elbo``
    ``E_q[log p(X, Z | θ)] + H(q)`` for the routine's ``q`` over assignments at
    the same ``θ``. EM: ``q`` is the responsibilities that produced the update;
    hard EM: the one-hot assignments (so ``H(q) = 0``); Pyro routines: the
    negated loss as Pyro estimates it.
``kl``
    ``log_likelihood (+ log_prior) - elbo``: ``KL(q || p(Z | X, θ))`` ≥ 0 for EM-type
    routines and point-estimate guides; with a distributional guide it also holds
    the guide's gap over the globals.
``time``
    wall-clock seconds since the routine started (initialization excluded).

Routines may add their own columns (``objective``, ``loss``, ``grad_norm``,
``log_prior`` with a prior...), documented in their modules.

Prediction and scoring accept in-memory data or a streamed source (a memory-mapped
array, a callable returning chunks, :class:`~mixtures.stream.StreamingData`), the
latter one chunk at a time (:mod:`mixtures.stream`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixtures.core import queries
from mixtures.core.family import MixtureFamily
from mixtures.core.history import CORE_COLUMNS, History
from mixtures.core.missing import check_missing, marginalizing
from mixtures.core.params import Params
from mixtures.core.stream import as_stream, is_streaming_source, predict_chunks, score_stream
from mixtures.core.validation import as_data
from mixtures.core.weights import check_sample_weight

__all__ = ["FitResult", "History", "CORE_COLUMNS", "params_of"]


@dataclass
class FitResult:
    """The outcome of :func:`mixtures.fit`, the same type for every routine.

    Attributes:
        model: the model (a :class:`~mixtures.core.family.MixtureFamily`, e.g.
            ``GaussianMixture``) that was fitted.
        params: the fitted parameters (the family's :class:`~mixtures.core.params.Params`).
        history: per-iteration :class:`History` (columns documented in this module).
        converged: whether the routine met its tolerance before ``max_iter``.
        n_iter: iterations (or optimizer steps) performed.
        method: name of the routine (``"em"``, ``"kmeans"``...).
        objective: the quantity the routine maximizes, at the end (used to choose
            among restarts): log-likelihood for EM, ``-inertia`` for k-means...
        init: the initial parameters the routine started from.
        extras: routine-specific outputs (labels, inertia, restarts' objectives...).
        posterior: for Bayesian routines, a :class:`~mixtures.core.posterior.Posterior`
            over the parameters (``params`` is then its mean or mode, as the
            routine documents).
        decoder: how :meth:`predict_proba` answers: ``"closed_form"`` (the parameters'
            responsibilities) or ``"program"`` (Pyro's ``compute_marginals`` on the model's
            program: the routine record's ``queries``, set by ``fit``).
    """

    model: MixtureFamily
    params: Params
    history: History
    converged: bool
    n_iter: int
    method: str
    objective: float
    init: Params | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    posterior: Any = None
    decoder: str = "closed_form"

    # -- predictions, delegated to the parameters ------------------------------------
    def score_samples(self, X: Any, missing: str | None = None) -> Tensor:
        """Log density of every point under the fitted mixture: ``(N,)`` (``missing``: :meth:`impute`)."""
        if is_streaming_source(X):
            chunks = as_stream(X, dtype=self.params.dtype).chunks()
            return torch.cat([self.params.log_prob(chunk) for chunk in chunks])
        with self._missing_scope(missing):
            return self.params.log_prob(X)

    def score(self, X: Any) -> float:
        """Mean log-likelihood per point (scikit-learn's ``score``); one pass over streamed data."""
        total, n = self._total_log_likelihood(X)
        return total / n

    def predict_proba(self, X: Any, missing: str | None = None) -> Tensor:
        """Posterior membership probabilities ``(N, K)``.

        Results of Pyro routines (``decoder="program"``: ``"map"``, ``"svi"``) answer through
        Pyro's own ``TraceEnum_ELBO.compute_marginals`` on the program; the others through
        the parameters' ``responsibilities`` (the same numbers, checked to 1e-12 by the test
        suite). ``missing``: see :meth:`impute`.
        """
        with self._missing_scope(missing):
            if self.decoder == "program":
                return queries.marginal_probabilities(self.model, self.params, X)
            return self.params.responsibilities(X)

    def predict(self, X: Any, out: Any = None, missing: str | None = None) -> Any:
        """Most probable component of every point ``(N,)`` long (ties: lowest index).

        For streamed ``X``, labels are computed chunk by chunk; with ``out`` (an
        integer array of length N, e.g. an ``np.memmap`` opened for writing) they
        are written there and ``out`` is returned, so memory stays bounded. ``missing``: see
        :meth:`impute`.
        """
        if is_streaming_source(X):
            labels = predict_chunks(self, X, out=out)
            return labels if out is not None else torch.cat(list(labels))
        if out is not None:
            raise ValueError("out= is for streamed data (a memmap or a chunk source); in-memory data "
                             "returns a tensor of labels.")
        with self._missing_scope(missing):
            return self.params.joint_log_prob(X).argmax(-1)

    def impute(self, X: Any, draws: int | None = None, seed: int | None = 0) -> Tensor:
        """``X`` ``(N, D)`` with its NaN entries (missing at random) replaced by their conditional means
        under the fitted mixture, ``Σ_k p(k | x_obs) E[x_mis | x_obs, k]``; with ``draws``, that many
        samples ``(draws, N, D)`` from ``p(x_mis | x_obs)`` (observed entries unchanged).

        ``predict``, ``predict_proba`` and ``score_samples`` accept NaN entries the same way (the
        observed coordinates' marginal densities) when the fit used ``missing="marginalize"``, or
        when given ``missing="marginalize"`` themselves; otherwise NaN is an error.
        """
        return self.params.impute(X, draws=draws, seed=seed)

    def _missing_scope(self, missing: str | None) -> Any:
        """The scope of a query: NaN entries are missing values when asked, or when the fit used them; otherwise
        the caller's scope holds (NaN stays an error outside :func:`~mixtures.core.missing.marginalizing`, and an
        experiment scores a mean-imputed fit on the data with NaNs inside it)."""
        chosen = check_missing(missing) or self.extras.get("fit_settings", {}).get("missing")
        return marginalizing() if chosen == "marginalize" else contextlib.nullcontext()

    def uncertainty(self, X: Any) -> Tensor:
        """mclust's per-point classification uncertainty ``1 − max_k r_nk`` ``(N,)``, from
        :meth:`predict_proba`: 0 for a point its component claims surely, up to ``1 − 1/K``."""
        return 1.0 - self.predict_proba(X).max(-1).values

    def is_noise(self, X: Any) -> Tensor:
        """``(N,)`` bool: the points whose noise responsibility wins (their most probable component is the
        model's noise component, ``predict(X) == model.noise_component``); all ``False`` for a model without
        one."""
        noise = self.model.noise_component
        labels = self.predict(X)
        return labels == noise if noise is not None else torch.zeros_like(labels, dtype=torch.bool)

    def sample_assignments(self, X: Any, seed: int | None = 0) -> Tensor:
        """One draw of every assignment ``z_n ~ p(z_n | x_n, θ)`` ``(N,)`` long.

        Pyro's ``infer_discrete(temperature=1)`` on the model's program at the
        fitted parameters (``predict`` is its ``temperature=0`` counterpart).
        """
        return queries.sample_assignments(self.model, self.params, X, seed=seed)

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``(X (n, D), labels (n,))`` drawn from the fitted mixture."""
        return self.params.sample(n, seed)

    def _total_log_likelihood(self, X: Any, sample_weight: Any = None) -> tuple[float, float]:
        """``(log p(X | θ) summed, N)``, one chunk at a time for streamed data; with ``sample_weight``
        ``(N,)`` the weighted sum and ``N = Σ_n w_n`` (:mod:`mixtures.core.weights`)."""
        if sample_weight is not None:
            if is_streaming_source(X):
                raise ValueError("sample_weight needs the data in memory (a stream carries no weights).")
            X = as_data(X, dtype=self.params.dtype)
            weights = check_sample_weight(sample_weight, X)
            log_prob = self.params.log_prob(X)
            return float(torch.where(weights > 0, weights * log_prob, 0.0).sum()), float(weights.sum())
        if is_streaming_source(X):
            stream = as_stream(X, dtype=self.params.dtype)
            return score_stream(self.params, stream), stream.n_points
        with self._missing_scope(None):  # a fit with missing values scores data with NaNs by their observed entries
            log_prob = self.params.log_prob(X)
        return float(log_prob.sum()), log_prob.shape[0]

    def n_parameters(self) -> int:
        return self.model.n_parameters(self.params.n_features)

    def bic(self, X: Any, sample_weight: Any = None) -> float:
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better).

        ``p`` is the model's ``n_parameters``; mclust reports the negation. With ``sample_weight``
        ``(N,)``, ``log L`` is the weighted log-likelihood and ``N`` the total weight ``Σ_n w_n``
        (the number of points the weights stand for: integer weights give the BIC of the data
        with rows repeated).
        """
        log_likelihood, n = self._total_log_likelihood(X, sample_weight)
        return -2.0 * log_likelihood + self.n_parameters() * math.log(n)

    def aic(self, X: Any, sample_weight: Any = None) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better; ``log L`` weighted with
        ``sample_weight``)."""
        return -2.0 * self._total_log_likelihood(X, sample_weight)[0] + 2.0 * self.n_parameters()

    def save(self, path: Any) -> Any:
        """Write this result to ``path`` (``.pt``) atomically; see :mod:`mixtures.io`."""
        if _saver is None:  # pragma: no cover - importing mixtures installs it
            raise RuntimeError("no result writer is installed: import mixtures (or mixtures.io) first.")
        return _saver(self, path)

    @property
    def log_likelihood(self) -> float:
        """Final total log-likelihood on the training data (last history row)."""
        return float(self.history["log_likelihood"][-1]) if len(self.history) else math.nan

    def __repr__(self) -> str:
        spec = "".join(f", {name}={value!r}" for name, value in self.params.spec().items())
        return (f"FitResult(method={self.method!r}, K={self.params.n_components}{spec}, n_iter={self.n_iter}, "
                f"converged={self.converged}, log_likelihood={self.log_likelihood:.6g})")


def params_of(value: Any, name: str, kind: type[Params] = Params) -> Params:
    """The parameters of ``value``: parameters of ``kind`` themselves, or a ``FitResult``'s.

    ``name`` names the argument in the ``TypeError`` for anything else.
    """
    if isinstance(value, FitResult):
        value = value.params
    if not isinstance(value, kind):
        what = "mixture parameters" if kind is Params else f"a {kind.__name__}"
        raise TypeError(f"{name} must be {what} or a FitResult; got {type(value).__name__}.")
    return value


#: the writer behind :meth:`FitResult.save`; :mod:`mixtures.io` installs it on import (the file
#: format belongs to the layer that knows every family, above this one)
_saver: Any = None


def install_saver(saver: Any) -> None:
    """Make ``saver(result, path)`` the writer of :meth:`FitResult.save` (called by :mod:`mixtures.io`)."""
    global _saver
    _saver = saver
