"""Frozen parameters: ``fit(..., init=params, freeze=(...))`` holds groups at the given values and fits the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mixtures
from mixtures.families.gaussian import MixtureParams

X = mixtures.data.iris()
SPECIES = torch.repeat_interleave(torch.arange(3), 50)


def start(covariance_type: str = "full") -> MixtureParams:
    """A start away from the optimum (two EM iterations from k-means)."""
    return mixtures.fit(mixtures.GaussianMixture(3, covariance_type), X, "em", max_iter=2, warn=False).params


def scatter_about(locs: torch.Tensor, resp: torch.Tensor) -> torch.Tensor:
    """``W_k = Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ`` ``(K, D, D)`` by brute force."""
    centred = X[None, :, :] - locs[:, None, :]  # (K, N, D)
    return torch.einsum("nk,kni,knj->kij", resp, centred, centred)


def test_frozen_weights_one_step_is_the_closed_form_m_step_of_the_rest():
    init = start()
    truth = torch.tensor([0.2, 0.3, 0.5], dtype=X.dtype)
    init = MixtureParams.from_native(truth, init.locs, init.native, "full")
    result = mixtures.fit(init_model := mixtures.GaussianMixture(3, "full"), X, "em", init=init,
                          freeze=("weights",), max_iter=1, warn=False)
    assert torch.equal(result.params.weights, truth)
    reference = init_model.params_from_responsibilities(X, init.responsibilities(X), reg_covar=1e-6)
    torch.testing.assert_close(result.params.locs, reference.locs, rtol=0, atol=1e-13)
    torch.testing.assert_close(result.params.covariances, reference.covariances, rtol=0, atol=1e-13)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_frozen_means_give_the_covariances_of_the_scatter_about_them(covariance_type):
    init = start(covariance_type)
    means = X.reshape(3, 50, 4).mean(1) + 0.1  # not the responsibility-weighted means
    init = MixtureParams.from_native(init.weights, means, init.native, covariance_type)
    result = mixtures.fit(mixtures.GaussianMixture(3, covariance_type), X, "em", init=init, freeze="means",
                          max_iter=1, reg_covar=0.0, warn=False)
    assert torch.equal(result.params.locs, means)
    resp = init.responsibilities(X)
    nk = resp.sum(0)
    W = scatter_about(means, resp)
    expected = {"full": W / nk[:, None, None],
                "tied": (W.sum(0) / nk.sum()).expand(3, 4, 4),
                "diag": torch.diag_embed(W.diagonal(dim1=-2, dim2=-1) / nk[:, None]),
                "spherical": torch.eye(4) * (W.diagonal(dim1=-2, dim2=-1).sum(-1) / (4 * nk))[:, None, None],
                }[covariance_type]
    torch.testing.assert_close(result.params.covariances, expected.to(X.dtype), rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(result.params.weights, nk / nk.sum(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("groups", [("weights",), ("means",), ("covariances",), ("weights", "covariances")])
@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_frozen_groups_stay_bit_identical_and_the_history_monotone(groups, method):
    init = start()
    result = mixtures.fit(mixtures.GaussianMixture(3, "full"), X, method, init=init, freeze=groups, max_iter=200,
                          tol=1e-10, warn=False)
    for group, name in (("weights", "weights"), ("means", "locs"), ("covariances", "native")):
        same = torch.equal(getattr(result.params, name), getattr(init, name))
        assert same == (group in groups), (group, same)
    trace = np.asarray(result.history["log_likelihood"])
    assert np.all(np.diff(trace) >= -1e-9)


def test_all_labelled_with_frozen_weights_is_the_class_mle_at_those_weights():
    """Labels and freeze together: every point labelled, weights held at given values."""
    weights = torch.tensor([0.5, 0.25, 0.25], dtype=X.dtype)
    init = MixtureParams.from_native(weights, start().locs, start().native, "full")
    result = mixtures.fit(mixtures.GaussianMixture(3, "full"), X, "em", init=init, labels=SPECIES,
                          freeze="weights", reg_covar=0.0)
    assert torch.equal(result.params.weights, weights)
    for k in range(3):
        torch.testing.assert_close(result.params.locs[k], X[SPECIES == k].mean(0), rtol=0, atol=1e-13)


@pytest.mark.parametrize("groups", [("weights",), ("means", "covariances")])
def test_map_does_not_train_frozen_sites(groups):
    model = mixtures.GaussianMixture(3, "full")
    em = mixtures.fit(model, X, "em", init=start(), freeze=groups, max_iter=300, tol=1e-10, warn=False)
    # at EM's optimum of the free groups, MAP's loss is its objective and Adam barely moves
    result = mixtures.fit(model, X, "map", init=em.params, freeze=groups, num_steps=0)
    assert -float(result.history["loss"][0]) == pytest.approx(em.objective, rel=1e-10)
    moved = mixtures.fit(model, X, "map", init=start(), freeze=groups, num_steps=15, patience=None, lr=0.005)
    for group, name in (("weights", "weights"), ("means", "locs"), ("covariances", "native")):
        assert torch.equal(getattr(moved.params, name), getattr(start(), name)) == (group in groups)
    assert moved.objective > moved.history["log_likelihood"][0]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"method": "online_vb", "prior": True}, ValueError,
     r"cannot hold parameters fixed.*\['em', 'hard_em', 'map', 'nuts', 'svi', 'vb'\]"),
    ({"method": "kmeans"}, ValueError, "cannot hold parameters fixed"),
    ({"freeze": ("locs",)}, ValueError, "unknown parameter group"),
    ({"freeze": ("weights", "means", "covariances")}, ValueError, "nothing is left to fit"),
    ({"init": "kmeans"}, ValueError, "holds values you give"),
    ({"freeze": ("means",), "prior": True}, ValueError, "with a prior"),
    ({"method": "map", "prior": True}, ValueError, "has a prior"),
    ({"on_collapse": "reseed"}, ValueError, "a re-seed would move"),
])
def test_what_cannot_be_frozen_is_a_clear_error(kwargs, error, match):
    prior = mixtures.GaussianPrior() if kwargs.pop("prior", False) else None
    options = {"method": "em", "init": start(), "freeze": ("weights",), **kwargs}
    with pytest.raises(error, match=match):
        mixtures.fit(mixtures.GaussianMixture(3, "full", prior=prior), X, options.pop("method"), **options)
