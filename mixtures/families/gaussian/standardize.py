"""The affine map ``x ↦ (x - centre) / scale`` on data and Gaussian mixture parameters.

Adam's steps are absolute, so optimizing on raw data makes MAP and SVI depend on the
data's units (at 1e-8 they overshoot, at 1e8 they stall). Without a prior a Gaussian
mixture's likelihood is affine-equivariant, so gradient routines run on standardized data
and map everything back: parameters exactly, and every logged log-density shifted by the
Jacobian ``-N Σ_d log scale_d``. An isotropic structure needs one scale for all
dimensions (their root-mean-square).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.missing import has_missing, observed_means
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.params import MixtureParams


class Standardizer:
    """The affine map of the module docstring for data ``X`` ``(N, D)`` (all ranks' moments
    when ``distributed``)."""

    def __init__(self, X: Tensor, structure: CovarianceStructure, distributed: bool = False):
        self.structure = structure
        if distributed:  # every rank standardizes identically, with the moments of all the data
            n, self.centre, scale = comm.global_mean_std(X)
        elif has_missing(X):  # NaN entries are missing values: each feature's observed moments
            n = X.shape[0]
            self.centre = observed_means(X)
            scale = observed_means((X - self.centre).square()).sqrt()
        else:
            n = X.shape[0]
            self.centre = X.mean(0)
            scale = X.std(0, unbiased=False) if n > 1 else torch.ones_like(self.centre)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        if structure.isotropic:
            scale = scale.square().mean().sqrt().expand_as(scale).clone()
        self.scale = scale
        #: ``N Σ_d log scale_d`` (N of all the data: logged values are global); with missing
        #: values each feature counts its observed entries (the observed blocks' densities scale)
        counts = (~torch.isnan(X)).sum(0).to(scale) if has_missing(X) else n
        self.log_jacobian = float((counts * scale.log()).sum())

    def data(self, X: Tensor) -> Tensor:
        """``(X - centre) / scale`` ``(N, D)``."""
        return (X - self.centre) / self.scale

    def params(self, params: MixtureParams, inverse: bool = False) -> MixtureParams:
        """Parameters in the standardized frame (or back, with ``inverse``)."""
        if inverse:
            locs = params.locs * self.scale + self.centre
            native = self.structure.scale_native(params.native, self.scale)
        else:
            locs = (params.locs - self.centre) / self.scale
            native = self.structure.scale_native(params.native, self.scale.reciprocal())
        return MixtureParams.from_native(params.weights, locs, native, params.cov_type, validate=False)
