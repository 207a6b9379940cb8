"""What `reproducible = true` costs: a worker's training speed without TensorFlow's oneDNN kernels.

What: one epoch of each network below, trained by `cnnlab.train` in a fresh process with op determinism
on (as every worker trains), once with TensorFlow's default oneDNN kernels and once with
TF_ENABLE_ONEDNN_OPTS=0 (what `reproducible = true` sets in the embedded workers). The two alternate for
`--repeats` rounds; each process trains a warm-up epoch first and is timed on the second, around `fit`
alone. The ratio is without / with, of the medians: how many times longer a run takes when its weights
must be bit-identical for its seed on every CPU. Each process also prints a digest of its weights, so
the results show whether the two kinds of kernel gave the same bits on this machine.

    PYTHONPATH=. python bench/reproducible.py                 # 3 rounds, about 3 minutes on 2 cores
    PYTHONPATH=. python bench/reproducible.py --repeats 5

Writes bench/results/reproducible.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

from common import RESULTS, worker_env, worker_result, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

# (network, its dataset, the model's overrides, the sample of the training images): small enough for 2 cores
NETWORKS = {
    "lenet5": ("mnist", {}, 0.1),
    "vgg19": ("cifar10", {"input_size": 64, "width": 0.25}, 0.1),
}


def worker(name: str) -> None:
    import numpy as np
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    from cnnlab import ModelConfig, TrainConfig, load_dataset
    from cnnlab.training import train

    dataset, overrides, sample = NETWORKS[name]
    data = load_dataset(dataset)
    config = TrainConfig(ModelConfig(name, **overrides), epochs=1, batch_size=128, sample=sample, seed=3)
    train(config, data=data)  # the warm-up: graph tracing, first allocations
    run = train(config, data=data)
    digest = hashlib.sha1(b"".join(np.asarray(w).tobytes() for w in run.model.get_weights())).hexdigest()[:16]
    print(json.dumps({"seconds": run.train_seconds, "weights": digest}))


def measure(name: str, onednn: bool) -> dict:
    env = {**worker_env(), "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0"}
    done = subprocess.run([sys.executable, __file__, "--worker", name], env=env, capture_output=True, text=True)
    return worker_result(f"{name} (oneDNN {'on' if onednn else 'off'})", done.returncode, done.stdout, done.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    rows = {}
    for name in NETWORKS:
        seen = {True: [], False: []}
        for _ in range(args.repeats):
            for onednn in (True, False):
                seen[onednn].append(measure(name, onednn))
        with_, without = (statistics.median(r["seconds"] for r in seen[k]) for k in (True, False))
        repeats_bits = {("onednn" if kind else "reproducible"): len({r["weights"] for r in runs}) == 1
                        for kind, runs in seen.items()}
        rows[name] = {"onednn_seconds": round(with_, 3), "reproducible_seconds": round(without, 3),
                      "ratio": round(without / with_, 2), "same_bits_each_kind": repeats_bits,
                      "network": {"dataset": NETWORKS[name][0], **NETWORKS[name][1], "sample": NETWORKS[name][2]}}
    result = {"what": "one epoch's training time, reproducible (no oneDNN) against TensorFlow's default kernels",
              "repeats": args.repeats, "networks": rows, "machine": machine(), "load_average": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d")}
    path = write_json(RESULTS / "reproducible.json", result)
    print("| network | default s | reproducible s | ratio | each kind repeats its bits |\n|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['onednn_seconds']} | {row['reproducible_seconds']} | {row['ratio']}x "
              f"| {all(row['same_bits_each_kind'].values())} |")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
