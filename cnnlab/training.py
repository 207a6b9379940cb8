"""Training runs: recipes as data, a run that reports to a listener, stops on request, and saves.

The listener is a plain Python object with `on_batch(progress)` and `on_epoch(progress)`; the
command line draws a progress bar with it, the app draws live curves. Nothing here knows about
either.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import keras
import numpy as np

from . import checks
from .architectures import Architecture, ModelConfig, build_model, get_architecture, list_architectures
from .data import Dataset, load_dataset
from .datasets import DATASETS, SOURCES
from .devices import check_batch, choose, data_parallel, local_value, padded, process_index, processes, undistributed
from .errors import LabError, Text
from .features import Stopped, base_features
from .pretrained import WeightsUnavailable
from .snapshots import Camera, Snapshot


@dataclass(frozen=True)
class Recipe:
    """An optimiser setting; what it shows a learner is "recipes.<name>" in the catalogues."""

    name: str
    optimizer: str          # "adam" or "sgd"
    learning_rate: float
    momentum: float = 0.0   # SGD only
    epochs: int = 10
    batch_size: int = 128
    schedule: str = "constant"  # or "one-cycle": warm up to learning_rate, then anneal (see OneCycle)


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("seed", "adam", 1e-3),
    Recipe("paper", "sgd", 1e-2, momentum=0.9),
    Recipe("stable", "adam", 1e-4),
    # Measured in bench/time_to_accuracy.py: LeNet-5 passes the lecture's 10-epoch test accuracy in
    # about a third of its time. A rate ten times the lecture's learns fast while it is high, and the
    # long cosine descent that follows settles the weights the way many more epochs would.
    Recipe("fast", "adam", 1e-2, epochs=3, schedule="one-cycle"),
]}


@keras.saving.register_keras_serializable(package="cnnlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of a one-cycle run (Smith and Topin, "Super-convergence", 2017): a linear
    warm-up from a tenth of `peak` over the first `warmup` of the steps, then a cosine down to a
    hundredth of `peak` at the last. Keras steps a schedule once per micro-batch, so `updates`
    counts micro-batches; `start` is the optimizer's count when this run began (a continued run
    has its own cycle)."""

    def __init__(self, peak: float, updates: int, start: int = 0, warmup: float = 0.1):
        self.peak, self.updates, self.start, self.warmup = float(peak), int(updates), int(start), float(warmup)

    def __call__(self, step):
        ops = keras.ops
        warm = max(1.0, self.warmup * self.updates)
        done = ops.maximum(ops.cast(step, "float32") - self.start, 0.0)
        rising = self.peak * (0.1 + 0.9 * ops.minimum(done / warm, 1.0))
        progress = ops.clip((done - warm) / max(1.0, self.updates - warm), 0.0, 1.0)
        falling = self.peak * (0.01 + 0.99 * 0.5 * (1.0 + ops.cos(math.pi * progress)))
        return ops.where(done < warm, rising, falling)

    def get_config(self) -> dict:
        return {"peak": self.peak, "updates": self.updates, "start": self.start, "warmup": self.warmup}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `None` means "the recipe's" or "the architecture's" value."""

    model: ModelConfig
    dataset: str | None = None         # "mnist" or "cifar10"; default: the architecture's
    source: str = "bundled"            # "bundled" (shipped, offline) or "full" (Keras download)
    data_path: str | None = None       # an .npz in Keras's layout or a folder of class folders, instead of dataset
    sample: float | None = None        # fraction drawn; default: 1 (bundled is the lecture's data), lecture's for full
    recipe: str = "seed"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    steps_per_epoch: int | None = None  # batches per epoch, for a quick look; default: the whole sample
    accumulation_steps: int = 1        # split each batch into this many micro-batches, same update
    seed: int = 0

    def resolved(self) -> TrainConfig:
        """A copy with every default filled in and every value checked, its model resolved too:
        its input size, width and settings are checked now, before any data is loaded."""
        if not isinstance(self.model, ModelConfig):
            raise LabError("needs_model_config", value=checks.shown(self.model))
        arch = get_architecture(self.model.arch)
        if not arch.trainable:
            raise LabError("not_trainable", name=arch.name,
                           what=Text("errors.what_zoo" if arch.zoo else "errors.what_features"),
                           names=", ".join(list_architectures(trainable=True)))
        recipe = get_recipe(self.recipe)
        epochs = checks.whole(self.epochs if self.epochs is not None else recipe.epochs, "epochs", 1, 1000)
        batch = checks.whole(self.batch_size if self.batch_size is not None else recipe.batch_size, "batch_size", 1,
                             4096)
        accumulation = checks.whole(self.accumulation_steps, "accumulation_steps", 1, batch)
        if batch % accumulation:
            raise LabError("accumulation_split", batch=str(batch), steps=str(accumulation))
        lr = checks.number(self.learning_rate if self.learning_rate is not None else recipe.learning_rate,
                           "learning_rate", 0, 10, above=True)
        steps = None if self.steps_per_epoch is None else checks.whole(self.steps_per_epoch, "steps_per_epoch", 1,
                                                                        10**6)
        model = self.model.resolved()
        if self.dataset is not None:
            checks.choice(self.dataset, "dataset", DATASETS)
        checks.choice(self.source, "source", SOURCES)
        if self.data_path is not None and not isinstance(self.data_path, (str, Path)):
            raise LabError("data_path", value=checks.shown(self.data_path))
        sample = self.sample
        if sample is None:
            sample = arch.lecture_sample if (self.source == "full" and self.data_path is None) else 1.0
        return dataclasses.replace(
            self, model=model, dataset=self.dataset or arch.dataset, recipe=recipe.name, epochs=epochs,
            batch_size=batch, learning_rate=lr, steps_per_epoch=steps, accumulation_steps=accumulation,
            sample=checks.fraction(sample, "sample"), seed=checks.whole(self.seed, "seed", 0, 2**31 - 1))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data) -> TrainConfig:
        """The inverse of to_dict, refusing any setting it does not know (a saved run's file is not trusted)."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise LabError("run_config", type=type(data).__name__)
        names = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise LabError("unknown_setting", what=Text("errors.setting_training"), name=repr(unknown[0]),
                           names=", ".join(names))
        return cls(**{**data, "model": ModelConfig.from_dict(data["model"])})


@dataclass(frozen=True)
class Progress:
    """Where a run stands, after a batch or an epoch. Epochs and steps count from 1."""

    epoch: int
    epochs: int
    step: int
    steps: int
    seen: int                  # training images seen so far in this run
    elapsed: float             # seconds since the run started
    eta: float                 # seconds the run still needs, from the pace so far
    loss: float                # running mean over this epoch's batches so far
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, max(0.0, ((self.epoch - 1) * self.steps + self.step) / (self.epochs * self.steps)))


class Listener(Protocol):
    def on_batch(self, progress: Progress) -> None: ...
    def on_epoch(self, progress: Progress) -> None: ...
    def on_note(self, text: Text, lasting: bool = True) -> None: ...
    # lasting: what the learner should keep reading (the run had to change something); otherwise
    # a passing status, such as the features computed so far, replaced by the next one
    # A listener may also have `on_checkpoint(run)`: called at the end of every epoch with the run as it
    # stands (its model holds every weight trained so far, its test score is that epoch's), to save it.
    # And `on_snapshot(snapshot)`: the run then takes snapshots of its network as it trains (cnnlab.snapshots).


@dataclass
class History:
    """Per-batch and per-epoch metrics; what the curves are drawn from."""

    batches: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"batches": self.batches, "epochs": self.epochs}

    def to_csv(self) -> str:
        """One row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds."""
        out = io.StringIO()
        writer = csv.DictWriter(out, ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"])
        writer.writeheader()
        writer.writerows(self.epochs)
        return out.getvalue()


@dataclass
class Run:
    config: TrainConfig
    model: keras.Model
    history: History
    class_names: tuple[str, ...]
    dataset: dict                 # name, source, image_shape, n_train, n_test
    stopped: bool = False         # a stop request ended it early
    train_seconds: float = 0.0
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_predictions: np.ndarray | None = None  # predicted class of every test image, from the last evaluation
    notes: list[Text] = field(default_factory=list)  # what the learner should know about how it ran
    optimizer: keras.optimizers.Optimizer | None = None  # its state, to continue training exactly where it ended
    error: Exception | None = None  # what interrupted it, when something did (see RunInterrupted)
    seen_before: int = 0          # images an earlier run had trained on, when this one continues it
    packed: object | None = None  # its bundle as the process that trained it wrote it (a bundle.Packed)
    snapshots: list[Snapshot] = field(default_factory=list)  # its filters and maps at its start and epochs' ends

    @property
    def epochs_completed(self) -> int:
        return len(self.history.epochs)

    def summary(self) -> dict:
        return {"arch": self.config.model.arch, "test_accuracy": self.test_accuracy, "test_loss": self.test_loss,
                "epochs": self.epochs_completed, "train_seconds": round(self.train_seconds, 3),
                "stopped": self.stopped, "images_per_second": self._images_per_second(),
                "notes": [str(note) for note in self.notes]}

    def _images_per_second(self) -> float | None:
        seen = (self.history.batches[-1]["seen"] if self.history.batches else 0) - self.seen_before
        return round(seen / self.train_seconds, 2) if self.train_seconds > 0 else None


class RunInterrupted(Exception):
    """Training ended by an error in the middle of a run. `run` keeps the model and the history so
    far (its `error` is the cause), so nothing already learnt is lost."""

    def __init__(self, run: Run, cause: Exception):
        super().__init__(str(cause))
        self.run, self.cause = run, cause


def out_of_memory(error: BaseException) -> bool:
    """Python's MemoryError, or a backend's allocation failure (TensorFlow's ResourceExhaustedError,
    XLA's RESOURCE_EXHAUSTED), told apart without importing either backend."""
    return isinstance(error, MemoryError) or "ResourceExhausted" in type(error).__name__ \
        or "RESOURCE_EXHAUSTED" in str(error)[:300]


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise LabError("unknown_recipe", name=checks.shown(name), names=", ".join(RECIPES)) from None


def one_cycle(config: TrainConfig, updates: int) -> OneCycle | None:
    """The schedule of a one-cycle recipe over `updates` micro-batches; None for a constant rate."""
    return OneCycle(config.learning_rate, updates) if RECIPES[config.recipe].schedule == "one-cycle" else None


def make_optimizer(config: TrainConfig, schedule: OneCycle | None = None) -> keras.optimizers.Optimizer:
    """The recipe's optimizer, at the configured learning rate or following `schedule` (see one_cycle)."""
    recipe = RECIPES[config.recipe]
    accumulation = {"gradient_accumulation_steps": config.accumulation_steps} if config.accumulation_steps > 1 else {}
    rate = config.learning_rate if schedule is None else schedule
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=recipe.momentum, **accumulation)
    return keras.optimizers.Adam(rate, **accumulation)


def train(config: TrainConfig, listener: Listener | None = None, stop: threading.Event | None = None,
          data: Dataset | None = None, evaluate_when_stopped: bool = True, resume: Run | None = None,
          devices: int | str = 1) -> Run:
    """Train one run and return it, model and history included.

    `stop.set()` from any thread ends the run after the current batch; the run keeps its
    weights and history so far. `data` skips loading (the app loads each dataset once).
    `resume` continues an earlier run of the same model for `config.epochs` more epochs: its
    weights, optimizer state and curves carry on (the earlier run itself is left as it was).
    `devices` ("all", or how many) splits every batch across this machine's devices (see
    cnnlab.devices), or with "all" across several processes or machines on JAX; the run learns the
    same as on one. It sets process-wide state: for the command line and scripts, not for a server
    training several runs at once.
    An error during training raises RunInterrupted, which carries the partial run.
    """
    config = config.resolved()
    if processes() > 1 and get_architecture(config.model.arch).head is not None:
        raise LabError("head_on_one_machine")
    chosen = [] if devices == 1 and processes() == 1 else choose(devices)
    if len(chosen) > 1:
        check_batch(config.batch_size // config.accumulation_steps, chosen)
    with data_parallel(chosen):
        return _train(config, listener, stop or threading.Event(), data, evaluate_when_stopped, resume,
                      max(1, len(chosen)))


def _train(config: TrainConfig, listener, stop: threading.Event, data, evaluate_when_stopped, resume,
           replicas: int = 1) -> Run:
    """A run, in six steps."""
    data = _data(config, data, replicas)
    config, model, notes = _model(config, data, resume)
    run = _record(config, model, data, notes, resume)
    for note in notes:
        _note(listener, note)
    try:
        inputs = _inputs(run, data, listener, stop, resume)
    except Stopped:  # while a frozen base computed its features: nothing trained yet
        run.stopped = True
        return run
    bridge = _fit(run, inputs, data, listener, stop, resume)
    return _finish(run, inputs, bridge, data, evaluate_when_stopped)


def _data(config: TrainConfig, data: Dataset | None, replicas: int) -> Dataset:
    """1. Data: the run's sample, cut so that every device takes an equal slice of every batch, the last too."""
    if data is None:
        data = load_dataset(config.dataset, config.source, config.data_path, seed=config.seed)
    data = data.sample(config.sample, seed=config.seed)
    if replicas > 1 and len(data.x_train) % replicas:
        keep = len(data.x_train) - len(data.x_train) % replicas
        data = dataclasses.replace(data, x_train=data.x_train[:keep], y_train=data.y_train[:keep])
    return data


def _model(config: TrainConfig, data: Dataset, resume: Run | None) -> tuple[TrainConfig, keras.Model, list[Text]]:
    """2. Model: the network for this data's images and classes, with the weights of the run it
    continues. Offline, a network on a frozen ImageNet base falls back to a random base: it still
    shows the whole method (the note says so)."""
    keras.utils.set_random_seed(config.seed)
    model_config = dataclasses.replace(config.model, raw_shape=data.image_shape, classes=data.num_classes)
    config = dataclasses.replace(config, model=model_config.resolved())
    if resume is not None and resume.config.model != config.model:
        raise LabError("continue_same_model", before=str(resume.config.model), now=str(config.model))
    notes = []
    try:
        model = build_model(config.model, load_weights=resume is None)
    except WeightsUnavailable as missing:
        if not get_architecture(config.model.arch).base_knob:
            raise
        config = _with_knob(config, "weights", "random")
        notes.append(Text("notes.random_base", missing=missing))
        keras.utils.set_random_seed(config.seed)
        model = build_model(config.model)
    if resume is not None:
        model.set_weights(resume.model.get_weights())
    return config, model, notes


def _record(config: TrainConfig, model: keras.Model, data: Dataset, notes: list[Text], resume: Run | None) -> Run:
    """3. Run record: what the run is and what it learns, carrying on the curves of the run it continues
    (a half-done last epoch starts again)."""
    run = Run(config, model, History(), data.class_names,
              {"name": data.name, "source": data.source, "image_shape": list(data.image_shape),
               "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test))}, notes=notes)
    if resume is not None:
        run.history.epochs = [dict(e) for e in resume.history.epochs]
        run.history.batches = [dict(b) for b in resume.history.batches if b["epoch"] <= resume.epochs_completed]
        run.seen_before = run.history.batches[-1]["seen"] if run.history.batches else 0
    return run


@dataclass
class _Inputs:
    """What `fit` trains and reads: the whole network on images, or only its head on a frozen base's features."""

    trained: keras.Model
    x_train: np.ndarray
    x_test: np.ndarray


def _inputs(run: Run, data: Dataset, listener, stop: threading.Event, resume: Run | None) -> _Inputs:
    """4. Inputs: the images, or, where only a head trains, the frozen base's features of them
    (computed once, then cached) and the head alone, with what it learnt in the run it continues."""
    arch = get_architecture(run.config.model.arch)
    if arch.head is None:
        return _Inputs(run.model, data.x_train, data.x_test)
    inputs = _head_inputs(run, arch, data, listener, stop)
    if resume is not None:  # the head learnt so far, its normalisation included
        _copy_head(run.model, inputs.trained, arch, run.config.model)
    return inputs


def _fit(run: Run, inputs: _Inputs, data: Dataset, listener, stop: threading.Event, resume: Run | None) -> _Bridge:
    """5. Fit: the recipe's optimizer and loss, the labels in the lecture's format, each process's share
    of every batch, and the optimizer's state carried on from the run it continues. A fault mid-run
    raises RunInterrupted with the run so far."""
    config, trained = run.config, inputs.trained
    one_hot = get_architecture(config.model.arch).labels == "one-hot"  # LeNet's lecture code: categorical CE
    micro_batch, steps, full_steps = _batches(config, len(data.x_train))
    cycle = one_cycle(config, config.epochs * steps)
    trained.compile(optimizer=make_optimizer(config, cycle),
                    loss="categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    x_train = inputs.x_train
    y_train = keras.utils.to_categorical(data.y_train, data.num_classes) if one_hot else data.y_train
    feed = micro_batch // processes()  # across processes, each one feeds its own share of every batch
    if processes() > 1:
        x_train, y_train = x_train[process_index()::processes()], y_train[process_index()::processes()]
    run.optimizer = trained.optimizer
    initial_epoch = 0
    if resume is not None:
        initial_epoch = resume.epochs_completed
        _continue_optimizer(trained, resume.optimizer)
        if cycle is not None and trained.optimizer.built:  # this run's cycle starts where the count carried on
            cycle.start = _micro_batches(trained.optimizer)
    bridge = _Bridge(run, listener, stop, steps, micro_batch, len(data.x_train), (inputs.x_test, data.y_test),
                     initial_epoch, settle=lambda: _settle(run, inputs), camera=_camera(run, data, listener))
    start = time.perf_counter()
    try:
        trained.fit(x_train, y_train, batch_size=feed, epochs=initial_epoch + config.epochs,
                    initial_epoch=initial_epoch, steps_per_epoch=steps if steps < full_steps else None, shuffle=True,
                    verbose=0, callbacks=[bridge])
    except Exception as error:  # keep what was learnt, say what happened
        run.train_seconds, run.stopped = time.perf_counter() - start, True
        run.error = LabError("run.out_of_memory") if out_of_memory(error) else error
        _settle(run, inputs)
        raise RunInterrupted(run, run.error) from error
    run.train_seconds = time.perf_counter() - start
    run.stopped = bridge.stopped
    return bridge


def _finish(run: Run, inputs: _Inputs, bridge: _Bridge, data: Dataset, evaluate_when_stopped: bool) -> Run:
    """6. Finish: the whole network gets what trained, and the test score: the last epoch's, or, for a
    run stopped mid-epoch, one evaluation of the model as it stands."""
    trained = _settle(run, inputs)
    if bridge.last_evaluation is not None and not run.stopped:
        run.test_loss, run.test_accuracy, run.test_predictions = bridge.last_evaluation
    elif evaluate_when_stopped:
        run.test_loss, run.test_accuracy, run.test_predictions = evaluate_predictions(
            trained, inputs.x_test, data.y_test, bridge.micro_batch)
    return run


def _settle(run: Run, inputs: _Inputs) -> keras.Model:
    """The trained head's weights into the whole network, and, for a run across processes (its arrays
    span them), this process's own copy of model and optimizer, to evaluate and save. Returns the
    model that reads `inputs`."""
    arch = get_architecture(run.config.model.arch)
    if inputs.trained is not run.model:
        _copy_head(inputs.trained, run.model, arch, run.config.model)
    if processes() > 1:
        run.model, run.optimizer = _local_copy(run.model, run.config)
        return run.model
    return inputs.trained


def _batches(config: TrainConfig, n_train: int) -> tuple[int, int, int]:
    """The micro-batch, the micro-batches one epoch trains, and those the whole sample makes."""
    micro_batch = config.batch_size // config.accumulation_steps
    full_steps = math.ceil(n_train / micro_batch)
    steps = full_steps if config.steps_per_epoch is None else \
        min(full_steps, config.steps_per_epoch * config.accumulation_steps)
    return micro_batch, steps, full_steps


def learning_rates(config: TrainConfig, n_train: int, points: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """What the recipe does to the learning rate over a run of `config` on `n_train` images, to draw
    before it starts: at up to `points` updates spread evenly over the run, how far into the run
    each is (in epochs) and its learning rate."""
    config = config.resolved()
    _, steps, _ = _batches(config, n_train)
    total = config.epochs * steps  # micro-batches: Keras steps a schedule once per micro-batch
    at = np.unique(np.linspace(0, total - 1, max(2, min(total, points))).round().astype(np.int64))
    cycle = one_cycle(config, total)
    rates = np.full(len(at), config.learning_rate) if cycle is None else \
        np.asarray(keras.ops.convert_to_numpy(cycle(at)), dtype=np.float64)
    return (at + 1) / steps, rates


def _local_copy(model: keras.Model, config: TrainConfig) -> tuple[keras.Model, keras.optimizers.Optimizer]:
    """The model and optimizer of a run trained across processes, on this process alone."""
    with undistributed():
        copy = keras.models.clone_model(model)
        copy.set_weights([local_value(w) for w in model.weights])
        optimizer = make_optimizer(config, one_cycle(config, 1))  # the same kind of rate, so the same variables
        optimizer.build(copy.trainable_variables)
        for variable, value in zip(optimizer.variables, model.optimizer.variables):
            variable.assign(local_value(value))
    return copy, optimizer


def _copy_head(source: keras.Model, target: keras.Model, arch: Architecture, config: ModelConfig) -> None:
    """The head's weights from one model into another (the head trained on cached features, or the
    whole network); its normalisation, the head's first layer, reads its mean and variance from them."""
    names = [layer.name for layer in arch.head(config)]
    for name in names:
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())
    target.get_layer(names[0]).finalize_state()


def _continue_optimizer(model: keras.Model, previous: keras.optimizers.Optimizer | None) -> None:
    """Carry the optimizer's state (Adam's moments, SGD's momentum, its step count) over to a
    continued run, when the earlier run's state is there and has the same variables."""
    if previous is None or not previous.variables:
        return
    model.optimizer.build(model.trainable_variables)
    # the moments and the step count carry on; the learning rate (a variable, or a schedule of the
    # step count that starts at the earlier run's count) is this run's
    state = [v for v in model.optimizer.variables if v.name != "learning_rate"]
    values = [keras.ops.convert_to_numpy(v) for v in previous.variables if v.name != "learning_rate"]
    if [v.shape for v in state] == [tuple(a.shape) for a in values]:
        for variable, value in zip(state, values):
            variable.assign(value)


def _micro_batches(optimizer: keras.optimizers.Optimizer) -> int:
    """How many micro-batches an optimizer has stepped (its `iterations` counts whole updates)."""
    return int(keras.ops.convert_to_numpy(next(v for v in optimizer.variables if v.name == "iteration")))


def _head_inputs(run: Run, arch: Architecture, data: Dataset, listener, stop) -> _Inputs:
    """The frozen base's features of the train and test images (computed once, then cached), and
    a model of the new head alone that trains on them."""
    config, model = run.config, run.model
    head = arch.head(config.model)
    features = model.get_layer(head[0].name).input
    extractor = keras.Model(model.input, features)
    knobs = config.model.knobs
    key = (knobs[arch.base_knob], knobs["weights"], config.model.input_size,
           config.seed if knobs["weights"] == "random" else None)
    total = len(data.x_train) + len(data.x_test)

    def report(offset):
        def progress(done, _):
            if (offset + done) % 640 < 64 or offset + done == total:
                _note(listener, Text("notes.features", base=knobs[arch.base_knob], done=offset + done, total=total),
                      lasting=False)
        return progress

    x_train = base_features(extractor, data.x_train, key, report(0), stop)
    x_test = base_features(extractor, data.x_test, key, report(len(data.x_train)), stop)
    keras.utils.set_random_seed(config.seed)
    trained = keras.Sequential([keras.Input(tuple(features.shape[1:])), *head], name="head")
    trained.get_layer(head[0].name).adapt(x_train)  # each feature's mean and variance over the training images
    return _Inputs(trained, x_train, x_test)


def _with_knob(config: TrainConfig, name: str, value) -> TrainConfig:
    model = dataclasses.replace(config.model, knobs={**config.model.knobs, name: value})
    return dataclasses.replace(config, model=model.resolved())


def _note(listener, text: Text, lasting: bool = True) -> None:
    if listener is not None:
        listener.on_note(text, lasting)


def _camera(run: Run, data: Dataset, listener) -> Camera | None:
    """Snapshots of the network as it trains, for a listener that shows them: of the whole network where
    the whole network trains (a frozen base's filters do not change), on the first test image."""
    wanted = getattr(listener, "on_snapshot", None) is not None and len(data.x_test) > 0
    if not wanted or processes() > 1 or get_architecture(run.config.model.arch).head is not None:
        return None
    return Camera(run.model, data.x_test[0], image_index=0)


class _Bridge(keras.callbacks.Callback):
    """Turns Keras's callbacks into Progress for the listener, validates, and honours stop."""

    def __init__(self, run: Run, listener, stop: threading.Event, steps: int, micro_batch: int, n_train: int,
                 validation, initial_epoch: int = 0, settle=None, camera: Camera | None = None):
        super().__init__()
        self.camera = camera
        self.settle = settle  # puts what trained into the whole network, for a checkpoint
        self.run, self.listener, self.stop = run, listener, stop
        self.steps, self.micro_batch, self.n_train, self.validation = steps, micro_batch, n_train, validation
        self.initial_epoch = initial_epoch  # epochs an earlier run already trained (a continued run)
        self.epochs = initial_epoch + run.config.epochs
        self.stopped = False
        self.seen = run.history.batches[-1]["seen"] if run.history.batches else 0
        self.last_evaluation = None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self._snapshot("start", self.initial_epoch, self.initial_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start = epoch + 1, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        self.seen += min(self.micro_batch, self.n_train - batch * self.micro_batch)
        progress = self._progress(step, logs)
        self.run.history.batches.append({"epoch": self.epoch, "step": step, "seen": self.seen,
                                         "loss": progress.loss, "accuracy": progress.accuracy})
        if self.listener is not None:
            self.listener.on_batch(progress)
        if self.camera is not None and step < self.steps and self.camera.live_due():
            self._snapshot("live", self.epoch - 1 + step / self.steps, self.epoch)
        if self.stop.is_set():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped:
            return  # a partial epoch is kept in the batch history, not counted as an epoch
        model = self.model if processes() == 1 else _local_copy(self.model, self.run.config)[0]
        self.last_evaluation = evaluate_predictions(model, *self.validation, self.micro_batch)
        val_loss, val_accuracy = self.last_evaluation[:2]
        progress = self._progress(self.steps, logs, val_loss, val_accuracy)
        self.run.history.epochs.append({"epoch": self.epoch, "loss": progress.loss, "accuracy": progress.accuracy,
                                        "val_loss": val_loss, "val_accuracy": val_accuracy,
                                        "seconds": round(time.perf_counter() - self.epoch_start, 3)})
        if self.listener is not None:
            self.listener.on_epoch(progress)
        self._snapshot("epoch", self.epoch, self.epoch)
        self._checkpoint()

    def _snapshot(self, kind: str, at: float, epoch: int) -> None:
        """A picture of the network as it stands. Mid-epoch on JAX the trained values live outside the
        layers until they are synced back; a picture that cannot be taken ends the pictures, not the run."""
        if self.camera is None:
            return
        getattr(self.model, "jax_state_sync", lambda: None)()
        try:
            snapshot = self.camera.take(kind, at, epoch)
        except Exception as error:  # noqa: BLE001 - memory for one more forward pass, an odd layer
            self.camera = None
            self.listener.on_note(Text("notes.snapshots_off", reason=f"{type(error).__name__}: {error}"[:200]))
            return
        self.run.snapshots = self.camera.snapshots.kept
        self.listener.on_snapshot(snapshot)

    def _checkpoint(self) -> None:
        """The run as it stands at this epoch's end, for a listener that keeps it (one process only)."""
        keep = getattr(self.listener, "on_checkpoint", None)
        if keep is None or processes() > 1:
            return
        if self.settle is not None:
            self.settle()
        self.run.test_loss, self.run.test_accuracy, self.run.test_predictions = self.last_evaluation
        self.run.train_seconds = time.perf_counter() - self.start
        keep(self.run)

    def _progress(self, step, logs, val_loss=None, val_accuracy=None) -> Progress:
        elapsed = time.perf_counter() - self.start
        done = (self.epoch - 1 - self.initial_epoch) * self.steps + step  # in this run
        eta = elapsed / done * ((self.epochs - self.initial_epoch) * self.steps - done)
        return Progress(self.epoch, self.epochs, step, self.steps, self.seen, elapsed, eta,
                        float(logs["loss"]), float(logs["accuracy"]), val_loss, val_accuracy)


def evaluate_predictions(model, x, y, batch_size) -> tuple[float, float, np.ndarray]:
    """Loss, accuracy and predicted classes in one pass over raw images and integer labels.

    The loss is Keras's: cross-entropy (probabilities clipped at 1e-7) plus the regularisation
    penalties, so it equals `model.evaluate`; the predictions come free with it.
    """

    with undistributed() if processes() > 1 else contextlib.nullcontext():
        output = model.predict(padded(x), batch_size=batch_size, verbose=0)
    probabilities = np.asarray(output, dtype=np.float64)[:len(x)]
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1 - 1e-7)
    penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    predicted = probabilities.argmax(axis=1)
    return float(-np.log(picked).mean() + penalty), float((predicted == y).mean()), predicted
