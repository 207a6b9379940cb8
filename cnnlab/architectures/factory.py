"""The one factory that builds every architecture: raw images in, class probabilities (or features) out."""

from __future__ import annotations

import threading
from collections.abc import Callable

import keras

from .. import pretrained
from ..errors import LabError
from . import preprocessing
from .config import ModelConfig, as_config
from .registry import Architecture, get_architecture


def build_model(config: ModelConfig | str, *, load_weights: bool = True, **overrides) -> keras.Model:
    """Build an architecture by name: raw images in, class probabilities (or features) out.

    `build_model("lenet5")` is the lecture's LeNet-5; `build_model("vgg19", input_size=64,
    width=0.25)` a VGG19 small enough for a laptop. Keyword overrides fill a ModelConfig.
    `load_weights=False` skips any pretrained weights file a `weights="imagenet"` knob asks for
    (for shapes and counts only).
    """
    config = as_config(config, **overrides)
    arch = get_architecture(config.arch)
    inputs = keras.Input(config.raw_shape, name="image")  # raw pixels, 0-255
    x = inputs
    for layer in preprocessing.fit_to_size(config.raw_shape, config.input_size, arch.fit) + \
            preprocessing.normalise(arch.normalise):
        x = layer(x)
    if arch.graph:
        x = arch.builder(x, config, weights_file(arch, config) if load_weights else None)
    else:
        for layer in arch.builder(width=config.width, classes=config.classes, **config.knobs):
            x = checked(config, layer, x)
    return keras.Model(inputs, x, name=config.arch)


def weights_file(arch: Architecture, config: ModelConfig) -> str | None:
    """The ImageNet weights a `weights="imagenet"` knob asks for, found on this machine or downloaded
    once (see `pretrained`): the classifier's for a zoo network, the base's alone for one that
    reuses a frozen base. None for random weights."""
    if config.knobs.get("weights") != "imagenet":
        return None
    return str(pretrained.weights_path(arch.base(config.knobs), top=arch.zoo))


def build_without_weights(config: ModelConfig | str, **overrides) -> keras.Model:
    """The model's layers, shapes and weight counts, with no memory for the weights themselves;
    for reading (the layer table, counts), not for running. See `without_weights`."""
    return without_weights(lambda: build_model(config, load_weights=False, **overrides))


def without_weights(build: Callable[[], keras.Model]) -> keras.Model:
    """Run `build` so that Keras creates every layer and its variables' shapes but no values.

    Keras defers variables' values inside `keras.StatelessScope(initialize_variables=False)`
    (VGG19 with its top: 0 bytes instead of 575 MB, and NASNetLarge builds three times faster).
    The deferred variables are listed in Keras's per-thread state, so the build runs on a thread of
    its own: that list ends with the thread and nothing can initialise them later.
    """
    result: dict = {}

    def run():
        try:
            with keras.StatelessScope(initialize_variables=False):
                result["model"] = build()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread, which raises it
            result["error"] = error

    worker = threading.Thread(target=run, name="cnnlab-shapes")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["model"]


def checked(config: ModelConfig, layer, x):
    """`layer(x)`, turning Keras's "output size would be zero or negative" into the learner's
    explanation: which layer lost the feature map, and the smallest input size that works."""
    try:
        result = layer(x)
    except ValueError as error:
        if "negative" not in str(error) and "zero" not in str(error):
            raise
        raise vanishing_error(config, layer, x.shape) from None
    if any(d is not None and d < 1 for d in result.shape):
        raise vanishing_error(config, layer, x.shape)
    return result


def vanishing_error(config: ModelConfig, layer, input_shape) -> LabError:
    arch = get_architecture(config.arch)
    return LabError("map_vanishes", title=arch.title, size=str(config.input_size), layer=layer.name,
                    side=f"{input_shape[1]}x{input_shape[2]}", smallest=str(arch.min_input_size))
