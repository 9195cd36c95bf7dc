"""Each task's data: loaded or drawn once per run, seeded from the config.

Synthetic data is drawn with seeds derived from its spec (:func:`~.tasks.derived_seed`),
so the same config gives the same points on every machine; ``resample: true`` draws
fresh training data for every fit seed.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

from mixtures import data
from mixtures.core.files import file_sha256
from mixtures.datafile import read_table
from mixtures.errors import DataError
from mixtures.experiment.config.data import DataConfig
from mixtures.experiment.config.errors import ConfigError
from mixtures.experiment.tasks import Task, canonical, derived_seed
from mixtures.families.gaussian.params import MixtureParams


@dataclass
class DataBundle:
    """Training data ``X (N, D)``; for synthetic data also the true ``labels (N,)``,
    the ``truth`` and an independent held-out sample ``X_test (M, D)``; for a file with a label
    column its ``labels (N,)`` (codes of ``label_names``) without a truth.

    ``feature_names``: the data's column names when known (Old Faithful's, a file's
    header), else ``None``. ``digest``: :func:`data_digest`, what a stored fit's record
    is checked against (a file edited under a finished run reruns its fits).
    """

    X: Tensor
    labels: Tensor | None = None
    truth: MixtureParams | None = None
    X_test: Tensor | None = None
    feature_names: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None  # a file's label column: label_names[c] is the class of code c
    digest: str = ""  # SHA-256 of the data's content (see data_digest)
    #: ``(N,)`` bool: the planted outliers (synthetic data with ``outliers``; their label is the truth's K), or a
    #: real data set's known ones (``stars_cyg``'s giants)
    outliers: Tensor | None = None
    #: ``(N,)`` per-point sample weights (a file's ``weight_column``), passed to ``fit`` as ``sample_weight``
    sample_weight: Tensor | None = None


class DataCache:
    """Generates or loads each distinct dataset once per run."""

    def __init__(self, source: str = "<config>"):
        self.source = source
        self._cache: dict[str, DataBundle] = {}

    def get(self, task: Task) -> DataBundle:
        spec = task.dataset
        replicate = task.seed if spec.resample else None
        key = canonical([spec.to_dict(), task.true_n_components, replicate])
        if key not in self._cache:
            try:
                self._cache[key] = make_data(spec, task.true_n_components, replicate)
            except (DataError, OSError, ValueError) as error:
                raise ConfigError(self.source, "data", f"data {spec.name!r} cannot be made: {error}",
                                  "a readable data file, or valid synthetic parameters") from None
        return self._cache[key]


def make_data(spec: DataConfig, true_k: int | None, replicate: int | None) -> DataBundle:
    """The data of one dataset spec (``replicate``: the fit seed when it resamples, else ``None``), with its digest.

    With ``missing``, the complete data is made first (the same points at every rate) and entries of the
    training points are then removed by :func:`remove_entries`; held-out points stay complete.
    """
    file_hash = file_sha256(spec.path) if spec.kind == "file" else None  # before reading: an edit in between shows
    bundle = _make_data(spec.model_copy(update={"missing": None}), true_k, replicate)
    if spec.missing is not None:
        bundle.X = remove_entries(bundle.X, spec.missing, data_digest(bundle, file_hash), replicate)
    bundle.digest = data_digest(bundle, file_hash)
    return bundle


def remove_entries(X: Tensor, rate: float, complete_digest: str, replicate: int | None) -> Tensor:
    """``X`` ``(N, D)`` with entries removed completely at random (NaN) by :func:`mixtures.data.remove_at_random`.

    Seeded by the complete data's digest (and the resampling replicate), not by the rate: with one seed the
    uniform draws are the same at every rate, so the entries removed at 0.1 are also removed at 0.2 (nested
    masks, common random numbers across a sweep; but for the entry a row emptied at 0.2 gets back). Every row
    keeps one entry, so the fraction removed is ``rate - rate^D / D`` in expectation (``D`` features).
    """
    return data.remove_at_random(X, rate, seed=derived_seed("missing", complete_digest, replicate))


def data_digest(bundle: DataBundle, file_hash: str | None = None) -> str:
    """SHA-256 of what the fits see: the file's bytes (``file_hash``), and the dtype, shape and bytes
    of the points, labels, held-out points and true parameters (generated data is hashed as drawn)."""
    digest = hashlib.sha256(f"file:{file_hash}".encode())
    truth = bundle.truth
    tensors = [bundle.X, bundle.labels, bundle.X_test]
    if bundle.sample_weight is not None:  # only when given: unweighted data keeps its digest
        tensors.append(bundle.sample_weight)
    if truth is not None:
        tensors += [truth.weights, truth.locs, truth.covariances]
    for tensor in tensors:
        if tensor is None:
            digest.update(b"none")
            continue
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _make_data(spec: DataConfig, true_k: int | None, replicate: int | None) -> DataBundle:
    if spec.kind == "old_faithful" or spec.dataset == "old_faithful":  # both columns are in minutes
        return DataBundle(data.old_faithful(),
                          feature_names=tuple(f"{name} (min)" for name in data.OLD_FAITHFUL_COLUMNS))
    if spec.kind == "stars_cyg":  # one main sequence; the four giants are the known outliers (their own class)
        giants = torch.zeros(47, dtype=torch.bool)
        giants[list(data.STARS_CYG_GIANTS)] = True
        return DataBundle(data.stars_cyg(), giants.long(), feature_names=data.STARS_CYG_COLUMNS,
                          label_names=("main sequence", "giant"), outliers=giants)
    if spec.kind == "bundled":  # the CSV's header names the features
        with resources.as_file(resources.files("mixtures.datasets") / f"{spec.dataset}.csv") as path:
            header = path.read_text().splitlines()[0]
        return DataBundle(getattr(data, spec.dataset)(), feature_names=tuple(header.split(",")))
    if spec.kind == "file":
        table = read_table(spec.path, columns=spec.columns, label_column=spec.label_column,
                           index_column=spec.index_column, header=spec.header, format=spec.format or "auto",
                           standardize=bool(spec.standardize), weight_column=spec.weight_column)
        return DataBundle(table.X, table.labels, feature_names=table.feature_names, label_names=table.label_names,
                          sample_weight=table.weights)
    truth = true_params(spec, true_k)
    seeds = spec.to_dict()
    seeds.pop("name", None)  # renaming a dataset keeps its points
    rate = seeds.pop("outliers", None)  # every outlier rate draws its inliers from the same seed
    if spec.truth == "seed003" and replicate is None:
        X, labels, _ = data.seed003_data(spec.n_components, spec.n_features, spec.n // spec.n_components,
                                         seed=spec.seed)
    else:
        X, labels = data.sample_mixture(truth, spec.n, seed=derived_seed("train", seeds, true_k, replicate))
    X_test = None
    if spec.n_test:
        X_test = data.sample_mixture(truth, spec.n_test, seed=derived_seed("test", seeds, true_k, replicate))[0]
    if rate is None:
        return DataBundle(X, labels, truth, X_test)
    X, labels, planted = plant_outliers(X, labels, rate, truth.n_components,
                                        derived_seed("outliers", seeds, rate, true_k, replicate))
    return DataBundle(X, labels, truth, X_test, outliers=planted)


def plant_outliers(X: Tensor, labels: Tensor, rate: float, label: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The last ``round(rate N)`` of the ``N`` points replaced by uniform draws over the bounding box of the
    others widened by half its size on every side: ``(X (N, D), labels (N,), planted (N,) bool)``, the
    outliers labelled ``label`` (the truth's K: their own class for ARI)."""
    n_out = int(round(rate * X.shape[0]))
    planted = torch.zeros(X.shape[0], dtype=torch.bool)
    if n_out == 0:
        return X, labels, planted
    inliers = X[:X.shape[0] - n_out]
    low, high = inliers.min(0).values, inliers.max(0).values
    low, high = low - (high - low) / 2, high + (high - low) / 2
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(n_out, X.shape[1], generator=generator, dtype=X.dtype)
    planted[X.shape[0] - n_out:] = True
    X = torch.cat([inliers, low + uniform * (high - low)])
    labels = torch.cat([labels[:X.shape[0] - n_out], labels.new_full((n_out,), label)])
    return X, labels, planted


def header_names(path: str | Path, delimiter: str | None, n_features: int) -> tuple[str, ...] | None:
    """The column names of a text file's header line (``None``: no header, or not text)."""
    if Path(path).suffix.lower() == ".npy":
        return None
    try:
        with open(path, encoding="utf-8-sig") as stream:
            line = next((line for line in stream if line.strip() and not line.lstrip().startswith("#")), "")
    except (OSError, UnicodeDecodeError):
        return None
    if delimiter is None and "," in line:
        delimiter = ","
    fields = next(csv.reader([line], delimiter=delimiter)) if delimiter else line.split()
    names = tuple(field.strip().strip('"') for field in fields)
    if len(names) != n_features or not all(names):
        return None
    for name in names:
        try:
            float(name)
            return None  # a data row, not a header
        except ValueError:
            pass
    return names


def true_params(spec: DataConfig, true_k: int | None) -> MixtureParams:
    """The true mixture of a synthetic dataset (float64)."""
    if spec.truth == "seed004":
        return data.seed004_params()
    if spec.truth == "given":
        return MixtureParams(spec.weights, spec.means, spec.covariances, "full")
    if spec.truth == "seed003":
        # the notebook's parameters depend on its points per component (draws interleave)
        return data.seed003_data(spec.n_components, spec.n_features, spec.n // spec.n_components, seed=spec.seed)[2]
    # Not seeded by separation/imbalance: random_mixture keeps the layout for one seed and
    # rescales it, so a separation sweep compares the same mixture pulled apart.
    seed = derived_seed("truth", spec.seed, true_k, spec.n_features, spec.covariance_type)
    return data.random_mixture(true_k, spec.n_features, separation=spec.separation, imbalance=spec.imbalance,
                               covariance_type=spec.covariance_type, seed=seed)
