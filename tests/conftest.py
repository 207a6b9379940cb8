"""Shared fixtures: the real datasets beside the project, and one small trained LeNet run."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# A LeNet that reliably passes 90% in one epoch on 6,000 of the bundled 60,000 digits (and 500 of the
# 5,000 test digits). The lecture's batch of 128 gives only 47 updates on 6,000 images (about 73%);
# batch 32 at a higher learning rate gives 188.
QUICK_LENET = dict(sample=0.1, epochs=1, batch_size=32, learning_rate=3e-3, seed=1)


@pytest.fixture(scope="session", autouse=True)
def data_folder(tmp_path_factory) -> Path:
    """The learners' workspaces of every in-process app in the tests: a new folder, not the user's cache."""
    folder = tmp_path_factory.mktemp("workspaces")
    os.environ["CNNLAB_DATA_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "mnist.npz").is_file():
        pytest.skip(f"the real datasets are not at {SHARED_DATASETS} (see the README)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def lenet_run_dir(tmp_path_factory) -> Path:
    """`cnnlab train lenet5` once for the session: a run directory with model.keras, history.json, run.json."""
    from cnnlab.cli import main

    out = tmp_path_factory.mktemp("lenet_run")
    argv = ["train", "lenet5", "--out", str(out)]
    for key, value in QUICK_LENET.items():
        argv += [f"--{'lr' if key == 'learning_rate' else key.replace('_', '-')}", str(value)]
    assert main(argv) == 0
    return out


def _lab() -> list[str]:
    from cnnlab import list_architectures

    return list_architectures(zoo=False)


LAB = _lab()                                   # the lab's own networks; the zoo's are tested in test_zoo.py
OFFLINE = {"transfer": {"weights": "random"}}  # tests download nothing: transfer's base keeps random weights
