"""The command line: the lecture's experiments from a terminal, and one clear line for every mistake."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnlab import load_dataset
from cnnlab.cli import main
from tests.conftest import ROOT


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_json(capsys):
    code, out, _ = run_cli(capsys, "summary", "alexnet", "--json")
    data = json.loads(out)
    assert code == 0 and data["arch"] == "alexnet" and data["total_params"] == 24_767_882
    assert data["input_shape"] == [32, 32, 3]
    assert {"name", "type", "output_shape", "params", "macs", "receptive_field"} <= set(data["layers"][-1])


def test_summary_table_with_knobs(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5", "--width", "2", "--set", "pooling=max")
    assert code == 0 and "MaxPooling2D" in out and "c5_conv" in out and "parameters" in out


def test_train_evaluate_predict_round_trip(lenet_run_dir, tmp_path, capsys):
    record = json.loads((lenet_run_dir / "run.json").read_text())
    assert record["result"]["test_accuracy"] > 0.9
    assert {"test_accuracy", "test_loss", "epochs", "train_seconds"} <= set(record["result"])

    config = record["config"]
    test = load_dataset("mnist").sample(config["sample"], seed=config["seed"])  # the run's own test images
    npz = tmp_path / "test.npz"
    np.savez(npz, x=test.x_test[..., 0], y=test.y_test[:, None])  # no channel axis, labels (N, 1)
    code, out, _ = run_cli(capsys, "evaluate", str(lenet_run_dir), "--data", str(npz))
    result = json.loads(out)
    assert code == 0 and result["n"] == 500
    assert result["accuracy"] == pytest.approx(record["result"]["test_accuracy"], abs=1e-6)

    paths = []
    for i in range(10):
        paths.append(tmp_path / f"digit{i}_{test.y_test[i]}.png")
        Image.fromarray(test.x_test[i, :, :, 0]).save(paths[-1])
    code, out, _ = run_cli(capsys, "predict", str(lenet_run_dir / "model.keras"), *map(str, paths), "--top", "2")
    predictions = json.loads(out)["predictions"]
    assert code == 0 and len(predictions) == 10 and len(predictions[0]["top"]) == 2
    right = sum(p["top"][0]["name"] == str(test.y_test[i]) for i, p in enumerate(predictions))
    assert right >= 8


def test_train_prints_a_json_last_line_and_saves(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "cnnlab", "train", "lenet5", "--epochs", "1", "--sample", "0.1",
                           "--steps-per-epoch", "2", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["epochs"] == 1 and 0 <= last["test_accuracy"] <= 1 and last["train_seconds"] > 0
    assert {p.name for p in out.iterdir()} == {"bundle.zip", "model.keras", "history.json", "run.json"}
    assert "epoch 1/1" in done.stderr


def test_continue_trains_a_saved_run_further_and_predict_reads_its_bundle(lenet_run_dir, tmp_path, capsys):
    code, out, err = run_cli(capsys, "continue", str(lenet_run_dir), "--epochs", "1", "--out", str(tmp_path / "more"))
    assert code == 0, err
    history = json.loads((tmp_path / "more" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert history["epochs"][0] == json.loads((lenet_run_dir / "history.json").read_text())["epochs"][0]
    assert json.loads(out)["test_accuracy"] > 0.9
    digit = tmp_path / "digit.png"
    Image.fromarray(load_dataset("mnist").x_test[0, :, :, 0]).save(digit)
    code, out, _ = run_cli(capsys, "predict", str(tmp_path / "more" / "bundle.zip"), str(digit))
    assert code == 0 and json.loads(out)["predictions"][0]["top"][0]["name"] == str(load_dataset("mnist").y_test[0])


def test_a_run_interrupted_by_an_error_is_saved_so_far(tmp_path, capsys, monkeypatch):
    from cnnlab.cli import ProgressBar

    def out_of_memory(self, progress):
        if progress.step == 3:
            raise MemoryError()

    monkeypatch.setattr(ProgressBar, "on_batch", out_of_memory)
    code, _, err = run_cli(capsys, "train", "lenet5", "--epochs", "1", "--sample", "0.1", "--out", str(tmp_path / "r"))
    assert code == 1 and "ran out of memory" in err and "saved in" in err
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())["batches"]) == 3


@pytest.mark.parametrize("argv, words", [
    (["summary", "resnet"], ["Unknown architecture", "lenet5"]),
    (["summary", "lenet5", "--input-size", "20"], ["c5_conv", "at least 32"]),
    (["summary", "lenet5", "--width", "-1"], ["width"]),
    (["summary", "lenet5", "--set", "pooling"], ["KNOB=VALUE"]),
    (["summary", "lenet5", "--width", "abc"], ["width", "abc"]),
    (["train", "lenet5", "--epochs", "0", "--out", "x"], ["epochs"]),
    (["train", "lenet5", "--sample", "3", "--out", "x"], ["fraction"]),
    (["train", "lenet5", "--data", "absent.npz", "--out", "x"], ["absent.npz"]),
    (["train", "lenet5"], ["--out"]),
    (["evaluate", "absent.keras", "--data", "x.npz"], ["No such model file"]),
    (["predict", "absent.keras", "a.png"], ["No such model file"]),
    (["continue", "absent", "--epochs", "1", "--out", "x"], ["No run bundle"]),
    (["continue", "absent"], ["--epochs", "--out"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_mistakes_give_one_line_and_exit_code_2(argv, words, capsys):
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's own checks
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert all(word in err for word in words), err


def test_corrupt_files_exit_2_without_traceback(tmp_path, lenet_run_dir):
    corrupt_model = tmp_path / "model.keras"
    corrupt_model.write_bytes(b"\x00" * 100)
    corrupt_image = tmp_path / "digit.png"
    corrupt_image.write_bytes(b"\x89PNG broken")
    corrupt_data = tmp_path / "data.npz"
    corrupt_data.write_text("nonsense")
    for argv in (["evaluate", str(corrupt_model), "--data", str(corrupt_data)],
                 ["evaluate", str(lenet_run_dir), "--data", str(corrupt_data)],
                 ["predict", str(lenet_run_dir), str(corrupt_image)]):
        done = subprocess.run([sys.executable, "-m", "cnnlab", *argv], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 2, (argv, done.stderr)
        ours = [line for line in done.stderr.splitlines() if not _native_startup_log(line)]
        assert "Traceback" not in done.stderr and len(ours) == 1 and ours[0].startswith("error:"), done.stderr


def _native_startup_log(line: str) -> bool:
    """TensorFlow's C++ start-up notes (absl, oneDNN), which some builds print before Python runs
    any of cnnlab's code and whatever TF_CPP_MIN_LOG_LEVEL says."""
    return line.startswith(("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "W0000 "))


class Started(Exception):
    """Training began: what a refused run must never reach."""


@pytest.fixture
def no_training(monkeypatch):
    """Training raises Started instead of running, so a test sees whether a run would have begun."""
    def started(*args, **kwargs):
        raise Started()

    monkeypatch.setattr("cnnlab.cli.train", started)


@pytest.mark.parametrize("out", ["/proc/1", "/proc/1/run", "{file}/run"])
def test_an_unwritable_out_is_refused_before_training(out, tmp_path, capsys, no_training):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = out.format(file=blocker)
    code, _, err = run_cli(capsys, "train", "lenet5", "--epochs", "1", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot write to {out}: "), err


def test_a_run_that_does_not_fit_is_refused_with_options_and_nothing_trains(tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 1500 * 2**20)
    code, _, err = run_cli(capsys, "train", "alexnet", "--input-size", "224", "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "GB of memory" in err and "1.5 GB free" in err and "0.4 GB is kept back" in err, err
    assert "Settings that would fit: " in err and "On the command line: " in err and "--no-memory-check" in err
    assert "--width 0." in err and "--accumulation-steps " in err
    assert not (tmp_path / "run").exists()


def test_a_suggested_option_fits_and_no_memory_check_starts_anyway(tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 1500 * 2**20)
    code, _, err = run_cli(capsys, "train", "alexnet", "--input-size", "224", "--out", str(tmp_path / "run"))
    assert code == 2
    width = err.split("--width ")[1].split()[0]
    with pytest.raises(Started):
        main(["train", "alexnet", "--input-size", "224", "--width", width, "--out", str(tmp_path / "run")])
    with pytest.raises(Started):
        main(["train", "alexnet", "--input-size", "224", "--no-memory-check", "--out", str(tmp_path / "run")])


def test_the_cli_keeps_the_classrooms_reserve_from_its_settings_file(tmp_path, capsys, monkeypatch, no_training):
    from cnnlab import ModelConfig, TrainConfig
    from cnnlab.cost import estimate_cost

    lenet = estimate_cost(TrainConfig(ModelConfig("lenet5")), 60000, 5000, macs_per_second=1.0)  # the bundled MNIST
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: lenet.peak_bytes - lenet.breakdown["runtime"] + 2**27)
    code, _, err = run_cli(capsys, "train", "lenet5", "--out", str(tmp_path / "run"))  # the shipped 400 MB reserve
    assert code == 2 and "0.4 GB is kept back" in err
    settings = tmp_path / "classroom.toml"
    settings.write_text("[classroom]\nmemory_reserve_mb = 64\n")
    monkeypatch.setenv("CNNLAB_CLASSROOM", str(settings))
    with pytest.raises(Started):
        main(["train", "lenet5", "--out", str(tmp_path / "run")])


def test_continuing_a_run_that_no_longer_fits_is_refused(lenet_run_dir, tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 200 * 2**20)  # the data loads, the run does not fit
    code, _, err = run_cli(capsys, "continue", str(lenet_run_dir), "--epochs", "1", "--out", str(tmp_path / "more"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "GB of memory" in err
    assert "Or --no-memory-check to start anyway." in err and "On the command line" not in err
    assert not (tmp_path / "more").exists()
