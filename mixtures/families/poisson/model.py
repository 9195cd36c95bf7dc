"""``PoissonMixture``: a mixture of independent Poissons for count data, written only
against the family protocol (:mod:`mixtures.core.family`).

The program (written once in the protocol's base class)::

    z_n ~ Categorical(weights)                    # site "assignment", enumerable
    x_nd | z_n ~ Poisson(rates[z_n, d])           # site "obs", d = 1..D independent

Without a prior ``weights`` and ``rates`` are ``pyro.param`` sites; with a
:class:`PoissonPrior` they are sampled: Dirichlet (or stick-breaking) weights and
``rates_kd ~ Gamma(a, b)``, the conjugate prior. MAP, SVI and NUTS need nothing else.

Capability ``"statistics"``: the log joint density ``log π_k + Σ_d x_d log λ_kd - λ_kd -
log x_d!`` is linear in the features ``[1; x; Σ_d log x_d!]``, so the E step is the same
fused two-GEMM pass as the Gaussian family's; the statistics are ``N_k``, ``Σ_n r_nk x_n``
(moment ``"sx"``) and ``Σ_n r_nk Σ_d log x_nd!`` (moment ``"slg"``, for the ELBO). The M step
is ``λ_k = Σ r x / N_k + reg_covar`` (``reg_covar`` keeps the log-rates of a component that
saw only zeros finite), or the Gamma posterior mode ``(a - 1 + Σ r x) / (b + N_k)`` under a
prior. EM, hard EM and stepwise EM run on it; k-means and VB (which need the
``"partition"`` and ``"variational"`` capabilities) do not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import constraints

from mixtures.core.family import COMPONENTS_PLATE, LogJointForm, MixtureFamily, Statistics, register_family
from mixtures.core.summary import Summary, floored_counts
from mixtures.errors import DataError, ParameterError
from mixtures.families.poisson.params import PoissonParams
from mixtures.families.weights import (
    WEIGHT_PRIORS,
    mode_weights,
    resolve_concentration,
    sample_weights,
    weight_site_values,
    weight_sites,
)
from mixtures.kernels.fused_pass import fused_pass


@dataclass(frozen=True)
class PoissonPrior:
    """``weights ~ Dirichlet(α)`` (or stick-breaking with ``γ``), ``rates_kd ~ Gamma(a, b)``.

    ``rate_shape`` is ``a`` (default 1); ``rate_rate`` is ``b`` ``(D,)`` or one number,
    default ``a / mean(X)`` per dimension (the prior's mean rate is the data's mean count;
    a dimension of zeros counts as mean ``1/N``). ``weight_concentration`` defaults to ``1/K``.
    """

    weight_prior: str = "dirichlet"
    weight_concentration: Any = None
    rate_shape: float = 1.0
    rate_rate: Any = None

    def __post_init__(self):
        if self.weight_prior not in WEIGHT_PRIORS:
            raise ValueError(f"weight_prior must be one of {WEIGHT_PRIORS}; got {self.weight_prior!r}.")
        if not float(self.rate_shape) > 0:
            raise ValueError(f"rate_shape must be positive; got {self.rate_shape!r}.")

    def resolve(self, X: Tensor, model: Any) -> ResolvedPoissonPrior:
        """Concrete tensors for data ``X`` ``(N, D)``."""
        shape = X.new_tensor(float(self.rate_shape))
        if self.rate_rate is None:
            rate = shape / X.mean(0).clamp_min(1.0 / X.shape[0])
        else:
            rate = torch.as_tensor(self.rate_rate, dtype=X.dtype, device=X.device).expand(X.shape[1]).clone()
        if not bool((rate > 0).all()):
            raise ValueError("rate_rate must be positive.")
        concentration = resolve_concentration(self.weight_concentration, self.weight_prior, model.n_components, X)
        return ResolvedPoissonPrior(self.weight_prior, concentration, shape, rate)

    def with_(self, **changes: Any) -> PoissonPrior:
        return replace(self, **changes)


@dataclass(frozen=True)
class ResolvedPoissonPrior:
    weight_prior: str
    weight_concentration: Tensor
    rate_shape: Tensor
    rate_rate: Tensor


@register_family
class PoissonMixture(Statistics, MixtureFamily):
    """A K-component mixture of independent Poissons (module docstring).

    Args:
        n_components: number of components K.
        prior: optional :class:`PoissonPrior` (needed by VB-free Bayesian routines: NUTS, SVI's
            distributional guides; MAP-EM uses its mode).
    """

    name = "poisson"
    params_type = PoissonParams
    prior_type = PoissonPrior
    capabilities = frozenset({"program", "statistics"})

    def __init__(self, n_components: int, prior: PoissonPrior | None = None):
        if prior is not None and not isinstance(prior, PoissonPrior):
            raise TypeError(f"prior must be a PoissonPrior or None; got {type(prior).__name__}.")
        super().__init__(n_components, prior)

    def n_parameters(self, n_features: int) -> int:
        return (self.n_components - 1) + self.n_components * n_features

    def validate_data(self, X: Tensor) -> None:
        bad = (X < 0) | (X != X.round())
        if bool(bad.any()):
            row, column = (int(i) for i in torch.nonzero(bad)[0])
            raise DataError(f"a Poisson mixture models non-negative integer counts; X[{row}, {column}] = "
                            f"{float(X[row, column])!r}. Give counts, or use a GaussianMixture.")

    # -- the program's pieces ------------------------------------------------------------
    def param_sites(self) -> dict[str, Any]:
        return {"weights": constraints.simplex, "rates": constraints.positive}

    def values_from_params(self, params: PoissonParams) -> dict[str, Tensor]:
        return {"weights": params.weights, "rates": params.rates}

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> PoissonParams:
        return PoissonParams.from_tensors({"weights": values["weights"].detach(),
                                           "rates": values["rates"].detach()}, {}, validate=validate)

    def prior_sites(self) -> tuple[str, ...]:
        return weight_sites(self.prior.weight_prior) + ("rates",)

    def sample_globals(self, prior: ResolvedPoissonPrior) -> dict[str, Tensor]:
        weights = sample_weights(prior.weight_prior, prior.weight_concentration, self.n_components)
        with pyro.plate(COMPONENTS_PLATE, self.n_components):
            rates = pyro.sample("rates", pdist.Gamma(prior.rate_shape, prior.rate_rate).to_event(1))
        return {"weights": weights, "rates": rates}

    def prior_site_values(self, params: PoissonParams) -> dict[str, Tensor]:
        return {**weight_site_values(params.weights, self.prior.weight_prior), "rates": params.rates}

    def component_distribution(self, values: dict[str, Tensor], index: Tensor) -> Any:
        return pdist.Poisson(values["rates"][index]).to_event(1)

    # -- initialization ----------------------------------------------------------------------
    def params_from_responsibilities(self, X: Tensor, resp: Tensor, reg_covar: float = 1e-6,
                                     on_collapse: str = "error") -> PoissonParams:
        return self.m_step(self.summarize(X, resp), max(reg_covar, 1e-6))

    def params_from_statistics(self, summary: Summary, X: Tensor, reg_covar: float = 1e-6,
                               on_collapse: str = "error") -> PoissonParams:
        return self.m_step(summary, max(reg_covar, 1e-6))

    def params_from_centres(self, X: Tensor, centres: Tensor, reg_covar: float = 1e-6,
                            on_collapse: str = "error") -> PoissonParams:
        K = centres.shape[0]
        return PoissonParams(X.new_full((K,), 1.0 / K), centres.clamp_min(max(reg_covar, 1e-6)))

    def params_from_dict(self, values: dict[str, Any], X: Tensor, reg_covar: float = 1e-6,
                         on_collapse: str = "error") -> PoissonParams:
        if "rates" not in values or set(values) - {"weights", "rates"}:
            raise ParameterError(f"a Poisson init dict needs 'rates' and may give 'weights'; got {sorted(values)}.")
        rates = torch.as_tensor(values["rates"]).to(X)
        weights = values.get("weights", X.new_full((rates.shape[0],), 1.0 / rates.shape[0]))
        return self.check_params(PoissonParams(torch.as_tensor(weights).to(X), rates))

    # -- capability "statistics" ---------------------------------------------------------------
    def statistics_shift(self, X: Any) -> Tensor:
        """Counts are used as they are (the features ``log x!`` need the raw values)."""
        like = X.head(1) if hasattr(X, "head") else X[:1]
        return like.new_zeros(like.shape[-1])

    def e_step(self, X: Any, params: PoissonParams, shift: Tensor, hard: bool = False,
               chunk_size: int | None = None, accumulate_dtype: torch.dtype | None = None,
               sample_weight: Tensor | None = None) -> Summary:
        D = params.n_features
        log_rates = params.rates.log()
        constant = params.weights.log() - params.rates.sum(-1)
        coefficients = torch.cat([constant.unsqueeze(-1), log_rates, -torch.ones_like(constant).unsqueeze(-1)], -1)
        sums = fused_pass(X, coefficients, shift, _log_factorial_writer, 1, hard=hard, chunk_size=chunk_size,
                          accumulate_dtype=accumulate_dtype, sample_weight=sample_weight)
        total = sums.sums
        return Summary(total[:, 0].clone(), {"sx": total[:, 1:1 + D].clone(), "slg": total[:, 1 + D].clone()},
                       shift.to(total.dtype), sums.n_points, sums.log_likelihood, sums.entropy, sums.labels,
                       sums.worst_point)

    def log_joint_form(self, values: dict[str, Tensor], shift: Tensor) -> LogJointForm:
        """``[log π_k - Σ_d λ_kd, log λ_kd, -1]`` over the features ``[1; x; Σ_d log x_d!]`` (the
        program's ``Categorical`` weights: normalized, clamped to ``[eps, 1 - eps]``)."""
        weights, rates = values["weights"], values["rates"]
        normalized = weights / weights.sum(-1, keepdim=True)
        eps = torch.finfo(normalized.dtype).eps
        constant = normalized.clamp(min=eps, max=1 - eps).log() - rates.sum(-1)
        coefficients = torch.cat([constant.unsqueeze(-1), rates.log(), -torch.ones_like(constant).unsqueeze(-1)], -1)
        return LogJointForm(coefficients, _log_factorial_writer, 1)

    def summarize(self, X: Tensor, resp: Tensor, shift: Tensor | None = None,
                  chunk_size: int | None = None) -> Summary:
        log_factorials = torch.lgamma(X + 1).sum(-1)
        entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum()
        return Summary(resp.sum(0), {"sx": resp.T @ X, "slg": resp.T @ log_factorials},
                       X.new_zeros(X.shape[1]), X.shape[0], None, entropy)

    def m_step(self, summary: Summary, reg_covar: float, prior: ResolvedPoissonPrior | None = None,
               keep: Tensor | None = None, previous: PoissonParams | None = None) -> PoissonParams:
        weights = self.mode_weights(summary.nk, prior)
        if prior is None:
            rates = summary.sx / floored_counts(summary.nk)[:, None] + reg_covar
        else:
            rates = ((prior.rate_shape - 1 + summary.sx).clamp_min(0)
                     / (prior.rate_rate + summary.nk[:, None])) + reg_covar
        if keep is not None and previous is not None:
            rates = torch.where(keep[:, None], previous.rates.to(rates.dtype), rates)
        if not bool((rates > 0).all()):
            raise ParameterError("a rate estimate is zero: a component saw only zeros in some dimension; "
                                 "give reg_covar > 0 (it is added to every rate).")
        return PoissonParams.from_tensors({"weights": weights, "rates": rates}, {}, validate=False)

    def mode_weights(self, nk: Tensor, prior: ResolvedPoissonPrior | None = None) -> Tensor:
        if prior is not None:
            return mode_weights(nk, prior.weight_prior, prior.weight_concentration)
        floored = floored_counts(nk)
        return floored / floored.sum()

    def elbo(self, summary: Summary, params: PoissonParams) -> Tensor:
        """``Σ_k N_k log π_k + Σ_kd (s_kd log λ_kd - N_k λ_kd) - Σ_n log x_n! + H(q)``."""
        nk = summary.nk
        weight_term = torch.where(nk > 0, nk * params.weights.log(), 0.0).sum()
        rate_term = (summary.sx * params.rates.log() - nk[:, None] * params.rates).sum()
        return weight_term + rate_term - summary.slg.sum() + summary.entropy


def _log_factorial_writer(xT: Tensor, out: Tensor) -> Any:
    """Fills ``out`` ``(1, n)`` with ``Σ_d log x_d!`` of the counts ``xT`` ``(D, n)``."""
    def write() -> None:
        torch.sum(torch.lgamma(xT + 1), 0, keepdim=True, out=out)
    return write
