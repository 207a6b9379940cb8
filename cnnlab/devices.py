"""Training across every local device: data parallel, the same run split batch by batch.

Each device holds a copy of the weights and takes an equal slice of every batch; the gradients are
averaged across devices before each update, so the run learns what it would on one device, up to
floating-point rounding. On JAX this is Keras's distribution API (`keras.distribution.DataParallel`),
on TensorFlow `tf.distribute.MirroredStrategy`. GPUs are used when there are any, else the CPUs
(a CPU is one device unless the backend is told to split it, as the tests do).

Past one machine, on JAX: start the same command on every machine (or process) with
`KERAS_DISTRIBUTION_JOB_ADDRESSES` (the host:port of process 0, which coordinates),
`KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` set. Each process joins with
`keras.distribution.initialize()`, `devices="all"` is then every device of every process, and each
process feeds its own share of every batch. (TensorFlow's MultiWorkerMirroredStrategy does not
train Keras 3 models: keras-team/keras#20585.)
"""

from __future__ import annotations

import contextlib
import os

import keras
import numpy as np

from . import checks
from .errors import LabError

BACKEND_TITLES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def backend() -> dict[str, str]:
    """What trains here, for a learner to read: Keras's version, the backend, its version, CPU or GPU."""
    import importlib.metadata

    name = keras.backend.backend()
    package = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}.get(name, ())
    version = next((v for p in package if (v := _version(importlib.metadata, p))), "")
    kind = "GPU" if any("gpu" in d.lower() or "cuda" in d.lower() for d in _devices_or_none()) else "CPU"
    return {"keras": keras.__version__, "backend": BACKEND_TITLES.get(name, name), "version": version, "kind": kind}


def _version(metadata, name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _devices_or_none() -> list[str]:
    try:
        return local_devices()
    except LabError:
        return []


def local_devices() -> list[str]:
    """This machine's devices of the fastest kind: its GPUs, else its CPU devices."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = jax.devices()  # the default backend's: GPUs when there are any
        return [f"{d.platform}:{d.id}" for d in devices]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
    raise LabError("devices.backend", backend=backend)


def processes() -> int:
    """How many processes train together (KERAS_DISTRIBUTION_NUM_PROCESSES, on JAX; else 1)."""
    text = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not text or keras.backend.backend() != "jax":
        return 1
    if not text.isdigit() or int(text) < 1:
        raise LabError("devices.num_processes", value=checks.shown(text))
    return int(text)


def process_index() -> int:
    if processes() == 1:
        return 0
    import jax

    return jax.process_index()


def join_processes() -> None:
    """Join the other processes (once), before JAX starts: on CPUs their collectives go over gloo."""
    import jax

    if jax.distributed.is_initialized():
        return
    if not os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or not os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID"):
        raise LabError("devices.job_addresses")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize()
    except RuntimeError as error:  # JAX was used before: it can no longer join
        raise LabError("devices.jax_used", reason=str(error)[:200]) from None


def choose(devices) -> list[str]:
    """`"all"`, or how many of the local devices to use (1: no splitting). Across processes (see
    above), "all" is every device of every process."""
    if processes() > 1:
        if devices != "all":
            raise LabError("devices.all_processes", processes=str(processes()))
        join_processes()
    available = local_devices()
    if devices == "all":
        return available
    if not checks.is_whole(devices) or not 1 <= devices <= len(available):
        raise LabError("devices.devices", most=str(len(available)), names=", ".join(available),
                       value=checks.shown(devices))
    return available[:int(devices)]


def check_batch(batch_size: int, devices: list[str]) -> None:
    if batch_size % len(devices):
        raise LabError("devices.batch_split", batch=str(batch_size), devices=str(len(devices)))


@contextlib.contextmanager
def data_parallel(devices: list[str]):
    """Inside it, models built, compiled and trained are copied on every device of `devices`."""
    if len(devices) < 2:
        yield
        return
    if keras.backend.backend() == "jax":
        previous = keras.distribution.distribution()
        parallel = keras.distribution.DataParallel(devices=devices)
        parallel.auto_shard_dataset = False  # across processes, each one feeds its own share (see _train)
        keras.distribution.set_distribution(parallel)
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)
    else:
        import tensorflow as tf

        with tf.distribute.MirroredStrategy(devices).scope():
            yield


def replicas() -> int:
    """How many devices the current JAX distribution splits each batch over (1 without one).
    (TensorFlow's MirroredStrategy splits uneven batches itself.)"""
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)


def padded(x):
    """`x` with copies of its last image added so that every batch, the last one too, splits
    evenly across the devices; the predictions of the added images are to be dropped."""
    extra = -len(x) % replicas()
    return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)]) if extra and len(x) else x


def local_value(variable):
    """A variable's value as a NumPy array in this process (across processes, its local replica)."""
    value = variable.value if hasattr(variable, "value") else variable
    if processes() > 1 and not getattr(value, "is_fully_addressable", True):
        value = value.addressable_data(0)
    return np.asarray(keras.ops.convert_to_numpy(value))


@contextlib.contextmanager
def undistributed():
    """Inside it, models are built and run on this process alone (to evaluate and save a run that
    trained across processes, whose arrays span machines)."""
    previous = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    if previous is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)
