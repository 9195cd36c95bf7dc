"""Chunk-parallel passes: the same bits at any thread count, torch's threads restored, clear errors."""

import threading
import time

import numpy as np
import pytest
import torch

import mixtures
from mixtures import GaussianMixture, MixtureParams
from mixtures.core.stream import StreamingData
from mixtures.families.gaussian.statistics import default_shift, e_step
from mixtures.kernels import fused_pass, parallel

from conftest import COVARIANCE_TYPES, true_params


def summaries_equal(a, b):
    for name in ("nk", "log_likelihood", "entropy", "worst_point"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in a.moments:
        assert torch.equal(a.moments[name], b.moments[name]), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_pass_is_the_same_on_any_number_of_workers(covariance_type, dtype):
    params = true_params(covariance_type, dtype)
    X, _ = params.sample(5000, seed=4)
    shift = default_shift(X)
    serial = e_step(X, params, shift, chunk_size=333)
    hard = e_step(X, params, shift, hard=True, chunk_size=333)
    for workers in (2, 3):
        with parallel.using(workers):
            summaries_equal(e_step(X, params, shift, chunk_size=333), serial)
            parallel_hard = e_step(X, params, shift, hard=True, chunk_size=333)
            assert torch.equal(parallel_hard.labels, hard.labels)
            summaries_equal(parallel_hard, hard)
            wide = e_step(X, params, shift, chunk_size=333, accumulate_dtype=torch.float64)
        summaries_equal(wide, e_step(X, params, shift, chunk_size=333, accumulate_dtype=torch.float64))


def test_streamed_passes_and_ties_for_the_worst_point():
    """A stream on the workers gives the serial sums; with the worst point duplicated in two
    chunks, the first chunk's copy is the one returned, as in a serial pass."""
    params = true_params("full")
    X, _ = params.sample(3000, seed=5)
    X[2500] = X[100] = torch.tensor([40.0, -40.0], dtype=torch.float64)  # worst, in chunks 0 and 7
    shift = default_shift(X)
    serial = e_step(X, params, shift, chunk_size=300)
    stream = StreamingData(X.numpy(), chunk_size=300)
    with parallel.using(2):
        streamed = e_step(stream, params, shift, chunk_size=300)
        in_memory = e_step(X, params, shift, chunk_size=300)
    summaries_equal(streamed, serial)
    summaries_equal(in_memory, serial)
    assert torch.equal(serial.worst_point, X[100])


@pytest.mark.filterwarnings("ignore:EM did not converge")
def test_fits_do_not_depend_on_threads():
    params = MixtureParams([0.5, 0.5], [[0.0, 0.0], [3.0, 3.0]], [[1.0, 1.0], [0.5, 2.0]], "diag")
    X, _ = params.sample(200_000, seed=1)  # several chunks of the fused pass
    model = GaussianMixture(2, "diag")
    runs = {threads: mixtures.fit(model, X, "em", init="kmeans++", seed=3, max_iter=5, tol=0, threads=threads)
            for threads in (1, 2, None)}
    for threads in (2, None):  # None: each pass on 1 or torch.get_num_threads() workers, whichever was faster
        assert torch.equal(runs[1].params.locs, runs[threads].params.locs)
        assert torch.equal(runs[1].history["log_likelihood"], runs[threads].history["log_likelihood"])
    maps = {threads: mixtures.fit(model, X, "map", init=runs[1].params, num_steps=3, patience=None, threads=threads)
            for threads in (1, 2)}
    assert torch.equal(maps[1].history["loss"], maps[2].history["loss"])
    # VB's pass carries per-component likelihood offsets: each worker's share is returned, not shared state
    bayes = GaussianMixture(2, "diag", prior=mixtures.GaussianPrior())
    vbs = {threads: mixtures.fit(bayes, X, "vb", init=runs[1].params, max_iter=3, tol=0, threads=threads)
           for threads in (1, 2)}
    assert torch.equal(vbs[1].history["log_likelihood"], vbs[2].history["log_likelihood"])
    assert torch.equal(vbs[1].history["elbo"], vbs[2].history["elbo"])


def test_setting_is_scoped_and_workers_run_single_threaded():
    before = torch.get_num_threads()
    with parallel.using(2) as count:
        assert count == 2 and parallel.workers() == 2 and torch.get_num_threads() == 1
        seen = list(parallel.map_ordered(lambda state, item: (item, torch.get_num_threads()), range(9),
                                         lambda: None, 2))
    assert [item for item, _ in seen] == list(range(9)) and {threads for _, threads in seen} == {1}
    assert parallel.workers() == 1 and torch.get_num_threads() == before


def test_weighted_passes_are_the_same_on_any_number_of_workers():
    """In-memory chunks on the workers slice the weights as the serial pass does (zero weights included)."""
    params = true_params("full")
    X, _ = params.sample(4000, seed=6)
    weights = torch.rand(4000, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    weights[::7] = 0.0
    X[14] = torch.tensor([50.0, 50.0], dtype=torch.float64)  # the worst point, but weight 0: not reported
    shift = default_shift(X)
    serial = e_step(X, params, shift, chunk_size=301, sample_weight=weights)
    with parallel.using(2):
        summaries_equal(e_step(X, params, shift, chunk_size=301, sample_weight=weights), serial)
    assert not torch.equal(serial.worst_point, X[14])


def test_the_caller_is_one_of_the_workers_and_items_come_back_in_order():
    seen = []

    def task(state, index):
        state.append(index)  # each worker's own state, built once
        return index, threading.current_thread() is threading.main_thread(), torch.get_num_threads(), id(state)

    with parallel.using(2):
        results = list(parallel.map_indexed(task, 200, lambda: seen.append([]) or seen[-1], 2))
    assert [index for index, *_ in results] == list(range(200))
    assert {threads for _, _, threads, _ in results} == {1}
    on_caller = [index for index, caller, *_ in results if caller]
    assert on_caller and sorted(sum(seen, [])) == list(range(200))
    assert len(seen) == len({state for *_, state in results}) <= 2  # one state per worker that took an item
    assert list(parallel.map_indexed(task, 0, list, 2)) == []


def test_a_failing_item_stops_the_others_and_raises_in_the_caller():
    done = []

    def task(state, index):
        if index == 3:
            raise RuntimeError("item 3")
        time.sleep(0.0005)  # GIL released: 10 000 items would take seconds
        done.append(index)
        return index

    with pytest.raises(RuntimeError, match="item 3"):
        list(parallel.map_indexed(task, 10_000, lambda: None, 2))
    assert len(done) < 10_000 - 1  # the workers stopped taking items
    done.clear()
    results = parallel.map_indexed(lambda state, index: time.sleep(0.0005) or done.append(index) or index, 10_000,
                                   lambda: None, 2)
    assert next(results) == 0
    results.close()  # a caller that stops early stops the helper too
    assert len(done) < 10_000


def test_a_failing_chunk_raises_in_the_caller():
    def task(state, item):
        if item == 5:
            raise RuntimeError("chunk 5")
        return item

    with pytest.raises(RuntimeError, match="chunk 5"):
        list(parallel.map_ordered(task, range(20), lambda: None, 2))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        mixtures.fit(GaussianMixture(2), np.zeros((10, 2)) + np.arange(10)[:, None], "em", threads=bad)


def test_chunks_of_any_length_in_any_order_keep_the_row_of_ones():
    """A chunk shorter than the one before overwrites part of the longer one's row of ones in the
    shared buffers: a stream whose chunks grow, and passes that reuse a worker's kept buffers after a pass
    ending on a short chunk, must still give the statistics of one pass in memory."""
    params = true_params("full")
    X, _ = params.sample(1000, seed=4)
    shift = default_shift(X)
    whole = e_step(X, params, shift)

    def growing():
        yield from (X[:50], X[50:400], X[400:])

    ragged = e_step(StreamingData(growing), params, shift)
    for name in ("nk", "log_likelihood", "entropy"):
        torch.testing.assert_close(getattr(ragged, name), getattr(whole, name), rtol=1e-12, atol=0)
    fresh, fresh_hard = e_step(X, params, shift, chunk_size=333), e_step(X, params, shift, hard=True, chunk_size=333)
    for workers in (1, 2):
        with parallel.using(workers):
            for _ in range(3):  # each pass's buffers (its last chunk 1 point long) serve the next
                summaries_equal(e_step(X, params, shift, chunk_size=333), fresh)
                summaries_equal(e_step(X, params, shift, hard=True, chunk_size=333), fresh_hard)


def test_auto_measures_both_counts_then_keeps_the_faster_and_probes_the_other():
    chooser = parallel._Chooser(most=2)
    kind = "e pass"
    seconds = {1: 1.0, 2: 2.0}  # one worker twice as fast (a machine loaded by other sessions)
    chosen = []
    for _ in range(3 * parallel.PROBE_EVERY):
        count = chooser.choose(kind)
        chosen.append(count)
        chooser.record(kind, count, 1000, seconds[count])
    assert chosen[:2] == [2, 1]  # both measured first
    probes = [i for i, count in enumerate(chosen[2:], start=2) if count == 2]
    assert probes == [i for i in range(2, len(chosen)) if i % parallel.PROBE_EVERY == parallel.PROBE_EVERY - 1]
    seconds = {1: 1.0, 2: 0.25}  # the load went away: the next probe of 2 workers wins it back
    for _ in range(parallel.PROBE_EVERY + 2):
        count = chooser.choose(kind)
        chooser.record(kind, count, 1000, seconds[count])
    assert chooser.choose(kind) == 2
    assert parallel._Chooser(most=2).choose("another kind") == 2


def test_auto_passes_are_the_serial_ones_and_are_timed():
    params = true_params("diag")
    X, _ = params.sample(3000, seed=7)
    shift = default_shift(X)
    serial = e_step(X, params, shift, chunk_size=250)
    with parallel.using("auto", most=2) as most:
        assert most == 2 and torch.get_num_threads() == 1
        for _ in range(4):
            summaries_equal(e_step(X, params, shift, chunk_size=250), serial)
        chooser = parallel._state.chooser
        (rates,) = chooser.rates.values()
        assert set(rates) == {1, 2} and all(rate > 0 for rate in rates.values())
    assert getattr(parallel._state, "chooser", None) is None


def test_a_pass_with_a_stalled_helper_is_the_serial_pass():
    params = true_params("full")
    X, _ = params.sample(3000, seed=8)
    shift = default_shift(X)
    serial = e_step(X, params, shift, chunk_size=200)
    original, on_helper, helper_began = fused_pass._one_chunk, [], threading.Event()

    def stalling(plan, buffers, item):
        if threading.current_thread() is not threading.main_thread():
            on_helper.append(True)
            helper_began.set()
            time.sleep(0.05)  # every helper chunk far longer than the caller's
        else:
            # On a busy machine the helper thread may not be scheduled before the caller has
            # done every chunk alone; hold the caller until it has taken one, so the stalled
            # path is exercised on every run rather than only on an idle one.
            helper_began.wait(10.0)
        return original(plan, buffers, item)

    fused_pass._one_chunk = stalling
    try:
        with parallel.using(2):
            summaries_equal(e_step(X, params, shift, chunk_size=200), serial)
            hard = e_step(X, params, shift, hard=True, chunk_size=200)
    finally:
        fused_pass._one_chunk = original
    assert on_helper  # the helper took chunks; the caller redid the ones it still held
    assert torch.equal(hard.labels, e_step(X, params, shift, hard=True, chunk_size=200).labels)


def test_the_caller_computes_what_a_stalled_helper_holds_instead_of_waiting():
    """A helper descheduled mid-item (here: stuck on each item it takes until released) delays
    nothing: the caller computes that item too, once it has run 1.5 mean item times, and the
    results are the same; on a machine loaded by other sessions this keeps 2 workers from being
    slower than 1."""
    release, helper_done = threading.Event(), []

    def task(state, index):
        if threading.current_thread() is not threading.main_thread():
            release.wait(30.0)
            helper_done.append(index)
        time.sleep(0.002)
        return index * index

    try:
        with parallel.using(2):
            results = list(parallel.map_indexed(task, 40, lambda: None, 2))
        assert not helper_done  # all 40 results came while the helper was still stuck on its item
    finally:
        release.set()  # let the helper go (its copy of the item is dropped)
    assert results == [index * index for index in range(40)]
