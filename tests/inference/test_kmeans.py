"""k-means and k-medians: Lloyd's fixed point, scikit-learn agreement, empty clusters, traces."""

import numpy as np
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.kernels.kmeans import assign, fill_empty_clusters, lloyd, update_centers

from conftest import COVARIANCE_TYPES, assert_close, true_params


def test_kmeans_matches_sklearn_from_the_same_centres():
    from sklearn import cluster
    X, _ = true_params().sample(2000, seed=0)
    centres = X[:3].clone()
    ours = mixtures.fit(GaussianMixture(3), X, method="kmeans", init={"locs": centres}, tol=0.0)
    reference = cluster.KMeans(3, init=centres.numpy(), n_init=1, tol=0.0, algorithm="lloyd").fit(X.numpy())
    assert_close(ours.extras["centers"], reference.cluster_centers_, rtol=1e-10, atol=1e-10)
    assert torch.equal(ours.extras["labels"], torch.as_tensor(reference.labels_).long())
    assert ours.extras["inertia"] == pytest.approx(reference.inertia_, rel=1e-10)


def test_kmeans_history_is_on_the_em_scale():
    X, _ = true_params().sample(1000, seed=1)
    result = mixtures.fit(GaussianMixture(3), X, method="kmeans", init="kmeans++", seed=0)
    history = result.history
    assert {"objective", "log_likelihood", "elbo", "kl"} <= set(history.columns)
    assert (torch.diff(history["objective"]) <= 1e-9).all()  # Lloyd never increases the inertia
    assert (history["kl"] >= 0).all()
    # the reported mixture is the Gaussian M step of the final partition
    labels = result.extras["labels"]
    for k in range(3):
        assert_close(result.params.locs[k], X[labels == k].mean(0), rtol=1e-10, atol=1e-12)
    assert result.log_likelihood == pytest.approx(float(result.params.log_prob(X).sum()), rel=1e-12)
    assert result.objective == pytest.approx(-result.extras["inertia"])


def test_kmedians_uses_l1_and_medians():
    X, _ = true_params().sample(500, seed=2)
    centres, labels, objective, _, converged = lloyd(X, X[:3].clone(), metric="l1")
    assert converged
    for k in range(3):
        assert_close(centres[k], torch.quantile(X[labels == k], 0.5, dim=0), rtol=0, atol=1e-12)
    distances = torch.cdist(X, centres, p=1)
    assert torch.equal(labels, distances.argmin(-1))
    assert objective == pytest.approx(float(distances.min(-1).values.sum()), rel=1e-12)


def test_empty_cluster_gets_the_farthest_point():
    X = torch.tensor([[0.0], [0.1], [0.2], [10.0]], dtype=torch.float64)
    centres = torch.tensor([[0.0], [10.0], [100.0]], dtype=torch.float64)  # third centre attracts nothing
    labels, distances = assign(X, centres)
    assert torch.bincount(labels, minlength=3)[2] == 0
    filled, empty = fill_empty_clusters(labels, distances, 3)
    assert empty == [2]
    assert filled.tolist() == [0, 0, 2, 1]  # the farthest point of the cluster that can spare one
    new_centres = update_centers(X, filled, 3)
    assert torch.isfinite(new_centres).all()
    result = mixtures.fit(GaussianMixture(3, "spherical"), X, method="kmeans", init={"locs": centres})
    assert torch.isfinite(result.params.locs).all()
    assert torch.isfinite(torch.tensor(result.log_likelihood))


def test_duplicated_points_give_a_finite_fit():
    # every point identical: the second cluster is refilled with a duplicate, never NaN
    X = torch.zeros(5, 2, dtype=torch.float64)
    result = mixtures.fit(GaussianMixture(2), X, method="kmeans", init={"locs": [[0.0, 0.0], [5.0, 5.0]]})
    assert torch.equal(result.extras["centers"], torch.zeros(2, 2, dtype=torch.float64))
    assert torch.isfinite(result.params.covariances).all()


def test_fill_empty_clusters_needs_a_spare_point():
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="fewer points than clusters"):
        fill_empty_clusters(labels, torch.zeros(2, dtype=torch.float64), 3)


def _two_groups_and_copies() -> torch.Tensor:
    """Two spread 2-D groups and 6 copies of one point (a cluster whose own covariance is 0)."""
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(40, 2, generator=g, dtype=torch.float64)
    spread[20:] += torch.tensor([8.0, 0.0], dtype=torch.float64)
    return torch.cat([spread, torch.tensor([[0.0, 9.0]], dtype=torch.float64).expand(6, 2)])


@pytest.mark.parametrize("method, metric", [("kmeans", "l2"), ("kmedians", "l1")])
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_identical_points_without_reg_covar_take_the_pooled_covariance(method, metric, covariance_type):
    X = _two_groups_and_copies()
    start = X[[0, 20, 40]].clone()
    result = mixtures.fit(GaussianMixture(3, covariance_type), X, method=method, init={"locs": start},
                          reg_covar=0.0)
    # the clustering is exactly Lloyd's, with or without a Gaussian attached
    centres, labels, objective, _, _ = lloyd(X, start, metric=metric)
    assert torch.equal(result.extras["centers"], centres) and torch.equal(result.extras["labels"], labels)
    assert result.extras["inertia"] == objective
    copies = int(labels[-1])
    assert labels[-6:].eq(copies).all() and int(labels.eq(copies).sum()) == 6
    assert result.extras["degenerate_clusters"] == [copies] and result.extras["covariance_floor"] == 0.0
    # the copies' cluster: its own mean, the pooled within-cluster covariance Σ_k S_k / N
    scatter = sum((X[labels == k] - X[labels == k].mean(0)).T @ (X[labels == k] - X[labels == k].mean(0))
                  for k in range(3)) / len(X)
    expected = {"full": scatter, "diag": torch.diag(scatter.diagonal()),
                "spherical": scatter.diagonal().mean() * torch.eye(2, dtype=torch.float64)}[covariance_type]
    assert_close(result.params.covariances[copies], expected, rtol=1e-12, atol=1e-14)
    assert_close(result.params.locs[copies], [0.0, 9.0], rtol=0, atol=1e-14)
    for k in set(range(3)) - {copies}:  # the others keep their own within-cluster covariance
        members = X[labels == k]
        own = torch.cov(members.T, correction=0)
        own = {"full": own, "diag": torch.diag(own.diagonal()),
               "spherical": own.diagonal().mean() * torch.eye(2, dtype=torch.float64)}[covariance_type]
        assert_close(result.params.covariances[k], own, rtol=1e-12, atol=1e-14)
    assert torch.isfinite(result.history["log_likelihood"]).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_constant_feature_without_reg_covar_gets_a_relative_floor(dtype, covariance_type):
    # every cluster (and so the pooled covariance) is singular along the constant feature
    X = _two_groups_and_copies()[:40]
    X = torch.cat([X, torch.full((40, 1), 3.0, dtype=torch.float64)], 1).to(dtype)
    native = {"full": torch.eye(3).expand(2, 3, 3), "tied": torch.eye(3), "diag": torch.ones(2, 3),
              "spherical": torch.ones(2)}[covariance_type].to(dtype)
    start = MixtureParams(torch.full((2,), 0.5, dtype=dtype), X[[0, 20]], native, covariance_type)
    result = mixtures.fit(GaussianMixture(2, covariance_type), X, method="kmeans", init=start, reg_covar=0.0)
    labels = result.extras["labels"]
    assert labels[:20].eq(labels[0]).all() and labels[20:].eq(labels[20]).all() and labels[0] != labels[20]
    floor = result.extras["covariance_floor"]
    if covariance_type == "spherical":  # one variance averaged over features: never singular here
        assert floor == 0.0 and result.extras["degenerate_clusters"] == []
        return
    assert result.extras["degenerate_clusters"] == ([] if covariance_type == "tied" else [0, 1])
    centred = torch.cat([X[labels == k] - X[labels == k].mean(0) for k in range(2)]).double()
    largest = float((centred.square().sum(0) / len(X)).max())  # the pooled covariance's largest variance
    relative = max(1e-6, 1000 * 3 * torch.finfo(dtype).eps)
    assert floor == pytest.approx(relative * largest, rel=1e-5 if dtype == torch.float32 else 1e-12)
    covariances = result.params.covariances.double()
    assert_close(covariances[:, 2, 2], torch.full((2,), floor, dtype=torch.float64), rtol=1e-5, atol=0)
    assert (torch.linalg.eigvalsh(covariances) > 0).all()
    assert torch.isfinite(result.history["log_likelihood"]).all()


@pytest.mark.parametrize("init", ["kmeans", "kmeans++", "random_from_data", "random"])
@pytest.mark.parametrize("method", ["kmeans", "kmedians"])
def test_clustering_starts_never_fail_on_covariances(method, init):
    # the routines use only the start's centres: duplicated points and a constant feature
    # with reg_covar=0 give singular start covariances, built leniently instead of raising
    rng = np.random.default_rng(0)
    X = np.c_[np.repeat(rng.normal(size=(10, 1)) * 5, 3, axis=0), np.ones(30)]
    result = mixtures.fit(GaussianMixture(3), X, method=method, init=init, reg_covar=0.0, seed=1)
    assert torch.isfinite(result.params.covariances).all()
    centres, labels = result.extras["centers"], result.extras["labels"]
    points = torch.as_tensor(X)
    # a fixed point of the routine: every point is with its nearest centre (L2 or L1)
    distance = torch.cdist(points, centres, p=2.0 if method == "kmeans" else 1.0)
    assert torch.equal(distance.gather(1, labels[:, None]).squeeze(1), distance.min(1).values)
    if method == "kmeans":  # and every centre is its cluster's mean
        for k in labels.unique().tolist():
            assert_close(centres[k], points[labels == k].mean(0))
