"""A small iris-like labelled table, written as pandas writes a CSV, for the data-file tests."""

from __future__ import annotations

import numpy as np

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = ("setosa", "versicolor", "virginica")


def iris_like(n_per_class: int = 8, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``(3 n, 4)`` points in three separated groups and their species names (interleaved rows)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    X = np.concatenate([c + 0.05 * rng.standard_normal((n_per_class, 4)) for c in centres]).round(3)
    species = [name for name in SPECIES for _ in range(n_per_class)]
    order = rng.permutation(len(species))
    return X[order], [species[i] for i in order]


def write_iris_csv(path, X: np.ndarray, species: list[str], index: bool = True, header: bool = True) -> None:
    """As ``DataFrame.to_csv`` writes it: an unnamed index column first, the species last."""
    lines = [("," if index else "") + ",".join(FEATURES) + ",species"] if header else []
    for i, (row, name) in enumerate(zip(X, species)):
        lines.append((f"{i}," if index else "") + ",".join(repr(float(v)) for v in row) + f",{name}")
    path.write_text("\n".join(lines) + "\n")
