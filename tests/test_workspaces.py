"""Workspaces on disk: tokens nobody can guess or bend into a path, runs saved at every epoch without a
half-written file, an index that many writers keep consistent, limits that remove the oldest first and
say so, and a restart that finds what was training."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest

import cnnlab
from cnnlab.classroom import PoolSettings
from cnnlab.runner import BackgroundRun, RunStatus, TrainingPool
from cnnlab.workspaces import Store, new_token, well_formed


@pytest.fixture(scope="module")
def lenet():
    """A small LeNet trained for two epochs of three batches: a real run to keep."""
    data = cnnlab.load_dataset("mnist").sample(0.02, seed=0)
    return cnnlab.train(cnnlab.TrainConfig(cnnlab.ModelConfig("lenet5"), epochs=2, steps_per_epoch=3, batch_size=32),
                        data=data), data


def store(tmp_path, **settings) -> Store:
    return Store(tmp_path / "data", PoolSettings(**settings))


def finish(kept: Store, run_id: int, run, status=RunStatus.DONE) -> None:
    """A run ended as a training thread would end it."""
    background = BackgroundRun(run_id, run.config, None, "lenet")
    background.run, background.status, background.finished = run, status, time.time()
    kept.ended(run_id, background)


def test_tokens_are_long_random_and_never_a_path():
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000 and all(len(t) == 32 and well_formed(t) for t in tokens)  # 192 bits each
    for trick in ["../../etc/passwd", "..", "a" * 31, "a" * 33, "a" * 10_000, "토큰" * 16, "a/b" + "c" * 29,
                  "%2e%2e" + "a" * 26, "", None, 42, "a" * 31 + "\n"]:
        assert not well_formed(trick), trick


def test_two_workspaces_never_see_each_others_runs(tmp_path, lenet):
    run, _ = lenet
    kept = store(tmp_path)
    mine, theirs = kept.create_workspace(), kept.create_workspace()
    first = kept.add(mine, run.config, "mine")
    kept.checkpoint(first, run, 2)
    kept.add(theirs, run.config, "theirs")
    assert [r.label for r in kept.runs(mine)] == ["mine"] and [r.label for r in kept.runs(theirs)] == ["theirs"]
    assert kept.runs(new_token()) == []                                   # an unknown token: nothing
    assert not kept.exists(new_token()) and not kept.exists("../" + mine[3:])
    shared = kept.shared(kept.runs(mine)[0].share)
    assert shared.id == first and shared.label == "mine"                  # a read-only link: that run alone
    assert kept.shared(mine) is None and kept.shared("../index.sqlite3") is None  # a workspace token is no run link
    assert not list((tmp_path / "data").glob(f"**/{mine}*"))             # no token is ever part of a path


def test_every_epoch_is_on_disk_and_a_crash_before_the_rename_keeps_the_last(tmp_path, lenet, monkeypatch):
    run, _ = lenet
    kept = store(tmp_path)
    token = kept.create_workspace()
    run_id = kept.add(token, run.config, "lenet")
    one_epoch = dataclasses.replace(run, history=cnnlab.training.History(
        [b for b in run.history.batches if b["epoch"] == 1], run.history.epochs[:1]))
    kept.checkpoint(run_id, one_epoch, 2)
    assert kept.load(run_id).epochs_completed == 1

    def crash(*args):
        raise OSError("the server died between writing and renaming")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        kept.checkpoint(run_id, run, 2)
    monkeypatch.undo()
    back = kept.load(run_id)                          # the previous checkpoint, whole
    assert back.epochs_completed == 1 and back.optimizer is not None
    assert [p.name for p in kept.bundle_path(run_id).parent.iterdir() if p.name.endswith(".part")] == []
    assert kept.get(run_id).epochs_done == 1


def test_a_restart_lists_what_was_training_as_interrupted_at_its_last_epoch(tmp_path, lenet):
    run, data = lenet
    kept = store(tmp_path)
    token = kept.create_workspace()
    training = kept.add(token, run.config, "training")
    kept.add(token, run.config, "waiting")
    kept.started(training)
    kept.checkpoint(training, run, 5)
    (kept.bundle_path(training).parent / ".bundle.zip.123-456.part").write_bytes(b"half a file")
    (tmp_path / "data" / "runs" / "999").mkdir()      # a folder the index does not know

    again = store(tmp_path)                           # the next server on the same data folder
    assert again.interrupted == 2
    found = {r.label: r for r in again.runs(token)}
    assert found["training"].status == RunStatus.INTERRUPTED and found["training"].epochs_done == 2
    assert found["training"].planned == 5 and found["training"].trained and len(found["training"].epochs) == 2
    assert found["waiting"].status == RunStatus.INTERRUPTED and not found["waiting"].trained
    assert not list((tmp_path / "data" / "runs").glob("*/.*.part")) and not (tmp_path / "data/runs/999").exists()

    resumed = again.load(training)                    # Continue: from its optimizer's state
    more = cnnlab.train(dataclasses.replace(run.config, epochs=1), data=data, resume=resumed)
    assert [e["epoch"] for e in more.history.epochs] == [1, 2, 3]


def test_limits_remove_the_oldest_finished_runs_first_and_say_so(tmp_path, lenet):
    run, _ = lenet
    kept = store(tmp_path, kept_runs=2)
    token = kept.create_workspace()
    first = kept.add(token, run.config, "first")
    finish(kept, first, run)
    second = kept.add(token, run.config, "second")    # still training: never removed
    assert kept.next_to_remove(token).id == first     # the page warns before it happens
    third = kept.add(token, run.config, "third")
    assert [r.id for r in kept.runs(token)] == [second, third]
    assert not kept.bundle_path(first).parent.exists()
    gone = kept.removed(token)
    assert [(g.run, g.label, g.reason) for g in gone] == [(first, "first", "kept_runs")]

    size = kept.get(third).size or 1
    small = store(tmp_path / "small", workspace_mb=1)
    token = small.create_workspace()
    ids = []
    for i in range(3):
        ids.append(small.add(token, run.config, f"run {i}"))
        finish(small, ids[-1], run)
    used = sum(r.size for r in small.runs(token))
    assert used <= 2**20 or len(small.runs(token)) == 1, (used, size)
    assert small.runs(token)[-1].id == ids[-1]        # the newest stays
    assert {g.reason for g in small.removed(token)} <= {"workspace_mb"}


def test_the_server_limit_and_expiry_remove_the_oldest_across_workspaces(tmp_path, lenet):
    run, _ = lenet
    kept = store(tmp_path, server_mb=1, workspace_days=1)
    old, new = kept.create_workspace(), kept.create_workspace()
    a = kept.add(old, run.config, "old")
    finish(kept, a, run)
    b = kept.add(new, run.config, "new")
    finish(kept, b, run)
    if kept.get(a) is None:                           # the two did not fit in 1 MB: the older one went
        assert [(g.run, g.reason) for g in kept.removed(old)] == [(a, "server_mb")]
    assert kept.get(b) is not None

    with kept._write() as db:                         # nobody opened `old` for two days
        db.execute("UPDATE workspaces SET seen=? WHERE key=(SELECT workspace FROM runs WHERE id=?)",
                   (time.time() - 2 * 86400, b))
    assert kept.expire() == 1
    assert not kept.exists(new) and kept.get(b) is None and not kept.bundle_path(b).parent.exists()


def test_many_writers_at_once_keep_the_index_consistent(tmp_path, lenet):
    run, _ = lenet
    kept = store(tmp_path, kept_runs=1000)
    tokens = [kept.create_workspace() for _ in range(3)]
    errors, made = [], []

    def writer(token):
        try:
            for _ in range(6):
                run_id = kept.add(token, run.config, "tab")
                kept.started(run_id)
                kept.checkpoint(run_id, run, 2)
                finish(kept, run_id, run)
                made.append((token, run_id))
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in tokens for _ in range(2)]  # two tabs each
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({run_id for _, run_id in made}) == 36
    for token in tokens:
        runs = kept.runs(token)
        assert sorted(r.id for r in runs) == sorted(i for t, i in made if t == token)
        assert all(r.status == RunStatus.DONE and r.epochs_done == 2 and kept.load(r.id, optimizer=False) for r in runs)


def test_models_are_read_from_disk_and_only_a_few_are_held(tmp_path, lenet):
    run, _ = lenet
    kept = store(tmp_path, cached_models=2)
    token = kept.create_workspace()
    ids = []
    for _ in range(3):
        ids.append(kept.add(token, run.config, "lenet"))
        kept.checkpoint(ids[-1], run, 2)
    models = [kept.model(i) for i in ids]
    assert len(kept._held) == 2 and kept.model(ids[-1]) is models[-1]  # held for every page and tab
    assert models[0].optimizer is None                                 # a run only looked at
    assert len(kept.runs(token)[0].epochs) == 2                        # its curves need no model


def test_a_workspace_deleted_while_its_run_trains_gets_nothing_back(tmp_path, lenet):
    run, data = lenet
    kept = store(tmp_path)
    pool = TrainingPool(PoolSettings(), keeper=kept)
    token = kept.create_workspace()
    live = pool.submit(dataclasses.replace(run.config, epochs=3), data, workspace=token)
    while not live.epochs and live.active:
        live.touch()
        time.sleep(0.05)
    kept.delete_workspace(token)
    live.stop()
    while live.active:
        time.sleep(0.05)
    time.sleep(0.2)
    assert kept.get(live.id) is None and not kept.bundle_path(live.id).parent.exists()
    assert not kept.exists(token)


def test_a_save_that_costs_more_than_the_training_waits_for_a_later_epoch_or_the_end(lenet):
    run, data = lenet

    class SlowDisk:
        """A keeper whose every save takes half a second: twenty times longer than these epochs train."""

        def __init__(self):
            self.saved, self.at_end = [], None

        def add(self, workspace, config, label):
            return 1

        def started(self, run_id):
            pass

        def checkpoint(self, run_id, kept, planned):
            time.sleep(0.5)
            self.saved.append(kept.epochs_completed)

        def ended(self, run_id, background):
            self.at_end = background.run.epochs_completed

    disk = SlowDisk()
    pool = TrainingPool(PoolSettings(), keeper=disk)
    live = pool.submit(dataclasses.replace(run.config, epochs=4), data, workspace="any")
    while pool.live(live.id) is not None:  # until its end is kept
        live.touch()
        time.sleep(0.05)
    assert live.status == RunStatus.DONE
    assert disk.saved == [1] and disk.at_end == 4  # the first epoch, then only the end: 2 saves, not 4
