"""A class at once: many browser sessions pressing Start on one server, and what each of them sees.

What: N sessions of the real app (Streamlit's AppTest, in one server process as on Streamlit
Community Cloud) open the Train page and start a quick LeNet-5 run within a second or two. The
server's classroom settings allow `--slots` runs at a time. Measured: how many trained at the same
moment (from each run's start and end), the place in line each waiting session was shown, the
wait from Start to the first batch, the server's peak resident memory, and whether any session's
state held another's run.

Why: one process serves the whole class within 0.7 to 2.7 GB; the line must hold, memory must
stay flat in the number of sessions (only `slots` models train at once), and nobody may see
another's work.

How:
    PYTHONPATH=. python bench/classroom.py                  # 16 sessions, 2 slots, about 2 minutes on 2 cores
    PYTHONPATH=. python bench/classroom.py --sessions 8 --slots 1

Writes bench/results/classroom.json (another --sessions or --slots writes a suffixed name) and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, open_page, peak_gb, write_json  # bench/ is on sys.path when a script here runs
from machine import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()

    settings = Path(tempfile.mkdtemp()) / "classroom.toml"
    settings.write_text(f"[classroom]\nmax_concurrent_runs = {args.slots}\nabandoned_after_seconds = 600\n")
    os.environ["CNNLAB_CLASSROOM"] = str(settings)
    os.environ["CNNLAB_DATA_DIR"] = tempfile.mkdtemp(prefix="cnnlab-data-")  # the class's workspaces, new
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    from tests.test_app import runs_of  # the workspace's runs, as its pages see them

    def open_train_page():
        return open_page("pages/3_Train.py").run()

    open_train_page()  # the server starts: TensorFlow imported, datasets loaded
    baseline = peak_gb()
    sessions, pressed = [], []
    for _ in range(args.sessions):
        at = open_train_page()
        at.sidebar.number_input[0].set_value(1)        # one epoch
        at.sidebar.slider[0].set_value(0.25)           # 1,500 digits
        at.sidebar.select_slider[0].set_value(32)      # 47 batches
        next(b for b in at.button if b.label == "Start").click().run()
        sessions.append(at)
        pressed.append(time.time())
    runs = [runs_of(at)[-1] for at in sessions]
    places, first_batch = {}, {}
    deadline = time.time() + 900
    while any(run.active for run in runs) and time.time() < deadline:
        for at, run in zip(sessions, runs):
            if run.status == "queued":
                at.run()  # what the waiting learner's page shows (and its heartbeat)
                shown = [i.value for i in at.info if "in line" in i.value]
                if shown:
                    places.setdefault(run.id, set()).add(shown[0])
            elif run.active:
                run.touch()
            if run.batches and run.id not in first_batch:
                first_batch[run.id] = time.time()
        time.sleep(0.1)
    events = sorted([(r.started, 1) for r in runs] + [(r.finished, -1) for r in runs])
    most = now = 0
    for _, change in events:
        now += change
        most = max(most, now)
    own_only = all([r.id for r in runs_of(at)] == [run.id] for at, run in zip(sessions, runs))
    waits = [first_batch.get(run.id, run.finished) - start for run, start in zip(runs, pressed)]
    result = {
        "sessions": args.sessions, "slots": args.slots,
        "finished": sum(run.status == "done" for run in runs),
        "most_training_at_once": most,
        "sessions_shown_a_place_in_line": len(places),
        "places_shown": sorted({p for shown in places.values() for p in shown}),
        "each_session_holds_only_its_own_run": own_only,
        "distinct_models": len({id(run.run.model) for run in runs if run.run}),
        "wait_to_first_batch_s": {"min": round(min(waits), 1), "median": round(sorted(waits)[len(waits) // 2], 1),
                                  "max": round(max(waits), 1)},
        "server_peak_gb": {"after_start": baseline, "end": peak_gb()},
        "test_accuracy": {"min": round(min(r.run.test_accuracy for r in runs), 3),
                          "max": round(max(r.run.test_accuracy for r in runs), 3)},
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    suffix = "" if (args.sessions, args.slots) == (16, 2) else f".{args.sessions}x{args.slots}"
    write_json(RESULTS / f"classroom{suffix}.json", result)
    print("| sessions | slots | finished | most at once | shown a place | own run only | wait to first batch "
          "(min/median/max s) | server peak GB (start → end) |")
    print("|---:|---:|---:|---:|---:|---|---|---|")
    w, p = result["wait_to_first_batch_s"], result["server_peak_gb"]
    print(f"| {args.sessions} | {args.slots} | {result['finished']} | {most} | {len(places)} | {own_only} | "
          f"{w['min']} / {w['median']} / {w['max']} | {p['after_start']} → {p['end']} |")


if __name__ == "__main__":
    main()
