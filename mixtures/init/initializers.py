"""Initializers: where a routine starts.

``init`` may be:

* the family's parameters (``MixtureParams`` for a Gaussian mixture: used as they are,
  cast to the data's dtype/device) or a dict of some of them (the family fills in the
  rest: for a Gaussian ``locs`` and optionally ``weights`` (default equal) and
  ``covariances`` (default: the data's covariance for every component) -- e.g. initial
  centres ``{"locs": centres}`` for k-means or k-medians);
* a partition: labels ``(N,)`` with exactly K distinct values (integers or strings:
  they are mapped to ``0..K-1`` in sorted order; NaN or missing labels are an error),
  seed notebook 002;
* responsibilities ``(N, K)`` (non-negative rows summing to 1);
* ``"random"``: random responsibilities (uniform draws, normalized per point);
* ``"random_from_data"``: K distinct data points as centres, equal weights (for a
  Gaussian: the data's own covariance for every component, as seed notebook 003 does;
  scikit-learn instead starts from one-point clusters);
* ``"kmeans++"``: D²-sampling of K centres (Arthur & Vassilvitskii 2007), then
  one hard M step on the nearest-centre partition;
* ``"kmeans"``: Lloyd's k-means from k-means++ centres, then one hard M step;
* ``"hc"``: mclust's deterministic start, the M step of the K-group cut of a model-based
  agglomerative tree (:mod:`mixtures.init.hc`; built on a random subset of 2000 points of
  larger data, quantile classes for one-dimensional data).

Partitions and responsibilities become parameters through the family's M step (the
same as EM's, with ``reg_covar``): the initializers here are family-agnostic and ask the
model (:class:`~mixtures.core.family.MixtureFamily`'s initialization hooks). Random
initializers take a ``torch.Generator``, so a seed reproduces them bit for bit on CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.chunks import chunk_size_for, iter_chunks
from mixtures.core.family import MixtureFamily
from mixtures.core.params import Params
from mixtures.core.validation import make_generator
from mixtures.errors import DataError, ParameterError
from mixtures.init.hc import SUBSET, hc_tree, quantile_classes
from mixtures.kernels.kmeans import assign, kmeans_plusplus, lloyd

INITIALIZERS = ("kmeans", "kmeans++", "random", "random_from_data", "hc")
InitSpec = str | Params | dict | Tensor | np.ndarray


def params_from_labels(model: MixtureFamily, X: Tensor, labels: Tensor, reg_covar: float = 1e-6,
                       on_collapse: str = "error") -> Params:
    """The family's M step from a hard partition ``labels`` ``(N,)`` with values in ``0..K-1``."""
    resp = torch.nn.functional.one_hot(labels, model.n_components).to(X.dtype)
    return model.params_from_responsibilities(X, resp, reg_covar, on_collapse)


def _nearest_centre_params(model: MixtureFamily, X: Tensor, centers: Tensor, reg_covar: float,
                           on_collapse: str, sample_weight: Tensor | None = None) -> Params:
    """The family's M step on the nearest-centre partition of ``X`` (centres ``(K, D)``).

    A family with statistics gets the partition's statistics chunk by chunk (no ``(N,)`` labels,
    no ``(N, K)`` responsibilities: the same sums, in the same order, as one ``summarize`` of the
    one-hot responsibilities); other families get the responsibilities. With ``sample_weight``
    ``(N,)`` the one-hot responsibilities are weighted.
    """
    if sample_weight is not None:
        resp = torch.nn.functional.one_hot(assign(X, centers)[0], model.n_components).to(X.dtype)
        return model.params_from_responsibilities(X, resp * sample_weight[:, None], reg_covar, on_collapse)
    if model.supports("statistics"):
        K, (N, D) = centers.shape[0], X.shape
        shift = model.statistics_shift(X)
        summary = None
        for rows in iter_chunks(N, chunk_size_for(K, D)):
            resp = torch.nn.functional.one_hot(assign(X[rows], centers)[0], K).to(X.dtype)
            part = model.summarize(X[rows], resp, shift)
            summary = part if summary is None else summary.with_additive(
                [mine + theirs for mine, theirs in zip(summary.additive(), part.additive())])
        summary = summary.replace(n_points=N)
        try:
            return model.params_from_statistics(summary, X, reg_covar, on_collapse)
        except NotImplementedError:
            pass
    return params_from_labels(model, X, assign(X, centers)[0], reg_covar, on_collapse)


def check_init(init: InitSpec) -> None:
    """A ``ValueError`` for an ``init`` of no accepted kind, before any work (module docstring)."""
    if isinstance(init, (str, dict, Params, Tensor, np.ndarray, list, tuple)):
        return
    raise ValueError(f"cannot initialize from {init!r:.80}; give an initializer name {list(INITIALIZERS)}, the "
                     "model's parameters, a dict, labels (N,) or responsibilities (N, K).")


def _init_array(init: Any) -> Tensor | np.ndarray:
    """Labels or responsibilities as a tensor, or a numpy array of non-numeric labels."""
    if isinstance(init, Tensor):
        return init.detach()
    try:
        array = np.asarray(init)
    except ValueError as error:  # ragged nested lists
        raise DataError(f"init is not a rectangular array: {error}. Give labels (N,) or responsibilities "
                        "(N, K).") from None
    if array.dtype.kind in "biuf":
        return torch.as_tensor(array)
    return array


def _labels_from_array(model: MixtureFamily, X: Tensor, labels: Tensor | np.ndarray) -> Tensor:
    """Labels ``(N,)`` of any values (numbers or strings), mapped to ``0..K-1`` in sorted order."""
    if labels.shape[0] != X.shape[0]:
        raise DataError(f"init labels have {labels.shape[0]} entries but X has {X.shape[0]} points.")
    if isinstance(labels, np.ndarray):
        values, inverse = _unique_labels(labels)
    else:
        _check_numeric_labels(labels)
        values, inverse = torch.unique(labels, return_inverse=True)
        values = values.tolist()
    if len(values) != model.n_components:
        raise DataError(
            f"init labels have {len(values)} distinct values ({list(values)[:10]}) but the model "
            f"has K={model.n_components} components; give a partition with exactly K groups.")
    return torch.as_tensor(inverse).reshape(-1).to(X.device)


def _check_numeric_labels(labels: Tensor) -> None:
    if not labels.is_floating_point():
        return
    missing = torch.nonzero(~torch.isfinite(labels)).reshape(-1)
    if missing.numel():
        raise DataError(f"init labels contain {missing.numel()} NaN or infinite value(s), the first at position "
                        f"{int(missing[0])}: every point needs a label. Give integer (or string) labels with "
                        "exactly K distinct values, one per point.")
    if not torch.equal(labels, labels.round()):
        raise DataError("init labels must be integers (or strings), one per point; got fractional values. "
                        "Soft assignments are responsibilities (N, K).")


def _unique_labels(labels: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """Distinct values and codes of non-numeric labels (strings, objects)."""
    missing = [i for i, value in enumerate(labels.tolist())
               if value is None or (isinstance(value, float) and math.isnan(value))]
    if missing:
        raise DataError(f"init labels contain {len(missing)} missing value(s) (None or NaN), the first at "
                        f"position {missing[0]}: every point needs a label.")
    try:
        values, inverse = np.unique(labels, return_inverse=True)
    except TypeError:  # mixed types (numbers and strings) cannot be sorted
        raise DataError("init labels mix numbers and strings; give labels of one kind, one per point.") from None
    return values.tolist(), inverse


def _responsibilities_from_array(model: MixtureFamily, X: Tensor, resp: Tensor | np.ndarray) -> Tensor:
    expected = (X.shape[0], model.n_components)
    if tuple(resp.shape) != expected:
        raise DataError(f"init responsibilities must have shape (N, K) = {expected}; got {tuple(resp.shape)}.")
    if isinstance(resp, np.ndarray):
        raise DataError(f"init responsibilities must be numbers; got an array of dtype {resp.dtype}.")
    resp = resp.to(dtype=X.dtype, device=X.device)
    if not torch.isfinite(resp).all() or (resp < 0).any():
        raise DataError("init responsibilities must be finite and non-negative.")
    if not torch.allclose(resp.sum(-1), torch.ones_like(resp[:, 0]), atol=1e-6):
        raise DataError("init responsibilities must sum to 1 over components for every point.")
    return resp


def initial_responsibilities(model: MixtureFamily, X: Tensor, init: InitSpec) -> Tensor | None:
    """The responsibilities ``(N, K)`` a partition or responsibility ``init`` gives, else None.

    Routines whose natural starting point is a ``q(z)`` (variational Bayes) start
    from these exactly instead of from the parameters of their M step.
    """
    check_init(init)
    if isinstance(init, (str, dict, Params)):
        return None
    array = _init_array(init)
    if array.ndim == 1:
        labels = _labels_from_array(model, X, array)
        return torch.nn.functional.one_hot(labels, model.n_components).to(X.dtype)
    if array.ndim == 2:
        return _responsibilities_from_array(model, X, array)
    return None


def initialize(model: MixtureFamily, X: Tensor, init: InitSpec = "kmeans", seed: int | None = 0,
               reg_covar: float = 1e-6, generator: torch.Generator | None = None,
               on_collapse: str = "error", sample_weight: Tensor | None = None) -> Params:
    """Starting parameters for ``model`` on data ``X`` ``(N, D)``.

    Args:
        model: the mixture specification (any family).
        X: validated data.
        init: see the module docstring.
        seed: seeds the random initializers (ignored when ``generator`` is given).
        reg_covar: added to covariance diagonals of M-step-based initializers.
        on_collapse: a singular covariance of an M-step-based initializer is an error
            (``"error"``), takes the data's covariance (``"reseed"``), or is built by
            k-means' lenient rule (``"pool"``: for routines that use only the centres).
        sample_weight: ``(N,)`` validated weights (:mod:`mixtures.core.weights`): the M steps of
            partitions and responsibilities are weighted, ``"kmeans++"`` / ``"kmeans"`` seed and
            iterate weighted, ``"random_from_data"`` picks among positive-weight points, ``"hc"``
            uses the positive-weight points unweighted; given parameters and dicts are used as
            they are (a dict's missing covariances are the unweighted data's).
    """
    if generator is None:
        generator = make_generator(seed)  # None: fresh OS entropy, as everywhere
    D = X.shape[1]
    if isinstance(init, Params):
        if init.n_features != D:
            raise ParameterError(f"init parameters have D={init.n_features} but X has {D} features.")
        return model.check_params(init.to(dtype=X.dtype, device=X.device))
    if isinstance(init, dict):
        return model.params_from_dict(init, X, reg_covar, on_collapse)
    if isinstance(init, str):
        if sample_weight is not None:
            return _weighted_start(model, X, init, generator, reg_covar, on_collapse, sample_weight)
        return _named_start(model, X, init, generator, reg_covar, on_collapse)
    check_init(init)
    array = _init_array(init)
    if array.ndim == 1:
        labels = _labels_from_array(model, X, array)
        if sample_weight is not None:
            resp = torch.nn.functional.one_hot(labels, model.n_components).to(X.dtype)
            return model.params_from_responsibilities(X, resp * sample_weight[:, None], reg_covar, on_collapse)
        return params_from_labels(model, X, labels, reg_covar, on_collapse)
    if array.ndim == 2:
        resp = _responsibilities_from_array(model, X, array)
        resp = resp if sample_weight is None else resp * sample_weight[:, None]
        return model.params_from_responsibilities(X, resp, reg_covar, on_collapse)
    raise ValueError(f"cannot initialize from {type(init).__name__} of shape {tuple(array.shape)}; "
                     "give labels (N,) or responsibilities (N, K).")


def _named_start(model: MixtureFamily, X: Tensor, init: str, generator: torch.Generator, reg_covar: float,
                 on_collapse: str) -> Params:
    K, N = model.n_components, X.shape[0]
    if init == "random":
        resp = torch.rand(N, K, generator=generator, dtype=torch.float64).to(X)
        return model.params_from_responsibilities(X, resp / resp.sum(-1, keepdim=True), reg_covar, on_collapse)
    if init == "random_from_data":
        chosen = torch.randperm(N, generator=generator)[:K].to(X.device)
        return model.params_from_centres(X, X[chosen], reg_covar, on_collapse)
    if init in ("kmeans++", "kmeans"):
        centers = kmeans_plusplus(X, K, generator)
        if init == "kmeans":
            centers = lloyd(X, centers, keep_labels=False)[0]
        return _nearest_centre_params(model, X, centers, reg_covar, on_collapse)
    if init == "hc":
        return hc_start(model, X, generator, reg_covar, on_collapse)
    raise ValueError(f"unknown init {init!r}; choose one of {list(INITIALIZERS)}, or give the model's "
                     "parameters, a dict, labels (N,) or responsibilities (N, K).")


def _weighted_start(model: MixtureFamily, X: Tensor, init: str, generator: torch.Generator, reg_covar: float,
                    on_collapse: str, sample_weight: Tensor) -> Params:
    """:func:`_named_start` with ``sample_weight`` ``(N,)`` (see :func:`initialize`)."""
    K, N = model.n_components, X.shape[0]
    if init == "random":
        resp = torch.rand(N, K, generator=generator, dtype=torch.float64).to(X)
        resp = resp / resp.sum(-1, keepdim=True) * sample_weight[:, None]
        return model.params_from_responsibilities(X, resp, reg_covar, on_collapse)
    if init == "random_from_data":
        counted = torch.nonzero(sample_weight > 0).reshape(-1)
        chosen = counted[torch.randperm(counted.shape[0], generator=generator)[:K].to(X.device)]
        return model.params_from_centres(X[counted], X[chosen], reg_covar, on_collapse)
    if init in ("kmeans++", "kmeans"):
        centers = kmeans_plusplus(X, K, generator, sample_weight)
        if init == "kmeans":
            centers = lloyd(X, centers, keep_labels=False, sample_weight=sample_weight)[0]
        return _nearest_centre_params(model, X, centers, reg_covar, on_collapse, sample_weight)
    if init == "hc":
        return hc_start(model, X[sample_weight > 0], generator, reg_covar, on_collapse)
    return _named_start(model, X, init, generator, reg_covar, on_collapse)  # raises for an unknown name


def hc_start(model: MixtureFamily, X: Tensor, generator: torch.Generator | None = None, reg_covar: float = 1e-6,
             on_collapse: str = "error", subset: int = SUBSET) -> Params:
    """mclust's start (:mod:`mixtures.init.hc`): the M step of the tree's ``K``-group cut.

    ``X`` ``(N, D)``; above ``subset`` points the tree (or the quantile classes of 1-D data) is
    built on ``subset`` points drawn by ``generator`` and the M step uses those points only.
    """
    K, N = model.n_components, X.shape[0]
    if X.shape[1] == 1:
        points = torch.randperm(N, generator=generator)[:subset].sort().values if N > subset else None
        sample = X if points is None else X[points.to(X.device)]
        return params_from_labels(model, sample, quantile_classes(sample[:, 0], K).to(X.device), reg_covar,
                                  on_collapse)
    tree = hc_tree(X, subset, generator)
    sample = X if tree.points is None else X[tree.points.to(X.device)]
    return params_from_labels(model, sample, tree.partition(K).to(X.device), reg_covar, on_collapse)
