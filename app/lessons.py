"""The Lessons page's panels: the lesson and what the lecture found, one button that queues its runs,
their curves over each other with the full-scale runs beside them, and the claim checked on what
came out. The last finished result of each lesson is kept for the whole server, so that a teacher
can run a lesson once and every learner sees it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import streamlit as st

from cnnlab import lessons
from cnnlab.charts import per_class_bars, training_curves
from cnnlab.cost import check_fits, estimate_cost
from cnnlab.devices import backend
from cnnlab.lessons import Lesson, Preset
from cnnlab.runner import BackgroundRun, RunStatus
from cnnlab.training import Progress

from . import session
from .resources import dataset, training_pool
from .text import class_names, duration, language, say, settings_text, t
from .train import LIVE_EVERY_SECONDS, LIVE_POINTS
from .widgets import refusal

COLLAPSE_SHARE = 0.4  # a run whose most predicted class takes this much of the test images gets its shares drawn


@dataclass(frozen=True)
class Result:
    """A lesson's finished runs: each one's outcome (`lessons.outcome`) and curves, and when they ended."""

    run_ids: tuple[int, ...]
    outcomes: dict[str, dict]
    curves: dict[str, tuple[list[Progress], list[Progress]]]
    class_names: tuple[str, ...]
    finished_at: float


class Board:
    """The last finished result of each lesson on this server, shown to everyone who opens it."""

    def __init__(self):
        self._results: dict[str, Result] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Result | None:
        return self._results.get(name)

    def post(self, name: str, result: Result) -> None:
        """Keep `result` unless a later one is already there (a learner's older runs never replace it)."""
        with self._lock:
            if name not in self._results or self._results[name].finished_at < result.finished_at:
                self._results[name] = result


@st.cache_resource
def board() -> Board:
    return Board()


def choose() -> tuple[Lesson, Preset]:
    names = lessons.list_lessons()
    name = st.selectbox(t("lessons.choose"), names, format_func=lambda n: t(f"lessons.{n}.title"), key="lesson")
    lesson = lessons.get_lesson(name)
    return lesson, lessons.preset(lesson)


def describe(lesson: Lesson, found: Preset) -> None:
    """The question, what the lecture found, the claim, and the settings it was measured at."""
    st.subheader(t(f"lessons.{lesson.name}.title"))
    st.markdown(t("lessons.question", question=t(f"lessons.{lesson.name}.question")))
    st.info(t("lessons.found", found=t(f"lessons.{lesson.name}.found")))
    st.markdown(t("lessons.claim", claim="\n".join(f"- {say(c.text())}" for c in lesson.claim)))
    own = {key for run in lesson.runs for key in run.settings}  # a run's own settings are in its name
    shown = settings_text({k: v for k, v in found.settings.items() if k not in own})
    if not found.tried:
        st.warning(t("lessons.unmeasured") + " " + shown)
    else:
        st.caption(t("lessons.settings", settings=shown, seconds=duration(sum(found.seconds.values())),
                     cost=f"{sum(found.costs.values()):.1f}") + " " + t("train.backend", **backend()))
    if found.reproduced:
        st.caption(t("lessons.reproduced", held=found.held, tried=found.tried))
    elif found.tried:
        st.warning(t("lessons.not_reproduced" if found.exhausted else "lessons.not_reproduced_yet",
                     held=found.held, tried=found.tried))
    if lesson.departures:
        knobs = {k: v for run in lesson.runs for k, v in run.knobs.items() if k in lesson.departures}
        st.caption("⚠️ " + t("lessons.departures", knobs=", ".join(f"{k} = {v}" for k, v in knobs.items())))


def start(lesson: Lesson, found: Preset) -> None:
    """One button queues the lesson's runs on this server, in the order they are drawn, once each fits
    in memory; another stops them."""
    if lesson.needs_weights and not lessons.weights_here(lesson):
        st.caption(t("lessons.needs_weights"))
    mine = _my_runs(lesson)
    busy = any(run.active for run in mine.values())
    run_col, stop_col = st.columns(2)
    if run_col.button(t("lessons.run"), type="primary", key="lesson-run", help=t("lessons.run_help"),
                      disabled=busy or session.active_run() is not None or session.read_only(), width="stretch"):
        problem = lessons.missing_weights(lesson) if lesson.needs_weights else None  # fetched once, if it can be
        if problem is not None:
            st.warning(t("lessons.unavailable", problem=say(problem)))
            return
        with refusal(stop=False):
            configs = {run.label: lesson.config(run, found.settings).resolved() for run in lesson.runs}
            for config in configs.values():
                n_train, n_test = dataset(config.dataset).sizes(config.sample)
                check_fits(estimate_cost(config, n_train, n_test), config, n_train, n_test,
                           training_pool().settings.memory_reserve_bytes)
            title = t(f"lessons.{lesson.name}.title")
            started = {label: session.start_run(config, label=t("lessons.run_label", lesson=title,
                                                                 run=t(f"lessons.runs.{label}")), alone=False).id
                       for label, config in configs.items()}
            session.remember(f"lesson-runs/{lesson.name}", started)
            st.rerun()
    if stop_col.button(t("lessons.stop"), key="lesson-stop", disabled=not busy, width="stretch"):
        for run in mine.values():
            run.stop()
        st.rerun()


def live(lesson: Lesson) -> None:
    """This learner's runs of the lesson as they wait and train, redrawn every few seconds on their own;
    the whole page when one of them moves on (from the line to training, or to its end)."""
    mine = _my_runs(lesson)
    if not any(run.active for run in mine.values()):
        return
    statuses = {label: run.status for label, run in mine.items()}
    pace = min(LIVE_EVERY_SECONDS[s] for s in statuses.values() if s in LIVE_EVERY_SECONDS)

    @st.fragment(run_every=pace)
    def view():
        for run in session.runs():  # every run of this workspace is still watched, not only this lesson's
            if run.active:
                run.touch()
        runs = _my_runs(lesson)
        if {label: run.status for label, run in runs.items()} != statuses:
            st.rerun()
        st.info(t("lessons.running"))
        for label, run in runs.items():
            if run.status == RunStatus.QUEUED:
                place = training_pool().place_in_line(run)
                text = t("train.waiting", place=place) if place else t("train.starting")
                st.progress(0.0, text=f"{t(f'lessons.runs.{label}')}: {text}")
            else:
                fraction = run.progress.fraction if run.progress else 0.0
                st.progress(fraction, text=f"{t(f'lessons.runs.{label}')}: {fraction:.0%}")
        _curves(lesson, {label: (run.batches, run.epochs) for label, run in runs.items()}, key="lesson-live")

    view()


def result(lesson: Lesson) -> None:
    """The claim checked on this learner's finished runs (kept for everyone), else the server's last result."""
    ids = session.recall(f"lesson-runs/{lesson.name}", {})
    mine = _my_runs(lesson)
    if any(run.active for run in mine.values()):
        return
    own = None
    if ids and len(mine) < len(lesson.runs):
        st.info(t("lessons.let_go"))  # this session kept newer runs instead
    elif mine:
        unfinished = [f"#{run.id} {t(f'runs.status.{run.status}')}" for run in mine.values()
                      if run.status != RunStatus.DONE or not run.trained]
        if unfinished:
            st.warning(t("lessons.incomplete", runs=", ".join(unfinished)))
        else:
            own = _post(lesson, mine)
    shown = own or board().get(lesson.name)
    if shown is None:
        _curves(lesson, {}, key="lesson-reference")
        return
    st.subheader(t("lessons.result_header"))
    if shown.run_ids != tuple(run.id for run in mine.values()):
        st.caption(t("lessons.shared", when=time.strftime("%H:%M", time.localtime(shown.finished_at))))
    _verdict(lesson, shown)


def _post(lesson: Lesson, mine: dict[str, BackgroundRun]) -> Result:
    """This learner's finished runs as a result, put on the server's board once."""
    ids = tuple(run.id for run in mine.values())
    posted = st.session_state.setdefault("lesson-posted", {})
    if ids not in posted:
        first = next(iter(mine.values()))
        posted[ids] = Result(ids, {label: lessons.outcome(run.run) for label, run in mine.items()},
                             {label: (list(run.batches), list(run.epochs)) for label, run in mine.items()},
                             tuple(first.run.class_names), max(run.finished or 0.0 for run in mine.values()))
        board().post(lesson.name, posted[ids])
    return posted[ids]


def _verdict(lesson: Lesson, shown: Result) -> None:
    _curves(lesson, shown.curves, key="lesson-result")
    verdict = lesson.check(shown.outcomes)
    if verdict.held:
        st.success(t("lessons.verdict_held"))
    else:
        st.warning(t("lessons.verdict_failed"))
    st.markdown("\n".join("- " + t("lessons.measured", mark="✅" if ok else "❌", condition=say(c.text()),
                                   value=c.shown(v)) for c, v, ok in verdict.lines))
    columns = st.columns(len(lesson.runs))
    for column, run in zip(columns, lesson.runs, strict=True):
        done = shown.outcomes[run.label]
        column.metric(t("lessons.accuracy", run=t(f"lessons.runs.{run.label}")), f"{done['test_accuracy']:.1%}",
                      help=duration(done["seconds"]))
    for run in lesson.runs:
        shares = shown.outcomes[run.label]["shares"]
        if max(shares) >= COLLAPSE_SHARE:
            st.caption(t("lessons.shares", run=t(f"lessons.runs.{run.label}")))
            st.plotly_chart(per_class_bars(shares, class_names(shown.class_names), lang=language()), width="stretch",
                            key=f"shares-{run.label}")
    st.markdown(t("lessons.why", why=t(f"lessons.{lesson.name}.explain")))


def _curves(lesson: Lesson, curves: dict, key: str) -> None:
    """The lesson's runs over each other, and the full-scale runs dashed, each in its run's colour."""
    order = [run.label for run in lesson.runs]
    references = [(t("lessons.reference", run=t(f"lessons.runs.{run.reference}")), order.index(run.label), recorded)
                  for run, recorded in lessons.reference_runs(lesson)]
    if not curves and not references:
        return
    drawn = [label for label in order if label in curves]
    st.plotly_chart(training_curves([(t(f"lessons.runs.{label}"), *curves[label]) for label in drawn],
                                    lang=language(), points=LIVE_POINTS, references=references,
                                    colours=[order.index(label) for label in drawn]), width="stretch", key=key)
    if references:
        st.caption(t("lessons.reference_source"))


def _my_runs(lesson: Lesson) -> dict[str, BackgroundRun]:
    """This learner's latest runs of the lesson, by run label (those still kept in the session)."""
    ids = session.recall(f"lesson-runs/{lesson.name}", {})
    by_id = {run.id: run for run in session.runs()}
    return {label: by_id[i] for label, i in ids.items() if i in by_id}
