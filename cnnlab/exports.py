"""A trained model to take anywhere: Keras, ONNX, LiteRT or a TensorFlow SavedModel, preprocessing inside.

    data = export_package(model, class_names, "onnx")   # a zip: model.onnx, labels.json, README.md
    export_file(model, class_names, "litert", "digits.tflite")

Every exported model takes the raw image as it comes from a file, uint8 pixels 0-255 shaped
(batch, height, width, channels) at the model's own input size, and gives one probability per class:
the padding, resizing and pixel scaling the lab puts in front of each network travel inside it. It is
built of Keras's own layers only, so that nothing of CNN Lab is needed where it runs, and it is
written by Keras's own exporters (`model.export`, `model.save`).
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from . import checks, memory
from .architectures.preprocessing import ImageNetPreprocess
from .errors import LabError, Text


@dataclass(frozen=True)
class Package:
    """A Python package: the name it is imported by, and the one pip installs."""

    module: str
    pip: str


@dataclass(frozen=True)
class ExportFormat:
    name: str                     # Keras's name for it, as `model.export(format=...)` takes it
    title: str
    file: str                     # the model inside a download; a name without a suffix is a folder
    needs: tuple[Package, ...]    # to export it, beyond CNN Lab's own requirements (on TensorFlow)
    runtime: tuple[Package, ...]  # to run it elsewhere, with NumPy and Pillow for the README's lines
    memory: int                   # an export's peak memory, in multiples of the weights, beside EXPORT_OVERHEAD
    imports: str                  # the README script's import of the runtime
    run: str                      # its lines that load the model and turn `batch` into `probabilities`


KERAS = Package("keras", "keras")
TENSORFLOW = Package("tensorflow", "tensorflow")

FORMATS = {f.name: f for f in (
    ExportFormat("keras", "Keras", "model.keras", (), (KERAS, TENSORFLOW), memory=4, imports="import keras", run="""\
model = keras.models.load_model("model.keras")
probabilities = model.predict(batch, verbose=0)[0]"""),
    # Keras converts through tf2onnx on TensorFlow, and patches it with onnx's own types. tf2onnx
    # freezes, folds and optimises the graph with its weights inside, many copies at once.
    ExportFormat("onnx", "ONNX", "model.onnx", (Package("tf2onnx", "tf2onnx"), Package("onnx", "onnx")),
                 (Package("onnxruntime", "onnxruntime"),), memory=60,
                 imports="import onnxruntime", run="""\
session = onnxruntime.InferenceSession("model.onnx")
probabilities = session.run(None, {session.get_inputs()[0].name: batch})[0][0]"""),
    # On TensorFlow, Keras writes LiteRT with TensorFlow's own converter (tf.lite).
    ExportFormat("litert", "LiteRT", "model.tflite", (), (Package("ai_edge_litert", "ai-edge-litert"),), memory=12,
                 imports="from ai_edge_litert.interpreter import Interpreter", run="""\
interpreter = Interpreter(model_path="model.tflite")
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
interpreter.invoke()
probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]"""),
    ExportFormat("tf_saved_model", "TensorFlow SavedModel", "saved_model", (), (TENSORFLOW,), memory=5,
                 imports="import tensorflow as tf", run="""\
model = tf.saved_model.load("saved_model")
probabilities = model.serve(batch).numpy()[0]"""),
)}

# Measured on TensorFlow 2.21, peak resident memory while exporting AlexNet at widths 0.5 and 1,
# VGG19 at 0.5 and a MobileNetV2 transfer network: Keras 3.6 times the weights, SavedModel 3.9,
# LiteRT 7.6 to 9.9, ONNX 53 to 56, each beside up to 250 MB that does not grow with the model.
EXPORT_OVERHEAD = 256 * 2**20

_ONE_AT_A_TIME = threading.Lock()  # the converters keep process-wide state, and each takes that much memory


def get_format(name: str | ExportFormat) -> ExportFormat:
    return name if isinstance(name, ExportFormat) else FORMATS[checks.choice(name, "format", FORMATS)]


def missing_packages(fmt: str | ExportFormat) -> list[str]:
    """The pip names of the packages exporting as `fmt` needs and this Python cannot import."""
    return [package.pip for package in get_format(fmt).needs if importlib.util.find_spec(package.module) is None]


def unavailable(fmt: str | ExportFormat) -> LabError | None:
    """Why `fmt` cannot be exported here (its packages are missing, with the command that adds
    them), or None when it can."""
    spec, missing = get_format(fmt), missing_packages(fmt)
    if not missing:
        return None
    return LabError("export_needs", format=spec.title, packages=", ".join(missing),
                    command="pip install " + " ".join(missing))


def export_file(model: keras.Model, class_names, fmt: str | ExportFormat, out: str | Path) -> Path:
    """Write `model` as `fmt` at `out` (a folder for a SavedModel). Nothing is written when the
    export fails: a converter's failure is a LabError that says why."""
    spec, out = get_format(fmt), Path(out)
    _check_names(model, class_names)
    if out.is_dir():
        raise LabError("export_exists", path=str(out))
    with tempfile.TemporaryDirectory(prefix="cnnlab-export-") as folder:
        written = _export(model, spec, Path(folder))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, out)
    return out


def export_package(model: keras.Model, class_names, fmt: str | ExportFormat) -> bytes:
    """A zip of the model as `fmt`, its labels.json, and a README.md with the lines that run it on
    one image file."""
    spec = get_format(fmt)
    _check_names(model, class_names)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="cnnlab-export-") as folder:
        written = _export(model, spec, Path(folder))
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted([written, *written.rglob("*")]):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
            zf.writestr("labels.json", labels_json(model, class_names))
            zf.writestr("README.md", readme(model, spec))
    return buffer.getvalue()


def labels(model: keras.Model, class_names) -> dict:
    """What labels.json says: the class names in the order of the output, and the input taken."""
    _check_names(model, class_names)
    return {"labels": [str(name) for name in class_names],
            "input": {"shape": [None, *map(int, model.input_shape[1:])], "dtype": "uint8"},
            "output": "probabilities"}


def labels_json(model: keras.Model, class_names) -> str:
    return json.dumps(labels(model, class_names), ensure_ascii=False) + "\n"


def readme(model: keras.Model, fmt: str | ExportFormat) -> str:
    """The package's README: what is inside, what goes in and out, and a script that runs it on image.png."""
    spec = get_format(fmt)
    height, width, channels = map(int, model.input_shape[1:])
    picture = "grey" if channels == 1 else "colour (RGB)"
    install = " ".join(package.pip for package in spec.runtime) + " numpy pillow"
    return f"""# {model.name} as {spec.title}

- `{spec.file}{"" if Path(spec.file).suffix else "/"}`: the trained network, its preprocessing inside
- `labels.json`: the class names, in the order of the output, and the input the network takes

**Input**: raw {picture} pixels as they come from an image file, uint8 from 0 to 255, shaped
(batch, {height}, {width}, {channels}). No scaling or normalisation: the network does its own.

**Output**: one probability per class, in the order of `labels.json`.

## Run it

```bash
pip install {install}
```

Save these lines as `predict.py` beside the files above, put your picture beside them as `image.png`,
and run `python predict.py`: it prints the most likely class and its probability.

```python
{script(spec)}
```
""" + ("\nA digit network trained on MNIST reads a white digit on black, centred and about 20 pixels tall in 28, as\n"
       "MNIST's digits are; CNN Lab's Predict page makes a photo of a digit so before it asks the network.\n"
       if channels == 1 else "")


def script(fmt: str | ExportFormat) -> str:
    """The README's script for `fmt`: one image file in, the most likely class and its probability out."""
    spec = get_format(fmt)
    return f"""import json

import numpy as np
{spec.imports}
from PIL import Image

info = json.load(open("labels.json", encoding="utf-8"))
_, height, width, channels = info["input"]["shape"]
image = Image.open("image.png").convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
batch = np.asarray(image, dtype=np.uint8).reshape(1, height, width, channels)

{spec.run}

best = int(np.argmax(probabilities))
print(info["labels"][best], float(probabilities[best]))"""


def portable_model(model: keras.Model) -> keras.Model:
    """A copy of `model` as it travels: raw uint8 pixels in, probabilities out, made of Keras's own
    layers only. The copy has its own weights, so the model itself is never touched while another
    learner predicts with it. CNN Lab's ImageNet preprocessing becomes a Dense layer over the
    channels, and a Normalization two Rescalings: the same arithmetic, with the numbers written into
    the graph (tf2onnx turns a Normalization's tensors into extra inputs of the ONNX model)."""
    copy = keras.models.clone_model(model, clone_function=_keras_layer, recursive=True)
    _copy_weights(model, copy)
    pixels = keras.Input(model.input_shape[1:], dtype="uint8", name="image")
    as_float = layers.Rescaling(1.0, name="pixels")(pixels)  # Rescaling casts to its float32 first
    return keras.Model(pixels, copy(as_float), name=model.name)


def _keras_layer(layer: layers.Layer) -> layers.Layer:
    """The layer's equivalent among Keras's own, unbuilt, for `clone_model`."""
    if isinstance(layer, ImageNetPreprocess):
        return _channel_map(layer)
    if isinstance(layer, layers.Normalization):
        return _standardise(layer)
    return layer.__class__.from_config(layer.get_config())


def _channel_map(layer: layers.Layer) -> layers.Dense:
    """A layer that maps each pixel's channels affinely (ImageNet's preprocessing: a scale, a shift,
    RGB to BGR) as a Dense layer over the channels, its matrix and offset read from the layer's
    answers to a black pixel and to one unit pixel per channel."""
    channels = int(layer.input.shape[-1])
    probe = np.concatenate([np.zeros((1, channels)), np.eye(channels)]).astype("float32")
    answers = ops.convert_to_numpy(layer(probe.reshape(channels + 1, 1, 1, channels))).reshape(channels + 1, -1)
    dense = layers.Dense(answers.shape[1], name=layer.name)
    dense.build((None, channels))
    dense.set_weights([answers[1:] - answers[0], answers[0]])
    return dense


def _standardise(layer: layers.Normalization) -> keras.Sequential:
    """A Normalization as two Rescalings, subtracting before scaling as it does: one Rescaling,
    x * s - m * s, would lose the digits that a feature's small spread around a large mean keeps."""
    mean, variance = (np.asarray(ops.convert_to_numpy(v), "float32") for v in (layer.mean, layer.variance))
    spread = np.maximum(np.sqrt(variance), keras.config.epsilon())
    if layer.invert:
        steps = [layers.Rescaling(spread, name="scale"), layers.Rescaling(1.0, offset=mean, name="shift")]
    else:
        steps = [layers.Rescaling(1.0, offset=-mean, name="shift"), layers.Rescaling(1 / spread, name="scale")]
    return keras.Sequential(steps, name=layer.name)


def _copy_weights(source: keras.Model, copy: keras.Model) -> None:
    """Each layer's weights into its clone, by name; the replacements carry their numbers already."""
    for layer in copy.layers:
        original = source.get_layer(layer.name)
        if type(layer) is not type(original):
            continue
        if isinstance(layer, keras.Model):
            _copy_weights(original, layer)
        elif original.weights:
            layer.set_weights(original.get_weights())


def _export(model: keras.Model, spec: ExportFormat, folder: Path) -> Path:
    """`model` written as `spec` in `folder`: the path of its file (or folder)."""
    problem = unavailable(spec)
    if problem is not None:
        raise problem
    weight_bytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    path = folder / spec.file
    with _ONE_AT_A_TIME:  # and the memory is counted once the export before has let go of its own
        memory.require(EXPORT_OVERHEAD + spec.memory * weight_bytes, Text("errors.what_export", format=spec.title),
                       Text("errors.export_instead"))
        try:
            portable = portable_model(model)
            with warnings.catch_warnings():
                # Keras's patch of tf2onnx for NumPy 2 asks whether np.object exists, which NumPy warns about.
                warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
                if spec.name == "keras":
                    portable.save(path)
                else:
                    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="uint8")]
                    portable.export(str(path), format=spec.name, verbose=False, input_signature=signature)
        except Exception as error:  # noqa: BLE001 - a converter's failure, whatever it is, must not end the server
            raise LabError("export_failed", format=spec.title, reason=_reason(error)) from error
    return path


def _reason(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check_names(model: keras.Model, class_names) -> None:
    classes = int(model.output_shape[-1])
    if len(class_names) != classes:
        raise LabError("inference.names_count", classes=str(classes), names=str(len(class_names)))
