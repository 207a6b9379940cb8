"""Datasets: the bundled samples, any .npz in Keras's layout, sampling, and the full download."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab import DATASETS, Dataset, load_dataset, load_npz
from cnnlab.datasets import CIFAR10_CLASSES


@pytest.mark.parametrize("name, n_train, n_test, shape", [("mnist", 60000, 5000, (28, 28, 1)),
                                                          ("cifar10", 5000, 1000, (32, 32, 3))])
def test_bundled_data_is_the_lectures(name, n_train, n_test, shape):
    """All of MNIST's training images, as the lecture trains LeNet-5; CIFAR-10's 10% sample."""
    data = load_dataset(name)
    assert (len(data.x_train), len(data.x_test)) == (n_train, n_test)
    assert data.image_shape == shape and data.x_train.dtype == np.uint8
    assert data.y_train.shape == (n_train,) and set(np.unique(data.y_train)) == set(range(10))
    assert data.class_names == DATASETS[name].class_names


def test_bundled_files_fit_the_size_budget():
    from cnnlab.data import BUNDLED_DIR

    assert sum(f.stat().st_size for f in BUNDLED_DIR.glob("*.npz")) <= 30 * 2**20


def test_the_bundled_data_credits_its_sources():
    from cnnlab.data import BUNDLED_DIR

    credits = (BUNDLED_DIR / "README.md").read_text()
    assert "60,000" in credits and "LeCun" in credits and "Krizhevsky" in credits and "JPEG" in credits
    assert "H200" in credits  # the full-scale reference runs say where they were measured


def test_a_default_lenet_run_trains_on_all_60000_digits(tmp_path, capsys):
    from cnnlab.cli import main

    assert main(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "2", "--out", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["dataset"]["n_train"] == 60000 and run["dataset"]["n_test"] == 5000


def test_cifar_class_names_in_keras_order():
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[9] == "truck"


def test_sampling_draws_without_replacement_and_is_seeded():
    data = load_dataset("cifar10")
    a, b, c = data.sample(0.1, seed=1), data.sample(0.1, seed=1), data.sample(0.1, seed=2)
    assert (len(a.x_train), len(a.x_test)) == (500, 100)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_sampling_never_repeats_an_image():
    n = 1000
    numbered = np.arange(n, dtype=np.uint16).view(np.uint8).reshape(n, 1, 2, 1)  # each image spells its index
    data = Dataset("numbered", "file", numbered, np.zeros(n, np.int64), numbered[:100], np.zeros(100, np.int64),
                   ("a", "b"))
    picked = data.sample(0.5, seed=3).x_train.reshape(-1, 2).copy().view(np.uint16).ravel()
    assert len(picked) == 500 and len(set(picked.tolist())) == 500


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, float("nan"), "half"])
def test_bad_fractions_are_refused(fraction):
    with pytest.raises(ValueError, match="fraction"):
        load_dataset("mnist").sample(fraction)


def test_real_shared_files_load_in_keras_layout(shared_datasets):
    mnist = load_npz(shared_datasets / "mnist.npz")
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.class_names == DATASETS["mnist"].class_names
    cifar = load_npz(shared_datasets / "cifar10.npz")
    assert cifar.y_train.shape == (10000,) and cifar.class_names[3] == "cat"


def test_any_npz_with_grayscale_and_column_labels(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=rng.integers(0, 256, (20, 28, 28)), y_train=rng.integers(0, 3, (20, 1)),
             x_test=rng.integers(0, 256, (5, 28, 28)), y_test=rng.integers(0, 3, (5, 1)))
    data = load_dataset(path=path)
    assert data.x_train.shape == (20, 28, 28, 1) and data.y_test.shape == (5,)
    assert data.source == "file"


@pytest.mark.parametrize("arrays, words", [
    (dict(x_train=np.zeros((4, 28, 28))), ["x_train/y_train and x_test/y_test", "x_train"]),
    (dict(x_train=np.full((2, 8, 8), 300), y_train=np.zeros(2), x_test=np.zeros((1, 8, 8)), y_test=np.zeros(1)),
     ["between 0 and 255"]),
    (dict(x_train=np.zeros((2, 8, 8)), y_train=np.zeros(3), x_test=np.zeros((1, 8, 8)), y_test=np.zeros(1)),
     ["expected 2 labels"]),
    (dict(x_train=np.zeros((2, 8, 8)), y_train=np.zeros(2), x_test=np.zeros((1, 9, 9)), y_test=np.zeros(1)),
     ["same image size"]),
    (dict(x_train=np.full((2, 8, 8), np.nan), y_train=np.zeros(2), x_test=np.zeros((1, 8, 8)), y_test=np.zeros(1)),
     ["NaN"]),
])
def test_malformed_npz_files_explain_what_is_wrong(tmp_path, arrays, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as error:
        load_npz(path)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_corrupt_and_missing_files(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(corrupt)
    with pytest.raises(FileNotFoundError, match="No such data file"):
        load_npz(tmp_path / "absent.npz")


def test_unknown_dataset_and_source():
    with pytest.raises(ValueError, match="mnist, cifar10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="bundled, full"):
        load_dataset("mnist", source="cloud")


def test_full_source_offline_names_the_bundled_alternative(monkeypatch):
    import keras.src.datasets.mnist as keras_mnist

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras_mnist, "get_file", no_network)
    with pytest.raises(ValueError) as error:
        load_dataset("mnist", source="full")
    assert "bundled" in str(error.value) and "MNIST" in str(error.value)


def test_full_source_uses_keras_loader_and_its_cache(monkeypatch, shared_datasets):
    import keras.src.datasets.mnist as keras_mnist

    asked = {}

    def cached_download(fname, origin, **kwargs):
        asked.update(fname=fname, origin=origin, kwargs=kwargs)
        return str(shared_datasets / "mnist.npz")  # what Keras's cache holds after a download

    monkeypatch.setattr(keras_mnist, "get_file", cached_download)
    data = load_dataset("mnist", source="full")
    assert data.source == "full" and data.x_train.shape == (60000, 28, 28, 1)
    assert asked["fname"] == "mnist.npz" and "cache_dir" not in asked["kwargs"]
