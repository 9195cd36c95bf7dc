"""Evaluation: how fits compare with the truth, with each other and with data.

``alignment`` (label switching, parameter errors), ``clustering`` (ARI, NMI, aligned confusion) and
``densities`` (KL, held-out log-likelihood, BIC/AIC/ICL, degenerate fits); ``arviz`` (a posterior as an
ArviZ ``InferenceData``: :func:`to_arviz`), ``coclustering`` (the posterior similarity matrix) and
``variational`` (PSIS k̂ of a variational posterior, held-out predictive density).

``resampling`` (bootstrap standard errors and percentile intervals: :func:`bootstrap`) and ``lrt`` (the
bootstrap likelihood-ratio test for K vs K + 1: :func:`bootstrap_lrt`), mclust's ``MclustBootstrap`` and
``mclustBootstrapLRT``, their replicates run in worker processes by ``replicates``.
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
from mixtures.evaluation.lrt import LRTResult, bootstrap_lrt
from mixtures.evaluation.resampling import BootstrapResult, bootstrap

__all__ = [
    "component_cost_matrix", "align_components", "align", "parameter_errors",
    "adjusted_rand_index", "normalized_mutual_info", "aligned_confusion",
    "gaussian_kl", "kl_divergence", "held_out_log_likelihood", "information_criteria",
    "singular_components", "is_singular", "COSTS", "to_arviz", "posterior_similarity",
    "bootstrap", "BootstrapResult", "bootstrap_lrt", "LRTResult",
]
