"""Training runs: they learn, report every batch, stop on request, and are reproducible."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest

from cnnlab import RECIPES, ModelConfig, TrainConfig, save_run, train
from cnnlab.bundle import bundle_bytes, read_bundle
from cnnlab.training import OneCycle, make_optimizer, one_cycle
from tests.conftest import QUICK_LENET


class Recorder:
    def __init__(self, stop_at_step=None, stop=None):
        self.batches, self.epochs = [], []
        self.stop_at_step, self.stop = stop_at_step, stop

    def on_batch(self, progress):
        self.batches.append(progress)
        if progress.step == self.stop_at_step:
            self.stop.set()

    def on_epoch(self, progress):
        self.epochs.append(progress)


def lenet(**overrides) -> TrainConfig:
    return TrainConfig(ModelConfig("lenet5"), **(QUICK_LENET | overrides))


@pytest.fixture(scope="module")
def learned():
    recorder = Recorder()
    return train(lenet(), listener=recorder), recorder


def test_lenet_on_bundled_mnist_beats_90_percent_after_one_epoch(learned):
    run, _ = learned
    assert run.test_accuracy > 0.90
    assert run.epochs_completed == 1 and not run.stopped


def test_listener_hears_every_batch_and_the_epoch(learned):
    run, recorder = learned
    steps = math.ceil(6000 / 32)
    assert [p.step for p in recorder.batches] == list(range(1, steps + 1))
    assert recorder.batches[-1].seen == 6000 and recorder.batches[-1].fraction == 1.0
    assert recorder.batches[-1].eta == 0 and recorder.batches[1].eta > 0
    assert recorder.batches[-1].loss < recorder.batches[0].loss
    [epoch] = recorder.epochs
    assert epoch.val_accuracy == pytest.approx(run.test_accuracy)
    assert run.history.epochs[0]["val_loss"] == pytest.approx(run.test_loss)
    assert len(run.history.batches) == steps


def test_stop_ends_the_run_within_one_batch_and_keeps_what_it_learned():
    stop = threading.Event()
    recorder = Recorder(stop_at_step=3, stop=stop)
    run = train(lenet(epochs=3), listener=recorder, stop=stop)
    assert run.stopped and len(recorder.batches) == 3 and len(run.history.batches) == 3
    assert run.epochs_completed == 0
    assert run.test_accuracy is not None  # the partial model still classifies
    assert int(run.model.optimizer.iterations) == 3


def test_same_seed_same_weights():
    a = train(lenet(steps_per_epoch=5))
    b = train(lenet(steps_per_epoch=5))
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)


def test_gradient_accumulation_updates_once_per_full_batch():
    run = train(lenet(batch_size=128, accumulation_steps=4, steps_per_epoch=3))
    assert len(run.history.batches) == 12                       # micro-batches of 32
    assert run.history.batches[-1]["seen"] == 3 * 128
    assert int(run.model.optimizer.iterations) == 3              # three optimizer updates


def test_recipes_are_the_lectures_the_papers_and_the_stable_one():
    assert (RECIPES["seed"].optimizer, RECIPES["seed"].learning_rate, RECIPES["seed"].batch_size,
            RECIPES["seed"].epochs) == ("adam", 1e-3, 128, 10)
    assert (RECIPES["paper"].optimizer, RECIPES["paper"].learning_rate, RECIPES["paper"].momentum) == ("sgd", 1e-2, 0.9)
    assert (RECIPES["stable"].optimizer, RECIPES["stable"].learning_rate) == ("adam", 1e-4)
    sgd = make_optimizer(TrainConfig(ModelConfig("alexnet"), recipe="paper").resolved())
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    adam = make_optimizer(TrainConfig(ModelConfig("vgg19"), recipe="stable", learning_rate=3e-4).resolved())
    assert isinstance(adam, keras.optimizers.Adam) and float(adam.learning_rate) == pytest.approx(3e-4)


def test_the_fast_recipe_makes_one_cycle_of_its_learning_rate():
    fast = RECIPES["fast"]
    assert (fast.optimizer, fast.learning_rate, fast.batch_size, fast.epochs, fast.schedule) == \
        ("adam", 1e-2, 128, 3, "one-cycle")
    cycle = OneCycle(0.01, updates=100)
    rate = [float(keras.ops.convert_to_numpy(cycle(step))) for step in range(101)]
    assert rate[0] == pytest.approx(0.001) and max(rate) == pytest.approx(0.01) and rate.index(max(rate)) == 10
    assert all(a <= b for a, b in zip(rate[:10], rate[1:11])) and all(a >= b for a, b in zip(rate[10:], rate[11:]))
    assert rate[100] == pytest.approx(0.0001)
    # the lecture's recipe keeps the rate constant
    assert one_cycle(TrainConfig(ModelConfig("lenet5"), recipe="seed").resolved(), 100) is None


def test_the_page_can_draw_a_recipes_learning_rate_before_the_run():
    from cnnlab.training import learning_rates

    epochs, rates = learning_rates(TrainConfig(ModelConfig("lenet5"), recipe="fast"), n_train=60_000)
    assert epochs[-1] == pytest.approx(3) and len(rates) <= 600    # 3 epochs of 469 updates, thinned
    top = int(rates.argmax())
    assert rates[top] == pytest.approx(0.01, rel=0.01) and epochs[top] == pytest.approx(0.3, abs=0.02)
    assert rates[-1] == pytest.approx(1e-4, rel=0.05)
    epochs, rates = learning_rates(TrainConfig(ModelConfig("lenet5"), epochs=1000), n_train=10**6)
    assert len(rates) <= 600 and set(rates) == {1e-3}                  # the lecture's: constant, and small to draw


def test_a_fast_run_ends_its_cycle_and_a_continued_one_makes_its_own(tmp_path):
    config = lenet(recipe="fast", learning_rate=None, epochs=2, steps_per_epoch=5)
    first = train(config)
    optimizer = first.model.optimizer
    assert int(optimizer.iterations) == 10
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(1e-4)  # the end of the cycle
    back = read_bundle(bundle_bytes(first), 10 * 2**20)  # and a bundle keeps the run's state to go on from
    more = train(dataclasses.replace(config, epochs=1), resume=back)
    assert int(more.model.optimizer.iterations) == 15  # the step count carried on, so did Adam's moments
    assert float(keras.ops.convert_to_numpy(more.model.optimizer.learning_rate)) == pytest.approx(1e-4)
    assert [e["epoch"] for e in more.history.epochs] == [1, 2, 3]


class StopAfterEpoch:
    def __init__(self, stop: threading.Event, epoch: int):
        self.stop, self.epoch = stop, epoch

    def on_batch(self, progress):
        if progress.epoch > self.epoch:
            self.stop.set()

    def on_epoch(self, progress):
        pass


def test_with_micro_batches_the_cycle_spans_the_whole_run():
    """Keras steps a schedule once per micro-batch: halfway through, the rate is halfway down."""
    stop = threading.Event()
    config = lenet(recipe="fast", learning_rate=None, batch_size=32, accumulation_steps=2, epochs=2, steps_per_epoch=5)
    half = train(config, listener=StopAfterEpoch(stop, 1), stop=stop, evaluate_when_stopped=False)
    rate = float(keras.ops.convert_to_numpy(half.model.optimizer.learning_rate))
    expected = float(keras.ops.convert_to_numpy(OneCycle(0.01, 20)(11)))  # 10 micro-batches of epoch 1, 1 of epoch 2
    assert rate == pytest.approx(expected) and 0.004 < rate < 0.007


def test_a_continued_run_with_another_optimizer_starts_its_cycle_from_zero():
    earlier = train(lenet(recipe="paper", learning_rate=None, steps_per_epoch=3))  # SGD: Adam's state cannot carry over
    more = train(lenet(recipe="fast", learning_rate=None, steps_per_epoch=3), resume=earlier)
    rate = float(keras.ops.convert_to_numpy(more.model.optimizer.learning_rate))
    assert rate == pytest.approx(1e-4) and all(math.isfinite(e["loss"]) for e in more.history.epochs)
    assert float(keras.ops.convert_to_numpy(OneCycle(0.01, 10, start=5)(0))) == pytest.approx(0.001)  # never below


def test_a_fast_runs_model_file_loads_in_keras_without_cnnlab(tmp_path):
    run = train(lenet(recipe="fast", learning_rate=None, steps_per_epoch=2))
    save_run(run, tmp_path)
    script = f"import keras; print(keras.models.load_model({str(tmp_path / 'model.keras')!r}).count_params())"
    # run from tmp_path, where cnnlab is not importable
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-1500:]
    assert int(done.stdout.split()[-1]) == run.model.count_params()


def test_defaults_follow_the_lecture():
    config = TrainConfig(ModelConfig("alexnet"), source="full").resolved()
    assert (config.dataset, config.sample, config.epochs, config.batch_size) == ("cifar10", 0.1, 10, 128)
    assert TrainConfig(ModelConfig("alexnet")).resolved().sample == 1.0  # the bundled data is the 10% sample


@pytest.mark.parametrize("overrides, words", [
    (dict(epochs=0), ["epochs", "0"]),
    (dict(batch_size=-1), ["batch_size", "-1"]),
    (dict(learning_rate=float("nan")), ["learning_rate", "nan"]),
    (dict(learning_rate=-0.1), ["learning_rate", "-0.1"]),
    (dict(batch_size=128, accumulation_steps=3), ["128", "3"]),
    (dict(recipe="faster"), ["faster", "seed, paper, stable, fast"]),
    (dict(sample=2.0), ["fraction", "2.0"]),
    (dict(steps_per_epoch=0), ["steps_per_epoch"]),
])
def test_bad_settings_are_refused_before_training(overrides, words):
    with pytest.raises(ValueError) as error:
        lenet(**overrides).resolved()
    assert all(word in str(error.value) for word in words), str(error.value)


def test_a_feature_extractor_cannot_be_trained():
    with pytest.raises(ValueError, match="feature extractor"):
        train(TrainConfig(ModelConfig("keras-vgg19-notop")))
    with pytest.raises(ValueError, match="ImageNet classifier.*transfer"):
        train(TrainConfig(ModelConfig("keras-resnet50")))


def test_save_run_writes_model_history_and_record(learned, tmp_path):
    run, _ = learned
    save_run(run, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"bundle.zip", "model.keras", "history.json", "run.json"}
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["config"]["model"]["arch"] == "lenet5" and record["class_names"][7] == "7"
    assert record["result"]["test_accuracy"] == pytest.approx(run.test_accuracy)
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["epochs"]) == 1 and history["batches"][0]["step"] == 1
    assert run.history.to_csv().splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds"


def test_validation_loss_is_keras_loss_with_the_weight_penalty():
    from cnnlab import load_dataset
    from cnnlab.training import evaluate_predictions

    run = train(TrainConfig(ModelConfig("vgg19", input_size=32, width=0.0625), sample=0.05, epochs=1,
                            batch_size=32, recipe="stable"))
    data = load_dataset("cifar10").sample(0.05)
    keras_loss, keras_accuracy = run.model.evaluate(data.x_test, data.y_test, verbose=0)
    loss, accuracy, predicted = evaluate_predictions(run.model, data.x_test, data.y_test, 32)
    assert loss == pytest.approx(keras_loss, rel=1e-4) and accuracy == pytest.approx(keras_accuracy)
    assert run.test_predictions.shape == (len(data.x_test),)
    np.testing.assert_array_equal(run.test_predictions, predicted)
