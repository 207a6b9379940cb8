"""`--data DIR/`: a folder with one folder of images per class, as Keras's image_dataset_from_directory
reads it, for train, evaluate and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.cli import main
from tests.test_owndata import pattern


def write_classes(root, classes, per_class: int = 10, seed: int = 0):
    """A folder of class folders of clearly different patterns (tests.test_owndata.PATTERNS), and a note."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(pattern(name, rng, side=80))
    (root / classes[0] / "notes.txt").write_text("not an image")
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    data = write_classes(root / "train", ["stripes", "bars", "grey"])
    out = root / "run"
    assert main(["train", "transfer", "--data", f"{data}/", "--set", "base=vgg16", "--set", "weights=random",
                 "--input-size", "64", "--epochs", "8", "--batch-size", "8", "--out", str(out)]) == 0
    return root, out


def test_train_on_a_folder_holds_out_a_stratified_test_split_and_reports_on_it(trained):
    root, out = trained
    record = json.loads((out / "run.json").read_text())
    assert record["class_names"] == ["bars", "grey", "stripes"]  # Keras's order: sorted by name
    assert record["dataset"]["n_test"] == 6 and record["dataset"]["n_train"] == 24  # 2 of each class's 10
    assert record["result"]["test_accuracy"] > 0.9


def test_evaluate_and_predict_on_other_folders_with_the_same_class_names(trained, tmp_path, capsys):
    root, out = trained
    other = write_classes(tmp_path / "other", ["grey", "stripes", "bars"], per_class=4, seed=7)
    code, text, _ = run(capsys, "evaluate", out, "--data", other)
    result = json.loads(text)
    assert code == 0 and result["n"] == 12 and result["accuracy"] > 0.9 and set(result["per_class"]) == \
        {"bars", "grey", "stripes"}
    code, text, _ = run(capsys, "predict", out, "--data", other / "grey", "--top", "1")
    predictions = json.loads(text)["predictions"]
    assert code == 0 and len(predictions) == 4 and all(p["top"][0]["name"] == "grey" for p in predictions)


@pytest.mark.parametrize("make, words", [
    (lambda root: root / "missing", "no such folder"),
    (lambda root: write_classes(root, ["grey"]), "one folder per class"),
    (lambda root: (write_classes(root, ["grey"]), (root / "empty").mkdir())[0], "holds no PNG or JPEG"),
])
def test_a_bad_folder_gives_one_clear_line_and_exit_2(tmp_path, capsys, make, words):
    folder = make(tmp_path / "data")
    code, _, err = run(capsys, "train", "lenet5", "--data", f"{folder}/", "--out", tmp_path / "out")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_evaluating_on_a_folder_of_other_classes_is_refused(trained, tmp_path, capsys):
    _, out = trained
    (tmp_path / "other" / "cat").mkdir(parents=True)
    write_classes(tmp_path / "other", ["grey"])
    (tmp_path / "other" / "cat" / "1.png").write_bytes((tmp_path / "other" / "grey" / "1.png").read_bytes())
    code, _, err = run(capsys, "evaluate", out, "--data", tmp_path / "other")
    assert code == 2 and "not the model's classes" in err
