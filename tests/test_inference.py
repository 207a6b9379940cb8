"""Predictions on raw images: probabilities, top-k, a random test image, image files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab import build_model, load_dataset, load_trained, predict_proba, random_test_image, read_image, top_k


@pytest.fixture(scope="module")
def lenet():
    return build_model("lenet5")


def test_probabilities_for_one_image_or_many(lenet):
    x = load_dataset("mnist").x_test[:3]
    many = predict_proba(lenet, x)
    assert many.shape == (3, 10) and np.allclose(many.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(predict_proba(lenet, x[0]), many[:1], atol=1e-6)
    np.testing.assert_allclose(predict_proba(lenet, x[0, :, :, 0]), many[:1], atol=1e-6)  # no channel axis


@pytest.mark.parametrize("images, words", [
    (np.zeros((2, 32, 32, 3), np.uint8), ["(28, 28, 1)", "(32, 32, 3)"]),
    (np.full((1, 28, 28, 1), 999), ["between 0 and 255"]),
    (np.zeros((0, 28, 28, 1)), ["N > 0"]),
    (np.array(["a", "b"]), ["expected images"]),
])
def test_wrong_images_are_explained(lenet, images, words):
    with pytest.raises(ValueError) as error:
        predict_proba(lenet, images)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_top_k_orders_classes_with_names():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    result = top_k(probabilities, ("cat", "dog", "frog"), k=2)
    assert [[c["name"] for c in row] for row in result] == [["dog", "frog"], ["cat", "frog"]]
    assert result[0][0] == {"class": 1, "name": "dog", "probability": 0.6}
    assert len(top_k(probabilities, ("cat", "dog", "frog"), k=10)[0]) == 3


def test_random_test_image_is_reproducible():
    data = load_dataset("cifar10")
    index, image, label = random_test_image(data, rng=7)
    again = random_test_image(data, rng=7)
    assert again[0] == index and label == int(data.y_test[index])
    np.testing.assert_array_equal(image, data.x_test[index])


def test_image_files_become_raw_dataset_images(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (300, 200), (255, 0, 0)).save(photo)
    as_mnist = read_image(photo, (28, 28, 1), digit=False)
    as_cifar = read_image(photo, (32, 32, 3))
    assert as_mnist.shape == (28, 28, 1) and as_mnist.dtype == np.uint8
    assert as_cifar.shape == (32, 32, 3) and as_cifar[..., 0].min() > 240 and as_cifar[..., 1:].max() < 15
    rgba = tmp_path / "digit.png"
    Image.new("RGBA", (28, 28), (0, 0, 0, 0)).save(rgba)
    assert read_image(rgba, (28, 28, 1), digit=False).min() == 255  # transparency is white paper
    with pytest.raises(ValueError, match="empty"):
        read_image(rgba, (28, 28, 1))  # read as a digit, blank paper has none


def test_files_that_are_not_images(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    with pytest.raises(ValueError, match="PNG or JPEG"):
        read_image(fake, (28, 28, 1))
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "absent.png", (28, 28, 1))


def test_trained_model_loads_with_its_class_names(lenet_run_dir):
    trained = load_trained(lenet_run_dir)
    assert trained.class_names[3] == "3" and trained.image_shape == (28, 28, 1)
    assert load_trained(lenet_run_dir / "model.keras").class_names == trained.class_names


def test_unreadable_models(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a Keras model"):
        load_trained(bad)
    with pytest.raises(FileNotFoundError, match="has no bundle.zip"):
        load_trained(tmp_path / "..")
