"""The robust families' statistics add up over ranks: two gloo processes on loopback equal one process
(t EM, t EM with a noise component, t MAP), as the Gaussian family's do."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from fit_checks import spawned_ranks

import mixtures
from mixtures.families import NoiseRegion, NoisyMixture, StudentTMixture, StudentTParams

from conftest import true_params

BOX = NoiseRegion("box", 18.0 * 17.0, (-7.0, -5.0), (11.0, 12.0))


def _data() -> torch.Tensor:
    gaussian = true_params("full")
    truth = StudentTParams.from_native(gaussian.weights, gaussian.locs, gaussian.native,
                                       torch.tensor([3.0, 6.0, 12.0], dtype=torch.float64), "full")
    inliers = truth.sample(701, seed=1)[0]
    return torch.cat([inliers, BOX.sample(60, torch.Generator().manual_seed(2))])


def _cases() -> dict:
    """name -> (model, method, options); the same in the workers and in the parent."""
    return {"t_em": (StudentTMixture(3, "full"), "em", {"tol": 1e-10, "max_iter": 60, "warn": False}),
            "t_em_shared": (StudentTMixture(3, "diag", dof="shared"), "em", {"tol": 1e-10, "max_iter": 40,
                                                                            "warn": False}),
            "noisy_t_em": (NoisyMixture(StudentTMixture(3, "full"), BOX), "em",
                           {"tol": 1e-10, "max_iter": 40, "warn": False}),
            "t_map": (StudentTMixture(3, "full"), "map", {"num_steps": 60, "patience": None})}


def _start(model):
    X = _data()
    return mixtures.fit(model, X, "em", max_iter=2, seed=0, warn=False).params


def _worker(rank, world_size, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        shard = _data()[rank::world_size]
        results = {}
        for name, (model, method, options) in _cases().items():
            result = mixtures.fit(model, shard, method, init=_start(model), distributed=True, **options)
            results[name] = {"tensors": result.params.tensors(), "log_likelihood": result.history["log_likelihood"]}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path):
    ranks = spawned_ranks(_worker, tmp_path, 2)
    X = _data()
    for name, (model, method, options) in _cases().items():
        single = mixtures.fit(model, X, method, init=_start(model), **options)
        for rank in ranks:
            got = rank[name]
            for key, value in single.params.tensors().items():
                torch.testing.assert_close(got["tensors"][key], value, rtol=1e-9, atol=1e-10, msg=f"{name} {key}")
            torch.testing.assert_close(got["log_likelihood"], single.history["log_likelihood"], rtol=1e-10, atol=0,
                                       msg=name)
