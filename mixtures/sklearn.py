"""A scikit-learn estimator around :func:`mixtures.fit`.

:class:`GaussianMixture` follows ``sklearn.mixture.GaussianMixture``'s interface
(parameters, methods, fitted attributes and their per-covariance-type layouts) and
passes ``sklearn.utils.estimator_checks.check_estimator``; any routine of
:func:`mixtures.fit` does the fitting (``method="em"``, ``"hard_em"``, ``"kmeans"``...).
Numpy in, numpy out: float32 data gives float32 attributes and outputs, other
numeric data float64. Torch tensors are accepted too and converted to numpy on the
CPU (outputs are numpy arrays, never tensors): a float32 or float64 tensor keeps its
dtype, float16 / bfloat16 (tensors or arrays) become float32 as in :func:`mixtures.fit`,
integer and boolean tensors float64, and a tensor that requires grad is detached
(the estimator never back-propagates into it).

Routines and their iteration budget: ``max_iter`` and ``tol`` are passed to the
routine under its own names (the routine record's ``budget_option`` and ``tol_option``)::

    method                              max_iter becomes   tol becomes
    em, hard_em, kmeans, kmedians, vb   max_iter           tol
    map, svi                            num_steps          tol
    stepwise_em                         num_epochs         tol (mean log-likelihood per point)
    nuts                                (not passed)       (not passed)

NUTS has no iteration budget to map: its cost is set by ``method_options``
(``{"warmup": 300, "num_samples": 500}`` by default, ``max_tree_depth``...);
``max_iter`` and ``tol`` are ignored for it. ``n_iter_`` is then ``num_samples``.

Bayesian routines: ``prior`` (a :class:`mixtures.GaussianPrior`) is given to the
model, ``mixtures.GaussianMixture(K, covariance_type, prior=prior)``. With
``prior=None``, ``method="vb"`` and ``method="nuts"`` (which need a prior) use the
default ``GaussianPrior()`` (conjugate, data-scaled defaults as scikit-learn's
``BayesianGaussianMixture``); every other routine then fits without a prior
(maximum likelihood; with a prior, ``"em"`` is MAP-EM and ``"map"`` / ``"svi"``
include the log prior).

scikit-learn is an optional dependency, imported only by this module.

Starting from given parameters (for instance scikit-learn's own) works as in
scikit-learn, through ``weights_init``, ``means_init`` and ``precisions_init``
(precisions in scikit-learn's per-type layout). Those not given come from
``init_params``. With the same three arrays and the same ``tol``, ``max_iter`` and
``reg_covar``, soft EM here and ``sklearn.mixture.GaussianMixture`` run the same
iterations: they stop at the same ``n_iter_`` with equal parameters (to rounding).

Differences from scikit-learn, by design:

* ``init_params`` takes :mod:`mixtures.init`'s initializers (``"kmeans"``,
  ``"kmeans++"`` (alias ``"k-means++"``), ``"random"``, ``"random_from_data"``),
  whose random streams differ from scikit-learn's: from ``init_params`` alone the
  two libraries start from different points.
* ``lower_bound_`` is the mean log-likelihood per point *at the fitted parameters*
  (it equals ``score`` on the training data); scikit-learn reports the value at
  the parameters of the previous iteration, lower by less than ``tol`` once converged.
* ``warm_start``: the next ``fit`` starts from the fitted parameters (``n_init`` is
  then ignored, as in scikit-learn), but its convergence test begins afresh, so
  it runs at least two iterations. If ``n_components``, ``covariance_type`` or the
  number of features changed, the fit starts from ``init_params`` instead.
* ``random_state`` becomes one integer seed for :func:`mixtures.fit` (an int is
  used as is; ``None`` or a ``RandomState`` draws one), so
  ``GaussianMixture(random_state=s)`` equals ``mixtures.fit(..., seed=s)`` bit for bit.
* ``fit_predict(X)`` returns the labels of the fit itself, as scikit-learn's final
  E step does: the routine's own most probable assignments under the fitted
  parameters (``result.extras["labels"]`` of ``"hard_em"``, ``"map"``, ``"svi"``,
  ``"nuts"``) or, for the other routines, the most probable component under the
  fitted parameters computed once at the end of the fit. Both equal
  ``fit(X).predict(X)``. (k-means' and k-medians' own labels are nearest-centre
  assignments, which can differ from the fitted mixture's most probable component,
  so they are not used.)
* ``lower_bound_`` for ``"nuts"`` and ``"stepwise_em"`` is computed on the training data
  at ``result.params`` (their history's last log-likelihood is that of the last draw,
  or of an evaluation subsample).
* ``fit(X, sample_weight=w)`` (scikit-learn's mixtures take no weights): point ``n`` counts
  ``w_n`` times in every routine (:func:`mixtures.fit`'s ``sample_weight``); integer weights
  fit the data with rows repeated from the same start (given ``weights_init``/``means_init``/
  ``precisions_init`` or ``warm_start``; the named initializers draw weighted, not the same
  random numbers as on the repeated rows). ``lower_bound_``, ``bic`` and ``aic`` take the
  weighted log-likelihood (``bic``/``aic`` given the same ``sample_weight``).
* Not a ``ClusterMixin``: scikit-learn's clustering checks expect an
  ``n_clusters`` parameter and a ``labels_`` attribute, which a density estimator
  named like scikit-learn's ``GaussianMixture`` does not have (scikit-learn's is
  not a ``ClusterMixin`` either). ``fit_predict`` is provided all the same.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

try:
    from sklearn.base import BaseEstimator, DensityMixin
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted
except ImportError as _error:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "mixtures.sklearn needs scikit-learn, an optional dependency of mixtures: install it with "
        "`pip install scikit-learn` (or `pip install mixtures[dev]`). The rest of mixtures works "
        "without it."
    ) from _error

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, X, reset=True, **check_params):
        return estimator._validate_data(X, reset=reset, **check_params)

from mixtures.core.result import FitResult
from mixtures.core.weights import check_sample_weight
from mixtures.errors import ConvergenceWarning as MixturesConvergenceWarning
from mixtures.families.gaussian import STRUCTURES, GaussianPrior, MixtureParams
from mixtures.families.gaussian import GaussianMixture as MixtureModel
from mixtures.families.noise import NoisyMixture
from mixtures.families.student_t import StudentTMixture
from mixtures.inference import ROUTINES, fit
from mixtures.init import INITIALIZERS, initialize

__all__ = ["GaussianMixture", "RobustMixture", "ConvergenceWarning"]

#: the covariance structures scikit-learn has (its layouts of covariances and precisions)
SKLEARN_TYPES = tuple(name for name, structure in STRUCTURES.items() if structure.sklearn_layout)

#: scikit-learn's spelling of initializers -> mixtures.init's
_INIT_ALIASES = {"k-means++": "kmeans++"}
#: arguments of mixtures.fit that have their own estimator parameter
_RESERVED_OPTIONS = {"init": "init_params / weights_init / means_init / precisions_init",
                     "seed": "random_state", "n_init": "n_init", "reg_covar": "reg_covar",
                     "dtype": "the dtype of X (float32 or float64)"}


class ConvergenceWarning(MixturesConvergenceWarning, SklearnConvergenceWarning):
    """A routine stopped before converging; both scikit-learn's and mixtures' warning,
    so filters on either catch it."""


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture density estimator with scikit-learn's interface.

    Args:
        n_components: number of components K.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
        method: a routine of :func:`mixtures.fit` (``"em"``, ``"hard_em"``, ``"kmeans"``,
            ``"kmedians"``, ``"map"``, ``"svi"``, ``"stepwise_em"``, ``"vb"``, ``"nuts"``).
        init_params: initializer, see the module docstring.
        n_init: restarts; the best final objective is kept.
        max_iter: iteration budget, under the routine's own name (module docstring:
            ``num_steps`` for ``"map"`` / ``"svi"``, ``num_epochs`` for ``"stepwise_em"``;
            ignored by ``"nuts"``).
        tol: convergence tolerance (EM: on the change of the mean log-likelihood per point;
            ignored by ``"nuts"``).
        reg_covar: added to covariance diagonals.
        random_state: int, None or ``numpy.random.RandomState``.
        warm_start: start the next ``fit`` from this fit's parameters.
        method_options: extra options for the routine (e.g. ``{"chunk_size": 4096}``
            for EM, ``{"lr": 0.05}`` for SVI, ``{"device": "cuda"}`` for
            :func:`mixtures.fit`); they override ``max_iter`` and ``tol``.
        weights_init: ``(K,)`` initial weights, or None.
        means_init: ``(K, D)`` initial means, or None.
        precisions_init: initial precisions in scikit-learn's layout: ``(K, D, D)``
            full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical; or None.
        prior: a :class:`mixtures.GaussianPrior` for the model, or None (no prior;
            ``"vb"`` and ``"nuts"`` then use the default ``GaussianPrior()``).

    Fitted attributes: ``weights_`` ``(K,)``, ``means_`` ``(K, D)``, ``covariances_``
    and ``precisions_`` and ``precisions_cholesky_`` (full ``(K, D, D)``, tied
    ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``), ``converged_``, ``n_iter_``,
    ``lower_bound_`` (mean log-likelihood per point at the fitted parameters),
    ``history_`` (:class:`mixtures.History`), ``result_`` (:class:`mixtures.FitResult`),
    ``n_features_in_`` (and ``feature_names_in_`` for DataFrames).
    """

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full", method: str = "em",
                 init_params: str = "kmeans", n_init: int = 1, max_iter: int = 100, tol: float = 1e-3,
                 reg_covar: float = 1e-6, random_state: Any = None, warm_start: bool = False,
                 method_options: dict[str, Any] | None = None, weights_init: Any = None,
                 means_init: Any = None, precisions_init: Any = None, prior: Any = None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.method = method
        self.init_params = init_params
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.warm_start = warm_start
        self.method_options = method_options
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.prior = prior

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> GaussianMixture:
        """Fit to ``X`` ``(N, D)`` (``y`` is ignored). Returns ``self``.

        ``sample_weight`` ``(N,)``: non-negative weights of the points (``mixtures.fit``'s, module
        docstring "Weights"); ``lower_bound_`` is then the weighted mean log-likelihood.
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit, then the most probable component of every point ``(N,)`` (int64).

        The labels come from the fit itself (the routine's final assignments, or one
        final pass at the fitted parameters; module docstring); they equal
        ``fit(X).predict(X)``.
        """
        data = self._fit(X, sample_weight)
        return _numpy(_final_labels(self.result_, data))

    def _fit(self, X: Any, sample_weight: Any = None) -> Tensor:
        """Fit and set the fitted attributes; return the validated data as a tensor."""
        previous = getattr(self, "result_", None) if self.warm_start else None
        X_array = _validate_data(self, _numeric(X), dtype=[np.float64, np.float32], ensure_min_samples=2)
        self._check_parameters()
        N, D = X_array.shape
        if N < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {N}: use fewer components or more data.")
        data = _as_tensor(X_array)
        weights = check_sample_weight(sample_weight, data)
        model = self._model(data)
        seed = _seed_from(self.random_state)
        init = self._initialization(model, data, seed, previous, weights)
        record = ROUTINES[self.method]
        iterations, tolerance = record.budget_option, record.tol_option
        options: dict[str, Any] = {}
        if iterations is not None:
            options[iterations] = self.max_iter
        if tolerance is not None:
            options[tolerance] = self.tol
        options.update(self.method_options or {})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fit(model, data, self.method, init=init, seed=seed, n_init=self.n_init,
                         reg_covar=self.reg_covar, sample_weight=weights, **options)
        _reemit(caught, stacklevel=4)  # _reemit -> _fit -> fit / fit_predict -> the caller
        self._set_fitted(result, data, weights)
        return data

    def _model(self, X: Tensor) -> Any:
        """The family :func:`mixtures.fit` fits (a Gaussian mixture here)."""
        return MixtureModel(self.n_components, self.covariance_type, prior=self._prior())

    def _prior(self) -> GaussianPrior | None:
        if self.prior is None and ROUTINES[self.method].prior == "required":
            return GaussianPrior()
        return self.prior

    def _check_parameters(self) -> None:
        _check_int(self.n_components, "n_components", 1)
        _check_int(self.n_init, "n_init", 1)
        _check_int(self.max_iter, "max_iter", 0)
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < np.inf:
                raise ValueError(f"{name} must be a finite non-negative number; got {value!r}.")
        if not isinstance(self.covariance_type, str) or self.covariance_type not in SKLEARN_TYPES:
            raise ValueError(f"covariance_type must be one of {list(SKLEARN_TYPES)}; "
                             f"got {self.covariance_type!r}.")
        if not isinstance(self.method, str) or self.method not in ROUTINES:
            raise ValueError(f"method must be one of {sorted(ROUTINES)}; got {self.method!r}.")
        allowed = list(INITIALIZERS) + list(_INIT_ALIASES)
        if not isinstance(self.init_params, str) or self.init_params not in allowed:
            raise ValueError(f"init_params must be one of {allowed}; got {self.init_params!r}. "
                             "Give starting values through weights_init, means_init and precisions_init.")
        if self.prior is not None and not isinstance(self.prior, GaussianPrior):
            raise ValueError(f"prior must be a mixtures.GaussianPrior or None; "
                             f"got {type(self.prior).__name__}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start must be True or False; got {self.warm_start!r}.")
        options = self.method_options
        if options is not None:
            if not isinstance(options, Mapping):
                raise ValueError(f"method_options must be a dict or None; got {type(options).__name__}.")
            for key in options:
                if key in _RESERVED_OPTIONS:
                    raise ValueError(f"method_options may not set {key!r}: use the estimator's "
                                     f"{_RESERVED_OPTIONS[key]} instead.")

    def _initialization(self, model: MixtureModel, X: Tensor, seed: int,
                        previous: FitResult | None, sample_weight: Tensor | None = None) -> str | MixtureParams:
        """What :func:`mixtures.fit` starts from: a name of an initializer, or parameters."""
        K, D = model.n_components, X.shape[1]
        if (previous is not None and previous.params.n_components == K
                and previous.params.n_features == D
                and previous.params.covariance_type == model.covariance_type):
            return previous.params.to(dtype=X.dtype)
        init = _INIT_ALIASES.get(self.init_params, self.init_params)
        given = {"weights": self.weights_init, "locs": self.means_init, "precisions": self.precisions_init}
        if all(value is None for value in given.values()):
            return init
        # As scikit-learn: the arrays not given come from the initializer.
        start = initialize(model, X, init, seed=seed, reg_covar=self.reg_covar, sample_weight=sample_weight)
        weights = (start.weights if given["weights"] is None
                   else _array(given["weights"], "weights_init", X, (K,)))
        locs = start.locs if given["locs"] is None else _array(given["locs"], "means_init", X, (K, D))
        if given["precisions"] is None:
            return MixtureParams.from_native(weights, locs, start.native, model.cov_type)
        structure = model.cov_type
        precisions = _array(given["precisions"], "precisions_init", X, structure.native_shape(K, D))
        return MixtureParams.from_native(weights, locs, structure.native_from_precisions(precisions), structure)

    def _set_fitted(self, result: FitResult, X: Tensor, sample_weight: Tensor | None = None) -> None:
        params = result.params
        precisions_cholesky = params.precisions_cholesky
        covariances, precisions = params.cov_type.sklearn_covariances(params.native)
        self.weights_ = _numpy(params.weights)
        self.means_ = _numpy(params.locs)
        self.covariances_ = _numpy(covariances)
        self.precisions_cholesky_ = _numpy(precisions_cholesky)
        self.precisions_ = _numpy(precisions)
        self._set_run(result, X, sample_weight)

    # -- predictions ----------------------------------------------------------------------
    def _set_run(self, result: FitResult, X: Tensor, sample_weight: Tensor | None = None) -> None:
        """The attributes every family's fit sets alike: convergence, iterations, the lower bound
        (the training log-likelihood per point, or per unit of ``sample_weight``; scored afresh
        where the routine has none), the history."""
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        log_likelihood = result.log_likelihood
        if not np.isfinite(log_likelihood) or not ROUTINES[result.method].training_likelihood:
            log_prob = result.score_samples(X)
            if sample_weight is not None:
                log_prob = torch.where(sample_weight > 0, sample_weight * log_prob, 0.0)
            log_likelihood = float(log_prob.sum())
        self.lower_bound_ = log_likelihood / (X.shape[0] if sample_weight is None else float(sample_weight.sum()))
        self.history_ = result.history
        self.result_ = result

    def _checked(self, X: Any) -> tuple[FitResult, Tensor]:
        """The fitted result and ``X`` validated against the training data's features."""
        check_is_fitted(self)
        return self.result_, _as_tensor(_validate_data(self, _numeric(X), dtype=[np.float64, np.float32],
                                                        reset=False))

    def score_samples(self, X: Any) -> np.ndarray:
        """Log density of every point ``(N,)``."""
        result, X = self._checked(X)
        return _numpy(result.score_samples(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per point (higher is better)."""
        result, X = self._checked(X)
        return float(result.score_samples(X).mean())

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of every point ``(N,)`` (int64)."""
        result, X = self._checked(X)
        return _numpy(result.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior membership probabilities ``(N, K)``."""
        result, X = self._checked(X)
        return _numpy(result.predict_proba(X))

    def bic(self, X: Any, sample_weight: Any = None) -> float:
        """Bayesian information criterion on ``X`` (lower is better); with ``sample_weight`` the weighted
        log-likelihood and ``N = Σ_n w_n`` (:meth:`mixtures.FitResult.bic`)."""
        result, X = self._checked(X)
        return result.bic(X, sample_weight)

    def aic(self, X: Any, sample_weight: Any = None) -> float:
        """Akaike information criterion on ``X`` (lower is better; weighted with ``sample_weight``)."""
        result, X = self._checked(X)
        return result.aic(X, sample_weight)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` points: ``(X (n_samples, D), y (n_samples,))``.

        Seeded by ``random_state`` (an int gives the same draw every call, as in scikit-learn).
        """
        check_is_fitted(self)
        _check_int(n_samples, "n_samples", 1)
        X, labels = self.result_.sample(int(n_samples), seed=_seed_from(self.random_state))
        return _numpy(X), _numpy(labels)


class RobustMixture(GaussianMixture):
    """The estimator for outlier-robust mixtures: Student-t components and/or a uniform noise component.

    Every parameter of :class:`GaussianMixture` (same meaning), and:

    Args:
        family: ``"student_t"`` (default; :class:`mixtures.StudentTMixture`) or ``"gaussian"``.
        dof: the t's degrees of freedom: ``"free"``, ``"shared"`` or a number (fixed); ignored for
            ``family="gaussian"``.
        noise: add a uniform noise component (:class:`mixtures.NoisyMixture`) over ``noise_region``.
        noise_region: ``"box"`` (the training data's bounding box) or ``"hull"`` (its convex hull).

    Starting arrays (``weights_init``, ``means_init``, ``precisions_init``) are not available here: start
    from ``init_params`` (or ``warm_start``). Fitted attributes: ``weights_`` ``(K,)`` or, with noise,
    ``(K + 1,)`` (the noise's weight last, also ``noise_weight_``), ``means_`` ``(K, D)``, ``covariances_``
    (the clusters' scale matrices for t, in scikit-learn's layout), ``dof_`` ``(K,)`` (t only),
    ``noise_volume_`` (with noise), and the rest as :class:`GaussianMixture`'s. With noise, ``predict``
    returns ``K`` for the points whose noise responsibility wins (``is_noise``), and ``predict_proba`` has
    ``K + 1`` columns, the noise's last.
    """

    def __init__(self, n_components: int = 1, *, family: str = "student_t", dof: Any = "free", noise: bool = False,
                 noise_region: str = "box", covariance_type: str = "full", method: str = "em",
                 init_params: str = "kmeans", n_init: int = 1, max_iter: int = 100, tol: float = 1e-3,
                 reg_covar: float = 1e-6, random_state: Any = None, warm_start: bool = False,
                 method_options: dict[str, Any] | None = None, weights_init: Any = None,
                 means_init: Any = None, precisions_init: Any = None, prior: Any = None):
        super().__init__(n_components, covariance_type=covariance_type, method=method, init_params=init_params,
                         n_init=n_init, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state,
                         warm_start=warm_start, method_options=method_options, weights_init=weights_init,
                         means_init=means_init, precisions_init=precisions_init, prior=prior)
        self.family = family
        self.dof = dof
        self.noise = noise
        self.noise_region = noise_region

    def _model(self, X: Tensor) -> Any:
        if self.family not in ("student_t", "gaussian"):
            raise ValueError(f"family must be 'student_t' or 'gaussian'; got {self.family!r}.")
        if not isinstance(self.noise, (bool, np.bool_)):
            raise ValueError(f"noise must be True or False; got {self.noise!r}.")
        if self.noise_region not in ("box", "hull"):
            raise ValueError(f"noise_region must be 'box' or 'hull'; got {self.noise_region!r}.")
        if self.family == "gaussian":
            clusters = MixtureModel(self.n_components, self.covariance_type, prior=self._prior())
        else:
            clusters = StudentTMixture(self.n_components, self.covariance_type, dof=self.dof, prior=self._prior())
        return NoisyMixture.over(X, clusters, self.noise_region) if self.noise else clusters

    def _initialization(self, model: Any, X: Tensor, seed: int, previous: FitResult | None,
                        sample_weight: Tensor | None = None) -> Any:
        if any(value is not None for value in (self.weights_init, self.means_init, self.precisions_init)):
            raise ValueError("weights_init, means_init and precisions_init are for GaussianMixture; RobustMixture "
                             "starts from init_params (or warm_start).")
        if (previous is not None and type(previous.model) is type(model) and previous.model.spec() == model.spec()
                and previous.params.n_components == model.n_components and previous.params.n_features == X.shape[1]):
            return previous.params.to(dtype=X.dtype)
        return _INIT_ALIASES.get(self.init_params, self.init_params)

    def _set_fitted(self, result: FitResult, X: Tensor, sample_weight: Tensor | None = None) -> None:
        params = result.params
        clusters = params.clusters() if self.noise else params
        scale = clusters.scale if self.family == "student_t" else clusters
        covariances, precisions = scale.cov_type.sklearn_covariances(scale.native)
        self.weights_ = _numpy(params.weights)
        self.means_ = _numpy(scale.locs)
        self.covariances_ = _numpy(covariances)
        self.precisions_ = _numpy(precisions)
        self.precisions_cholesky_ = _numpy(scale.precisions_cholesky)
        if self.family == "student_t":
            self.dof_ = _numpy(clusters.dof)
        if self.noise:
            self.noise_weight_ = float(params.noise_weight)
            self.noise_volume_ = float(result.model.region.volume)
        self._set_run(result, X, sample_weight)

    def is_noise(self, X: Any) -> np.ndarray:
        """``(N,)`` bool: the points whose noise responsibility wins (all ``False`` without noise)."""
        result, X = self._checked(X)
        return _numpy(result.is_noise(X))


# -- helpers --------------------------------------------------------------------------


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")


def _seed_from(random_state: Any) -> int:
    """One seed for mixtures.fit: an int as is (checked as NumPy would), else drawn."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(random_state)  # rejects seeds outside [0, 2**32)
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _numeric(X: Any) -> Any:
    """``X`` ready for scikit-learn's validation, keeping float32 / float64 as they are.

    A torch tensor becomes a numpy array on the CPU (detached if it requires grad);
    half precision (float16, bfloat16) becomes float32, as :func:`mixtures.fit` does
    (scikit-learn would make it float64). Everything else is left to ``validate_data``.
    """
    if isinstance(X, Tensor):
        X = X.detach()
        if X.dtype in (torch.float16, torch.bfloat16):
            X = X.to(torch.float32)
        return X.cpu().resolve_conj().resolve_neg().numpy()
    if isinstance(X, np.ndarray) and X.dtype == np.float16:
        return X.astype(np.float32)
    return X


def _final_labels(result: FitResult, X: Tensor) -> Tensor:
    """The fit's own most probable assignments ``(N,)``, or one pass at the fitted parameters."""
    labels = result.extras.get("labels")
    if (ROUTINES[result.method].own_labels and isinstance(labels, Tensor)
            and tuple(labels.shape) == (X.shape[0],)):
        return labels.long()
    return result.params.joint_log_prob(X).argmax(-1)


def _as_tensor(array: np.ndarray) -> Tensor:
    # validate_data may return read-only (memory-mapped) arrays; torch needs writable memory.
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _array(value: Any, name: str, X: Tensor, shape: tuple[int, ...]) -> Tensor:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array; got {type(value).__name__}.") from None
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} for n_components={shape[0] if shape else '?'} "
                         f"and the data's {X.shape[1]} feature(s); got {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return torch.from_numpy(array).to(device=X.device, dtype=X.dtype)


def _reemit(caught: list[warnings.WarningMessage], stacklevel: int = 3) -> None:
    """Re-issue warnings caught during a fit, from the caller's ``fit`` line, with mixtures'
    ConvergenceWarning turned into this module's (also scikit-learn's)."""
    for message in caught:
        category = message.category
        if issubclass(category, MixturesConvergenceWarning) and not issubclass(category, ConvergenceWarning):
            category = ConvergenceWarning
        warnings.warn(str(message.message), category, stacklevel=stacklevel)
