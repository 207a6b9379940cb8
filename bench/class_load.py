"""A whole class on one server, in real browsers: training speed, page renders and memory while they watch.

What: one `streamlit run` with the shipped settings (`.streamlit/`). First, in the same bench run,
one learner trains the class's run (LeNet-5, 3 epochs on 6,000 digits) alone, twice, and twice more after the
class has gone: the baseline is the median of the last three (the first also pays for TensorFlow's
first graphs, and this machine's speed drifts by 20% over minutes). Then `--learners` (30) learners
open the app over `--arrival` (20) seconds: `--trainers` (8) open the Train page, the others
browse the other pages through the sidebar, a click every 5 to 15 seconds. When the class is in,
the teacher says "press Start": the 8 do, within `--start-window` (5) seconds, with the class's
run set, and watch their runs to the end, while the others keep browsing.

Clients: real Chromium (Debian's), one browser context per learner, driven by Playwright. Each
context is its own Streamlit session with its own websocket, and runs Streamlit's real front end:
the live chart's fragment reruns on its timer, the sidebar's heartbeat, plotly redrawing the
curves, reconnects. A client that spoke Streamlit's protocol itself would have to imitate all of
that, and whatever it left out is exactly what this benchmark is for. The price: 30 tabs render on
the same 2 cores as the server. So the clients run at a lower priority (nice 10), taking what the
server leaves as they would on their own devices, and their CPU is counted apart from the server's.

Measured:
- each run's training throughput (images per second, from the run's own history, downloaded from
  the Train page as a learner would), as a ratio to the run alone: target at least 0.8;
- the browsing learners' page renders: the server's time from the click's rerun request to the
  page's last message, timed by Chromium's network layer (median and slowest; target under 2 s),
  and, apart, the time until the starved client had drawn it;
- the server's peak resident memory, and the CPU seconds of the server and of the clients;
- that every run finished, and that each trainer's Predict page lists exactly one run, its own.

How:
    python bench/class_load.py                        # 30 learners, 8 train; about 3 minutes on 2 cores
    python bench/class_load.py --learners 8 --trainers 8 --streamlit-arg=--runner.postScriptGC=true

Writes bench/results/class_load.json (other counts or arguments write a suffixed name) and prints
a summary. `tests/test_class_load.py` runs the same code with 8 trainers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from bench.common import RESULTS, proc_status_bytes, write_json  # noqa: E402
from bench.machine import machine, source  # noqa: E402
from cnnlab import i18n  # noqa: E402
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, app_server  # noqa: E402

BROWSED = ("home", "architecture", "data", "predict", "evaluate", "inside", "your_image", "zoo")  # all but Train
THINK_S = (5.0, 15.0)         # a browsing learner's pause between two clicks: a glance, not a read
CLIENT_NICE = 10              # the clients yield the CPU to the server, as if on their own devices
TICK = os.sysconf("SC_CLK_TCK")


def title(page_key: str) -> str:
    return i18n.text("app.name" if page_key == "home" else f"{page_key}.title", "en")


def sidebar_link(page, page_key: str):
    return page.locator("[data-testid='stSidebar']").get_by_role("link", name=i18n.text(f"nav.{page_key}", "en"),
                                                                  exact=True)


class Watch:
    """Samples, twice a second, the server's resident memory and CPU time, its training workers' included,
    and the CPU time of every other process this one started (Playwright's driver and Chromium's)."""

    def __init__(self, server_pid: int):
        self.server_pid, self.peak_rss = server_pid, 0
        self.server_family: set[int] = set()  # the server and every process it started (its training workers)
        self.spared: set[str] = set()  # autogroups left at normal priority: the server's, the observers' browser
        self.cpu: dict[int, float] = {}   # pid: CPU seconds, the last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.5)

    def sample(self):
        family = descendants(os.getpid())
        server = {self.server_pid} | descendants(self.server_pid)  # with its training workers, if it has them
        self.server_family |= server
        for pid in family:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                self.cpu[pid] = seconds
            if pid not in self.server_family:
                yield_cpu(pid, self.spared | {autogroup(self.server_pid)})
        rss = sum(proc_status_bytes(pid, "VmRSS") or 0 for pid in server)
        self.peak_rss = max(self.peak_rss, rss)

    def server_cpu(self) -> float:
        return sum(s for pid, s in self.cpu.items() if pid in self.server_family)

    def client_cpu(self) -> float:
        own = os.times()
        return sum(s for pid, s in self.cpu.items() if pid not in self.server_family) + own.user + own.system


def descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def autogroup(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
    except (OSError, IndexError):
        return None


def yield_cpu(pid: int, spared: set) -> None:
    """Lower a client's priority. Playwright starts Chromium in a session of its own, and Linux's
    autogroup scheduler shares the CPU between sessions first, whatever their processes' nice
    values: so the nice value is set on Chromium's autogroup (never on a spared one: the server's,
    the observers')."""
    group = autogroup(pid)
    if group in spared:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, CLIENT_NICE)
        if group is not None:
            Path(f"/proc/{pid}/autogroup").write_text(str(CLIENT_NICE))
    except OSError:
        pass  # gone already, or not allowed: it then competes as an equal


def spare(pids: set[int], server_group: str | None) -> set[str]:
    """The autogroups of `pids` (other than the server's), back at normal priority and kept there."""
    groups = {autogroup(pid) for pid in pids} - {None, server_group}
    for pid in pids:
        if autogroup(pid) in groups:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, 0)
                Path(f"/proc/{pid}/autogroup").write_text("0")
            except OSError:
                pass
    return groups


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


async def settle(page, expected_title: str | None = None, timeout_s: float = 90) -> None:
    """Until the page shows its title and the app has stopped running the script."""
    await page.wait_for_function(
        "t => { const h = document.querySelector('h1'); return h && (t === null || h.innerText.trim() === t); }",
        arg=expected_title, timeout=timeout_s * 1000, polling=100)
    await page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stStatusWidget']\")"
        " && !document.querySelector(\"[data-stale='true']\")",
        timeout=timeout_s * 1000, polling=100)


class ServerTimes:
    """How long the server takes to answer a page: from the browser sending a rerun request to its
    receiving the run's `script_finished`, both timed by Chromium's network layer (DevTools'
    frame timestamps). That keeps the server's time apart from the time a busy client then takes
    to draw, which on a learner's own device is that device's business."""

    def __init__(self):
        self.sent_at: float | None = None
        self.answered = asyncio.Event()
        self.seconds: float | None = None

    async def attach(self, context, page):
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.webSocketFrameSent", self._sent)
        cdp.on("Network.webSocketFrameReceived", self._received)
        await cdp.send("Network.enable")

    def expect(self):
        self.sent_at, self.seconds = None, None
        self.answered.clear()

    def _sent(self, event):
        message = _decode(BackMsg, event)
        if message is not None and message.WhichOneof("type") == "rerun_script" and self.sent_at is None:
            self.sent_at = event["timestamp"]

    def _received(self, event):
        message = _decode(ForwardMsg, event)
        if message is not None and message.WhichOneof("type") == "script_finished" and self.sent_at is not None \
                and self.seconds is None:
            self.seconds = event["timestamp"] - self.sent_at
            self.answered.set()


def _decode(kind, event):
    frame = event["response"]
    if frame.get("opcode") != 2:  # Streamlit's messages are binary protobufs
        return None
    try:
        return kind.FromString(base64.b64decode(frame["payloadData"]))
    except Exception:  # noqa: BLE001 - a frame that does not decode is not a Streamlit message
        return None


async def new_page(browser, times: ServerTimes | None = None):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    if times is not None:
        await times.attach(context, page)
    return context, page


CLASS_RUN = {"epochs": 3, "sample": 0.1}  # 6,000 digits; the page's default is the lecture's 10 epochs on 60,000


async def class_run(page) -> None:
    """The run a teacher asks a class to start: LeNet-5 for 3 epochs on a tenth of the digits."""
    sidebar = page.locator("[data-testid='stSidebar']")
    box = sidebar.get_by_label(i18n.text("train.epochs", "en"), exact=True)
    await box.fill(str(CLASS_RUN["epochs"]))
    await box.press("Enter")
    await settle(page)  # the page reruns; a key pressed on the slider before it is drawn again is lost
    thumb = sidebar.locator("[data-testid='stSlider']").filter(has_text=i18n.text("train.sample", "en"))
    thumb = thumb.get_by_role("slider")
    await thumb.focus()
    await thumb.press("Home")        # 0.05
    await thumb.press("ArrowRight")  # 0.10
    for _ in range(100):  # the thumb says its value once the front end has moved it
        if await thumb.get_attribute("aria-valuetext") == f"{CLASS_RUN['sample']:.2f}":
            break
        await asyncio.sleep(0.1)
    await settle(page)


async def train(browser, url: str, delay_s: float, deadline: float, ready: list | None = None,
                go: asyncio.Event | None = None, arrive_s: float = 0.0) -> dict:
    """A learner who opens Train and, once told (`go`), presses Start after `delay_s`, watches the
    run to its end, keeps its history, and then looks at which runs the Predict page offers.
    `ready` gets an entry when the Train page is open."""
    await asyncio.sleep(arrive_s)
    context, page = await new_page(browser)
    page.set_default_timeout(120_000)  # a busy class is slow, not broken; the deadline decides
    step = "open the Train page"
    try:
        await page.goto(f"{url}/Train", wait_until="commit")
        await settle(page, title("train"), timeout_s=300)
        if ready is not None:
            ready.append(True)
        step = "wait for the word to start"
        if go is not None:
            await go.wait()
        await asyncio.sleep(delay_s)
        step = "choose the class's run"
        await class_run(page)
        step = "press Start"
        started = time.monotonic()
        await page.get_by_role("button", name=i18n.text("train.start", "en"), exact=True).click()
        step = "wait for the result"
        await page.get_by_text(i18n.text("evaluate.accuracy", "en")).first.wait_for(
            timeout=max(1.0, deadline - time.monotonic()) * 1000)
        finished = time.monotonic()
        step = "download the history"
        async with page.expect_download() as download:
            await page.get_by_role("button", name=i18n.text("train.download_json", "en")).click()
        history = json.loads(Path(await (await download.value).path()).read_text())
        step = "open Predict"
        await sidebar_link(page, "predict").click()
        await settle(page, title("predict"))
        await page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").first.click()
        offered = await page.get_by_role("option").all_inner_texts()
        return {"finished": True, "seconds_to_result": round(finished - started, 2),
                "images_per_second": history["result"]["images_per_second"],
                "test_accuracy": history["result"]["test_accuracy"], "predict_offers": offered}
    except Exception as error:  # noqa: BLE001 - a run that did not finish is the finding, not a crash of the bench
        return {"finished": False, "error": f"{step}: {type(error).__name__}: {str(error).splitlines()[0]}"}
    finally:
        await context.close()


async def browse(browser, url: str, rng: random.Random, arrive_s: float, done: asyncio.Event, seen: dict,
                 drawn: str = "drawn") -> None:
    """A learner who arrives after `arrive_s` and clicks through the pages other than Train until
    the class's runs are over. `seen` collects, per click, the server's answer time ("renders") and
    the time until this client had drawn the page ("drawn"), the first page's ("first", "first_drawn"),
    and what went wrong ("errors")."""
    await asyncio.sleep(arrive_s)
    times = ServerTimes()
    context, page = await new_page(browser, times)
    page.set_default_timeout(120_000)
    try:
        times.expect()
        clicked = time.monotonic()
        await page.goto(url, wait_until="commit")
        await settle(page, title("home"), timeout_s=300)
        seen["first_drawn"].append(time.monotonic() - clicked)
        await asyncio.wait_for(times.answered.wait(), 60)
        seen["first"].append(times.seconds)
        here = "home"
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), rng.uniform(*THINK_S))
                break
            except TimeoutError:
                pass
            here = rng.choice([key for key in BROWSED if key != here])
            times.expect()
            clicked = time.monotonic()
            try:
                await sidebar_link(page, here).click()
                await settle(page, title(here))
                seen[drawn].append((here, time.monotonic() - clicked))
                await asyncio.wait_for(times.answered.wait(), 60)
                seen["renders"].append((here, times.seconds))
            except Exception as error:  # noqa: BLE001 - a slow or failed page is a finding; the learner clicks on
                seen["errors"].append(f"{here}: {type(error).__name__}: {str(error).splitlines()[0]}")
    except Exception as error:  # noqa: BLE001 - likewise the first page
        seen["errors"].append(f"first page: {type(error).__name__}: {str(error).splitlines()[0]}")
    finally:
        await context.close()


async def measure(learners: int = 30, trainers: int = 8, start_window_s: float = 5.0, deadline_s: float = 900,
                  arrival_s: float = 20.0, observers: int = 2, alone: bool = True,
                  streamlit_args: tuple[str, ...] = (), log: Path | None = None) -> dict:
    """The whole measurement, for the benchmark and for the test suite."""
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with app_server(args=streamlit_args, log=log) as (url, server):
        with Watch(server.pid) as watch:
            async with async_playwright() as p:
                # The observers' own browser, at normal priority: learners whose page renders stand for
                # what a learner on their own device sees (the server's time plus one tab's drawing).
                observing = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                observers = min(observers, learners - trainers)
                watch.spared = spare(descendants(os.getpid()), autogroup(server.pid))
                browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                # Alone: a first run that also pays for TensorFlow's first graphs, then the baseline's first.
                alone_runs = [await train(browser, url, 0.0, time.monotonic() + deadline_s) for _ in range(2 * alone)]
                watch.sample()
                before = {"server_cpu_s": watch.server_cpu(), "client_cpu_s": watch.client_cpu()}
                rng, done, go, ready = random.Random(0), asyncio.Event(), asyncio.Event(), []
                seen = {key: [] for key in ("renders", "drawn", "observed", "first", "first_drawn", "errors")}
                began = time.monotonic()
                # The class arrives over `arrival_s`: some browse, the others open the Train page...
                browsing = [asyncio.create_task(browse(browser, url, random.Random(rng.random()),
                                                       arrival_s * rng.random(), done, seen))
                            for _ in range(learners - trainers - observers)]
                browsing += [asyncio.create_task(browse(observing, url, random.Random(rng.random()),
                                                        arrival_s * rng.random(), done, seen, "observed"))
                             for _ in range(observers)]
                deadline = time.monotonic() + deadline_s
                runs = [asyncio.create_task(train(browser, url, start_window_s * i / max(1, trainers - 1), deadline,
                                                  ready, go, arrival_s * rng.random()))
                        for i in range(trainers)]
                while len(ready) < trainers and not all(r.done() for r in runs) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(max(0.0, arrival_s - (time.monotonic() - began)))
                go.set()  # ...and then the teacher says "press Start": within start_window_s, they do
                pressed = time.monotonic()
                runs = await asyncio.gather(*runs)
                wall = time.monotonic() - pressed
                done.set()
                await asyncio.gather(*browsing)
                # ...and two more alone once the class has gone: this machine's speed drifts by 20%.
                alone_runs += [await train(browser, url, 0.0, time.monotonic() + deadline_s) for _ in range(2 * alone)]
                await browser.close()
                await observing.close()
            watch.sample()
    return report(alone_runs, runs, seen, watch, before, wall,
                  dict(learners=learners, trainers=trainers, observers=observers, arrival_s=arrival_s,
                       start_window_s=start_window_s, deadline_s=deadline_s,
                       streamlit_args=list(streamlit_args), think_s=list(THINK_S), client_nice=CLIENT_NICE))


def report(alone_runs, runs, seen, watch, before, wall, settings) -> dict:
    finished = [r for r in runs if r["finished"]]
    offers = [r["predict_offers"] for r in finished]
    own_only = all(len(o) == 1 for o in offers) and len({o[0] for o in offers}) == len(offers)
    alone = [r["images_per_second"] for r in alone_runs[1:] if r["finished"]]  # the first one warms the server up
    alone_speed = statistics.median(alone) if alone else None
    speeds = [r["images_per_second"] for r in finished]
    ratio = lambda v: round(v / alone_speed, 3) if alone_speed and v else None  # noqa: E731
    return {
        "settings": settings,
        "alone": {"images_per_second": alone_speed, "runs": alone_runs,
                  "what": "the median of the runs alone after the first (which warms the server up): "
                          "one before the class, two after"},
        "runs": runs,
        "all_finished": len(finished) == len(runs),
        "each_sees_only_its_own_run": own_only,
        "throughput_ratio": {"median": ratio(statistics.median(speeds)) if speeds else None,
                             "slowest": ratio(min(speeds)) if speeds else None, "target": 0.8},
        "class_wall_s": round(wall, 1),
        "page_renders_s": spread(seen["observed"]) | {
            "target": 2.0, "by_page": by_page(seen["observed"]),
            "what": "click to page drawn and idle, for the observers: "
                    "learners at normal priority in a browser of their own"},
        "server_answers_s": spread(seen["renders"]) | {
            "by_page": by_page(seen["renders"]),
            "what": "every browsing learner's click, from its rerun request to the server's last message, timed by "
                    "Chromium's network layer (which a starved client may itself delay)"},
        "clicks_per_browsing_learner_per_minute": round(
            len(seen["renders"]) / max(1, settings["learners"] - settings["trainers"]) / (wall / 60), 2),
        "page_drawn_by_load_clients_s": spread(seen["drawn"]) | {
            "what": f"until the client had drawn it, clients at nice {CLIENT_NICE} on the server's own cores"},
        "first_page_s": spread(seen["first"]) | {"what": "the server's answer to a learner's first visit"},
        "first_page_drawn_by_client_s": spread(seen["first_drawn"]),
        "browse_errors": seen["errors"],
        "server_peak_rss_gb": round(watch.peak_rss / 1e9, 3),
        "cpu_s_during_class": {"server": round(watch.server_cpu() - before["server_cpu_s"], 1),
                               "clients": round(watch.client_cpu() - before["client_cpu_s"], 1)},
    }


def by_page(timed: list) -> dict:
    pages = sorted({page for page, _ in timed})
    return {page: spread([s for p, s in timed if p == page]) for page in pages}


def spread(values: list) -> dict:
    values = [v[1] if isinstance(v, tuple) else v for v in values]
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {"count": len(values), "median": round(statistics.median(values), 2),
            "p90": round(ordered[min(len(values) - 1, int(0.9 * len(values)))], 2), "slowest": round(ordered[-1], 2)}


def summary(result: dict) -> str:
    t, r, d, f = (result[k] for k in ("throughput_ratio", "page_renders_s", "server_answers_s", "first_page_s"))
    return "\n".join([
        f"runs finished: {sum(x['finished'] for x in result['runs'])}/{len(result['runs'])}; "
        f"each sees only its own: {result['each_sees_only_its_own_run']}; "
        f"{result['class_wall_s']} s from Start to the last result",
        f"throughput while watched / alone: median {t['median']}, slowest {t['slowest']} (target >= {t['target']})",
        f"page renders (observers): median {r.get('median')} s, p90 {r.get('p90')} s, slowest {r.get('slowest')} s "
        f"over {r['count']} clicks (target < {r['target']} s); server answers to all {d['count']} clicks: "
        f"median {d.get('median')} s, slowest {d.get('slowest')} s",
        f"first visits (server): median {f.get('median')} s, slowest {f.get('slowest')} s over {f['count']}; "
        f"errors: {len(result['browse_errors'])}",
        f"server peak {result['server_peak_rss_gb']} GB; CPU during the class: server "
        f"{result['cpu_s_during_class']['server']} s, clients {result['cpu_s_during_class']['clients']} s",
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--trainers", type=int, default=8)
    parser.add_argument("--start-window", type=float, default=5.0)
    parser.add_argument("--arrival", type=float, default=20.0, help="seconds over which the class opens the app")
    parser.add_argument("--deadline", type=float, default=900, help="seconds for the whole class's runs")
    parser.add_argument("--streamlit-arg", action="append", default=[], help="another `streamlit run` option")
    parser.add_argument("--suffix", default="", help="appended to the results' file name")
    args = parser.parse_args(argv)
    log = Path(tempfile.gettempdir()) / "cnnlab_class_load_server.log"  # the server's output, if something goes wrong
    code = source()
    result = asyncio.run(measure(args.learners, args.trainers, args.start_window, args.deadline, args.arrival,
                                 streamlit_args=tuple(args.streamlit_arg), log=log))
    result = {"machine": machine() | {"load_average_1min": round(os.getloadavg()[0], 2)}, "source": code,
              "clients": "Debian Chromium, one browser context per learner, driven by Playwright", **result}
    name = "class_load" + ("" if (args.learners, args.trainers) == (30, 8) and not args.streamlit_arg else
                           f"_{args.learners}x{args.trainers}") + args.suffix
    write_json(RESULTS / f"{name}.json", result, ensure_ascii=False)
    print(summary(result))
    print(f"wrote bench/results/{name}.json")


if __name__ == "__main__":
    main()
