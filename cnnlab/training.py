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
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import keras
import numpy as np

from .architectures import ModelConfig, build_model, get_architecture
from .architectures.transfer import HEAD, head_layers
from .data import DATASETS, SOURCES, Dataset, check_fraction, load_dataset
from .devices import (check_batch, choose, data_parallel, local_value, padded, process_index, processes,
                      undistributed)
from .errors import LabError, Text
from .features import Stopped, base_features
from .pretrained import WeightsUnavailable


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
    source: str = "bundled"            # "bundled" (10% sample, offline) or "full" (Keras download)
    data_path: str | None = None       # any .npz in Keras's layout, instead of dataset/source
    sample: float | None = None        # fraction drawn; default: 1 (bundled is already 10%), lecture's for full
    recipe: str = "seed"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    steps_per_epoch: int | None = None  # batches per epoch, for a quick look; default: the whole sample
    accumulation_steps: int = 1        # split each batch into this many micro-batches, same update
    seed: int = 0

    def resolved(self) -> "TrainConfig":
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"A training run needs a ModelConfig, such as ModelConfig('lenet5'). "
                             f"Received: model={self.model!r}")
        arch = get_architecture(self.model.arch)
        if not arch.trainable:
            what = ("Keras's ImageNet classifier, shown and used for photos here, not trained" if arch.application
                    else "a feature extractor with no classifier to train")
            raise ValueError(f"{arch.name} is {what}; train lenet5, alexnet or vgg19, or transfer (a new head on "
                             "a frozen pretrained base).")
        recipe = get_recipe(self.recipe)
        epochs = _whole(self.epochs if self.epochs is not None else recipe.epochs, "epochs", 1, 1000)
        batch = _whole(self.batch_size if self.batch_size is not None else recipe.batch_size, "batch_size", 1, 4096)
        accumulation = _whole(self.accumulation_steps, "accumulation_steps", 1, batch)
        if batch % accumulation:
            raise ValueError(f"batch_size {batch} does not split into {accumulation} equal micro-batches; "
                             f"choose accumulation_steps that divides it (for 128: 2, 4, 8, ...).")
        lr = self.learning_rate if self.learning_rate is not None else recipe.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 10:
            raise ValueError(f"learning_rate must be a number above 0 and at most 10, such as 0.001. "
                             f"Received: learning_rate={lr!r}")
        steps = None if self.steps_per_epoch is None else _whole(self.steps_per_epoch, "steps_per_epoch", 1, 10**6)
        self.model.resolved()  # its input size, width and settings are checked now, before any data is loaded
        if self.dataset is not None and (not isinstance(self.dataset, str) or self.dataset not in DATASETS):
            raise ValueError(f"Unknown dataset {self.dataset!r}. Choose one of: {', '.join(DATASETS)}.")
        if not isinstance(self.source, str) or self.source not in SOURCES:
            raise ValueError(f"source must be 'bundled' (the sample shipped with CNN Lab) or 'full' (Keras's "
                             f"download). Received: source={self.source!r}")
        if self.data_path is not None and not isinstance(self.data_path, (str, Path)):
            raise ValueError(f"data_path must be the path of an .npz file. Received: data_path={self.data_path!r}")
        sample = self.sample
        if sample is None:
            sample = arch.lecture_sample if (self.source == "full" and self.data_path is None) else 1.0
        return dataclasses.replace(
            self, dataset=self.dataset or arch.dataset, recipe=recipe.name, epochs=epochs, batch_size=batch,
            learning_rate=float(lr), steps_per_epoch=steps, accumulation_steps=accumulation,
            sample=check_fraction(sample), seed=_whole(self.seed, "seed", 0, 2**31 - 1))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data) -> "TrainConfig":
        """The inverse of to_dict, refusing any setting it does not know (a saved run's file is not trusted)."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise ValueError("A run's configuration must be an object with a model. Received: "
                             f"{type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown training setting {unknown[0]!r}; expected only: {', '.join(sorted(names))}.")
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

    @property
    def epochs_completed(self) -> int:
        return len(self.history.epochs)

    def summary(self) -> dict:
        return {"arch": self.config.model.arch, "test_accuracy": self.test_accuracy, "test_loss": self.test_loss,
                "epochs": self.epochs_completed, "train_seconds": round(self.train_seconds, 3),
                "stopped": self.stopped, "images_per_second": self._images_per_second(), "notes": [str(note) for note in self.notes]}

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
        raise ValueError(f"Unknown recipe {name!r}. Choose one of: {', '.join(RECIPES)}.") from None


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
    if processes() > 1 and config.model.arch == "transfer":
        raise ValueError("Transfer learning trains a small head on features computed once; train it on one machine "
                         "(unset KERAS_DISTRIBUTION_NUM_PROCESSES).")
    chosen = [] if devices == 1 and processes() == 1 else choose(devices)
    if len(chosen) > 1:
        check_batch(config.batch_size // config.accumulation_steps, chosen)
    with data_parallel(chosen):
        return _train(config, listener, stop, data, evaluate_when_stopped, resume, max(1, len(chosen)))


def _train(config: TrainConfig, listener, stop, data, evaluate_when_stopped, resume, replicas: int = 1) -> Run:
    if data is None:
        data = load_dataset(config.dataset, config.source, config.data_path)
    data = data.sample(config.sample, seed=config.seed)
    if replicas > 1 and len(data.x_train) % replicas:  # every device takes an equal slice of every batch, the last too
        keep = len(data.x_train) - len(data.x_train) % replicas
        data = dataclasses.replace(data, x_train=data.x_train[:keep], y_train=data.y_train[:keep])

    keras.utils.set_random_seed(config.seed)
    model_config = dataclasses.replace(config.model, raw_shape=data.image_shape, classes=data.num_classes)
    config = dataclasses.replace(config, model=model_config.resolved())
    if resume is not None and resume.config.model != config.model:
        raise ValueError("A run can only continue with the same model, input size, width, settings and data as "
                         f"before. Before: {resume.config.model}; now: {config.model}")
    notes = []
    try:
        model = build_model(config.model, load_weights=resume is None)
    except WeightsUnavailable as missing:  # offline: a random base still shows the whole method
        if config.model.arch != "transfer":
            raise
        config = _with_knob(config, "weights", "random")
        notes.append(Text("notes.random_base", missing=missing))
        keras.utils.set_random_seed(config.seed)
        model = build_model(config.model)
    if resume is not None:
        model.set_weights(resume.model.get_weights())
    stop = stop or threading.Event()
    for note in notes:
        _note(listener, note)
    run = Run(config, model, History(), data.class_names,
              {"name": data.name, "source": data.source, "image_shape": list(data.image_shape),
               "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test))}, notes=notes)
    if resume is not None:  # the earlier curves carry on; a half-done last epoch starts again
        run.history.epochs = [dict(e) for e in resume.history.epochs]
        run.history.batches = [dict(b) for b in resume.history.batches if b["epoch"] <= resume.epochs_completed]
        run.seen_before = run.history.batches[-1]["seen"] if run.history.batches else 0
    if config.model.arch == "transfer":
        try:
            x_train, x_test, trained = _transfer_inputs(run, data, listener, stop)
        except Stopped:
            run.stopped = True
            return run
        if resume is not None:  # the head learnt so far, its normalisation included
            for name in HEAD:
                trained.get_layer(name).set_weights(model.get_layer(name).get_weights())
            trained.get_layer(HEAD[0]).finalize_state()
    else:
        x_train, x_test, trained = data.x_train, data.x_test, model
    arch = get_architecture(config.model.arch)
    one_hot = arch.labels == "one-hot"  # LeNet's lecture code one-hot encodes and uses categorical CE
    micro_batch, steps, full_steps = _batches(config, len(data.x_train))
    cycle = one_cycle(config, config.epochs * steps)
    trained.compile(optimizer=make_optimizer(config, cycle),
                    loss="categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
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
    bridge = _Bridge(run, listener, stop, steps, micro_batch, len(data.x_train), (x_test, data.y_test), initial_epoch)
    start = time.perf_counter()
    try:
        trained.fit(x_train, y_train, batch_size=feed, epochs=initial_epoch + config.epochs,
                    initial_epoch=initial_epoch, steps_per_epoch=steps if steps < full_steps else None, shuffle=True,
                    verbose=0, callbacks=[bridge])
    except Exception as error:  # a fault mid-run: keep what was learnt, say what happened
        run.train_seconds, run.stopped = time.perf_counter() - start, True
        run.error = LabError("run.out_of_memory") if out_of_memory(error) else error
        _give_head_to_model(model, trained)
        if processes() > 1:
            run.model, run.optimizer = _local_copy(model, config)
        raise RunInterrupted(run, run.error) from error
    run.train_seconds = time.perf_counter() - start
    run.stopped = bridge.stopped
    _give_head_to_model(model, trained)
    if processes() > 1:  # its arrays span the processes: keep this process's copy, to evaluate and save
        run.model, run.optimizer = _local_copy(model, config)
        trained = run.model
    if bridge.last_evaluation is not None and not run.stopped:
        run.test_loss, run.test_accuracy, run.test_predictions = bridge.last_evaluation
    elif evaluate_when_stopped:
        run.test_loss, run.test_accuracy, run.test_predictions = evaluate_predictions(
            trained, x_test, data.y_test, micro_batch)
    return run


def _batches(config: TrainConfig, n_train: int) -> tuple[int, int, int]:
    """The micro-batch, the micro-batches one epoch trains, and those the whole sample makes."""
    micro_batch = config.batch_size // config.accumulation_steps
    full_steps = math.ceil(n_train / micro_batch)
    steps = full_steps if config.steps_per_epoch is None else min(full_steps, config.steps_per_epoch * config.accumulation_steps)
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


def _give_head_to_model(model: keras.Model, trained: keras.Model) -> None:
    """The new head learnt on cached features: give its weights to the whole network."""
    if trained is not model:
        for name in HEAD:
            model.get_layer(name).set_weights(trained.get_layer(name).get_weights())
        model.get_layer(HEAD[0]).finalize_state()  # the normalisation reads its mean and variance from its weights


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


def _transfer_inputs(run: Run, data: Dataset, listener, stop) -> tuple[np.ndarray, np.ndarray, keras.Model]:
    """The frozen base's features of the train and test images (computed once, then cached), and
    a model of the new head alone that trains on them."""
    config, model = run.config, run.model
    features = model.get_layer(HEAD[0]).input
    extractor = keras.Model(model.input, features)
    knobs = config.model.knobs
    key = (knobs["base"], knobs["weights"], config.model.input_size,
           config.seed if knobs["weights"] == "random" else None)
    total = len(data.x_train) + len(data.x_test)

    def report(offset):
        def progress(done, _):
            if (offset + done) % 640 < 64 or offset + done == total:
                _note(listener, Text("notes.features", base=knobs["base"], done=offset + done, total=total),
                      lasting=False)
        return progress

    x_train = base_features(extractor, data.x_train, key, report(0), stop)
    x_test = base_features(extractor, data.x_test, key, report(len(data.x_train)), stop)
    keras.utils.set_random_seed(config.seed)
    head = keras.Sequential([keras.Input(tuple(features.shape[1:])), *head_layers(config.model)], name="head")
    head.get_layer(HEAD[0]).adapt(x_train)  # each feature's mean and variance over the training images
    return x_train, x_test, head


def _with_knob(config: TrainConfig, name: str, value) -> TrainConfig:
    model = dataclasses.replace(config.model, knobs={**config.model.knobs, name: value})
    return dataclasses.replace(config, model=model.resolved())


def _note(listener, text: Text, lasting: bool = True) -> None:
    if listener is not None:
        listener.on_note(text, lasting)


def save_run(run: Run, out_dir: str | Path) -> Path:
    """Write bundle.zip (the run, to predict with or continue: see cnnlab.bundle), model.keras (for
    Keras elsewhere), history.json and run.json into out_dir (created if needed)."""
    from .bundle import bundle_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.zip").write_bytes(bundle_bytes(run))
    model = run.model
    if RECIPES[run.config.recipe].schedule != "constant":  # the schedule is cnnlab's class, unknown to Keras
        model = build_model(run.config.model, load_weights=False)  # elsewhere: save the network uncompiled
        model.set_weights(run.model.get_weights())
    model.save(out / "model.keras")
    (out / "history.json").write_text(json.dumps(run.history.to_dict(), indent=1))
    record = {"config": run.config.to_dict(), "class_names": list(run.class_names), "dataset": run.dataset,
              "result": run.summary(), "versions": {"keras": keras.__version__, "backend": keras.backend.backend()}}
    (out / "run.json").write_text(json.dumps(record, indent=1))
    return out


class _Bridge(keras.callbacks.Callback):
    """Turns Keras's callbacks into Progress for the listener, validates, and honours stop."""

    def __init__(self, run: Run, listener, stop: threading.Event, steps: int, micro_batch: int, n_train: int,
                 validation, initial_epoch: int = 0):
        super().__init__()
        self.run, self.listener, self.stop = run, listener, stop
        self.steps, self.micro_batch, self.n_train, self.validation = steps, micro_batch, n_train, validation
        self.initial_epoch = initial_epoch  # epochs an earlier run already trained (a continued run)
        self.epochs = initial_epoch + run.config.epochs
        self.stopped = False
        self.seen = run.history.batches[-1]["seen"] if run.history.batches else 0
        self.last_evaluation = None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

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
        probabilities = np.asarray(model.predict(padded(x), batch_size=batch_size, verbose=0), dtype=np.float64)[:len(x)]
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1 - 1e-7)
    penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    predicted = probabilities.argmax(axis=1)
    return float(-np.log(picked).mean() + penalty), float((predicted == y).mean()), predicted


def _whole(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}. Received: {name}={value!r}")
    return int(value)


def history_json(run: Run) -> str:
    return json.dumps({"config": run.config.to_dict(), "result": run.summary(), **run.history.to_dict()}, indent=1)
