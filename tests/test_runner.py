"""Background runs for a shared server: a fair line, Stop, time limits, failures kept to one learner."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from cnnlab import ModelConfig, TrainConfig, load_dataset
from cnnlab.inference import detect_collapse
from cnnlab.runner import DONE, FAILED, QUEUED, STOPPED, PoolSettings, TrainingPool


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist").sample(0.2, seed=0)


def quick(epochs=1, **overrides) -> TrainConfig:
    return TrainConfig(ModelConfig("lenet5"), epochs=epochs, batch_size=32, **overrides)


def wait(run, seconds=120):
    deadline = time.time() + seconds
    while run.active and time.time() < deadline:
        time.sleep(0.1)
    assert not run.active, f"run still {run.status}"
    return run


def test_one_slot_makes_the_second_learner_wait_in_line(mnist):
    pool = TrainingPool(PoolSettings(max_concurrent=1))
    first = pool.submit(quick(epochs=2), mnist)
    second = pool.submit(quick(), mnist)
    third = pool.submit(quick(), mnist)
    deadline = time.time() + 60
    while first.status == QUEUED and time.time() < deadline:
        time.sleep(0.05)
    assert pool.running == 1 and second.status == QUEUED
    assert (pool.place_in_line(second), pool.place_in_line(third)) == (1, 2)
    third.stop()
    assert wait(third, 10).status == STOPPED and third.run is None
    assert wait(first).status == DONE and wait(second).status == DONE
    assert second.started >= first.finished - 0.5  # never two at once
    assert pool.running == 0


def test_runs_are_separate_objects_with_their_own_models(mnist):
    pool = TrainingPool(PoolSettings(max_concurrent=2))
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
    assert run.status == STOPPED and str(run.stop_reason) == "stopped by the learner"
    assert len(run.batches) <= 5 and run.run.model is not None and run.run.test_accuracy is not None


def test_a_run_past_the_time_limit_is_stopped(mnist):
    pool = TrainingPool(PoolSettings(max_run_seconds=0.5))
    run = wait(pool.submit(quick(epochs=50), mnist))
    assert run.status == STOPPED and "time limit" in str(run.stop_reason)


def test_a_failing_run_reports_and_frees_its_slot(mnist):
    pool = TrainingPool()
    labels_out_of_range = dataclasses.replace(mnist, y_train=mnist.y_train + 20, y_test=mnist.y_test + 20)
    run = wait(pool.submit(quick(), labels_out_of_range))
    assert run.status == FAILED and run.error and run.run is None
    assert pool.running == 0
    assert wait(pool.submit(quick(), mnist)).status == DONE


def test_collapse_is_one_class_taking_most_predictions():
    names = tuple("abcdefghij")
    collapsed = detect_collapse(np.full(100, 3), names)
    assert collapsed.class_name == "d" and collapsed.share == 1.0
    assert detect_collapse(np.arange(100) % 10, names) is None
    assert detect_collapse(np.array([], dtype=int), names) is None
