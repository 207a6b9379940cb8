"""The model zoo: what counting a network costs, what cached features save, and CPU time per image here.

What, each with its baseline from the same run:
1. Counting a Keras application for its layer table. Baseline: `keras.applications.X(weights=None)`,
   as the documentation's counts are made; cnnlab: `layer_table("keras-x")`, which builds the
   network inside `keras.StatelessScope(initialize_variables=False)` on a thread of its own.
   Each side runs in a fresh process: peak resident memory above the imports, and build time.
2. Transfer learning with cached features: a transfer run (VGG19 base, random weights, 32 px,
   40% of the bundled CIFAR-10 sample, 3 epochs), then a second run with another head. The second
   run is the cached case; the first is its baseline.
3. CPU milliseconds per image for a few models, measured here as the Zoo page does (a child
   process, batch of 4, best of 3), beside the documentation's time per image (its per-32-image
   step divided by 32, on a 92-core machine).

    PYTHONPATH=. python bench/zoo.py            # about 4 minutes on 2 cores
    PYTHONPATH=. python bench/zoo.py --quick    # counting only, about 1 minute

Writes bench/results/zoo.json (--quick: zoo.quick.json, ignored by git) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time

from common import RESULTS, peak_bytes, run_worker, write_json  # bench/ is on sys.path when a script here runs
from machine import commit, machine

COUNTED = {"VGG19": "keras-vgg19", "NASNetLarge": "keras-nasnetlarge", "ResNet50": "keras-resnet50"}
TIMED = ("mobilenetv2", "resnet50", "vgg19")


def peak_mb() -> float:
    return peak_bytes() / 2**20


def count_worker(model: str, side: str) -> dict:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras

    import cnnlab

    base = peak_mb()
    start = time.perf_counter()
    if side == "keras":
        params = getattr(keras.applications, model)(weights=None).count_params()
    else:
        params = cnnlab.layer_table(COUNTED[model]).total_params
    return {"model": model, "side": side, "params": params, "seconds": round(time.perf_counter() - start, 2),
            "imports_mb": round(base), "peak_above_imports_mb": round(peak_mb() - base)}


def transfer_runs() -> dict:
    import cnnlab
    from cnnlab.features import FEATURES

    def config(units, lr):
        return cnnlab.TrainConfig(cnnlab.ModelConfig("transfer", input_size=32, knobs={
            "base": "vgg19", "weights": "random", "units": units}), sample=0.4, epochs=3, batch_size=64,
            learning_rate=lr, seed=0)

    times = []
    for units, lr in ((64, 1e-3), (32, 3e-3)):
        start = time.perf_counter()
        run = cnnlab.train(config(units, lr))
        times.append({"seconds": round(time.perf_counter() - start, 2), "test_accuracy": run.test_accuracy,
                      "train_seconds": round(run.train_seconds, 2)})
    return {"first": times[0], "second": times[1], "cache": {"hits": FEATURES.hits, "misses": FEATURES.misses},
            "second_over_first": round(times[1]["seconds"] / times[0]["seconds"], 3)}


def timings() -> list[dict]:
    from cnnlab import zoo
    from cnnlab.architectures.applications import APPLICATIONS

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CNNLAB_CACHE_DIR"] = cache  # measure now, not from an earlier cache
        for key in TIMED:
            ms = zoo.measure_cpu_ms(key)
            documented = APPLICATIONS[key].documented.cpu_ms / 32
            rows.append({"model": APPLICATIONS[key].name, "ms_per_image_here": round(ms, 1),
                         "documented_ms_per_image": round(documented, 2),
                         "here_over_documented": round(ms / documented, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SIDE"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(count_worker(*args.worker)))
        return
    counting = []
    for model in COUNTED:
        keras_side, ours = (run_worker(__file__, model, side, what=f"{model}/{side}") for side in ("keras", "cnnlab"))
        counting.append({"model": model, "keras": keras_side, "cnnlab": ours,
                         "memory_ratio": round(max(ours["peak_above_imports_mb"], 1)
                                               / keras_side["peak_above_imports_mb"], 3),
                         "time_ratio": round(ours["seconds"] / keras_side["seconds"], 3)})
    result = {"date": datetime.date.today().isoformat(), "commit": commit(),
              "machine": machine() | {"load_average": os.getloadavg()}, "counting": counting}
    if not args.quick:
        result["transfer"] = transfer_runs()
        result["cpu_ms"] = timings()
    write_json(RESULTS / ("zoo.quick.json" if args.quick else "zoo.json"), result)
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = ["| model | params | peak above imports, Keras (MB) | cnnlab (MB) | cnnlab/Keras | build, Keras (s) | "
             "cnnlab (s) | cnnlab/Keras |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["counting"]:
        k, c = row["keras"], row["cnnlab"]
        lines.append(f"| {row['model']} | {c['params']:,} | {k['peak_above_imports_mb']} "
                     f"| {c['peak_above_imports_mb']} | "
                     f"{row['memory_ratio']} | {k['seconds']} | {c['seconds']} | {row['time_ratio']} |")
    if "transfer" in result:
        t = result["transfer"]
        lines += ["", "| transfer run | seconds | test accuracy |", "|---|---:|---:|",
                  f"| first (computes the features) | {t['first']['seconds']} | {t['first']['test_accuracy']:.3f} |",
                  f"| second (cached features, new head) | {t['second']['seconds']} "
                  f"| {t['second']['test_accuracy']:.3f} |",
                  f"| second / first | {t['second_over_first']} | |"]
        lines += ["", "| model | CPU ms / image here | documented ms / image | here / documented |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['ms_per_image_here']} | {r['documented_ms_per_image']} "
                  f"| {r['here_over_documented']} |" for r in result["cpu_ms"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
