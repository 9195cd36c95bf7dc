"""Initializers: where a routine starts.

``init`` may be:

* a :class:`MixtureParams` (used as is, cast to the data's dtype/device) or a dict
  with ``locs`` and optionally ``weights`` (default equal) and ``covariances``
  (default: the data's covariance for every component) -- e.g. initial centres
  ``{"locs": centres}`` for k-means or k-medians;
* a partition: integer labels ``(N,)`` with exactly K distinct values (any
  values: they are mapped to ``0..K-1`` in sorted order), seed notebook 002;
* responsibilities ``(N, K)`` (non-negative rows summing to 1);
* ``"random"``: random responsibilities (uniform draws, normalized per point);
* ``"random_from_data"``: K distinct data points as means, equal weights, and
  the data's own covariance (in the model's type) for every component, as seed
  notebook 003 does (scikit-learn instead starts from one-point clusters);
* ``"kmeans++"``: D²-sampling of K centres (Arthur & Vassilvitskii 2007), then
  one hard M step on the nearest-centre partition;
* ``"kmeans"``: Lloyd's k-means from k-means++ centres, then one hard M step.

Partitions and responsibilities become parameters through the same M step as
EM (with ``reg_covar``). Random initializers take a ``torch.Generator``, so a
seed reproduces them bit for bit on CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.errors import DataError, ParameterError, SingularCovarianceError
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.suffstats import floored_counts, m_step, pooled_component, summarize
from mixtures.validation import make_generator, numeric_array

INITIALIZERS = ("kmeans", "kmeans++", "random", "random_from_data")
InitSpec = str | MixtureParams | dict | Tensor | np.ndarray


def params_from_responsibilities(model: GaussianMixture, X: Tensor, resp: Tensor,
                                 reg_covar: float = 1e-6, on_collapse: str = "error") -> MixtureParams:
    """M step from responsibilities ``resp`` ``(N, K)``.

    With ``on_collapse="reseed"`` a component whose covariance would be singular keeps
    its weight and mean and takes the covariance of all the data. With
    ``on_collapse="pool"`` (what routines that start from centres only ask for: k-means,
    k-medians) the mixture is built by the lenient rule of
    :func:`mixtures.inference.kmeans.induced_params`, which never fails.
    """
    summary = summarize(X, resp, model.cov_type)
    if on_collapse == "pool":
        from mixtures.inference.kmeans import induced_params

        means = summary.sx / floored_counts(summary.nk)[:, None] + summary.shift
        return induced_params(summary, model.cov_type, reg_covar, means,
                              lambda: float(X.var(0, correction=0).mean()))[0]
    pooled: set[int] = set()
    while True:
        try:
            return m_step(summary, model.cov_type, reg_covar)
        except SingularCovarianceError as error:
            if on_collapse != "reseed" or error.component is None or error.component in pooled:
                raise
            pooled.add(error.component)
            summary = pooled_component(summary, error.component, model.cov_type)


def params_from_labels(model: GaussianMixture, X: Tensor, labels: Tensor,
                       reg_covar: float = 1e-6, on_collapse: str = "error") -> MixtureParams:
    """M step from a hard partition ``labels`` ``(N,)`` with values in ``0..K-1``."""
    resp = torch.nn.functional.one_hot(labels, model.n_components).to(X.dtype)
    return params_from_responsibilities(model, X, resp, reg_covar, on_collapse)


def kmeans_plusplus(X: Tensor, n_clusters: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: centres ``(K, D)`` drawn with probability ∝ squared distance."""
    N = X.shape[0]
    first = int(torch.randint(N, (1,), generator=generator))
    centers = [X[first]]
    closest = (X - X[first]).square().sum(-1)
    for _ in range(1, n_clusters):  # loop over clusters, never over points
        total = closest.sum()
        probabilities = closest / total if total > 0 else torch.full_like(closest, 1.0 / N)
        index = int(torch.multinomial(probabilities.cpu(), 1, generator=generator))
        centers.append(X[index])
        closest = torch.minimum(closest, (X - X[index]).square().sum(-1))
    return torch.stack(centers)


def _pooled(model: GaussianMixture, X: Tensor, reg_covar: float, on_collapse: str = "error") -> MixtureParams:
    """Every component = the whole data (its covariance in the model's type)."""
    N, K = X.shape[0], model.n_components
    lenient = "pool" if on_collapse == "pool" else "error"
    return params_from_responsibilities(model, X, X.new_full((N, K), 1.0 / K), reg_covar, lenient)


def _given(value: Any, name: str, X: Tensor) -> Tensor:
    """A user-given initial tensor, numeric (or a ``DataError`` naming it), in X's dtype and device."""
    if isinstance(value, Tensor):
        return value.detach().to(X)
    return torch.as_tensor(numeric_array(value, name)).to(X)


def _labels_from_array(model: GaussianMixture, X: Tensor, labels: Tensor) -> Tensor:
    if labels.shape[0] != X.shape[0]:
        raise DataError(f"init labels have {labels.shape[0]} entries but X has {X.shape[0]} points.")
    values, inverse = torch.unique(labels, return_inverse=True)
    if values.numel() != model.n_components:
        raise DataError(
            f"init labels have {values.numel()} distinct values ({values.tolist()[:10]}) but the model "
            f"has K={model.n_components} components; give a partition with exactly K groups."
        )
    return inverse.to(X.device)


def _responsibilities_from_array(model: GaussianMixture, X: Tensor, resp: Tensor) -> Tensor:
    expected = (X.shape[0], model.n_components)
    if tuple(resp.shape) != expected:
        raise DataError(f"init responsibilities must have shape (N, K) = {expected}; got {tuple(resp.shape)}.")
    resp = resp.to(dtype=X.dtype, device=X.device)
    if not torch.isfinite(resp).all() or (resp < 0).any():
        raise DataError("init responsibilities must be finite and non-negative.")
    if not torch.allclose(resp.sum(-1), torch.ones_like(resp[:, 0]), atol=1e-6):
        raise DataError("init responsibilities must sum to 1 over components for every point.")
    return resp


def initial_responsibilities(model: GaussianMixture, X: Tensor, init: InitSpec) -> Tensor | None:
    """The responsibilities ``(N, K)`` a partition or responsibility ``init`` gives, else None.

    Routines whose natural starting point is a ``q(z)`` (variational Bayes) start
    from these exactly instead of from the parameters of their M step.
    """
    if isinstance(init, (str, dict, MixtureParams)):
        return None
    array = init if isinstance(init, Tensor) else torch.as_tensor(np.asarray(init))
    if array.dim() == 1:
        labels = _labels_from_array(model, X, array)
        return torch.nn.functional.one_hot(labels, model.n_components).to(X.dtype)
    if array.dim() == 2:
        return _responsibilities_from_array(model, X, array)
    return None


def initialize(model: GaussianMixture, X: Tensor, init: InitSpec = "kmeans",
               seed: int | None = 0, reg_covar: float = 1e-6,
               generator: torch.Generator | None = None, on_collapse: str = "error") -> MixtureParams:
    """Starting parameters for ``model`` on data ``X`` ``(N, D)``.

    Args:
        model: the mixture specification.
        X: validated data.
        init: see the module docstring.
        seed: seeds the random initializers (ignored when ``generator`` is given).
        reg_covar: added to covariance diagonals of M-step-based initializers.
        on_collapse: a singular covariance of an M-step-based initializer is an error
            (``"error"``), takes the data's covariance (``"reseed"``), or is built by
            k-means' lenient rule (``"pool"``: for routines that use only the centres).
    """
    from mixtures.inference.kmeans import assign, lloyd  # shared k-means math

    if generator is None:
        generator = make_generator(seed)  # None: fresh OS entropy, as everywhere
    K, (N, D) = model.n_components, X.shape
    if isinstance(init, MixtureParams):
        if init.n_features != D:
            raise ParameterError(f"init parameters have D={init.n_features} but X has {D} features.")
        return model.check_params(init.to(dtype=X.dtype, device=X.device))
    if isinstance(init, dict):
        unknown = set(init) - {"weights", "locs", "covariances"}
        if "locs" not in init or unknown:
            raise ParameterError(f"an init dict needs 'locs' and may give 'weights' and 'covariances'; "
                                 f"got keys {sorted(init)}.")
        locs = _given(init["locs"], "init['locs']", X)
        locs = locs.reshape(-1, 1) if locs.dim() == 1 and D == 1 else locs
        if tuple(locs.shape) != (K, D):
            raise ParameterError(f"init locs must have shape (K, D) = {(K, D)}; got {tuple(locs.shape)}.")
        # every given tensor follows the data's dtype and device, as locs do
        if "covariances" in init:
            covariances = _given(init["covariances"], "init['covariances']", X)
        else:
            covariances = _pooled(model, X, reg_covar, on_collapse).covariances
        weights = _given(init["weights"], "init['weights']", X) if "weights" in init else X.new_full((K,), 1.0 / K)
        return initialize(model, X, MixtureParams(weights, locs, covariances, model.covariance_type))
    if isinstance(init, str):
        if init == "random":
            resp = torch.rand(N, K, generator=generator, dtype=torch.float64).to(X)
            return params_from_responsibilities(model, X, resp / resp.sum(-1, keepdim=True), reg_covar,
                                                on_collapse)
        if init == "random_from_data":
            chosen = torch.randperm(N, generator=generator)[:K].to(X.device)
            return MixtureParams.from_native(X.new_full((K,), 1.0 / K), X[chosen],
                                             _pooled(model, X, reg_covar, on_collapse).native, model.cov_type,
                                             validate=False)
        if init in ("kmeans++", "kmeans"):
            centers = kmeans_plusplus(X, K, generator)
            if init == "kmeans":
                labels = lloyd(X, centers)[1]
            else:
                labels = assign(X, centers)[0]
            return params_from_labels(model, X, labels, reg_covar, on_collapse)
        raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}, or give "
                         "MixtureParams, a dict, labels (N,) or responsibilities (N, K).")
    array = init if isinstance(init, Tensor) else torch.as_tensor(np.asarray(init))
    if array.dim() == 1:
        if array.is_floating_point() and not torch.equal(array, array.round()):
            raise DataError("init labels must be integers.")
        return params_from_labels(model, X, _labels_from_array(model, X, array), reg_covar, on_collapse)
    if array.dim() == 2:
        return params_from_responsibilities(model, X, _responsibilities_from_array(model, X, array),
                                            reg_covar, on_collapse)
    raise ValueError(f"cannot initialize from {type(init).__name__} of shape {tuple(array.shape)}; "
                     "give labels (N,) or responsibilities (N, K).")
