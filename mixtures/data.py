"""Data in and out of ``mixtures``: file loaders, bundled data, synthetic mixtures.

* :func:`load` reads ``.npy``, ``.csv`` and whitespace-separated text files into
  an ``(N, D)`` float64 tensor, with errors that name the file and line.
* :func:`old_faithful` is R's ``datasets::faithful`` ``(272, 2)``, bundled (no network).
* :func:`sample_mixture`, :func:`seed004_params`, :func:`seed003_data` and
  :func:`random_mixture` make synthetic data with known true parameters;
  :func:`separation_of` measures how well separated a mixture's components are.

Everything random is seeded and reproducible bit for bit on a given machine and
library version.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixtures.core.validation import as_data, check_nonnegative_float, check_positive_int
from mixtures.errors import DataError
from mixtures.families.gaussian import MixtureParams, get_structure

__all__ = [
    "load", "old_faithful", "OLD_FAITHFUL_COLUMNS", "sample_mixture", "seed004_params",
    "seed003_data", "random_mixture", "separation_of",
    "stars_cyg", "STARS_CYG_COLUMNS", "STARS_CYG_GIANTS",
]

#: Column names of :func:`old_faithful`, in order (both in minutes).
OLD_FAITHFUL_COLUMNS: tuple[str, str] = ("eruptions", "waiting")
#: Column names of :func:`stars_cyg`: log10 of the surface temperature (K) and of the light intensity (L/L_0).
STARS_CYG_COLUMNS: tuple[str, str] = ("log_te", "log_light")
#: The rows (0-based) of :func:`stars_cyg`'s four giants, the data's known outliers: stars 11, 20, 30 and 34
#: of Rousseeuw & Leroy's table (robustbase's ``?starsCYG``); the other 43 lie on the main sequence.
STARS_CYG_GIANTS: tuple[int, ...] = (10, 19, 29, 33)

_COMMENT = "#"
_QUOTE = '"'
#: text files are decoded as UTF-8; "-sig" drops the byte-order mark spreadsheets write.
_ENCODING = "utf-8-sig"


# ----------------------------------------------------------------------------------------
# Loading files
# ----------------------------------------------------------------------------------------

def load(
    path: str | os.PathLike,
    *,
    delimiter: str | None = None,
    skip_header: int | None = None,
    mmap_mode: str | None = None,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """Read a data file into a tensor ``X: (N, D)``, one point per row.

    The format follows the extension:

    * ``.npy``: ``np.load`` (pickles refused). ``mmap_mode`` is passed through to
      ``np.load``, except that ``"r"`` maps copy-on-write (``"c"``), because torch
      tensors must be writable; writes then stay in memory and never reach the file.
      A float64 map is shared with the returned tensor (with ``dtype=None`` a
      float32 one too); other dtypes are copied.
    * ``.csv``: comma-separated text (``delimiter`` overrides the comma).
    * anything else (``.txt``, ``.dat``, ``.tsv``, ...): text with columns separated
      by any run of whitespace, like ``np.loadtxt("X.txt")`` (``delimiter`` overrides).

    Text files: ``#`` starts a comment, blank lines are ignored, fields may be
    quoted with ``"``. With ``skip_header=None`` the first non-blank line is taken
    as a header when none of its fields is a number (e.g. ``eruptions,waiting``);
    an integer skips exactly that many lines. Missing values (empty fields, ``NA``)
    are not supported: remove or impute them first.

    Args:
        path: the file.
        delimiter: field separator of text files; ``None`` means ``","`` for ``.csv``
            and whitespace otherwise.
        skip_header: lines to skip at the top of a text file; ``None`` detects a header.
        mmap_mode: ``.npy`` only: ``None``, ``"r"``, ``"r+"``, ``"c"`` (see above).
        dtype: dtype of the result; ``None`` keeps a floating file dtype.

    Returns:
        ``X: (N, D)``; a file with a single column gives ``(N, 1)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        DataError: non-numeric cells or ragged rows (with file, line and column),
            NaN/inf cells (with the line), an empty file, or a non-2-D array.
    """
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"no data file at {str(path)!r} (resolved to {str(path.resolve())!r}); "
            f"check the path (relative paths start from {os.getcwd()!r})."
        )
    suffix = path.suffix.lower()
    if mmap_mode is not None and suffix != ".npy":
        raise ValueError(f"mmap_mode applies to .npy files only; {str(path)!r} is read as text.")
    if suffix == ".npz":
        raise DataError(
            f"{str(path)!r} is an .npz archive of several arrays; open it with np.load, "
            "pick the array, and pass that array (or save it alone as .npy)."
        )
    if suffix == ".npy":
        array = _load_npy(path, mmap_mode)
    else:
        if delimiter is None and suffix == ".csv":
            delimiter = ","
        array = _load_text(path, delimiter, skip_header)
    return as_data(array, name=f"data file {str(path)!r}", dtype=dtype)


def _load_npy(path: Path, mmap_mode: str | None) -> np.ndarray:
    if mmap_mode not in (None, "r", "r+", "c"):
        raise ValueError(f"mmap_mode must be None, 'r', 'r+' or 'c'; got {mmap_mode!r}.")
    try:
        array = np.load(path, mmap_mode="c" if mmap_mode == "r" else mmap_mode, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickles; truncated or foreign files
        raise DataError(f"cannot read {str(path)!r} as a numeric .npy array: {exc}") from None
    if not array.dtype.isnative:  # torch only wraps native byte order
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _load_text(path: Path, delimiter: str | None, skip_header: int | None) -> np.ndarray:
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                  or delimiter in (_COMMENT, _QUOTE, "\n", "\r")):
        raise ValueError(f"delimiter must be a single character other than '#', '\"' and "
                         f"newlines (or None for whitespace); got {delimiter!r}.")
    if skip_header is not None:
        skip_header = check_positive_int(skip_header, "skip_header", minimum=0)
    try:
        skiprows = _detect_header(path, delimiter) if skip_header is None else skip_header
        with warnings.catch_warnings():
            # an empty file is reported below as a DataError, not as numpy's UserWarning
            warnings.filterwarnings("ignore", message=".*input contained no data")
            array = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, comments=_COMMENT,
                               skiprows=skiprows, quotechar=_QUOTE, ndmin=2, encoding=_ENCODING)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
            "UTF-8 text, or give a binary array the .npy extension."
        ) from None
    except ValueError as exc:
        # The fast C parser failed; re-read the file in Python only to say where and why.
        problem = _first_problem(path, delimiter, skiprows)
        raise DataError(problem or f"cannot read {str(path)!r} as a numeric table: {exc}") from None
    if array.size == 0:
        raise DataError(
            f"{str(path)!r} holds no data rows"
            + (f" after skipping {skiprows} header line(s)." if skiprows else ".")
        )
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        _raise_non_finite(path, delimiter, skiprows, array, finite)
    return array


def _split(line: str, delimiter: str | None) -> list[str] | None:
    """Fields of one text line (comments and quotes removed), ``None`` if blank."""
    content = line.split(_COMMENT, 1)[0].strip()
    if not content:
        return None
    return [field.strip().strip(_QUOTE).strip() for field in content.split(delimiter)]


def _is_number(field: str) -> bool:
    if "_" in field:  # Python's float() accepts "1_000"; numpy's parser does not
        return False
    try:
        float(field)
    except ValueError:
        return False
    return True


def _data_lines(path: Path, delimiter: str | None, skiprows: int) -> Iterator[tuple[int, list[str]]]:
    """``(line number (1-based), fields)`` of every data line, as ``np.loadtxt`` sees them."""
    with open(path, encoding=_ENCODING) as handle:
        for number, line in enumerate(handle, start=1):
            if number <= skiprows:
                continue
            fields = _split(line, delimiter)
            if fields is not None:
                yield number, fields


def _detect_header(path: Path, delimiter: str | None) -> int:
    """Lines to skip: through the first non-blank line if none of its fields is a number."""
    with closing(_data_lines(path, delimiter, 0)) as lines:
        for number, fields in lines:
            return number if not any(_is_number(field) for field in fields) else 0
    return 0


def _first_problem(path: Path, delimiter: str | None, skiprows: int) -> str | None:
    """Describe the first non-numeric cell or ragged row (used only after a parse failure)."""
    n_columns = None
    sep = "whitespace" if delimiter is None else repr(delimiter)
    for number, fields in _data_lines(path, delimiter, skiprows):
        if n_columns is None:
            n_columns, first_line = len(fields), number
        elif len(fields) != n_columns:
            return (f"{str(path)!r} line {number} has {len(fields)} field(s) but line {first_line} "
                    f"has {n_columns} (fields separated by {sep}); every row needs the same "
                    "number of columns.")
        for column, field in enumerate(fields, start=1):
            if not _is_number(field):
                hint = ("missing values are not supported: remove or impute that row"
                        if field.upper() in ("", "NA", "N/A", "NULL", "?")
                        else f"check the delimiter (fields are separated by {sep})"
                        + (" or pass skip_header=1 if that line is a header" if number == first_line
                           else ""))
                return (f"{str(path)!r} line {number}, column {column}: {field!r} is not a "
                        f"number; {hint}.")
    return None


def _raise_non_finite(path: Path, delimiter: str | None, skiprows: int, array: np.ndarray,
                      finite: np.ndarray) -> None:
    bad_rows = np.flatnonzero(~finite)
    row = int(bad_rows[0])
    column = int(np.flatnonzero(~np.isfinite(array[row]))[0])
    with closing(_data_lines(path, delimiter, skiprows)) as lines:
        number = next(number for index, (number, _) in enumerate(lines) if index == row)
    raise DataError(
        f"{str(path)!r} line {number} (data row {row}), column {column + 1}: value "
        f"{array[row, column]} is not finite; {bad_rows.size} row(s) hold NaN or infinite "
        "values. Remove or impute those rows before fitting."
    )


# ----------------------------------------------------------------------------------------
# Bundled data
# ----------------------------------------------------------------------------------------

def old_faithful() -> Tensor:
    """Old Faithful geyser data (R's ``datasets::faithful``): ``X: (272, 2)`` float64.

    Columns (see :data:`OLD_FAITHFUL_COLUMNS`): ``eruptions``, the eruption time in
    minutes (recorded to 3 decimals), and ``waiting``, the waiting time to the next
    eruption in minutes (whole minutes, so with many ties). Source: Härdle (1991),
    *Smoothing Techniques with Implementation in S*; see also Azzalini & Bowman (1990),
    *Applied Statistics* 39, 357-365. Provenance: ``mixtures/datasets/README.md``.

    Returns a fresh tensor on every call (read from the installed package, no network).
    """
    with resources.as_file(resources.files("mixtures.datasets") / "old_faithful.csv") as path:
        X = load(path)
    if tuple(X.shape) != (272, len(OLD_FAITHFUL_COLUMNS)):  # a damaged installation
        raise DataError(f"bundled old_faithful.csv has shape {tuple(X.shape)}, expected (272, 2); "
                        "reinstall mixtures.")
    return X


def _bundled(name: str, shape: tuple[int, int]) -> Tensor:
    """The bundled ``mixtures/datasets/<name>.csv`` as float64 ``shape`` (a damaged file is an error)."""
    with resources.as_file(resources.files("mixtures.datasets") / f"{name}.csv") as path:
        X = load(path)
    if tuple(X.shape) != shape:
        raise DataError(f"bundled {name}.csv has shape {tuple(X.shape)}, expected {shape}; reinstall mixtures.")
    return X


def iris() -> Tensor:
    """Fisher's (Anderson's) iris measurements, R's ``datasets::iris`` without the species:
    ``X: (150, 4)`` float64, sepal length, sepal width, petal length, petal width (cm), the
    50 setosa, 50 versicolor, 50 virginica rows in R's order. Provenance: ``mixtures/datasets/README.md``."""
    return _bundled("iris", (150, 4))


def diabetes() -> Tensor:
    """Reaven & Miller's (1979) chemical diabetes data, mclust's ``diabetes`` without the class:
    ``X: (145, 3)`` float64, ``glucose``, ``insulin`` (areas under the plasma curves in an oral
    glucose tolerance test) and ``sspg`` (steady-state plasma glucose), in mclust's row order.
    Provenance: ``mixtures/datasets/README.md``."""
    return _bundled("diabetes", (145, 3))


def stars_cyg() -> Tensor:
    """The Hertzsprung-Russell diagram of the star cluster CYG OB1 (robustbase's ``starsCYG``):
    ``X: (47, 2)`` float64, log surface temperature and log light intensity (:data:`STARS_CYG_COLUMNS`),
    in Rousseeuw & Leroy's (1987, table 3) order. 43 stars lie on the main sequence; the four giants
    (rows :data:`STARS_CYG_GIANTS`) are the data's known outliers. Provenance: ``mixtures/datasets/README.md``."""
    return _bundled("stars_cyg", (47, 2))


# ----------------------------------------------------------------------------------------
# Synthetic data
# ----------------------------------------------------------------------------------------

def sample_mixture(params: MixtureParams, n: int, seed: int | None = 0) -> tuple[Tensor, Tensor]:
    """Draw ``n`` points from ``params``: returns ``(X (n, D), labels (n,))``.

    ``labels`` (int64) are the components that generated each point. A thin
    wrapper over :meth:`MixtureParams.sample`; the same ``seed`` gives the same draw.
    """
    if not isinstance(params, MixtureParams):
        raise TypeError(f"params must be a MixtureParams; got {type(params).__name__}.")
    return params.sample(n, seed)


def seed004_params() -> MixtureParams:
    """True parameters of seed notebook 004 (K=2, D=2, ``"full"``, float64).

    weights ``[0.3, 0.7]``; locs ``[[1, 1], [-1, -1]]``; covariances ``I`` and ``0.5 I``.
    The notebook drew 500 points: ``sample_mixture(seed004_params(), 500)``.
    """
    return MixtureParams(
        torch.tensor([0.3, 0.7], dtype=torch.float64),
        torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64),
        torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.0], [0.0, 0.5]]], dtype=torch.float64),
        covariance_type="full",
    )


def seed003_data(
    n_components: int = 3,
    n_features: int = 2,
    points_per_component: int = 1000,
    seed: int = 3,
) -> tuple[Tensor, Tensor, MixtureParams]:
    """The data of seed notebook 003, reproduced draw for draw.

    With ``rs = np.random.RandomState(seed)`` (the generator behind the notebook's
    ``np.random.seed(3)``), in this order: ``mean = rs.rand(K, D) * 20 - 10``; then for
    each component ``i``: ``A = rs.rand(D, D + 10)``, ``cov_i = A @ A.T``,
    ``x_i = rs.multivariate_normal(mean[i], cov_i, points_per_component)``. The blocks
    are stacked in component order.

    Returns:
        ``X: (K * points_per_component, D)`` float64, ``labels: (K * points_per_component,)``
        int64 (component ``i`` fills rows ``i * ppc`` to ``(i + 1) * ppc - 1``), and the true
        ``MixtureParams`` (equal weights, ``mean``, ``cov_i``; ``"full"``).
    """
    k = check_positive_int(n_components, "n_components")
    d = check_positive_int(n_features, "n_features")
    ppc = check_positive_int(points_per_component, "points_per_component")
    rs = np.random.RandomState(_check_seed(seed, allow_none=False))
    mean = rs.rand(k, d) * 20 - 10
    covs = np.empty((k, d, d))
    x = np.empty((k, ppc, d))
    for i in range(k):  # one draw per component, in the notebook's order
        A = rs.rand(d, d + 10)
        covs[i] = A @ A.T
        x[i] = rs.multivariate_normal(mean[i], covs[i], ppc)
    params = MixtureParams(torch.full((k,), 1.0 / k, dtype=torch.float64), torch.from_numpy(mean),
                           torch.from_numpy(covs), covariance_type="full")
    labels = torch.arange(k).repeat_interleave(ppc)
    return torch.from_numpy(x.reshape(k * ppc, d)), labels, params


def random_mixture(
    n_components: int,
    n_features: int,
    *,
    separation: float = 2.0,
    imbalance: float = 1.0,
    covariance_type: str = "full",
    max_condition: float = 10.0,
    seed: int | None = 0,
) -> MixtureParams:
    """A random mixture whose components are exactly ``separation``-separated.

    Separation is Dasgupta's c-separation with the largest eigenvalue over *all*
    components (see :func:`separation_of`): the closest pair of means satisfies
    ``min ||μ_i - μ_j|| = c * sqrt(D * max_k λ_max(Σ_k))`` with ``c = separation``,
    *exactly* (up to rounding, relative error ~1e-15). The means are not rejection
    sampled: their layout is drawn once and then scaled to the requested ``c``, so
    for a fixed seed, changing ``separation`` only rescales the same means.

    Construction (all from ``np.random.default_rng(seed)``, in this order):

    * means: a well-spread layout, the greedy farthest-point choice of ``K`` among
      ``max(64, 16 K)`` uniform points in ``[-1, 1]^D`` (so no pair is much closer than
      the rest), shuffled, centred at the origin, then scaled as above;
    * covariances: eigenvalues log-uniform in ``[κ^{-1/2}, κ^{1/2}]`` with
      ``κ = max_condition``, so every covariance (and the ratio of any two
      eigenvalues in the mixture) has condition number at most ``κ``.
      ``"full"``: a random orientation per component (Haar orthogonal matrix);
      ``"tied"``: one such matrix shared; ``"diag"``: axis-aligned;
      ``"spherical"``: one variance per component.
    * weights: ``w_k ∝ imbalance^(-k)``, so ``w_k / w_{k+1} = imbalance``
      (``1`` = equal weights; ``> 1`` makes component 0 the largest). No randomness.

    Args:
        n_components: ``K >= 1``. n_features: ``D >= 1``.
        separation: ``c >= 0`` (``c = 0`` puts every mean at the origin; with ``K = 1``
            the single mean is at the origin).
        imbalance: ratio of consecutive weights, ``> 0``.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
        max_condition: ``κ >= 1``, bound on condition numbers.
        seed: integer seed; ``None`` draws fresh entropy from the OS.

    Returns:
        ``MixtureParams`` (float64) with ``weights (K,)``, ``locs (K, D)`` and
        covariances of the requested type.
    """
    K = check_positive_int(n_components, "n_components")
    D = check_positive_int(n_features, "n_features")
    c = check_nonnegative_float(separation, "separation")
    imbalance = check_nonnegative_float(imbalance, "imbalance")
    if imbalance == 0:
        raise ValueError("imbalance must be > 0 (it is the ratio of consecutive weights).")
    kappa = check_nonnegative_float(max_condition, "max_condition")
    if kappa < 1:
        raise ValueError(f"max_condition must be >= 1; got {max_condition!r}.")
    cov_type = get_structure(covariance_type)
    rng = np.random.default_rng(_check_seed(seed, allow_none=True))

    # Means first, so one seed gives the same layout for every covariance type.
    layout = _spread_points(rng, K, D)
    half_log_kappa = 0.5 * math.log(kappa)

    def eigenvalues(*shape: int) -> np.ndarray:
        return np.exp(rng.uniform(-half_log_kappa, half_log_kappa, size=shape))

    if cov_type.storage == "tril":  # random orientations: one per component, or one shared
        n_matrices = 1 if cov_type.shared else K
        Q = _haar_orthogonal(rng, n_matrices, D)
        covariances = (Q * eigenvalues(n_matrices, 1, D)) @ Q.transpose(0, 2, 1)
        covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
        if cov_type.shared:
            covariances = covariances[0]
    elif cov_type.isotropic:  # one variance per component
        covariances = eigenvalues(K)
    else:  # axis-aligned variances
        covariances = eigenvalues(K, D)

    log_weights = -np.arange(K) * math.log(imbalance)
    weights = np.exp(log_weights - np.logaddexp.reduce(log_weights))
    weights = weights / weights.sum()  # exact simplex up to one rounding
    unit = MixtureParams(torch.from_numpy(weights), torch.from_numpy(layout),
                         torch.from_numpy(covariances), cov_type.name)
    if K == 1:
        return unit
    # One definition of separation: scale the layout by what separation_of measures.
    return unit.replace(locs=unit.locs * (c / separation_of(unit)))


def separation_of(params: MixtureParams) -> float:
    """Achieved c-separation of a mixture (Dasgupta, 1999), global form.

    ``c = min_{i<j} ||μ_i - μ_j|| / sqrt(D * max_k λ_max(Σ_k))``: the distance between
    the closest pair of means in units of the widest standard deviation of any
    component, scaled by ``sqrt(D)``. ``c ≈ 2`` is well separated, ``c ≈ 1/2``
    overlaps strongly. Returns ``inf`` for a single component.
    """
    if not isinstance(params, MixtureParams):
        raise TypeError(f"params must be a MixtureParams; got {type(params).__name__}.")
    K, D = params.n_components, params.n_features
    if K == 1:
        return math.inf
    locs = params.locs.to(torch.float64)
    # direct differences (not cdist's matmul shortcut) keep distances exact to rounding
    distances = (locs[:, None, :] - locs[None, :, :]).norm(dim=-1)
    upper = torch.triu_indices(K, K, offset=1)
    min_distance = distances[upper[0], upper[1]].min()
    largest = torch.linalg.eigvalsh(params.covariances.to(torch.float64)).amax()
    return float(min_distance / torch.sqrt(D * largest))


def _spread_points(rng: np.random.Generator, K: int, D: int) -> np.ndarray:
    """``(K, D)`` well-spread points: greedy farthest-point choice among uniform candidates."""
    candidates = rng.uniform(-1.0, 1.0, size=(max(64, 16 * K), D))
    chosen = [0]
    nearest = np.linalg.norm(candidates - candidates[0], axis=1)  # distance to the chosen set
    for _ in range(K - 1):  # loop over components, not points
        index = int(np.argmax(nearest))
        chosen.append(index)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[index], axis=1))
    points = candidates[rng.permutation(chosen)]
    return points - points.mean(axis=0)


def _haar_orthogonal(rng: np.random.Generator, n: int, D: int) -> np.ndarray:
    """``(n, D, D)`` uniformly random orthogonal matrices (QR of Gaussians, signs fixed)."""
    Q, R = np.linalg.qr(rng.standard_normal((n, D, D)))
    # without the sign fix QR's convention biases the distribution away from Haar
    return Q * np.sign(np.diagonal(R, axis1=1, axis2=2))[:, None, :]


def _check_seed(seed: Any, allow_none: bool) -> int | None:
    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer{' or None' if allow_none else ''}; "
                         f"got {seed!r}.")
    return int(seed)


# ----------------------------------------------------------------------------------------
# Missing values
# ----------------------------------------------------------------------------------------

def remove_at_random(X: Any, rate: float, seed: int | None = 0) -> Tensor:
    """``X`` ``(N, D)`` with entries removed completely at random: each entry becomes NaN with probability
    ``rate`` (seeded), except that every row keeps one observed entry (a row that lost all of them gets one
    back, at a coordinate drawn uniformly), so ``fit(..., missing="marginalize")`` accepts the result.
    """
    X = as_data(X)
    rate = check_nonnegative_float(rate, "rate")
    if rate >= 1.0:
        raise ValueError(f"rate must be in [0, 1) (the fraction of entries removed); got {rate!r}.")
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(_check_seed(seed, allow_none=False))
    removed = torch.rand(X.shape, generator=generator, dtype=torch.float64) < rate
    kept = torch.randint(X.shape[1], (X.shape[0],), generator=generator)
    empty = removed.all(1)
    removed[empty, kept[empty]] = False
    return torch.where(removed.to(X.device), torch.tensor(float("nan"), dtype=X.dtype, device=X.device), X)


__all__.append("remove_at_random")
