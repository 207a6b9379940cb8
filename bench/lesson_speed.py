"""Faster lesson runs: what TensorFlow's thread settings, a larger evaluation batch and the Keras torch
backend do to a lesson run's time on a 2-core CPU, against the plain-Keras equivalent in the same run.

Two lesson runs, each trained in a fresh process per measurement, the variants alternating, every
variant measured `--repeats` times (median reported):
- LeNet-5, the lecture's recipe, 2 epochs on all 60,000 MNIST images (validation on 5,000 after each);
- VGG19 as the vgg19 lesson trains it (32 px, width 0.25, He initialisation, Adam 0.0001), 1 epoch on
  5,000 CIFAR-10 images (validation on 1,000).

Variants:
- `plain`: the same network (`cnnlab.build_model`) compiled the same way and trained with Keras's own
  `model.fit(..., validation_data=...)`: what cnnlab adds (its listener, its evaluation) is not there;
- `cnnlab`: `cnnlab.train`, as the app runs it;
- `threads`: the same, with TF_NUM_INTRAOP_THREADS=2 and TF_NUM_INTEROP_THREADS=1;
- `eval-1024`: the same, with the evaluation after each epoch in batches of 1,024 instead of the run's 128;
- `torch`: the same, with KERAS_BACKEND=torch (PyTorch's CPU build: `pip install torch==2.13.0`).

    PYTHONPATH=. python bench/lesson_speed.py [--repeats 2] [--only lenet]

Writes bench/results/lesson_speed.json and prints a markdown table: seconds of training (fit) and of
the whole process, and each variant's ratio to `plain` on TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

from common import RESULTS, worker_env, worker_result, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

RUNS = {"lenet": ("lenet-lecture", "lecture", {"epochs": 2}), "vgg19": ("vgg19", "stable-he", {"epochs": 1})}
VARIANTS = {"plain": {}, "cnnlab": {}, "threads": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
            "eval-1024": {}, "torch": {"KERAS_BACKEND": "torch"}}


def worker(run_name: str, variant: str) -> dict:
    """In a fresh process: one lesson run trained one way; training seconds."""
    import keras

    import cnnlab
    from cnnlab import lessons, training

    name, label, overrides = RUNS[run_name]
    lesson = lessons.get_lesson(name)
    config = dataclasses.replace(lesson.config(lesson.run(label), lessons.preset(lesson).settings), **overrides)
    config = config.resolved()
    if variant == "plain":
        data = cnnlab.load_dataset(config.dataset).sample(config.sample, seed=config.seed)
        keras.utils.set_random_seed(config.seed)
        model = cnnlab.build_model(config.model)
        one_hot = cnnlab.get_architecture(config.model.arch).labels == "one-hot"
        y, y_test = ((keras.utils.to_categorical(v, 10) for v in (data.y_train, data.y_test)) if one_hot
                     else (data.y_train, data.y_test))
        model.compile(optimizer=training.make_optimizer(config, None),
                      loss="categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(data.x_train, y, batch_size=config.batch_size, epochs=config.epochs,
                  validation_data=(data.x_test, y_test), verbose=0)
        return {"train_seconds": time.perf_counter() - start, "backend": keras.backend.backend()}
    if variant == "eval-1024":
        evaluate = training.evaluate_predictions
        training.evaluate_predictions = lambda model, x, y, batch_size: evaluate(model, x, y, 1024)
    run = cnnlab.train(config)
    return {"train_seconds": run.train_seconds, "test_accuracy": run.test_accuracy, "backend": keras.backend.backend()}


def measure(run_name: str, variant: str) -> dict:
    env = {**worker_env(), **VARIANTS[variant]}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", run_name, variant], env=env, capture_output=True,
                          text=True)
    result = worker_result(f"{run_name} {variant}", done.returncode, done.stdout, done.stderr)
    return result | {"process_seconds": time.perf_counter() - start, "run": run_name, "variant": variant}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=list(RUNS))
    parser.add_argument("--worker", nargs=2)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    found = []
    for run_name in [args.only] if args.only else list(RUNS):
        for repeat in range(args.repeats):
            order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))  # alternating
            for variant in order:
                found.append(measure(run_name, variant))
                print(f"{run_name} {variant}: {found[-1]['train_seconds']:.1f} s training, "
                      f"{found[-1]['process_seconds']:.1f} s in all", file=sys.stderr)
    rows = []
    for run_name in dict.fromkeys(m["run"] for m in found):
        median = {v: {k: statistics.median(m[k] for m in found if m["run"] == run_name and m["variant"] == v)
                      for k in ("train_seconds", "process_seconds")} for v in VARIANTS}
        for v in VARIANTS:
            accuracy = [m["test_accuracy"] for m in found if m["run"] == run_name and m["variant"] == v
                        and "test_accuracy" in m]
            rows.append({"run": run_name, "variant": v, **median[v],
                         "train_ratio": median[v]["train_seconds"] / median["plain"]["train_seconds"],
                         "process_ratio": median[v]["process_seconds"] / median["plain"]["process_seconds"],
                         "test_accuracy": accuracy})
    suffix = f".{args.only}" if args.only else ""
    write_json(RESULTS / f"lesson_speed{suffix}.json", {"machine": machine(), "repeats": args.repeats,
                                                         "threads_env": {k: os.environ.get(k) for k in
                                                                         VARIANTS["threads"]},
                                                         "rows": rows, "measurements": found})
    print("| run | variant | training s | of plain | whole process s | of plain | test accuracy |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['run']} | {r['variant']} | {r['train_seconds']:.1f} | {r['train_ratio']:.2f} | "
              f"{r['process_seconds']:.1f} | {r['process_ratio']:.2f} | "
              f"{', '.join(f'{a:.1%}' for a in r['test_accuracy'])} |")


if __name__ == "__main__":
    main()
