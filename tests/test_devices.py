"""`cnnlab train --devices all`: data parallel across a machine's devices, learning what one device
learns. Tested on the CPU split into two devices, on whichever backend the tests run with:
TensorFlow's MirroredStrategy, or JAX with Keras's DataParallel (CI runs this file on both)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

from cnnlab import ModelConfig, TrainConfig
from cnnlab.training import train
from tests.conftest import ROOT

BACKEND = keras.backend.backend()
TWO_CPUS = {  # each backend is told to split the CPU in two before it starts
    "jax": "import os; os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'\n",
    "tensorflow": ("import tensorflow as tf\n"
                   "cpu = tf.config.list_physical_devices('CPU')[0]\n"
                   "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"),
}[BACKEND]


def cnnlab_on_two_devices(*argv: str) -> subprocess.CompletedProcess:
    script = TWO_CPUS + f"import sys\nfrom cnnlab.cli import main\nsys.exit(main({list(argv)!r}))\n"
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=os.environ | {"KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_two_devices_learn_what_one_device_learns(tmp_path):
    common = ["train", "lenet5", "--epochs", "2", "--sample", "0.02", "--batch-size", "64", "--lr", "0.003",
              "--seed", "3"]
    runs = {}
    for devices in ("1", "all"):
        done = cnnlab_on_two_devices(*common, "--devices", devices, "--out", str(tmp_path / devices))
        assert done.returncode == 0, done.stderr[-2000:]
        runs[devices] = json.loads((tmp_path / devices / "history.json").read_text())
    one, two = runs["1"], runs["all"]
    assert len(one["batches"]) == len(two["batches"]) == 2 * 19  # 1,200 digits in batches of 64
    for a, b in zip(one["epochs"], two["epochs"]):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-3)
        assert b["val_accuracy"] == pytest.approx(a["val_accuracy"], abs=0.011)  # at most one test image apart
    assert two["epochs"][-1]["val_accuracy"] > 0.6  # and it learnt


def test_a_batch_that_does_not_split_evenly_is_refused_before_training(tmp_path):
    done = cnnlab_on_two_devices("train", "lenet5", "--batch-size", "63", "--devices", "all", "--out", str(tmp_path))
    assert done.returncode == 2 and "multiple of 2" in done.stderr and "Traceback" not in done.stderr


def test_more_devices_than_the_machine_has_are_refused(tmp_path):
    done = cnnlab_on_two_devices("train", "lenet5", "--devices", "3", "--out", str(tmp_path))
    assert done.returncode == 2 and "from 1 to 2" in done.stderr


def test_all_on_a_machine_with_one_device_trains_as_usual():
    config = TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=64, steps_per_epoch=3, sample=0.1)
    assert train(config, devices="all").epochs_completed == 1
    with pytest.raises(ValueError, match="devices must be 'all' or a whole number"):
        train(config, devices="everything")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(BACKEND != "jax", reason="training across processes is JAX's (Keras 3 cannot train under "
                                            "TensorFlow's MultiWorkerMirroredStrategy)")
def test_two_processes_learn_what_one_process_learns(tmp_path):
    """The README's command for going past one machine, run as two processes on this one."""
    # 2,400 training and 200 test digits, 3 epochs: where the two ways of shuffling have settled
    common = ["-m", "cnnlab", "train", "lenet5", "--epochs", "3", "--sample", "0.04", "--batch-size", "64",
              "--lr", "0.003", "--seed", "3", "--devices", "all"]
    env = os.environ | {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    alone = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "alone")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-2000:]
    cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{free_port()}",  # the first process coordinates
               "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    workers = [subprocess.Popen([sys.executable, *common, "--out", str(tmp_path / f"p{i}")], cwd=ROOT,
                                env=env | cluster | {"KERAS_DISTRIBUTION_PROCESS_ID": str(i)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-2000:]
    one, p0, p1 = (json.loads((tmp_path / name / "history.json").read_text()) for name in ("alone", "p0", "p1"))
    timeless = lambda history: [{k: v for k, v in e.items() if k != "seconds"} for e in history["epochs"]]  # noqa: E731
    assert timeless(p0) == timeless(p1) and p0["batches"] == p1["batches"]  # both hold the one run
    assert len(p0["batches"]) == len(one["batches"]) == 3 * 38
    assert p0["batches"][-1]["seen"] == one["batches"][-1]["seen"] == 3 * 2400
    # Each process shuffles its own half, so a batch mixes other images than alone: the runs end close, not equal.
    a, b = one["epochs"][-1], p0["epochs"][-1]
    assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.1) and b["val_accuracy"] == pytest.approx(
        a["val_accuracy"], abs=0.05)
    assert b["loss"] == pytest.approx(a["loss"], rel=0.2)  # a running mean over the epoch's own batches: noisier
    result = json.loads((tmp_path / "p0" / "run.json").read_text())["result"]
    assert result["test_accuracy"] > 0.6


def test_processes_need_all_devices_and_the_addresses(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    config = TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=64, steps_per_epoch=3, sample=0.1)
    if BACKEND != "jax":  # TensorFlow trains alone, as before
        assert train(config).epochs_completed == 1
        return
    with pytest.raises(ValueError, match="devices='all'"):
        train(config)
    monkeypatch.delenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", raising=False)
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        train(config, devices="all")
