"""Training in the background, for an app that serves many learners from one process.

A `TrainingPool` is shared by the whole server and lets at most `max_concurrent` runs train at
once; the others wait in line and know their place. Each `BackgroundRun` belongs to one learner:
it trains on its own thread, keeps its progress and curves, and stops training within one
batch when asked (the partial model is then evaluated once on the test sample). Nothing here knows about Streamlit; a page only reads a run's state and draws it.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

from .data import Dataset
from .errors import Text
from .inference import Collapse, detect_collapse
from .training import Progress, Run, TrainConfig, train

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)


@dataclass(frozen=True)
class PoolSettings:
    max_concurrent: int = 1            # runs training at the same time, server-wide
    max_run_seconds: float = 30 * 60   # a run is stopped after this long, whatever its settings


class BackgroundRun:
    """One learner's run: a Listener that records everything a page needs to redraw."""

    def __init__(self, run_id: int, config: TrainConfig, data: Dataset, label: str):
        self.id, self.config, self.data, self.label = run_id, config, data, label
        self.status = QUEUED
        self.progress: Progress | None = None
        self.batches: list[Progress] = []     # after every batch: the live curves
        self.epochs: list[Progress] = []      # after every epoch, with validation
        self.run: Run | None = None
        self.error: str | None = None
        self.stop_reason: Text | None = None
        self.collapse: Collapse | None = None
        self.notes: list = []                 # what the learner should read about this run (errors.Text)
        self.status_text = None               # what it is doing before its first batch (errors.Text)
        self.started: float | None = None
        self.finished: float | None = None
        self._stop = threading.Event()
        self._max_seconds = None

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    def stop(self, reason: Text = Text("runs.stopped_by_learner")) -> None:
        if self.active and not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def on_batch(self, progress: Progress) -> None:
        self.progress = progress
        self.batches.append(progress)
        if self._max_seconds is not None and progress.elapsed > self._max_seconds:
            self.stop(Text("runs.stopped_time_limit", minutes=f"{self._max_seconds / 60:.0f}"))

    def on_epoch(self, progress: Progress) -> None:
        self.progress = progress
        self.epochs.append(progress)

    def on_note(self, text, lasting: bool = True) -> None:
        if lasting:
            self.notes.append(text)
        else:
            self.status_text = text

    def _train(self, max_seconds: float) -> None:
        self._max_seconds = max_seconds
        self.status, self.started = RUNNING, time.time()
        try:
            self.run = train(self.config, listener=self, stop=self._stop, data=self.data)
            if self.run.test_predictions is not None:
                self.collapse = detect_collapse(self.run.test_predictions, self.run.class_names)
            self.status = STOPPED if self.run.stopped else DONE
        except Exception as error:  # the learner sees it; the server and other runs carry on
            self.error = f"{type(error).__name__}: {error}"
            self.status = FAILED
        finally:
            self.finished = time.time()


class TrainingPool:
    """The server's training slots: a fair line of runs, at most `max_concurrent` at a time."""

    def __init__(self, settings: PoolSettings = PoolSettings()):
        self.settings = settings
        self._turn = threading.Condition()
        self._waiting: list[BackgroundRun] = []
        self._running = 0
        self._ids = itertools.count(1)

    def submit(self, config: TrainConfig, data: Dataset, label: str = "") -> BackgroundRun:
        """Queue a run and return at once; it trains as soon as a slot is free."""
        config = config.resolved()
        run = BackgroundRun(next(self._ids), config, data, label or config.model.arch)
        with self._turn:
            self._waiting.append(run)
        threading.Thread(target=self._work, args=(run,), name=f"cnnlab-run-{run.id}", daemon=True).start()
        return run

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
                if run._stop.is_set():  # stopped while still in line
                    self._waiting.remove(run)
                    run.status, run.finished = STOPPED, time.time()
                    self._turn.notify_all()
                    return
                if self._waiting[0] is run and self._running < self.settings.max_concurrent:
                    break
                self._turn.wait(timeout=0.2)
            self._waiting.pop(0)
            self._running += 1
        try:
            run._train(self.settings.max_run_seconds)
        finally:
            with self._turn:
                self._running -= 1
                self._turn.notify_all()
