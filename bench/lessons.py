"""The lessons' presets, found by measurement: which settings still show what the lecture found on a
classroom CPU, for every seed, within the budget.

For each lesson of `cnnlab.lessons`, its candidate settings are tried in order. For a candidate, seed
0's runs train first, each in a fresh process, then seeds 1 and 2; a candidate is dropped as soon as
one seed's runs contradict the claim, or one run costs more than the budget. The first candidate
whose claim holds for 3 seeds of 3 is the lesson's preset, and the lesson moves on.

The budget of one run is the lecture's whole LeNet-5 run (plain Keras, 10 epochs on all 60,000 MNIST
images), measured at the start of the same bench run: a run's `cost` is its training seconds over
that baseline's. A lesson's runs together may cost twice that. Both bounds allow the machine's
own noise, `cnnlab.lessons.NOISE`.

Every run measured is kept in cnnlab/bundled/lesson_sweep.json, which the lessons read their presets
from; runs already there are not measured again, so the sweep can stop and go on.

    PYTHONPATH=. python bench/lessons.py                     # every lesson not settled yet
    PYTHONPATH=. python bench/lessons.py --only vgg19         # one lesson
    PYTHONPATH=. python bench/lessons.py --import bench/results/lessons.json   # runs of an earlier bench

Prints a markdown table of every setting tried.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from cnnlab import TrainConfig, lessons
from cnnlab.architectures import ModelConfig
from cnnlab.errors import LabError
from common import ROOT, run_worker  # bench/ is on sys.path when a script here runs
from machine import machine

MNIST = ROOT.parent / "shared" / "datasets" / "mnist.npz"


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


def lesson_run(name: str, label: str, settings: dict, seed: int) -> dict:
    """Runs in a worker: one run of a lesson, trained by cnnlab on its bundled data, and its outcome."""
    import cnnlab

    lesson = lessons.get_lesson(name)
    return lessons.outcome(cnnlab.train(lesson.config(lesson.run(label), settings, seed)))


def load() -> dict:
    if lessons.SWEEP_FILE.is_file():
        return json.loads(lessons.SWEEP_FILE.read_text())
    return {"what": "Every lesson run bench/lessons.py measured: its settings, seed, outcome, seconds, and cost in "
                    "lecture LeNet-5 runs measured in the same bench run (see bench/README.md).",
            "baselines": {}, "runs": []}


def save(data: dict) -> None:
    lessons.SWEEP_FILE.write_text(json.dumps(data, indent=1) + "\n")
    lessons.sweep.cache_clear()


def import_earlier(data: dict, path: str) -> None:
    """Bring in the runs of an earlier version of this bench (one entry per run, settings and knobs given)."""
    earlier = json.loads(open(path).read())
    base_id = earlier["machine"]["date"]
    data["baselines"].setdefault(base_id, {"seconds": earlier["baseline_seconds"], "machine": earlier["machine"]})
    known = {r["key"] for r in data["runs"]}
    for r in earlier["runs"]:
        settings = r["settings"]
        model = ModelConfig(r["arch"], input_size=settings["input_size"], width=settings["width"], knobs=r["knobs"])
        config = TrainConfig(model, recipe=r["recipe"], epochs=settings["epochs"], seed=r["seed"])
        key = lessons.run_key(config)
        if key not in known:
            data["runs"].append({"key": key, "test_accuracy": r["test_accuracy"], "shares": r["shares"],
                                 "seconds": r["seconds"], "val_accuracy": r["val_accuracy"], "cost": r["cost"],
                                 "baseline": base_id})
            known.add(key)


def sweep_lesson(data: dict, lesson: lessons.Lesson, base_id: str, base_seconds: float) -> None:
    measured = {r["key"]: r for r in data["runs"]}
    missing = lessons.missing_weights(lesson) if lesson.needs_weights else None
    if missing is not None:
        print(f"{lesson.name}: not measured, its ImageNet weights are not on this machine: {missing}", file=sys.stderr)
        return
    for settings in lesson.candidates:
        settled = True
        for seed in range(lessons.SEEDS_NEEDED):
            for run in lesson.runs:
                config = lesson.config(run, settings, seed)
                key = lessons.run_key(config)
                if key in measured:
                    continue
                try:
                    done = run_worker(__file__, json.dumps([lesson.name, run.label, settings, seed]),
                                      what=f"{lesson.name} {run.label}")
                except (RuntimeError, LabError) as problem:
                    print(f"{lesson.name} {run.label}: not measured: {problem}", file=sys.stderr)
                    return
                done |= {"key": key, "cost": round(done["seconds"] / base_seconds, 3), "baseline": base_id}
                data["runs"].append(done)
                measured[key] = done
                save(data)
                print(f"{lesson.name} {settings} {run.label} seed {seed}: {done['test_accuracy']:.1%}, largest class "
                      f"{max(done['shares']):.0%}, {done['seconds']:.0f} s ({done['cost']:.2f} of the budget)",
                      file=sys.stderr)
            trial = lessons.trials(lesson, data["runs"])[lesson.candidates.index(settings)]
            runs = trial.seeds.get(seed, {})
            if len(runs) < len(lesson.runs) or not lesson.check(runs).held or not lessons.fits_budget(
                    [trial.cost(run.label) for run in lesson.runs]):
                settled = False
                break
        if settled:
            return  # the cheapest candidate that held for every seed within the budget: the lesson's preset


def table(data: dict) -> str:
    lines = ["| lesson | settings | seeds held | run | test accuracy (per seed) | largest class | cost (median) |",
             "|---|---|---:|---|---|---|---:|"]
    for lesson in lessons.LESSONS.values():
        chosen = lessons.preset(lesson, data["runs"])
        for trial in lessons.trials(lesson, data["runs"]):
            if not trial.seeds:
                continue
            held, tried = lessons.held_seeds(lesson, trial)
            shown = {k: v for k, v in trial.settings.items() if v != lessons.DEFAULT_SETTINGS[k]}
            mark = " **preset**" if chosen and chosen.settings == trial.settings else ""
            for run in lesson.runs:
                found = [trial.seeds[s][run.label] for s in sorted(trial.seeds) if run.label in trial.seeds[s]]
                if not found:
                    continue
                accuracies = ", ".join(f"{r['test_accuracy']:.1%}" for r in found)
                largest = ", ".join(f"{max(r['shares']):.0%}" for r in found)
                lines.append(f"| {lesson.name}{mark} | {json.dumps(shown)} | {held}/{tried} | {run.label} | "
                             f"{accuracies} | {largest} | {trial.cost(run.label):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=lessons.list_lessons(), nargs="+")
    parser.add_argument("--import", dest="earlier", nargs="+", default=[], metavar="FILE")
    parser.add_argument("--table", action="store_true", help="print the table of what is measured, and stop")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker is not None:
        what = json.loads(args.worker[0])
        print(json.dumps(baseline() if what == "baseline" else lesson_run(*what)))
        return
    data = load()
    for path in args.earlier:
        import_earlier(data, path)
    save(data)
    if not args.table and not args.earlier:
        base_seconds = run_worker(__file__, json.dumps("baseline"), what="the lecture's LeNet-5")
        base_id = datetime.now(UTC).isoformat(timespec="seconds")
        data["baselines"][base_id] = {"seconds": round(base_seconds, 1), "machine": machine()}
        save(data)
        print(f"baseline: the lecture's LeNet-5, 10 epochs on 60,000 images: {base_seconds:.0f} s", file=sys.stderr)
        for lesson in lessons.LESSONS.values():
            if args.only is None or lesson.name in args.only:
                sweep_lesson(data, lesson, base_id, base_seconds)
    print(table(data))


if __name__ == "__main__":
    main()
