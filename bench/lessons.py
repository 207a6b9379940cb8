"""The lecture's deep-network lessons on a classroom CPU: which small settings still show what the
lecture found, and what they cost against the lecture's own LeNet-5 run.

What: for each question, a few runs of `cnnlab.train` on the bundled CIFAR-10 sample (5,000 training
and 1,000 test images), each in its own fresh process: test accuracy, the share of the test images
each class was predicted for (a collapse puts one class at or near 100%), and seconds of training.
The budget of one lesson run is the lecture's whole LeNet-5 run (plain Keras, 10 epochs on 60,000
MNIST images), measured in the same bench run: `cost` is a run's seconds over the baseline's.

    PYTHONPATH=. python bench/lessons.py                       # every question, seed 0
    PYTHONPATH=. python bench/lessons.py --only vgg19 --seeds 1 2 --labels "seed, He init" "stable, He init"

Writes bench/results/lessons.json (a partial run: a name that says which part) and prints a markdown table.
This is the first step of the lesson presets: it measures the candidates; a preset is a setting
whose claim holds for every seed within the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import RESULTS, ROOT, run_worker, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

MNIST = ROOT.parent / "shared" / "datasets" / "mnist.npz"
VGG = dict(input_size=32, width=0.25, epochs=5)
VGG_LONGER = dict(VGG, epochs=8)
ALEXNET = dict(input_size=163, width=0.25, epochs=3)
# question -> runs: (label, architecture, recipe, settings, knobs). The lecture's own knobs first.
QUESTIONS = {
    "vgg19": [
        ("seed", "vgg19", "seed", VGG, {}),
        ("stable", "vgg19", "stable", VGG, {}),
        ("seed, He init", "vgg19", "seed", VGG, {"init": "he"}),
        ("stable, He init", "vgg19", "stable", VGG, {"init": "he"}),
        ("seed, He init + batch norm", "vgg19", "seed", VGG, {"init": "he", "norm": "batch"}),
        ("stable, He init + batch norm", "vgg19", "stable", VGG, {"init": "he", "norm": "batch"}),
    ],
    "vgg19-longer": [  # the He-initialised pair, whose seed run collapsed with 2 seeds of 3 in 5 epochs
        ("seed, He init", "vgg19", "seed", VGG_LONGER, {"init": "he"}),
        ("stable, He init", "vgg19", "stable", VGG_LONGER, {"init": "he"}),
    ],
    "alexnet": [
        ("seed", "alexnet", "seed", ALEXNET, {}),
        ("stable", "alexnet", "stable", ALEXNET, {}),
    ],
}


def baseline() -> float:
    """Runs in a worker: the lecture's LeNet-5, plain Keras, 10 epochs on 60,000 images; training seconds."""
    import numpy as np

    from train_memory_speed import lecture_lenet

    with np.load(MNIST) as mnist:
        arrays = tuple(mnist[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    net, (x, y), (x_test, y_test) = lecture_lenet(arrays=arrays)
    start = time.perf_counter()
    net.fit(x, y, batch_size=128, epochs=10, validation_data=(x_test, y_test), verbose=0)
    return time.perf_counter() - start


def lesson_run(arch: str, recipe: str, settings: dict, knobs: dict, seed: int) -> dict:
    """Runs in a worker: one cnnlab run on the bundled CIFAR-10 sample, and what it learnt."""
    import numpy as np

    import cnnlab

    config = cnnlab.TrainConfig(cnnlab.ModelConfig(arch, input_size=settings["input_size"], width=settings["width"],
                                                   knobs=knobs), recipe=recipe, epochs=settings["epochs"], seed=seed)
    run = cnnlab.train(config)
    shares = np.bincount(run.test_predictions, minlength=len(run.class_names)) / len(run.test_predictions)
    return {"test_accuracy": run.test_accuracy, "seconds": round(run.train_seconds, 1),
            "largest_class_share": round(float(shares.max()), 3), "shares": [round(float(s), 3) for s in shares],
            "val_accuracy": [round(e["val_accuracy"], 4) for e in run.history.epochs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(QUESTIONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--labels", nargs="+", help="only these runs of the question, e.g. 'seed, He init'")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker is not None:
        what = json.loads(args.worker[0])
        print(json.dumps(baseline() if what == "baseline" else lesson_run(*what)))
        return
    base = run_worker(__file__, json.dumps("baseline"), what="the lecture's LeNet-5")
    print(f"baseline: the lecture's LeNet-5, 10 epochs on 60,000 images: {base:.0f} s", file=sys.stderr)
    results = []
    for question, runs in QUESTIONS.items():
        if args.only and question != args.only:
            continue
        for label, arch, recipe, settings, knobs in runs:
            if args.labels and label not in args.labels:
                continue
            for seed in args.seeds:
                done = run_worker(__file__, json.dumps([arch, recipe, settings, knobs, seed]), what=label)
                done |= {"question": question, "label": label, "arch": arch, "recipe": recipe, "settings": settings,
                         "knobs": knobs, "seed": seed, "cost": round(done["seconds"] / base, 2)}
                results.append(done)
                print(f"{question} {label} seed {seed}: {done['test_accuracy']:.1%}, largest class "
                      f"{done['largest_class_share']:.0%}, {done['seconds']:.0f} s ({done['cost']:.2f} of the budget)",
                      file=sys.stderr)
    partial = args.only or args.labels or args.seeds != [0]
    name = "lessons.json" if not partial else \
        f"lessons_{args.only or 'all'}{'_some' if args.labels else ''}_seeds{'-'.join(map(str, args.seeds))}.json"
    write_json(RESULTS / name, {"machine": machine(), "baseline_seconds": round(base, 1), "runs": results})
    print("| question | run | seed | test accuracy | largest class | seconds | of the budget |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['question']} | {r['label']} | {r['seed']} | {r['test_accuracy']:.1%} | "
              f"{r['largest_class_share']:.0%} | {r['seconds']:.0f} | {r['cost']:.2f} |")


if __name__ == "__main__":
    main()
