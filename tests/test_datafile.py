"""Real data files (mixtures.datafile) and the aligned confusion table: columns, labels, headers, index
columns, errors naming the column, Parquet; checked against numpy, scikit-learn and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from labelled import FEATURES, iris_like, write_iris_csv

from mixtures.datafile import parse_columns, read_table
from mixtures.errors import DataError
from mixtures.evaluation import adjusted_rand_index, aligned_confusion


def test_an_iris_like_csv_with_index_and_text_labels(tmp_path):
    X, species = iris_like()
    write_iris_csv(tmp_path / "iris.csv", X, species)
    table = read_table(tmp_path / "iris.csv", label_column="species")
    assert table.X.dtype == torch.float64 and torch.equal(table.X, torch.from_numpy(X))
    assert table.feature_names == FEATURES and table.label_column == "species"
    first = list(dict.fromkeys(species))  # codes in order of first appearance
    assert table.label_names == tuple(first)
    assert [table.label_names[c] for c in table.labels.tolist()] == species


def test_columns_by_name_and_position_and_standardize(tmp_path):
    X, species = iris_like()
    write_iris_csv(tmp_path / "iris.csv", X, species)
    table = read_table(tmp_path / "iris.csv", columns=["petal_width", 3], label_column=5)  # position 3: petal_length
    assert table.feature_names == ("petal_width", "petal_length")
    assert torch.equal(table.X, torch.from_numpy(X[:, [3, 2]]))
    scaled = read_table(tmp_path / "iris.csv", columns=["petal_width"], label_column="species", standardize=True)
    expected = (X[:, 3] - X[:, 3].mean()) / X[:, 3].std(ddof=1)
    np.testing.assert_allclose(scaled.X[:, 0].numpy(), expected, rtol=0, atol=1e-14)
    assert parse_columns("a, 2 ,b") == ["a", 2, "b"]


def test_no_header_and_an_explicit_index_column(tmp_path):
    X, species = iris_like()
    write_iris_csv(tmp_path / "bare.csv", X, species, index=True, header=False)
    table = read_table(tmp_path / "bare.csv", label_column=5, index_column=0)
    assert table.feature_names is None and torch.equal(table.X, torch.from_numpy(X))
    assert table.labels.tolist() == [list(dict.fromkeys(species)).index(s) for s in species]
    # without index_column the row numbers are a feature: the caller chose that
    assert read_table(tmp_path / "bare.csv", label_column=5).X.shape == (len(species), 5)
    # a header forced off reads the first line as data
    write_iris_csv(tmp_path / "plain.csv", X, species, index=False, header=True)
    with pytest.raises(DataError, match=r"line 1, column 0: 'sepal_length' is not a number"):
        read_table(tmp_path / "plain.csv", label_column=4, header=False)


def test_numeric_files_without_options_read_as_before(tmp_path):
    X, _ = iris_like()
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header=",".join(FEATURES), comments="")
    table = read_table(tmp_path / "x.csv")
    assert torch.equal(table.X, torch.from_numpy(X)) and table.feature_names == FEATURES and table.labels is None
    np.save(tmp_path / "x.npy", X)
    assert torch.equal(read_table(tmp_path / "x.npy").X, torch.from_numpy(X))
    with pytest.raises(ValueError, match="without column names"):
        read_table(tmp_path / "x.npy", label_column=0)


@pytest.mark.parametrize(("kwargs", "edit", "message"), [
    ({}, None, r"line 2, column 'species' \(position 5\): 'setosa' is not a number; if it holds class labels, make "
               r"it the label column \(--label-column species, or label_column: species in a config\)"),
    ({"label_column": "Species"}, None, r"label column 'Species' is not a column of .*its columns are '', "
                                        r"'sepal_length'"),
    ({"label_column": "species", "columns": ["petal_length", "species"]}, None,
     r"column 'species' \(position 5\) .* is both a feature and the label column"),
    ({"label_column": "species"}, ("5.0", ""), r"line \d+, column '\w+' \(position \d\): missing value"),
    ({"label_column": "species"}, ("setosa", ""), r"line \d+: the label column 'species' \(position 5\) is empty"),
    ({"label_column": "species"}, ("5.0", "inf"), r"'inf' is not finite"),
    ({"label_column": 9}, None, r"label column 9 is not a column"),
    ({"columns": ["petal_length", "nope"], "label_column": "species"}, None, r"column 'nope' is not a column"),
])
def test_errors_name_the_column_and_line(tmp_path, kwargs, edit, message):
    X, species = iris_like()
    X[0, 0], species[0] = 5.0, "setosa"
    write_iris_csv(tmp_path / "iris.csv", X, species)
    if edit is not None:
        lines = (tmp_path / "iris.csv").read_text().splitlines()
        lines[1] = lines[1].replace(edit[0], edit[1], 1)
        (tmp_path / "iris.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_table(tmp_path / "iris.csv", **kwargs)


def test_ragged_rows_are_named(tmp_path):
    (tmp_path / "r.csv").write_text("a,b,label\n1,2,x\n3,y\n")
    with pytest.raises(DataError, match=r"line 3 has 2 field\(s\) but the header has 3"):
        read_table(tmp_path / "r.csv", label_column="label")


def test_parquet_when_pyarrow_is_installed(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X, species = iris_like()
    frame = pd.DataFrame(X, columns=list(FEATURES)).assign(species=species)
    frame.to_parquet(tmp_path / "iris.parquet")
    table = read_table(tmp_path / "iris.parquet", label_column="species")
    assert torch.equal(table.X, torch.from_numpy(X)) and table.feature_names == FEATURES


def _brute_force_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The most points on a diagonal over every one-to-one matching of classes and clusters."""
    classes, clusters = np.unique(labels), np.unique(predicted)
    counts = np.array([[np.sum((labels == c) & (predicted == k)) for k in clusters] for c in classes])
    C, P = counts.shape
    if C <= P:
        best = max(sum(counts[i, perm[i]] for i in range(C)) for perm in itertools.permutations(range(P), C))
    else:
        best = max(sum(counts[perm[j], j] for j in range(P)) for perm in itertools.permutations(range(C), P))
    return best / len(labels)


@pytest.mark.parametrize("n_clusters", [2, 3, 4])
def test_aligned_confusion_matches_brute_force_and_sklearn(n_clusters):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(n_clusters)
    labels = rng.integers(0, 3, 60)
    predicted = np.where(rng.random(60) < 0.7, (labels + 1) % n_clusters, rng.integers(0, n_clusters, 60))
    found = aligned_confusion(labels, predicted)
    assert found["accuracy"] == pytest.approx(_brute_force_accuracy(labels, predicted), abs=1e-15)
    reference = metrics.confusion_matrix(labels, predicted, labels=sorted(set(labels) | set(predicted)))
    np.testing.assert_array_equal(found["table"], reference[:3][:, found["clusters"]])
    if n_clusters >= 3:  # each class faces its matched cluster
        assert np.trace(found["table"]) == round(found["accuracy"] * 60)
    assert adjusted_rand_index(labels, predicted) == pytest.approx(metrics.adjusted_rand_score(labels, predicted),
                                                                   abs=1e-12)


def test_parquet_frames_are_read_like_csv(tmp_path, monkeypatch):
    """The Parquet path on a frame (pyarrow is not installed everywhere: pandas' reader is stubbed here)."""
    pd = pytest.importorskip("pandas")
    X, species = iris_like()
    frame = pd.DataFrame(X, columns=list(FEATURES)).assign(species=species)
    (tmp_path / "iris.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(pd, "read_parquet", lambda path: frame)
    table = read_table(tmp_path / "iris.parquet", label_column="species")
    assert torch.equal(table.X, torch.from_numpy(X)) and table.feature_names == FEATURES
    assert [table.label_names[c] for c in table.labels.tolist()] == species
    frame.loc[3, "petal_width"] = np.nan
    with pytest.raises(DataError, match=r"line 4, column 'petal_width' \(position 3\): missing value"):
        read_table(tmp_path / "iris.parquet", label_column="species")
