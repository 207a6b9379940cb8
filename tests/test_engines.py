"""Runs in worker processes: a crash or an out-of-memory costs one run, never the server; Stop crosses
the process boundary; a cluster's workers train two learners' runs at once; seeds still decide the weights.

The workers are real Dask processes on 127.0.0.1 (the embedded cluster the app starts, or one the test
starts with Dask's own API), killed with real signals."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from cnnlab import ModelConfig, TrainConfig, engines, load_dataset
from cnnlab.classroom import PoolSettings
from cnnlab.engines import DaskEngine, ThreadEngine
from cnnlab.errors import LabError, Text
from cnnlab.runner import RunStatus, TrainingPool
from cnnlab.workspaces import Store
from tests.conftest import ROOT

distributed = pytest.importorskip("distributed")

GB = 2**30


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist")


@pytest.fixture(scope="module")
def embedded():
    """The app's own cluster: one worker, as on a server with one training slot."""
    engine = DaskEngine(workers=1, memory_limit=3 * GB)
    assert engine.ready(180), engine._failed
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def cluster():
    """A two-worker cluster started with Dask's own API, reached by its address as CNNLAB_CLUSTER gives it."""
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, memory_limit=3 * GB)
    engine = engines.choose(PoolSettings(), environ={"CNNLAB_CLUSTER": local.scheduler_address})
    assert isinstance(engine, DaskEngine) and engine.ready(180), getattr(engine, "_failed", None)
    yield engine
    engine.close()
    local.close()


@pytest.fixture(scope="module")
def reproducible():
    """The embedded cluster with two workers, as `reproducible = true` in classroom.toml starts it."""
    engine = engines.choose(PoolSettings(max_concurrent_runs=2, engine="workers", reproducible=True), environ={})
    assert isinstance(engine, DaskEngine) and engine.ready(180), getattr(engine, "_failed", None)
    yield engine
    engine.close()


def lenet(**overrides) -> TrainConfig:
    return TrainConfig(ModelConfig("lenet5"), **{"epochs": 1, "batch_size": 64, "sample": 0.05, **overrides})


def wait(run, seconds=180, until=lambda run: not run.active):
    deadline = time.time() + seconds
    while not until(run) and time.time() < deadline:
        time.sleep(0.05)
    assert until(run), f"run {run.id} is {run.status} with {len(run.batches)} batches"
    return run


def kept(pool, run):
    """The run has ended and its keeper has written how."""
    deadline = time.time() + 60
    while pool.live(run.id) is not None and time.time() < deadline:
        time.sleep(0.05)
    return run


def weights(run) -> list[np.ndarray]:
    return [np.asarray(w) for w in run.run.model.get_weights()]


def test_a_run_trains_in_a_worker_with_live_curves_and_comes_back_whole(embedded, mnist, tmp_path):
    store = Store(tmp_path)
    pool = TrainingPool(PoolSettings(), keeper=store, engine=embedded)
    run = pool.submit(lenet(epochs=2), mnist, workspace=store.create_workspace())
    wait(run, until=lambda r: len(r.batches) > 0)
    assert run.active and run.worker["pid"] != os.getpid()  # the curves arrive while it trains elsewhere
    kept(pool, wait(run))
    assert run.status == RunStatus.DONE, run.error
    assert len(run.epochs) == 2 and run.run.epochs_completed == 2 and run.run.test_predictions is not None
    stored = store.get(run.id)
    assert (stored.status, stored.epochs_done) == (RunStatus.DONE, 2)
    # the network's snapshots crossed too: live ones while it trained, and the start and each epoch's end kept
    assert run.latest_snapshot is not None and [s.kind for s in stored.snapshots] == ["start", "epoch", "epoch"]
    again = store.load(run.id)  # the bundle on disk has the optimizer's state to continue from
    assert again.optimizer is not None and all(np.array_equal(a, b) for a, b in zip(
        weights(run), again.model.get_weights()))


def test_a_worker_killed_mid_run_fails_its_run_with_its_curves_and_the_next_run_trains(embedded, mnist, tmp_path):
    store = Store(tmp_path)
    pool = TrainingPool(PoolSettings(), keeper=store, engine=embedded)
    workspace = store.create_workspace()
    run = pool.submit(lenet(epochs=50), mnist, workspace=workspace)
    wait(run, until=lambda r: len(r.epochs) >= 1 and store.get(r.id).epochs_done >= 1 and len(r.batches) > 60)
    os.kill(run.worker["pid"], signal.SIGKILL)
    kept(pool, wait(run, 60))
    assert run.status == RunStatus.FAILED and isinstance(run.error, LabError) and run.error.key == "worker_lost"
    assert "last finished epoch" in run.error.in_language("en")
    stored = store.get(run.id)
    assert stored.status == RunStatus.FAILED and stored.epochs_done >= 1 and stored.trained  # its checkpoint
    assert len(stored.batches) == len(run.batches) > 60 and len(stored.epochs) == len(run.epochs)
    assert "워커" in stored.error.in_language("ko")
    after = wait(pool.submit(lenet(), mnist, workspace=workspace))  # the nanny has started a new worker
    assert after.status == RunStatus.DONE and after.worker["pid"] != run.worker["pid"]


def test_a_run_past_its_workers_memory_limit_ends_as_out_of_memory_and_the_server_carries_on(mnist, monkeypatch):
    from streamlit.testing.v1 import AppTest

    engine = DaskEngine(workers=1, memory_limit=int(1.5 * GB))
    try:
        assert engine.ready(180), engine._failed
        # The estimate would refuse this run before it starts (as it should); here it is made to say
        # yes, so that the run meets the worker's hard limit, as an estimate that is wrong would.
        monkeypatch.setattr("cnnlab.runner.check_fits", lambda *args, **kwargs: None)
        monkeypatch.setattr(engine, "check_fits", lambda needed: None)
        pool = TrainingPool(PoolSettings(), engine=engine)
        big = TrainConfig(ModelConfig("vgg19"), epochs=1, batch_size=64, sample=0.5, dataset="cifar10")
        run = pool.submit(big, load_dataset("cifar10"))
        page = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
        renders = 0
        while run.active:
            page.run()  # another learner's page, drawn by this same server process meanwhile
            assert not page.exception
            renders += 1
        assert renders >= 1
        assert run.status == RunStatus.FAILED and isinstance(run.error, LabError), run.error
        assert run.error.key == "worker_out_of_memory" and "1.5 GB" in run.error.in_language("en")
        assert "메모리" in run.error.in_language("ko")
        assert wait(pool.submit(lenet(), mnist)).status == RunStatus.DONE
    finally:
        engine.close()


def test_the_estimate_refuses_a_run_larger_than_a_worker_before_it_starts(mnist):
    engine = DaskEngine.__new__(DaskEngine)
    engine.memory_limit = 1 * GB
    with pytest.raises(LabError) as refused:
        engine.check_fits(2 * GB)
    assert "worker" in str(refused.value)
    engine.check_fits(100 * 2**20)


def test_stop_crosses_to_the_worker_and_ends_the_run_within_one_batch(embedded, mnist):
    pool = TrainingPool(PoolSettings(), engine=embedded)
    # Batches of 4,096 digits take a second or more on a small machine: far longer than a stop takes to arrive.
    run = pool.submit(lenet(epochs=1, batch_size=4096, sample=1.0), mnist)
    wait(run, until=lambda r: len(r.batches) >= 2)
    seen = len(run.batches)
    run.stop()
    wait(run, 60)
    assert run.status == RunStatus.STOPPED and run.run is not None and run.run.stopped
    assert seen <= len(run.run.history.batches) <= seen + 1  # the batch in progress, and no more


def test_two_sessions_runs_train_at_once_on_the_clusters_two_workers(cluster, mnist):
    cluster.client.wait_for_workers(2, timeout=180)  # a worker still importing TensorFlow would leave one run queued
    pool = TrainingPool(PoolSettings(max_concurrent_runs=1), engine=cluster)  # the cluster's two workers decide
    a, b = pool.submit(lenet(epochs=5, seed=1), mnist), pool.submit(lenet(epochs=5, seed=2), mnist)
    wait(a, until=lambda r: r.batches and b.batches)
    both_live = (a.active and b.active, len(a.batches), len(b.batches))
    wait(a, until=lambda r: len(r.batches) > both_live[1] and len(b.batches) > both_live[2] or not r.active)
    assert both_live[0] and a.worker["worker"] != b.worker["worker"]
    wait(a), wait(b)
    assert a.status == b.status == RunStatus.DONE


def test_seeded_runs_in_parallel_learn_the_same_weights_as_one_after_another(reproducible, mnist):
    reproducible.client.wait_for_workers(2, timeout=180)
    assert set(reproducible.client.run(lambda: os.environ.get("TF_ENABLE_ONEDNN_OPTS")).values()) == {"0"}
    pool = TrainingPool(PoolSettings(max_concurrent_runs=2), engine=reproducible)
    together = [pool.submit(lenet(seed=seed), mnist) for seed in (3, 4)]
    [wait(run) for run in together]
    apart = [wait(pool.submit(lenet(seed=seed), mnist)) for seed in (3, 4)]
    for one, other in zip(together, apart):
        assert all(np.array_equal(x, y) for x, y in zip(weights(one), weights(other)))
    assert not np.array_equal(weights(together[0])[0], weights(together[1])[0])


def test_the_classroom_setting_chooses_where_runs_train(monkeypatch):
    monkeypatch.setattr("cnnlab.memory.limit_bytes", lambda *a: int(0.7 * GB))  # the smallest Community Cloud box
    small = engines.choose(PoolSettings(), environ={})
    assert isinstance(small, ThreadEngine) and "worker_min_mb" in small.why.in_language("en")
    assert isinstance(engines.choose(PoolSettings(engine="threads"), environ={}), ThreadEngine)
    made = []
    monkeypatch.setattr(DaskEngine, "_start", lambda self: made.append(self) or self._ready.set())
    monkeypatch.setattr("cnnlab.memory.limit_bytes", lambda *a: int(2.7 * GB))  # the largest
    roomy = engines.choose(PoolSettings(), environ={})
    assert isinstance(roomy, DaskEngine) and roomy.workers == 1 and not roomy.reproducible
    assert engines.choose(PoolSettings(reproducible=True), environ={}).reproducible
    with pytest.raises(LabError, match="reproducible"):
        PoolSettings(reproducible="yes")
    assert roomy.memory_limit == int(2.7 * GB) - 400 * 2**20  # the server's limit less the reserve
    remote = engines.choose(PoolSettings(engine="threads"), environ={"CNNLAB_CLUSTER": "tcp://10.0.0.5:8786"})
    assert isinstance(remote, DaskEngine) and remote.address == "tcp://10.0.0.5:8786"
    assert "10.0.0.5" in remote.describe().in_language("ko")


def test_errors_and_notes_cross_the_process_boundary_in_every_language():
    from cnnlab.memory import NotEnoughMemory

    error = NotEnoughMemory(Text("errors.what_run"), 3 * GB, GB, 2 * GB)
    back = engines._unwire(engines._wire(error))
    assert isinstance(back, LabError) and back.in_language("ko") == error.in_language("ko")
    note = Text("runs.not_saved", epoch=2, reason="disk full")
    assert engines._unwire(engines._wire(note)).in_language("ko") == note.in_language("ko")
