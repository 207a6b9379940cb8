"""Time to accuracy: LeNet-5 on the whole MNIST, the lecture's code against cnnlab's recipes, in one run.

What: how many seconds of training each takes to reach a test accuracy (and the 99% training
accuracy the lecture's log shows), for
  - `lecture`: the lecture's plain Keras code (pad to 32, /255, one-hot, Adam at Keras's defaults,
    batch 128, 10 epochs, the test images as validation data);
  - `seed`: cnnlab's copy of that recipe (`--recipe seed`), the same 10 epochs;
  - `fast`: cnnlab's fast recipe (`--recipe fast`: Adam with a one-cycle learning rate peaking
    at 0.01, batch 128, 3 epochs).
Ratios are cnnlab / lecture from the same run; below 1 is faster.

How: every side trains in its own fresh process, one after another, and the sides alternate order
from round to round. The clock starts when training starts (after imports and data loading) and
includes the test evaluation at the end of every epoch, since that is when a learner sees the
number. The data is MNIST's 60,000 training images and the test images of `--data` (by default
../shared/datasets/mnist.npz, which holds the first 5,000 of MNIST's test set).

    PYTHONPATH=. python bench/time_to_accuracy.py               # 3 rounds, about 7 minutes on 2 cores
    PYTHONPATH=. python bench/time_to_accuracy.py --rounds 1 --quick   # a smoke check on 6,000 images

Writes bench/results/time_to_accuracy.json (a --quick run writes a suffixed name, ignored by git)
and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, run_worker, write_json  # bench/ is on sys.path when a script here runs
from machine import machine
from train_memory_speed import lecture_lenet

DATA = ROOT.parent / "shared" / "datasets" / "mnist.npz"
SIDES = ("lecture", "seed", "fast")
TARGETS = (0.98, 0.985, 0.99)  # test accuracy


# ---------------------------------------------------------------- worker: one training run per process

def worker(side: str, data: str, quick: bool) -> list[dict]:
    """Per epoch: seconds since training started, training accuracy and loss, test accuracy."""
    if side == "lecture":
        return lecture(data, quick)
    import cnnlab

    epochs = []

    class Listener:
        def on_batch(self, progress):
            pass

        def on_epoch(self, progress):
            epochs.append({"epoch": progress.epoch, "seconds": round(progress.elapsed, 2),
                           "accuracy": round(progress.accuracy, 4), "loss": round(progress.loss, 4),
                           "test_accuracy": round(progress.val_accuracy, 4)})

        def on_note(self, text, lasting):
            pass

    config = cnnlab.TrainConfig(cnnlab.ModelConfig("lenet5"), data_path=data, recipe=side,
                                sample=0.1 if quick else 1.0)
    cnnlab.train(config, listener=Listener())
    return epochs


def lecture(data: str, quick: bool) -> list[dict]:
    """The lecture's LeNet-5, as written there (bench/train_memory_speed.py's), on `data`."""
    import keras
    import numpy as np

    with np.load(data) as d:
        x_train, y_train, x_test, y_test = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    if quick:
        x_train, y_train = x_train[:6000], y_train[:6000]
    net, (x_train, y_train), (x_test, y_test) = lecture_lenet(arrays=(x_train, y_train, x_test, y_test))
    epochs, start = [], []

    def stamp(epoch, logs):
        epochs.append({"epoch": epoch + 1, "seconds": round(time.perf_counter() - start[0], 2),
                       "accuracy": round(logs["accuracy"], 4), "loss": round(logs["loss"], 4),
                       "test_accuracy": round(logs["val_accuracy"], 4)})

    net.fit(x_train, y_train, batch_size=128, epochs=10, validation_data=(x_test, y_test), verbose=0,
            callbacks=[keras.callbacks.LambdaCallback(on_train_begin=lambda logs: start.append(time.perf_counter()),
                                                      on_epoch_end=stamp)])  # the clock starts as cnnlab's does
    return epochs


# ---------------------------------------------------------------- parent: run workers, report

def run_side(side: str, data: str, quick: bool) -> list[dict]:
    print(f"training {side} ...", file=sys.stderr, flush=True)
    return run_worker(__file__, side, "--data", data, *["--quick"] * quick, what=side)


def seconds_to(epochs: list[dict], key: str, target: float) -> float | None:
    """Seconds until the end of the first epoch at or above `target`; None if never."""
    return next((e["seconds"] for e in epochs if e[key] >= target), None)


def summary(runs: dict[str, list[list[dict]]]) -> dict:
    """Per side, the median over rounds of: whole run, time to each target, final accuracies. A
    target is reached only if it was reached in every round."""
    lecture_final = statistics.median(r[-1]["test_accuracy"] for r in runs["lecture"])
    goals = [("accuracy", 0.99, "train 99%"), ("test_accuracy", lecture_final, "test: the lecture's final")]
    goals += [("test_accuracy", t, f"test {t:.1%}") for t in TARGETS]
    out = {}
    for side, rounds in runs.items():
        times = {}
        for key, target, label in goals:
            reached = [seconds_to(r, key, target) for r in rounds]
            times[label] = None if None in reached else round(statistics.median(reached), 2)
        out[side] = {"epochs": len(rounds[0]),
                     "whole_run_seconds": round(statistics.median(r[-1]["seconds"] for r in rounds), 2),
                     "final_test_accuracy": round(statistics.median(r[-1]["test_accuracy"] for r in rounds), 4),
                     "best_test_accuracy": round(statistics.median(max(e["test_accuracy"] for e in r)
                                                                   for r in rounds), 4),
                     "final_train_accuracy": round(statistics.median(r[-1]["accuracy"] for r in rounds), 4),
                     "seconds_to": times}
    out["lecture_final_test_accuracy"] = lecture_final
    return out


def ratios(summ: dict) -> dict:
    """cnnlab side / lecture for every target both reached; against the lecture's whole run
    (marked "<=", an upper bound) where only the cnnlab side reached it."""
    lecture = summ["lecture"]
    out = {}
    for side in ("seed", "fast"):
        out[side] = {"whole_run": round(summ[side]["whole_run_seconds"] / lecture["whole_run_seconds"], 3)}
        for label, seconds in summ[side]["seconds_to"].items():
            theirs = lecture["seconds_to"][label]
            if seconds is not None and theirs is not None:
                out[side][label] = round(seconds / theirs, 3)
            elif seconds is not None:
                out[side][label] = f"<={seconds / lecture['whole_run_seconds']:.3f}"
            else:
                out[side][label] = None
    return out


def table(summ: dict, ratio: dict) -> str:
    labels = list(summ["lecture"]["seconds_to"])
    head = "| side | epochs | whole run (s) | final test acc | " + "".join(f"s to {label} | " for label in labels)
    lines = [head.rstrip(), "|---|---:|---:|---:|" + "---:|" * len(labels)]
    for side in SIDES:
        s = summ[side]
        cells = [f"{s['seconds_to'][label]:.1f}" if s["seconds_to"][label] is not None else "not reached"
                 for label in labels]
        lines.append(f"| {side} | {s['epochs']} | {s['whole_run_seconds']:.1f} | {s['final_test_accuracy']:.2%} | "
                     + " | ".join(cells) + " |")
    for side in ("seed", "fast"):
        cells = ["-" if ratio[side][label] is None else str(ratio[side][label]) for label in labels]
        lines.append(f"| {side} / lecture | | {ratio[side]['whole_run']} | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.quick)))
        return
    if not Path(args.data).is_file():
        sys.exit(f"MNIST not found at {args.data}; pass --data FILE.npz (Keras's layout, the whole training set)")
    runs = {side: [] for side in SIDES}
    for round_ in range(args.rounds):
        for side in (SIDES if round_ % 2 == 0 else SIDES[::-1]):
            runs[side].append(run_side(side, args.data, args.quick))
    summ = summary(runs)
    report = {"machine": machine(), "data": str(args.data), "rounds": args.rounds, "quick": args.quick,
              "epochs_by_round": runs, "summary": summ, "ratios_cnnlab_over_lecture": ratios(summ)}
    out = write_json(Path(args.out or RESULTS / ("time_to_accuracy" + ".quick" * args.quick + ".json")), report)
    print(table(summ, report["ratios_cnnlab_over_lecture"]) + f"\n\nwritten to {out}")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA), help="MNIST in Keras's .npz layout (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every side, alternating order")
    parser.add_argument("--quick", action="store_true", help="6,000 training images, a smoke check")
    parser.add_argument("--out", help="results file (default: bench/results/time_to_accuracy[.quick].json)")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
