"""The family seam: what a mixture model is to the routines that fit it.

A mixture family declares its generative program once, in Pyro::

    globals θ                                   # pyro.param sites, or pyro.sample sites under a prior
    for n in plate("data"):
        z_n ~ Categorical(weights)              # site "assignment", enumerable
        x_n | z_n ~ component(θ, z_n)           # site "obs"

:class:`MixtureFamily` writes that program (:meth:`~MixtureFamily.model`) and everything
Pyro's routines need from it (site values, the log prior, decoding at fixed parameters)
from a handful of hooks a family fills in: its global sites and their constraints,
how parameters map to and from site values, the prior's ``pyro.sample`` statements and
the distribution of the component an assignment picks. MAP, SVI and NUTS need nothing
else, so they run on every family.

*Capabilities* are optional: a family lists them in :attr:`MixtureFamily.capabilities`
and implements their methods (see :class:`Statistics`, :class:`Variational`,
:class:`Partition`). A routine's record says which it requires
(:mod:`mixtures.inference.registry`); ``fit`` refuses a family lacking one, naming what
it lacks and the routines that would work.

Families register by name (:func:`register_family`) so that saved results can be
rebuilt (:mod:`mixtures.io`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NamedTuple

import pyro
import pyro.distributions as pdist
import torch
from pyro import poutine
from torch import Tensor

from mixtures.core.labels import LABELS_SITE, assignment_factor
from mixtures.core.params import Params
from mixtures.core.summary import Summary, default_shift
from mixtures.core.validation import check_positive_int
from mixtures.errors import ParameterError

#: the Pyro site names of every family's program
DATA_PLATE = "data"
COMPONENTS_PLATE = "components"
ASSIGNMENT = "assignment"
OBS = "obs"
#: the program has one plate (``"data"``); enumeration dimensions start left of it
MAX_PLATE_NESTING = 1

FAMILIES: dict[str, type] = {}


def register_family(cls: type) -> type:
    """Class decorator: make a family findable by its ``name`` (saved results name their family)."""
    if cls.name in FAMILIES and FAMILIES[cls.name] is not cls:
        raise ValueError(f"a mixture family named {cls.name!r} is already registered")
    FAMILIES[cls.name] = cls
    return cls


def get_family(name: str) -> type:
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mixture family {name!r}; registered: {sorted(FAMILIES)}.") from None


@contextlib.contextmanager
def fresh_param_store() -> Iterator[dict]:
    """Run Pyro code against an empty parameter store; the caller's store is restored."""
    with pyro.get_param_store().scope() as state:
        yield state


class MixtureFamily:
    """Base class of a mixture family (module docstring).

    Subclasses set :attr:`name`, :attr:`params_type`, :attr:`capabilities`, call
    ``super().__init__(n_components, prior)`` and fill in the hooks marked "family".
    The object holds the *specification* only; fitted values live in a ``FitResult``.
    """

    name: ClassVar[str] = ""
    params_type: ClassVar[type[Params]] = Params
    #: the prior's class (saved results rebuild priors from their fields)
    prior_type: ClassVar[type | None] = None
    #: constructor arguments besides ``n_components`` and ``prior`` (the keys of :meth:`spec`)
    spec_fields: ClassVar[tuple[str, ...]] = ()
    #: optional capabilities besides "program" (which every family has)
    capabilities: ClassVar[frozenset[str]] = frozenset({"program"})

    @property
    def noise_component(self) -> int | None:
        """The index of a noise component (points assigned to it are outliers), or ``None``."""
        return None

    @property
    def prior_only_components(self) -> tuple[int, ...]:
        """Components whose sites in the components plate no data reach (a noise component's placeholder
        cluster): their posterior is their prior, so samplers may draw them from it exactly."""
        return ()

    def __init__(self, n_components: int, prior: Any = None):
        self.n_components = check_positive_int(n_components, "n_components")
        self.prior = prior
        self._resolved: tuple[weakref.ref, int, Any] | None = None
        #: program sites held at constant values during a fit (:meth:`freezing`, :mod:`mixtures.core.freeze`)
        self._frozen: dict[str, Tensor] = {}

    def __getstate__(self) -> dict[str, Any]:
        # the resolved-prior cache (a weak reference) is not part of the model's state
        return {**self.__dict__, "_resolved": None, "_frozen": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_frozen": {}, **state})

    # -- family: specification ------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """Constructor arguments besides ``n_components`` and ``prior``, as primitives."""
        return {}

    def n_parameters(self, n_features: int) -> int:
        """Free parameters of the mixture in ``n_features`` dimensions (they enter BIC)."""
        raise NotImplementedError

    def validate_data(self, X: Tensor) -> None:
        """Raise ``DataError`` for data the family cannot model (e.g. negative counts)."""

    def with_prior(self, prior: Any) -> MixtureFamily:
        """The same family and components under another prior (``None``: maximum likelihood)."""
        return type(self)(self.n_components, **self.spec(), prior=prior)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def check_params(self, params: Params) -> Params:
        """Raise unless ``params`` belong to this family, with its K and spec."""
        if (not isinstance(params, self.params_type) or params.n_components != self.n_components
                or params.spec() != self.params_spec()):
            got = (f"{type(params).__name__}(K={getattr(params, 'n_components', '?')}, "
                   f"{getattr(params, 'spec', dict)()})")
            raise ParameterError(f"parameters {got} do not fit this model ({self!r}).")
        return params

    def params_spec(self) -> dict[str, Any]:
        """The :meth:`Params.spec` this model's parameters have."""
        return {}

    # -- family: the program's pieces ------------------------------------------------------
    def param_sites(self) -> dict[str, Any]:
        """Names and constraints of the ``pyro.param`` globals (no prior), in order."""
        raise NotImplementedError

    def values_from_params(self, params: Params) -> dict[str, Tensor]:
        """Values of :meth:`param_sites` for ``params``."""
        raise NotImplementedError

    def params_from_values(self, values: dict[str, Tensor], validate: bool = False) -> Params:
        """Parameters from constrained global values (the keys of :meth:`param_sites`), detached."""
        raise NotImplementedError

    def prior_sites(self) -> tuple[str, ...]:
        """Names of the prior's latent ``pyro.sample`` sites, in order."""
        raise NotImplementedError

    def sample_globals(self, prior: Any) -> dict[str, Tensor]:
        """The resolved prior's ``pyro.sample`` statements; return the globals by
        :meth:`param_sites` names."""
        raise NotImplementedError

    def prior_site_values(self, params: Params) -> dict[str, Tensor]:
        """Values of :meth:`prior_sites` that give ``params`` (inverse of :meth:`sample_globals`)."""
        raise NotImplementedError

    def component_distribution(self, values: dict[str, Tensor], index: Tensor) -> Any:
        """The distribution of the components picked by ``index`` (may carry enumeration
        dimensions on the left), batch ``index.shape``."""
        raise NotImplementedError

    # -- the program, written once -----------------------------------------------------------
    @property
    def global_sites(self) -> tuple[str, ...]:
        """The ``pyro.param`` sites without a prior, the latent ``pyro.sample`` sites with one."""
        return tuple(self.param_sites()) if self.prior is None else self.prior_sites()

    def resolved_prior(self, X: Tensor) -> Any:
        """The prior with data-scaled defaults filled in from ``X`` ``(N, D)`` (cached per tensor)."""
        if self.prior is None:
            raise ValueError(f"this model has no prior; give {type(self).__name__}(..., prior=...).")
        # Keyed by the tensor's identity (a weak reference: a new tensor at a freed one's
        # address is new data) and its version counter (in-place writes invalidate).
        cached = self._resolved
        if cached is not None and cached[0]() is X and cached[1] == X._version:
            return cached[2]
        resolved = self.prior.resolve(X, self)
        self._resolved = (weakref.ref(X), X._version, resolved)
        return resolved

    def globals(self, init: Params | None = None, X: Tensor | None = None) -> dict[str, Tensor]:
        """Declare the global sites; return their constrained values by :meth:`param_sites` names.

        Without a prior, ``init`` supplies initial values for ``pyro.param`` sites the
        parameter store does not hold yet. With a prior, the globals are sampled from it
        (its defaults resolved on the full data ``X``).
        """
        if self.prior is not None:
            return self.sample_globals(self.resolved_prior(X))
        sites = self.param_sites()
        inits = {} if init is None else self.values_from_params(init)
        store = pyro.get_param_store()
        values = {}
        for name, constraint in sites.items():
            frozen = getattr(self, "_frozen", {})
            if name in frozen:  # a constant of the program: its parameter is registered (read back
                # with the others) but nothing depends on it, so no optimizer moves it
                pyro.param(name, lambda value=frozen[name]: value.detach().clone(), constraint=constraint)
                values[name] = frozen[name]
                continue
            if name not in store and name not in inits:
                raise ParameterError(
                    f"Pyro parameter {name!r} has no value: pass params=... to model.model, or run the "
                    "program inside a fitting routine.")
            if name in store and name in inits and not _same_values(store[name], inits[name]):
                # pyro.param would silently keep the stored value and ignore the given one
                raise ParameterError(
                    f"Pyro's parameter store already holds other values for {name!r} (from an earlier "
                    "program run), so the given params would be ignored. Run the program inside "
                    "mixtures.core.family.fresh_param_store(), or call pyro.clear_param_store() first.")
            # Cloned: Pyro optimizers update parameters in place and must not write into
            # tensors the caller owns.
            values[name] = pyro.param(name, lambda name=name: inits[name].detach().clone(), constraint=constraint)
        return values

    def model(self, X: Tensor | None, params: Params | None = None, subsample_size: int | None = None,
              labels: Tensor | None = None, sample_weight: Tensor | None = None) -> Tensor:
        """The Pyro program ``p(X, z | θ)``.

        Args:
            X: ``(N, D)`` observations.
            params: initial values of the global ``pyro.param`` sites.
            subsample_size: minibatch size of the data plate (the log-likelihood is
                rescaled by ``N / subsample_size``).
            labels: ``(N,)`` partial labels (``-1``: unknown): a factor ``log 1[z_n = y_n]`` (site
                ``"labels"``) restricts a labelled point's assignment to its label
                (:mod:`mixtures.core.labels`).
            sample_weight: ``(N,)`` point weights (:mod:`mixtures.core.weights`): the program is
                then :meth:`weighted_model` (the labels' factor inside it).

        Returns:
            The assignments ``(N,)`` (or ``(B,)`` when subsampled); under parallel
            enumeration they carry enumeration dimensions on the left.
        """
        if sample_weight is not None:
            return self.weighted_model(X, sample_weight, params, subsample_size, labels)
        values = self.globals(params, X)
        with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=subsample_size) as rows:
            z = pyro.sample(ASSIGNMENT, pdist.Categorical(values["weights"]), infer={"enumerate": "parallel"})
            if labels is not None:  # the labelled points' assignments are observed
                pyro.factor(LABELS_SITE, assignment_factor(z, labels[rows] if subsample_size else labels, X.dtype))
            pyro.sample(OBS, self.component_distribution(values, z), obs=X[rows] if subsample_size else X)
        return z

    def weighted_model(self, X: Tensor, sample_weight: Tensor, params: Params | None = None,
                       subsample_size: int | None = None, labels: Tensor | None = None) -> Tensor:
        """The program with point ``n``'s likelihood counted ``w_n`` times: ``p(θ) Π_n p(x_n | θ)^{w_n}``.

        Pyro's enumeration takes only a scalar ``poutine.scale``, so the assignment is summed out
        here, per point, from the same pieces as :meth:`model` (``Categorical(weights)`` and
        :meth:`component_distribution` at every component): the site ``"obs"`` is the factor
        ``w_n log Σ_k π_k p(x_n | k)`` in the data plate (0 where ``w_n = 0``: a dropped row; an
        integer weight is the row repeated). The globals are the same sites as :meth:`model`'s, so
        MAP, SVI with enumerated assignments and NUTS target the weighted posterior; there is no
        ``"assignment"`` site (a mean-field local guide needs the fused path). With partial ``labels``
        ``(N,)`` a labelled point's sum keeps its label's term only (``log 1[z_n = y_n]`` added, as
        :meth:`model`'s factor): ``w_n log π_y p(x_n | y)``. Returns the plate's rows ``(N,)`` (or ``(B,)``).
        """
        values = self.globals(params, X)
        components = torch.arange(self.n_components, device=X.device).reshape(-1, 1)  # (K, 1): every z
        with pyro.plate(DATA_PLATE, X.shape[0], subsample_size=subsample_size) as rows:
            data = X[rows] if subsample_size else X
            weights = sample_weight[rows] if subsample_size else sample_weight
            log_joint = self.component_log_joint(values, data)  # (K, n)
            if labels is not None:
                log_joint = log_joint + assignment_factor(components, labels[rows] if subsample_size else labels,
                                                          log_joint.dtype)
            log_likelihood = torch.logsumexp(log_joint, 0)
            pyro.factor(OBS, torch.where(weights > 0, weights * log_likelihood, 0.0))
        return rows

    def component_log_joint(self, values: dict[str, Tensor], X: Tensor) -> Tensor:
        """``log π_k + log p(x_n | z_n = k)`` ``(K, N)`` at the globals ``values`` (by :meth:`param_sites`
        names, differentiable in them): the program's own pieces, ``Categorical(weights)`` and
        :meth:`component_distribution`, at every component; its ``logsumexp`` over ``K`` is what the
        program's enumerated assignment sums to."""
        components = torch.arange(self.n_components, device=X.device).reshape(-1, 1)  # (K, 1): every z
        return (pdist.Categorical(values["weights"]).log_prob(components)
                + self.component_distribution(values, components).log_prob(X))

    def site_values(self, params: Params) -> dict[str, Tensor]:
        """Values of :attr:`global_sites` that correspond to ``params``."""
        self.check_params(params)
        return self.values_from_params(params) if self.prior is None else self.prior_site_values(params)

    def prior_trace(self, site_values: dict[str, Tensor], X: Tensor) -> Any:
        """Trace of the prior's program conditioned on ``site_values`` (no randomness consumed);
        ``trace.nodes["_RETURN"]["value"]`` holds the globals, ``trace.log_prob_sum()`` the log prior."""
        conditioned = poutine.condition(self.sample_globals, data=site_values)
        with poutine.block():
            return poutine.trace(conditioned).get_trace(self.resolved_prior(X))

    def params_from_sites(self, site_values: dict[str, Tensor], X: Tensor) -> Params:
        """Parameters from values of :attr:`global_sites` (e.g. a posterior draw)."""
        if self.prior is None:
            return self.params_from_values(site_values)
        return self.params_from_values(self.prior_trace(site_values, X).nodes["_RETURN"]["value"])

    def log_prior(self, params: Params, X: Tensor) -> Tensor:
        """``log p(θ)`` of the prior at ``params`` (0 without a prior); ``X`` resolves defaults."""
        if self.prior is None:
            return params.weights.new_zeros(())
        return self.prior_trace(self.prior_site_values(params), X).log_prob_sum()

    @contextlib.contextmanager
    def program_at(self, params: Params) -> Iterator[Any]:
        """:meth:`model` with its globals fixed at ``params``, against a fresh parameter store.

        At fixed globals a prior is a constant factor of ``p(X, z)``: it plays no part in
        ``p(z | x, θ)``. So a model with a prior is decoded with its prior-free twin, whose
        ``pyro.param`` globals hold (clones of) ``params``; its data-scaled defaults are never
        re-resolved on the query data (a single query point has no covariance).
        """
        self.check_params(params)
        plain = self if self.prior is None else self.with_prior(None)
        with fresh_param_store():
            plain.globals(params)
            yield plain.model

    # -- frozen parameters (mixtures.core.freeze) ---------------------------------------------
    def frozen_sites(self, groups: tuple[str, ...]) -> dict[str, str]:
        """The :meth:`param_sites` name of each parameter group (``"weights"``, ``"means"``,
        ``"covariances"``) a fit may hold fixed; families that cannot say which raise."""
        raise ValueError(f"{type(self).__name__} cannot hold parameter groups fixed (freeze=...); the Gaussian "
                         "family (mixtures.GaussianMixture) can.")

    def frozen_prior_sites(self, groups: tuple[str, ...]) -> tuple[str, ...]:
        """The prior's ``pyro.sample`` sites of the parameter groups (NUTS conditions the program on
        their values); families that cannot say which raise."""
        raise ValueError(f"{type(self).__name__} cannot hold parameter groups of its prior fixed (freeze=...); the "
                         "Gaussian family (mixtures.GaussianMixture) can.")

    @contextlib.contextmanager
    def freezing(self, values: dict[str, Tensor]) -> Iterator[None]:
        """Within the block the program's globals named in ``values`` are those constants, not
        ``pyro.param`` sites (no prior only: a prior's sample sites are not frozen)."""
        if values and self.prior is not None:
            raise ValueError("freeze=... holds pyro.param sites of a model without a prior; this model has a "
                             "prior (fit it with method='em' or 'hard_em', or without the prior).")
        previous, self._frozen = getattr(self, "_frozen", {}), dict(values)
        try:
            yield
        finally:
            self._frozen = previous

    # -- hooks with defaults -----------------------------------------------------------------
    def fitting(self) -> contextlib.AbstractContextManager:
        """A context held for the duration of one fit's loop (the Gaussian family keeps its data
        features between the program's evaluations there); nothing by default."""
        return contextlib.nullcontext()

    def standardizer(self, X: Tensor, distributed: bool = False) -> Any:
        """An affine map making gradient routines unit-free (``None``: the family has none).

        Families whose likelihood is affine-equivariant return an object with ``data(X)``,
        ``params(params, inverse=False)``, ``log_jacobian`` and ``scale`` ``(D,)`` (the per-feature
        divisor; ``fit`` puts a floorless routine's start ``reg_covar`` in these units) (see the
        Gaussian family).
        """
        return None

    def with_global_prior(self, X: Tensor) -> MixtureFamily:
        """This model with its prior's data-scaled defaults resolved on all ranks' data
        (distributed fits); a family whose prior has no such defaults returns itself."""
        return self

    def with_weighted_prior(self, X: Tensor, sample_weight: Tensor, distributed: bool = False) -> MixtureFamily:
        """This model with its prior's data-scaled defaults resolved on the weighted data ``X`` ``(N, D)``,
        ``sample_weight`` ``(N,)`` (the data with rows repeated; all ranks' when ``distributed``); a family
        whose prior has no such defaults returns itself."""
        return self

    # -- initialization hooks (used by :mod:`mixtures.init`) -----------------------------------
    def params_from_responsibilities(self, X: Tensor, resp: Tensor, reg_covar: float = 1e-6,
                                     on_collapse: str = "error") -> Params:
        """The M step from responsibilities ``resp`` ``(N, K)``."""
        raise NotImplementedError

    def params_from_centres(self, X: Tensor, centres: Tensor, reg_covar: float = 1e-6,
                            on_collapse: str = "error") -> Params:
        """Parameters with equal weights centred at ``centres`` ``(K, D)`` (``"random_from_data"``)."""
        raise NotImplementedError

    def params_from_dict(self, values: dict[str, Any], X: Tensor, reg_covar: float = 1e-6,
                         on_collapse: str = "error") -> Params:
        """Parameters from a user's dict of initial values (missing ones from the data)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        spec = "".join(f", {name}={value!r}" for name, value in self.spec().items())
        return f"{type(self).__name__}(n_components={self.n_components}{spec})"


class LogJointForm(NamedTuple):
    """Log joint densities linear in features: ``C @ F(x - shift)`` ``(K, n)`` are
    ``log π_k + log p(x | θ_k)`` (see :meth:`Statistics.log_joint_form`)."""

    coefficients: Tensor  # (K, P) in nats, P = 1 + D + n_extra
    write_extra: Callable[[Tensor, Tensor], Callable[[], None]]  # (centred (D, n), out (M, n)) -> writer
    n_extra: int  # M: features beyond the constant and the centred coordinates


class Statistics:
    """Capability ``"statistics"``: sufficient statistics and a closed-form M step.

    What EM, hard EM, stepwise EM (and, with :class:`Variational`, VB) need. A pass's
    :class:`~mixtures.core.summary.Summary` must add up over any split of the data. A family
    whose :meth:`log_joint_form` is not None also gets the fast path of MAP, SVI and NUTS (one
    fused pass per gradient instead of Pyro's enumeration).
    """

    def statistics_shift(self, X: Any) -> Tensor:
        """The point ``(D,)`` the moments are taken about (the same for every chunk and rank)."""
        return default_shift(X)

    def e_step(self, X: Any, params: Params, shift: Tensor, hard: bool = False, chunk_size: int | None = None,
               accumulate_dtype: torch.dtype | None = None, sample_weight: Tensor | None = None) -> Summary:
        """One pass: responsibilities (one-hot if ``hard``) at ``params`` and their statistics,
        with ``log p(X | params)`` and the entropy; with ``sample_weight`` ``(N,)`` every point's
        responsibilities, log-likelihood and entropy terms are weighted (:mod:`mixtures.core.weights`)."""
        raise NotImplementedError

    def summarize(self, X: Tensor, resp: Tensor, shift: Tensor | None = None,
                  chunk_size: int | None = None) -> Summary:
        """Statistics of given responsibilities ``resp`` ``(N, K)``."""
        raise NotImplementedError

    def summarize_at(self, X: Tensor, params: Params, resp: Tensor, shift: Tensor) -> Summary:
        """Statistics of given responsibilities ``resp`` ``(n, K)`` of the points ``X`` ``(n, D)`` in
        an E step at ``params``, about ``shift``: what a family wrapping this one (an extra
        component, :mod:`mixtures.families.noise`) adds up over chunks.

        By default the statistics depend on the responsibilities alone (:meth:`summarize`);
        families with latent variables besides the assignment (the t's scales) also weigh
        them at ``params``.
        """
        return self.summarize(X, resp, shift)

    def m_step(self, summary: Summary, reg_covar: float, prior: Any = None, keep: Tensor | None = None,
               previous: Params | None = None) -> Params:
        """The parameters maximizing ``E_q[log p(X, Z | θ)]`` (``+ log p(θ)`` with a resolved
        ``prior``); components where ``keep`` ``(K,)`` is True keep ``previous``'s values
        (their weight still follows the statistics)."""
        raise NotImplementedError

    def mode_weights(self, nk: Tensor, prior: Any = None) -> Tensor:
        """The M step's weights ``(K,)`` for responsibility masses ``nk`` alone."""
        raise NotImplementedError

    def elbo(self, summary: Summary, params: Params) -> Tensor:
        """``E_q[log p(X, Z | θ)] + H(q)`` of the summarized ``q`` at ``params`` (closed form)."""
        raise NotImplementedError

    def params_from_statistics(self, summary: Summary, X: Tensor, reg_covar: float = 1e-6,
                               on_collapse: str = "error") -> Params:
        """What :meth:`MixtureFamily.params_from_responsibilities` gives for responsibilities whose
        statistics (:meth:`summarize` about :meth:`statistics_shift`) are ``summary``: lets
        initializers sum a partition's statistics chunk by chunk instead of building ``(N, K)``
        responsibilities. ``NotImplementedError``: the initializers build them."""
        raise NotImplementedError

    def log_joint_form(self, values: dict[str, Tensor], shift: Tensor) -> LogJointForm | None:
        """The program's ``log p(z = k) + log p(x | z = k)`` as a linear form over the features of
        the fused pass (:mod:`mixtures.kernels.fused_pass`), or None when the family has none.

        ``values`` are the constrained globals by :meth:`MixtureFamily.param_sites` names (what
        :meth:`MixtureFamily.globals` returns, possibly requiring grad); the coefficients must be
        the same function of them as the program's ``Categorical(weights)`` and
        ``component_distribution`` densities, differentiable, so that MAP, SVI and NUTS can take
        the program's log-likelihood and its gradient from one fused pass
        (:mod:`mixtures.kernels.fused_autograd`) instead of Pyro's enumeration.
        """
        return None

    def reseed_component(self, summary: Summary, component: int) -> Summary | None:
        """Statistics restarting ``component`` at the pass's worst-explained point, or None when
        the family cannot (then EM's ``on_collapse="reseed"`` raises as ``"error"``)."""
        return None

    def pooled_component(self, summary: Summary, component: int) -> Summary | None:
        """Statistics giving ``component`` the spread of all the data (or None: cannot)."""
        return None


class Variational:
    """Capability ``"variational"``: closed-form coordinate-ascent VB under a conjugate prior.

    :meth:`variational` returns an object with ``update(summary) -> q``,
    ``bounds(summary, q) -> dict``, ``expected_pass(X, q, shift, chunk_size, statistics, sample_weight) -> Summary``,
    ``plug_in(q) -> Params``, ``sample_posterior(q, n, generator) -> Posterior`` and
    ``extras(q) -> dict`` (see :mod:`mixtures.inference.vb`).
    """

    def variational(self, X: Tensor, updates: str, reg_covar: float, distributed: bool = False) -> Any:
        raise NotImplementedError


class Partition:
    """Capability ``"partition"``: the mixture a hard partition induces (k-means, k-medians).

    :meth:`partition_mixture` returns ``(params, summary, objective, flags)`` for the
    nearest-centre partition of ``X`` (``objective``: inertia or L1 distances; weighted, like the
    statistics, with ``sample_weight`` ``(N,)``);
    :meth:`partition_centres` gives the centres ``(K, D)`` a clustering starts from.
    """

    def partition_centres(self, params: Params) -> Tensor:
        raise NotImplementedError

    def partition_mixture(self, X: Any, centres: Tensor, reg_covar: float, shift: Tensor, metric: str = "l2",
                          chunk_size: int | None = None, distributed: bool = False,
                          sample_weight: Tensor | None = None) -> tuple:
        raise NotImplementedError


def _same_values(stored: Tensor, given: Tensor) -> bool:
    """Whether a stored parameter holds ``given`` (up to its constraint's round trip)."""
    stored = stored.detach()
    return stored.shape == given.shape and torch.allclose(stored, given.to(stored), rtol=1e-9, atol=1e-12)
