"""``"EVV"`` (mclust): ``Σ_k = λ C_k`` with ``|C_k| = 1``: one volume, shapes and orientations vary.

Native tensor: Cholesky factors ``(K, D, D)``. Closed-form M step: ``C_k = W_k / |W_k|^{1/D}``,
``λ = Σ_k |W_k|^{1/D} / N``.
"""

from __future__ import annotations

import torch

from mixtures.families.gaussian.covariance.base import raise_not_positive_definite
from mixtures.families.gaussian.covariance.decomposed import DecomposedTril


class EVVCovariance(DecomposedTril):
    name = "EVV"
    description = "λ C_k, |C_k| = 1 (one volume; shapes and orientations vary)"

    def covariances_from_scatter(self, nk, scatter, reg_covar):
        D = scatter.shape[-1]
        factor, info = torch.linalg.cholesky_ex(scatter)
        bad = torch.nonzero(info > 0).reshape(-1)
        if bad.numel():
            raise_not_positive_definite(int(bad[0]), "its scatter is singular (fewer points than dimensions, "
                                        "or points on a subspace)", reg_covar)
        root = (2.0 / D) * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # log |W_k|^{1/D}
        return scatter * ((root.exp().sum() / nk.sum()) / root.exp())[:, None, None]
