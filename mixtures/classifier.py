"""Mixture discriminant analysis in scikit-learn's style: :class:`MixtureClassifier`.

Every class ``c`` gets a density ``f_c(x)``; with class priors ``π_c`` (the training
proportions unless given) a point's class probabilities are

    p(c | x) = π_c f_c(x) / Σ_c' π_c' f_c'(x)       (computed in log space)

Two ways to model the class densities, as mclust's ``MclustDA``:

* ``mode="edda"`` (mclust's EDDA): one Gaussian per class, all classes sharing one
  covariance *structure* (``VVV``: each class its own covariance, as quadratic discriminant
  analysis; ``EEE``: one covariance for all, as linear discriminant analysis; ``VII``,
  ``EVE``...). Each structure is fitted in closed form (the M step of a ``C``-component
  mixture at the one-hot responsibilities of the labels, i.e. maximum likelihood) and the
  one with the best BIC is kept.
* ``mode="mclustda"`` (mclust's ``MclustDA``): one Gaussian *mixture* per class, each with
  its own number of components and structure, chosen by BIC among ``n_components`` ×
  ``covariance_types`` (EM fits via :func:`mixtures.fit`).

BIC here is scikit-learn's sign, ``-2 ℓ + p log N`` (lower is better; mclust reports its
negation). EDDA's ``ℓ = Σ_i log f_{y_i}(x_i)`` and ``p`` counts means and covariance
parameters (the class proportions are estimated alike for every structure and left out,
as mclust does). MclustDA's is each class's own mixture BIC on that class's points.

Maximum likelihood covariances divide by ``n_c``. With ``reg_covar=0`` EDDA's ``VVV`` gives
scikit-learn's ``QuadraticDiscriminantAnalysis(reg_param=0)`` probabilities and its ``EEE``
``LinearDiscriminantAnalysis(solver="lsqr" or "eigen")``'s (the pooled maximum likelihood
covariance), with the same priors (tested to 1e-8 on iris). ``reg_covar`` is added to
covariance diagonals (default 1e-6, as :class:`mixtures.sklearn.GaussianMixture`).

This module sits above :mod:`mixtures.sklearn` (scikit-learn is imported only here and there).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
except ImportError as _error:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("mixtures.classifier needs scikit-learn: `pip install scikit-learn`.") from _error

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, X, y="no_validation", reset=True, **check_params):
        return estimator._validate_data(X, y, reset=reset, **check_params)

from mixtures.core.result import FitResult
from mixtures.errors import ParameterError
from mixtures.families.gaussian import GaussianMixture as MixtureModel
from mixtures.families.gaussian import MixtureParams
from mixtures.families.gaussian.covariance import MCLUST_NAMES, get_structure
from mixtures.inference import fit
from mixtures.sklearn import _check_int, _numeric, _reemit, _seed_from

__all__ = ["MixtureClassifier"]

MODES = ("edda", "mclustda")


class MixtureClassifier(ClassifierMixin, BaseEstimator):
    """Gaussian mixture discriminant analysis (EDDA or MclustDA; module docstring).

    Args:
        mode: ``"edda"`` (one Gaussian per class, one shared structure) or ``"mclustda"``
            (one mixture per class, its own K and structure).
        covariance_types: the structures BIC chooses among (names or mclust's names); ``None``:
            mclust's fourteen.
        n_components: ``"mclustda"`` only: the numbers of components tried per class (an int
            ``G`` means ``1..G``); a class with fewer points than components skips that K.
        priors: class priors ``(C,)`` in the order of ``classes_`` (positive, summing to 1), or
            ``None``: the training proportions.
        reg_covar: added to covariance diagonals (0: maximum likelihood).
        max_iter, tol, n_init, init_params, random_state: ``"mclustda"``'s EM fits
            (:func:`mixtures.fit`'s ``max_iter``, ``tol``, ``n_init``, ``init``, ``seed``).

    Fitted attributes: ``classes_`` ``(C,)``, ``priors_`` ``(C,)``, ``bic_`` (``"edda"``:
    ``{structure: BIC}``; ``"mclustda"``: one such dict per class keyed ``(structure, K)``),
    ``covariance_type_`` (``"edda"``: the chosen structure; ``"mclustda"``: one per class),
    ``n_components_`` (per class), ``params_`` (``"edda"``: the ``C``-component
    :class:`~mixtures.MixtureParams`, component ``c`` = class ``c``), ``results_``
    (``"mclustda"``: each class's :class:`~mixtures.FitResult`), ``n_iter_`` (``"edda"``: 1, its one
    closed-form step; ``"mclustda"``: the EM iterations of each class's chosen fit), ``n_features_in_``.
    """

    def __init__(self, mode: str = "edda", *, covariance_types: Sequence[str] | None = None,
                 n_components: int | Sequence[int] = 3, priors: Any = None, reg_covar: float = 1e-6,
                 max_iter: int = 100, tol: float = 1e-3, n_init: int = 1, init_params: str = "kmeans",
                 random_state: Any = None):
        self.mode = mode
        self.covariance_types = covariance_types
        self.n_components = n_components
        self.priors = priors
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> MixtureClassifier:
        """Fit the class densities to ``X`` ``(N, D)`` with labels ``y`` ``(N,)``. Returns ``self``."""
        X_array, y = _validate_data(self, _numeric(X), y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        self._check_parameters()
        self.classes_, codes = np.unique(y, return_inverse=True)
        X = torch.from_numpy(np.require(X_array, requirements=["C", "W"]))
        codes = torch.from_numpy(codes.reshape(-1).astype(np.int64))
        counts = torch.bincount(codes, minlength=len(self.classes_)).to(X.dtype)
        self.priors_ = self._class_priors(counts)
        structures = self._structures()
        if self.mode == "edda":
            self._fit_edda(X, codes, structures)
        else:
            self._fit_mclustda(X, codes, structures)
        return self

    def _fit_edda(self, X: Tensor, codes: Tensor, structures: list[str]) -> None:
        """Every structure's closed-form fit at the labels' one-hot responsibilities; keep the best BIC."""
        C, (N, D) = len(self.classes_), X.shape
        resp = torch.nn.functional.one_hot(codes, C).to(X.dtype)
        self.bic_: dict[str, float] = {}
        fitted: dict[str, MixtureParams] = {}
        failures = {}
        for name in structures:
            model = MixtureModel(C, name)
            try:
                params = model.params_from_responsibilities(X, resp, reg_covar=self.reg_covar)
            except (ParameterError, ValueError, torch.linalg.LinAlgError) as error:
                failures[name] = str(error)
                continue
            log_likelihood = params.component_log_prob(X).gather(1, codes[:, None]).sum()
            if not torch.isfinite(log_likelihood):
                failures[name] = f"log-likelihood {float(log_likelihood)}"
                continue
            n_parameters = model.n_parameters(D) - (C - 1)  # the proportions are the same for every structure
            self.bic_[name] = -2.0 * float(log_likelihood) + n_parameters * math.log(N)
            fitted[name] = params
        if not fitted:
            raise ValueError(f"no covariance structure could be fitted to the classes: {failures}. Increase "
                             "reg_covar or give more points per class.")
        best = min(self.bic_, key=self.bic_.get)
        self.covariance_type_, self.params_ = best, fitted[best]
        self.n_components_ = np.ones(C, dtype=np.int64)
        self.n_iter_ = 1  # one closed-form M step

    def _fit_mclustda(self, X: Tensor, codes: Tensor, structures: list[str]) -> None:
        """One mixture per class: every (structure, K) fitted by EM, the best BIC kept."""
        grid = _component_grid(self.n_components)
        seed = _seed_from(self.random_state)
        self.results_: list[FitResult] = []
        self.bic_, self.covariance_type_, n_components = [], [], []
        for c, label in enumerate(self.classes_):
            X_c = X[codes == c]
            scores: dict[tuple[str, int], float] = {}
            best: FitResult | None = None
            best_bic = math.inf
            for K in (K for K in grid if K <= X_c.shape[0]):
                for name in structures:
                    result = self._fit_one(X_c, K, name, seed)
                    if result is None:
                        continue
                    scores[(name, K)] = result.bic(X_c)
                    if scores[(name, K)] < best_bic:  # ties: the first (fewer components, earlier structure)
                        best, best_bic = result, scores[(name, K)]
            if best is None:
                raise ValueError(f"no mixture could be fitted to class {label!r} ({X_c.shape[0]} points) with "
                                 f"n_components={self.n_components} and covariance_types {structures}; increase "
                                 "reg_covar, or allow fewer components.")
            self.results_.append(best)
            self.bic_.append(scores)
            self.covariance_type_.append(best.params.covariance_type)
            n_components.append(best.model.n_components)
        self.n_components_ = np.asarray(n_components, dtype=np.int64)
        self.n_iter_ = np.asarray([result.n_iter for result in self.results_], dtype=np.int64)

    def _fit_one(self, X: Tensor, K: int, structure: str, seed: int) -> FitResult | None:
        """EM for one class, K and structure (``None`` if it cannot be fitted)."""
        model = MixtureModel(K, structure)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fit(model, X, "em", init=self.init_params, seed=seed, n_init=self.n_init,
                             reg_covar=self.reg_covar, max_iter=self.max_iter, tol=self.tol)
            except (ParameterError, ValueError, FloatingPointError, torch.linalg.LinAlgError):
                return None
        if result.extras.get("empty_components") or result.extras.get("collapsed_components"):
            return None  # a degenerate fit is not a candidate (its BIC would reward collapse)
        _reemit([m for m in caught if "did not converge" in str(m.message)], stacklevel=6)
        return result

    def _check_parameters(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}.")
        for name in ("reg_covar", "tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < np.inf:
                raise ValueError(f"{name} must be a finite non-negative number; got {value!r}.")
        _check_int(self.max_iter, "max_iter", 1)
        _check_int(self.n_init, "n_init", 1)
        _component_grid(self.n_components)

    def _structures(self) -> list[str]:
        names = MCLUST_NAMES if self.covariance_types is None else self.covariance_types
        if isinstance(names, str) or not len(names):
            raise ValueError(f"covariance_types must be a non-empty list of structure names or None; got {names!r}.")
        return list(dict.fromkeys(get_structure(name).name for name in names))

    def _class_priors(self, counts: Tensor) -> Tensor:
        C = counts.shape[0]
        if self.priors is None:
            return counts / counts.sum()
        priors = np.asarray(self.priors, dtype=np.float64)
        if priors.shape != (C,) or not np.all(priors > 0) or not np.isclose(priors.sum(), 1.0, rtol=0, atol=1e-10):
            raise ValueError(f"priors must be {C} positive numbers (one per class, in the order of classes_ "
                             f"{list(self.classes_)}) summing to 1; got {self.priors!r}.")
        return torch.from_numpy(priors / priors.sum())

    # -- predictions ----------------------------------------------------------------------
    def class_log_density(self, X: Any) -> np.ndarray:
        """``log f_c(x_n)`` of every point under every class's density ``(N, C)``."""
        return self._log_density(self._checked(X)).numpy()

    def _checked(self, X: Any) -> Tensor:
        check_is_fitted(self)
        X = _validate_data(self, _numeric(X), dtype=np.float64, reset=False)
        return torch.from_numpy(np.require(X, requirements=["C", "W"]))

    def _log_density(self, X: Tensor) -> Tensor:
        if self.mode == "edda" and hasattr(self, "params_"):
            return self.params_.component_log_prob(X)
        return torch.stack([result.params.log_prob(X) for result in self.results_], dim=-1)

    def _log_posterior(self, X: Any) -> Tensor:
        joint = self._log_density(self._checked(X)) + self.priors_.log()
        return joint - torch.logsumexp(joint, dim=-1, keepdim=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log p(c | x_n)`` ``(N, C)``, columns in the order of ``classes_``."""
        return self._log_posterior(X).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """``p(c | x_n)`` ``(N, C)``, columns in the order of ``classes_``."""
        return self._log_posterior(X).exp().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of every point ``(N,)`` (ties: the first in ``classes_``)."""
        best = self._log_posterior(X).argmax(-1).numpy()
        return self.classes_[best]


def _component_grid(n_components: Any) -> list[int]:
    """``n_components`` as the sorted list of K to try (an int ``G``: ``1..G``)."""
    if isinstance(n_components, numbers.Integral) and not isinstance(n_components, bool):
        _check_int(n_components, "n_components", 1)
        return list(range(1, int(n_components) + 1))
    try:
        values = list(n_components)
    except TypeError:
        values = []
    for value in values:
        _check_int(value, "n_components", 1)
    if not values:
        raise ValueError(f"n_components must be an integer >= 1 or a non-empty list of them; got {n_components!r}.")
    return sorted({int(value) for value in values})
