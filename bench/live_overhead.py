"""The live-training overhead: a cnnlab run feeding the app's live curves against a plain Keras `fit`.

What: LeNet-5 on the bundled MNIST (60,000 training, 5,000 test images; 6,000 and 1,000 before
2026-12-01), batch 128, 3 epochs, validated on the test images after every epoch, trained two ways on the same network:
  - plain: `model.fit(x, y, validation_data=...)` on `build_model("lenet5")`, nothing else;
  - live: `cnnlab.train` with the app's own listener (`runner.BackgroundRun`), which records a
    Progress after every batch, checks the run's limits and the stop flag, and keeps the history.
Each side is timed around its `fit` alone (graph tracing included on both, the model build and
the data loading excluded), alternating plain/live for `--repeats` rounds in one process; the
ratio is live / plain of the medians. Target (issue): under 5% overhead, a ratio below 1.05.

What it leaves out: drawing the curves. The page redraws on the server's script thread once a
second; on two cores that competes with training for a core, which this benchmark does not model.

    PYTHONPATH=. python bench/live_overhead.py               # 7 rounds, about 2 minutes on 2 cores
    PYTHONPATH=. python bench/live_overhead.py --repeats 3

Writes bench/results/live_overhead.json (another --repeats writes a suffixed name) and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from common import RESULTS, ROOT, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

EPOCHS, BATCH = 3, 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    import keras

    from cnnlab import ModelConfig, TrainConfig, build_model, load_dataset, train
    from cnnlab.runner import BackgroundRun

    data = load_dataset("mnist")
    config = TrainConfig(ModelConfig("lenet5"), epochs=EPOCHS, batch_size=BATCH, seed=0).resolved()

    def plain() -> float:
        keras.utils.set_random_seed(0)
        model = build_model("lenet5")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
        y, y_test = (keras.utils.to_categorical(labels, 10) for labels in (data.y_train, data.y_test))
        start = time.perf_counter()
        model.fit(data.x_train, y, batch_size=BATCH, epochs=EPOCHS, validation_data=(data.x_test, y_test), verbose=0)
        return time.perf_counter() - start

    def live() -> float:
        listener = BackgroundRun(0, config, data, "bench")
        listener.started = time.time()
        run = train(config, listener=listener, data=data)
        assert len(listener.batches) == EPOCHS * 47 and len(listener.epochs) == EPOCHS
        return run.train_seconds

    plain(), live()  # warm-up: the first run of each pays one-off costs of the process
    seconds = {"plain": [], "live": []}
    for _ in range(args.repeats):
        seconds["plain"].append(round(plain(), 3))
        seconds["live"].append(round(live(), 3))
    medians = {side: statistics.median(times) for side, times in seconds.items()}
    sizes = f"{len(data.x_train):,}/{len(data.x_test):,}"
    result = {"what": f"LeNet-5, bundled MNIST ({sizes}), batch {BATCH}, {EPOCHS} epochs, validated every epoch",
              "seconds": seconds, "median_seconds": medians,
              "ratio_live_over_plain": round(medians["live"] / medians["plain"], 3), "target": "below 1.05",
              "machine": machine(), "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d")}
    suffix = "" if args.repeats == 7 else f".{args.repeats}"
    write_json(RESULTS / f"live_overhead{suffix}.json", result)
    print("| side | seconds per round | median |\n|---|---|---:|")
    for side, times in seconds.items():
        print(f"| {side} | {', '.join(map(str, times))} | {medians[side]:.2f} |")
    print(f"\nlive / plain = {result['ratio_live_over_plain']} (target below 1.05)")


if __name__ == "__main__":
    main()
