"""``sample_weight``: integer weights = rows repeated, zero weights = rows dropped, in every routine.

The reference is always the same routine on the data with rows repeated (or dropped), from the
same start: exact to 1e-10 (float64) for the closed-form routines, the same loss / potential
energy and gradient at the same point for MAP, SVI and NUTS.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from fit_checks import same_fit

import mixtures
from mixtures import GaussianMixture, GaussianPrior
from mixtures.core.family import fresh_param_store
from mixtures.errors import DataError
from mixtures.inference import ROUTINES
from mixtures.inference.pyro import fused_elbo, potential
from mixtures.inference.pyro.nuts import site_transforms
from mixtures.kernels.kmeans import weighted_median

from conftest import assert_close

COVARIANCES = ("full", "diag", "spherical", "tied")


@pytest.fixture(scope="module")
def data():
    """``(X (60, 2), integer weights (60,) in 0..3 (some zero), X with rows repeated, X without zero rows)``."""
    generator = torch.Generator().manual_seed(3)
    X = torch.randn(60, 2, generator=generator, dtype=torch.float64)
    X[:25] += torch.tensor([3.0, 1.0], dtype=torch.float64)
    X[25:40] -= torch.tensor([2.0, -2.0], dtype=torch.float64)
    w = torch.randint(0, 4, (60,), generator=generator).double()
    return X, w, X.repeat_interleave(w.long(), 0), X[w > 0]


def _start(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mixtures.fit(GaussianMixture(model.n_components, model.cov_type.name), X, "em", max_iter=0).params


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mixtures.fit(*args, **kwargs)


@pytest.mark.parametrize("covariance_type", COVARIANCES)
@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_em_repeated_and_dropped_rows(data, covariance_type, method):
    X, w, repeated, dropped = data
    model = GaussianMixture(3, covariance_type)
    init = _start(model, X)
    weighted = _fit(model, X, method, init=init, sample_weight=w, max_iter=15, tol=0.0)
    same_fit(weighted, _fit(model, repeated, method, init=init, max_iter=15, tol=0.0))
    ones = torch.where(w > 0, 1.0, 0.0).double()
    same_fit(_fit(model, X, method, init=init, sample_weight=ones, max_iter=15, tol=0.0),
              _fit(model, dropped, method, init=init, max_iter=15, tol=0.0))


def test_em_tolerance_is_per_unit_weight(data):
    """``tol`` compares the change per unit of weight: the weighted run stops where the repeated one does."""
    X, w, repeated, _ = data
    model = GaussianMixture(3, "full")
    init = _start(model, X)
    same_fit(_fit(model, X, "em", init=init, sample_weight=w, tol=1e-4),
              _fit(model, repeated, "em", init=init, tol=1e-4))


@pytest.mark.parametrize("method", ["kmeans", "kmedians"])
def test_kmeans_and_kmedians_repeated_rows(data, method):
    X, w, repeated, _ = data
    model = GaussianMixture(3, "diag")
    init = _start(model, X)
    weighted = _fit(model, X, method, init=init, sample_weight=w)
    reference = _fit(model, repeated, method, init=init)
    same_fit(weighted, reference, columns=("log_likelihood", "elbo", "objective"))
    assert_close(weighted.extras["centers"], reference.extras["centers"], rtol=1e-12, atol=1e-12)


def test_weighted_median_is_numpy_median_of_repeated_values():
    generator = torch.Generator().manual_seed(0)
    for n in (1, 2, 5, 8):
        values = torch.randint(0, 5, (n, 3), generator=generator).double()  # ties included
        weights = torch.randint(0, 4, (n,), generator=generator).double()
        weights[0] += 1.0  # a positive total
        expected = np.median(np.repeat(values.numpy(), weights.long().numpy(), axis=0), axis=0)
        assert_close(weighted_median(values, weights), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("updates", ["sklearn", "model"])
def test_vb_repeated_rows(data, covariance_type, updates):
    X, w, repeated, _ = data
    psi = torch.eye(2) if covariance_type == "full" else torch.ones(2)
    model = GaussianMixture(3, covariance_type, prior=GaussianPrior(mean_prior=[0.5, 0.0], covariance_prior=psi))
    init = _start(model, X)
    weighted = _fit(model, X, "vb", init=init, sample_weight=w, max_iter=15, tol=0.0, updates=updates)
    reference = _fit(model, repeated, "vb", init=init, max_iter=15, tol=0.0, updates=updates)
    same_fit(weighted, reference, columns=("log_likelihood", "elbo", "regularized_elbo"))


def test_vb_from_responsibilities_repeated_rows(data):
    """A partition start: the initial q(Z) (its statistics and entropy) is weighted too."""
    X, w, repeated, _ = data
    model = GaussianMixture(2, "full", prior=GaussianPrior(mean_prior=[0.0, 0.0], covariance_prior=torch.eye(2)))
    labels = (X[:, 0] > 0).long()
    weighted = _fit(model, X, "vb", init=labels, sample_weight=w, max_iter=5, tol=0.0)
    reference = _fit(model, repeated, "vb", init=labels.repeat_interleave(w.long()), max_iter=5, tol=0.0)
    same_fit(weighted, reference)


@pytest.mark.parametrize("method", ["vb", "em"])
def test_prior_defaults_are_the_weighted_datas(data, method):
    """A prior's data-scaled defaults (mean_prior, covariance_prior) come from the weighted data."""
    X, w, repeated, dropped = data
    model = GaussianMixture(2, "full", prior=GaussianPrior())
    init = _start(model, X)
    weighted = _fit(model, X, method, init=init, sample_weight=w, max_iter=5, tol=0.0)
    same_fit(weighted, _fit(model, repeated, method, init=init, max_iter=5, tol=0.0))
    ones = (w > 0).double()
    same_fit(_fit(model, X, method, init=init, sample_weight=ones, max_iter=5, tol=0.0),
              _fit(model, dropped, method, init=init, max_iter=5, tol=0.0))


def test_stepwise_full_batch_repeated_rows(data):
    """One minibatch holding every point, step size 1, no shuffle: batch EM, so the identity is exact."""
    X, w, repeated, _ = data
    model = GaussianMixture(3, "full")
    init = _start(model, X)
    options = dict(batch_size=10_000, step_size=lambda t: 1.0, shuffle=False, num_epochs=6, warm_start_steps=2,
                   init=init)
    weighted = _fit(model, X, "stepwise_em", sample_weight=w, **options)
    same_fit(weighted, _fit(model, repeated, "stepwise_em", **options))


def test_stepwise_minibatches_run_weighted(data):
    """Minibatches cut by rows have no repeated-rows twin; the run is finite and its trace weighted."""
    X, w, _, _ = data
    result = _fit(GaussianMixture(2, "diag"), X, "stepwise_em", sample_weight=w, batch_size=16, num_epochs=3)
    final = float(result.params.log_prob(X).mul(w).sum())
    assert_close(result.history["log_likelihood"][-1], final, rtol=1e-10)


@pytest.mark.parametrize("fused", [True, False])
def test_map_loss_and_path_repeated_rows(data, fused):
    """The same loss at the same parameters and, without standardization (Adam sees identical
    gradients), the same path: MAP's optimum is that of the repeated data."""
    X, w, repeated, _ = data
    model = GaussianMixture(2, "full")
    init = _start(model, X)
    with fused_elbo.enabled(fused):
        weighted = _fit(model, X, "map", init=init, sample_weight=w, num_steps=10, standardize=False)
        reference = _fit(model, repeated, "map", init=init, num_steps=10, standardize=False)
    assert_close(weighted.history["loss"], reference.history["loss"], rtol=1e-9, atol=1e-8)
    assert_close(weighted.params.locs, reference.params.locs, rtol=1e-8, atol=1e-8)
    # standardized (the default): the start's loss is the same, and the logged log-likelihood weighted
    standardized = _fit(model, X, "map", init=init, sample_weight=w, num_steps=3)
    assert_close(standardized.history["log_likelihood"][0], reference.history["log_likelihood"][0], rtol=1e-12)
    assert_close(standardized.history["log_likelihood"][-1],
                 float(standardized.params.log_prob(X).mul(w).sum()), rtol=1e-10)


@pytest.mark.parametrize("local_guide", ["enumerate", "mean_field"])
def test_svi_elbo_repeated_rows(data, local_guide):
    X, w, repeated, dropped = data
    prior = GaussianPrior(mean_prior=[0.0, 0.0], covariance_prior=torch.eye(2))
    model = GaussianMixture(2, "full", prior=prior)
    init = _start(model, X)
    weighted = _fit(model, X, "svi", init=init, sample_weight=w, num_steps=5, local_guide=local_guide)
    reference = _fit(model, repeated, "svi", init=init, num_steps=5, local_guide=local_guide)
    assert_close(weighted.history["elbo"][0], reference.history["elbo"][0], rtol=1e-12)
    if local_guide == "enumerate":  # delta guide, no per-point parameters: the same Adam path
        assert_close(weighted.history["elbo"], reference.history["elbo"], rtol=1e-9)


def test_program_paths_agree(data):
    """The weighted program (Trace_ELBO on the collapsed factor) and the weighted fused pass give the
    same loss, equal to Pyro's TraceEnum_ELBO of the plain program on the repeated rows."""
    X, w, repeated, _ = data
    model = GaussianMixture(3, "tied")
    params = _start(model, X)
    from pyro.infer import Trace_ELBO, TraceEnum_ELBO
    with fresh_param_store():
        weighted = Trace_ELBO(max_plate_nesting=1).loss(lambda data: model.model(data, params, sample_weight=w),
                                                        lambda data: None, X)
    with fresh_param_store():
        plain = TraceEnum_ELBO(max_plate_nesting=1).loss(lambda data: model.model(data, params),
                                                         lambda data: None, repeated)
    assert_close(weighted, plain, rtol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_nuts_potential_energy_and_gradient_repeated_rows(data, fused):
    """NUTS's potential energy and its gradient at the same point equal the repeated data's (exactly)."""
    X, w, repeated, _ = data
    model = GaussianMixture(2, "diag", prior=GaussianPrior(mean_prior=[0.0, 0.0], covariance_prior=torch.ones(2)))
    init = _start(model, X)
    from pyro.infer.mcmc.util import initialize_model

    def energy_and_grad(data, weights):
        with potential.enabled(fused), fresh_param_store():
            from mixtures.inference.pyro.nuts import make_kernel
            kernel = make_kernel(model, data, init, sample_weight=weights)
            transforms = site_transforms(model, data, init)
            start = {name: transforms[name](value) for name, value in model.site_values(init).items()}
            if fused:
                energy = kernel.potential_fn
            else:
                energy = initialize_model(kernel.model, model_args=(data,), transforms=transforms,
                                          max_plate_nesting=1)[1]
            point = {name: value.detach().clone().requires_grad_() for name, value in start.items()}
            value = energy(point)
            return value.detach(), torch.autograd.grad(value, list(point.values()))

    value, grads = energy_and_grad(X, w)
    expected, expected_grads = energy_and_grad(repeated, None)
    assert_close(value, expected, rtol=1e-12)
    for got, want in zip(grads, expected_grads):
        assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_nuts_runs_weighted(data):
    X, w, _, _ = data
    model = GaussianMixture(2, "spherical", prior=GaussianPrior())
    result = _fit(model, X, "nuts", init=_start(model, X), sample_weight=w, num_chains=1, warmup=10,
                  num_samples=5, warn=False)
    assert torch.isfinite(result.history["log_likelihood"]).all()
    draw = result.posterior.draws.index(0)
    assert_close(result.history["log_likelihood"][0], float(draw.log_prob(X).mul(w).sum()), rtol=1e-10)


def test_poisson_em_repeated_rows():
    generator = torch.Generator().manual_seed(1)
    X = torch.poisson(torch.full((40, 2), 4.0, dtype=torch.float64), generator=generator)
    w = torch.randint(0, 3, (40,), generator=generator).double()
    model = mixtures.PoissonMixture(2)
    init = _fit(model, X, "em", max_iter=0).params
    a = _fit(model, X, "em", init=init, sample_weight=w, max_iter=10, tol=0.0)
    b = _fit(model, X.repeat_interleave(w.long(), 0), "em", init=init, max_iter=10, tol=0.0)
    assert_close(a.params.rates, b.params.rates, rtol=1e-10)
    assert_close(a.history["log_likelihood"], b.history["log_likelihood"], rtol=1e-10)


def test_bic_with_weights_counts_the_total_weight(data):
    X, w, repeated, _ = data
    result = _fit(GaussianMixture(2, "full"), X, "em", sample_weight=w)
    assert_close(result.bic(X, sample_weight=w), result.bic(repeated), rtol=1e-12)
    assert_close(result.aic(X, sample_weight=w), result.aic(repeated), rtol=1e-12)


def test_weighted_kmeans_init_never_picks_a_zero_weight_point(data):
    X, w, _, _ = data
    far = torch.cat([X, torch.full((5, 2), 100.0, dtype=torch.float64)])
    weights = torch.cat([w, torch.zeros(5, dtype=torch.float64)])
    for init in ("kmeans", "kmeans++", "random_from_data", "random", "hc"):
        result = _fit(GaussianMixture(3, "full"), far, "em", init=init, sample_weight=weights, max_iter=0, seed=1)
        assert float(result.params.locs.abs().max()) < 50.0, init


@pytest.mark.parametrize("bad, message", [
    (torch.ones(59), "shape"), (torch.full((60,), float("nan")), "NaN"), (-torch.ones(60), "negative"),
    (torch.zeros(60), "sums to zero"), (["a"] * 60, "numbers"), (torch.ones(60, 1), "shape"),
])
def test_invalid_weights_are_refused(data, bad, message):
    X = data[0]
    with pytest.raises(DataError, match=message):
        mixtures.fit(GaussianMixture(2, "full"), X, "em", sample_weight=bad)


def test_registry_names_the_routines_that_take_weights(data):
    weighted = sorted(name for name, routine in ROUTINES.items() if routine.sample_weight)
    assert {"em", "hard_em", "kmeans", "kmedians", "stepwise_em", "vb", "map", "svi", "nuts"} <= set(weighted)
    assert "sample_weight" not in ROUTINES["em"].option_names  # a fit parameter, not a routine option


def test_a_routine_without_weights_names_those_with(data, monkeypatch):
    X, w, _, _ = data
    monkeypatch.setitem(ROUTINES, "em", dataclasses.replace(ROUTINES["em"], sample_weight=False))
    with pytest.raises(ValueError, match=r"does not take sample_weight; methods that do: \[.*'hard_em'"):
        mixtures.fit(GaussianMixture(2, "full"), X, "em", sample_weight=w)


def test_streamed_data_take_weights_in_em_only(data):
    """Streamed EM with weights: tests/core/test_stream_pointwise.py; other streaming routines refuse."""
    X, w, _, _ = data
    with pytest.raises(ValueError, match="in memory"):
        mixtures.fit(GaussianMixture(2, "full"), lambda: iter([X[:30], X[30:]]), "kmeans", sample_weight=w)


def test_numpy_and_list_weights(data):
    X, w, _, _ = data
    a = _fit(GaussianMixture(2, "full"), X, "em", sample_weight=w.numpy(), max_iter=3)
    b = _fit(GaussianMixture(2, "full"), X, "em", sample_weight=w.tolist(), max_iter=3)
    assert_close(a.params.locs, b.params.locs, rtol=0, atol=0)


def test_estimator_fit_with_sample_weight(data):
    """``mixtures.sklearn.GaussianMixture.fit(X, sample_weight=w)`` from a given start = the repeated rows' fit."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from mixtures.sklearn import GaussianMixture as Estimator
    X, w, repeated, _ = data
    start = dict(weights_init=np.array([0.5, 0.5]), means_init=X[[0, 30]].numpy(), precisions_init=np.ones((2, 2)))
    weighted = Estimator(2, covariance_type="diag", **start).fit(X.numpy(), sample_weight=w.numpy())
    reference = Estimator(2, covariance_type="diag", **start).fit(repeated.numpy())
    assert weighted.n_iter_ == reference.n_iter_
    assert_close(weighted.means_, reference.means_, rtol=1e-10)
    assert_close(weighted.lower_bound_, reference.lower_bound_, rtol=1e-10)
    assert_close(weighted.bic(X.numpy(), sample_weight=w.numpy()), reference.bic(repeated.numpy()), rtol=1e-10)
    piped = make_pipeline(FunctionTransformer(), Estimator(2, covariance_type="diag", **start))
    piped.fit(X.numpy(), gaussianmixture__sample_weight=w.numpy())
    assert_close(piped[-1].means_, reference.means_, rtol=1e-10)


@pytest.mark.parametrize("family", ["student_t", "noise"])
@pytest.mark.parametrize("method", ["em", "hard_em"])
def test_families_without_a_fused_pass_repeated_rows(data, family, method):
    """The t and noise families' E step (the shared responsibility pass) weighs every point."""
    from mixtures.families import NoisyMixture, StudentTMixture
    X, w, repeated, _ = data
    if family == "student_t":
        model = StudentTMixture(2, "full", dof=5.0)
    else:  # the box of every row: the same region for the weighted and the repeated data
        model = NoisyMixture.over(X, GaussianMixture(2, "diag"))
    init = _fit(model, X, "em", max_iter=0).params
    a = _fit(model, X, method, init=init, sample_weight=w, max_iter=8, tol=0.0)
    b = _fit(model, repeated, method, init=init, max_iter=8, tol=0.0)
    assert_close(a.params.weights, b.params.weights, rtol=1e-10, atol=1e-12)
    clusters_a, clusters_b = (r.params.clusters() if family == "noise" else r.params for r in (a, b))
    assert_close(clusters_a.locs, clusters_b.locs, rtol=1e-10, atol=1e-10)
    assert_close(a.history["log_likelihood"], b.history["log_likelihood"], rtol=1e-10)


def test_weighted_pass_is_the_same_on_parallel_workers(data):
    """Chunks on two pass workers give the single-threaded weighted sums bit for bit."""
    X, w, _, _ = data
    model = GaussianMixture(3, "full")
    init = _start(model, X)
    one = _fit(model, X, "em", init=init, sample_weight=w, max_iter=5, chunk_size=7, threads=1)
    two = _fit(model, X, "em", init=init, sample_weight=w, max_iter=5, chunk_size=7, threads=2)
    assert torch.equal(one.params.locs, two.params.locs)
    assert one.history["log_likelihood"].tolist() == two.history["log_likelihood"].tolist()



def test_weighted_seeding_sample_of_large_data_skips_zero_weights(monkeypatch):
    """Above SEEDING_SAMPLE points k-means++ seeds from a sample drawn ∝ weight: no zero-weight row."""
    from mixtures.kernels import kmeans
    monkeypatch.setattr(kmeans, "SEEDING_SAMPLE", 64)
    X = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = torch.zeros(500, dtype=torch.float64)
    w[100:110] = torch.arange(1.0, 11.0, dtype=torch.float64)
    centres = kmeans.kmeans_plusplus(X, 4, torch.Generator().manual_seed(1), w)
    assert all(bool((X[100:110] == centre).all(-1).any()) for centre in centres)


@pytest.mark.parametrize("method", ["kmeans", "kmedians"])
def test_an_emptied_cluster_takes_a_point_of_positive_weight(data, method):
    """A centre far from every point empties its cluster; it takes the farthest point that has weight."""
    X, w, _, _ = data
    far = torch.cat([X, torch.tensor([[40.0, 40.0]], dtype=torch.float64)])  # the farthest row, weight 0
    weights = torch.cat([w, torch.zeros(1, dtype=torch.float64)])
    start = mixtures.MixtureParams(torch.full((3,), 1 / 3, dtype=torch.float64),
                                   torch.tensor([[3.0, 1.0], [-2.0, 2.0], [80.0, 80.0]], dtype=torch.float64),
                                   torch.eye(2, dtype=torch.float64).expand(3, 2, 2).clone(), "full")
    result = _fit(GaussianMixture(3, "full"), far, method, init=start, sample_weight=weights, max_iter=1)
    assert float(result.extras["centers"].abs().max()) < 30.0
    assert result.extras["degenerate_clusters"] == []


def test_fewer_weighted_points_than_components_is_refused(data):
    X = data[0]
    weights = torch.zeros(60, dtype=torch.float64)
    weights[:2] = 1.0
    with pytest.raises(DataError, match="2 point.*of positive weight, fewer than the model's K=3"):
        mixtures.fit(GaussianMixture(3, "full"), X, "em", sample_weight=weights)
