"""The Hamiltonian NUTS records per draw (``RecordingNUTS.energy``, ArviZ's ``energy``) is ``U(q) + ½ pᵀ M⁻¹ p``
computed here independently: ``U`` by a separate potential at the state the iteration starts from, ``p`` the
iteration's momentum, ``M⁻¹`` the adapter's inverse mass matrix; ``n_steps`` counts the potential's calls."""

import math

import pyro
import torch

from mixtures import GaussianMixture, GaussianPrior
from mixtures.inference.pyro import potential
from mixtures.inference.pyro.nuts import make_kernel, site_transforms
from mixtures.init import initialize

from conftest import true_params


def test_energy_is_potential_plus_kinetic():
    X, _ = true_params("diag").sample(60, seed=4)
    model = GaussianMixture(2, "diag", prior=GaussianPrior())
    init = initialize(model, X, "kmeans++", seed=0)
    kernel = make_kernel(model, X, init, max_tree_depth=4)
    independent = potential.CollapsedPotential(model, X, site_transforms(model, X, init))
    calls = [0]

    def counted(params):
        calls[0] += 1
        return independent(params)

    pyro.set_rng_seed(0)
    warmup = 12
    kernel.setup(warmup, X)
    kernel.potential_fn.function = counted  # the kernel's counter now wraps the independent potential
    params = {name: value.clone() for name, value in kernel.initial_params.items()}
    for t in range(warmup + 6):
        with torch.no_grad():
            start_energy = float(independent(params))
        before = calls[0]
        params = kernel.sample(params)
        momentum, inverse_mass = kernel.momentum, kernel.mass_matrix_adapter.inverse_mass_matrix
        kinetic = 0.0
        for group, matrix in inverse_mass.items():
            p = torch.cat([momentum[name].reshape(-1) for name in group])
            kinetic += 0.5 * float(p @ (matrix * p if matrix.dim() == 1 else matrix @ p))
        assert math.isclose(kernel.energy, start_energy + kinetic, rel_tol=1e-12, abs_tol=1e-12), t
        assert kernel.n_steps == calls[0] - before >= 1
    assert kinetic > 0


def test_curvature_variances_and_the_mass_matrix_warmup_starts_from():
    scales = {"a": torch.tensor([0.5, 3.0], dtype=torch.float64), "b": torch.tensor([[20.0]], dtype=torch.float64)}

    def quadratic(q):  # variances scales², and a concave direction in "c"
        return sum(0.5 * ((q[n] - 1.0) / scales[n]).square().sum() for n in scales) - q["c"].square().sum()

    point = {"a": torch.tensor([0.3, -2.0], dtype=torch.float64), "b": torch.tensor([[4.0]], dtype=torch.float64),
             "c": torch.tensor([0.5], dtype=torch.float64)}
    variances = potential.curvature_variances(quadratic, point)
    for name in scales:
        torch.testing.assert_close(variances[name], scales[name].square(), rtol=1e-6, atol=0)
    assert variances["c"].tolist() == [1.0]

    X, _ = true_params("diag").sample(60, seed=4)
    model = GaussianMixture(2, "diag", prior=GaussianPrior())
    init = initialize(model, X, "kmeans++", seed=0)
    for full_mass in (False, True):
        kernel = make_kernel(model, X, init, precondition=True, full_mass=full_mass)
        expected = potential.curvature_variances(kernel.potential_fn, kernel.initial_params)
        kernel.setup(10, X)
        (group, matrix), = kernel.mass_matrix_adapter.inverse_mass_matrix.items()
        diagonal = torch.cat([expected[name].reshape(-1) for name in group])
        torch.testing.assert_close(matrix if not full_mass else matrix.diagonal(), diagonal, rtol=1e-12, atol=0)
        assert not torch.allclose(diagonal, torch.ones_like(diagonal))
