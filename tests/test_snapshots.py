"""The network changing while it trains: snapshots of the first layer's filters and of one test image's
feature maps, taken between batches, kept at the start and every epoch's end, bounded, and kept on disk."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cnnlab import ModelConfig, TrainConfig, build_model, load_dataset, snapshots
from cnnlab.classroom import PoolSettings
from cnnlab.runner import RunStatus, TrainingPool
from cnnlab.snapshots import MAX_KEPT, Camera, Snapshot, Snapshots
from cnnlab.training import train
from cnnlab.workspaces import Store


class Watching:
    """A page's listener: it shows snapshots, so the run takes them."""

    def __init__(self):
        self.seen: list[Snapshot] = []

    def on_batch(self, progress): ...
    def on_epoch(self, progress): ...
    def on_note(self, text, lasting=True): ...

    def on_snapshot(self, snapshot):
        self.seen.append(snapshot)


def wait_until_kept(pool, run, give_up_after: float = 180) -> None:
    """Wait (not a timing: only a bound on a hung run) until the run has ended and its keeper has written it."""
    deadline = time.time() + give_up_after
    while (run.active or pool.live(run.id) is not None) and time.time() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist")


def test_a_run_shows_its_filters_forming_from_its_start_to_each_epochs_end(mnist):
    watching = Watching()
    run = train(TrainConfig(ModelConfig("lenet5"), epochs=2, batch_size=64, sample=0.05, seed=1), watching, data=mnist)
    kinds = [s.kind for s in watching.seen]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and "live" in kinds  # a live one as it trained
    assert [(s.kind, s.epoch) for s in run.snapshots] == [("start", 0), ("epoch", 1), ("epoch", 2)]
    start, end = run.snapshots[0], run.snapshots[-1]
    assert start.filters.shape == (6, 5, 5, 1) and start.filters.dtype == np.uint8
    assert not np.array_equal(start.filters, end.filters)  # training changed the filters
    # the maps are the first test image's, through every convolution and pooling layer
    assert start.layers == ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_conv") and start.image == 0
    assert start.maps_of("c1_conv").shape == (6, 28, 28) and start.shapes[0] == (28, 28, 6)
    assert len(set(start.maps_of("c5_conv")[:, 0, 0])) > 1  # 1x1 maps scaled together still differ


def test_a_live_snapshot_shows_the_weights_as_they_stand_mid_epoch(mnist):
    """The first live snapshot comes after the first batch: one small step from the start, so its filters
    look like the start's. (On JAX the trained values sit outside the layers mid-epoch: a snapshot that
    read the layers without syncing them would show freshly drawn random filters instead.)"""
    watching = Watching()
    train(TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=64, sample=0.05, seed=1, learning_rate=1e-4),
          watching, data=mnist)
    start = next(s for s in watching.seen if s.kind == "start")
    live = next(s for s in watching.seen if s.kind == "live")
    assert live.at < 0.1  # after the first batch
    assert np.abs(live.filters.astype(int) - start.filters.astype(int)).mean() < 8  # of 255: the same filters


def test_a_continued_run_starts_its_pictures_at_the_epoch_it_carries_on_from(mnist):
    first = train(TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=256, sample=0.02, seed=1), data=mnist)
    watching = Watching()
    more = train(TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=256, sample=0.02, seed=1), watching,
                 data=mnist, resume=first)
    assert [(s.kind, s.epoch) for s in more.snapshots] == [("start", 1), ("epoch", 2)]


def test_a_run_without_a_watcher_takes_none(mnist):
    run = train(TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=256, sample=0.02, seed=1), data=mnist)
    assert run.snapshots == []


def test_a_long_run_keeps_its_start_and_a_bounded_number_of_epochs_spread_over_it():
    kept = Snapshots()
    picture = np.zeros((1, 1, 1, 1), np.uint8)
    for epoch in range(0, 101):
        kept.add(Snapshot("start" if epoch == 0 else "epoch", epoch, epoch, picture, (), ()))
        kept.add(Snapshot("live", epoch + 0.5, epoch + 1, picture, (), ()))
    epochs = [s.epoch for s in kept.kept]
    assert len(epochs) <= MAX_KEPT and epochs[0] == 0 and epochs[-1] == 100
    assert max(np.diff(epochs)) <= 2 * min(np.diff(epochs[:-1]))  # evenly spread, not the first twenty
    assert kept.latest.kind == "live"  # the latest is shown live, and not kept


def test_a_snapshot_of_the_deepest_lecture_network_stays_small():
    model = build_model("vgg19", width=0.25, classes=10, load_weights=False, raw_shape=(32, 32, 3))
    snapshot = Camera(model, np.zeros((32, 32, 3), np.uint8)).take("start", 0, 0)
    assert len(snapshot.layers) <= snapshots.MAX_LAYERS and snapshot.layers[0] == "block1_conv1"
    assert all(m.shape[0] <= snapshots.MAX_CHANNELS and max(m.shape[1:]) <= snapshots.MAX_SIDE for m in snapshot.maps)
    assert snapshot.nbytes < 150_000  # 21 kept: about 3 MB for a whole run at most
    assert snapshot.shapes[0] == (224, 224, 16)


def test_snapshots_cross_as_plain_arrays_and_refuse_anything_else():
    picture = np.arange(24, dtype=np.uint8).reshape(1, 2, 3, 4)
    one = Snapshot("epoch", 1.0, 1, picture, ("c1",), (np.ones((2, 3, 3), np.uint8),), ((3, 3, 2),), 7)
    back = snapshots.decode(snapshots.encode([one]))[0]
    assert back.kind == "epoch" and back.image == 7 and np.array_equal(back.filters, picture)
    assert back.shapes == ((3, 3, 2),) and np.array_equal(back.maps_of("c1"), one.maps[0])
    bad = Snapshot("epoch", 1.0, 1, picture.astype(np.float64), ("c1",), (np.ones((2, 3, 3), np.uint8),))
    with pytest.raises(ValueError):
        snapshots.decode(snapshots.encode([bad]))


def test_a_finished_runs_snapshots_are_kept_in_its_workspace(mnist, tmp_path):
    store = Store(tmp_path)
    pool = TrainingPool(PoolSettings(engine="threads"), keeper=store)
    run = pool.submit(TrainConfig(ModelConfig("lenet5"), epochs=2, batch_size=128, sample=0.05, seed=2), mnist,
                      workspace=store.create_workspace())
    wait_until_kept(pool, run)
    assert run.status == RunStatus.DONE
    again = Store(tmp_path).get(run.id)  # a restarted server reads them from disk
    assert [s.kind for s in again.snapshots] == ["start", "epoch", "epoch"]
    assert np.array_equal(again.latest_snapshot.filters, run.snapshots[-1].filters)
