"""Evaluation: how fits compare with the truth, with each other and with data.

``alignment`` (label switching, parameter errors), ``clustering`` (ARI, NMI, aligned confusion) and
``densities`` (KL, held-out log-likelihood, BIC/AIC/ICL, degenerate fits); ``arviz`` (a posterior as an
ArviZ ``InferenceData``: :func:`to_arviz`) and ``coclustering`` (the posterior similarity matrix).
"""

from mixtures.evaluation.alignment import COSTS, align, align_components, component_cost_matrix, parameter_errors
from mixtures.evaluation.arviz import to_arviz
from mixtures.evaluation.clustering import adjusted_rand_index, aligned_confusion, normalized_mutual_info
from mixtures.evaluation.coclustering import posterior_similarity
from mixtures.evaluation.densities import (
    gaussian_kl,
    held_out_log_likelihood,
    information_criteria,
    is_singular,
    kl_divergence,
    singular_components,
)

__all__ = [
    "component_cost_matrix", "align_components", "align", "parameter_errors",
    "adjusted_rand_index", "normalized_mutual_info", "aligned_confusion",
    "gaussian_kl", "kl_divergence", "held_out_log_likelihood", "information_criteria",
    "singular_components", "is_singular", "COSTS", "to_arviz", "posterior_similarity",
]
