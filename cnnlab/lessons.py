"""Lessons: the questions the lecture raises, as data, each answered by runs a learner can start.

A lesson compares a few runs (an architecture, a recipe, its settings) and states a claim about how
they end, such as "the lecture's rate collapses onto one class; Adam at 0.0001 learns". The claim is
checked on the finished runs, with the numbers that came out.

The settings a lesson runs at (its preset) are not guessed: `bench/lessons.py` tries each lesson's
candidate settings on a 2-core CPU, three seeds each, and writes every run it measured to
`bundled/lesson_sweep.json`. A lesson's preset is its cheapest candidate whose claim held for every
seed there, within the budget; where none did, the lesson says so and offers the closest live
variant. Its text (title, question, what the lecture found, what it shows) is `lessons.<name>.*`
in the catalogues.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from . import checks
from .architectures import Classroom, ModelConfig, get_architecture
from .architectures.factory import weights_file
from .data import BUNDLED_DIR
from .errors import LabError, Text
from .pretrained import cached_path
from .training import Run, TrainConfig

SWEEP_FILE = BUNDLED_DIR / "lesson_sweep.json"
REFERENCE_FILE = BUNDLED_DIR / "reference_runs.json"
SEEDS_NEEDED = 3       # a claim is reproduced when it held for this many seeds, and for every seed tried
RUN_BUDGET = 1.0       # one run, in units of the lecture's whole LeNet-5 run on the same machine
LESSON_BUDGET = 2.0    # all of a lesson's runs together
NOISE = 0.1            # a machine's own spread: the same run's time varies by this much from one try to the next
# The settings a lesson fixes; any left out are these.
DEFAULT_SETTINGS = {"input_size": None, "width": 1.0, "sample": 1.0, "epochs": None, "batch_size": 128}
MEASURES = ("accuracy", "largest_share")


@dataclass(frozen=True)
class LessonRun:
    """One run of a lesson. `settings` are this run's own, over the lesson's (a smaller sample, say);
    `reference` names the recipe of the full-scale run drawn beside it. Its label's text is
    "lessons.runs.<label>"."""

    label: str
    arch: str
    recipe: str
    knobs: Mapping = field(default_factory=dict)
    settings: Mapping = field(default_factory=dict)
    reference: str | None = None


@dataclass(frozen=True)
class Condition:
    """One part of a claim: a run's test accuracy or the share of the test images its most predicted
    class took, at least or at most a value; with `than`, the difference from another run's."""

    run: str
    measure: str
    at_least: float | None = None
    at_most: float | None = None
    than: str | None = None

    def value(self, outcomes: Mapping[str, Mapping]) -> float:
        value = _measure(outcomes[self.run], self.measure)
        return value - _measure(outcomes[self.than], self.measure) if self.than else value

    def shortfall(self, outcomes: Mapping[str, Mapping]) -> float:
        """How far the measured value is from meeting the condition (0 when it is met)."""
        value = self.value(outcomes)
        return max(0.0, (self.at_least - value) if self.at_least is not None else 0.0,
                   (value - self.at_most) if self.at_most is not None else 0.0)

    def holds(self, outcomes: Mapping[str, Mapping]) -> bool:
        value = self.value(outcomes)
        return (self.at_least is None or value >= self.at_least - 1e-9) and \
               (self.at_most is None or value <= self.at_most + 1e-9)

    def text(self) -> Text:
        """The condition in words: "stable: test accuracy at least 30%"."""
        bound = "at_least" if self.at_least is not None else "at_most"
        limit = self.at_least if self.at_least is not None else self.at_most
        if self.than is None:
            return Text(f"lessons.condition.{self.measure}_{bound}", run=Text(f"lessons.runs.{self.run}"),
                        limit=self.shown(limit))
        if bound == "at_least" and limit < 0:
            bound = "not_below"  # "at least -1 point above" reads "at most 1 point below"
        return Text(f"lessons.condition.{self.measure}_than_{bound}", run=Text(f"lessons.runs.{self.run}"),
                    than=Text(f"lessons.runs.{self.than}"), limit=f"{abs(limit) * 100:.1f}")

    def shown(self, value: float) -> str:
        """A value of this condition's measure as a learner reads it: 30.9%, or +3.2 points."""
        return f"{value * 100:+.1f}" if self.than else f"{value:.1%}"


@dataclass(frozen=True)
class Lesson:
    name: str
    runs: tuple[LessonRun, ...]
    claim: tuple[Condition, ...]
    candidates: tuple[Mapping, ...]     # the settings the sweep tries
    departures: tuple[str, ...] = ()    # knobs set away from the lecture's code
    needs_weights: bool = False         # trains on ImageNet weights, which a server may not have
    default_for: Mapping = field(default_factory=dict)  # architecture -> the run the Train page starts from
    fix: tuple[str, str] | None = None  # (a run that collapses, the run that shows what helps it)

    def run(self, label: str) -> LessonRun:
        return next(r for r in self.runs if r.label == label)

    def config(self, run: LessonRun, settings: Mapping, seed: int = 0) -> TrainConfig:
        """The TrainConfig of one of this lesson's runs at `settings`."""
        s = settled({**settings, **run.settings})
        return TrainConfig(ModelConfig(run.arch, input_size=s["input_size"], width=s["width"], knobs=dict(run.knobs)),
                           recipe=run.recipe, epochs=s["epochs"], batch_size=s["batch_size"], sample=s["sample"],
                           seed=seed)

    def check(self, outcomes: Mapping[str, Mapping]) -> Verdict:
        """The claim, checked on the runs' outcomes (see `outcome`): each condition with its value."""
        lines = tuple((c, c.value(outcomes), c.holds(outcomes)) for c in self.claim)
        return Verdict(all(ok for *_, ok in lines), lines)


@dataclass(frozen=True)
class Verdict:
    held: bool
    lines: tuple[tuple[Condition, float, bool], ...]


@dataclass(frozen=True)
class Trial:
    """One candidate setting as the sweep measured it: per seed, each run's outcome."""

    settings: dict
    seeds: dict[int, dict[str, dict]]

    def cost(self, label: str) -> float:
        """A run's cost at these settings: its median over the seeds, in lecture LeNet-5 runs."""
        return statistics.median(runs[label]["cost"] for runs in self.seeds.values() if label in runs)

    def seconds(self, label: str) -> float:
        return statistics.median(runs[label]["seconds"] for runs in self.seeds.values() if label in runs)


@dataclass(frozen=True)
class Preset:
    """A lesson's settings, and what the sweep found at them."""

    settings: dict
    reproduced: bool          # the claim held for SEEDS_NEEDED seeds of as many, within the budget
    held: int                 # seeds whose runs bore the claim out
    tried: int                # seeds measured with every run of the lesson
    costs: dict[str, float]   # per run, in lecture LeNet-5 runs
    seconds: dict[str, float]  # per run, on the machine the sweep ran on
    within_budget: bool
    accuracies: dict[str, list[float]]  # per run, its test accuracy with each seed measured
    exhausted: bool = True    # every candidate was measured, or dropped for costing more than the budget
    shortfall: float = 0.0    # how far, on average over its seeds, the runs were from bearing the claim out


def settled(settings: Mapping) -> dict:
    """Every setting a lesson fixes, filled in; unknown names are refused."""
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(f"unknown lesson settings: {sorted(unknown)}")
    return {**DEFAULT_SETTINGS, **settings}


def run_key(config: TrainConfig) -> str:
    """What identifies a measured run in the sweep: its architecture, recipe, knobs, settings and seed,
    every default filled in."""
    config = config.resolved()
    m = config.model
    return json.dumps({"arch": m.arch, "recipe": config.recipe, "knobs": dict(sorted(m.knobs.items())),
                       "input_size": m.input_size, "width": m.width, "sample": config.sample, "epochs": config.epochs,
                       "batch_size": config.batch_size, "seed": config.seed}, sort_keys=True)


def outcome(run: Run) -> dict:
    """What a lesson checks of a finished run: test accuracy, the share of the test images each class
    was predicted for, the seconds it trained, and its validation accuracy after every epoch."""
    predicted = np.asarray(run.test_predictions if run.test_predictions is not None else [], dtype=np.int64)
    shares = np.bincount(predicted, minlength=len(run.class_names)) / max(1, len(predicted))
    return {"test_accuracy": float(run.test_accuracy or 0.0), "shares": [round(float(s), 4) for s in shares],
            "seconds": round(run.train_seconds, 1),
            "val_accuracy": [round(e["val_accuracy"], 4) for e in run.history.epochs]}


def _measure(outcome: Mapping, measure: str) -> float:
    if measure == "accuracy":
        return float(outcome["test_accuracy"])
    return float(max(outcome["shares"]))


# ---------------------------------------------------------------------------------------------------
# The lessons. Candidates are tried in order by bench/lessons.py; the preset is the cheapest that held.

def _vgg(**settings) -> dict:
    return {"input_size": 32, "width": 0.25, **settings}


HE = {"init": "he"}  # a departure from the lecture's code, which keeps Keras's Glorot initialisation
LESSONS: dict[str, Lesson] = {lesson.name: lesson for lesson in [
    Lesson("lenet-lecture",
           runs=(LessonRun("lecture", "lenet5", "seed", settings={"epochs": 10}, reference="seed"),
                 LessonRun("fast", "lenet5", "fast", settings={"epochs": 3})),
           claim=(Condition("lecture", "accuracy", at_least=0.98), Condition("fast", "accuracy", at_least=0.98)),
           candidates=({"input_size": 32},),
           default_for={"lenet5": "lecture"}),
    Lesson("lenet-1998",
           runs=(LessonRun("paper-1998", "lenet5", "seed", knobs={"activation": "sigmoid", "pooling": "average"}),
                 LessonRun("relu", "lenet5", "seed", knobs={"activation": "relu", "pooling": "average"},
                           reference="seed"),
                 LessonRun("relu-max", "lenet5", "seed", knobs={"activation": "relu", "pooling": "max"})),
           claim=(Condition("relu", "accuracy", at_least=0.03, than="paper-1998"),
                  Condition("relu-max", "accuracy", at_least=-0.01, than="relu")),
           candidates=({"input_size": 32, "sample": 0.1, "epochs": 1}, {"input_size": 32, "sample": 0.1, "epochs": 2},
                       {"input_size": 32, "sample": 1.0, "epochs": 1}),
           fix=("paper-1998", "relu")),
    Lesson("alexnet",
           runs=(LessonRun("seed", "alexnet", "seed", reference="seed"),
                 LessonRun("stable", "alexnet", "stable", reference="stable"),
                 LessonRun("paper", "alexnet", "paper", reference="paper")),
           claim=(Condition("stable", "accuracy", at_least=0.10, than="seed"),
                  Condition("stable", "accuracy", at_least=0.10, than="paper")),
           candidates=({"input_size": 163, "width": 0.25, "epochs": 3},
                       {"input_size": 163, "width": 0.25, "epochs": 3, "batch_size": 32},  # 4 times the updates
                       {"input_size": 163, "width": 0.125, "epochs": 10}),
           default_for={"alexnet": "stable"}),
    Lesson("vgg19",
           runs=(LessonRun("seed-he", "vgg19", "seed", knobs=HE, reference="seed"),
                 LessonRun("stable-he", "vgg19", "stable", knobs=HE, reference="stable")),
           claim=(Condition("seed-he", "accuracy", at_most=0.20), Condition("seed-he", "largest_share", at_least=0.40),
                  Condition("stable-he", "accuracy", at_least=0.30)),
           candidates=(_vgg(epochs=5), _vgg(epochs=8)),
           departures=("init",), default_for={"vgg19": "stable-he"}, fix=("seed-he", "stable-he")),
    Lesson("vgg19-trainable",
           runs=(LessonRun("stable-glorot", "vgg19", "stable", reference="stable"),
                 LessonRun("stable-he", "vgg19", "stable", knobs=HE)),
           claim=(Condition("stable-glorot", "accuracy", at_most=0.12),
                  Condition("stable-glorot", "largest_share", at_least=0.90),
                  Condition("stable-he", "accuracy", at_least=0.22)),
           candidates=(_vgg(epochs=5),),
           departures=("init",), fix=("stable-glorot", "stable-he")),
    Lesson("depth-data",
           runs=(LessonRun("sample-10", "vgg19", "stable", knobs=HE, settings={"sample": 0.1}),
                 LessonRun("sample-100", "vgg19", "stable", knobs=HE, settings={"sample": 1.0})),
           claim=(Condition("sample-100", "accuracy", at_least=0.08, than="sample-10"),),
           candidates=(_vgg(epochs=5),),
           departures=("init",)),
    Lesson("transfer",
           runs=(LessonRun("imagenet-base", "transfer", "stable", knobs={"base": "vgg19", "weights": "imagenet"}),
                 LessonRun("scratch", "vgg19", "stable", knobs=HE, settings={"width": 0.25})),
           claim=(Condition("imagenet-base", "accuracy", at_least=0.10, than="scratch"),),
           candidates=({"input_size": 32, "epochs": 5},),
           needs_weights=True),
]}


def weights_here(lesson: Lesson) -> bool:
    """Whether every ImageNet weights file the lesson's runs start from is on this machine already
    (nothing is downloaded to find out)."""
    for run in lesson.runs:
        config = ModelConfig(run.arch, knobs=dict(run.knobs)).resolved()
        arch = get_architecture(run.arch)
        if config.knobs.get("weights") == "imagenet" and \
                not cached_path(arch.base(config.knobs).top if arch.zoo else arch.base(config.knobs).no_top).is_file():
            return False
    return True


def missing_weights(lesson: Lesson) -> LabError | None:
    """Why a lesson cannot run on this machine: the ImageNet weights one of its runs starts from, when
    they are neither here nor downloadable (found or downloaded once otherwise). None when nothing is missing."""
    for run in lesson.runs:
        config = ModelConfig(run.arch, knobs=dict(run.knobs)).resolved()
        try:
            weights_file(get_architecture(run.arch), config)
        except LabError as problem:
            return problem
    return None


def list_lessons() -> list[str]:
    return list(LESSONS)


def get_lesson(name: str) -> Lesson:
    try:
        return LESSONS[name]
    except (KeyError, TypeError):
        raise LabError("unknown_lesson", name=checks.shown(name), names=", ".join(LESSONS)) from None


# ---------------------------------------------------------------------------------------------------
# The sweep's measurements and the presets read from them.

@cache
def sweep(path: Path = SWEEP_FILE) -> dict:
    """The committed sweep: the machine it ran on, its baselines, and every run it measured."""
    if not Path(path).is_file():
        return {"runs": []}
    return json.loads(Path(path).read_text())


def trials(lesson: Lesson, measured: Sequence[Mapping] | None = None) -> list[Trial]:
    """Each of the lesson's candidate settings with what the sweep measured of it, in candidate order."""
    by_key = {m["key"]: m for m in (sweep()["runs"] if measured is None else measured)}
    found = []
    for settings in lesson.candidates:
        seeds: dict[int, dict[str, dict]] = {}
        for seed in range(SEEDS_NEEDED * 2):
            keys = {r.label: run_key(lesson.config(r, settings, seed)) for r in lesson.runs}
            runs = {label: by_key[k] for label, k in keys.items() if k in by_key}
            if runs:
                seeds[seed] = runs
        found.append(Trial(settled(settings), seeds))
    return found


def held_seeds(lesson: Lesson, trial: Trial) -> tuple[int, int]:
    """(seeds whose runs bore the claim out, seeds measured with every run)."""
    complete = [runs for runs in trial.seeds.values() if len(runs) == len(lesson.runs)]
    return sum(lesson.check(runs).held for runs in complete), len(complete)


def preset(lesson: Lesson, measured: Sequence[Mapping] | None = None) -> Preset:
    """The cheapest candidate whose claim held for every seed (at least SEEDS_NEEDED) within the budget;
    where none did, the closest within the budget: the largest share of seeds held, then the smallest
    shortfall from the claim, then the cheapest. Where nothing was measured, the first candidate, `tried` 0."""
    presets = []
    found = trials(lesson, measured)
    exhausted = all(held_seeds(lesson, trial)[1] or _over_budget(trial) for trial in found)
    for trial in found:
        held, tried = held_seeds(lesson, trial)
        if not tried:
            continue
        costs = {r.label: round(trial.cost(r.label), 2) for r in lesson.runs}
        seconds = {r.label: round(trial.seconds(r.label), 1) for r in lesson.runs}
        within = fits_budget(list(costs.values()))
        reproduced = within and tried >= SEEDS_NEEDED and held == tried
        accuracies = {r.label: [runs[r.label]["test_accuracy"] for _, runs in sorted(trial.seeds.items())
                                if r.label in runs] for r in lesson.runs}
        complete = [runs for runs in trial.seeds.values() if len(runs) == len(lesson.runs)]
        short = statistics.mean(sum(c.shortfall(runs) for c in lesson.claim) for runs in complete)
        presets.append(Preset(trial.settings, reproduced, held, tried, costs, seconds, within, accuracies, exhausted,
                              round(short, 4)))
    if not presets:
        return Preset(settled(lesson.candidates[0]), False, 0, 0, {}, {}, False, {}, False)
    return min(presets, key=lambda p: (not p.reproduced, not p.within_budget, -p.held / p.tried, p.shortfall,
                                       sum(p.costs.values())))


@dataclass(frozen=True)
class TrainDefaults:
    """The Train page's first settings for an architecture, and the lesson run they come from."""

    classroom: Classroom
    knobs: dict
    recipe: str
    batch_size: int
    lesson: str | None = None   # None: the registry's classroom settings
    reproduced: bool = False    # the lesson's claim held at these settings; else its closest live variant


def fits_budget(costs: Sequence[float]) -> bool:
    """The budget's rule: each run's cost, and their sum, in lecture LeNet-5 runs, with the machine's noise."""
    return max(costs) <= RUN_BUDGET * (1 + NOISE) and sum(costs) <= LESSON_BUDGET * (1 + NOISE)


def _over_budget(trial: Trial) -> bool:
    """A run at these settings cost more than the budget allows one run: the sweep dropped them."""
    return any(run["cost"] > RUN_BUDGET * (1 + NOISE) for runs in trial.seeds.values() for run in runs.values())


OWN_BATCH = 16  # a few dozen photos a class: batches of 16 give several updates an epoch


def train_defaults(arch_name: str, own: bool = False) -> TrainDefaults:
    """The measured preset of the lesson run that names the architecture (`Lesson.default_for`), else
    the registry's classroom settings with the lecture's recipe. With `own`, the registry's settings
    for a learner's own photos (`Architecture.own`): no lesson measured those."""
    arch = get_architecture(arch_name)
    if own:
        return TrainDefaults(arch.own, dict(arch.own.knobs), "seed", OWN_BATCH)
    for lesson in LESSONS.values():
        label = lesson.default_for.get(arch_name)
        found = preset(lesson) if label else None
        if found is None or not found.tried:
            continue
        run = lesson.run(label)
        s = settled({**found.settings, **run.settings})
        classroom = Classroom(epochs=s["epochs"] or arch.classroom.epochs, sample=s["sample"],
                              input_size=s["input_size"], width=s["width"])
        return TrainDefaults(classroom, dict(run.knobs), run.recipe, s["batch_size"], lesson.name, found.reproduced)
    return TrainDefaults(arch.classroom, {}, "seed", DEFAULT_SETTINGS["batch_size"])


def fix_for(config: TrainConfig) -> tuple[Lesson, LessonRun, Preset] | None:
    """For a run that collapsed: the lesson that measured a run like it collapsing, and the run of that
    lesson that learnt instead, where the lesson's claim was reproduced. None where nothing measured helps."""
    arch = get_architecture(config.model.arch)
    knobs = {k.name: config.model.knobs.get(k.name, k.default) for k in arch.knobs}
    for lesson in LESSONS.values():
        if lesson.fix is None:
            continue
        collapsing, helping = (lesson.run(label) for label in lesson.fix)
        wanted = {k.name: collapsing.knobs.get(k.name, k.default) for k in arch.knobs}
        found = preset(lesson)
        if collapsing.arch == arch.name and collapsing.recipe == config.recipe and wanted == knobs and found.reproduced:
            return lesson, helping, found
    return None


# ---------------------------------------------------------------------------------------------------
# The full-scale reference runs: the lecture's own code on a GPU.

@cache
def references() -> dict:
    """The full-scale runs, as shipped: where they were measured, and each run's curves."""
    return json.loads(REFERENCE_FILE.read_text())


def reference_runs(lesson: Lesson) -> list[tuple[LessonRun, dict]]:
    """The full-scale reference runs drawn beside a lesson's runs (the lecture's code, same network and recipe)."""
    by_run = {(r["arch"], r["recipe"]): r for r in references()["runs"]}
    return [(run, by_run[(run.arch, run.reference)]) for run in lesson.runs
            if run.reference and (run.arch, run.reference) in by_run]
