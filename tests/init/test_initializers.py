"""init given as labels of any kind, and one clear error for an init of no accepted kind."""

import numpy as np
import pytest
import torch

import mixtures
from mixtures import DataError, GaussianMixture, GaussianPrior

from conftest import true_params


@pytest.fixture(scope="module")
def X():
    data, labels = true_params().sample(90, seed=1)
    return data


@pytest.mark.parametrize("init", [None, 3.0, True, 7, object()])
def test_an_init_of_no_accepted_kind_is_named_before_any_work(X, init):
    with pytest.raises(ValueError, match=r"cannot initialize from .*give an initializer name \['kmeans'"):
        mixtures.fit(GaussianMixture(3), X, init=init)


def test_string_labels_start_like_the_integer_labels_in_sorted_order(X):
    codes = np.arange(90) % 3
    names = np.array(["apple", "banana", "cherry"])[codes]
    from_names = mixtures.fit(GaussianMixture(3), X, init=list(names), max_iter=3)
    from_codes = mixtures.fit(GaussianMixture(3), X, init=codes, max_iter=3)
    assert torch.equal(from_names.params.locs, from_codes.params.locs)
    assert torch.equal(from_names.init.locs, from_codes.init.locs)


@pytest.mark.parametrize("method", ["em", "vb"])
def test_nan_labels_are_called_missing_not_distinct_values(X, method):
    labels = (np.arange(90) % 3).astype(float)
    labels[5] = np.nan
    model = GaussianMixture(3, prior=GaussianPrior() if method == "vb" else None)
    with pytest.raises(DataError, match=r"1 NaN or infinite value\(s\), the first at position 5"):
        mixtures.fit(model, X, method, init=labels)
    names = ["a", "b", "c"] * 30
    names[7] = None
    with pytest.raises(DataError, match=r"1 missing value\(s\) \(None or NaN\), the first at position 7"):
        mixtures.fit(model, X, method, init=names)


def test_fractional_labels_and_text_responsibilities_are_named(X):
    with pytest.raises(DataError, match="labels must be integers .*Soft assignments are responsibilities"):
        mixtures.fit(GaussianMixture(3), X, init=np.arange(90) % 3 + 0.5)
    with pytest.raises(DataError, match="responsibilities must be numbers"):
        mixtures.fit(GaussianMixture(3), X, init=np.full((90, 3), "x"))
    with pytest.raises(DataError, match="not a rectangular array"):
        mixtures.fit(GaussianMixture(3), X, init=[[1.0, 0.0, 0.0]] * 89 + [[1.0]])
