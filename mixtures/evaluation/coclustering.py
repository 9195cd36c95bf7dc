"""The posterior similarity (co-clustering) matrix: how often two points share a component.

``P[i, j] = E_θ[ p(z_i = z_j | x, θ) ] = E_θ[ Σ_k r_ik(θ) r_jk(θ) ]``, the mean over posterior
draws ``θ_s`` of ``R_s R_sᵀ`` with ``R_s = p(z | x, θ_s)`` ``(N, K)``. Given ``θ`` the
assignments are independent, so the product of responsibilities is exact; the assignments
are summed out rather than sampled, which removes their Monte Carlo noise. The matrix does
not change when a draw's components are permuted, so label switching between or within
chains cannot blur it (Fritsch & Ickstadt 2009 use it to summarize DP mixtures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.posterior import Posterior
from mixtures.core.validation import as_data

__all__ = ["posterior_similarity", "similarity_order"]


def posterior_similarity(posterior: Posterior, X: Any, max_draws: int | None = 200) -> Tensor:
    """The co-clustering matrix ``(N, N)`` of ``X`` ``(N, D)`` under ``posterior``'s draws.

    ``max_draws`` evenly spaced draws are used (``None``: all). Entries lie in ``[0, 1]``,
    the diagonal is ``E[Σ_k r_ik²]`` (1 for a point the posterior assigns surely).
    The cost is ``S · N² · K`` multiply-adds; memory ``N²``.
    """
    if not isinstance(posterior, Posterior) or posterior.n_draws < 1:
        raise ValueError("posterior_similarity needs a Posterior with at least one draw (a VB, SVI or NUTS fit's "
                         "result.posterior).")
    X = as_data(X, dtype=posterior.draws.weights.dtype)
    S = posterior.n_draws
    indices = range(S) if max_draws is None or S <= max_draws else \
        np.unique(np.linspace(0, S - 1, int(max_draws)).round().astype(int))
    similarity = torch.zeros(X.shape[0], X.shape[0], dtype=X.dtype)
    for count, s in enumerate(indices, start=1):  # a loop over draws; each draw is one (N, K) pass
        resp = posterior.draw(int(s)).responsibilities(X)
        similarity += (resp @ resp.T - similarity) / count  # running mean: no S-fold sum to overflow float32
    return (similarity + similarity.T) / 2  # a blocked matmul is symmetric only to rounding


def similarity_order(similarity: Tensor, labels: Any) -> np.ndarray:
    """A point order for drawing the matrix: grouped by ``labels`` ``(N,)`` (largest group first),
    within a group by decreasing mean similarity to it (its surest members first)."""
    labels = np.asarray(labels)
    sim = similarity.detach().cpu().numpy()
    groups = sorted(np.unique(labels), key=lambda g: -(labels == g).sum())
    order = []
    for group in groups:
        members = np.flatnonzero(labels == group)
        strength = sim[np.ix_(members, members)].mean(1)
        order.extend(members[np.argsort(-strength, kind="stable")])
    return np.asarray(order, dtype=int)
