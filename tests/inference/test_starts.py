"""Starts that cannot stay dead (mixtures.inference.starts) and results that say a component died."""

import warnings
from types import SimpleNamespace

import pytest
import torch

import mixtures
from mixtures import DegenerateStartError, GaussianMixture, GaussianPrior, MixtureParams
from mixtures.inference.starts import DEAD_MASS, checked_start, flag_degenerate, revived, start_facts

from conftest import assert_close, true_params

#: routines that cannot revive a dead component of a given start: fit refuses it
REFUSING = ["map", "svi", "stepwise_em", "vb", "nuts"]
BUDGET = {"map": {"num_steps": 5}, "svi": {"num_steps": 5}, "stepwise_em": {"num_epochs": 1},
          "vb": {"max_iter": 5}, "nuts": {"warmup": 2, "num_samples": 4, "max_tree_depth": 2}}


@pytest.fixture(scope="module")
def X():
    data, _ = true_params("full").sample(300, seed=4)
    return data


def model_for(method, K=3, covariance_type="full"):
    prior = GaussianPrior() if method in ("vb", "nuts") else None
    return GaussianMixture(K, covariance_type, prior=prior)


def zero_weight_start():
    truth = true_params("full")
    return truth.replace(weights=torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


def far_start():
    truth = true_params("full")
    return truth.replace(locs=torch.cat([truth.locs[:2], torch.tensor([[1e6, 1e6]], dtype=torch.float64)]))


@pytest.mark.parametrize("method", REFUSING)
@pytest.mark.parametrize("start, why", [(zero_weight_start, "its weight is 0"),
                                        (far_start, "density is negligible at every point")])
def test_a_given_dead_start_is_refused_naming_the_component(X, method, start, why):
    with pytest.raises(DegenerateStartError, match=f"method '{method}'.*component 2: .*{why}") as caught:
        mixtures.fit(model_for(method), X, method, init=start(), **BUDGET[method])
    assert caught.value.components == [2]
    assert "init='kmeans'" in str(caught.value)  # how to fix it


def test_a_zero_responsibility_column_is_refused_by_vb(X):
    labels = torch.arange(X.shape[0]) % 3
    resp = torch.nn.functional.one_hot(labels, 3).double()
    resp[:, 1] = 0.0
    resp = resp / resp.sum(1, keepdim=True).clamp_min(1e-300)
    resp[labels == 1] = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    with pytest.raises(DegenerateStartError, match=r"component\(s\) \[1\] no mass") as caught:
        mixtures.fit(model_for("vb"), X, "vb", init=resp, max_iter=5)
    assert caught.value.components == [1]


def test_em_states_a_given_dead_start_in_its_result_instead(X):
    # EM keeps a dead component dead but says so: no refusal, the result flags it
    with pytest.warns(UserWarning, match=r"degenerate component\(s\) \[2\]"):
        result = mixtures.fit(GaussianMixture(3), X, init=zero_weight_start(), max_iter=20)
    assert result.extras["empty_components"] == [2]


def test_reseed_repairs_a_dead_start_and_says_so(X):
    reference = mixtures.fit(GaussianMixture(3), X, "stepwise_em", num_epochs=20, seed=0)
    with pytest.warns(UserWarning, match=r"start of 'stepwise_em' had dead component\(s\) \[2\]"):
        repaired = mixtures.fit(GaussianMixture(3), X, "stepwise_em", init=far_start(), on_collapse="reseed",
                                num_epochs=20, seed=0)
    assert repaired.extras["reseeded"][0] == (0, 2)
    assert repaired.extras["empty_components"] == []
    assert float(repaired.params.weights.min()) > 0.1
    # the repaired start finds the same three clusters as a proper start (not a dead-component optimum)
    assert abs(repaired.log_likelihood - reference.log_likelihood) < 1.0


def test_start_facts_count_mass_and_unexplained_points(X):
    facts = start_facts(zero_weight_start(), X)
    assert facts.n_points == X.shape[0] and facts.unexplained == 0
    assert_close(facts.mass.sum(), torch.tensor(float(X.shape[0]), dtype=torch.float64))
    assert facts.dead() == [2] and float(facts.mass[2]) == 0.0
    # a point no component explains (its density underflows to 0 under all of them) is counted and is the worst
    # (covariances of 1e-100: a squared distance of 1e220 over them overflows, of ~1 does not)
    narrow = true_params("full")
    narrow = narrow.replace(covariances=narrow.covariances * 1e-100)
    outlier = torch.cat([X, torch.tensor([[1e110, 0.0]], dtype=torch.float64)])
    facts = start_facts(narrow, outlier)
    assert facts.unexplained == 1 and facts.dead() == []
    assert facts.worst_point.tolist() == [1e110, 0.0]


def test_revived_component_sits_at_the_point_with_weight_one_over_k(X):
    start = zero_weight_start()
    point = X[7]
    fresh = revived(GaussianMixture(3), start, 2, point, X, X.shape[0], 1e-6)
    assert_close(fresh.locs[2], point, rtol=0, atol=0)
    assert_close(fresh.locs[:2], start.locs[:2], rtol=0, atol=0)
    assert_close(fresh.covariances[:2], start.covariances[:2], rtol=0, atol=0)
    # the data's own spread (the family's centre-based start pools the covariance of X about its centres)
    assert torch.linalg.eigvalsh(fresh.covariances[2]).min() > 0.1
    assert_close(fresh.weights, torch.tensor([1 / 3, 1 / 3, 1 / 3], dtype=torch.float64), rtol=1e-15, atol=0)
    assert start_facts(fresh, X).dead() == []


def test_checked_start_repairs_every_dead_component_in_turn(X):
    truth = true_params("full")
    start = truth.replace(weights=torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    fixed, repaired = checked_start(GaussianMixture(3), X, start, repair=True, reg_covar=1e-6, method="map")
    assert repaired == [1, 2]
    assert bool((start_facts(fixed, X).mass >= DEAD_MASS).all())
    with pytest.raises(DegenerateStartError, match=r"component 1: its weight is 0.*component 2: its weight is 0"):
        checked_start(GaussianMixture(3), X, start, repair=False, reg_covar=1e-6, method="map")
    same, none = checked_start(GaussianMixture(3), X, truth, repair=False, reg_covar=1e-6, method="map")
    assert same is truth and none == []


def test_flag_degenerate_states_empty_and_floored_components(X):
    params = MixtureParams(torch.tensor([0.6, 0.4 - 1e-9, 1e-9], dtype=torch.float64), true_params("full").locs,
                           torch.stack([torch.eye(2), torch.eye(2), 1e-6 * torch.eye(2)]).double(), "full")
    result = SimpleNamespace(extras={}, params=params, method="map")
    with pytest.warns(UserWarning, match=r"map ended with degenerate component\(s\): empty .* \[2\]; collapsed "
                                         r"\(covariance on the reg_covar = 1e-06 floor.* \[2\]"):
        flag_degenerate(result, X, n_points=300, reg_covar=1e-6, floor=True, flag_empty=True)
    assert result.extras == {"empty_components": [2], "collapsed_components": [2]}
    # a routine that flagged its own result is left alone; a routine without a floor is not judged on it
    kept = SimpleNamespace(extras={"empty_components": []}, params=params, method="em")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flag_degenerate(kept, X, n_points=300, reg_covar=1e-6, floor=False, flag_empty=True)
    assert kept.extras == {"empty_components": []}


@pytest.mark.parametrize("method", ["map", "svi", "stepwise_em"])
def test_every_fit_result_says_whether_a_component_ended_empty(X, method):
    result = mixtures.fit(GaussianMixture(3), X, method, **BUDGET[method])
    assert result.extras["empty_components"] == []


def test_a_component_on_one_point_without_a_floor_is_flagged_collapsed():
    """reg_covar = 0: a VEE component shrunk onto one point has a covariance within round-off of
    zero (iris VEE,5 from mclust's start; mclust reports the cell as NA): the fit says so."""
    X = mixtures.data.iris()
    X = X[0] if isinstance(X, tuple) else X
    with pytest.warns(UserWarning, match="collapsed"):
        result = mixtures.fit(GaussianMixture(5, "VEE"), X, "em", init="hc", reg_covar=0.0, rtol=1e-5, max_iter=1000)
    assert result.extras["collapsed_components"], result.extras
    from mixtures import evaluation
    assert evaluation.is_singular(result, 0.0)
    # a healthy fit without a floor is not flagged
    healthy = mixtures.fit(GaussianMixture(2, "VEV"), X, "em", init="hc", reg_covar=0.0, rtol=1e-5)
    assert healthy.extras["collapsed_components"] == [] and not evaluation.is_singular(healthy, 0.0)
