"""The iterative M steps: VEI, VEE, VEV (Celeux & Govaert 1995), EVE and VVE (Browne & McNicholas 2014).

Each maximizes the covariance part of EM's expected complete-data log-likelihood,
i.e. minimizes ``F(Σ) = Σ_k [n_k log|Σ_k| + tr(Σ_k⁻¹ W_k)]`` over covariances of the
structure, given responsibility masses ``n_k`` ``(K,)`` and scatter matrices
``W_k = Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ`` ``(K, D, D)`` (their diagonals ``(K, D)`` for VEI).
No closed form exists; the algorithms alternate exact maximizations over blocks of the
parts (volume, shape, orientation), so ``F`` never increases, and stop when an iteration
changes ``F`` by at most ``tol · max(|F|, N D)`` (``N = Σ n_k``) or after ``max_iter``.

* VEI ``λ_k B``: ``B ∝ Σ_k w_k / λ_k`` (unit determinant), ``λ_k = Σ_d w_kd / b_d / (D n_k)``.
* VEE ``λ_k C``: ``C ∝ Σ_k W_k / λ_k`` (unit determinant), ``λ_k = tr(W_k C⁻¹) / (D n_k)``.
* VEV ``λ_k D_k A D_kᵀ``: ``D_k`` are the eigenvectors of ``W_k`` (eigenvalues ``ω_k`` and the
  shape sorted alike: optimal by the rearrangement inequality), then VEI's iteration on the
  ``ω_k``.
* EVE ``λ D A_k Dᵀ`` and VVE ``D Δ_k Dᵀ``: given ``D``, the shapes and volumes are closed
  form from ``diag(Dᵀ W_k D)``; given them, ``D`` takes one step of the majorization-
  minimization algorithm of Browne & McNicholas (2014) for ``min_D Σ_k tr(W_k D Λ_k Dᵀ)``
  (``Λ_k`` the inverse shapes): with ``c_k = λ_max(W_k) max(Λ_k)``, the quadratic is
  majorized on the orthogonal matrices by a linear function, minimized by ``D = U Vᵀ``
  from the SVD ``U S Vᵀ`` of ``Σ_k (c_k D - W_k D Λ_k)``.

The arithmetic is float64 numpy on ``(K, D, D)`` arrays: these are tiny matrices, for which
numpy's per-call cost is a few times below torch's, and an M step may iterate hundreds of
times per EM iteration. ``objectives`` holds ``F`` after every iteration (non-increasing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: relative tolerance on F (a few times its rounding) and iteration budget of the inner loops (mclust:
#: sqrt(eps) on the parameters, and unbounded)
INNER_TOL = 1e-14
INNER_MAX_ITER = 2000


class DegenerateScatter(Exception):
    """A scatter leaves a structure's estimate singular (``component`` None: a shared part)."""

    def __init__(self, component: int | None, what: str):
        super().__init__(what)
        self.component = component
        self.what = what


@dataclass
class InnerResult:
    """An iterative M step's covariances ``(K, D, D)`` (variances ``(K, D)`` for VEI) and its trace."""

    covariances: np.ndarray
    objectives: list[float] = field(default_factory=list)
    converged: bool = False

    @property
    def iterations(self) -> int:
        return len(self.objectives)


def _unit_determinant(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values / g, g)`` with ``g`` the geometric mean over the last axis (checked positive)."""
    geometric = np.exp(np.log(values).mean(-1))
    return values / geometric[..., None], geometric


def _positive_traces(nk: np.ndarray, traces: np.ndarray) -> None:
    bad = np.flatnonzero(~(traces > 0))
    if bad.size:
        raise DegenerateScatter(int(bad[0]), "its scatter is zero (all its points coincide)")


def _iterate(step, tol: float, max_iter: int, scale: float) -> tuple[list[float], bool]:
    """Run ``step() -> F`` until F changes by at most ``tol · max(|F|, scale)``."""
    objectives: list[float] = []
    previous = np.inf
    for _ in range(max_iter):
        value = step()
        objectives.append(value)
        if abs(previous - value) <= tol * max(abs(value), scale):
            return objectives, True
        previous = value
    return objectives, False


def _volume_shape_iteration(nk: np.ndarray, values: np.ndarray, tol: float, max_iter: int):
    """VEI's alternation on per-component values ``(K, D)`` (diagonals, or eigenvalues for VEV):
    returns ``(volumes (K,), shape (D,), objectives, converged)``."""
    K, D = values.shape
    _positive_traces(nk, values.sum(1))
    state = {"volumes": values.sum(1) / (D * nk)}

    def step() -> float:
        pooled = (values / state["volumes"][:, None]).sum(0)
        if not (pooled > 0).all():
            raise DegenerateScatter(None, "the shared shape has a zero axis (no component spreads along it)")
        shape, _ = _unit_determinant(pooled)
        volumes = (values / shape).sum(1) / (D * nk)
        state.update(volumes=volumes, shape=shape)
        return float(D * (nk * np.log(volumes)).sum() + ((values / shape).sum(1) / volumes).sum())

    objectives, converged = _iterate(step, tol, max_iter, float(nk.sum() * D))
    return state["volumes"], state["shape"], objectives, converged


def vei(nk: np.ndarray, diagonals: np.ndarray, tol: float = INNER_TOL, max_iter: int = INNER_MAX_ITER) -> InnerResult:
    """VEI ``Σ_k = λ_k B`` from the scatters' diagonals ``(K, D)``: variances ``(K, D)``."""
    volumes, shape, objectives, converged = _volume_shape_iteration(nk, diagonals, tol, max_iter)
    return InnerResult(volumes[:, None] * shape, objectives, converged)


def vev(nk: np.ndarray, scatters: np.ndarray, tol: float = INNER_TOL, max_iter: int = INNER_MAX_ITER) -> InnerResult:
    """VEV ``Σ_k = λ_k D_k A D_kᵀ``."""
    eigenvalues, vectors = np.linalg.eigh(scatters)  # ascending, one order for every component
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # rounding can leave -1e-17 on a rank-deficient scatter
    volumes, shape, objectives, converged = _volume_shape_iteration(nk, eigenvalues, tol, max_iter)
    values = volumes[:, None] * shape
    return InnerResult((vectors * values[:, None, :]) @ vectors.transpose(0, 2, 1), objectives, converged)


def vee(nk: np.ndarray, scatters: np.ndarray, tol: float = INNER_TOL, max_iter: int = INNER_MAX_ITER) -> InnerResult:
    """VEE ``Σ_k = λ_k C`` with ``|C| = 1``."""
    K, D, _ = scatters.shape
    _positive_traces(nk, np.trace(scatters, axis1=1, axis2=2))
    state = {"volumes": np.trace(scatters, axis1=1, axis2=2) / (D * nk)}

    def step() -> float:
        pooled = (scatters / state["volumes"][:, None, None]).sum(0)
        sign, log_det = np.linalg.slogdet(pooled)
        if sign <= 0 or not np.isfinite(log_det):
            raise DegenerateScatter(None, "the shared matrix C is singular (the scatters span fewer than D directions)")
        shared = pooled / np.exp(log_det / D)
        traces = np.einsum("kij,ji->k", scatters, np.linalg.inv(shared))  # tr(W_k C⁻¹), C is D x D
        volumes = traces / (D * nk)
        state.update(volumes=volumes, shared=shared)
        return float(D * (nk * np.log(volumes)).sum() + (traces / volumes).sum())

    objectives, converged = _iterate(step, tol, max_iter, float(nk.sum() * D))
    return InnerResult(state["volumes"][:, None, None] * state["shared"], objectives, converged)


def mm_orientation_step(scatters: np.ndarray, orientation: np.ndarray, inverse_shapes: np.ndarray,
                        top_eigenvalues: np.ndarray) -> np.ndarray:
    """One MM step of Browne & McNicholas (2014) for ``min_D Σ_k tr(W_k D Λ_k Dᵀ)`` over orthogonal ``D``.

    ``scatters`` ``(K, D, D)``, ``orientation`` ``(D, D)``, ``inverse_shapes`` ``Λ_k`` ``(K, D)``,
    ``top_eigenvalues`` ``λ_max(W_k)`` ``(K,)``. With ``c = Σ_k λ_max(W_k) max(Λ_k)`` the objective is
    at most ``f(D_t) + 2⟨G, D - D_t⟩ + c |D - D_t|²`` (``G = Σ_k W_k D_t Λ_k``), which on the orthogonal
    matrices is ``const - 2⟨c D_t - G, D⟩``, maximized by ``U Vᵀ`` for ``c D_t - G = U S Vᵀ``.
    """
    bound = float((top_eigenvalues * inverse_shapes.max(1)).sum())
    gradient = ((scatters @ orientation) * inverse_shapes[:, None, :]).sum(0)
    left, _, right = np.linalg.svd(bound * orientation - gradient)
    return left @ right


def _common_orientation(nk: np.ndarray, scatters: np.ndarray, shapes_and_volumes, tol: float, max_iter: int):
    """Alternate closed-form shapes/volumes given ``D`` with MM steps on ``D`` (EVE, VVE)."""
    top = np.linalg.eigvalsh(scatters)[:, -1]
    _positive_traces(nk, np.trace(scatters, axis1=1, axis2=2))
    state = {"orientation": np.linalg.eigh(scatters.sum(0))[1]}

    def step() -> float:
        if "inverse_shapes" in state:
            state["orientation"] = mm_orientation_step(scatters, state["orientation"], state["inverse_shapes"], top)
        orientation = state["orientation"]
        diagonals = np.einsum("dk,nde,ek->nk", orientation, scatters, orientation)  # diag(Dᵀ W_k D)
        bad = np.flatnonzero(~(diagonals > 0).all(1))
        if bad.size:
            raise DegenerateScatter(int(bad[0]), "its scatter has no spread along an axis of the common orientation")
        values, objective = shapes_and_volumes(diagonals)  # (K, D) eigenvalues of Σ_k, F
        state.update(values=values, inverse_shapes=1.0 / values)
        return objective

    objectives, converged = _iterate(step, tol, max_iter, float(nk.sum() * scatters.shape[-1]))
    orientation, values = state["orientation"], state["values"]
    return InnerResult((orientation * values[:, None, :]) @ orientation.T, objectives, converged)


def eve(nk: np.ndarray, scatters: np.ndarray, tol: float = INNER_TOL, max_iter: int = INNER_MAX_ITER) -> InnerResult:
    """EVE ``Σ_k = λ D A_k Dᵀ``: given ``D``, ``A_k ∝ diag(Dᵀ W_k D)`` and ``λ = Σ_k |diag(Dᵀ W_k D)|^{1/D} / N``."""
    N, D = float(nk.sum()), scatters.shape[-1]

    def shapes_and_volumes(diagonals: np.ndarray):
        shapes, geometric = _unit_determinant(diagonals)
        volume = geometric.sum() / N
        return volume * shapes, float(N * D * np.log(volume) + (diagonals / shapes).sum() / volume)

    return _common_orientation(nk, scatters, shapes_and_volumes, tol, max_iter)


def vve(nk: np.ndarray, scatters: np.ndarray, tol: float = INNER_TOL, max_iter: int = INNER_MAX_ITER) -> InnerResult:
    """VVE ``Σ_k = D Δ_k Dᵀ``: given ``D``, ``Δ_k = diag(Dᵀ W_k D) / n_k``."""

    def shapes_and_volumes(diagonals: np.ndarray):
        values = diagonals / nk[:, None]
        return values, float((nk[:, None] * np.log(values)).sum() + (diagonals / values).sum())

    return _common_orientation(nk, scatters, shapes_and_volumes, tol, max_iter)


def covariance_objective(nk: np.ndarray, scatters: np.ndarray, covariances: np.ndarray) -> float:
    """``F = Σ_k [n_k log|Σ_k| + tr(Σ_k⁻¹ W_k)]`` for covariances ``(K, D, D)`` (what the M steps minimize)."""
    _, log_det = np.linalg.slogdet(covariances)
    traces = np.trace(np.linalg.solve(covariances, scatters), axis1=1, axis2=2)
    return float((nk * log_det).sum() + traces.sum())
