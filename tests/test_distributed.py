"""Data-parallel EM over torch.distributed: two gloo processes on loopback equal one process."""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import COVARIANCE_TYPES, true_params
import mixtures
from mixtures import GaussianMixture


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank, world_size, port, covariance_type, hard, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        X, _ = true_params(covariance_type).sample(3000, seed=0)
        shard = X[rank::world_size]  # uneven interleaved shards
        result = mixtures.fit(GaussianMixture(3, covariance_type), shard, method="hard_em" if hard else "em",
                              init="kmeans++", seed=4, tol=1e-9, distributed=True)
        torch.save({"locs": result.params.locs, "native": result.params.native, "weights": result.params.weights,
                    "ll": result.history["log_likelihood"], "n_iter": result.n_iter},
                   f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_two_gloo_ranks_equal_a_single_process(tmp_path, covariance_type):
    port = _free_port()
    mp.start_processes(_worker, args=(2, port, covariance_type, False, str(tmp_path)), nprocs=2,
                       start_method="spawn", join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # every rank returns the same result
    for key in ("locs", "native", "weights", "ll"):
        assert torch.equal(ranks[0][key], ranks[1][key])
    # rank 0 initialized from its own shard and broadcast; a single process started there agrees
    X, _ = true_params(covariance_type).sample(3000, seed=0)
    start = mixtures.fit(GaussianMixture(3, covariance_type), X[0::2], init="kmeans++", seed=4, max_iter=0).params
    single = mixtures.fit(GaussianMixture(3, covariance_type), X, init=start, tol=1e-9)
    assert ranks[0]["n_iter"] == single.n_iter
    torch.testing.assert_close(ranks[0]["locs"], single.params.locs, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ranks[0]["native"], single.params.native, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ranks[0]["ll"], single.history["log_likelihood"], rtol=1e-10, atol=0)


def test_distributed_without_a_process_group_is_a_clear_error():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        mixtures.fit(GaussianMixture(2), X, distributed=True)
