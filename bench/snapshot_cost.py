"""What the training snapshots cost a run: a run whose listener shows them against one whose listener does not.

What: each network below trained by `cnnlab.train` two ways, on the same data, seed and settings:
  - without: a listener with `on_batch`, `on_epoch` and `on_note` doing nothing, so the run takes no
    snapshots;
  - with: the same listener with `on_snapshot` too, recording every snapshot: the run then takes one
    before its first batch, one at every epoch's end and live ones between batches (at most every
    `snapshots.LIVE_SECONDS`, and at most `snapshots.COST_SHARE` of the run's time), as the app's do.
Each is timed by the run's own `train_seconds` (its `fit` alone: the model build and the data loading
excluded), alternating without/with for `--repeats` rounds in one process after one warm-up of each
(not timed); the ratio is with / without of the medians. It also counts the snapshots of a run by kind,
adds up the bytes of those the run keeps (`Snapshot.nbytes`), and times the snapshots themselves from the
listener's side: the gap between `on_batch` or `on_epoch` and the `on_snapshot` that follows it (the
snapshot taken in between). No callback comes before the one taken before the first batch, so that one is
timed on its own, on a `Camera` of a freshly built network of the run's shape, once per round.
Target (issue): snapshots cost at most 5% of a run's time, a ratio of at most 1.05.

    PYTHONPATH=. python bench/snapshot_cost.py               # 5 rounds, about 2 minutes on 2 cores
    PYTHONPATH=. python bench/snapshot_cost.py --repeats 3

Writes bench/results/snapshot_cost.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter

from common import RESULTS, ROOT, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

SEED, BATCH = 0, 128
# (network, its dataset, the model's overrides, the sample of the training images, epochs): small enough for 2 cores
NETWORKS = {
    "lenet5": ("mnist", {}, 0.1, 2),
    "vgg19": ("cifar10", {"input_size": 64, "width": 0.25}, 0.1, 1),
}


class Quiet:
    """A listener that shows nothing: the run takes no snapshots. It notes when each batch and epoch ended."""

    def __init__(self):
        self.last = time.perf_counter()    # when the last on_batch or on_epoch was called

    def on_batch(self, progress) -> None:
        self.last = time.perf_counter()

    def on_epoch(self, progress) -> None:
        self.last = time.perf_counter()

    def on_note(self, text, lasting: bool = True) -> None:
        pass


class Watching(Quiet):
    """The same listener showing snapshots: the run takes them, and this one records them."""

    def __init__(self):
        super().__init__()
        self.snapshots = []
        self.seconds = Counter()           # per kind: from the callback before to on_snapshot (not "start")

    def on_snapshot(self, snapshot) -> None:
        self.snapshots.append(snapshot)
        if snapshot.kind != "start":
            self.seconds[snapshot.kind] += time.perf_counter() - self.last


def measure(name: str, repeats: int) -> dict:
    """One network's rounds, without and with snapshots, and what its snapshots took."""
    import dataclasses

    from cnnlab import ModelConfig, TrainConfig, build_model, load_dataset, snapshots
    from cnnlab.snapshots import Camera
    from cnnlab.training import train

    dataset, overrides, sample, epochs = NETWORKS[name]
    data = load_dataset(dataset)
    config = TrainConfig(ModelConfig(name, **overrides), epochs=epochs, batch_size=BATCH, sample=sample, seed=SEED)

    def start_snapshot() -> float:
        """The snapshot before the first batch, on a fresh network of the run's shape, as the run takes it."""
        model_config = dataclasses.replace(config.model, raw_shape=data.image_shape, classes=data.num_classes)
        camera = Camera(build_model(model_config.resolved()), data.x_test[0])
        began = time.perf_counter()
        camera.take("start", 0, 0)
        return time.perf_counter() - began

    # warm-up: the first of each pays the process's one-off costs
    train(config, Quiet(), data=data), train(config, Watching(), data=data), start_snapshot()
    seconds = {"without": [], "with": []}
    counts, kept_bytes, kept, taking = [], [], [], []
    for _ in range(repeats):
        for side, listener in (("without", Quiet()), ("with", Watching())):
            run = train(config, listener, data=data)
            seconds[side].append(round(run.train_seconds, 3))
            if side == "with":
                counts.append(dict(Counter(s.kind for s in listener.snapshots)))
                kept.append(len(run.snapshots))
                kept_bytes.append(sum(s.nbytes for s in run.snapshots))
                taking.append({**{kind: round(s, 4) for kind, s in listener.seconds.items()},
                               "start": round(start_snapshot(), 4)})
    medians = {side: statistics.median(times) for side, times in seconds.items()}
    taken = {kind: round(statistics.median(t.get(kind, 0.0) for t in taking), 4) for kind in snapshots.KINDS}
    return {
        "network": {"dataset": dataset, **overrides, "sample": sample, "epochs": epochs, "batch_size": BATCH,
                    "n_train": int(round(len(data.x_train) * sample)), "seed": SEED},
        "seconds": seconds, "median_seconds": medians,
        "ratio_with_over_without": round(medians["with"] / medians["without"], 3),
        "snapshots_per_run": counts, "kept_per_run": kept, "kept_bytes_per_run": kept_bytes,
        "snapshot_seconds_per_run": taking,  # per kind, all of that kind in the run together
        "median_snapshot_seconds": taken,
        "snapshot_share_of_median_run": round(sum(taken.values()) / medians["with"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    from cnnlab import snapshots

    rows = {name: measure(name, args.repeats) for name in NETWORKS}
    result = {"what": "a run's fit time, its listener showing snapshots against one that does not",
              "repeats": args.repeats, "live_seconds": snapshots.LIVE_SECONDS, "cost_share": snapshots.COST_SHARE,
              "networks": rows, "target": "at most 1.05", "machine": machine(), "load_average": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d")}
    path = write_json(RESULTS / "snapshot_cost.json", result)
    print("| network | without s (median) | with s (median) | with / without | snapshots per run | kept, bytes "
          "| in snapshots: start, epoch, live s | share of the run |\n|---|---:|---:|---:|---|---:|---|---:|")
    for name, row in rows.items():
        kinds = Counter()
        for c in row["snapshots_per_run"]:
            kinds.update(c)
        per_run = ", ".join(f"{kinds[k] / args.repeats:g} {k}" for k in snapshots.KINDS if kinds[k])
        taken = row["median_snapshot_seconds"]
        print(f"| {name} | {row['median_seconds']['without']:.2f} | {row['median_seconds']['with']:.2f} "
              f"| {row['ratio_with_over_without']} | {per_run} "
              f"| {statistics.median(row['kept_per_run']):g}, {statistics.median(row['kept_bytes_per_run']):,.0f} "
              f"| {taken['start']}, {taken['epoch']}, {taken['live']} | {row['snapshot_share_of_median_run']:.1%} |")
    for name, row in rows.items():
        print(f"\n{name}: without {', '.join(map(str, row['seconds']['without']))}; "
              f"with {', '.join(map(str, row['seconds']['with']))}")
    print(f"\nwritten to {path} (target: with / without at most 1.05)")


if __name__ == "__main__":
    main()
