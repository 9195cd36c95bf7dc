"""Non-centred means (``fit(..., "nuts", noncentred=...)``): the sampler's potential in the coordinates
``q`` (``z_k`` for the means, ``μ_k = loc_k + L_k z_k``) equals, value and gradient to 1e-10 at random
points, ``U(g(q)) - log |det ∂g/∂q|`` with ``U`` Pyro's own potential of the (centred) program, ``g``
written out by hand here and its log-determinant the brute-force ``slogdet`` of its full Jacobian.
The draws come back as the model's means."""

import pytest
import torch
from pyro.infer.mcmc.util import initialize_model

import mixtures
from mixtures import GaussianMixture, GaussianPrior, NoisyMixture, StudentTMixture
from mixtures.core.family import MAX_PLATE_NESTING
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.nuts import make_kernel, site_transforms
from mixtures.init import initialize

from conftest import true_params

pytestmark = pytest.mark.filterwarnings("ignore:Singular sample detected")


def problem(covariance_type, kind="conjugate"):
    X, _ = true_params("full").sample(200, seed=3)
    X = X + 10.0
    prior = GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.3, kind=kind)
    model = GaussianMixture(3, covariance_type, prior=prior)
    return model, X, initialize(model, X, "kmeans++", seed=0)


def hand_map(model, X, transforms, components):
    """``g: q -> u`` (the model's unconstrained coordinates), from the prior's formulas."""
    prior = model.resolved_prior(X)

    def g(q):
        u = dict(q)
        if "precision" in q:
            precision = transforms["precision"].inv(q["precision"])
            if precision.dim() == 3:  # full: L_k L_kᵀ = (β₀ Λ_k)⁻¹
                scale = torch.linalg.cholesky(torch.linalg.inv(prior.mean_precision * precision))
                moved = prior.mean_prior + (scale @ q["locs"].unsqueeze(-1)).squeeze(-1)
            else:  # diag: independent Normal–Gamma per dimension
                moved = prior.mean_prior + q["locs"] / (prior.mean_precision * precision).sqrt()
        else:  # non-conjugate: a fixed scale
            moved = prior.mean_prior + q["locs"] * prior.scale_prior_scale / prior.mean_precision.sqrt()
        u["locs"] = torch.where(components.unsqueeze(-1), moved, q["locs"])
        return u
    return g


@pytest.mark.parametrize("covariance_type,kind,mask", [
    ("full", "conjugate", [True, True, True]), ("full", "conjugate", [False, True, True]),
    ("diag", "conjugate", [True, False, True]), ("full", "nonconjugate", [True, True, False])])
def test_potential_is_pyros_with_the_jacobian(covariance_type, kind, mask):
    model, X, init = problem(covariance_type, kind)
    components = torch.tensor(mask)
    transforms = site_transforms(model, X, init)
    start = model.site_values(init)
    energy = potential.CollapsedPotential(model, X, transforms)
    energy.use_standard(start, components)
    assert energy.standard == ("locs",) and "locs" not in energy.sampler_transforms
    _, reference, _, _ = initialize_model(model.model, model_args=(X,), max_plate_nesting=MAX_PLATE_NESTING,
                                          transforms=transforms,
                                          initial_params={n: transforms[n](v) for n, v in start.items()})
    g = hand_map(model, X, transforms, components)
    names = list(start)
    q0 = energy.sampler_coordinates(start)
    shapes = [q0[n].shape for n in names]

    def unflatten(flat):
        parts = torch.split(flat, [s.numel() for s in shapes])
        return {n: p.reshape(s) for n, p, s in zip(names, parts, shapes)}

    def expected(flat):
        u = g(unflatten(flat))
        u_flat = torch.cat([u[n].reshape(-1) for n in names])
        jacobian = torch.autograd.functional.jacobian(
            lambda f: torch.cat([v.reshape(-1) for v in g(unflatten(f)).values()]), flat, create_graph=True)
        return reference({n: u[n] for n in names}), u_flat, torch.linalg.slogdet(jacobian)[1]

    generator = torch.Generator().manual_seed(1)
    flat0 = torch.cat([q0[n].reshape(-1) for n in names])
    for _ in range(3):
        flat = (flat0 + 0.3 * torch.randn(flat0.shape, generator=generator, dtype=flat0.dtype)).requires_grad_()
        pyro_value, _, log_det = expected(flat)
        want = pyro_value - log_det
        want_grad, = torch.autograd.grad(want, flat)
        point = {n: v.detach().requires_grad_() for n, v in unflatten(flat.detach()).items()}
        got = energy(point)
        got_grad = torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(got, list(point.values()))])
        assert abs(float(got) - float(want)) <= 1e-10 * abs(float(want)), (float(got), float(want))
        assert float(log_det) != 0.0 or kind == "nonconjugate"
        torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-10 * float(want_grad.abs().max()))


def _pyro_potential(model, X, transforms, start):
    _, reference, _, _ = initialize_model(model.model, model_args=(X,), max_plate_nesting=MAX_PLATE_NESTING,
                                          transforms=transforms,
                                          initial_params={n: transforms[n](v) for n, v in start.items()})
    return reference


def noisy_problem():
    X, _ = true_params("full").sample(150, seed=4)
    X = torch.cat([X, torch.rand(15, 2, generator=torch.Generator().manual_seed(0), dtype=X.dtype) * 12 - 6])
    model = NoisyMixture.over(X, GaussianMixture(2, "full", prior=GaussianPrior()))
    return model, X, mixtures.fit(model.with_prior(None), X, "em", max_iter=20, warn=False).params


@pytest.mark.parametrize("family", ["noise", "student_t"])
def test_a_family_without_a_fused_pass_gets_pyros_potential(family):
    """A noise component or a t has no linear log joint form: the collapsed potential takes its likelihood
    from the parameters' ``log_prob``; centred, it is Pyro's potential of the program, value and gradient."""
    if family == "noise":
        model, X, init = noisy_problem()
    else:
        X, _ = true_params("full").sample(120, seed=6)
        model = StudentTMixture(2, "full", prior=GaussianPrior())
        init = mixtures.fit(model.with_prior(None), X, "em", max_iter=10, warn=False).params
    transforms = site_transforms(model, X, init)
    start = model.site_values(init)
    assert not potential.applies(model, X, init) and potential.applies(model, X, init, any_family=True)
    energy = potential.CollapsedPotential(model, X, transforms)
    reference = _pyro_potential(model, X, transforms, start)
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        unconstrained = {n: transforms[n](v) for n, v in start.items()}
        point = {n: (u + 0.2 * torch.randn(u.shape, generator=generator, dtype=X.dtype)).requires_grad_()
                 for n, u in unconstrained.items()}
        got, want = energy(point), reference(point)
        assert abs(float(got.detach()) - float(want.detach())) <= 1e-10 * abs(float(want.detach()))
        sites = list(point.values())
        for a, b in zip(torch.autograd.grad(got, sites), torch.autograd.grad(want, sites)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10 * float(b.abs().max()))


def test_a_noise_components_placeholder_is_drawn_from_its_prior():
    """No data reach the noise's placeholder cluster: its mean and covariance have their prior as posterior, a
    funnel whose wide end held every divergent transition of the robust experiment's Gaussian + noise chains.
    NUTS leaves them out of its coordinates (the potential is Pyro's at the pinned values, to 1e-10, but for
    the pinned slices' constant log-Jacobian of the map to unconstrained space) and fills the draws with exact
    draws from the prior."""
    model, X, init = noisy_problem()
    kernel = make_kernel(model, X, init)
    energy = kernel.potential_fn
    assert set(energy.pinned) == {"locs", "precision"} and energy.free_components.tolist() == [0, 1]
    assert energy.standard == ()
    empty = make_kernel(model, X, init, noncentred=True).potential_fn
    assert empty.standard == ("locs",) and empty.components.tolist() == [True, True, False]
    transforms = site_transforms(model, X, init)
    start = model.site_values(init)
    reference = _pyro_potential(model, X, transforms, start)
    q0 = energy.sampler_coordinates(start)
    assert q0["locs"].shape == (2, 2) and q0["weights"].shape == (2,)  # the noise weight is sampled
    pinned_log_det = sum(transforms[n].log_abs_det_jacobian(v[2:], transforms[n](v[2:])).sum()
                         for n, v in start.items() if n in energy.pinned)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        q = {n: (v + 0.3 * torch.randn(v.shape, generator=generator, dtype=X.dtype)).requires_grad_()
             for n, v in q0.items()}
        u = {n: transforms[n](energy._full(n, transforms[n].inv(v))) if n in energy.pinned else v
             for n, v in q.items()}
        got, want = energy(q), reference(u) - pinned_log_det
        torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
        sites = list(q.values())
        for a, b in zip(torch.autograd.grad(got, sites), torch.autograd.grad(want, sites)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10 * float(b.abs().max()))
    fits = [mixtures.fit(model, X, "nuts", init=init, num_chains=1, warmup=20, num_samples=10, warn=False, seed=0)
            for _ in range(2)]
    placeholder = fits[0].posterior.draws.base.locs[:, 2]  # (S, D): one draw from the prior per draw
    assert placeholder.shape == (10, 2) and bool((placeholder.std(0) > 0).all())
    assert torch.equal(placeholder, fits[1].posterior.draws.base.locs[:, 2])  # the chain's seed fixes them


def test_start_round_trip_and_draws_are_the_models_means():
    model, X, init = problem("full")
    transforms = site_transforms(model, X, init)
    start = model.site_values(init)
    energy = potential.CollapsedPotential(model, X, transforms)
    energy.use_standard(start)
    q = energy.sampler_coordinates(start)
    assert not torch.allclose(q["locs"], start["locs"])
    draws = {n: (v if n == "locs" else start[n]).unsqueeze(0) for n, v in q.items()}
    torch.testing.assert_close(energy.model_sites(draws)["locs"][0], start["locs"], rtol=0, atol=1e-12)
    # "empty": only the components holding fewer than D + 2 points at the start
    empty = init.replace(weights=torch.tensor([0.5, 0.5 - 1e-9, 1e-9], dtype=X.dtype))
    kernel = make_kernel(model, X, empty, noncentred="empty")
    assert kernel.potential_fn.components.tolist() == [False, False, True]
    with pytest.raises(ValueError, match="noncentred"):
        make_kernel(model, X, init, noncentred="some")


def test_noncentred_nuts_samples_the_same_posterior():
    """One component, conjugate prior: the draws' mean is the exact posterior mean of μ (Normal–Wishart)."""
    X, _ = true_params("full").sample(20, seed=5)  # few points: the prior's funnel matters
    model = GaussianMixture(1, "full", prior=GaussianPrior(mean_precision=1.0))
    result = mixtures.fit(model, X, "nuts", num_chains=1, warmup=50, num_samples=100, noncentred=True,
                          warn=False, seed=2)
    prior = model.resolved_prior(X)
    exact = (prior.mean_precision * prior.mean_prior + X.sum(0)) / (prior.mean_precision + X.shape[0])
    draws = result.posterior.locs[:, 0]  # (S, D)
    spread = draws.std(0) / 100 ** 0.5 * 4  # 4 naive standard errors (ESS < S is covered by the factor)
    assert ((draws.mean(0) - exact).abs() < spread * 2).all(), (draws.mean(0), exact, spread)


@pytest.mark.slow
def test_readme_dirichlet_process_reduced():
    """The README's K = 10 Dirichlet process by NUTS, reduced (K = 3, 80 points, one short chain): from VB,
    empty components non-centred, preconditioned, the trees stay well below the maximum depth and nothing
    diverges; the occupied components' means are VB's to within the posterior's spread."""
    X = mixtures.data.old_faithful()[:80]
    model = GaussianMixture(3, "full", prior=GaussianPrior(weight_prior="dirichlet_process",
                                                           weight_concentration=0.1))
    vb = mixtures.fit(model, X, "vb")
    result = mixtures.fit(model, X, "nuts", init=vb.params, noncentred="empty", precondition=True, num_chains=1,
                          warmup=40, num_samples=12, seed=0, warn=False)
    diagnostics = result.posterior.diagnostics
    assert diagnostics["num_divergences"] == 0
    n_steps = torch.tensor(diagnostics["n_steps"][0], dtype=torch.float64)
    assert n_steps.max() < 255, n_steps  # depth 8 or more never (the maximum, 10, is 1023 evaluations)
    used = vb.params.weights > 0.2
    locs = result.posterior.locs[:, used]  # (S, K_used, D), relabelled to the best draw
    close = (locs.mean(0) - vb.params.locs[used]).abs() < 4 * locs.std(0) + 1e-3
    assert close.all(), (locs.mean(0), vb.params.locs[used], locs.std(0))


def test_geometry_options_the_programs_path_cannot_honour_are_warned_about():
    model, X, init = problem("full")
    labels = torch.full((X.shape[0],), -1, dtype=torch.long)
    labels[:3] = 0
    with pytest.warns(UserWarning, match="noncentred and precondition ignored: with partial labels"):
        mixtures.fit(model, X, "nuts", init=init, labels=labels, noncentred=True, precondition=True, num_chains=1,
                     warmup=2, num_samples=4, max_tree_depth=2, warn=False)
    with pytest.warns(UserWarning, match="precondition ignored: with jit_compile"):
        mixtures.fit(model, X, "nuts", init=init, precondition=True, jit_compile=True, num_chains=1, warmup=2,
                     num_samples=4, max_tree_depth=2, warn=False)
    t_model = StudentTMixture(2, "full", prior=GaussianPrior())  # no fused pass: the collapsed potential anyway
    t_init = mixtures.fit(t_model.with_prior(None), X, "em", max_iter=5, warn=False).params
    assert make_kernel(t_model, X, t_init, precondition=True).potential_fn is not None
    assert make_kernel(t_model, X, t_init).potential_fn is None  # the default: the program, as before
