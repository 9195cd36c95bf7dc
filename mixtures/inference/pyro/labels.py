"""Label switching in posterior draws: relabelling to a reference, and quantities no relabelling can change.

The likelihood of a mixture is invariant under permutations of its components, so a sampler
may swap labels, and per-component summaries (the R-hat of ``locs[0]``) then mix two
components. Two complementary answers:

* :func:`relabel_draws`: align every draw to a reference draw (pivot relabelling: the
  permutation minimizing the summed matching cost, by the Hungarian algorithm). Reliable
  when the components are well separated in the posterior, meaningless when they are not.
* :func:`invariant_quantities`: functions of a draw that do not depend on the labels at all,
  so their R-hat and ESS are trustworthy whatever the relabelling did: the log-likelihood,
  the sorted weights and the co-clustering probabilities ``P(z_i = z_j | θ) = Σ_k r_ik r_jk``
  of a few pairs of points (the most uncertain pairs among an evenly spaced subset).
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mixtures.core.params import Params

#: co-clustering pairs followed by the label-invariant diagnostics, among this many points
CO_CLUSTERING_PAIRS = 20
CO_CLUSTERING_POINTS = 200
#: a pair whose mean co-clustering probability is within this of 0 or 1 is decided (not followed)
DECIDED = 0.01

__all__ = ["relabel_draws", "permute_components", "invariant_quantities", "co_clustering_pairs"]


def relabel_draws(draws: Params, reference: Params) -> Tensor:
    """Permutations aligning each draw's components to ``reference``: ``(S, K)`` long.

    ``perm[s, k]`` is the component of draw ``s`` matched to reference component ``k``: the
    assignment minimizing the summed matching cost (``draws.match_costs(reference)``; for a
    Gaussian ``Σ_k (μ_{s,perm[k]} - m_k)ᵀ Σ_k⁻¹ (μ_{s,perm[k]} - m_k)`` with the reference
    means and covariances), by the Hungarian algorithm.

    Args:
        draws: the draws' parameters with a leading draw dimension ``S``.
        reference: the reference mixture (K components).
    """
    S, K = draws.weights.shape
    if reference.n_components != K or reference.n_features != draws.n_features:
        raise ValueError(f"reference has K={reference.n_components}, D={reference.n_features}; "
                         f"the draws have K={K}, D={draws.n_features}.")
    # cost[s, j, k]: draw component j against reference component k
    cost = draws.match_costs(reference).cpu().numpy()
    perms = torch.empty(S, K, dtype=torch.long)
    for s in range(S):  # one small assignment problem per draw (K x K)
        rows, cols = linear_sum_assignment(cost[s].T)
        perms[s, torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perms.to(draws.device)


def permute_components(values: Tensor, perms: Tensor, axis: int) -> Tensor:
    """Reorder the component axis of draws: ``values`` ``(S, ...)`` with components at ``1 + axis``."""
    dim = 1 + axis
    shape = [1] * values.dim()
    shape[0], shape[dim] = perms.shape
    index = perms.reshape(shape).expand(*values.shape[:dim], perms.shape[1], *values.shape[dim + 1:])
    return values.gather(dim, index)


def co_clustering_pairs(draws: Params, X: Tensor, n_pairs: int = CO_CLUSTERING_PAIRS,
                        max_points: int = CO_CLUSTERING_POINTS) -> tuple[Tensor, Tensor]:
    """Co-clustering probabilities of the most uncertain pairs of points, per draw.

    Among at most ``max_points`` evenly spaced points of ``X`` ``(N, D)``, the pairs whose
    mean co-clustering probability over the draws is furthest from 0 and 1 (and not within
    :data:`DECIDED` of either), at most ``n_pairs`` of them.

    Returns:
        ``(values (S, M), pairs (M, 2))``: ``values[s, m] = Σ_k r_ik(θ_s) r_jk(θ_s)`` for
        pair ``m = (i, j)`` (indices into ``X``); ``M = 0`` when every pair is decided.
    """
    N = X.shape[0]
    index = torch.linspace(0, N - 1, min(N, max_points), dtype=torch.float64).round().long().unique()
    points = X[index]
    S = draws.weights.shape[0]
    resp = torch.stack([draws.index(s).responsibilities(points) for s in range(S)])  # (S, M, K)
    together = resp @ resp.transpose(-1, -2)  # (S, M, M)
    mean = together.mean(0)
    rows, cols = torch.triu_indices(len(index), len(index), 1)
    uncertainty = torch.minimum(mean[rows, cols], 1 - mean[rows, cols])
    order = uncertainty.argsort(descending=True)
    order = order[uncertainty[order] > DECIDED][:n_pairs]
    pairs = torch.stack([index[rows[order]], index[cols[order]]], -1)
    return together[:, rows[order], cols[order]], pairs


def invariant_quantities(draws: Params, X: Tensor, log_likelihood: Tensor, num_chains: int
                         ) -> tuple[dict[str, Tensor], Tensor]:
    """Label-invariant functions of every draw, by chain: ``({name: (C, S/C, ...)}, pairs (M, 2))``.

    ``"log_likelihood"`` ``()``, ``"sorted_weights"`` ``(K,)`` (ascending; not for ``K = 1``) and, when some pair
    of points is uncertain, ``"co_clustering"`` ``(M,)`` of the ``pairs`` of
    :func:`co_clustering_pairs`.
    """
    values = {"log_likelihood": log_likelihood}
    if draws.weights.shape[-1] > 1:  # one component's weight is 1 in every draw: nothing to mix
        values["sorted_weights"] = draws.weights.sort(-1).values
    together, pairs = co_clustering_pairs(draws, X)
    if pairs.shape[0]:
        values["co_clustering"] = together
    return {name: value.reshape((num_chains, -1) + value.shape[1:]) for name, value in values.items()}, pairs
