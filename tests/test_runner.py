"""Background runs for a shared server: a fair line, Stop, time limits, failures kept to one learner."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from cnnlab import ModelConfig, TrainConfig, load_dataset
from cnnlab.classroom import PoolSettings
from cnnlab.errors import LabError
from cnnlab.inference import detect_collapse
from cnnlab.runner import BackgroundRun, RunStatus, TrainingPool
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist").sample(0.02, seed=0)


def quick(epochs=1, **overrides) -> TrainConfig:
    return TrainConfig(ModelConfig("lenet5"), epochs=epochs, batch_size=32, **overrides)


def wait(run, seconds=120):
    deadline = time.time() + seconds
    while run.active and time.time() < deadline:
        time.sleep(0.1)
    assert not run.active, f"run still {run.status}"
    return run


def test_one_slot_makes_the_second_learner_wait_in_line(mnist):
    pool = TrainingPool(PoolSettings(max_concurrent_runs=1))
    first = pool.submit(quick(epochs=2), mnist)
    second = pool.submit(quick(), mnist)
    third = pool.submit(quick(), mnist)
    deadline = time.time() + 60
    while first.status == RunStatus.QUEUED and time.time() < deadline:
        time.sleep(0.05)
    assert pool.running == 1 and second.status == RunStatus.QUEUED
    assert (pool.place_in_line(second), pool.place_in_line(third)) == (1, 2)
    third.stop()
    assert wait(third, 10).status == RunStatus.STOPPED and third.run is None
    assert wait(first).status == RunStatus.DONE and wait(second).status == RunStatus.DONE
    assert second.started >= first.finished - 0.5  # never two at once
    assert pool.running == 0


def test_runs_are_separate_objects_with_their_own_models(mnist):
    pool = TrainingPool(PoolSettings(max_concurrent_runs=2))
    a, b = pool.submit(quick(seed=1), mnist), pool.submit(quick(seed=2), mnist)
    wait(a), wait(b)
    assert a.run.model is not b.run.model
    assert not np.allclose(a.run.model.get_weights()[0], b.run.model.get_weights()[0])
    assert a.batches is not b.batches and len(a.batches) == len(b.batches) == 38


def test_stop_acts_within_a_batch_and_keeps_the_partial_model(mnist):
    pool = TrainingPool()
    run = pool.submit(quick(epochs=5), mnist)
    while len(run.batches) < 3:
        time.sleep(0.01)
    run.stop()
    wait(run)
    assert run.status == RunStatus.STOPPED and str(run.stop_reason) == "stopped by the learner"
    assert len(run.batches) <= 5 and run.run.model is not None and run.run.test_accuracy is not None


def test_a_run_past_the_time_limit_is_stopped(mnist):
    pool = TrainingPool(PoolSettings(max_run_minutes=0.5 / 60))
    run = wait(pool.submit(quick(epochs=50), mnist))
    assert run.status == RunStatus.STOPPED and "time limit" in str(run.stop_reason)


def test_a_failing_run_reports_and_frees_its_slot(mnist):
    pool = TrainingPool()
    labels_out_of_range = dataclasses.replace(mnist, y_train=mnist.y_train + 20, y_test=mnist.y_test + 20)
    run = wait(pool.submit(quick(), labels_out_of_range))
    assert run.status == RunStatus.FAILED and run.error
    assert pool.running == 0
    assert wait(pool.submit(quick(), mnist)).status == RunStatus.DONE


class Faulty(BackgroundRun):
    """A run whose listener breaks at its third batch, as a page's drawing code or the memory could."""

    fault: BaseException = RuntimeError("the listener broke")

    def on_batch(self, progress):
        super().on_batch(progress)
        if len(self.batches) == 3:
            raise self.fault


@pytest.mark.parametrize("fault, says", [
    (RuntimeError("the listener broke"), "RuntimeError: the listener broke"),
    (MemoryError(), "ran out of memory"),
    (type("ResourceExhaustedError", (Exception,), {})("OOM when allocating tensor with shape [128,96,55,55]"),
     "ran out of memory"),
])
def test_a_fault_mid_epoch_keeps_the_partial_model_and_history_and_frees_the_slot(mnist, monkeypatch, fault, says):
    monkeypatch.setattr(Faulty, "fault", fault)
    monkeypatch.setattr("cnnlab.runner.BackgroundRun", Faulty)
    pool = TrainingPool()
    run = wait(pool.submit(quick(epochs=2), mnist))
    assert isinstance(run, Faulty) and run.status == RunStatus.FAILED and says in str(run.error)
    assert len(run.batches) == 3 and len(run.run.history.batches) == 3 and run.run.history.epochs == []
    assert run.run.model.predict(mnist.x_test[:4], verbose=0).shape == (4, 10)  # the partial model still works
    assert "메모리" in run.error.in_language("ko") if says == "ran out of memory" else True
    monkeypatch.setattr("cnnlab.runner.BackgroundRun", BackgroundRun)
    assert pool.running == 0 and wait(pool.submit(quick(), mnist)).status == RunStatus.DONE  # the server carries on


def test_a_run_whose_tab_has_gone_stops_and_one_still_watched_goes_on(mnist):
    pool = TrainingPool(PoolSettings(abandoned_after_seconds=1.0))
    gone, watched = pool.submit(quick(epochs=50), mnist), pool.submit(quick(epochs=2), mnist)
    while watched.active:  # only this one's page keeps asking about it
        watched.touch()
        time.sleep(0.2)
    assert wait(gone).status == RunStatus.STOPPED and "browser tab was gone for 1 seconds" in str(gone.stop_reason)
    assert watched.status == RunStatus.DONE and len(watched.epochs) == 2
    assert gone.run is not None and gone.run.history.batches  # its partial run is kept


def test_a_run_waiting_in_line_is_dropped_when_its_tab_goes(mnist):
    pool = TrainingPool(PoolSettings(max_concurrent_runs=1, abandoned_after_seconds=0.5))
    first = pool.submit(quick(epochs=3), mnist)
    queued = pool.submit(quick(), mnist)
    while first.active:
        first.touch()
        time.sleep(0.1)
    assert wait(queued).status == RunStatus.STOPPED and queued.run is None and queued.started is None


def test_a_run_that_no_longer_fits_when_its_turn_comes_fails_alone(mnist, monkeypatch):
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 1)
    run = wait(TrainingPool().submit(quick(), mnist))
    assert run.status == RunStatus.FAILED and isinstance(run.error, LabError) and "GB of memory" in str(run.error)
    assert "메모리" in run.error.in_language("ko")


def test_classroom_settings_come_from_a_file(tmp_path):
    path = tmp_path / "classroom.toml"
    path.write_text("[classroom]\nmax_concurrent_runs = 3\nmax_run_minutes = 0.5\nabandoned_after_seconds = 20\n")
    settings = PoolSettings.from_file(path)
    assert (settings.max_concurrent_runs, settings.max_run_seconds, settings.abandoned_after_seconds) == (3, 30, 20)
    assert PoolSettings.from_file(tmp_path / "absent.toml") == PoolSettings()
    for text, message in [("[classroom]\nmax_concurent_runs = 2\n", "unknown classroom setting 'max_concurent_runs'"),
                          ("[classroom]\nmax_concurrent_runs = 0\n", "from 1 to 64"),
                          ("[classroom]\nmax_run_minutes = 'long'\n", "max_run_minutes must be a number"),
                          ("[classroom\n", "not valid TOML")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            PoolSettings.from_file(path)


def test_the_shipped_classroom_file_and_the_upload_limit_agree():
    import tomllib

    settings = PoolSettings.from_file(ROOT / ".streamlit" / "classroom.toml")
    streamlit = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert streamlit["server"]["maxUploadSize"] >= settings.max_bundle_mb
    assert settings.abandoned_after_seconds >= 60  # a background tab's timers may fire only once a minute


def test_collapse_is_one_class_taking_most_predictions():
    names = tuple("abcdefghij")
    collapsed = detect_collapse(np.full(100, 3), names)
    assert collapsed.class_name == "d" and collapsed.share == 1.0
    assert detect_collapse(np.arange(100) % 10, names) is None
    assert detect_collapse(np.array([], dtype=int), names) is None


def test_a_second_run_is_checked_for_memory_only_once_the_first_holds_its_own(mnist, monkeypatch):
    events = []
    check, on_batch = BackgroundRun._check_memory, BackgroundRun.on_batch

    def checking(self, reserve_bytes):
        events.append(("check", self.id))
        time.sleep(0.2)  # a check that takes a moment, so the other run's thread would overtake it
        return check(self, reserve_bytes)

    def batch(self, progress):
        if not self.batches:
            events.append(("first batch", self.id))
        return on_batch(self, progress)

    monkeypatch.setattr(BackgroundRun, "_check_memory", checking)
    monkeypatch.setattr(BackgroundRun, "on_batch", batch)
    pool = TrainingPool(PoolSettings(max_concurrent_runs=2))
    a, b = pool.submit(quick(), mnist), pool.submit(quick(), mnist)
    wait(a), wait(b)
    first = events[0][1]
    assert events[:2] == [("check", first), ("first batch", first)], events
