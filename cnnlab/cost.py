"""What a training run will cost before it starts: peak memory and time per epoch on this machine.

Memory: the loaded runtime, the weights with their gradients and optimizer slots, the activations
a batch keeps for the backward pass, and the raw dataset. Time: the layer table's
multiply-accumulates (a training step costs about three forward passes) at the speed this
machine measured for a convolution, plus a fixed cost per step.

Transfer learning splits the network: its frozen base only runs forward, once per image (its
features are then cached), and only the small head trains in every epoch.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from .architectures.transfer import HEAD
from .features import BATCH as FEATURE_BATCH
from .layer_table import layer_table
from .training import RECIPES, TrainConfig

RUNTIME_BYTES = 600 * 2**20      # TensorFlow and Keras, loaded, before any model
FLOAT = 4                        # bytes per float32
BACKWARD_FACTOR = 3              # forward + gradient w.r.t. inputs + gradient w.r.t. weights
ACTIVATION_COPIES = 2            # each activation is kept for backward, and its gradient is formed
STEP_OVERHEAD_S = 0.05           # per step: Keras bookkeeping and small, poorly vectorised layers (LeNet measured)


@dataclass(frozen=True)
class CostEstimate:
    peak_bytes: int
    seconds_per_epoch: float
    steps_per_epoch: int
    breakdown: dict              # bytes by part (runtime, weights, activations, data, features), and images_per_epoch
    once_seconds: float = 0.0    # before the first epoch: a frozen base computing every image's features


def estimate_cost(config: TrainConfig, n_train: int, n_test: int = 0,
                  macs_per_second: float | None = None) -> CostEstimate:
    """Peak memory and seconds per epoch for a resolved or unresolved TrainConfig on n_train images."""
    config = config.resolved()
    table = layer_table(config.model)
    frozen = [r for r in table.rows if config.model.arch == "transfer" and r.name not in HEAD]
    trained = [r for r in table.rows if r not in frozen]
    micro = config.batch_size // config.accumulation_steps
    slots = {"adam": 2, "sgd": 1}[RECIPES[config.recipe].optimizer]
    weight_bytes = (sum(r.params for r in trained) * FLOAT * (2 + slots + (config.accumulation_steps > 1))
                    + sum(r.params for r in frozen) * FLOAT)
    activation_bytes = micro * sum(r.activations for r in trained) * FLOAT * ACTIVATION_COPIES
    if frozen:  # a forward pass keeps about two layers' outputs alive at a time
        largest = sorted((r.activations for r in frozen), reverse=True)[:2]
        activation_bytes += FEATURE_BATCH * sum(largest) * FLOAT
    feature_bytes = (n_train + n_test) * frozen[-1].activations * FLOAT if frozen else 0
    data_bytes = (n_train + n_test) * math.prod(table.input_shape)
    peak = RUNTIME_BYTES + weight_bytes + activation_bytes + data_bytes + feature_bytes

    steps = math.ceil(n_train / micro)
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch * config.accumulation_steps)
    images = min(n_train, steps * micro)
    speed = macs_per_second or measured_macs_per_second()
    seconds = steps * STEP_OVERHEAD_S + (images * BACKWARD_FACTOR + n_test) * sum(r.macs for r in trained) / speed
    once = (n_train + n_test) * sum(r.macs for r in frozen) / speed
    return CostEstimate(int(peak), seconds, steps,
                        {"runtime": RUNTIME_BYTES, "weights": weight_bytes, "activations": activation_bytes,
                         "data": data_bytes, "features": feature_bytes, "images_per_epoch": images}, once)


@functools.cache
def measured_macs_per_second() -> float:
    """This machine's speed on a typical convolution, measured once per process (about 0.2 s)."""
    from keras import ops

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


def check_fits(cost: CostEstimate) -> None:
    """Refuse, with what to change, a run whose estimate is more than this process may still use;
    the runtime is already loaded, so only the rest of the estimate has to fit."""
    from . import memory
    from .errors import Text

    memory.require(cost.peak_bytes - cost.breakdown["runtime"], Text("errors.what_run"), Text("errors.run_instead"))
