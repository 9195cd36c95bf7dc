"""What mclust's decomposed structures share (``Σ_k = λ_k D_k A_k D_kᵀ``, :mod:`.eigen`).

Three bases, by storage:

* :class:`DecomposedTril` (``XYE``, ``XYV``: an orientation): Cholesky factors ``(K, D, D)``
  and per-component matrix statistics, as ``full``; its M step is the structure's estimate
  from the scatter matrices ``W_k``.
* :class:`DecomposedVariances` (``VEI``, ``EVI``): variances ``(K, D)`` and per-component
  diagonal statistics, as ``diag``.
* :class:`SharedVariances` (``EII``, ``EEI``): one diagonal covariance for every component,
  ``()`` or ``(D,)``, with the pooled diagonal statistic ``Σ_n x_n²`` ``(D,)``.

Every M step maximizes ``E_q[log p(X, Z | θ)]`` with the scatters ``W_k + n_k·reg_covar·I``:
for the four structures scikit-learn has, that is adding ``reg_covar`` to the estimate's
diagonal; for the others it keeps the structure (adding to the estimate would not).

Pyro sites (MAP, SVI without a prior): the native tensor under a :class:`~.parametrization.Decomposed`
constraint, whose bijection reads unconstrained log volumes, log shapes (determinant one) and
orientations (Cayley). Priors: none of these structures has a conjugate prior here (mclust's
posterior-mode regularization covers EII, VII, EEI, VEI, EVI, VVI, EEE, EEV, VEV and VVV, as a
penalty rather than a conjugate family), so :attr:`prior_kinds` is empty and a model with a
prior is refused up front, naming the structures that take one.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from mixtures.errors import ParameterError
from mixtures.families.gaussian.covariance import iterative
from mixtures.families.gaussian.covariance.base import (
    VarianceStructure,
    check_symmetric,
    checked_variances,
    cholesky_checked,
    clean_variance,
    raise_not_positive_definite,
)
from mixtures.families.gaussian.covariance.diag import DiagCovariance
from mixtures.families.gaussian.covariance.eigen import compose, decompose, letters, structure_error
from mixtures.families.gaussian.covariance.full import FullCovariance
from mixtures.families.gaussian.covariance.parametrization import Decomposed
from mixtures.families.gaussian.distributions import DiagonalNormal

#: covariances given by the user may miss their structure by this much (relative), then are projected onto it
STRUCTURE_RTOL = 1e-6


def scatter_matrices(nk: Tensor, means: Tensor, second_moment: Tensor, reg_covar: float) -> Tensor:
    """``W_k + n_k reg_covar I`` ``(K, D, D)`` from ``Σ r x xᵀ`` ``(K, D, D)`` and the means ``(K, D)``."""
    scatter = second_moment - nk[:, None, None] * means.unsqueeze(-1) * means.unsqueeze(-2)
    scatter = 0.5 * (scatter + scatter.transpose(-1, -2))
    scatter.diagonal(dim1=-2, dim2=-1).add_(nk[:, None] * reg_covar)
    return scatter


def scatter_diagonals(nk: Tensor, means: Tensor, second_moment: Tensor, reg_covar: float) -> Tensor:
    """Diagonals of ``W_k + n_k reg_covar I`` ``(K, D)`` from ``Σ r x²`` ``(K, D)`` (rounding zeroed)."""
    scatter = clean_variance(second_moment, second_moment - nk[:, None] * means.square())
    return scatter + nk[:, None] * reg_covar


def count_parameters(name: str, n_components: int, n_features: int) -> int:
    """mclust's ``nVarParams`` from the letters: per part 1 (E) or K (V) copies of its size
    (volume 1, shape D - 1, orientation D(D - 1)/2), none for I."""
    copies = {"E": 1, "V": n_components, "I": 0}
    volume, shape, orientation = letters(name)
    D = n_features
    return copies[volume] + copies[shape] * (D - 1) + copies[orientation] * (D * (D - 1) // 2)


def run_inner(algorithm, structure: str, nk: Tensor, scatter: Tensor, reg_covar: float) -> np.ndarray:
    """An :mod:`.iterative` M step on float64 copies; a degenerate scatter becomes the
    ``SingularCovarianceError`` naming its component, a spent budget a warning."""
    try:
        result = algorithm(nk.detach().cpu().double().numpy(), scatter.detach().cpu().double().numpy())
    except iterative.DegenerateScatter as error:
        raise_not_positive_definite(error.component, f"the {structure} estimate is singular: {error.what}", reg_covar)
    if not result.converged:
        warnings.warn(f"the {structure} M step stopped after {result.iterations} inner iterations before its "
                      f"tolerance {iterative.INNER_TOL:g}; the expected log-likelihood still increased.",
                      UserWarning, stacklevel=2)
    return result.covariances


class _Refusals:
    """The prior questions, answered with a clear error (the model refuses such priors first)."""

    prior_kinds: tuple[str, ...] = ()

    def _no_prior(self, *args, **kwargs):
        raise ValueError(f"covariance_type {self.name!r} has no prior here; the structures with one are "
                         "'full' (VVV), 'tied' (EEE), 'diag' (VVI) and 'spherical' (VII).")

    prior_scale_shape = prior_scale = declare_conjugate = conjugate_values = _no_prior
    declare_nonconjugate = nonconjugate_values = posterior_mode = variational_update = _no_prior
    gamma_shape = trace_with_precision = _no_prior


class DecomposedTril(_Refusals, FullCovariance):
    """A structure with an orientation (``XYE``, ``XYV``), stored as Cholesky factors ``(K, D, D)``."""

    sklearn_layout = False
    coupled = True
    empty_mode = None
    aliases: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.constraint = Decomposed(cls.name, "tril")

    def n_parameters(self, n_components, n_features):
        return count_parameters(self.name, n_components, n_features)

    def project(self, covariances: Tensor) -> Tensor:
        """Covariances ``(K, D, D)`` projected onto the structure (``E`` parts averaged)."""
        return compose(*decompose(covariances, self.name))

    def from_full(self, covariances):
        check_symmetric(covariances)
        error = structure_error(covariances, self.name)
        if not error <= STRUCTURE_RTOL:
            raise ParameterError(
                f"covariances do not have the {self.name} structure ({self.description}): they differ from "
                f"their projection onto it by {error:.2g} (relative). Pass covariances of that structure, or "
                "use covariance_type='full' (VVV).")
        return cholesky_checked(self.project(covariances), "Cholesky factorization failed")

    def validate(self, native, n_components, n_features):
        native = super().validate(native, n_components, n_features)
        covariances = native @ native.transpose(-1, -2)
        if not structure_error(covariances, self.name) <= STRUCTURE_RTOL:
            raise ParameterError(f"these Cholesky factors do not have the {self.name} structure "
                                 f"({self.description}).")
        return native

    def covariances_from_scatter(self, nk: Tensor, scatter: Tensor, reg_covar: float) -> Tensor:
        """The structure's maximizer ``(K, D, D)`` for scatters ``W_k`` ``(K, D, D)`` (regularized)."""
        raise NotImplementedError

    def estimate(self, nk, means, second_moment, reg_covar):
        scatter = scatter_matrices(nk, means, second_moment, reg_covar)
        covariances = self.covariances_from_scatter(nk, scatter, reg_covar)
        return cholesky_checked(covariances, "its estimate from the responsibilities is singular", reg_covar)

    def inner(self, algorithm, nk: Tensor, scatter: Tensor, reg_covar: float) -> Tensor:
        """An iterative M step (:func:`run_inner`) back in the statistics' dtype and device."""
        return torch.as_tensor(run_inner(algorithm, self.name, nk, scatter, reg_covar)).to(scatter)


class DecomposedVariances(_Refusals, DiagCovariance):
    """An axis-aligned structure with per-component parts (``VEI``, ``EVI``): variances ``(K, D)``."""

    sklearn_layout = False
    coupled = True
    empty_mode = None
    aliases: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.constraint = Decomposed(cls.name, "variances")

    def n_parameters(self, n_components, n_features):
        return count_parameters(self.name, n_components, n_features)

    def native_from_any(self, covariances, n_components, n_features):
        if tuple(covariances.shape) == (n_components, n_features):
            covariances = torch.diag_embed(covariances)
        return super().native_from_any(covariances, n_components, n_features)

    def from_full(self, covariances):
        check_symmetric(covariances)
        full = torch.diag_embed(covariances.diagonal(dim1=-2, dim2=-1))
        if not torch.equal(full, covariances):
            raise ParameterError(f"{self.name!r} covariances must be diagonal matrices ({self.description}); pass "
                                 "variances of shape (K, D) or use covariance_type='full' (VVV).")
        error = structure_error(full, self.name)
        if not error <= STRUCTURE_RTOL:
            raise ParameterError(
                f"variances do not have the {self.name} structure ({self.description}): they differ from their "
                f"projection onto it by {error:.2g} (relative). Use covariance_type='diag' (VVI) for any variances.")
        return compose(*decompose(full, self.name)).diagonal(dim1=-2, dim2=-1).clone()

    def validate(self, native, n_components, n_features):
        native = super().validate(native, n_components, n_features)
        if not structure_error(torch.diag_embed(native), self.name) <= STRUCTURE_RTOL:
            raise ParameterError(f"these variances do not have the {self.name} structure ({self.description}).")
        return native

    def variances_from_scatter(self, nk: Tensor, diagonals: Tensor, reg_covar: float) -> Tensor:
        """The structure's maximizer ``(K, D)`` for scatter diagonals ``(K, D)`` (regularized)."""
        raise NotImplementedError

    def estimate(self, nk, means, second_moment, reg_covar):
        diagonals = scatter_diagonals(nk, means, second_moment, reg_covar)
        return checked_variances(self.variances_from_scatter(nk, diagonals, reg_covar), reg_covar)


class SharedVariances(_Refusals, VarianceStructure):
    """One diagonal covariance for every component (``EII``: ``()``, ``EEI``: ``(D,)``).

    The statistic pools the components: ``Σ_n (Σ_k r_nk) x_n²`` ``(D,)`` (every point counts once).
    """

    shared = True
    sklearn_layout = False
    coupled = False
    aliases: tuple[str, ...] = ()

    def n_parameters(self, n_components, n_features):
        return count_parameters(self.name, n_components, n_features)

    def second_moment(self, X, resp):
        # Σ_k Σ_n r_nk x² = Σ_n w_n x² with w_n = Σ_k r_nk (1 for soft and hard EM), as tied's
        return resp.sum(1) @ X.square()

    def moment_from_features(self, sums, n_features):
        return sums.sum(0)

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        scatter = second_moment - 2.0 * (sx * locs).sum(0) + (nk[:, None] * locs.square()).sum(0)
        return (scatter * whitening.square()).sum()

    def pooled_diagonal(self, nk: Tensor, means: Tensor, second_moment: Tensor, reg_covar: float) -> Tensor:
        """``diag(Σ_k W_k) + N reg_covar`` ``(D,)`` from the pooled statistic."""
        raw = second_moment - (nk[:, None] * means.square()).sum(0)
        return clean_variance(second_moment, raw) + nk.sum() * reg_covar

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs = locs[index]
        return DiagonalNormal(locs, self.variance_columns(native)[0])

    def scale_tril(self, native, n_components, n_features):
        return torch.diag_embed(self.variance_columns(native).sqrt().expand(n_components, n_features))
