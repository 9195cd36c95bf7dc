"""mclust's fourteen covariance structures: parameter counts, M steps against a brute-force optimizer,
the iterative M steps' monotone inner loops, structure checks, one-dimensional data, Pyro sites."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch

import mixtures
from mixtures.families.gaussian import STRUCTURES, get_structure
from mixtures.families.gaussian.covariance import MCLUST_NAMES, iterative
from mixtures.families.gaussian.covariance.parametrization import DecomposedTransform

from conftest import assert_close

#: mclust's nVarParams (mclust 6.1.3, R/mclust.R: the switch behind help(nVarParams)), typed by hand
NVARPARAMS = {
    "EII": lambda d, G: 1, "VII": lambda d, G: G, "EEI": lambda d, G: d, "VEI": lambda d, G: G + (d - 1),
    "EVI": lambda d, G: 1 + G * (d - 1), "VVI": lambda d, G: G * d, "EEE": lambda d, G: d * (d + 1) / 2,
    "EVE": lambda d, G: 1 + G * (d - 1) + d * (d - 1) / 2, "VEE": lambda d, G: G + (d - 1) + d * (d - 1) / 2,
    "VVE": lambda d, G: G + G * (d - 1) + d * (d - 1) / 2, "EEV": lambda d, G: 1 + (d - 1) + G * d * (d - 1) / 2,
    "VEV": lambda d, G: G + (d - 1) + G * d * (d - 1) / 2, "EVV": lambda d, G: 1 - G + G * d * (d + 1) / 2,
    "VVV": lambda d, G: G * d * (d + 1) / 2,
}
ITERATIVE = {"VEI": iterative.vei, "VEE": iterative.vee, "VEV": iterative.vev, "EVE": iterative.eve,
             "VVE": iterative.vve}


def test_every_mclust_name_names_one_registered_structure():
    assert sorted(MCLUST_NAMES) == sorted(s.mclust_name for s in STRUCTURES.values())
    assert {get_structure(name).mclust_name for name in MCLUST_NAMES} == set(MCLUST_NAMES)
    for old, new in (("full", "VVV"), ("tied", "EEE"), ("diag", "VVI"), ("spherical", "VII")):
        assert get_structure(new) is get_structure(old)
    assert get_structure("E") is get_structure("EII") and get_structure("V") is get_structure("spherical")


@pytest.mark.parametrize("name", MCLUST_NAMES)
def test_parameter_counts_are_mclusts(name):
    structure = get_structure(name)
    for d in (1, 2, 3, 5, 8):
        for G in (1, 2, 4, 9):
            assert structure.n_parameters(G, d) == NVARPARAMS[name](d, G), (name, d, G)
            model = mixtures.GaussianMixture(G, name)
            assert model.n_parameters(d) == NVARPARAMS[name](d, G) + G * d + G - 1


# -- the M step against a brute-force optimizer ---------------------------------------------------
def _random_problem(K: int, D: int, seed: int):
    rng = np.random.default_rng(seed)
    nk = rng.uniform(5.0, 40.0, K)
    scatters = []
    for k in range(K):
        A = rng.normal(size=(D, D + 3)) * rng.uniform(0.3, 3.0, size=(D, 1))
        scatters.append(nk[k] * (A @ A.T) / (D + 3))
    return nk, np.stack(scatters), rng.normal(size=(K, D))


def _statistics(structure, nk, scatters, means):
    """The structure's second moment about 0 for the given scatters and means (float64 tensors)."""
    nk_t, W, mu = (torch.as_tensor(a) for a in (nk, scatters, means))
    full = W + nk_t[:, None, None] * mu.unsqueeze(-1) * mu.unsqueeze(-2)
    if structure.statistic == "matrix":
        return full.sum(0) if structure.shared else full
    diagonal = full.diagonal(dim1=-2, dim2=-1)
    return diagonal.sum(0) if structure.shared else diagonal


def _objective(nk, scatters, covariances):
    return iterative.covariance_objective(nk, scatters, covariances)


def _safe_objective(nk, scatters, covariances) -> float:
    """The objective, or a huge value where the optimizer wandered off (overflow, singular)."""
    try:
        value = _objective(nk, scatters, covariances)
    except np.linalg.LinAlgError:
        return 1e300
    return value if np.isfinite(value) else 1e300


def _givens(angles: np.ndarray, D: int) -> np.ndarray:
    """The product of plane rotations by ``angles`` over the planes (i, j), i < j: any rotation."""
    rotation = np.eye(D)
    planes = [(p, q) for p in range(D) for q in range(p + 1, D)]
    for angle, (i, j) in zip(angles, planes):
        plane = np.eye(D)
        plane[[i, j], [i, j]] = math.cos(angle)
        plane[i, j], plane[j, i] = -math.sin(angle), math.sin(angle)
        rotation = rotation @ plane
    return rotation


def _brute_force_covariances(name: str, theta: np.ndarray, K: int, D: int) -> np.ndarray:
    """An independent parametrization: log volumes, log shapes (last = -sum), orientations as products of
    plane rotations."""
    volume, shape, orientation = name
    sizes = {"volume": {"E": 1, "V": K, "I": 0}[volume], "shape": {"E": 1, "V": K, "I": 0}[shape] * (D - 1),
             "orientation": {"E": 1, "V": K, "I": 0}[orientation] * (D * (D - 1) // 2)}
    parts, start = {}, 0
    for key, size in sizes.items():
        parts[key] = theta[start:start + size]
        start += size
    covariances = []
    for k in range(K):
        log_volume = parts["volume"][0 if volume == "E" else k]
        if shape == "I":
            log_shape = np.zeros(D)
        else:
            free = parts["shape"].reshape(-1, D - 1)[0 if shape == "E" else k] if D > 1 else np.zeros(0)
            log_shape = np.append(free, -free.sum())
        rotation = np.eye(D)
        if orientation != "I" and D > 1:
            angles = parts["orientation"].reshape(-1, D * (D - 1) // 2)[0 if orientation == "E" else k]
            rotation = _givens(angles, D)
        covariances.append(rotation @ np.diag(np.exp(log_volume + log_shape)) @ rotation.T)
    return np.stack(covariances), start


def _brute_force(name: str, nk, scatters, seed: int):
    K, D, _ = scatters.shape
    _, size = _brute_force_covariances(name, np.zeros(1000), K, D)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(5):  # restarts from random points: the optimizer knows nothing of the closed forms
        theta0 = rng.normal(scale=1.0, size=size)
        theta0[: {"E": 1, "V": K, "I": 0}[name[0]]] += math.log(np.trace(scatters.sum(0)) / (D * nk.sum()))
        result = scipy.optimize.minimize(
            lambda theta: _safe_objective(nk, scatters, _brute_force_covariances(name, theta, K, D)[0]), theta0,
            method="BFGS", options={"gtol": 1e-9, "maxiter": 20000})
        if best is None or result.fun < best.fun:
            best = result
    return best.fun, _brute_force_covariances(name, best.x, K, D)[0]


@pytest.mark.parametrize("name", MCLUST_NAMES)
@pytest.mark.parametrize("K, D, seed", [(3, 2, 0), (2, 3, 1)])
def test_m_step_maximizes_the_expected_log_likelihood_like_a_brute_force_optimizer(name, K, D, seed):
    structure = get_structure(name)
    nk, scatters, means = _random_problem(K, D, seed)
    shift = torch.as_tensor(means)
    native = structure.estimate(torch.as_tensor(nk), shift, _statistics(structure, nk, scatters, means), 0.0)
    ours = structure.to_full(native, K, D).numpy()
    value = _objective(nk, scatters, ours)
    reference, reference_covariances = _brute_force(name, nk, scatters, seed)
    # ours is the optimum (never worse than the optimizer, and the same point)
    assert value <= reference + 1e-9 * abs(reference)
    assert abs(value - reference) <= 1e-6 * abs(reference)
    assert np.abs(ours - reference_covariances).max() <= 1e-4 * np.abs(ours).max()


@pytest.mark.parametrize("name", sorted(ITERATIVE))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iterative_m_steps_never_increase_their_objective_and_converge(name, seed):
    nk, scatters, _ = _random_problem(4, 3, seed)
    data = np.diagonal(scatters, axis1=1, axis2=2).copy() if name == "VEI" else scatters
    result = ITERATIVE[name](nk, data)
    objectives = np.array(result.objectives)
    assert result.converged and len(objectives) >= 2
    assert (np.diff(objectives) <= 1e-12 * np.abs(objectives[1:])).all()
    covariances = np.apply_along_axis(np.diag, 1, result.covariances) if name == "VEI" else result.covariances
    full = np.apply_along_axis(np.diag, 1, data) if name == "VEI" else scatters
    assert _objective(nk, full, covariances) == pytest.approx(objectives[-1], rel=1e-12)


@pytest.mark.parametrize("name", MCLUST_NAMES)
def test_the_m_step_increases_the_expected_log_likelihood_from_any_structured_start(name):
    """EM's guarantee: F(new) <= F(old) for any old covariances of the structure (here: 20 random
    structured ones, the projections of random matrices)."""
    structure = get_structure(name)
    K, D = 3, 3
    nk, scatters, means = _random_problem(K, D, 7)
    native = structure.estimate(torch.as_tensor(nk), torch.as_tensor(means),
                                _statistics(structure, nk, scatters, means), 0.0)
    new = _objective(nk, scatters, structure.to_full(native, K, D).numpy())
    rng = np.random.default_rng(3)
    for _ in range(20):
        theta = rng.normal(size=_brute_force_covariances(name, np.zeros(1000), K, D)[1])
        old = _objective(nk, scatters, _brute_force_covariances(name, theta, K, D)[0])
        assert new <= old


# -- structure checks, native forms, one-dimensional data ----------------------------------------
@pytest.mark.parametrize("name", [n for n in MCLUST_NAMES if n not in ("VVV", "EEE", "VVI", "VII")])
def test_covariances_must_have_the_structure(name):
    structure = get_structure(name)
    nk, scatters, means = _random_problem(3, 3, 4)
    native = structure.estimate(torch.as_tensor(nk), torch.as_tensor(means),
                                _statistics(structure, nk, scatters, means), 0.0)
    covariances = structure.to_full(native, 3, 3)
    params = mixtures.MixtureParams(torch.full((3,), 1 / 3, dtype=torch.float64), torch.as_tensor(means),
                                    covariances, name)
    assert_close(params.covariances, covariances, rtol=1e-10, atol=1e-12)
    full = torch.as_tensor(scatters / nk[:, None, None])
    with pytest.raises(mixtures.errors.ParameterError, match=name):
        mixtures.MixtureParams(torch.full((3,), 1 / 3, dtype=torch.float64), torch.as_tensor(means), full, name)


def test_one_dimensional_data_has_mclusts_two_models():
    """With D = 1 every structure is E (equal variance) or V (variable), as in mclust."""
    X, _ = mixtures.MixtureParams([0.4, 0.6], [[-2.0], [3.0]], [0.5, 2.0], "spherical").sample(400, seed=2)
    init = torch.tensor([0, 1]).repeat_interleave(200)[torch.argsort(torch.argsort(X[:, 0]))]
    results = {}
    for name in MCLUST_NAMES + ("E", "V"):
        fit = mixtures.fit(mixtures.GaussianMixture(2, name), X, "em", init=init, reg_covar=0.0, rtol=1e-12,
                           max_iter=2000)
        results[name] = (fit.objective, fit.model.n_parameters(1))
    for name in MCLUST_NAMES:
        letter = "E" if name[0] == "E" else "V"
        assert results[name][1] == results[letter][1]
        assert results[name][0] == pytest.approx(results[letter][0], rel=1e-9)
    assert results["V"][0] > results["E"][0]


# -- Pyro sites ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in MCLUST_NAMES if n not in ("VVV", "EEE", "VVI", "VII", "EII", "EEI")])
def test_the_pyro_site_parametrizes_exactly_the_structure(name):
    structure = get_structure(name)
    nk, scatters, means = _random_problem(3, 3, 5)
    native = structure.estimate(torch.as_tensor(nk), torch.as_tensor(means),
                                _statistics(structure, nk, scatters, means), 0.0)
    transform = DecomposedTransform(structure.constraint)
    unconstrained = transform.inv(native)
    assert unconstrained.shape == (4, 6 if structure.storage == "tril" else 3)
    assert_close(transform(unconstrained), native, rtol=1e-9, atol=1e-11)
    # any unconstrained point maps to covariances of the structure
    moved = transform(unconstrained + 0.3 * torch.randn(unconstrained.shape, generator=torch.Generator().manual_seed(0),
                                                         dtype=torch.float64))
    structure.validate(moved, 3, 3)
    assert structure.constraint.check(moved).all()


@pytest.mark.parametrize("kind", ["conjugate", "nonconjugate"])
def test_a_prior_on_a_structure_without_one_is_refused_naming_those_with_one(kind):
    with pytest.raises(ValueError, match=r"'VEV' has no .* prior; the structures with one are \['full', 'tied', "
                                         r"'diag', 'spherical'\]"):
        mixtures.GaussianMixture(2, "VEV", prior=mixtures.GaussianPrior(kind=kind))
    mixtures.GaussianMixture(2, "VVV", prior=mixtures.GaussianPrior(kind=kind))  # the alias keeps its prior


@pytest.mark.parametrize("name", ["VVE", "VEV"])
def test_the_program_at_ems_optimum_is_stationary_on_a_decomposed_structure(name):
    """The Pyro site holds EM's parameters exactly, and the loss gradient there (EM's fixed point, whose
    M step is exact up to its inner tolerance) is tiny against the gradient at the k-means start."""
    X = mixtures.data.old_faithful()
    model = mixtures.GaussianMixture(2, name)
    em = mixtures.fit(model, X, "em", init="kmeans", reg_covar=0.0, tol=0.0, max_iter=500, warn=False)
    at_optimum = mixtures.fit(model, X, "map", init=em.params, num_steps=1, patience=None, standardize=False)
    at_start = mixtures.fit(model, X, "map", init="kmeans", num_steps=1, patience=None, standardize=False)
    assert float(at_optimum.history["log_likelihood"][0]) == pytest.approx(em.objective, abs=1e-9)
    assert at_optimum.history["grad_norm"][0] < 1e-3 * at_start.history["grad_norm"][0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["VVE", "EVE", "EEV", "VEI"])
def test_map_reaches_ems_optimum_on_a_decomposed_structure(name):
    X = mixtures.data.old_faithful()
    model = mixtures.GaussianMixture(2, name)
    em = mixtures.fit(model, X, "em", init="kmeans", reg_covar=0.0, tol=0.0, max_iter=2000, warn=False)
    result = mixtures.fit(model, X, "map", init="kmeans", num_steps=400, lr=0.05, patience=None)
    assert result.objective == pytest.approx(em.objective, abs=1e-6)
    assert result.params.covariance_type == name


@pytest.mark.parametrize("name", ["EEV", "VEI"])
def test_hard_em_keeps_an_emptied_component_inside_a_coupled_structure(name):
    """Hard EM keeps an empty component's mean; a coupled structure's covariances stay of the structure."""
    X, _ = mixtures.MixtureParams([0.5, 0.5], [[0.0, 0.0], [8.0, 0.0]], [1.0, 1.0], "spherical").sample(200, seed=0)
    init = {"locs": torch.tensor([[0.0, 0.0], [8.0, 0.0], [40.0, 40.0]], dtype=torch.float64)}
    with pytest.warns(UserWarning, match="emptied component"):
        result = mixtures.fit(mixtures.GaussianMixture(3, name), X, "hard_em", init=init, max_iter=20)
    assert result.extras["empty_components"] == [2]
    assert_close(result.params.locs[2], torch.tensor([40.0, 40.0], dtype=torch.float64))
    structure = get_structure(name)
    structure.validate(result.params.native, 3, 2)
