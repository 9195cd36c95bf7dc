"""Distributed EM with partial labels and with missing values: two gloo ranks equal one process.

Each rank passes its shard of the data and of the labels; the labelled rows' one-hot statistics and
the missing values' expected statistics add over ranks like any others. With a prior, its data-scaled
defaults come from all ranks' data with each NaN replaced by its feature's mean over every rank's
observed entries (as in one process). One spawn runs every case (as tests/inference/test_distributed.py).
"""


import pytest
import torch
import torch.distributed as dist
from fit_checks import one_rank_group, spawned_ranks

import mixtures
from mixtures import GaussianMixture, GaussianPrior
from mixtures.core.labels import aligned_to_labels
from mixtures.data import remove_at_random


def _case():
    """301 points of three blobs (odd: shards of 151 and 150), labels on 50 of them, 20 % of entries missing."""
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(301, 2, generator=generator, dtype=torch.float64)
    X[:120] += 3.0
    X[120:200, 0] -= 4.0
    labels = torch.full((301,), -1)
    labels[0:60:2], labels[121:161:2] = 0, 2  # class 0 labelled on rank 0 only, class 2 on rank 1 only
    start = mixtures.fit(GaussianMixture(3, "full"), X, max_iter=0).params
    return X, labels, remove_at_random(X, 0.2, seed=1), start


def _cases() -> dict[str, tuple]:
    """name -> (model, method, data kind, init, options).

    Hard EM with missing values stops by ``tol``, not at its exact fixed point: the imputed moments move
    with the parameters, so bit-identical statistics come when the parameters stop moving in the last
    bit, an iteration that depends on how the sums were rounded (51 on two ranks, 54 in one process)."""
    prior = GaussianPrior()
    quiet = {"tol": 1e-9, "max_iter": 30, "warn": False}
    return {"em_labels": (GaussianMixture(3, "full"), "em", "labels", "start", quiet),
            "hard_em_labels": (GaussianMixture(3, "full"), "hard_em", "labels", "start", {"tol": 0.0, "warn": False}),
            "em_labels_kmeans++": (GaussianMixture(3, "full"), "em", "labels", "kmeans++", quiet),
            "em_missing": (GaussianMixture(3, "full"), "em", "missing", "start", quiet),
            "hard_em_missing": (GaussianMixture(3, "full"), "hard_em", "missing", "start", quiet),  # tol: see below
            "em_missing_prior": (GaussianMixture(3, "full", prior=prior), "em", "missing", "start", quiet),
            "vb_missing_prior": (GaussianMixture(3, "full", prior=prior), "vb", "missing", "start", quiet),
            "map_missing_prior": (GaussianMixture(3, "full", prior=prior), "map", "missing", "start",
                                  {"num_steps": 5, "patience": None})}


def _fit(name: str, rank: int | None = None):
    """The case on rank ``rank``'s interleaved shard (distributed), or on all the data (``None``)."""
    X, labels, missing, start = _case()
    model, method, kind, init, options = _cases()[name]
    shard = slice(None) if rank is None else slice(rank, None, 2)
    spread = {} if rank is None else {"distributed": True}
    if init == "kmeans++" and rank is None:  # rank 0's start, reordered by every rank's labels
        init = aligned_to_labels(mixtures.fit(model, X[0::2], init="kmeans++", seed=4, max_iter=0).params, X, labels)
    elif init == "start":
        init = start
    if kind == "labels":
        return mixtures.fit(model, X[shard], method, init=init, seed=4, labels=labels[shard], **spread, **options)
    return mixtures.fit(model, missing[shard], method, init=init, missing="marginalize", **spread, **options)


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results = {}
        for name in _cases():
            result = _fit(name, rank)
            results[name] = {"weights": result.params.weights, "locs": result.params.locs,
                             "covariances": result.params.covariances, "n_iter": result.n_iter,
                             "history": {column: result.history[column] for column in ("log_likelihood", "elbo")}}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    return spawned_ranks(_worker, tmp_path_factory.mktemp("distributed_pointwise"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_cases()))
def test_two_ranks_equal_one_process(two_ranks, name):
    single = _fit(name)
    for got in two_ranks:  # every rank returns the global result
        assert got[name]["n_iter"] == single.n_iter
        for key in ("weights", "locs", "covariances"):
            torch.testing.assert_close(got[name][key], getattr(single.params, key), rtol=1e-10, atol=1e-10, msg=key)
        for column, values in got[name]["history"].items():
            torch.testing.assert_close(values, single.history[column], rtol=1e-10, atol=0, equal_nan=True,
                                       msg=column)


def test_labels_in_other_distributed_routines_are_a_clear_error():
    X, labels, _, start = _case()
    with one_rank_group():
        for method in ("vb", "map"):
            model = GaussianMixture(3, "full", prior=GaussianPrior() if method == "vb" else None)
            with pytest.raises(ValueError, match=r"distributed=True works with \['em', 'hard_em'\]"):
                mixtures.fit(model, X, method, init=start, labels=labels, distributed=True)
