"""The contract every routine keeps on every family and covariance structure it supports.

Parametrized over the registries themselves (``mixtures.ROUTINES``, the Gaussian family's
``STRUCTURES``, and the families), so a new routine, structure or family is tested by being
registered: sample data from a known mixture, fit, and check the invariants shared by all
(dynamax's pattern):

* the result is finite and has the family's parameter type, K and spec;
* the history has the shared columns on one scale: the last ``log_likelihood`` is
  ``log p(X | params)`` summed over the data (for routines whose record says their history
  reports the training likelihood at the returned parameters);
* the objective each routine guarantees is monotone: EM's log-likelihood (and MAP-EM's log
  joint), VB's ELBO (with ``reg_covar=0``), k-means' inertia;
* predictions agree with the parameters, and a save/load round trip answers the same.
"""

from __future__ import annotations

import math

import pytest
import torch

import mixtures
from mixtures import GaussianMixture, GaussianPrior, PoissonMixture, PoissonParams, PoissonPrior
from mixtures.families import NoiseRegion, NoisyMixture, NoisyParams, StudentTMixture, StudentTParams, StudentTPrior
from mixtures.families.gaussian import STRUCTURES
from mixtures.inference import ROUTINES

from conftest import assert_close, true_params

#: small budgets: the contract is about invariants, not about reaching the optimum
BUDGETS = {"em": {"max_iter": 30}, "hard_em": {"max_iter": 30}, "kmeans": {"max_iter": 30},
           "kmedians": {"max_iter": 30}, "stepwise_em": {"num_epochs": 2, "batch_size": 100},
           "map": {"num_steps": 30}, "svi": {"num_steps": 30}, "vb": {"max_iter": 20, "reg_covar": 0.0},
           "nuts": {"warmup": 15, "num_samples": 8, "max_tree_depth": 4, "num_chains": 2, "chain_processes": 1}}


def gaussian_case(structure: str):
    def model(prior: bool):
        return GaussianMixture(3, structure, prior=GaussianPrior() if prior else None)
    return model, true_params(structure)


def poisson_case():
    def model(prior: bool):
        return PoissonMixture(2, prior=PoissonPrior() if prior else None)
    truth = PoissonParams(torch.tensor([0.4, 0.6], dtype=torch.float64),
                          torch.tensor([[2.0, 9.0], [7.0, 1.5]], dtype=torch.float64))
    return model, truth


def student_t_case(structure: str):
    def model(prior: bool):
        return StudentTMixture(3, structure, prior=StudentTPrior() if prior else None)
    gaussian = true_params(structure)
    truth = StudentTParams.from_native(gaussian.weights, gaussian.locs, gaussian.native,
                                       torch.tensor([4.0, 8.0, 20.0], dtype=torch.float64), structure)
    return model, truth


#: the noise's region in the noisy cases: a box around true_params' clusters
NOISE_BOX = NoiseRegion("box", 18.0 * 17.0, (-7.0, -5.0), (11.0, 12.0))


def noisy_case(family: str, structure: str):
    def model(prior: bool):
        clusters = (GaussianMixture if family == "gaussian" else StudentTMixture)(3, structure)
        return NoisyMixture(clusters.with_prior(GaussianPrior() if prior else None), NOISE_BOX)
    clusters = true_params(structure) if family == "gaussian" else student_t_case(structure)[1]
    return model, NoisyParams.from_clusters(clusters, 0.1, NOISE_BOX)


FAMILIES = {f"gaussian-{name}": (lambda name=name: gaussian_case(name)) for name in STRUCTURES}
FAMILIES["poisson"] = poisson_case
FAMILIES.update({f"student_t-{name}": (lambda name=name: student_t_case(name)) for name in STRUCTURES})
FAMILIES.update({f"noisy-{family}-{name}": (lambda family=family, name=name: noisy_case(family, name))
                 for family, name in (("gaussian", "full"), ("gaussian", "tied"), ("student_t", "full"),
                                      ("student_t", "diag"))})

CASES = [(family, method) for family in FAMILIES for method in ROUTINES]


def fit_case(family: str, method: str):
    make_model, truth = FAMILIES[family]()
    routine = ROUTINES[method]
    structure = family.split("-")[-1] if family.startswith(("gaussian-", "student_t-")) else None
    if routine.prior == "required" and structure is not None and not STRUCTURES[structure].prior_kinds:
        pytest.skip(f"{family} has no prior (a model with one is refused: tests/families/gaussian/test_structures.py)")
    model = make_model(prior=routine.prior == "required")
    if not routine.requires <= model.capabilities:
        pytest.skip(f"{family} lacks {sorted(routine.requires - model.capabilities)} for {method}")
    X, _ = truth.sample(300, seed=5)
    options = dict(BUDGETS.get(method, {}))
    reg_covar = options.pop("reg_covar", 1e-6)
    with torch.random.fork_rng():
        result = mixtures.fit(model, X, method, seed=0, reg_covar=reg_covar, **options)
    return model, X, result


@pytest.mark.filterwarnings("ignore::UserWarning")  # convergence and degeneracy notes of short budgets
@pytest.mark.parametrize("family, method", CASES)
def test_every_routine_keeps_the_contract_on_every_family(family, method, tmp_path):
    model, X, result = fit_case(family, method)
    params = result.params
    model.check_params(params)
    assert all(torch.isfinite(t).all() for t in params.tensors().values())
    assert math.isfinite(result.objective)
    # the shared columns, and the log-likelihood on the data's scale
    for column in ("iteration", "log_likelihood", "elbo", "kl", "time"):
        assert column in result.history.columns
    log_likelihood = result.history["log_likelihood"]
    assert torch.isfinite(log_likelihood).all()
    if ROUTINES[method].training_likelihood:
        assert_close(log_likelihood[-1], params.log_prob(X).sum(), rtol=1e-9, atol=1e-7)
    _check_monotone(method, result)
    # queries agree with the parameters, and survive a round trip through a file
    proba = result.predict_proba(X)
    assert_close(proba.sum(-1), torch.ones(X.shape[0], dtype=X.dtype), rtol=0, atol=1e-10)
    assert torch.equal(result.predict(X), params.joint_log_prob(X).argmax(-1))
    loaded = mixtures.load(result.save(tmp_path / "fit.pt"))
    assert type(loaded.model) is type(model) and loaded.model.spec() == model.spec()
    assert torch.equal(loaded.predict(X), result.predict(X))
    assert loaded.score(X) == result.score(X)


def _check_monotone(method: str, result) -> None:
    history = result.history
    if method == "em":  # EM's objective never decreases (the log joint with a prior)
        objective = history["log_likelihood"] + (history["log_prior"] if "log_prior" in history else 0.0)
        assert (objective.diff() >= -1e-9 * objective.abs()[1:].clamp_min(1.0)).all()
    elif method == "vb":  # CAVI never decreases the exact ELBO when reg_covar = 0
        elbo = history["elbo"]
        assert (elbo.diff() >= -1e-9 * elbo.abs()[1:]).all()
    elif method == "kmeans":  # Lloyd never increases the inertia
        inertia = history["objective"]
        assert (inertia.diff() <= 1e-9 * inertia.abs()[1:]).all()


def test_the_contract_covers_every_registered_routine_structure_and_family():
    methods = {method for _, method in CASES}
    assert methods == set(ROUTINES)
    assert {family.removeprefix("gaussian-") for family, _ in CASES} >= set(STRUCTURES)
    tested = {family for family, _ in CASES}
    assert {"poisson", "student_t-full", "noisy-gaussian-full", "noisy-student_t-full"} <= tested


@pytest.mark.parametrize("method", list(ROUTINES))
def test_every_routines_trial_options_are_its_own(method):
    """The experiment runner checks a method's options by a trial fit with the record's ``trial`` options
    (:func:`mixtures.experiment.runner.run_task`): they must be options the routine takes, with valid values,
    and cut its budget to one iteration where it has one."""
    routine = ROUTINES[method]
    trial = routine.trial
    assert routine.check_options(trial) == trial
    if routine.budget_option is not None and routine.trial_options is None:
        assert trial == {routine.budget_option: 1}
    assert trial, f"{method} has no budget option and no trial options: its trial fit would be a full fit"
