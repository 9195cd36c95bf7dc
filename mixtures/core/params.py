"""``Params``: what every family's parameter container offers the rest of the package.

A family's parameters are an immutable container of tensors (weights ``(K,)`` plus the
components' parameters) that can evaluate densities of data. Routines, evaluation, the
posterior and saving only use this interface, so they work for every family:

* densities: :meth:`component_log_prob` ``(N, K)`` (the one method a family must
  write) and, from it, :meth:`joint_log_prob`, :meth:`log_prob`, :meth:`responsibilities`;
* state: :meth:`tensors` and :meth:`spec` (primitives) rebuild the container through
  :meth:`from_tensors`, which is how results are saved, broadcast across ranks, cast to a
  dtype or device and stacked into posterior draws (the same class with a leading draw
  dimension ``S`` on every tensor: :meth:`stack`, :meth:`index`);
* components: :meth:`component_axes` says where each tensor indexes components, so that
  draws can be permuted (label switching) without knowing the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from mixtures.core.chunks import chunk_size_for, iter_chunks
from mixtures.core.validation import as_data


class Params:
    """Base class of a family's parameters (module docstring). Subclasses set ``__slots__``."""

    __slots__ = ()
    #: the family's registry name (``"gaussian"``)
    family: ClassVar[str] = ""

    # -- what a family provides -----------------------------------------------------
    @property
    def weights(self) -> Tensor:  # pragma: no cover - every family stores its weights
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        raise NotImplementedError

    def component_log_prob(self, X: Any) -> Tensor:
        """``log p(x_n | component k)`` ``(N, K)`` for data ``X`` ``(N, D)``."""
        raise NotImplementedError

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``(X (n, D), labels (n,))`` drawn from the mixture, reproducible for a seed on CPU."""
        raise NotImplementedError

    def impute(self, X: Any, draws: int | None = None, seed: int | None = 0) -> Tensor:
        """``X`` with its NaN entries (missing values) replaced by conditional means ``(N, D)``, or
        ``draws`` samples of them ``(draws, N, D)``: families that can marginalize write it."""
        raise NotImplementedError(f"the {self.family or type(self).__name__} family cannot impute missing values "
                                  "(the Gaussian family can).")

    def tensors(self) -> dict[str, Tensor]:
        """The container's tensors by name (``weights`` first)."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Primitives that, with :meth:`tensors`, rebuild the container (e.g. a covariance structure)."""
        return {}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], spec: dict[str, Any], validate: bool = True) -> Params:
        """Inverse of :meth:`tensors` / :meth:`spec`; ``validate=False`` trusts them (routines, draws)."""
        raise NotImplementedError

    @classmethod
    def component_axes(cls, spec: dict[str, Any]) -> dict[str, int | None]:
        """For each tensor of :meth:`tensors`, the axis indexing components (None: shared by all)."""
        raise NotImplementedError

    # -- what follows from it --------------------------------------------------------
    @property
    def n_components(self) -> int:
        return self.weights.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.weights.dtype

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def _data(self, X: Any) -> Tensor:
        """``X`` validated as ``(N, D)`` in the parameters' dtype and device."""
        return as_data(X, dtype=self.dtype, device=self.device, n_features=self.n_features, min_points=0)

    def _chunked(self, X: Tensor, per_chunk: Any) -> Tensor:
        """``per_chunk(rows)`` over chunks of ``X``, concatenated (``(0, K)`` for no points)."""
        if not X.shape[0]:
            return X.new_zeros(0, self.n_components)
        chunk = chunk_size_for(self.n_components, self.n_features)
        return torch.cat([per_chunk(X[rows]) for rows in iter_chunks(X.shape[0], chunk)])

    def joint_log_prob(self, X: Any) -> Tensor:
        """``log π_k + log p(x_n | k)``: ``(N, K)``."""
        return self.component_log_prob(X) + self.weights.log()

    def log_prob(self, X: Any) -> Tensor:
        """Mixture log density ``log p(x_n)`` of every point: ``(N,)``."""
        return torch.logsumexp(self.joint_log_prob(X), dim=-1)

    def responsibilities(self, X: Any) -> Tensor:
        """Posterior membership probabilities ``p(z_n = k | x_n)``: ``(N, K)``."""
        joint = self.joint_log_prob(X)
        return (joint - torch.logsumexp(joint, -1, keepdim=True)).exp()

    def to(self, dtype: torch.dtype | None = None, device: Any = None) -> Params:
        """Cast to another dtype and/or device (weights renormalized in the new dtype)."""
        tensors = {name: value.to(dtype=dtype, device=device) for name, value in self.tensors().items()}
        tensors["weights"] = tensors["weights"] / tensors["weights"].sum(-1, keepdim=True)
        return type(self).from_tensors(tensors, self.spec(), validate=False)

    def on(self, device: Any) -> Params:
        """The same bits on another device (no renormalization)."""
        tensors = {name: value.to(device) for name, value in self.tensors().items()}
        return type(self).from_tensors(tensors, self.spec(), validate=False)

    # -- draws: the same container with a leading draw dimension ----------------------
    @classmethod
    def stack(cls, draws: Sequence[Params]) -> Params:
        """``S`` containers of one spec as one with a leading draw dimension ``S`` on every tensor."""
        first = draws[0]
        names = first.tensors().keys()
        return cls.from_tensors({name: torch.stack([d.tensors()[name] for d in draws]) for name in names},
                                first.spec(), validate=False)

    def index(self, i: int | Tensor) -> Params:
        """Draw ``i`` of a stacked container (or the draws at an index tensor)."""
        return type(self).from_tensors({name: value[i] for name, value in self.tensors().items()},
                                       self.spec(), validate=False)

    def permuted(self, perm: Tensor) -> Params:
        """Components reordered: component ``k`` of the result is ``perm[k]`` of this one.

        ``perm`` is ``(K,)``, or ``(S, K)`` for a stacked container (one permutation per draw).
        """
        batch = perm.dim() - 1
        out = {}
        for name, value in self.tensors().items():
            axis = type(self).component_axes(self.spec()).get(name)
            if axis is None:
                out[name] = value
                continue
            dim = batch + axis
            shape = [1] * value.dim()
            shape[:batch] = perm.shape[:batch]
            shape[dim] = perm.shape[-1]
            index = perm.reshape(shape).expand(*value.shape[:dim], perm.shape[-1], *value.shape[dim + 1:])
            out[name] = value.gather(dim, index)
        return type(self).from_tensors(out, self.spec(), validate=False)

    @classmethod
    def mean_of(cls, draws: Params) -> Params:
        """The mixture of the draws' mean parameters (plug-in summary of a posterior).

        Default: the elementwise mean of every tensor (weights renormalized); families whose
        tensors are factors (Cholesky factors) override it to average what they stand for.
        """
        tensors = {name: value.mean(0) for name, value in draws.tensors().items()}
        tensors["weights"] = tensors["weights"] / tensors["weights"].sum()
        return cls.from_tensors(tensors, draws.spec(), validate=False)

    def collapsed_components(self, reg_covar: float, rtol: float = 1e-3, atol: float = 0.0) -> list[int]:
        """Components that collapsed onto the regularization floor (a degenerate fit); none by
        default (families with a floor, such as a covariance's ``reg_covar``, override it)."""
        return []

    def summary_tensors(self) -> dict[str, Tensor]:
        """The tensors worth summarizing (credible intervals): by default :meth:`tensors`."""
        return self.tensors()

    def match_costs(self, reference: Params) -> Tensor:
        """Cost ``(..., K, K)`` of matching component ``j`` of these (stacked) parameters to
        component ``k`` of ``reference``: squared distance between the components' tensors
        (families override it with a scale-aware cost)."""
        axes = type(self).component_axes(self.spec())
        batch = self.weights.dim() - 1

        def per_component(params: Params, lead: int) -> Tensor:
            parts = [value.movedim(lead + axes[name], lead).flatten(lead + 1)
                     for name, value in params.tensors().items() if axes.get(name) is not None]
            return torch.cat(parts, -1)

        mine, theirs = per_component(self, batch), per_component(reference, 0)
        return (mine.unsqueeze(-2) - theirs.unsqueeze(-3)).square().sum(-1)
