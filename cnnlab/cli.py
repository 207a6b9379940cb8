"""python -m cnnlab: the lecture's experiments from a terminal.

    python -m cnnlab summary ARCH [--input-size N] [--width W] [--set KNOB=VALUE] [--json]
    python -m cnnlab train ARCH [--dataset ...] [--recipe ...] [--devices all] [--no-memory-check] ... --out DIR
    python -m cnnlab continue RUN --epochs N [--no-memory-check] --out DIR
    python -m cnnlab evaluate MODEL --data FILE.npz|DIR/
    python -m cnnlab predict MODEL [IMAGE...] [--data DIR/] [--top K]
    python -m cnnlab lessons
    python -m cnnlab lesson NAME [--seed N] --out DIR
    python -m cnnlab export RUN --format keras|onnx|litert|tf_saved_model --out FILE|PACKAGE.zip

Every mistake a user can make ends in one line on stderr and exit code 2. A run that would not fit
in the memory left (the app's guard, with the classroom's reserve) and an --out that cannot be
written are refused before training starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .architectures import ModelConfig, list_architectures
from .classroom import classroom_settings
from .cost import check_fits, estimate_cost
from .data import image_files, load_dataset
from .datasets import DATASETS, SOURCES
from .devices import join_processes, processes
from .errors import LabError
from .exports import FORMATS, export_file, export_package, labels_json
from .images import read_image
from .inference import evaluate_file, predict_proba, top_k
from .layer_table import layer_table
from .lessons import get_lesson, list_lessons, missing_weights, outcome, preset
from .memory import NotEnoughMemory
from .runs import bundle_of, load_trained, read_run, save_run
from .training import RECIPES, RunInterrupted, TrainConfig, train

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        command = "python -m " + self.prog
        self.exit(EXIT_USAGE, f"error: {message} (see `{command} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except (ValueError, OSError) as error:  # missing, unreadable or unwritable files included
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab",
                     description="CNN Lab: LeNet-5, AlexNet and VGG19 from the lecture, and Keras's pretrained models.")
    commands = parser.add_subparsers(required=True, parser_class=_Parser, metavar="COMMAND")

    summary = commands.add_parser("summary", help="the layer table of an architecture")
    summary.add_argument("arch", metavar="ARCH", help=f"one of: {', '.join(list_architectures())}")
    _model_options(summary)
    summary.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    summary.set_defaults(command=_summary)

    train = commands.add_parser("train", help="train an architecture and save the run")
    train.add_argument("arch", metavar="ARCH", help=f"one of: {', '.join(list_architectures(trainable=True))}")
    train.add_argument("--dataset", choices=list(DATASETS), help="default: the architecture's")
    train.add_argument("--source", choices=SOURCES, default="bundled",
                       help="bundled: the data shipped with CNN Lab; full: Keras's download")
    train.add_argument("--data", metavar="FILE.npz|DIR/",
                       help="an .npz in Keras's layout, or a folder with one folder of images per class "
                            "(a seeded, stratified 20%% of each class is held out for the test), instead of --dataset")
    train.add_argument("--sample", type=float, metavar="F", help="fraction to draw, e.g. 0.1")
    train.add_argument("--recipe", default="seed", help=f"one of: {', '.join(RECIPES)} (seed is the lecture's)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate; default: the recipe's")
    train.add_argument("--steps-per-epoch", type=int, metavar="N")
    train.add_argument("--accumulation-steps", type=int, default=1, metavar="K",
                       help="split each batch into K micro-batches (less memory, same update)")
    train.add_argument("--seed", type=int, default=0)
    _model_options(train)
    _devices_option(train)
    _memory_option(train)
    train.add_argument("--out", required=True, metavar="DIR")
    train.set_defaults(command=_train)

    resume = commands.add_parser("continue", help="train a saved run for more epochs, from where it ended")
    resume.add_argument("run", metavar="RUN", help="a run bundle (.zip) or a run directory")
    resume.add_argument("--epochs", type=int, required=True, help="epochs to train on top of the run's")
    resume.add_argument("--data", metavar="FILE.npz", help="the .npz it trained on, when not a bundled dataset")
    _devices_option(resume)
    _memory_option(resume)
    resume.add_argument("--out", required=True, metavar="DIR")
    resume.set_defaults(command=_continue)

    evaluate = commands.add_parser("evaluate", help="accuracy of a saved model on an .npz or a folder of class folders")
    evaluate.add_argument("model", metavar="MODEL", help="a run bundle (.zip), a run directory or a .keras file")
    evaluate.add_argument("--data", required=True, metavar="FILE.npz|DIR/",
                          help="keys x, y or x_test, y_test; or a folder of class folders named as the model's classes")
    evaluate.set_defaults(command=_evaluate)

    predict = commands.add_parser("predict", help="classify image files with a saved model")
    predict.add_argument("model", metavar="MODEL", help="a run bundle (.zip), a run directory or a .keras file")
    predict.add_argument("images", nargs="*", metavar="IMAGE")
    predict.add_argument("--data", metavar="DIR/", help="every image in this folder and its subfolders, too")
    predict.add_argument("--top", type=int, default=3, metavar="K")
    predict.set_defaults(command=_predict)

    lessons = commands.add_parser("lessons", help="the lessons: the lecture's questions, each answered by a few runs")
    lessons.set_defaults(command=_lessons)
    lesson = commands.add_parser("lesson", help="run a lesson's runs at its measured settings and check its claim")
    lesson.add_argument("name", metavar="NAME", help=f"one of: {', '.join(list_lessons())}")
    lesson.add_argument("--seed", type=int, default=0)
    _memory_option(lesson)
    lesson.add_argument("--out", required=True, metavar="DIR", help="each run is saved in DIR/<run>")
    lesson.set_defaults(command=_lesson)

    export = commands.add_parser("export", help="a trained model as one file to run elsewhere: raw uint8 pixels in, "
                                 "probabilities out, its preprocessing inside")
    export.add_argument("run", metavar="RUN", help="a run bundle (.zip), a run directory or a .keras file")
    export.add_argument("--format", required=True, choices=list(FORMATS))
    export.add_argument("--out", required=True, metavar="FILE",
                        help="the model file (a folder for tf_saved_model), with labels.json beside it; "
                             "or a .zip: the model, labels.json and a README.md that runs it")
    export.set_defaults(command=_export)
    return parser


def _model_options(parser):
    parser.add_argument("--input-size", type=int, metavar="N", help="default: the architecture's")
    parser.add_argument("--width", type=float, default=1.0, metavar="W", help="filters and units x W")
    parser.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                        help="an architecture setting, e.g. activation=sigmoid or weight_decay=0")


def _devices_option(parser):
    parser.add_argument("--devices", type=_devices, default=1, metavar="all|N",
                        help="split every batch across all (or N) of this machine's GPUs, else CPU devices")


def _memory_option(parser):
    parser.add_argument("--no-memory-check", dest="memory_check", action="store_false",
                        help="start even when the memory estimate says the run will not fit")


def _devices(text: str):
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or a number of devices, not {text!r}") from None


def _model_config(args):
    knobs = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LabError("cli_set", item=repr(item))
        try:
            knobs[key] = float(value)
        except ValueError:
            knobs[key] = value
    return ModelConfig(args.arch, input_size=args.input_size, width=args.width, knobs=knobs)


def _summary(args) -> int:
    table = layer_table(_model_config(args))
    if args.json:
        print(json.dumps(table.to_dict()))
    else:
        print(format_table(table))
    return 0


def format_table(table) -> str:
    """The layer table as text; networks with branches get a column naming each layer's inputs."""
    header = ("layer", "type", "output shape", "params", "MACs", "RF", "stride") + (
        () if table.is_chain else ("inputs",))
    rows = [header] + [
        (r.name + (" *" if r.kind == "preprocessing" else ""), r.type, str(r.output_shape), f"{r.params:,}",
         f"{r.macs:,}", "" if r.receptive_field is None else str(r.receptive_field),
         "" if r.effective_stride is None else str(r.effective_stride))
        + (() if table.is_chain else (", ".join(r.inputs),))
        for r in table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 3 or i == 7 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    rule = "-" * max(map(len, lines))
    lines.insert(1, rule)
    frozen = table.total_params - table.trainable_params
    lines += [rule, f"{table.arch}: {table.total_params:,} parameters"
              + (f" ({frozen:,} not trained: frozen or running statistics)" if frozen else "")
              + f", {table.total_macs:,} MACs per image"
              + ("" if table.is_chain else f", {table.weight_layers} layers with weights, "
                 f"{table.longest_path()} on the longest path")
              + ". * preprocessing inside the model; RF: receptive field in input pixels."]
    return "\n".join(lines)


def _train(args) -> int:
    config = TrainConfig(
        model=_model_config(args), dataset=args.dataset, source=args.source, data_path=args.data,
        sample=args.sample, recipe=args.recipe, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, steps_per_epoch=args.steps_per_epoch, accumulation_steps=args.accumulation_steps,
        seed=args.seed).resolved()
    return _run_and_save(config, Path(args.out), devices=args.devices, memory_check=args.memory_check)


def _continue(args) -> int:
    bundle = bundle_of(args.run)
    if bundle is None or not bundle.is_file():
        raise FileNotFoundError(f"No run bundle at {bundle or args.run}. Give the bundle.zip or the directory "
                                "`cnnlab train --out` wrote.")
    if processes() > 1 and args.devices == "all":
        join_processes()  # before reading the bundle builds a model: JAX joins the others before anything else
    earlier = read_run(bundle)
    config = dataclasses.replace(earlier.config, epochs=args.epochs, data_path=args.data).resolved()
    return _run_and_save(config, Path(args.out), resume=earlier, devices=args.devices, memory_check=args.memory_check)


def _run_and_save(config, out: Path, resume=None, devices=1, memory_check=True) -> int:
    run = _train_and_save(config, out, resume, devices, memory_check)
    if run is None:
        return 1
    print(json.dumps(run.summary()))
    return 0


def _train_and_save(config, out: Path, resume=None, devices=1, memory_check=True):
    """Train and save in `out`: the run, or None when it was interrupted (what it learnt so far is saved)."""
    created = not out.exists()
    _check_writable(out)  # fail now, not after an hour of training
    try:
        data = load_dataset(config.dataset, config.source, config.data_path, seed=config.seed)
        if memory_check:
            _check_memory(config, data, resume is None)
    except BaseException:
        if created:  # nothing trained: leave no empty folder behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    stop = threading.Event()

    def first_interrupt(*_):  # Ctrl-C: finish the batch, save, exit; a second Ctrl-C ends at once
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first_interrupt)
    try:
        run = train(config, listener=ProgressBar(sys.stderr), stop=stop, data=data, resume=resume, devices=devices)
    except RunInterrupted as interrupted:  # what it learnt so far is saved; the error is told
        save_run(interrupted.run, out)
        print(f"\nerror: training was interrupted: {interrupted.cause}\nthe run so far is saved in {out}",
              file=sys.stderr)
        return None
    finally:
        signal.signal(signal.SIGINT, previous)
    save_run(run, out)
    print(f"saved {out / 'bundle.zip'}, model.keras, history.json and run.json", file=sys.stderr)
    return run


def _lessons(args) -> int:
    """One line per lesson: its name, its runs, its measured settings and whether they show its claim."""
    for name in list_lessons():
        lesson = get_lesson(name)
        found = preset(lesson)
        verdict = "not measured" if not found.tried else \
            ("reproduced" if found.reproduced else "not reproduced") + f" ({found.held}/{found.tried} seeds)"
        shown = verdict + ", " + ", ".join(f"{k}={v}" for k, v in found.settings.items() if v is not None)
        print(f"{name:16} {' vs '.join(r.label for r in lesson.runs):40} {shown}")
    return 0


def _lesson(args) -> int:
    """Each run of the lesson at its preset, saved in DIR/<run>; then one JSON line: the claim, whether
    it held, and each run's test accuracy, seconds and predicted-class shares."""
    lesson = get_lesson(args.name)
    problem = missing_weights(lesson) if lesson.needs_weights else None
    if problem is not None:
        raise problem
    found = preset(lesson)
    if not found.tried:
        print(f"{lesson.name}: not measured on a CPU yet; running at its first candidate settings", file=sys.stderr)
    outcomes = {}
    for run in lesson.runs:
        print(f"{lesson.name}: {run.label}", file=sys.stderr)
        config = lesson.config(run, found.settings, args.seed).resolved()
        trained = _train_and_save(config, Path(args.out) / run.label, memory_check=args.memory_check)
        if trained is None:
            return 1
        outcomes[run.label] = outcome(trained)
    verdict = lesson.check(outcomes)
    print(json.dumps({"lesson": lesson.name, "claim": " and ".join(str(c.text()) for c in lesson.claim),
                      "held": verdict.held, "reproduced_in_sweep": found.reproduced, "settings": found.settings,
                      "runs": {label: {k: o[k] for k in ("test_accuracy", "seconds", "shares")}
                               for label, o in outcomes.items()}}))
    return 0


FLAGS = {"input_size": "--input-size", "width": "--width", "accumulation_steps": "--accumulation-steps",
         "sample": "--sample"}


def _check_memory(config, data, new_model: bool) -> None:
    """The app's guard: refuse a run whose estimate does not fit in the memory left here, less the
    classroom's reserve, naming the options that would fit (a continued run keeps its model)."""
    model = dataclasses.replace(config.model, raw_shape=data.image_shape, classes=data.num_classes)
    config = dataclasses.replace(config, model=model)
    n_train, n_test = data.sizes(config.sample)
    cost = estimate_cost(config, n_train, n_test, macs_per_second=1.0)  # the time does not matter here
    try:
        # A continued run keeps its network and its sample: no setting to suggest, only to wait or skip the check.
        check_fits(cost, config if new_model else None, n_train, n_test, classroom_settings().memory_reserve_bytes)
    except NotEnoughMemory as refused:
        options = [" ".join(f"{FLAGS[key]} {value:g}" for key, value in option.changes.items())
                   for option in refused.suggestions] if new_model else []
        flags = f"On the command line: {' | '.join(options)}; or " if options else "Or "
        raise LabError("cli_memory", refused=refused.text, flags=flags) from None


def _check_writable(out: Path) -> None:
    """Make the folder and write a file in it now, not after an hour of training."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".cnnlab-probe-"):
            pass
    except OSError as error:
        raise OSError(f"cannot write to {out}: {error.strerror or error}") from None


class ProgressBar:
    """A one-line progress bar on a terminal (a Listener); one line per epoch when not a terminal."""

    def __init__(self, stream, width: int = 24):
        self.stream, self.width = stream, width
        self.live = stream.isatty()

    def on_batch(self, p) -> None:
        if not self.live:
            return
        filled = int(self.width * p.step / p.steps)
        self.stream.write(f"\repoch {p.epoch}/{p.epochs} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{p.step}/{p.steps}  loss {p.loss:.4f}  acc {p.accuracy:.4f}  ETA {_clock(p.eta)} ")
        self.stream.flush()

    def on_note(self, text, lasting: bool = True) -> None:
        if lasting:
            self.stream.write(f"\r{text}\n")
        elif self.live:
            self.stream.write(f"\r{text}" + " " * 8)
        self.stream.flush()

    def on_epoch(self, p) -> None:
        self.stream.write(f"\repoch {p.epoch}/{p.epochs}  loss {p.loss:.4f}  acc {p.accuracy:.4f}  "
                          f"val_loss {p.val_loss:.4f}  val_acc {p.val_accuracy:.4f}  {_clock(p.elapsed)} elapsed"
                          + " " * 12 + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


def _evaluate(args) -> int:
    trained = load_trained(args.model)
    print(json.dumps(evaluate_file(trained.model, trained.class_names, args.data)))
    return 0


def _predict(args) -> int:
    if args.top < 1:
        raise LabError("cli_top", top=str(args.top))
    paths = list(args.images) + (image_files(args.data) if args.data is not None else [])
    if not paths:
        raise LabError("cli_no_images")
    trained = load_trained(args.model)
    images = [read_image(path, trained.image_shape) for path in paths]
    tops = top_k(predict_proba(trained.model, images), trained.class_names, args.top)
    print(json.dumps({"predictions": [{"image": str(path), "top": top} for path, top in zip(paths, tops)]}))
    return 0


def _export(args) -> int:
    """The model as --format at --out, and one JSON line naming what was written."""
    trained = load_trained(args.run)
    out = Path(args.out)
    if out.suffix == ".zip":
        package = export_package(trained.model, trained.class_names, args.format)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(package)
        written = [out]
    else:
        labels = out.parent / "labels.json"
        written = [export_file(trained.model, trained.class_names, args.format, out), labels]
        labels.write_text(labels_json(trained.model, trained.class_names), encoding="utf-8")
    print(json.dumps({"format": args.format, "written": [str(path) for path in written]}))
    return 0
