"""k-means and k-medians: Lloyd's fixed point, scikit-learn agreement, empty clusters, traces."""

import pytest
import torch

import mixtures
from mixtures import GaussianMixture
from mixtures.inference.kmeans import assign, fill_empty_clusters, lloyd, update_centers

from conftest import assert_close, true_params


def test_kmeans_matches_sklearn_from_the_same_centres():
    cluster = pytest.importorskip("sklearn.cluster")
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
