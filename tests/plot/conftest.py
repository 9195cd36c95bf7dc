"""Fixtures shared by the tests of mixtures.plot: a 2-D mixture, data drawn from it, two fits, PNG checks.

This folder has an ``__init__.py`` because of this file: without it pytest would import
both ``tests/conftest.py`` and this one as the top-level module ``conftest``, and the
``from conftest import ...`` of the tests in ``tests/`` would find this one.
"""

from __future__ import annotations

import pytest
import torch

import mixtures
from mixtures import GaussianMixture, MixtureParams, plot

DT = torch.float64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="package")
def truth() -> MixtureParams:
    return MixtureParams(torch.tensor([0.3, 0.7], dtype=DT),
                         torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=DT),
                         torch.stack([torch.eye(2, dtype=DT), 0.5 * torch.eye(2, dtype=DT)]))


@pytest.fixture(scope="package")
def data(truth):
    """``(X (300, 2), labels (300,))`` drawn from :func:`truth`."""
    return truth.sample(300, seed=0)


@pytest.fixture(scope="package")
def results(data):
    """EM and hard EM fitted to :func:`data` (here, in the fixture: drawing never fits)."""
    X, _ = data
    em = mixtures.fit(GaussianMixture(2, "full"), X, method="em", seed=0, max_iter=30)
    hard = mixtures.fit(GaussianMixture(2, "full"), X, method="hard_em", seed=0, max_iter=30)
    return {"em": em, "hard_em": hard}


@pytest.fixture
def assert_png():
    """``assert_png(path)``: the file exists and is a non-trivial PNG."""
    def check(path) -> None:
        assert path.exists(), path
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == PNG_MAGIC
    return check


@pytest.fixture
def render(tmp_path, assert_png):
    """``render(fig, name)``: save ``fig`` as ``<tmp_path>/<name>.png``, check it, return its path."""
    def save(fig, name: str):
        paths = plot.save_figure(fig, tmp_path / name)
        assert paths == [tmp_path / f"{name}.png"]
        assert_png(paths[0])
        return paths[0]
    return save
