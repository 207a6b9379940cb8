"""App render times: each page's first render for a new learner, and the Architecture page's knobs.

What: under Streamlit's AppTest, in one process,
  1. the first render of every page in the app's navigation (`app.nav.PAGES`: Home, Architecture, Data,
     Train, Predict, and any page added there) for a new session:
     a fresh AppTest each time, so Session State is empty, while the server-wide caches
     (st.cache_resource, st.cache_data) stay warm, as on a running server;
  2. the rerun after a knob change on the Architecture page, for every architecture: the input size
     (native + 16 pixels) and the width multiplier (0.5; keras-vgg19-notop has no width knob);
  3. a baseline from the same run: a trivial script (`st.title`), its first render in a fresh
     AppTest and a plain rerun, so every time is also given as a ratio to it.

Why: the targets are under 2 s for a page's first render and under 1 s for a knob change. The
baseline shows how much of each time is AppTest's own cost (a fresh AppTest's first run scans the
installed packages for components, about 0.35 s here, which a running server does once at start)
and lets runs on machines of different speed be compared.

How: TensorFlow, Keras and cnnlab are imported first (that import is timed, but excluded from the
results on purpose), then one untimed warm-up round renders every page and turns every knob. Each
of the following rounds times everything once, in the same order: the baseline, the pages, the
knobs. Each time is the wall-clock time of one `AppTest.run()`, that is the server-side script run
and the delta messages it produces, not the browser's paint. The process CPU time of the same call
is kept too: it is less sensitive to other work on the machine. Times are never asserted; a target
is "met" when the median is under it.

    PYTHONPATH=. python bench/app_render.py               # 5 timed rounds, about 1 minute on 2 cores
    PYTHONPATH=. python bench/app_render.py --repeat 9
    PYTHONPATH=. python bench/app_render.py --quick       # 1 timed round, a smoke check

Writes bench/results/app_render.json (a --quick run writes app_render.quick.json, which git
ignores) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, open_page, write_json  # bench/ is on sys.path when a script here runs
from machine import machine, source

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ARCHITECTURE = "pages/1_Architecture.py"
TRIVIAL_SCRIPT = "import streamlit as st\nst.title('x')"
FIRST_RENDER_TARGET_S = 2.0
KNOB_TARGET_S = 1.0
SIZE_STEP = 16       # the input-size knob goes from the paper's size to this many pixels more
WIDTH = 0.5          # the width knob goes from 1.0 to this
TIMEOUT_S = 120      # AppTest's per-run limit; far above any time measured here
REPEAT = 5


# ---------------------------------------------------------------- one timed AppTest run

class Timings:
    """Wall-clock and process CPU seconds of repeated runs of one thing, and any errors they raised."""

    def __init__(self):
        self.wall_s, self.cpu_s, self.errors = [], [], []

    def run(self, at):
        wall, cpu = time.perf_counter(), time.process_time()
        at.run()
        self.wall_s.append(round(time.perf_counter() - wall, 4))
        self.cpu_s.append(round(time.process_time() - cpu, 4))
        self.errors += [e.message for e in at.exception]
        return at

    def summary(self, target_s: float | None, baseline_s: float) -> dict:
        median = statistics.median(self.wall_s)
        out = {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "median_s": round(median, 4),
               "max_s": max(self.wall_s), "median_cpu_s": round(statistics.median(self.cpu_s), 4),
               "ratio_to_baseline": round(median / baseline_s, 2), "over_baseline_s": round(median - baseline_s, 4),
               "errors": sorted(set(self.errors))}
        if target_s is not None:
            out |= {"target_s": target_s, "target_met": median < target_s, "max_under_target": out["max_s"] < target_s}
        return out


# ---------------------------------------------------------------- what one round measures

def time_baseline(first: Timings, rerun: Timings) -> None:
    from streamlit.testing.v1 import AppTest

    at = first.run(AppTest.from_string(TRIVIAL_SCRIPT, default_timeout=TIMEOUT_S))
    rerun.run(at)


def time_first_renders(pages: dict[str, Timings]) -> None:
    paths = app_pages()
    for name, timings in pages.items():
        timings.run(open_page(paths[name], TIMEOUT_S))


def app_pages() -> dict[str, str]:
    """Every page in the app's navigation, by name: {"home": "streamlit_app.py", ...}."""
    from app import nav

    return {name: path for path, name, _ in nav.PAGES}


def time_knobs(knobs: dict[tuple[str, str], Timings], problems: list[str]) -> None:
    """Per architecture: select it (untimed), then time the rerun after each knob change."""
    import cnnlab

    for arch in dict.fromkeys(arch for arch, _ in knobs):
        at = open_page(ARCHITECTURE, TIMEOUT_S).run()
        at.selectbox[0].set_value(arch).run()
        size = at.number_input(key=f"size-{arch}")
        turn(at, size, cnnlab.ARCHITECTURES[arch].input_size + SIZE_STEP, knobs[arch, "size"], problems)
        if (arch, "width") in knobs:
            turn(at, at.slider(key=f"width-{arch}"), WIDTH, knobs[arch, "width"], problems)


def turn(at, widget, value, timings: Timings, problems: list[str]) -> None:
    """Set one knob and time the rerun; note it if the metrics above the layer table stayed the same."""
    before = metrics(at)
    widget.set_value(value)
    timings.run(at)
    if metrics(at) == before:
        problems.append(f"{widget.key} = {value}: the metrics above the layer table did not change")


def metrics(at) -> tuple[str, ...]:
    """Parameters, multiply-accumulates and activations as the page shows them."""
    return tuple(m.value for m in at.metric)


def knob_names() -> list[tuple[str, str]]:
    import cnnlab

    # The lab's own networks; Keras's applications (the Zoo's) are built from their full graphs and
    # have fixed widths (the page disables the width knob for them and for keras-vgg19-notop).
    return [(arch.name, knob) for arch in cnnlab.ARCHITECTURES.values() if arch.application is None
            for knob in ("size", "width") if not (knob == "width" and arch.fixed_width)]


def new_round() -> dict:
    return {"baseline_first": Timings(), "baseline_rerun": Timings(),
            "pages": {name: Timings() for name in app_pages()}, "knobs": {key: Timings() for key in knob_names()}}


def measure_round(timings: dict, problems: list[str]) -> None:
    time_baseline(timings["baseline_first"], timings["baseline_rerun"])
    time_first_renders(timings["pages"])
    time_knobs(timings["knobs"], problems)


# ---------------------------------------------------------------- setup, report

def import_app_dependencies() -> float:
    """Import what the pages import, before anything is timed; returns the seconds it took."""
    start = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import app.nav  # noqa: F401
    import cnnlab  # noqa: F401
    return round(time.perf_counter() - start, 2)


def quiet_streamlit() -> None:
    import streamlit as st
    from streamlit import logger

    st.set_option("client.showErrorDetails", "full")  # a page's exception, with its message
    logger.set_log_level("error")  # AppTest's "missing ScriptRunContext" warnings; after set_option, which resets it


def report(timed: dict, warmup: dict, import_s: float, load: dict, code: dict, problems: list[str]) -> dict:
    first_s = statistics.median(timed["baseline_first"].wall_s)
    rerun_s = statistics.median(timed["baseline_rerun"].wall_s)
    return {
        "machine": machine() | {"load_average_1min": load}, "source": code,
        "method": "wall-clock seconds of one AppTest.run(): server-side script time, not browser paint",
        "repeat": len(timed["baseline_first"].wall_s), "import_seconds_excluded": import_s,
        "size_knob": f"native input size + {SIZE_STEP} px", "width_knob": WIDTH,
        "baseline": {"script": TRIVIAL_SCRIPT,
                     "first_render": timed["baseline_first"].summary(None, first_s),
                     "rerun": timed["baseline_rerun"].summary(None, rerun_s)},
        "first_render": {name: t.summary(FIRST_RENDER_TARGET_S, first_s) for name, t in timed["pages"].items()},
        "knob_change": {f"{arch}/{knob}": t.summary(KNOB_TARGET_S, rerun_s)
                        for (arch, knob), t in timed["knobs"].items()},
        "warmup_round_wall_s": {"first_render": {n: t.wall_s[0] for n, t in warmup["pages"].items()},
                                "knob_change": {f"{a}/{k}": t.wall_s[0] for (a, k), t in warmup["knobs"].items()}},
        "problems": problems,
    }


def table(result: dict) -> str:
    lines = ["| what | median (s) | max (s) | median CPU (s) | × baseline | over baseline (s) | target | met |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    rows = [(f"baseline: trivial script, {kind.replace('_', ' ')}", s) for kind, s in result["baseline"].items()
            if kind != "script"]
    rows += [(f"first render: {name}", s) for name, s in result["first_render"].items()]
    rows += [(f"knob change: {name}", s) for name, s in result["knob_change"].items()]
    for what, s in rows:
        target, met = (f"< {s['target_s']:g} s", verdict(s)) if "target_s" in s else ("", "")
        lines.append(f"| {what} | {s['median_s']:.3f} | {s['max_s']:.3f} | {s['median_cpu_s']:.3f} "
                     f"| {s['ratio_to_baseline']:.2f} | {s['over_baseline_s']:.3f} | {target} | {met} |")
    return "\n".join(lines)


def verdict(s: dict) -> str:
    """Met when the median is under the target; says so when the slowest run was not."""
    return ("yes" if s["target_met"] else "**no**") + ("" if s["max_under_target"] else " (max over)")


def all_errors(result: dict) -> list[str]:
    sections = [result["baseline"]["first_render"], result["baseline"]["rerun"],
                *result["first_render"].values(), *result["knob_change"].values()]
    return result["problems"] + [error for s in sections for error in s["errors"]]


def main(argv=None) -> None:
    args = parse(argv)
    repeat = 1 if args.quick else args.repeat
    sys.path.insert(0, str(ROOT))  # the pages import app and cnnlab from the repository root
    import_s = import_app_dependencies()
    quiet_streamlit()
    load, code = {"start": round(os.getloadavg()[0], 2)}, {"start": source()}
    problems: list[str] = []
    warmup, timed = new_round(), new_round()
    print("warm-up round ...", file=sys.stderr, flush=True)
    measure_round(warmup, problems)
    for i in range(repeat):
        print(f"round {i + 1}/{repeat} ...", file=sys.stderr, flush=True)
        measure_round(timed, problems)
    load["end"], code["end"] = round(os.getloadavg()[0], 2), source()
    if code["end"] != code["start"]:
        problems.append("the code changed during the run: compare source.start and source.end")
    result = report(timed, warmup, import_s, load, code, sorted(set(problems)))
    out = write_json(Path(args.out or RESULTS / ("app_render" + ".quick" * args.quick + ".json")), result)
    print(table(result) + f"\n\nwritten to {out}")
    for error in all_errors(result):
        print(f"PROBLEM: {error}", file=sys.stderr)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=REPEAT, help=f"timed rounds (default {REPEAT})")
    parser.add_argument("--quick", action="store_true", help="one timed round, a smoke check")
    parser.add_argument("--out", help="results file (default: bench/results/app_render[.quick].json)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


if __name__ == "__main__":
    main()
