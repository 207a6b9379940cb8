"""Where runs train: in a thread of this process, or in worker processes of a Dask cluster.

An engine takes a run's configuration and a listener, trains, and returns the run. Everything a page
needs comes back through the listener as it happens: batches, epochs, notes, and checkpoints at epochs'
ends. `stop.set()` ends the run after the batch it is in, wherever it trains.

- `ThreadEngine` trains in the calling thread (the command line, the tests, a server with little memory).
- `DaskEngine` hands each run to a worker process of a Dask cluster: the embedded one (a scheduler and
  one worker per training slot on 127.0.0.1, which the app starts itself with Dask's own commands, each
  worker under a hard memory limit its nanny enforces), or any cluster whose scheduler address the
  server is given (`CNNLAB_CLUSTER`), CPU or GPU workers alike. The cluster's processes are children of
  the server, not threads in it: its page reruns never wait on the scheduler's event loop, and a worker
  started afresh never runs the page that was being drawn (as a worker spawned from a Streamlit page
  would). A worker loads the run's data itself from the configuration (its data reference), sends
  its progress through a Dask queue, and returns the finished run as its bundle's bytes; the server
  reads those weights only to predict and to look inside. A worker that dies (killed, or past its memory
  limit) costs its run, not the server: the run fails with what it checkpointed, and the learner is told
  in their language whether memory was the cause.

Measured in bench/engines.py; which one a server uses is the classroom's `engine` setting (`choose`).
Nothing here knows about Streamlit.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import operator
import os
import pydoc
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from distributed import WorkerPlugin

from . import memory, snapshots
from .bundle import Packed, pack, read_bundle
from .classroom import PoolSettings
from .data import Dataset, load_dataset
from .errors import LabError, Text
from .snapshots import Snapshot
from .training import Progress, Run, RunInterrupted, TrainConfig, train

CHECKPOINT_SHARE = 0.05    # the most of a run's training time that saving it at epochs' ends may take
FLUSH_SECONDS = 0.2        # a worker sends its batches at most this often (an epoch, a note or a checkpoint at once)
WORKER_RUNTIME_MB = 600    # a worker with TensorFlow and the bundled data loaded, before a network (bench/engines.py)
ROOT = Path(__file__).resolve().parents[1]


class SavePace:
    """When a checkpoint is worth its cost: a save may take at most CHECKPOINT_SHARE of the training
    since the last one (a transfer head's epoch trains in a tenth of a second; its bundle holds the
    whole frozen base), so such an epoch is saved by a later one, or when the run ends."""

    def __init__(self):
        self._saved_at, self._cost = 0.0, 0.0

    def due(self) -> bool:
        return not self._cost or time.perf_counter() - self._saved_at >= self._cost / CHECKPOINT_SHARE

    def saved(self, began: float) -> None:
        self._saved_at = time.perf_counter()
        self._cost = self._saved_at - began


class ThreadEngine:
    """Training in the calling thread of this process, as the command line does."""

    name = "threads"
    address = None
    why: Text | None = None  # why runs train here and not in workers, where the classroom asked for "auto"

    def train(self, config: TrainConfig, listener, stop: threading.Event, data: Dataset | None = None,
              resume: Run | None = None) -> Run:
        return train(config, listener=listener, stop=stop, data=data, resume=resume)

    def slots(self, settings: PoolSettings) -> int:
        return settings.max_concurrent_runs

    def check_fits(self, needed: int) -> None:
        """The server's own memory check covers a run trained here."""

    def describe(self) -> Text:
        return Text("engine.threads")

    def close(self) -> None:
        pass


class DaskEngine:
    """Runs in the worker processes of a Dask cluster: the embedded one (`address` None: `workers`
    processes, each limited to `memory_limit` bytes by its nanny) or the one at `address`.
    The cluster starts in the background; a run that comes before it is ready waits for it."""

    name = "workers"

    def __init__(self, address: str | None = None, workers: int = 1, memory_limit: int = 0, why: Text | None = None,
                 reproducible: bool = False):
        self.address, self.workers, self.memory_limit, self.why = address, workers, memory_limit, why
        self.reproducible = reproducible  # embedded workers only: a cluster's own workers are started by hand
        self.client = None
        self._ready = threading.Event()
        self._failed: Exception | None = None
        threading.Thread(target=self._start, name="cnnlab-engine-start", daemon=True).start()

    def _start(self) -> None:
        """Start the embedded cluster (or reach the given one), then stay: this thread started the
        cluster's processes, and they end when it does (with the server, however it ends)."""
        processes = []
        try:
            from distributed import Client
            if self.address is None:
                processes, scheduler_file = _embedded(self.workers, self.memory_limit, self.reproducible)
                self.client = Client(scheduler_file=scheduler_file, set_as_default=False, timeout=60)
            else:
                self.client = Client(self.address, set_as_default=False, timeout=30)
            self.client.register_plugin(Warm(), name="cnnlab-warm")
        except Exception as error:  # noqa: BLE001 - every run is then refused with the reason
            self._failed = error
        finally:
            self._processes = processes
            self._ready.set()
        for process in processes:
            process.wait()

    def ready(self, timeout: float | None = None) -> bool:
        """The cluster is up (or has failed to start): True once a run can be submitted."""
        return self._ready.wait(timeout) and self._failed is None

    def _client(self, listener=None):
        if not self._ready.is_set():
            _note(listener, Text("engine.starting"), lasting=False)
        self._ready.wait()
        if self._failed is not None:
            raise LabError("engine_unavailable", address=self.address or "127.0.0.1",
                           reason=f"{type(self._failed).__name__}: {self._failed}"[:300])
        return self.client

    def slots(self, settings: PoolSettings) -> int:
        """The embedded cluster has one worker per slot; a cluster, as many as its workers' threads."""
        if self.address is None or not self._ready.is_set() or self._failed is not None:
            return settings.max_concurrent_runs
        try:
            threads = sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values())
        except Exception:  # noqa: BLE001 - the scheduler is unreachable a moment: keep the classroom's number
            return settings.max_concurrent_runs
        return max(1, threads)

    def check_fits(self, needed: int) -> None:
        """A run that cannot fit in one worker's memory limit is refused before any work starts."""
        if not self.memory_limit:
            return
        room = int(self.memory_limit * 0.95) - WORKER_RUNTIME_MB * 2**20
        if needed > room:
            raise memory.NotEnoughMemory(Text("errors.what_worker_run"), needed, max(room, 0), self.memory_limit)

    def describe(self) -> Text:
        if self.address is not None:
            return Text("engine.cluster", address=self.address)
        return Text("engine.workers", workers=self.workers, limit=f"{self.memory_limit / 2**30:.1f}")

    def train(self, config: TrainConfig, listener, stop: threading.Event, data: Dataset | None = None,
              resume: Run | None = None) -> Run:
        """Train in a worker; `data` is not sent (the worker loads the configuration's own). A run handed
        to a worker that died before the run began (one going down a moment ago) is handed on again."""
        client = self._client(listener)
        job = {"config": config.to_dict(), "resume": None if resume is None else pack(resume).bundle}
        for attempt in range(3):
            future, where = self._attempt(client, job, listener, stop)
            try:
                if where is not None or attempt == 2 or future.status != "error" or stop.is_set():
                    return self._outcome(future, where, client)
            finally:
                future.release()
        raise AssertionError("unreachable")

    def _attempt(self, client, job: dict, listener, stop: threading.Event):
        """One task in a worker, followed to its end: its messages go to the listener as they come."""
        from distributed import Event, Queue
        name = f"cnnlab-run-{uuid.uuid4().hex}"
        queue, halt = Queue(name, client=client), Event(name, client=client)
        # The task names its function rather than carrying it: the scheduler unpickles every task it is
        # given, and `work`'s module would load TensorFlow there (0.5 GB, held for good).
        code = client.submit(pydoc.locate, f"{__name__}.work", key=f"{name}-code", pure=False)
        future = client.submit(operator.call, code, {**job, "queue": name}, key=name, pure=False, retries=0)
        ended = threading.Event()
        future.add_done_callback(lambda _: ended.set())
        where, halted = None, False
        try:
            while True:
                if stop.is_set() and not halted:
                    halt.set()
                    halted = True
                done = future.done()  # asked before the queue is read: a finished task has sent all it will
                for item in queue.get(batch=True):
                    where = _dispatch(item, listener, where, future)
                if done:
                    return future, where
                tick = getattr(listener, "check_limits", None)
                if tick is not None:  # a run whose tab has gone, or past its time, stops while nothing arrives
                    tick()
                ended.wait(0.1)
        except BaseException:  # the server side failed (a listener, the connection): the worker stops too
            halt.set()
            future.cancel()
            raise
        finally:
            try:
                queue.close()
                halt.clear()  # the scheduler forgets an event no one waits on
            except Exception:  # noqa: BLE001 - the cluster is going away: nothing to clean
                pass

    def _outcome(self, future, where: dict | None, client) -> Run:
        if future.cancelled() or future.status == "cancelled":
            raise LabError("worker_lost", worker=(where or {}).get("worker", "?"))
        error = future.exception()
        if error is not None:
            raise self._death(error, where, client) from None
        result = future.result()
        if result["status"] == "refused":
            raise _unwire(result["error"])
        run = _unpack(result)
        if result["status"] == "interrupted":
            cause = _unwire(result["error"])
            run.error = cause
            raise RunInterrupted(run, cause)
        return run

    def _death(self, error: BaseException, where: dict | None, client) -> Exception:
        """Why a worker took its run with it: past its memory limit (its nanny tells the scheduler, which
        may hear it a moment after the worker's end), or anything else (a kill, a crash)."""
        where = where or {}
        if type(error).__name__ != "KilledWorker":
            return RuntimeError(f"{type(error).__name__}: {error}")
        deadline = time.monotonic() + 3
        while where.get("pid") is not None:
            try:
                events = client.get_events("worker-restart-memory")
            except Exception:  # noqa: BLE001 - the scheduler is going away: the cause is unknown
                break
            if any(msg.get("pid") == where["pid"] for _, msg in events if isinstance(msg, dict)):
                limit = where.get("limit") or self.memory_limit or 0
                return LabError("worker_out_of_memory", limit=f"{limit / 2**30:.1f}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return LabError("worker_lost", worker=where.get("worker", "?"))

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing what may already be gone
                pass
        for process in reversed(getattr(self, "_processes", [])):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


# Dask's settings for the embedded cluster, as its commands read them from the environment: a run is never
# started twice (a worker that dies fails its run, and the learner is told); the workers hold no Dask data,
# so the nanny's limit is the only memory rule; and the variables a nanny sets by default for numerical
# work in many small tasks (one thread for BLAS, eager trimming of freed memory) are left out: a training
# run trained at half its speed under them (bench/engines.py).
DASK_ENVIRONMENT = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__SPILL": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE": "0.95",
    # One variable for the whole mapping: Dask lower-cases a name it reads from a variable of its own.
    "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": repr(dict.fromkeys(
        ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"))),
    "DASK_LOGGING__DISTRIBUTED": "warning",
}


# What `reproducible = true` sets in every worker. TensorFlow's op determinism (always on in workers) covers
# its own kernels; the oneDNN kernels it uses on x86 by default may sum a gradient's parts in whatever order
# their threads finish on some CPUs, so a run beside another can differ from the same run alone in the last
# bits. Without them, a seed gives the same weights everywhere, and runs train slower (bench/reproducible.py).
REPRODUCIBLE_ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def _embedded(workers: int, memory_limit: int, reproducible: bool = False) -> tuple[list[subprocess.Popen], str]:
    """A scheduler and `workers` worker processes on 127.0.0.1, started with Dask's own commands (as the
    README starts a cluster by hand), each told to end with the thread that starts it."""
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-cluster-"))
    scheduler_file = str(folder / "scheduler.json")
    env = {**os.environ, **DASK_ENVIRONMENT, **(REPRODUCIBLE_ENVIRONMENT if reproducible else {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    dask = [sys.executable, "-m", "dask"]
    scheduler = subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", scheduler_file], env=env, preexec_fn=_end_with_parent)
    deadline = time.monotonic() + 60
    while not Path(scheduler_file).exists():
        if scheduler.poll() is not None or time.monotonic() > deadline:
            scheduler.kill()
            raise RuntimeError(f"the Dask scheduler did not start (exit code {scheduler.poll()})")
        time.sleep(0.1)
    worker = subprocess.Popen([*dask, "worker", "--scheduler-file", scheduler_file, "--nworkers", str(workers),
                               "--nthreads", "1", "--memory-limit", str(memory_limit or "auto"), "--host", "127.0.0.1",
                               "--no-dashboard", "--death-timeout", "60"], env=env, preexec_fn=_end_with_parent)
    return [scheduler, worker], scheduler_file


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _end_with_parent() -> None:
    """In a child just forked: on Linux, ask for SIGTERM when the thread that started it ends."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def choose(settings: PoolSettings, environ=os.environ) -> ThreadEngine | DaskEngine:
    """The engine the classroom's settings ask for. `CNNLAB_CLUSTER` (a Dask scheduler's address) sends
    every run to that cluster. Otherwise `engine = "workers"` starts the embedded cluster, `"threads"`
    trains in the server's own process, and `"auto"` starts workers where each can have at least the
    memory a worker's own TensorFlow and a small run need, and keeps threads (saying why) where not."""
    address = environ.get("CNNLAB_CLUSTER", "").strip()
    if address:
        return DaskEngine(address=address)
    workers = settings.max_concurrent_runs
    per_worker = (memory.limit_bytes() - settings.memory_reserve_bytes) // workers
    needed = settings.worker_min_mb * 2**20
    if settings.engine == "threads":
        return ThreadEngine()
    if settings.engine == "auto" and per_worker < needed:
        engine = ThreadEngine()
        engine.why = Text("engine.threads_why", each=f"{per_worker / 2**30:.1f}", needed=f"{needed / 2**30:.1f}")
        return engine
    return DaskEngine(workers=workers, memory_limit=max(per_worker, needed), reproducible=settings.reproducible)


# -- in the worker ----------------------------------------------------------------------------------------


class Warm(WorkerPlugin):
    """A worker plugin: each worker imports the training code (this module, with TensorFlow) when it starts
    and again after a restart, so a learner's Start does not wait for TensorFlow; and it offers itself
    first to the kernel's out-of-memory killer, so that a machine out of memory loses a run, not the server."""

    idempotent = True

    def setup(self, worker=None):
        try:
            Path("/proc/self/oom_score_adj").write_text("1000")
        except OSError:
            pass


@functools.lru_cache(maxsize=2)
def _dataset(name: str, source: str, path: str | None, seed: int) -> Dataset:
    return load_dataset(name, source, path, seed=seed)


def work(job: dict) -> dict:
    """One run, in a worker: its progress goes to the queue the job names, a stop comes from the Dask
    event of the same name, and the run comes back as its bundle's bytes."""
    import keras
    from distributed import Event, Queue, get_client, get_worker

    if keras.config.backend() == "tensorflow":
        # A worker shares its cores with other workers' runs, and TensorFlow's threads then finish their
        # shares of an op in another order; pinned, a seed gives the same weights alone or beside others.
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    client, worker = get_client(), get_worker()
    relay = _Relay(Queue(job["queue"], client=client))
    relay.send(["hello", {"worker": worker.address, "nanny": getattr(worker, "nanny", None), "pid": os.getpid(),
                          "limit": getattr(getattr(worker, "memory_manager", None), "memory_limit", None)}])
    stop, finished = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch, args=(Event(job["queue"], client=client), stop, finished), daemon=True)
    watcher.start()
    try:
        config = TrainConfig.from_dict(job["config"]).resolved()
        resume = None if job["resume"] is None else read_bundle(job["resume"], len(job["resume"]) + 1)
        data = _dataset(config.dataset, config.source, config.data_path, config.seed)
        run = train(config, listener=relay, stop=stop, data=data, resume=resume)
        return {**_packed(run), "status": "done"}
    except RunInterrupted as interrupted:
        return {**_packed(interrupted.run), "status": "interrupted", "error": _wire(interrupted.cause)}
    except ValueError as error:  # a learner's error (LabError), in their language
        return {"status": "refused", "error": _wire(error)}
    finally:
        finished.set()
        relay.flush()
        keras.backend.clear_session()  # the worker keeps TensorFlow, not this run's graph


def _watch(event, stop: threading.Event, finished: threading.Event) -> None:
    """Wait on the run's stop event (the scheduler answers the moment it is set) and pass it to training."""
    while not finished.is_set():
        try:
            if event.wait(timeout=1):
                stop.set()
                return
        except Exception:  # noqa: BLE001 - the scheduler is going away: the run ends with the worker
            return


class _Relay:
    """The listener of a run in a worker: its progress, gathered and sent to the server's queue."""

    def __init__(self, queue):
        self.queue, self.pending, self.sent = queue, [], 0.0
        self.pace, self.planned = SavePace(), 0

    def send(self, item) -> None:
        self.pending.append(item)
        self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for item in pending:
            self.queue.put(item)
        self.sent = time.monotonic()

    def on_batch(self, progress: Progress) -> None:
        self.planned = progress.epochs
        self.pending.append(["batch", list(dataclasses.astuple(progress))])
        if time.monotonic() - self.sent >= FLUSH_SECONDS:
            self.flush()

    def on_epoch(self, progress: Progress) -> None:
        self.send(["epoch", list(dataclasses.astuple(progress))])

    def on_note(self, text, lasting: bool = True) -> None:
        self.send(["note", _wire(text), lasting])

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.send(["snapshot", snapshots.encode([snapshot])])

    def on_checkpoint(self, run: Run) -> None:
        if not self.pace.due():
            return
        began = time.perf_counter()
        packed = pack(run)
        self.send(["checkpoint", _packed_wire(packed), self.planned])
        self.pace.saved(began)


# -- between the two ------------------------------------------------------------------------------------


def _dispatch(item: list, listener, where: dict | None, future) -> dict | None:
    """One message from a worker, given to the run's listener."""
    kind = item[0]
    if kind == "hello":
        if where is not None:  # a cluster started it again elsewhere: a run is never trained twice
            future.cancel()
            return where
        placed = getattr(listener, "on_worker", None)
        if placed is not None:
            placed(item[1])
        return item[1]
    if listener is None:
        return where
    if kind == "batch":
        listener.on_batch(Progress(*item[1]))
    elif kind == "epoch":
        listener.on_epoch(Progress(*item[1]))
    elif kind == "note":
        listener.on_note(_unwire(item[1]), item[2])
    elif kind == "snapshot":
        shown = getattr(listener, "on_snapshot", None)
        if shown is not None:
            shown(snapshots.decode(item[1])[0])
    elif kind == "checkpoint":
        keep = getattr(listener, "on_checkpoint", None)
        if keep is not None:
            keep(_packed_unwire(item[1]), planned=item[2])
    return where


def _packed(run: Run) -> dict:
    return {"packed": _packed_wire(pack(run)), "notes": [_wire(note) for note in run.notes], "stopped": run.stopped,
            "seen_before": run.seen_before}


def _packed_wire(packed: Packed) -> dict:
    predictions = None if packed.predictions is None else np.asarray(packed.predictions, np.int16).tobytes()
    return {"bundle": packed.bundle, "predictions": predictions, "epochs": packed.epochs, "snapshots": packed.snapshots}


def _packed_unwire(wire: dict) -> Packed:
    predictions = None if wire["predictions"] is None else np.frombuffer(wire["predictions"], np.int16).astype(np.int64)
    return Packed(wire["bundle"], predictions, wire["epochs"], wire.get("snapshots"))


def _unpack(result: dict) -> Run:
    """The run a worker sent back, with its weights (its optimizer's state stays in its bytes, for the disk)."""
    packed = _packed_unwire(result["packed"])
    run = read_bundle(packed.bundle, len(packed.bundle) + 1, optimizer=False)
    run.test_predictions, run.packed = packed.predictions, packed
    run.snapshots = snapshots.decode(packed.snapshots) if packed.snapshots else []
    run.notes, run.stopped, run.seen_before = [_unwire(n) for n in result["notes"]], result["stopped"], \
        result["seen_before"]
    return run


def _wire(thing):
    """A catalogue text or a learner's error as plain data, to cross to another process."""
    if isinstance(thing, LabError):
        return {"error": thing.key, "values": {k: _wire(v) for k, v in thing.values.items()}}
    if isinstance(thing, Text) and type(thing) is Text:
        return {"text": thing.key, "values": {k: _wire(v) for k, v in thing.values.items()}}
    if hasattr(thing, "in_language"):  # a text made of others: its words in English, as a last resort
        return str(thing)
    if isinstance(thing, BaseException):
        return f"{type(thing).__name__}: {thing}"
    if thing is None or isinstance(thing, (str, int, float, bool)):
        return thing
    return str(thing)


def _unwire(wire):
    if isinstance(wire, dict) and "error" in wire:
        return LabError(wire["error"], **{k: _unwire(v) for k, v in wire["values"].items()})
    if isinstance(wire, dict) and "text" in wire:
        return Text(wire["text"], **{k: _unwire(v) for k, v in wire["values"].items()})
    return wire


def _note(listener, text: Text, lasting: bool = True) -> None:
    if listener is not None:
        listener.on_note(text, lasting)

