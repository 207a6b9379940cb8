"""What a training run will cost before it starts: peak memory and time per epoch on this machine.

Memory is the peak resident memory of a whole run in a fresh process (`cnnlab.train`, or `cnnlab
train` on the command line), the sum of six parts:

    peak = runtime + graphs + weights + activations + data + features

`bench/cost_memory.py` measures real runs against it: LeNet-5, AlexNet at 224 and 163, VGG19 at a
quarter of its width, other batch sizes, the full MNIST and a transfer run all came within 11%
(bench/README.md). Each constant below says which part it belongs to.

1. The runtime. TensorFlow and Keras, imported, before any model: 0.75 to 0.80 GB measured on the
   benchmark machine (0.65 GB in an earlier measurement). Resident memory counts the pages of
   TensorFlow's libraries that the process has touched, which varies with the system's file cache;
   the constant sits in that range. The app has it loaded already, so only the rest has to fit.
2. The traced graphs. Keras traces the training step and, for the validation, the prediction
   function; TensorFlow and oneDNN keep the graphs, the compiled kernels and their caches. About
   50 MB: what LeNet-5's run measures above the runtime, apart from its tiny weights and batches.
3. The weights. Each trained weight is held as the weight itself, its gradient, the optimizer's
   slots (Adam's two moment estimates, SGD's momentum), the temporaries of the update (Keras's
   optimizers compute each new moment and step as a new tensor before assigning it: one more
   weight-sized set), and, with gradient accumulation, the accumulator. A frozen weight is held once.
4. The activations of one micro-batch. TensorFlow keeps every layer's output until the backward
   pass has used it (a ReLU's gradient reads its output, a convolution's gradient its input,
   pooling both): one copy of every output of the layer table, the preprocessing layers' resized
   float batch included. While the backward pass goes through a layer, the gradients with respect
   to its output and to its input exist as well; at the largest layers, that is about two more of
   the largest outputs.
   Everything scales with the micro-batch. The end-of-epoch validation predicts the test images
   in batches of the same size, forward only, with at most two outputs alive at a time: less than
   training holds, so it does not raise the peak. A transfer run's frozen base only runs forward,
   in batches of `features.BATCH`, with its two largest outputs alive at a time.
5. The data. The dataset as loaded (uint8 pixels, training and test images), and the copy Keras's
   input pipeline makes of the arrays `fit` and `predict` read: `tf.data` holds each as one tensor.
   The labels are left out: 8 bytes an image (40 for LeNet's one-hot labels), against 784 for the
   smallest image.
6. The features (transfer learning). The frozen base's output for every training and test image,
   float32, kept (and cached) for the whole run; the head trains on them, so they, not the
   images, are what the input pipeline copies.

Time: the layer table's multiply-accumulates (a training step costs about three forward passes) at
the speed this machine measured for a convolution, plus a fixed cost per step.

Transfer learning splits the network: its frozen base only runs forward, once per image (its
features are then cached), and only the small head trains in every epoch.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, replace

import numpy as np
from keras import ops

from . import checks, controls, memory
from .architectures import get_architecture
from .classroom import classroom_settings
from .data import sample_size
from .errors import Text
from .features import BATCH as FEATURE_BATCH
from .layer_table import layer_table
from .training import RECIPES, TrainConfig

RUNTIME_BYTES = 730 * 2**20      # 1. TensorFlow and Keras, loaded, before any model (0.77 GB)
GRAPH_BYTES = 48 * 2**20         # 2. the traced training and prediction graphs, kernels and caches (LeNet measured)
FLOAT = 4                        # bytes per float32
UPDATE_TEMPORARIES = 1           # 3. weight-sized sets of tensors the optimizer's update creates
KEPT_OUTPUTS = 1                 # 4. copies of every layer's output kept for the backward pass
WIDEST_OUTPUTS = 2               # 4. largest outputs whose gradients exist at once in the backward pass
PIPELINE_COPIES = 1              # 5. copies of the arrays fit and predict read, made by Keras's tf.data pipeline
BACKWARD_FACTOR = 3              # forward + gradient w.r.t. inputs + gradient w.r.t. weights
STEP_OVERHEAD_S = 0.05           # per step: Keras bookkeeping and small, poorly vectorised layers (LeNet measured)


@dataclass(frozen=True)
class CostEstimate:
    peak_bytes: int
    seconds_per_epoch: float
    steps_per_epoch: int
    breakdown: dict              # bytes by part (see the module's docstring), and images_per_epoch
    once_seconds: float = 0.0    # before the first epoch: a frozen base computing every image's features


def estimate_cost(config: TrainConfig, n_train: int, n_test: int = 0,
                  macs_per_second: float | None = None) -> CostEstimate:
    """Peak memory and seconds per epoch for a resolved or unresolved TrainConfig on n_train images
    (and n_test validated at the end of each epoch); the module's docstring explains each part."""
    config = config.resolved()
    n_train, n_test = checks.whole(n_train, "n_train", 1, 10**9), checks.whole(n_test, "n_test", 0, 10**9)
    if macs_per_second is not None:
        macs_per_second = checks.number(macs_per_second, "macs_per_second", 0, math.inf, above=True)
    table = layer_table(config.model)
    arch = get_architecture(config.model.arch)
    head = {layer.name for layer in arch.head(config.model)} if arch.head else None
    frozen = [r for r in table.rows if head is not None and r.name not in head]  # a frozen base only runs forward
    trained = [r for r in table.rows if r not in frozen]
    micro = config.batch_size // config.accumulation_steps
    slots = {"adam": 2, "sgd": 1}[RECIPES[config.recipe].optimizer]
    # the weight, its gradient, the optimizer's slots, the update's temporaries, the accumulator
    copies = 2 + slots + UPDATE_TEMPORARIES + (config.accumulation_steps > 1)
    weight_bytes = sum(r.params for r in trained) * FLOAT * copies + sum(r.params for r in frozen) * FLOAT
    activation_bytes = micro * FLOAT * (KEPT_OUTPUTS * sum(r.activations for r in trained)
                                        + sum(_largest(trained, WIDEST_OUTPUTS)))
    if frozen:  # a forward pass keeps about two layers' outputs alive at a time
        activation_bytes += FEATURE_BATCH * FLOAT * sum(_largest(frozen, 2))
    images = n_train + n_test
    data_bytes = images * math.prod(table.input_shape)
    feature_bytes = images * frozen[-1].activations * FLOAT if frozen else 0
    pipeline_bytes = PIPELINE_COPIES * (feature_bytes if frozen else data_bytes)
    parts = {"runtime": RUNTIME_BYTES, "graph": GRAPH_BYTES, "weights": weight_bytes,
             "activations": activation_bytes, "data": data_bytes, "pipeline": pipeline_bytes,
             "features": feature_bytes}
    peak = sum(parts.values())

    steps = math.ceil(n_train / micro)
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch * config.accumulation_steps)
    trained_images = min(n_train, steps * micro)
    speed = macs_per_second or measured_macs_per_second()
    macs = sum(r.macs for r in trained)
    seconds = steps * STEP_OVERHEAD_S + (trained_images * BACKWARD_FACTOR + n_test) * macs / speed
    once = images * sum(r.macs for r in frozen) / speed
    return CostEstimate(int(peak), seconds, steps, parts | {"images_per_epoch": trained_images}, once)


def _largest(rows, count: int) -> list[int]:
    """The `count` largest outputs, in values per image."""
    return sorted((r.activations for r in rows), reverse=True)[:count]


@functools.cache
def measured_macs_per_second() -> float:
    """This machine's speed on a typical convolution, measured once per process (about 0.2 s)."""
    rng = np.random.default_rng(0)
    x = ops.convert_to_tensor(rng.random((8, 56, 56, 64), dtype=np.float32))
    kernel = ops.convert_to_tensor(rng.random((3, 3, 64, 64), dtype=np.float32))
    macs = 8 * 56 * 56 * 64 * 3 * 3 * 64
    best = math.inf
    for _ in range(4):
        start = time.perf_counter()
        ops.convert_to_numpy(ops.conv(x, kernel, padding="same"))
        best = min(best, time.perf_counter() - start)
    return macs / best


def check_fits(cost: CostEstimate, config: TrainConfig | None = None, n_train: int = 0, n_test: int = 0,
               reserve_bytes: int | None = None) -> None:
    """Refuse, with what to change, a run whose estimate and the classroom's reserve are more than
    this process may still use; the runtime is already loaded, so only the rest of the estimate has
    to fit. `reserve_bytes`: kept back for other learners' pages, uploads and imports; by default
    the classroom's `memory_reserve_mb` (see `classroom.classroom_settings`). Given the run's config,
    the refusal names settings that would fit, and carries them as `error.suggestions`."""
    if reserve_bytes is None:
        reserve_bytes = classroom_settings().memory_reserve_bytes
    needed = cost.peak_bytes - cost.breakdown["runtime"]
    free = memory.available_bytes()
    if needed + reserve_bytes <= free:
        return
    options = suggestions(config, n_train, n_test, free - reserve_bytes) if config is not None else []
    instead = Text("errors.run_try", options=Joined(o.text for o in options)) if options else Text("errors.run_instead")
    raise memory.NotEnoughMemory(Text("errors.what_run"), needed, free, memory.limit_bytes(), instead, reserve_bytes,
                                 options)


class Joined(Text):
    """Several catalogue texts shown as one, each in the same language."""

    def __init__(self, texts):
        super().__init__("errors.run_try")
        self.texts = list(texts)

    def in_language(self, lang: str) -> str:
        return "; ".join(text.in_language(lang) for text in self.texts)


@dataclass(frozen=True)
class Suggestion:
    """A change of settings that would fit: what to tell the learner, and the change itself, which a
    page can apply (keys among input_size, width, accumulation_steps and sample, each on the grid
    of `controls`; sample is a fraction of the whole training set, as the Train page sets it)."""

    text: Text
    changes: dict


def suggestions(config: TrainConfig, n_train: int, n_test: int, free_bytes: int) -> list[Suggestion]:
    """Concrete settings that would fit in `free_bytes`, one per kind of change, each the mildest
    that fits and one a learner can set on the Train page (`controls`): a smaller input, a smaller
    width, the same batch in smaller micro-batches (gradient accumulation: the same update), fewer
    training images. `n_train` and `n_test` are the images of the config's sample."""
    config = config.resolved()
    arch = get_architecture(config.model.arch)

    def fits(candidate: TrainConfig, n: int = n_train, m: int = n_test) -> str | None:
        """The candidate's estimate in GB when it fits, else None (also for a size the network refuses)."""
        try:
            cost = estimate_cost(candidate, n, m, macs_per_second=1.0)  # time does not matter here
        except ValueError:
            return None
        needed = cost.peak_bytes - cost.breakdown["runtime"]
        return f"{needed / 2**30:.1f}" if needed <= free_bytes else None

    model = config.model.resolved()  # its input size and width filled in

    def model_fits(**change) -> str | None:
        return fits(replace(config, model=replace(model, **change)))

    def drawn(fraction: float) -> tuple[int, int]:
        """The training and test images a sample of `fraction` of the whole sets draws."""
        return tuple(sample_size(n / config.sample, fraction) for n in (n_train, n_test))

    found = []
    smallest = max(arch.min_input_size, 1)
    sizes = sorted({max(smallest, round(model.input_size * f)) for f in (0.75, 0.5, 0.35, 0.25)}, reverse=True)
    sizes = [s for s in sizes if s < model.input_size and _accepts(replace(model, input_size=s))]
    widths = [] if arch.fixed_width else [w for w in reversed(controls.WIDTHS) if w < model.width]
    if hit := _mildest(sizes, lambda size: model_fits(input_size=size)):
        found.append(Suggestion(Text("errors.try_input", size=hit[0], gb=hit[1]), {"input_size": hit[0]}))
    if hit := _mildest(widths, lambda width: model_fits(width=width)):
        found.append(Suggestion(Text("errors.try_width", width=f"{hit[0]:g}", gb=hit[1]), {"width": hit[0]}))
    steps = [s for s in controls.accumulation_steps(config.batch_size) if s > config.accumulation_steps]
    if hit := _mildest(steps, lambda k: fits(replace(config, accumulation_steps=k))):
        found.append(Suggestion(Text("errors.try_accumulation", batch=config.batch_size, steps=hit[0],
                                     micro=config.batch_size // hit[0], gb=hit[1]), {"accumulation_steps": hit[0]}))
    if not found and widths:  # no single change is enough: the largest network that fits
        best = None  # (size, width, gb): the largest size x width so far
        for size in sizes:
            larger = [w for w in widths if best is None or size * w > best[0] * best[1]]
            if hit := _mildest(larger, lambda width, size=size: model_fits(input_size=size, width=width)):
                best = (size, *hit)
        if best:
            size, width, gb = best
            found.append(Suggestion(Text("errors.try_both", size=size, width=f"{width:g}", gb=gb),
                                    {"input_size": size, "width": width}))
    fractions = [f for f in reversed(controls.SAMPLES) if f < config.sample]
    if hit := _mildest(fractions, lambda fraction: fits(config, *drawn(fraction))):
        found.append(Suggestion(Text("errors.try_sample", images=drawn(hit[0])[0], gb=hit[1]), {"sample": hit[0]}))
    return found


def _accepts(model) -> bool:
    """Whether the network can be built at all with these settings (a transfer base has its own
    smallest input, above the architecture's): the search below needs every candidate buildable."""
    try:
        layer_table(model)
    except ValueError:
        return False
    return True


def _mildest(candidates: list, fits) -> tuple | None:
    """The first of `candidates`, mildest change first, that `fits` (returning its estimate), with
    that estimate. The estimate falls steadily along them, so when the last does not fit none does,
    and a binary search asks only a few."""
    if not candidates or not (gb := fits(candidates[-1])):
        return None
    low, high, found = 0, len(candidates) - 1, (candidates[-1], gb)
    while low < high:
        middle = (low + high) // 2
        if gb := fits(candidates[middle]):
            found, high = (candidates[middle], gb), middle
        else:
            low = middle + 1
    return found
