"""What saving a run at every epoch's end costs, against the epoch it follows.

What: each network the Train page offers, at the settings the page starts from (the lessons' measured
presets), trains a few batches; the median batch, times the batches of a whole epoch, is its epoch.
The run is then saved three times as a workspace saves it at an epoch's end (`Store.checkpoint`: the
bundle with the optimizer's state and the test predictions, written beside their names, flushed to
the disk and renamed). Reported: the bundle's size, the median save, and the save as a share of the
epoch, both measured in this run on this machine.

Why: the workspace keeps every finished epoch so that a restart loses none; that must not slow the
class's runs noticeably (target: under 5% of an epoch). Where a save would take more (a transfer head,
whose epoch is a fraction of a second and whose bundle holds the whole frozen base), the run saves only
once the training since its last save is twenty times the save (`engines.CHECKPOINT_SHARE`): "saved" says
every how many epochs that is.

How:
    PYTHONPATH=. python bench/checkpoint_cost.py            # a few minutes on 2 cores

Writes bench/results/checkpoint_cost.json and prints a markdown table.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time

import cnnlab
from cnnlab import lessons
from cnnlab.classroom import PoolSettings
from cnnlab.engines import CHECKPOINT_SHARE
from cnnlab.workspaces import Store
from common import RESULTS, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

BATCHES = 12   # trained per network: the first two (graph building) are left out of the median
SAVES = 3


class Clock:
    """When each batch ended."""

    def __init__(self):
        self.ends = []

    def on_batch(self, progress):
        self.ends.append(time.perf_counter())

    def on_epoch(self, progress):
        pass

    def on_note(self, text, lasting=True):
        pass


def measure(arch: str, store: Store, token: str) -> dict:
    defaults = lessons.train_defaults(arch)
    room = defaults.classroom
    model = cnnlab.ModelConfig(arch, input_size=room.input_size, width=room.width, knobs=defaults.knobs)
    config = cnnlab.TrainConfig(model, recipe=defaults.recipe, batch_size=defaults.batch_size, sample=room.sample,
                                epochs=1, steps_per_epoch=BATCHES).resolved()
    data = cnnlab.load_dataset(config.dataset)
    clock = Clock()
    run = cnnlab.train(config, listener=clock, data=data)
    batch = statistics.median(b - a for a, b in zip(clock.ends[1:], clock.ends[2:]))
    n_train, _ = data.sizes(config.sample)
    epoch = batch * math.ceil(n_train / config.batch_size)
    run_id = store.add(token, config, arch)
    saves = []
    for _ in range(SAVES):
        start = time.perf_counter()
        store.checkpoint(run_id, run, config.epochs)
        saves.append(time.perf_counter() - start)
    save = statistics.median(saves)
    every = max(1, math.ceil(save / (CHECKPOINT_SHARE * epoch)))
    return {"arch": arch, "settings": dataclasses.asdict(room) | {"batch_size": config.batch_size},
            "train_images": n_train, "bundle_mb": round(store.get(run_id).size / 2**20, 1),
            "epoch_seconds": round(epoch, 2), "save_seconds": round(save, 3),
            "save_share_of_epoch": round(save / epoch, 4), "saved_every_epochs": every}


def main() -> None:
    store = Store(tempfile.mkdtemp(prefix="cnnlab-checkpoints-"), PoolSettings())
    token = store.create_workspace()
    rows = [measure(arch, store, token) for arch in cnnlab.list_architectures(trainable=True)]
    write_json(RESULTS / "checkpoint_cost.json", {"machine": machine(), "rows": rows})
    print("| network | settings | bundle | epoch | save | save / epoch | saved |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        s, every = r["settings"], r["saved_every_epochs"]
        saved = "every epoch" if every == 1 else f"every {every} epochs"
        print(f"| {r['arch']} | {s['input_size'] or 'paper'} px, width {s['width']}, sample {s['sample']}, "
              f"batch {s['batch_size']} | {r['bundle_mb']} MB | {r['epoch_seconds']} s | {r['save_seconds']} s | "
              f"{r['save_share_of_epoch']:.2%} | {saved} |")


if __name__ == "__main__":
    main()
