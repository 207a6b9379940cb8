"""Training in the background, for an app that serves many learners from one process.

A `TrainingPool` is shared by the whole server and lets at most `max_concurrent` runs train at
once; the others wait in line and know their place. Each `BackgroundRun` belongs to one learner:
it trains on its own thread, keeps its progress and curves, and stops training within one
batch when asked (the partial model is then evaluated once on the test sample). Nothing here
knows about Streamlit; a page only reads a run's state and draws it, and `touch`es it while the
learner's browser is there.

With a `Keeper` (the app's workspace store, `cnnlab.workspaces`), every run is also kept on disk:
it gets its number there, is saved at the end of every epoch and when it ends, and its status is
recorded as it changes, so a reload, another tab or a restarted server finds it. The pool knows the
runs training in this process (`live`), so every tab of a workspace watches the same run.

Every run is bounded: it stops at the classroom's maximum wall time, and when its browser tab has
gone quiet for `abandoned_after_seconds` (closed, or the network gone). A run that fails, or whose
memory estimate does not fit when its turn comes, fails alone: its partial model and curves are
kept, and its slot goes to the next in line. The settings come from `.streamlit/classroom.toml`.
"""

from __future__ import annotations

import itertools
import threading
import time
from enum import StrEnum
from typing import Protocol

from .classroom import PoolSettings
from .cost import check_fits, estimate_cost
from .data import Dataset
from .engines import SavePace, ThreadEngine
from .errors import LabError, Text
from .inference import Collapse, detect_collapse
from .snapshots import Snapshot, Snapshots
from .training import History, Progress, Run, RunInterrupted, TrainConfig


class RunStatus(StrEnum):
    """Where a run stands; its text for a learner is "runs.status.<value>" in the catalogues."""

    QUEUED = "queued"      # waiting in line for a slot
    RUNNING = "running"    # preparing or training
    DONE = "done"
    STOPPED = "stopped"    # asked to stop, by the learner or a limit: what it learnt so far is kept
    FAILED = "failed"      # refused at its turn, or interrupted by an error
    INTERRUPTED = "interrupted"  # the server stopped while it trained: kept as it was at its last finished epoch

    @property
    def active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def finished(self) -> bool:
        return not self.active


class Keeper(Protocol):
    """Where runs are kept beyond this process (`cnnlab.workspaces.Store`)."""

    def add(self, workspace: str, config: TrainConfig, label: str) -> int: ...   # a new run's number
    def started(self, run_id: int) -> None: ...
    def checkpoint(self, run_id: int, run, planned: int) -> None: ...  # an epoch has ended (a Run, or a bundle.Packed)
    def ended(self, run_id: int, background: BackgroundRun) -> None: ...         # done, stopped or failed


class BackgroundRun:
    """One learner's run: a Listener that records everything a page needs to redraw."""

    def __init__(self, run_id: int, config: TrainConfig, data: Dataset, label: str, resume: Run | None = None,
                 settings: PoolSettings | None = None, keeper: Keeper | None = None, engine=None):
        self.id, self.config, self.data, self.label, self.resume = run_id, config, data, label, resume
        self.engine = engine or ThreadEngine()  # where it trains (cnnlab.engines)
        self.settings = settings or PoolSettings()  # the classroom's limits: wall time, abandoned tabs, memory
        self.keeper = keeper
        self.status = RunStatus.QUEUED
        self.progress: Progress | None = None
        self.batches: list[Progress] = []     # after every batch: the live curves
        self.epochs: list[Progress] = []      # after every epoch, with validation
        if resume is not None:                # a continued run's curves carry on from the earlier run's
            self.batches, self.epochs = curves(resume.history, config.epochs)
        self.batches_before = len(self.batches)  # of those, the earlier run's
        self.run: Run | None = None
        self.error = None                     # why it failed: a LabError (in the learner's language) or a str
        self.stop_reason: Text | None = None
        self.collapse: Collapse | None = None
        self.notes: list = []                 # what the learner should read about this run (errors.Text)
        self.status_text = None               # what it is doing before its first batch (errors.Text)
        self.started: float | None = None
        self.finished: float | None = None
        self._stop = threading.Event()
        self._admission: threading.Lock | None = None  # the pool's, held until this run's first batch
        self.seen_at = time.monotonic()       # the last time the learner's browser asked about it
        self._pace = SavePace()
        self.worker: dict | None = None       # the worker process it trains in, if not this one: address, pid
        self.shots = Snapshots()              # its network as it trains: the kept snapshots and the latest

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def trained(self) -> bool:
        """It has a model to look at: it has ended, with what it learnt."""
        return self.status.finished and self.run is not None

    def touch(self) -> None:
        """The learner's page is still open: every page calls this while the run is active."""
        self.seen_at = time.monotonic()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def check_limits(self) -> None:
        """Stop a run past the maximum wall time, or whose learner's tab has gone quiet (also while
        it waits in line)."""
        limit, quiet = self.settings.max_run_seconds, self.settings.abandoned_after_seconds
        if self.started and time.time() - self.started > limit:
            self.stop(Text("runs.stopped_time_limit", minutes=f"{limit / 60:g}"))
        if time.monotonic() - self.seen_at > quiet:
            self.stop(Text("runs.stopped_abandoned", seconds=f"{quiet:g}"))

    def stop(self, reason: Text | None = None) -> None:
        if self.active and not self._stop.is_set():
            self.stop_reason = reason or Text("runs.stopped_by_learner")
            self._stop.set()

    def on_batch(self, progress: Progress) -> None:
        self._admitted()
        self.progress = progress
        self.batches.append(progress)
        self.check_limits()

    def on_epoch(self, progress: Progress) -> None:
        self.progress = progress
        self.epochs.append(progress)

    def on_note(self, text, lasting: bool = True) -> None:
        if lasting:
            self.notes.append(text)
        else:
            self.status_text = text
        self.check_limits()  # also while a frozen base computes its features

    def on_worker(self, worker: dict) -> None:
        self.worker = worker

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.shots.add(snapshot)

    @property
    def snapshots(self) -> list[Snapshot]:
        """Its start and epochs' ends so far, to scrub through; a finished run's as it keeps them."""
        return self.run.snapshots if self.run is not None and self.run.snapshots else list(self.shots.kept)

    @property
    def latest_snapshot(self) -> Snapshot | None:
        return self.shots.latest

    def on_checkpoint(self, run, planned: int | None = None) -> None:
        """An epoch has ended: keep the run as it stands, so that a crash from here on loses nothing of
        it, at most as often as `engines.SavePace` allows. A run from a worker process arrives packed
        (its worker kept to the same pace). A disk that cannot take it costs the checkpoint, not the
        run (the learner is told)."""
        if self.keeper is None:
            return
        packed = not isinstance(run, Run)
        if not packed and not self._pace.due():
            return
        began = time.perf_counter()
        epochs = run.epochs if packed else run.epochs_completed
        try:
            self.keeper.checkpoint(self.id, run, planned or (self.progress.epochs if self.progress else epochs))
        except Exception as error:  # noqa: BLE001 - a full disk or a locked index: the run trains on
            self.on_note(Text("runs.not_saved", epoch=epochs, reason=str(error)[:200]))
        self._pace.saved(began)

    def withdraw(self) -> None:
        """Leave the line before training, as asked: stopped, having learnt nothing (the pool then
        tells the keeper, outside its lock)."""
        self.status, self.finished = RunStatus.STOPPED, time.time()

    def _kept(self) -> None:
        """The run has ended: its keeper records how, with what it learnt."""
        if self.keeper is not None:
            try:
                self.keeper.ended(self.id, self)
            except Exception as error:  # noqa: BLE001 - the run has ended either way; the learner is told
                self.notes.append(Text("runs.not_saved_end", reason=str(error)[:200]))
    def train_here(self, admission: threading.Lock | None = None) -> None:
        """Train in this thread. `admission`, the pool's, is held from the memory check to the first
        batch: a run admitted a moment ago has not taken its memory yet, so the next waits for it."""
        self.status, self.started = RunStatus.RUNNING, time.time()
        if self.keeper is not None:
            try:
                self.keeper.started(self.id)
            except Exception as error:  # noqa: BLE001 - the index is busy or full: the run trains all the same
                self.notes.append(Text("runs.not_saved_end", reason=str(error)[:200]))
        if admission is not None:
            admission.acquire()
            self._admission = admission
        try:
            self._check_memory(self.settings.memory_reserve_bytes)
            self.run = self.engine.train(self.config, self, self._stop, self.data, self.resume)
            if self.run.test_predictions is not None:
                self.collapse = detect_collapse(self.run.test_predictions, self.run.class_names)
            self.status = RunStatus.STOPPED if self.run.stopped else RunStatus.DONE
        except RunInterrupted as interrupted:  # its model and history so far are kept
            cause = interrupted.run.error
            self.run, self.status = interrupted.run, RunStatus.FAILED
            self.error = cause if isinstance(cause, LabError) else f"{type(cause).__name__}: {cause}"
        except ValueError as error:  # a learner's error (LabError): shown in the learner's language
            self.error, self.status = error, RunStatus.FAILED
        except Exception as error:  # noqa: BLE001 - the learner sees it; the server and other runs carry on
            self.error, self.status = f"{type(error).__name__}: {error}", RunStatus.FAILED
        finally:
            self._admitted()
            self.finished = time.time()
            self.resume = None  # the earlier run's model is not held twice
            self._kept()

    def _admitted(self) -> None:
        """The run has its memory (or has ended): the next run's check may see what is left."""
        admission, self._admission = self._admission, None
        if admission is not None:
            admission.release()

    def _check_memory(self, reserve_bytes: int) -> None:
        """When its turn comes, the run must still fit in what the server has free (other runs may
        have started since the learner pressed Start)."""
        n_train, n_test = self.data.sizes(self.config.sample)
        # A continued run keeps its network: there is no setting to suggest, only to wait.
        cost = estimate_cost(self.config, n_train, n_test)
        check_fits(cost, self.config if self.resume is None else None, n_train, n_test, reserve_bytes)
        self.engine.check_fits(cost.peak_bytes - cost.breakdown["runtime"])

    @classmethod
    def finished_from(cls, run_id: int, run: Run, data: Dataset, label: str) -> BackgroundRun:
        """A run that did not train here (uploaded as a bundle), shown like any finished run."""
        background = cls(run_id, run.config, data, label)
        background.run, background.status = run, RunStatus.STOPPED if run.stopped else RunStatus.DONE
        background.batches, background.epochs = curves(run.history)
        background.batches_before = len(background.batches)
        if run.stopped:
            background.stop_reason = Text("runs.stopped_before_saved")
        background.progress = (background.batches or background.epochs or [None])[-1]
        background.started = background.finished = time.time()
        return background


def curves(history: History, more_epochs: int = 0, planned: int = 0) -> tuple[list[Progress], list[Progress]]:
    """A run's history as the Progress points the live curves are drawn from; `more_epochs` makes
    room for a run that continues it (a half-done last epoch is left out, it will start again).
    `planned`: the epochs the run was set to reach, for one that ended early (its progress says
    "epoch 6/30", its half-done epoch counts its batches out of a whole epoch's)."""
    done = len(history.epochs)
    total = max(done + more_epochs, planned)
    steps = {}
    for b in history.batches:
        steps[b["epoch"]] = max(steps.get(b["epoch"], 0), b["step"])
    if more_epochs:
        steps = {e: s for e, s in steps.items() if e <= done}
    if done and done + 1 in steps:  # a half-done epoch has as many batches as a whole one
        steps[done + 1] = max(steps[done + 1], steps.get(done, 0))
    elapsed = {}  # seconds from the start of the run to the end of each epoch
    for e in history.epochs:
        elapsed[e["epoch"]] = elapsed.get(e["epoch"] - 1, 0.0) + (e["seconds"] or 0.0)
    batches = [Progress(b["epoch"], max(total, b["epoch"]), b["step"], steps[b["epoch"]], b["seen"],
                        elapsed.get(b["epoch"], elapsed.get(b["epoch"] - 1, 0.0)), 0.0, b["loss"], b["accuracy"])
               for b in history.batches if b["epoch"] in steps]
    epochs = [Progress(e["epoch"], max(total, e["epoch"]), steps.get(e["epoch"], 1), steps.get(e["epoch"], 1), 0,
                       elapsed[e["epoch"]], 0.0, e["loss"], e["accuracy"], e["val_loss"], e["val_accuracy"])
              for e in history.epochs]
    return batches, epochs


class TrainingPool:
    """The server's training slots: a fair line of runs, at most `max_concurrent` at a time."""

    def __init__(self, settings: PoolSettings | None = None, keeper: Keeper | None = None, engine=None):
        self.settings = settings or PoolSettings()
        self.keeper = keeper
        self.engine = engine or ThreadEngine()  # where its runs train (cnnlab.engines)
        self._live: dict[int, BackgroundRun] = {}  # the runs of this process not yet ended, by number
        self._turn = threading.Condition()
        self._waiting: list[BackgroundRun] = []
        self._running = 0
        self._ids = itertools.count(1)
        self._admission = threading.Lock()  # one memory check at a time, each until its run holds its memory

    def submit(self, config: TrainConfig, data: Dataset, label: str = "", resume: Run | None = None,
               workspace: str | None = None) -> BackgroundRun:
        """Queue a run and return at once; it trains as soon as a slot is free. `resume`: an
        earlier run of the same model to continue from. With a keeper, `workspace` is whose run it is."""
        config = config.resolved()
        label = label or config.model.arch
        kept = self.keeper is not None and workspace is not None
        run_id = self.keeper.add(workspace, config, label) if kept else next(self._ids)
        run = BackgroundRun(run_id, config, data, label, resume, self.settings, self.keeper if kept else None,
                            self.engine)
        with self._turn:
            self._waiting.append(run)
            self._live[run.id] = run
        threading.Thread(target=self._work, args=(run,), name=f"cnnlab-run-{run.id}", daemon=True).start()
        return run

    def adopt(self, run: Run, data: Dataset, label: str) -> BackgroundRun:
        """A finished run from elsewhere (an uploaded bundle), numbered like the runs trained here."""
        return BackgroundRun.finished_from(next(self._ids), run, data, label)

    def live(self, run_id: int) -> BackgroundRun | None:
        """The run of that number, while it waits or trains in this process."""
        with self._turn:
            return self._live.get(run_id)

    def place_in_line(self, run: BackgroundRun) -> int | None:
        """1 for the next to start; None once training (or finished)."""
        with self._turn:
            return self._waiting.index(run) + 1 if run in self._waiting else None

    @property
    def running(self) -> int:
        return self._running

    def _work(self, run: BackgroundRun) -> None:
        with self._turn:
            while True:
                run.check_limits()  # a tab closed while its run waited in line
                if run.stop_requested:
                    self._waiting.remove(run)
                    run.withdraw()
                    self._turn.notify_all()
                    break
                if self._waiting[0] is run and self._running < self.engine.slots(self.settings):
                    break
                self._turn.wait(timeout=0.2)
            withdrawn = run.status.finished
            if not withdrawn:
                self._waiting.pop(0)
                self._running += 1
        if withdrawn:
            run._kept()  # the keeper's disk work, outside the pool's lock
            with self._turn:
                self._live.pop(run.id, None)
            return
        try:
            run.train_here(self._admission)
        finally:
            with self._turn:
                self._running -= 1
                self._live.pop(run.id, None)  # kept by the keeper now (or only by whoever holds it)
                self._turn.notify_all()
