"""A trained model taken anywhere: each format, run in its own runtime on the raw uint8 pixels, gives
the Keras model's probabilities; its package's README runs as written; `cnnlab export` writes it."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cnnlab import exports
from cnnlab.architectures import build_model
from cnnlab.cli import main
from cnnlab.errors import LabError
from cnnlab.runs import load_trained

TOLERANCE = 1e-4  # largest difference of a probability between Keras and a format's runtime
FORMATS = list(exports.FORMATS)


@pytest.fixture(scope="module")
def lenet(lenet_run_dir):
    """The session's LeNet-5, trained for an epoch: digits padded from 28x28 to 32x32 inside."""
    trained = load_trained(lenet_run_dir)
    return trained.model, list(trained.class_names)


@pytest.fixture(scope="module")
def photos():
    """A transfer network on one's own 96x96 photos, 3 classes: ImageNet's preprocessing and a
    fitted Normalization inside, a random MobileNetV2 base (nothing is downloaded). Its 50 layers
    of random convolutions carry float32's rounding far: Keras's own eager call and predict differ
    by about 3e-5 on its probabilities."""
    keras.utils.set_random_seed(0)
    model = build_model("transfer", input_size=96, raw_shape=(96, 96, 3), classes=3,
                        knobs={"base": "mobilenetv2", "weights": "random"})
    fit_statistics(model, images_for(model, 16, seed=1))
    return model, ["cat", "dog", "고양이"]


@pytest.fixture(scope="module")
def alexnet():
    """AlexNet at a tenth of its width on CIFAR-10's 32x32 images, resized to 224 inside."""
    keras.utils.set_random_seed(0)
    model = build_model("alexnet", width=0.1)
    sharpen(model, 200.0)
    return model, [f"class {i}" for i in range(10)]


MODELS = ["lenet", "photos", "alexnet"]


def fit_statistics(model: keras.Model, images: np.ndarray) -> None:
    """Give a random base and head statistics of real activations, as training would: one pass
    with every batch normalisation taking its batch's mean and variance (unfitted, a random
    MobileNetV2 fades the picture to nothing), then the head's Normalization fitted to the features."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.trainable, layer.momentum = True, 0.0
    model(images.astype("float32"), training=True)
    for layer in norms:
        layer.trainable = False
    head = model.get_layer("head_norm")
    features = keras.Model(model.input, head.input).predict(images.astype("float32"), verbose=0)
    head.adapt_mean.assign(features.mean(axis=0))
    head.adapt_variance.assign(features.var(axis=0))
    head.finalize_state()


def sharpen(model: keras.Model, factor: float) -> None:
    """Scale the classifier's weights, so that random networks give clearly different probabilities."""
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * factor, bias])


def images_for(model: keras.Model, n: int = 4, seed: int = 0) -> np.ndarray:
    """Raw uint8 pictures at the model's input size: smooth blobs, not noise, as photos and digits are."""
    rng = np.random.default_rng(seed)
    height, width, channels = model.input_shape[1:]
    small = rng.uniform(0, 255, (n, 4, 4, channels))
    return np.stack([np.asarray(Image.fromarray(image.squeeze(-1) if channels == 1 else image)
                                .resize((width, height), Image.BILINEAR)).reshape(height, width, channels)
                     for image in small.astype(np.uint8)])


@pytest.fixture(scope="module")
def packages(request):
    """Each model's package in each format, exported once for the module."""
    made = {}

    def package(model_name: str, fmt: str):
        if (model_name, fmt) not in made:
            model, names = request.getfixturevalue(model_name)
            made[model_name, fmt] = exports.export_package(model, names, fmt)
        return made[model_name, fmt]

    return package


def unzip(data: bytes, folder: Path) -> Path:
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
    return folder


def run_in_runtime(fmt: str, folder: Path, images: np.ndarray) -> np.ndarray:
    """The probabilities of the exported model, computed by the runtime a user runs it with."""
    if fmt == "keras":
        return keras.models.load_model(folder / "model.keras").predict(images, verbose=0)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(folder / "model.tflite"))
        entry, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(entry["index"], images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(result["index"])
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder / "saved_model"))  # held: its functions keep only weak references
    return loaded.serve(images).numpy()


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_keras_models_probabilities_on_raw_pixels(fmt, model_name, packages, request,
                                                                         tmp_path):
    model, names = request.getfixturevalue(model_name)
    images = images_for(model)
    expected = model.predict(images.astype("float32"), verbose=0)
    top, second = np.sort(expected, axis=1)[:, :-3:-1].T
    assert (top - second).min() > 10 * TOLERANCE, "the top class is clear, for its runtime to agree on"
    folder = unzip(packages(model_name, fmt), tmp_path)
    found = run_in_runtime(fmt, folder, images)
    assert found.shape == expected.shape
    assert np.array_equal(found.argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(found - expected).max() < TOLERANCE
    assert json.loads((folder / "labels.json").read_text(encoding="utf-8")) == {
        "labels": names, "input": {"shape": [None, *model.input_shape[1:]], "dtype": "uint8"},
        "output": "probabilities"}


def every_layer(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from every_layer(layer)


@pytest.mark.parametrize("model_name", MODELS)
def test_the_exported_model_is_made_of_keras_own_layers(model_name, request):
    model, _ = request.getfixturevalue(model_name)
    portable = exports.portable_model(model)
    modules = {type(layer).__module__ for layer in every_layer(portable)}
    assert all(module.startswith("keras.") for module in modules), modules
    assert portable.input.dtype == "uint8" and portable.input_shape == model.input_shape


@pytest.mark.parametrize("model_name, fmt", [("photos", fmt) for fmt in FORMATS] + [("lenet", "onnx")])
def test_the_readme_runs_as_written_on_an_image_file(model_name, fmt, packages, request, tmp_path):
    """Its script, copied out of the README, in a fresh Python that has never imported CNN Lab."""
    model, names = request.getfixturevalue(model_name)
    folder = unzip(packages(model_name, fmt), tmp_path)
    readme = (folder / "README.md").read_text(encoding="utf-8")
    script = readme.split("```python\n")[1].split("\n```")[0]
    (folder / "predict.py").write_text(script, encoding="utf-8")
    image = images_for(model, 1, seed=7)[0]
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(folder / "image.png")
    done = subprocess.run([sys.executable, "-I", "predict.py"], cwd=folder, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    label, probability = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    expected = model.predict(image[None].astype("float32"), verbose=0)[0]
    assert label == names[int(expected.argmax())]
    assert abs(float(probability) - expected.max()) < TOLERANCE


def test_cnnlab_export_writes_the_model_with_its_labels_or_the_package(lenet_run_dir, tmp_path, capsys):
    assert main(["export", str(lenet_run_dir), "--format", "onnx", "--out", str(tmp_path / "digits.onnx")]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said == {"format": "onnx", "written": [str(tmp_path / "digits.onnx"), str(tmp_path / "labels.json")]}
    assert json.loads((tmp_path / "labels.json").read_text())["labels"] == [str(d) for d in range(10)]

    package = tmp_path / "out" / "digits.zip"
    assert main(["export", str(lenet_run_dir / "bundle.zip"), "--format", "litert", "--out", str(package)]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(package)]
    assert sorted(zipfile.ZipFile(package).namelist()) == ["README.md", "labels.json", "model.tflite"]


def without(monkeypatch, package: str) -> None:
    """As if `package` were not installed: importlib finds no spec for it."""
    found = importlib.util.find_spec

    def find_spec(name, *more):
        return None if name == package else found(name, *more)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_a_missing_package_is_named_with_its_install_command_and_nothing_is_written(lenet_run_dir, tmp_path,
                                                                                      capsys, monkeypatch):
    without(monkeypatch, "tf2onnx")
    assert exports.missing_packages("onnx") == ["tf2onnx"] and exports.missing_packages("litert") == []
    out = tmp_path / "digits.onnx"
    assert main(["export", str(lenet_run_dir), "--format", "onnx", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "tf2onnx" in error and "`pip install tf2onnx`" in error
    assert list(tmp_path.iterdir()) == []
    assert "tf2onnx" in exports.unavailable("onnx").in_language("ko")


def test_a_converters_failure_is_a_learners_error_and_leaves_nothing(lenet, tmp_path, monkeypatch):
    model, names = lenet

    def fails(*args, **kwargs):
        raise RuntimeError("the converter gave up\nits long log")

    monkeypatch.setattr(keras.Model, "export", fails)
    with pytest.raises(LabError, match=r"as LiteRT \(RuntimeError: the converter gave up\)\. Nothing was written"):
        exports.export_file(model, names, "litert", tmp_path / "digits.tflite")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LabError, match="is a folder that exists already"):
        exports.export_file(model, names, "keras", tmp_path)
    with pytest.raises(LabError, match="format must be one of"):
        exports.export_package(model, names, "pickle")
    with pytest.raises(LabError, match="10 classes"):
        exports.export_package(model, names[:3], "keras")


def test_the_memory_guard_refuses_an_export_that_would_not_fit(lenet, monkeypatch):
    model, names = lenet
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 2**20)
    with pytest.raises(LabError, match="Exporting this model as ONNX needs about .* SavedModel becomes ONNX"):
        exports.export_package(model, names, "onnx")


def export_page():
    from app.exports import download
    from cnnlab.architectures import build_model

    download(build_model("lenet5"), [str(digit) for digit in range(10)], "lenet5_run1")


def test_the_page_converts_only_when_asked_and_names_what_is_missing(monkeypatch):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(export_page, default_timeout=120).run()
    assert not at.exception and not at.get("download_button")
    at.button(key="export-prepare-lenet5_run1").click().run()
    assert not at.exception and len(at.get("download_button")) == 1
    assert at.get("download_button")[0].proto.label == "Download it as Keras (.zip)"
    at.selectbox(key="export-format-lenet5_run1").select("onnx").run()
    assert not at.get("download_button") and at.button(key="export-prepare-lenet5_run1")

    without(monkeypatch, "onnx")
    at.run()
    assert not at.exception and "`pip install onnx`" in at.info[0].value
    assert not at.get("download_button") and not at.button
