"""Training memory and speed: the lecture's code against `cnnlab train`, on the same machine, in one run.

What: for LeNet-5 on MNIST, and AlexNet and VGG19 on CIFAR-10 at 224x224 and at a reduced size,
the peak resident memory of a training run and the images per second of its training steps: once
for the lecture's plain Keras code, once for cnnlab, and once for the lecture's code compiled with
XLA (`jit_compile=True`), with the ratios to the lecture. VGG19 at 224 is timed at batch 16: the
lecture's batch of 128 does not fit in this machine's memory, which `vgg19-lecture` measures
(the lecture's VGG19 configuration, stopped when it passes --limit-gb).

Why: the lecture resizes all of CIFAR-10's sample to 224x224 float32 before training, which needs
gigabytes; cnnlab keeps raw uint8 images and resizes each batch inside the model. This shows what
that saves in memory and whether it costs speed.

How: each measurement runs in a fresh subprocess (`--worker MODEL SIDE`), so its peak memory is that
process's ru_maxrss and nothing carries over. Speed is timed from the end of the last warm-up step
to the end of the last step (graph tracing and the end-of-epoch validation fall outside).
Both sides train on the same data: cnnlab's bundled data (MNIST: 60,000 images since 2026-12-01, 6,000
before; CIFAR-10: 5,000 images).

    PYTHONPATH=. python bench/train_memory_speed.py                  # full run, about 30 min on 2 cores
    PYTHONPATH=. python bench/train_memory_speed.py --quick --only lenet
    PYTHONPATH=. python bench/train_memory_speed.py --only alexnet --steps 5

Writes bench/results/train_memory_speed.json (a quick or partial run writes a suffixed name) and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# bench/ is on sys.path when a script here runs
from common import RESULTS, ROOT, peak_gb, proc_status_bytes, worker_env, worker_result, write_json
from machine import machine

BUNDLED = ROOT / "cnnlab" / "bundled"
MODELS = {  # arch, data, images, input size, batch
    "lenet": ("lenet5", "mnist", 6000, 32, 128),
    "alexnet": ("alexnet", "cifar10", 5000, 224, 128),
    "alexnet-163": ("alexnet", "cifar10", 5000, 163, 128),   # AlexNet's smallest input
    "vgg19": ("vgg19", "cifar10", 5000, 224, 16),             # the lecture's 128 does not fit: see vgg19-lecture
    "vgg19-64": ("vgg19", "cifar10", 5000, 64, 128),
}
SIDES = ("lecture", "cnnlab", "lecture-xla")
STEPS = {"lenet": 45, "alexnet": 3, "alexnet-163": 4, "vgg19": 3, "vgg19-64": 3}   # timed steps, after the warm-up
QUICK_STEPS = {model: 1 for model in MODELS} | {"lenet": 5}
LECTURE_VGG19 = ("vgg19", "cifar10", 5000, 224, 128)  # memory only, stopped past --limit-gb


# ---------------------------------------------------------------- worker: one measurement per process

def worker(model: str, side: str, warmup: int, steps: int) -> dict:
    arch, _, _, size, batch = LECTURE_VGG19 if model == "vgg19-lecture" else MODELS[model]
    clock = Clock(warmup + steps, batch)
    if side.startswith("lecture"):
        import keras
        import tensorflow as tf  # noqa: F401  (the lecture imports both)
        clock.stages["imports"] = peak_gb()
        net, train, test = LECTURE[arch](size)
        if side == "lecture-xla":
            net.compile(optimizer=net.optimizer, loss=net.loss, metrics=["accuracy"], jit_compile=True)
        clock.stages["data_and_model"] = peak_gb()
        stamp = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: clock.tick(logs))
        net.fit(*train, batch_size=batch, epochs=1, steps_per_epoch=clock.total, validation_data=test,
                verbose=0, callbacks=[stamp])
    else:
        fit_cnnlab(arch, size, batch, clock)
    return {"model": model, "side": side, "input_size": size, "peak_rss_gb": peak_gb(),
            "peak_rss_gb_by_stage": clock.stages, "warmup_steps": warmup, "timed_steps": steps, "batch_size": batch,
            "images_per_second": clock.images_per_second(warmup), "step_seconds": clock.step_seconds()}


class Clock:
    """perf_counter at the end of every training step, and the peak memory after the first and last."""

    def __init__(self, total: int, batch: int):
        self.total, self.batch, self.times, self.stages = total, batch, [], {}

    def tick(self, logs=None) -> None:
        if logs is not None:
            float(logs["loss"])  # read the step's result, as cnnlab's listener bridge does
        self.times.append(time.perf_counter())
        if len(self.times) in (1, self.total):
            self.stages["first_step" if len(self.times) == 1 else "training_steps"] = peak_gb()

    def images_per_second(self, warmup: int) -> float:
        """Full batches after the warm-up, over the time from the warm-up's end to the last step's."""
        timed = len(self.times) - warmup
        if warmup < 1 or timed < 1:
            raise RuntimeError(f"need at least 1 warm-up and 1 timed step; got {len(self.times)} steps")
        return round(timed * self.batch / (self.times[-1] - self.times[warmup - 1]), 3)

    def step_seconds(self) -> list[float]:
        """Seconds between consecutive step ends: step 2 onwards."""
        return [round(b - a, 3) for a, b in zip(self.times, self.times[1:])]


def fit_cnnlab(arch: str, size: int, batch: int, clock: Clock) -> None:
    import cnnlab
    clock.stages["imports"] = peak_gb()

    class Stamp:  # a cnnlab Listener
        def on_batch(self, progress):
            clock.tick()

        def on_epoch(self, progress):
            pass

    config = cnnlab.TrainConfig(cnnlab.ModelConfig(arch, input_size=size), epochs=1, batch_size=batch,
                                steps_per_epoch=clock.total)
    cnnlab.train(config, listener=Stamp())


def _load(name: str):
    import numpy as np
    with np.load(BUNDLED / f"{name}.npz") as data:
        return data["x_train"], data["y_train"], data["x_test"], data["y_test"]


def lecture_lenet(size: int = 32, arrays=None):
    """The lecture's LeNet-5: MNIST padded to 32x32, one-hot labels, Adam, categorical cross-entropy.
    `arrays` (x_train, y_train, x_test, y_test) replaces the bundled sample."""
    import keras
    import numpy as np
    from keras import layers
    x_train, y_train, x_test, y_test = _load("mnist") if arrays is None else arrays
    prep = lambda x: np.expand_dims(np.pad(x, ((0, 0), (2, 2), (2, 2))), -1).astype("float32") / 255  # noqa: E731
    x_train, x_test = prep(x_train), prep(x_test)
    y_train, y_test = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
    net = keras.Sequential([
        keras.Input((32, 32, 1)), layers.Conv2D(6, 5, activation="relu"), layers.AveragePooling2D(2, 2),
        layers.Conv2D(16, 5, activation="relu"), layers.AveragePooling2D(2, 2),
        layers.Conv2D(120, 5, activation="relu"), layers.Flatten(),
        layers.Dense(84, activation="relu"), layers.Dense(10, activation="softmax")])
    net.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    return net, (x_train, y_train), (x_test, y_test)


def _resized_cifar10(size: int):
    """The lecture's preparation: the whole CIFAR-10 sample resized up front, float32 /255."""
    import tensorflow as tf
    x_train, y_train, x_test, y_test = _load("cifar10")
    x_train = tf.image.resize(x_train, (size, size)).numpy().astype("float32") / 255  # (5000, 224, 224, 3)
    x_test = tf.image.resize(x_test, (size, size)).numpy().astype("float32") / 255
    return x_train, y_train, x_test, y_test


def lecture_alexnet(size: int = 224):
    """The lecture's AlexNet: the whole CIFAR-10 sample resized to 224x224 float32 before training."""
    import keras
    from keras import layers
    x_train, y_train, x_test, y_test = _resized_cifar10(size)
    conv = lambda filters, size, **kw: layers.Conv2D(filters, size, activation="relu", **kw)  # noqa: E731
    net = keras.Sequential([
        keras.Input((size, size, 3)), conv(96, 11, strides=4), conv(256, 5), layers.MaxPooling2D(3, 2),
        conv(384, 3), layers.MaxPooling2D(3, 2), conv(384, 3), conv(256, 3), layers.MaxPooling2D(3, 2),
        layers.Flatten(), layers.Dense(4096, activation="relu"), layers.Dropout(0.5),
        layers.Dense(4096, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
    net.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net, (x_train, y_train), (x_test, y_test)


def lecture_vgg19(size: int = 224):
    """The lecture's VGG19: 16 3x3 convolutions in five blocks, two 4096-unit layers, from scratch."""
    import keras
    from keras import layers
    x_train, y_train, x_test, y_test = _resized_cifar10(size)
    stack = [keras.Input((size, size, 3))]
    for filters, convs in ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)):
        stack += [layers.Conv2D(filters, 3, padding="same", activation="relu") for _ in range(convs)]
        stack.append(layers.MaxPooling2D(2, 2))
    stack += [layers.Flatten(), layers.Dense(4096, activation="relu"), layers.Dropout(0.5),
              layers.Dense(4096, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax")]
    net = keras.Sequential(stack)
    net.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net, (x_train, y_train), (x_test, y_test)


LECTURE = {"lenet5": lecture_lenet, "alexnet": lecture_alexnet, "vgg19": lecture_vgg19}


# ---------------------------------------------------------------- parent: run workers, report

def measure(model: str, side: str, warmup: int, steps: int, limit_gb: float | None = None) -> dict:
    """One measurement in a fresh process. With `limit_gb`, the process is stopped as soon as its
    resident memory passes the limit (polled ten times a second), and the result says so."""
    print(f"measuring {model} / {side} ...", file=sys.stderr, flush=True)
    command = [sys.executable, __file__, "--worker", model, side, "--warmup", str(warmup), "--steps", str(steps)]
    with subprocess.Popen(command, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:
        peak, start = 0.0, time.perf_counter()
        while child.poll() is None:
            peak = max(peak, resident_gb(child.pid))
            if limit_gb is not None and peak > limit_gb:
                child.kill()
                child.wait()
                return {"model": model, "side": side, "stopped_past_gb": limit_gb, "peak_rss_gb": round(peak, 3),
                        "seconds_until_stopped": round(time.perf_counter() - start, 1)}
            time.sleep(0.1)
        stdout, stderr = child.communicate()
    return worker_result(f"{model}/{side}", child.returncode, stdout, stderr)


def resident_gb(pid: int) -> float:
    """A running process's peak resident memory so far (VmHWM), in GB; 0 once it has gone."""
    return (proc_status_bytes(pid, "VmHWM") or 0) / 1e9


def ratios(measurements: list[dict]) -> dict:
    """Per model, every other side / the lecture's code: memory (below 1 is better) and speed (above 1)."""
    by = {(m["model"], m["side"]): m for m in measurements}
    return {model: {side: {key: round(by[model, side][key] / by[model, "lecture"][key], 3)
                           for key in ("peak_rss_gb", "images_per_second")}
                    for side in SIDES[1:] if (model, side) in by}
            for model in dict.fromkeys(m["model"] for m in measurements if m["model"] in MODELS)}


def table(measurements: list[dict], ratio: dict) -> str:
    by = {(m["model"], m["side"]): m for m in measurements}
    lines = ["| model | size | batch | peak RSS lecture (GB) | peak RSS cnnlab (GB) | cnnlab/lecture "
             "| img/s lecture | img/s cnnlab | cnnlab/lecture | img/s lecture + XLA | XLA/lecture |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model, r in ratio.items():
        lec, lab = by[model, "lecture"], by[model, "cnnlab"]
        xla = by.get((model, "lecture-xla"))
        lines.append(f"| {model} | {lec['input_size']} | {lec['batch_size']} | {lec['peak_rss_gb']:.2f} "
                     f"| {lab['peak_rss_gb']:.2f} | {r['cnnlab']['peak_rss_gb']:.2f} "
                     f"| {lec['images_per_second']:.2f} | {lab['images_per_second']:.2f} "
                     f"| {r['cnnlab']['images_per_second']:.2f} "
                     + (f"| {xla['images_per_second']:.2f} | {r['lecture-xla']['images_per_second']:.2f} |"
                        if xla else "| | |"))
    stopped = by.get(("vgg19-lecture", "lecture"))
    if stopped:
        lines.append(f"\nThe lecture's VGG19 (224x224, batch 128): stopped at {stopped['peak_rss_gb']:.2f} GB, past "
                     f"the {stopped['stopped_past_gb']} GB limit, "
                     f"{stopped['seconds_until_stopped']} s after it started."
                     if "stopped_past_gb" in stopped else
                     f"\nThe lecture's VGG19 (224x224, batch 128): peak {stopped['peak_rss_gb']:.2f} GB.")
    return "\n".join(lines)


def check_steps(model: str, warmup: int, steps: int) -> None:
    batch = MODELS[model][4]
    full_batches = MODELS[model][2] // batch
    if warmup < 1 or steps < 1 or warmup + steps > full_batches:
        sys.exit(f"{model}: need warm-up >= 1, steps >= 1 and warm-up + steps <= {full_batches} "
                 f"(full batches of {batch} in one epoch); got {warmup} + {steps}")


def main(argv=None) -> None:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.warmup, args.steps)))
        return
    models = [args.only] if args.only else list(MODELS)
    steps = {m: args.steps if args.steps is not None else (QUICK_STEPS if args.quick else STEPS)[m] for m in models}
    for model in models:
        check_steps(model, args.warmup, steps[model])
    measurements = [measure(m, side, args.warmup, steps[m]) for m in models for side in SIDES]
    if not args.only or args.only == "vgg19":  # the lecture's own VGG19 configuration: how much memory it wants
        measurements.append(measure("vgg19-lecture", "lecture", 1, 1, limit_gb=args.limit_gb))
    report = {"machine": machine(), "data": "cnnlab bundled samples, same images for every side",
              "measurements": measurements, "ratios_over_lecture": ratios(measurements)}
    out = write_json(Path(args.out or default_out(args.quick, args.only)), report)
    print(table(measurements, report["ratios_over_lecture"]) + f"\n\nwritten to {out}")


def default_out(quick: bool, only: str | None) -> Path:
    """The committed name for a full run; a quick or partial run gets a suffix (ignored by git)."""
    return RESULTS / ("train_memory_speed" + ".quick" * quick + (f".{only}" if only else "") + ".json")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(MODELS), help="measure one model only")
    parser.add_argument("--quick", action="store_true", help="tiny step counts, a smoke check")
    parser.add_argument("--steps", type=int, help=f"timed steps per measurement (default: {STEPS})")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (graph tracing)")
    parser.add_argument("--out", help="results file (default: bench/results/train_memory_speed[...].json)")
    parser.add_argument("--limit-gb", type=float, default=18.0,
                        help="stop the lecture's VGG19 at batch 128 past this resident memory (default: %(default)s)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SIDE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
