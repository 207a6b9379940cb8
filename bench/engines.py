"""Which job engine should run training runs in worker processes on one machine: Dask or Ray?

What: the same short LeNet-5 run (`TrainConfig(ModelConfig("lenet5"), epochs=1, steps_per_epoch=60)`,
bundled MNIST) trained three ways, each from a fresh Python process started by this script:

- thread: today's way, `cnnlab.train` in a thread of the current process (the same-run baseline);
- dask: one worker of a Dask distributed `LocalCluster` (processes, one thread per worker, a nanny,
  a memory limit), the run submitted to it as a task;
- ray: a local `ray.init(num_cpus=1)` without a dashboard and with a small object store, the run a
  Ray task.

And two variants that give the worker the thread's environment: both engines set OMP_NUM_THREADS=1 in
their workers, and Dask's nanny also MALLOC_TRIM_THRESHOLD_=65536 (glibc then returns freed memory to
the system at every free, which TensorFlow's allocations pay for). dask-env leaves both unset (the
nanny's pre-spawn-environ config); ray-omp sets OMP_NUM_THREADS to the usable CPUs before Ray starts.

Measured, each engine against the thread from the same run:

1. memory added: the summed RSS (and PSS, which counts a page shared by several processes once) of
   every process the engine added (the client's own growth, the scheduler, nanny and worker for
   Dask; raylet, gcs_server, the agents and the workers for Ray), once the engine is up and its
   worker has imported `cnnlab.training`, against what importing it in-process adds to the thread's
   process. Also after two runs, when the worker holds what training left behind.
2. start to first batch: cold, from engine start (cluster creation) to the first batch; warm, from
   submit to the first batch with the worker's cnnlab already imported; the thread's from thread
   start to the first batch with TensorFlow already imported. Stamped with `time.time()` inside the
   task, the same clock as the caller's.
3. throughput: images per second over the batches after the first, engine against thread.
4. failures, measured once: the worker killed with SIGKILL mid-run (what the caller sees, how soon,
   whether the task is retried by default and without retries); for Dask also a task that allocates
   past the worker's memory limit (does the nanny restart it, what the client sees, the nanny's log).

Each of 1-3 is repeated (`--repeat`, 3 by default; thread, Dask and Ray interleaved) and the median is
reported: the machine may be shared, and the ratios to the same-run thread are what to read.

The app's own engine, `cnnlab.engines.DaskEngine` (the embedded cluster: a scheduler and `dask worker`
started as child processes, one worker limited to 2.3 GB, runs submitted through `TrainingPool`), is
measured on its own with `--app` (column `cnnlab`, against a thread from the same run): the same figures,
taken on the server's side (first batch when it arrives; images/s from the worker's own Progress seen and
elapsed, since progress arrives in 0.2 s flushes); its memory counted from after the imports the server has
whatever its engine. Its failures go through the pool too: the worker SIGKILLed mid-run (how soon the
BackgroundRun is FAILED, with which error, and how soon the next run reaches its first batch), and a VGG-19
run on CIFAR-10 past a 1.5 GiB worker limit with the memory estimate's refusals turned off. Its figures are
merged into results/engines.json under `app_engine`.

How (from the repository's root):
    PYTHONPATH=. python bench/engines.py                             # about 12 minutes on 2 cores
    PYTHONPATH=. python bench/engines.py --repeat 2                  # about 9 minutes
    PYTHONPATH=. python bench/engines.py --repeat 1 --no-failures    # a smoke check
    PYTHONPATH=. python bench/engines.py --app --repeat 2            # the app's engine; about 9 minutes

It measures the engines importable by the Python that runs it and says which were not. A run with
all of them writes bench/results/engines.json; one without some (or with --no-failures) writes a
suffixed name that git ignores. It prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import RESULTS, worker_env, write_json  # bench/ is on sys.path when a script here runs
from machine import machine, source

ENGINES = ("thread", "dask", "dask-env", "ray", "ray-omp")
STEPS = 60
DASK_MEMORY_LIMIT = "1.5GB"           # per worker; the nanny restarts its worker past 95% of it
RAY_OBJECT_STORE = 80 * 2**20         # Ray's minimum is 75 MiB (ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES)
RAY_CPUS = 1
MB = 2**20


# ---------------------------------------------------------------- what runs in the worker

class Clock:
    """When the first batch ended (wall clock, comparable across processes) and every batch's images."""

    def __init__(self, marker: str | None = None):
        self.first_wall = None
        self.batches = []           # (perf_counter, images seen so far)
        self.marker = marker

    def on_batch(self, progress):
        if self.first_wall is None:
            self.first_wall = time.time()
            if self.marker:         # the caller waits for this line to kill the worker mid-run
                with open(self.marker, "a") as f:
                    f.write(f"batch {os.getpid()}\n")
        self.batches.append((time.perf_counter(), progress.seen))

    def on_epoch(self, progress):
        pass

    def on_note(self, text, lasting=True):
        pass


def import_task() -> dict:
    """Import cnnlab.training (TensorFlow with it) in the worker; how long it took, and the thread settings."""
    was = "cnnlab.training" in sys.modules
    start = time.time()
    import tensorflow as tf

    import cnnlab.training  # noqa: F401
    return {"pid": os.getpid(), "already_imported": was, "import_seconds": round(time.time() - start, 3),
            "done_wall": time.time(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "cpus_usable": len(os.sched_getaffinity(0))}


def train_task(steps: int = STEPS, epochs: int = 1, marker: str | None = None) -> dict:
    """The short LeNet-5 run; its first batch's wall-clock time and images per second after it."""
    was = "cnnlab.training" in sys.modules
    start = time.time()
    from cnnlab.architectures import ModelConfig
    from cnnlab.training import TrainConfig, train
    imported = time.time()
    clock = Clock(marker)
    run = train(TrainConfig(ModelConfig("lenet5"), epochs=epochs, steps_per_epoch=steps, seed=0), listener=clock)
    (t0, seen0), (t1, seen1) = clock.batches[0], clock.batches[-1]
    return {"pid": os.getpid(), "already_imported": was, "import_seconds": round(imported - start, 3),
            "first_batch_wall": clock.first_wall, "batches": len(clock.batches),
            "images_per_second": round((seen1 - seen0) / (t1 - t0), 1) if t1 > t0 else None,
            "test_accuracy": run.test_accuracy}


def kill_target_task(marker: str, long_epochs: int = 30) -> dict:
    """For the SIGKILL test: the first attempt trains long enough to be killed mid-run (the caller kills
    it after its first batch); a retry, if the engine makes one, trains briefly and says so."""
    with open(marker, "a") as f:
        f.write(f"start {os.getpid()}\n")
    attempt = sum(line.startswith("start") for line in Path(marker).read_text().splitlines())
    result = train_task(STEPS, long_epochs if attempt == 1 else 1, marker if attempt == 1 else None)
    return {"attempt": attempt, **result}


def allocate_task(step_mb: int = 100, up_to_mb: int = 4000, marker: str | None = None) -> dict:
    """Take memory in steps (pages touched), past the worker's limit, a little slower than the nanny polls."""
    import numpy as np

    if marker:
        with open(marker, "a") as f:
            f.write(f"start {os.getpid()}\n")
    held = []
    for _ in range(up_to_mb // step_mb):
        held.append(np.ones(step_mb * MB, dtype=np.uint8))
        time.sleep(0.05)
    return {"pid": os.getpid(), "held_mb": len(held) * step_mb}


# ---------------------------------------------------------------- measuring processes

def engine_processes(since: float, match: str | None = None) -> list:
    """This process's descendants, and (for an engine that may start processes outside the tree) any
    process of this user started since `since` whose command line contains `match`."""
    import psutil

    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    if match:
        mine = {me.pid, *(p.pid for p in me.parents())}
        for p in psutil.process_iter(["cmdline", "create_time", "username"]):
            try:
                if (p.pid not in found and p.pid not in mine and p.info["create_time"] >= since - 1
                        and p.info["username"] == me.username() and match in " ".join(p.info["cmdline"] or ())):
                    found[p.pid] = p
            except (psutil.Error, TypeError):
                pass
    return list(found.values())


def memory(baseline_rss: int, since: float, match: str | None = None) -> dict:
    """RSS and PSS of this process's growth since `baseline_rss` plus every process the engine started."""
    import psutil

    rows, rss, pss = [], 0, 0
    for p in engine_processes(since, match):
        try:
            info = p.memory_full_info()
            name = p.name()
            cmd = " ".join(p.cmdline())[:160]
        except psutil.Error:
            continue
        rss, pss = rss + info.rss, pss + info.pss
        rows.append({"pid": p.pid, "name": name, "cmdline": cmd, "rss_mb": round(info.rss / MB, 1),
                     "pss_mb": round(info.pss / MB, 1)})
    me = psutil.Process().memory_full_info()
    grown = me.rss - baseline_rss
    rows.sort(key=lambda r: -r["rss_mb"])
    return {"added_rss_mb": round((rss + grown) / MB, 1), "added_pss_mb": round((pss + grown) / MB, 1),
            "caller_grew_mb": round(grown / MB, 1), "processes": len(rows), "by_process": rows}


def own_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def summary(imported: dict, runs: list[dict], submits: list[float]) -> dict:
    """Start-to-first-batch and throughput of each run, from the task's own stamps."""
    return {"runs": [{**r, "submit_to_first_batch_s": round(r["first_batch_wall"] - s, 3)}
                     for r, s in zip(runs, submits, strict=True)],
            "import": imported}


# ---------------------------------------------------------------- one measurement per engine (a fresh process)

def measure_thread() -> dict:
    start_rss = own_rss()
    t_import = time.time()
    imported = import_task()
    import_rss = memory(start_rss, time.time())       # no children: the process's own growth
    results, submits = [], []
    for _ in range(2):
        box = {}
        thread = threading.Thread(target=lambda box=box: box.update(train_task()))
        submits.append(time.time())
        thread.start()
        thread.join()
        results.append(box)
    after = memory(start_rss, time.time())
    out = summary(imported, results, submits)
    out.update(memory_after_import=import_rss, memory_after_runs=after,
               cold_first_batch_s=round(results[0]["first_batch_wall"] - t_import, 3))
    return out


def dask_cluster(**config):
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(config):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=DASK_MEMORY_LIMIT,
                               dashboard_address=None)
    return cluster, Client(cluster)


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")


def all_threads() -> None:
    """ray-omp: OMP_NUM_THREADS set to the usable CPUs in the caller before Ray starts, which Ray then passes
    on to its workers instead of its default of the task's CPUs (1); TensorFlow otherwise follows the CPUs."""
    os.environ["OMP_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))


# dask-env: the nanny's pre-spawn environment without its thread limit and its malloc trim threshold (a value
# of None in the config leaves a variable unset), so that the worker's environment is the thread's.
DASK_PLAIN_ENV = {"distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": None,
                  "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def measure_dask(plain_env: bool = False) -> dict:
    start_rss = own_rss()
    env_before = {k: os.environ.get(k) for k in THREAD_ENV}
    t0 = time.time()
    import distributed  # noqa: F401 - its import is part of the engine's start

    cluster, client = dask_cluster(**(DASK_PLAIN_ENV if plain_env else {}))
    up = time.time()
    # The nanny runs in the caller's process and sets its pre-spawn environment there, for good.
    env_after = {k: os.environ.get(k) for k in THREAD_ENV}
    imported = client.submit(import_task, pure=False).result()
    time.sleep(1)
    import_mem = memory(start_rss, t0)
    results, submits = [], []
    for _ in range(2):
        submits.append(time.time())
        results.append(client.submit(train_task, pure=False).result())
    after = memory(start_rss, t0)
    out = summary(imported, results, submits)
    out.update(engine_up_s=round(up - t0, 3), memory_after_import=import_mem, memory_after_runs=after,
               cold_first_batch_s=round(results[0]["first_batch_wall"] - t0, 3),
               version=distributed.__version__,
               caller_environ_changed={k: [env_before[k], env_after[k]] for k in THREAD_ENV
                                       if env_before[k] != env_after[k]})
    client.close()
    cluster.close()
    return out


def ray_init():
    import ray

    try:
        ray.init(num_cpus=RAY_CPUS, include_dashboard=False, object_store_memory=RAY_OBJECT_STORE,
                 log_to_driver=False, configure_logging=False)
        return RAY_OBJECT_STORE
    except ValueError as error:   # a store below Ray's minimum: start with the minimum, and say so
        print(f"ray.init refused object_store_memory={RAY_OBJECT_STORE}: {error}", file=sys.stderr)
        from ray._private.ray_constants import OBJECT_STORE_MINIMUM_MEMORY_BYTES
        ray.init(num_cpus=RAY_CPUS, include_dashboard=False, object_store_memory=OBJECT_STORE_MINIMUM_MEMORY_BYTES,
                 log_to_driver=False, configure_logging=False)
        return OBJECT_STORE_MINIMUM_MEMORY_BYTES


def measure_ray(omp: bool = False) -> dict:
    if omp:
        all_threads()
    start_rss = own_rss()
    t0 = time.time()
    import ray

    store = ray_init()
    up = time.time()
    imported = ray.get(ray.remote(import_task).remote())
    time.sleep(1)
    import_mem = memory(start_rss, t0, match="ray")
    remote_train = ray.remote(train_task)
    results, submits = [], []
    for _ in range(2):
        submits.append(time.time())
        results.append(ray.get(remote_train.remote()))
    after = memory(start_rss, t0, match="ray")
    out = summary(imported, results, submits)
    out.update(engine_up_s=round(up - t0, 3), memory_after_import=import_mem, memory_after_runs=after,
               cold_first_batch_s=round(results[0]["first_batch_wall"] - t0, 3), object_store_bytes=store,
               version=ray.__version__)
    ray.shutdown()
    return out


# ---------------------------------------------------------------- failures (measured once)

def wait_for_line(marker: str, prefix: str, timeout: float = 120) -> int:
    """The pid on the first line of `marker` starting with `prefix`, once there."""
    end = time.time() + timeout
    while time.time() < end:
        lines = Path(marker).read_text().splitlines() if Path(marker).exists() else []
        hit = next((line for line in lines if line.startswith(prefix)), None)
        if hit:
            return int(hit.split()[1])
        time.sleep(0.05)
    raise TimeoutError(f"no {prefix!r} line in {marker} after {timeout} s")


def outcome(call, killed_at: float, timeout: float = 180) -> dict:
    """What the caller gets from `call()` after the kill: a result or an exception, and how soon."""
    try:
        value = call(timeout)
        return {"raised": None, "result": {k: value[k] for k in ("attempt", "pid", "batches") if k in value},
                "after_kill_s": round(time.time() - killed_at, 3)}
    except BaseException as error:  # noqa: BLE001 - what the caller sees is the measurement
        return {"raised": f"{type(error).__module__}.{type(error).__name__}", "message": str(error)[:1500],
                "after_kill_s": round(time.time() - killed_at, 3)}


def kill_mid_run(submit, get, watch=None) -> dict:
    """Submit the long run, SIGKILL its worker half a second after its first batch, see what comes back."""
    marker = tempfile.mktemp(prefix="cnnlab-engines-kill-")
    future = submit(marker)
    pid = wait_for_line(marker, "batch")
    time.sleep(0.5)
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    watched = watch(pid) if watch else {}
    seen = outcome(lambda timeout: get(future, timeout), killed_at)
    lines = Path(marker).read_text().splitlines()
    return {"killed_pid": pid, **seen, **watched, "attempts": sum(line.startswith("start") for line in lines),
            "attempt_pids": [int(line.split()[1]) for line in lines if line.startswith("start")]}


def dask_workers(client) -> dict:
    """Each running worker's pid, by address (none while the nanny is bringing its worker back)."""
    try:
        return client.run(os.getpid, wait=True)
    except Exception:  # noqa: BLE001 - a worker going away mid-call
        return {}


def wait_worker_back(client, old_pids, timeout: float = 60) -> dict:
    """Does the nanny bring a worker back, with a new pid, and how soon."""
    start = time.time()
    while time.time() - start < timeout:
        pids = [p for p in dask_workers(client).values() if p not in old_pids]
        if pids:
            return {"worker_restarted": True, "new_pid": pids[0], "back_after_s": round(time.time() - start, 3)}
        time.sleep(0.1)
    return {"worker_restarted": False}


def failures_dask() -> dict:
    import dask
    import distributed  # noqa: F401 - its defaults join dask's config on import

    out = {"allowed_failures_default": dask.config.get("distributed.scheduler.allowed-failures")}
    for name, config in (("no_retries", {"distributed.scheduler.allowed-failures": 0}), ("default", {})):
        cluster, client = dask_cluster(**config)
        client.submit(import_task, pure=False).result()
        row = kill_mid_run(lambda marker, client=client: client.submit(kill_target_task, marker, pure=False),
                           lambda future, timeout: future.result(timeout=timeout),
                           lambda pid, client=client: wait_worker_back(client, {pid}))   # timed from the kill
        row.update(config=config)
        out[name] = row
        client.close()
        cluster.close()

    # Past the memory limit: the nanny's verdict, what the client sees, what the nanny logged. The nanny runs
    # in this process (LocalCluster), so its log records are caught here as well as asked for from the scheduler.
    import logging

    class Caught(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(f"{record.name} - {record.levelname} - {record.getMessage()}")

    caught = Caught()
    logging.getLogger("distributed.nanny").addHandler(caught)
    for name, config in (("memory_limit_no_retries", {"distributed.scheduler.allowed-failures": 0}),
                         ("memory_limit_default", {})):
        cluster, client = dask_cluster(**config)
        before = set(dask_workers(client).values())
        marker = tempfile.mktemp(prefix="cnnlab-engines-memory-")
        caught.lines.clear()
        start = time.time()
        task = client.submit(allocate_task, marker=marker, pure=False)
        seen = outcome(lambda timeout, task=task: task.result(timeout=timeout), start)
        back = wait_worker_back(client, before)
        time.sleep(0.5)
        try:
            logs = client.get_worker_logs(nanny=True)
        except Exception as error:  # noqa: BLE001 - no worker registered, for one
            logs = {"error": [("", f"{type(error).__name__}: {error}")]}
        lines = [msg for entries in logs.values() for level, msg in entries]
        memory_lines = [msg for msg in lines if "memory" in msg.lower()]
        attempts = Path(marker).read_text().splitlines() if Path(marker).exists() else []
        out[name] = {"limit": DASK_MEMORY_LIMIT, "config": config, **seen, "from_submit_s": seen.pop("after_kill_s"),
                     "attempts": len(attempts), **back, "nanny_memory_log": memory_lines[:10],
                     "nanny_log_says_exceeded_budget": any("exceeded" in m and "memory budget" in m
                                                           for m in memory_lines),
                     "nanny_log_caught_in_process": caught.lines[:20],
                     "workers_registered_after": len(client.scheduler_info()["workers"])}
        client.close()
        cluster.close()
    return out


def failures_ray() -> dict:
    import ray

    ray_init()
    import_remote = ray.remote(import_task)
    ray.get(import_remote.remote())
    from ray._private import ray_constants

    out = {"max_retries_default": ray_constants.DEFAULT_TASK_MAX_RETRIES}
    for name, options in (("no_retries", {"max_retries": 0}), ("default", {})):
        remote = ray.remote(**options)(kill_target_task) if options else ray.remote(kill_target_task)
        row = kill_mid_run(lambda marker, remote=remote: remote.remote(marker),
                           lambda ref, timeout: ray.get(ref, timeout=timeout))
        # Does a new worker take the next task, and from which state (a fresh process imports cnnlab again)?
        start = time.time()
        nxt = ray.get(import_remote.remote())
        row.update(options=options, next_task={"pid": nxt["pid"], "already_imported": nxt["already_imported"],
                                               "seconds": round(time.time() - start, 3)})
        out[name] = row
    ray.shutdown()
    return out


# ---------------------------------------------------------------- the app's engine: cnnlab.engines.DaskEngine

APP_MEMORY_LIMIT = int(2.7 * 2**30) - 400 * 2**20   # a 2.7 GB host less the classroom's 400 MB reserve
APP_OOM_LIMIT = int(1.5 * 2**30)


def lenet(epochs: int = 1):
    from cnnlab.architectures import ModelConfig
    from cnnlab.training import TrainConfig

    return TrainConfig(ModelConfig("lenet5"), epochs=epochs, steps_per_epoch=STEPS, seed=0)


def stamp_arrivals() -> None:
    """Each BackgroundRun of this process notes when its first batch arrived (the server's clock)."""
    from cnnlab import runner

    original = runner.BackgroundRun.on_batch

    def on_batch(self, progress):
        if getattr(self, "first_batch_arrived", None) is None:
            self.first_batch_arrived = time.time()
        original(self, progress)

    runner.BackgroundRun.on_batch = on_batch


def worker_state() -> dict:
    """Run in the worker (client.run): its pid, and whether the engine's plugin has imported cnnlab."""
    return {"pid": os.getpid(), "imported": "cnnlab.training" in sys.modules,
            "environ": {k: os.environ.get(k) for k in THREAD_ENV}}


def scheduler_state() -> dict:
    """Run in the scheduler (client.run_on_scheduler): has it imported TensorFlow and cnnlab?"""
    return {"pid": os.getpid(), "tensorflow": "tensorflow" in sys.modules, "cnnlab": "cnnlab.engines" in sys.modules}


def wait_worker_warm(engine, timeout: float = 180, not_pid: int | None = None) -> dict:
    """Until a worker (other than `not_pid`) has registered and has cnnlab.training imported."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            states = list(engine.client.run(worker_state).values())
        except Exception:  # noqa: BLE001 - no worker yet, or one going away
            states = []
        warm = [s for s in states if s["imported"] and s["pid"] != not_pid]
        if warm:
            return {**warm[0], "at": time.time()}
        time.sleep(0.1)
    raise TimeoutError(f"no worker with cnnlab imported after {timeout} s")


def wait_for(condition, timeout: float = 300, run=None) -> float:
    """Poll `condition()` until true (touching `run`, as its page would); the time it became true."""
    end = time.time() + timeout
    while time.time() < end:
        if run is not None:
            run.touch()
        if condition():
            return time.time()
        time.sleep(0.02)
    raise TimeoutError(f"not done after {timeout} s")


def error_key(error):
    return getattr(error, "key", None) or (None if error is None else str(error)[:300])


def pool_run(pool, config, data, timeout: float = 600) -> dict:
    """One run through the pool, to its end: the server-side first batch, and images/s from the worker's
    own Progress (seen, elapsed) over the batches after the first (they arrive in flushes)."""
    submitted = time.time()
    run = pool.submit(config, data)
    wait_for(lambda: run.status.finished, timeout, run)
    out = {"status": str(run.status), "error": error_key(run.error), "batches": len(run.batches),
           "pid": (run.worker or {}).get("pid"), "submit_to_first_batch_s": None, "images_per_second": None,
           "test_accuracy": None if run.run is None else run.run.test_accuracy}
    if run.batches:
        first, last = run.batches[0], run.batches[-1]
        out["submit_to_first_batch_s"] = round(run.first_batch_arrived - submitted, 3)
        out["first_batch_wall"] = run.first_batch_arrived
        if last.elapsed > first.elapsed:
            out["images_per_second"] = round((last.seen - first.seen) / (last.elapsed - first.elapsed), 1)
    return out


def app_setup():
    """What the app's server has loaded whatever its engine (cnnlab, distributed with cnnlab.engines, the data)."""
    import cnnlab.engines  # noqa: F401
    import cnnlab.runner  # noqa: F401
    from cnnlab.data import load_dataset

    stamp_arrivals()
    return load_dataset("mnist")


def app_engine(memory_limit: int):
    from cnnlab.engines import DaskEngine

    engine = DaskEngine(workers=1, memory_limit=memory_limit)
    if not engine.ready(180):
        raise RuntimeError(f"DaskEngine did not start: {engine._failed!r}")
    return engine


def measure_cnnlab() -> dict:
    """The app's engine: `DaskEngine` embedded (a scheduler, `dask worker` with its nanny, one worker), its
    runs submitted through `TrainingPool`. Memory counted from after the imports the server has anyway."""
    from cnnlab.classroom import PoolSettings
    from cnnlab.runner import TrainingPool

    before_imports = own_rss()
    data = app_setup()
    start_rss = own_rss()
    t0 = time.time()
    engine = app_engine(APP_MEMORY_LIMIT)
    up = time.time()
    warm = wait_worker_warm(engine)
    imported = engine.client.submit(import_task, pure=False).result()   # already imported: the thread settings
    time.sleep(1)
    import_mem = memory(start_rss, t0)
    pool = TrainingPool(PoolSettings(), engine=engine)
    scheduler_before = engine.client.run_on_scheduler(scheduler_state)
    runs = [pool_run(pool, lenet(), data) for _ in range(2)]
    after = memory(start_rss, t0)
    scheduler_after = engine.client.run_on_scheduler(scheduler_state)
    import distributed
    out = {"runs": runs, "import": imported, "memory_after_import": import_mem, "memory_after_runs": after,
           "engine_up_s": round(up - t0, 3), "worker_warm_s": round(warm["at"] - t0, 3),
           "cold_first_batch_s": (round(runs[0]["first_batch_wall"] - t0, 3) if runs[0].get("first_batch_wall")
                                  else None),
           "server_imports_mb": round((start_rss - before_imports) / MB, 1), "memory_limit": APP_MEMORY_LIMIT,
           "worker_environ": warm["environ"], "scheduler_before_runs": scheduler_before,
           "scheduler_after_runs": scheduler_after,
           "version": distributed.__version__}
    engine.close()
    return out


def failures_cnnlab() -> dict:
    """Through the pool: the worker SIGKILLed mid-run, and a run past a 1.5 GiB worker limit."""
    from cnnlab import runner
    from cnnlab.architectures import ModelConfig
    from cnnlab.classroom import PoolSettings
    from cnnlab.data import load_dataset
    from cnnlab.training import TrainConfig

    data = app_setup()
    out = {}
    engine = app_engine(APP_MEMORY_LIMIT)
    wait_worker_warm(engine)
    pool = runner.TrainingPool(PoolSettings(), engine=engine)
    run = pool.submit(lenet(epochs=30), data)
    wait_for(lambda: run.batches and run.worker, 300, run)
    time.sleep(0.5)
    pid = run.worker["pid"]
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(lambda: run.status.finished, 120, run)
    out["kill"] = {"killed_pid": pid, "status": str(run.status), "error": error_key(run.error),
                   "error_values": {k: str(v) for k, v in getattr(run.error, "values", {}).items()},
                   "failed_after_kill_s": round(failed - killed, 3), "batches_before_kill": len(run.batches)}
    nxt = pool_run(pool, lenet(), data)
    out["kill"]["next_run"] = {**nxt, "first_batch_after_kill_s": round(nxt.pop("first_batch_wall") - killed, 3)
                               if nxt.get("first_batch_wall") else None,
                               "submitted_after_kill_s": round(failed - killed, 3), "new_worker": nxt["pid"] != pid}
    engine.close()

    # Past the worker's memory limit: the estimate's refusals turned off, so the run reaches the worker.
    engine = app_engine(APP_OOM_LIMIT)
    wait_worker_warm(engine)
    runner.check_fits = lambda *args, **kwargs: None
    engine.check_fits = lambda needed: None
    pool = runner.TrainingPool(PoolSettings(), engine=engine)
    config = TrainConfig(ModelConfig("vgg19"), epochs=1, batch_size=64, sample=0.5, dataset="cifar10")
    cifar = load_dataset("cifar10")
    submitted = time.time()
    run = pool.submit(config, cifar)
    failed = wait_for(lambda: run.status.finished, 600, run)
    out["memory_limit"] = {"limit": APP_OOM_LIMIT, "config": "vgg19, cifar10 sample 0.5, batch 64, 1 epoch",
                           "status": str(run.status), "error": error_key(run.error),
                           "error_values": {k: str(v) for k, v in getattr(run.error, "values", {}).items()},
                           "from_submit_s": round(failed - submitted, 3), "batches": len(run.batches),
                           "pid": (run.worker or {}).get("pid")}
    try:
        back = wait_worker_warm(engine, 120, not_pid=out["memory_limit"]["pid"])
        out["memory_limit"]["worker_back_warm_after_failed_s"] = round(back["at"] - failed, 3)
    except TimeoutError as error:
        out["memory_limit"]["worker_back_warm_after_failed_s"] = str(error)
    engine.close()
    return out


# ---------------------------------------------------------------- the orchestrator

MEASURE = {"thread": measure_thread, "dask": measure_dask, "ray": measure_ray,
           "dask-env": lambda: measure_dask(plain_env=True), "ray-omp": lambda: measure_ray(omp=True),
           "dask-failures": failures_dask, "ray-failures": failures_ray,
           "cnnlab": measure_cnnlab, "cnnlab-failures": failures_cnnlab}


def worker(what: str) -> None:
    os.environ.setdefault("CNNLAB_DATA_DIR", tempfile.mkdtemp(prefix="cnnlab-engines-data-"))
    result = MEASURE[what]()
    sys.stdout.flush()
    print(json.dumps(result))


def importable(engine: str) -> str | None:
    """None when the engine can be measured with this Python, else why not."""
    module = {"thread": "cnnlab.training", "dask": "distributed", "ray": "ray",
              "cnnlab": "cnnlab.engines"}[engine.split("-")[0]]
    done = subprocess.run([sys.executable, "-c", f"import {module}"], env=worker_env(), capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]


def run_measurement(what: str, timeout: float = 900) -> dict:
    env = {**worker_env(), "CNNLAB_DATA_DIR": tempfile.mkdtemp(prefix="cnnlab-engines-data-")}
    try:
        done = subprocess.run([sys.executable, __file__, "--worker", what], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}", "stderr": done.stderr[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def figures(reps: list[dict]) -> dict:
    """The medians over the repetitions of one engine."""
    ok = [r for r in reps if "error" not in r]
    if not ok:
        return {}
    first = [r["runs"][0] for r in ok]
    second = [r["runs"][1] for r in ok]
    return {
        "memory_added_after_import_mb": median([r["memory_after_import"]["added_rss_mb"] for r in ok]),
        "memory_added_after_import_pss_mb": median([r["memory_after_import"]["added_pss_mb"] for r in ok]),
        "memory_added_after_runs_mb": median([r["memory_after_runs"]["added_rss_mb"] for r in ok]),
        "memory_added_after_runs_pss_mb": median([r["memory_after_runs"]["added_pss_mb"] for r in ok]),
        "processes_added": median([r["memory_after_import"]["processes"] for r in ok]),
        "engine_up_s": median([r.get("engine_up_s") for r in ok]),
        "worker_import_s": median([r["import"]["import_seconds"] for r in ok]),
        "worker_warm_s": median([r.get("worker_warm_s") for r in ok]),
        "cold_first_batch_s": median([r["cold_first_batch_s"] for r in ok]),
        "warm_first_batch_s": median([r["submit_to_first_batch_s"] for r in first]),
        "warm_first_batch_second_run_s": median([r["submit_to_first_batch_s"] for r in second]),
        "images_per_second": median([r["images_per_second"] for r in first + second]),
        "worker_reused": all(r["runs"][0]["pid"] == r["runs"][1]["pid"] == r["import"]["pid"] for r in ok),
        "threads": {k: ok[0]["import"][k] for k in ("OMP_NUM_THREADS", "intra_op_threads", "inter_op_threads")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each engine (median reported)")
    parser.add_argument("--no-failures", action="store_true", help="skip the SIGKILL and memory-limit tests")
    parser.add_argument("--only", help="comma-separated engines to measure (thread is always measured): "
                        + ", ".join(ENGINES[1:]))
    parser.add_argument("--app", action="store_true", help="measure the app's own engine (cnnlab.engines.DaskEngine) "
                        "against the thread, and merge it into results/engines.json under 'app_engine'")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.app:
        return main_app(args)

    why_not = {e: importable(e) for e in ("thread", "dask", "ray")}
    missing = {e: why_not[e.split("-")[0]] for e in ENGINES if why_not[e.split("-")[0]]}
    chosen = {"thread", *args.only.split(",")} if args.only else set(ENGINES)
    engines = [e for e in ENGINES if e not in missing and e in chosen]
    if "thread" in missing:
        sys.exit(f"cnnlab.training cannot be imported: {missing['thread']}")
    for engine, why in missing.items():
        print(f"{engine}: not measured, not importable here ({why})", file=sys.stderr)
    reps = {e: [] for e in engines}
    for i in range(args.repeat):
        for engine in engines:
            print(f"round {i + 1}/{args.repeat}: {engine}", file=sys.stderr, flush=True)
            reps[engine].append(run_measurement(engine))
    report = {"machine": machine(), "source": source(), "python": sys.executable,
              "load_average": os.getloadavg(), "not_measured": missing, "repeat": args.repeat,
              "settings": {"steps_per_epoch": STEPS, "dask_memory_limit": DASK_MEMORY_LIMIT,
                           "ray_num_cpus": RAY_CPUS, "ray_object_store_bytes": RAY_OBJECT_STORE},
              "figures": {e: figures(reps[e]) for e in engines}, "repetitions": reps}
    base = report["figures"]["thread"]
    for engine in engines:
        f = report["figures"][engine]
        if f and base:
            f["memory_over_thread"] = round(f["memory_added_after_import_mb"] / base["memory_added_after_import_mb"], 2)
            f["throughput_over_thread"] = round(f["images_per_second"] / base["images_per_second"], 2)
            f["warm_first_batch_over_thread"] = round(f["warm_first_batch_s"] / base["warm_first_batch_s"], 2)
    if not args.no_failures:
        for engine in ("dask", "ray"):
            if engine in engines:
                print(f"failures: {engine}", file=sys.stderr, flush=True)
                report[f"{engine}_failures"] = run_measurement(f"{engine}-failures")
    report["load_average_end"] = os.getloadavg()
    full = not missing and not args.no_failures and not args.only
    name = "engines" + ("" if full else "." + "-".join(engines) + ".no-failures" * args.no_failures) + ".json"
    if full and (RESULTS / name).exists():   # the app engine's figures (--app) are measured on their own: kept
        kept = json.loads((RESULTS / name).read_text()).get("app_engine")
        if kept:
            report["app_engine"] = kept
    out = write_json(RESULTS / name, report)
    print(table(report["figures"]))
    print(f"\nwrote {out}", file=sys.stderr)


def main_app(args) -> None:
    """thread and cnnlab interleaved, then the failures through the pool; merged into engines.json."""
    why = importable("cnnlab")
    if why:
        sys.exit(f"cnnlab.engines cannot be imported: {why}")
    engines = ("thread", "cnnlab")
    reps = {e: [] for e in engines}
    for i in range(args.repeat):
        for engine in engines:
            print(f"round {i + 1}/{args.repeat}: {engine}", file=sys.stderr, flush=True)
            reps[engine].append(run_measurement(engine))
    report = {"machine": machine(), "source": source(), "python": sys.executable, "load_average": os.getloadavg(),
              "repeat": args.repeat,
              "settings": {"steps_per_epoch": STEPS, "memory_limit": APP_MEMORY_LIMIT, "workers": 1,
                           "oom_memory_limit": APP_OOM_LIMIT},
              "figures": {e: figures(reps[e]) for e in engines}, "repetitions": reps}
    base, f = report["figures"]["thread"], report["figures"]["cnnlab"]
    if f and base:
        f["memory_over_thread"] = round(f["memory_added_after_import_mb"] / base["memory_added_after_import_mb"], 2)
        f["throughput_over_thread"] = round(f["images_per_second"] / base["images_per_second"], 2)
        f["warm_first_batch_over_thread"] = round(f["warm_first_batch_s"] / base["warm_first_batch_s"], 2)
    if not args.no_failures:
        print("failures: cnnlab", file=sys.stderr, flush=True)
        report["cnnlab_failures"] = run_measurement("cnnlab-failures")
    report["load_average_end"] = os.getloadavg()
    path = RESULTS / "engines.json"
    if args.no_failures or not path.exists():
        out = write_json(RESULTS / "engines.app.no-failures.json" if args.no_failures else path,
                         {"app_engine": report})
    else:
        merged = json.loads(path.read_text())
        merged["app_engine"] = report
        out = write_json(path, merged)
    print(table(report["figures"]))
    print(json.dumps(report.get("cnnlab_failures"), indent=1))
    print(f"\nwrote {out}", file=sys.stderr)


def table(figs: dict) -> str:
    rows = ["| | thread (today) | " + " | ".join(e for e in figs if e != "thread") + " |",
            "| --- | ---: |" + " ---: |" * (len(figs) - 1)]

    def line(label, key, fmt="{}", ratio=None):
        cells = []
        for e, f in figs.items():
            v = f.get(key)
            cell = "–" if v is None else fmt.format(v)
            if ratio and e != "thread" and f.get(ratio) is not None:
                cell += f" ({f[ratio]}×)"
            cells.append(cell)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    line("memory added, worker with cnnlab imported (RSS, MB)", "memory_added_after_import_mb",
         ratio="memory_over_thread")
    line("the same, PSS (MB)", "memory_added_after_import_pss_mb")
    line("memory added after two runs (RSS, MB)", "memory_added_after_runs_mb")
    line("processes added", "processes_added")
    line("engine up (s)", "engine_up_s")
    line("import cnnlab.training in the worker (s)", "worker_import_s")
    line("cold: engine start → first batch (s)", "cold_first_batch_s")
    line("warm: submit → first batch (s)", "warm_first_batch_s", ratio="warm_first_batch_over_thread")
    line("warm, second run (s)", "warm_first_batch_second_run_s")
    line("images/s after the first batch", "images_per_second", "{:.0f}", ratio="throughput_over_thread")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
