"""mixtures.data: file loading, the bundled Old Faithful data, synthetic mixtures."""

import math
from importlib import resources

import numpy as np
import pytest
import torch

from mixtures import DataError, MixtureParams, data

from conftest import COVARIANCE_TYPES, assert_close

# ----------------------------------------------------------------------------------------
# Old Faithful
# ----------------------------------------------------------------------------------------


def test_old_faithful_matches_r_datasets_faithful():
    X = data.old_faithful()
    assert X.shape == (272, 2) and X.dtype == torch.float64
    assert data.OLD_FAITHFUL_COLUMNS == ("eruptions", "waiting")
    # summary statistics of R's datasets::faithful as R prints them (7 significant digits)
    assert_close(X.mean(0), [3.487783, 70.89706], rtol=0, atol=1e-5)
    assert_close(X.std(0), [1.141371, 13.59497], rtol=0, atol=1e-5)  # sd with n - 1, like R
    assert_close(X[:3], [[3.600, 79], [1.800, 54], [3.333, 74]], rtol=0, atol=0)
    assert_close(X[-1], [4.467, 74], rtol=0, atol=0)
    # column totals pin every value more tightly than the rounded means
    assert_close(X.sum(0), [948.677, 19284], rtol=1e-13, atol=0)
    # waiting is recorded in whole minutes: many ties (14 rows at 83)
    assert torch.equal(X[:, 1], X[:, 1].round())
    assert int((X[:, 1] == 83).sum()) == 14
    assert X[:, 0].min() == 1.6 and X[:, 0].max() == 5.1
    assert X[:, 1].min() == 43 and X[:, 1].max() == 96


def test_old_faithful_returns_a_fresh_tensor():
    X = data.old_faithful()
    X[0, 0] = -1.0
    assert data.old_faithful()[0, 0] == 3.6


def test_bundled_csv_has_a_header_and_provenance():
    folder = resources.files("mixtures.datasets")
    lines = (folder / "old_faithful.csv").read_text().splitlines()
    assert lines[0] == "eruptions,waiting" and lines[1] == "3.600,79" and len(lines) == 273
    readme = (folder / "README.md").read_text()
    assert "Härdle" in readme and "Azzalini" in readme and "faithful" in readme


# ----------------------------------------------------------------------------------------
# load: round trips
# ----------------------------------------------------------------------------------------

@pytest.fixture
def table():
    return np.random.default_rng(0).normal(size=(7, 3)) * [1.0, 10.0, 1e-3]


def test_load_whitespace_text_like_seed_001(tmp_path, table):
    path = tmp_path / "X.txt"
    np.savetxt(path, table, delimiter=" ", fmt="%.17g")  # what np.loadtxt("X.txt", delimiter=" ") reads
    X = data.load(path)
    assert X.dtype == torch.float64
    assert_close(X, table, rtol=0, atol=0)
    assert_close(data.load(str(path)), table, rtol=0, atol=0)


def test_load_text_with_tabs_runs_of_spaces_comments_and_blank_lines(tmp_path):
    path = tmp_path / "points.tsv"
    path.write_text("# measured 2024\n1.5\t2\n\n  3   4e1  # trailing comment\n-5 +6.25\n")
    assert_close(data.load(path), [[1.5, 2], [3, 40], [-5, 6.25]], rtol=0, atol=0)
    dat = tmp_path / "points.dat"
    dat.write_text("x y\n1 2\n3 4\n")  # header detected in plain text files too
    assert_close(data.load(dat), [[1, 2], [3, 4]], rtol=0, atol=0)


@pytest.mark.parametrize("header", [None, "x0,x1,x2", '"a","b","c"', "\ufeffx0,x1,x2"])
def test_load_csv_with_and_without_header(tmp_path, table, header):
    path = tmp_path / "data.csv"
    np.savetxt(path, table, delimiter=",", fmt="%.17g", header=header or "", comments="")
    if header is None:  # savetxt writes an empty first line for header="": drop it
        path.write_text(path.read_text().lstrip("\n"))
    assert_close(data.load(path), table, rtol=0, atol=0)


def test_load_csv_written_by_r_with_row_names(tmp_path):
    # R's write.csv(faithful[1:2, ]) output: quoted header with an empty first name
    path = tmp_path / "faithful.csv"
    path.write_text('"","eruptions","waiting"\n"1",3.6,79\n"2",1.8,54\n')
    assert_close(data.load(path), [[1, 3.6, 79], [2, 1.8, 54]], rtol=0, atol=0)


def test_load_explicit_skip_header_and_delimiter(tmp_path):
    path = tmp_path / "semicolons.csv"
    path.write_text("exported by tool 1.0\n1;2\n3;4\n")  # numeric-looking junk needs skip_header
    assert_close(data.load(path, delimiter=";", skip_header=1), [[1, 2], [3, 4]], rtol=0, atol=0)
    numeric_first = tmp_path / "n.csv"
    numeric_first.write_text("1,2\n3,4\n")
    assert_close(data.load(numeric_first, skip_header=1), [[3, 4]], rtol=0, atol=0)
    assert_close(data.load(numeric_first, skip_header=0), [[1, 2], [3, 4]], rtol=0, atol=0)


def test_load_one_column_gives_n_by_1(tmp_path):
    txt = tmp_path / "x.txt"
    txt.write_text("1\n2\n3\n")
    assert data.load(txt).shape == (3, 1)
    npy = tmp_path / "x.npy"
    np.save(npy, np.arange(4.0))
    assert_close(data.load(npy), [[0.0], [1.0], [2.0], [3.0]], rtol=0, atol=0)


def test_load_npy_round_trip_and_dtypes(tmp_path, table):
    path = tmp_path / "X.npy"
    np.save(path, table)
    assert_close(data.load(path), table, rtol=0, atol=0)
    np.save(path, table.astype(np.float32))
    assert data.load(path).dtype == torch.float64
    assert data.load(path, dtype=None).dtype == torch.float32
    np.save(path, table.astype(">f8"))  # big-endian files are converted to native order
    assert_close(data.load(path), table, rtol=0, atol=0)
    np.save(path, np.arange(6).reshape(3, 2))  # integers become float64
    assert_close(data.load(path), [[0, 1], [2, 3], [4, 5]], rtol=0, atol=0)


def test_load_npy_memory_map_leaves_the_file_untouched(tmp_path, table):
    path = tmp_path / "X.npy"
    np.save(path, table)
    for mode in ("r", "c", "r+"):
        assert_close(data.load(path, mmap_mode=mode), table, rtol=0, atol=0)
    X = data.load(path, mmap_mode="r")  # read-only maps are copy-on-write
    X[0, 0] = 123.0
    assert np.load(path)[0, 0] == table[0, 0]


# ----------------------------------------------------------------------------------------
# load: errors
# ----------------------------------------------------------------------------------------

def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        data.load(tmp_path / "nothere.csv")


def test_non_numeric_cell_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("x,y\n1,2\n3,abc\n5,6\n")
    with pytest.raises(DataError, match=r"bad\.csv' line 3, column 2: 'abc' is not a number"):
        data.load(path)


def test_mixed_first_line_is_data_and_error_suggests_skip_header(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("1.0,abc\n2,3\n")
    with pytest.raises(DataError, match=r"line 1, column 2.*skip_header=1"):
        data.load(path)


@pytest.mark.parametrize("cell", ["", "NA"])
def test_missing_values_are_reported_as_such(tmp_path, cell):
    path = tmp_path / "gaps.csv"
    path.write_text(f"1,2\n3,{cell}\n")
    with pytest.raises(DataError, match=r"line 2, column 2.*missing values are not supported"):
        data.load(path)


def test_nan_cell_names_the_line(tmp_path):
    path = tmp_path / "nan.txt"
    path.write_text("# header comment\nx y\n1 2\n\n3 nan\n4 inf\n")
    with pytest.raises(DataError, match=r"nan\.txt' line 5 \(data row 1\), column 2.*2 row\(s\)"):
        data.load(path)
    npy = tmp_path / "nan.npy"
    np.save(npy, np.array([[1.0, 2.0], [np.nan, 3.0]]))
    with pytest.raises(DataError, match=r"nan\.npy.*row 1"):
        data.load(npy)


def test_ragged_rows_name_the_line(tmp_path):
    path = tmp_path / "ragged.txt"
    path.write_text("1 2\n3 4\n5 6 7\n")
    with pytest.raises(DataError, match=r"line 3 has 3 field\(s\) but line 1 has 2"):
        data.load(path)


def test_other_unusable_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        data.load(empty)
    binary = tmp_path / "blob.dat"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DataError, match="not UTF-8 text"):
        data.load(binary)
    strings = tmp_path / "s.npy"
    np.save(strings, np.array(["a", "b"]))
    with pytest.raises(DataError, match="must be numeric"):
        data.load(strings)
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match=r"shape \(N, D\)"):
        data.load(cube)
    archive = tmp_path / "a.npz"
    np.savez(archive, x=np.zeros(3))
    with pytest.raises(DataError, match="npz"):
        data.load(archive)
    text = tmp_path / "t.txt"
    text.write_text("1 2\n")
    with pytest.raises(ValueError, match="mmap_mode"):
        data.load(text, mmap_mode="r")
    with pytest.raises(ValueError, match="delimiter"):
        data.load(text, delimiter="#")
    with pytest.raises(ValueError, match="skip_header"):
        data.load(text, skip_header=-1)


# ----------------------------------------------------------------------------------------
# Seed notebooks
# ----------------------------------------------------------------------------------------

def test_seed004_params():
    params = data.seed004_params()
    assert params.covariance_type == "full" and params.dtype == torch.float64
    assert_close(params.weights, [0.3, 0.7], rtol=0, atol=0)
    assert_close(params.locs, [[1, 1], [-1, -1]], rtol=0, atol=0)
    assert_close(params.covariances, [[[1, 0], [0, 1]], [[0.5, 0], [0, 0.5]]], rtol=0, atol=1e-15)
    # ||(1,1) - (-1,-1)|| / sqrt(D * 1) = 2 sqrt 2 / sqrt 2
    assert data.separation_of(params) == pytest.approx(2.0, rel=1e-15)


def _notebook_003_gen_data(k, d, ppc):
    """Seed notebook 003's gen_data, verbatim apart from plotting (global numpy seeding)."""
    state = np.random.get_state()
    try:
        np.random.seed(3)
        x = np.ndarray((k, ppc, d))
        mean = np.random.rand(k, d) * 20 - 10
        covs = []
        for i in range(k):
            cov = np.random.rand(d, d + 10)
            cov = cov @ cov.T
            covs.append(cov)
            x[i] = np.random.multivariate_normal(mean[i], cov, ppc)
        return x.reshape(-1, d), mean, np.stack(covs)
    finally:
        np.random.set_state(state)  # leave the global generator as we found it


@pytest.mark.parametrize("k,d,ppc", [(3, 2, 1000), (2, 4, 50)])
def test_seed003_data_reproduces_the_notebook(k, d, ppc):
    expected_x, expected_mean, expected_covs = _notebook_003_gen_data(k, d, ppc)
    X, labels, params = data.seed003_data(k, d, ppc)
    assert X.shape == (k * ppc, d) and X.dtype == torch.float64
    assert_close(X, expected_x, rtol=0, atol=0)
    assert torch.equal(labels, torch.arange(k).repeat_interleave(ppc))
    assert_close(params.weights, torch.full((k,), 1 / k, dtype=torch.float64), rtol=0, atol=0)
    assert_close(params.locs, expected_mean, rtol=0, atol=0)
    assert_close(params.covariances, expected_covs, rtol=1e-12, atol=0)  # through Cholesky


def test_sample_mixture_wraps_params_sample():
    params = data.seed004_params()
    X, labels = data.sample_mixture(params, 500)
    assert X.shape == (500, 2) and labels.shape == (500,) and labels.dtype == torch.int64
    X_again, labels_again = params.sample(500, 0)
    assert torch.equal(X, X_again) and torch.equal(labels, labels_again)
    X_other, _ = data.sample_mixture(params, 500, seed=1)
    assert not torch.equal(X, X_other)
    with pytest.raises(TypeError, match="MixtureParams"):
        data.sample_mixture({"weights": [1.0]}, 5)


# ----------------------------------------------------------------------------------------
# random_mixture and separation_of
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("K,D,separation", [(2, 1, 0.5), (3, 2, 2.0), (6, 5, 1.0), (10, 3, 4.0)])
def test_random_mixture_is_exactly_c_separated(covariance_type, K, D, separation):
    params = data.random_mixture(K, D, separation=separation, covariance_type=covariance_type, seed=7)
    assert params.n_components == K and params.n_features == D
    assert params.covariance_type == covariance_type and params.dtype == torch.float64
    achieved = data.separation_of(params)
    assert achieved >= separation - 1e-9
    assert achieved == pytest.approx(separation, rel=1e-12)


def test_separation_of_by_hand():
    # closest means (0,0) and (3,0) are 3 apart; widest eigenvalue 4 -> c = 3 / sqrt(2 * 4)
    params = MixtureParams([0.2, 0.3, 0.5], [[0.0, 0.0], [3.0, 0.0], [0.0, 10.0]],
                           [[1.0, 4.0], [1.0, 1.0], [0.5, 2.0]], "diag")
    assert data.separation_of(params) == pytest.approx(3 / math.sqrt(8), rel=1e-15)
    assert data.separation_of(MixtureParams([1.0], [[1.0, 2.0]], [1.0], "spherical")) == math.inf


def test_random_mixture_separation_only_rescales_the_means():
    near = data.random_mixture(4, 3, separation=1.0, seed=3)
    far = data.random_mixture(4, 3, separation=3.0, seed=3)
    assert_close(far.locs, 3.0 * near.locs, rtol=1e-12, atol=1e-12)
    assert torch.equal(far.native, near.native) and torch.equal(far.weights, near.weights)
    # centred at the origin
    assert_close(near.locs.mean(0), torch.zeros(3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("imbalance", [1.0, 2.0, 0.5, 10.0])
def test_random_mixture_imbalance_is_the_ratio_of_consecutive_weights(imbalance):
    params = data.random_mixture(5, 2, imbalance=imbalance, seed=0)
    weights = params.weights
    assert_close(weights.sum(), 1.0, rtol=0, atol=1e-15)
    assert_close(weights[:-1] / weights[1:], torch.full((4,), imbalance), rtol=1e-12, atol=0)
    expected = imbalance ** -torch.arange(5.0, dtype=torch.float64)
    assert_close(weights, expected / expected.sum(), rtol=1e-13, atol=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_random_mixture_covariance_structure_and_condition(covariance_type):
    K, D, kappa = 6, 4, 5.0
    params = data.random_mixture(K, D, covariance_type=covariance_type, max_condition=kappa, seed=11)
    cov = params.covariances
    assert params.native.shape == {"full": (K, D, D), "tied": (D, D), "diag": (K, D),
                                   "spherical": (K,)}[covariance_type]
    eye = torch.eye(D, dtype=torch.float64)
    if covariance_type == "tied":
        assert torch.equal(cov, cov[:1].expand_as(cov))
    if covariance_type == "diag":
        assert torch.equal(cov, torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1)))
    if covariance_type == "spherical":
        assert torch.equal(cov, cov[:, :1, :1] * eye)
    if covariance_type == "full":  # random orientations: off-diagonal entries are used
        assert (cov - torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))).abs().amax() > 1e-3
    eigenvalues = torch.linalg.eigvalsh(cov)
    # every eigenvalue in [kappa^-1/2, kappa^1/2]: each covariance and the mixture have cond <= kappa
    assert eigenvalues.min() >= kappa ** -0.5 * (1 - 1e-12)
    assert eigenvalues.max() <= kappa ** 0.5 * (1 + 1e-12)


def test_random_mixture_is_reproducible_by_seed():
    first = data.random_mixture(4, 3, separation=1.5, imbalance=2.0, seed=5)
    again = data.random_mixture(4, 3, separation=1.5, imbalance=2.0, seed=5)
    other = data.random_mixture(4, 3, separation=1.5, imbalance=2.0, seed=6)
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.locs, other.locs)
    assert not torch.equal(first.native, other.native)


def test_random_mixture_edge_cases_and_bad_arguments():
    single = data.random_mixture(1, 3, seed=0)
    assert torch.equal(single.locs, torch.zeros(1, 3, dtype=torch.float64))
    assert data.separation_of(single) == math.inf
    collapsed = data.random_mixture(3, 2, separation=0.0, seed=0)
    assert torch.equal(collapsed.locs, torch.zeros(3, 2, dtype=torch.float64))
    for bad in ({"n_components": 0, "n_features": 2}, {"n_components": 2, "n_features": 0},
                {"n_components": 2, "n_features": 2, "separation": -1.0},
                {"n_components": 2, "n_features": 2, "imbalance": 0.0},
                {"n_components": 2, "n_features": 2, "max_condition": 0.5},
                {"n_components": 2, "n_features": 2, "covariance_type": "banana"},
                {"n_components": 2, "n_features": 2, "seed": 1.5}):
        with pytest.raises(ValueError):
            data.random_mixture(**bad)
