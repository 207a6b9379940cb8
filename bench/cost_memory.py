"""Memory estimate against measurement: `estimate_cost(...).peak_bytes` beside the measured peak of a real run.

What: for LeNet-5 on MNIST, AlexNet on CIFAR-10 at 224x224 and at 163x163 (its smallest input), and
VGG19 at a quarter of its width on CIFAR-10 at 112x112, all with batch 128: the peak resident memory
of a whole training run (`cnnlab.train`), the peak that `cnnlab.cost.estimate_cost` predicts for the
same run, their ratio estimate / measured, and whether it is within 30%.

Why: the app shows this estimate before a run starts and refuses a run that will not fit
(`check_fits`); it must be close to what the run really takes, at every scale of network the lab offers.

How: each run is a fresh subprocess (`--worker NAME`), so its peak is that process's ru_maxrss and
nothing carries over. A run is short (1 epoch of 2 steps) but whole: loading the bundled data,
building and compiling the model, the training steps, and the end-of-epoch validation on every test
image. The worker also records the resident memory right after `import keras` and TensorFlow (the
runtime every run pays) and the peak after each stage. The estimate is made in this process, for the
configuration the worker trained and the numbers of training and test images it used.
`--batch`, `--data-path` and the extra configuration `transfer-vgg19-32` (not in the default run)
check the model's parts one at a time: the batch term, the data term, the transfer branch.

    PYTHONPATH=. python bench/cost_memory.py                          # about 3 minutes on 2 cores
    PYTHONPATH=. python bench/cost_memory.py --only lenet5            # one configuration, about 15 seconds
    PYTHONPATH=. python bench/cost_memory.py --only vgg19-w0.25-112 --batch 32
    PYTHONPATH=. python bench/cost_memory.py --only lenet5 --data-path ../shared/datasets/mnist.npz

Writes bench/results/cost_memory.json (a partial run writes a suffixed name, ignored by git) and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from common import RESULTS, peak_bytes, run_worker, write_json  # bench/ is on sys.path when a script here runs
from machine import commit, machine

TOLERANCE = 0.30          # the estimate must be within 30% of the measured peak
BATCH = 128
STEPS = 2                 # training steps in the one epoch; the end-of-epoch validation comes after them
CONFIGS = {               # name: (arch, input_size (None: the architecture's), width, knobs)
    "lenet5": ("lenet5", None, 1.0, {}),
    "alexnet-224": ("alexnet", 224, 1.0, {}),
    "alexnet-163": ("alexnet", 163, 1.0, {}),
    "vgg19-w0.25-112": ("vgg19", 112, 0.25, {}),
}
EXTRA = {                 # measured with --only: a frozen VGG19 base (random weights: nothing to download)
    "transfer-vgg19-32": ("transfer", 32, 1.0, {"base": "vgg19", "weights": "random", "units": 64}),
}


def train_config(name: str, steps: int = STEPS, batch: int = BATCH, data_path: str | None = None):
    import cnnlab

    arch, size, width, knobs = (CONFIGS | EXTRA)[name]
    return cnnlab.TrainConfig(cnnlab.ModelConfig(arch, input_size=size, width=width, knobs=knobs), epochs=1,
                              batch_size=batch, steps_per_epoch=steps, data_path=data_path)


# ---------------------------------------------------------------- worker: one run per process

def worker(name: str, steps: int, batch: int, data_path: str | None) -> dict:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    stages = {"runtime": peak_bytes()}
    import cnnlab

    class Stages:  # a cnnlab Listener: the peak after the first and the last training step, and after validation
        def on_batch(self, progress):
            if progress.step in (1, progress.steps):
                stages["first_step" if progress.step == 1 else "training_steps"] = peak_bytes()

        def on_epoch(self, progress):
            stages["validation"] = peak_bytes()

        def on_note(self, text, lasting=True):
            pass

    run = cnnlab.train(train_config(name, steps, batch, data_path), listener=Stages())
    return {"name": name, "batch_size": batch, "steps": steps, "data_path": data_path,
            "n_train": run.dataset["n_train"], "n_test": run.dataset["n_test"],
            "epochs_completed": run.epochs_completed, "peak_bytes": peak_bytes(),
            "runtime_bytes": stages["runtime"], "peak_bytes_by_stage": stages}


# ---------------------------------------------------------------- parent: run workers, estimate, report

def measure(name: str, steps: int, batch: int, data_path: str | None) -> dict:
    print(f"measuring {name} ...", file=sys.stderr, flush=True)
    options = ["--steps", str(steps), "--batch", str(batch)] + (["--data-path", data_path] if data_path else [])
    return run_worker(__file__, name, *options, what=name)


def compare(measured: dict) -> dict:
    """The estimate for the run the worker made, beside what it measured."""
    from cnnlab.cost import estimate_cost

    config = train_config(measured["name"], measured["steps"], measured["batch_size"], measured["data_path"])
    cost = estimate_cost(config, measured["n_train"], measured["n_test"],
                         macs_per_second=1e10)  # the speed does not enter the memory estimate
    ratio = cost.peak_bytes / measured["peak_bytes"]
    return {**measured, "estimate_bytes": cost.peak_bytes,
            "estimate_breakdown": {k: v for k, v in cost.breakdown.items() if k != "images_per_epoch"},
            "ratio": round(ratio, 3), "within_tolerance": abs(ratio - 1) <= TOLERANCE}


def gb(n: int) -> str:
    return f"{n / 1e9:.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| configuration | batch | images train / test | runtime measured (GB) | estimate (GB) "
             "| measured peak (GB) | estimate / measured | within 30% |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['batch_size']} | {r['n_train']:,} / {r['n_test']:,} "
                     f"| {gb(r['runtime_bytes'])} | {gb(r['estimate_bytes'])} | {gb(r['peak_bytes'])} "
                     f"| {r['ratio']:.2f} | {'yes' if r['within_tolerance'] else '**no**'} |")
    return "\n".join(lines)


def default_out(args) -> Path:
    """The committed name for a full run; any other run gets a suffix (ignored by git)."""
    suffix = "".join([f".{args.only}" if args.only else "", f".b{args.batch}" if args.batch != BATCH else "",
                      f".s{args.steps}" if args.steps != STEPS else "",
                      f".{Path(args.data_path).stem}" if args.data_path else ""])
    return RESULTS / f"cost_memory{suffix}.json"


def main(argv=None) -> None:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.batch, args.data_path)))
        return
    names = [args.only] if args.only else list(CONFIGS)
    load_before = os.getloadavg()[0]
    rows = [compare(measure(name, args.steps, args.batch, args.data_path)) for name in names]
    report = {"machine": machine(), "commit": commit(),
              "load_average": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
              "data": args.data_path or "cnnlab bundled data (60,000 MNIST / 5,000 CIFAR-10 train, 5,000 / 1,000 test)",
              "batch_size": args.batch, "epochs": 1, "steps_per_epoch": args.steps, "tolerance": TOLERANCE,
              "bytes": "peak resident memory (ru_maxrss) in bytes; GB in the table is 10^9 bytes",
              "configurations": {name: dict(zip(("arch", "input_size", "width", "knobs"), (CONFIGS | EXTRA)[name]))
                                 for name in names},
              "measurements": rows}
    out = write_json(Path(args.out) if args.out else default_out(args), report)
    print(table(rows) + f"\n\nwritten to {out}")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(CONFIGS | EXTRA), help="measure one configuration only")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps in the epoch (default {STEPS})")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"batch size (default {BATCH})")
    parser.add_argument("--data-path", help="train on this .npz (Keras's layout) instead of the bundled sample")
    parser.add_argument("--out", help="results file (default: bench/results/cost_memory[...].json)")
    parser.add_argument("--worker", choices=list(CONFIGS | EXTRA), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
