"""Training across every local device: data parallel, the same run split batch by batch.

Each device holds a copy of the weights and takes an equal slice of every batch; the gradients are
averaged across devices before each update, so the run learns what it would on one device, up to
floating-point rounding. On JAX this is Keras's distribution API (`keras.distribution.DataParallel`),
on TensorFlow `tf.distribute.MirroredStrategy`. GPUs are used when there are any, else the CPUs
(a CPU is one device unless the backend is told to split it, as the tests do).
"""

from __future__ import annotations

import contextlib

import keras


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
    raise ValueError(f"Training across devices needs the JAX or TensorFlow backend. Received: {backend}")


def choose(devices) -> list[str]:
    """`"all"`, or how many of the local devices to use (1: no splitting)."""
    available = local_devices()
    if devices == "all":
        return available
    if isinstance(devices, bool) or not isinstance(devices, int) or not 1 <= devices <= len(available):
        raise ValueError(f"devices must be 'all' or a whole number from 1 to {len(available)} (the local devices: "
                         f"{', '.join(available)}). Received: devices={devices!r}")
    return available[:devices]


def check_batch(batch_size: int, devices: list[str]) -> None:
    if batch_size % len(devices):
        raise ValueError(f"A batch of {batch_size} does not split evenly across {len(devices)} devices; choose a "
                         f"batch size that is a multiple of {len(devices)}.")


@contextlib.contextmanager
def data_parallel(devices: list[str]):
    """Inside it, models built, compiled and trained are copied on every device of `devices`."""
    if len(devices) < 2:
        yield
        return
    if keras.backend.backend() == "jax":
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
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
    import numpy as np

    extra = -len(x) % replicas()
    return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)]) if extra and len(x) else x
