"""The registry of architectures and the one factory that builds them.

An architecture is data: a builder that returns the paper's layers in order (or, for networks
with branches, builds them on a tensor), plus what a learner wants to know about it. Pages, the
command line and the tests all list architectures from `ARCHITECTURES`; adding an entry here is
all it takes for a new network to appear everywhere. Keras's ImageNet applications are registered
as `keras-<name>` from their own table (`applications.py`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import keras

from ..errors import LabError
from . import preprocessing
from .alexnet import alexnet
from .applications import APPLICATIONS, IMAGENET_CLASSES, Application
from .lenet import ACTIVATIONS, POOLING, lenet5
from .transfer import transfer
from .vgg import keras_vgg19, vgg19

MAX_INPUT_SIZE = 512
MAX_RAW_SIZE = 4096           # the side of a dataset's raw images; larger ones are refused before any memory is taken
WIDTH_RANGE = (0.05, 4.0)


@dataclass(frozen=True)
class Knob:
    """An architecture-specific setting: a choice from a list or a number in a range."""

    name: str
    default: Any                 # its label and help are "knobs.<name>.*" in the catalogues
    choices: tuple = ()
    range: tuple[float, float] | None = None

    def check(self, arch: str, value: Any) -> Any:
        if self.choices:
            if not isinstance(value, (str, int, float)) or value not in self.choices:
                raise ValueError(f"{arch}: {self.name} must be one of {', '.join(map(str, self.choices))}. "
                                 f"Received: {self.name}={value!r}")
            return value
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{arch}: {self.name} must be a number. Received: {self.name}={value!r}") from None
        low, high = self.range
        if not low <= number <= high:
            raise ValueError(f"{arch}: {self.name} must lie between {low:g} and {high:g}. "
                             f"Received: {self.name}={value!r}")
        return number


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    year: int
    paper: str
    dataset: str                # the dataset the lecture trains it on
    input_size: int             # the paper's (and lecture's) input side, in pixels
    min_input_size: int         # the smallest side at which no feature map vanishes
    builder: Callable           # chain: (width, classes, **knobs) -> layers; graph: (x, config, load_weights) -> tensor
    fit: str                    # how raw images reach input_size: "pad" (LeNet) or "resize"
    labels: str                 # the lecture's label format: "one-hot" or "integer"
    lecture_sample: float       # fraction of the full dataset the lecture trains on
    knobs: tuple[Knob, ...] = ()
    trainable: bool = True      # False: the lab shows it and predicts with it, but does not train it
    normalise: str = "rescale"  # pixel scaling before the network: /255, an ImageNet mode, or "none"
    depth: int = 0              # weight layers, as the papers count them
    graph: bool = False         # True: builder works on a tensor (branches, Keras applications)
    fixed_width: bool = False   # Keras's own networks cannot be scaled by `width`
    application: str | None = None  # the Keras application it is, for keras-<name>
    explained_by: tuple[str, ...] = ()  # the lecture's explanations of it, keys under "explain." in the catalogues


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in [
    Architecture(
        name="lenet5", title="LeNet-5", year=1998, depth=5,
        paper="LeCun et al., Gradient-based learning applied to document recognition, 1998",
        dataset="mnist", input_size=32, min_input_size=32, builder=lenet5, fit="pad",
        labels="one-hot", lecture_sample=1.0, explained_by=("lenet5",),
        knobs=(Knob("activation", "relu", choices=ACTIVATIONS),
               Knob("pooling", "average", choices=tuple(POOLING)))),
    Architecture(
        name="alexnet", title="AlexNet", year=2012, depth=8,
        paper="Krizhevsky, Sutskever and Hinton, ImageNet classification with deep CNNs, 2012",
        dataset="cifar10", input_size=224, min_input_size=163, builder=alexnet, fit="resize",
        labels="integer", lecture_sample=0.1, explained_by=("alexnet", "imagenet", "learning_rate"),
        knobs=(Knob("dropout", 0.5, range=(0.0, 0.9)),)),
    Architecture(
        name="vgg19", title="VGG19", year=2014, depth=19,
        paper="Simonyan and Zisserman, Very deep convolutional networks for large-scale image recognition, 2014",
        dataset="cifar10", input_size=224, min_input_size=32, builder=vgg19, fit="resize",
        labels="integer", lecture_sample=0.1, explained_by=("vgg19", "imagenet", "learning_rate"),
        knobs=(Knob("weight_decay", 5e-4, range=(0.0, 0.1)),
               Knob("dropout", 0.5, range=(0.0, 0.9)))),
    Architecture(
        name="keras-vgg19", title="VGG19 (Keras Applications, no top)", year=2014, depth=16,
        paper="keras.applications.VGG19(include_top=False); Simonyan and Zisserman, 2014",
        dataset="cifar10", input_size=224, min_input_size=32, builder=keras_vgg19, fit="resize",
        labels="integer", lecture_sample=0.1, trainable=False, normalise="caffe", fixed_width=True,
        explained_by=("vgg19", "imagenet")),
    Architecture(
        name="transfer", title="Transfer learning (frozen ImageNet base + new head)", year=2014, depth=0,
        paper="A Keras application's convolutional base, frozen, with a small new classifier trained on top",
        dataset="cifar10", input_size=224, min_input_size=32, builder=transfer, fit="resize",
        labels="integer", lecture_sample=0.1, normalise="none", graph=True, fixed_width=True,
        knobs=(Knob("base", "vgg19", choices=tuple(APPLICATIONS)),
               Knob("weights", "imagenet", choices=("imagenet", "random")),
               Knob("units", 256, range=(8, 4096)),
               Knob("dropout", 0.5, range=(0.0, 0.9)))),
]}


def zoo_architecture(app: Application) -> str:
    """The registry name of a Keras application with its top: keras-<name>, but keras-vgg19-top for
    VGG19, whose keras-vgg19 is the lecture's feature extractor."""
    return f"keras-{app.key}-top" if app.key == "vgg19" else f"keras-{app.key}"


def _zoo_entry(app: Application) -> Architecture:
    from .applications import build_application

    return Architecture(
        name=zoo_architecture(app), title=f"{app.name} (Keras Applications)", year=app.year, paper=app.paper,
        dataset="imagenet", input_size=app.input_size, min_input_size=app.min_input_size, builder=build_application,
        fit="resize", labels="integer", lecture_sample=1.0, trainable=False, normalise=app.preprocess,
        depth=app.documented.depth, graph=True, fixed_width=True, application=app.key, explained_by=("imagenet",),
        knobs=(Knob("weights", "random", choices=("random", "imagenet")),))


ARCHITECTURES.update({zoo_architecture(app): _zoo_entry(app) for app in APPLICATIONS.values()})


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: JSON-friendly, so that it travels with a run.

    `None` means "the architecture's own": its input size, its dataset's image shape and
    class count, the knob's default.
    """

    arch: str
    input_size: int | None = None
    width: float = 1.0                     # multiplies filters and units
    knobs: dict = field(default_factory=dict)
    raw_shape: tuple[int, int, int] | None = None  # the dataset's image, e.g. (28, 28, 1)
    classes: int | None = None

    def resolved(self) -> "ModelConfig":
        """A copy with every default filled in and every value checked."""
        from ..data import DATASETS  # the dataset registry knows image shapes and class counts

        arch = get_architecture(self.arch)
        spec = DATASETS.get(arch.dataset)  # None for ImageNet, which the lab does not hold
        input_size = arch.input_size if self.input_size is None else _check_size(arch, self.input_size)
        width = _check_width(self.width)
        if arch.fixed_width and width != 1.0:
            raise ValueError(f"{arch.name} is built by Keras with fixed widths: use width 1"
                             f"{' (or vgg19 to scale the lecture' + chr(39) + 's network)' if arch.name == 'keras-vgg19' else ''}."
                             f" Received: width={self.width}")
        if not isinstance(self.knobs, Mapping):
            raise ValueError(f"knobs must be a dict of {arch.name}'s settings, such as "
                             f"{{{', '.join(f'{k.name!r}: {k.default!r}' for k in arch.knobs)}}}. "
                             f"Received: knobs={self.knobs!r}")
        known = {k.name: k for k in arch.knobs}
        unknown = sorted(map(str, set(self.knobs) - set(known)))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise ValueError(f"{arch.name} has no setting {unknown[0]!r}; its settings are: {allowed}.")
        knobs = {name: knob.check(arch.name, self.knobs.get(name, knob.default)) for name, knob in known.items()}
        raw_shape = _check_raw_shape(self.raw_shape if self.raw_shape is not None
                                     else spec.image_shape if spec else (input_size, input_size, 3))
        if arch.normalise != "rescale" and raw_shape[-1] != 3:
            raise ValueError(f"{arch.name} takes colour images (3 channels). Received: raw_shape={raw_shape}")
        if arch.application:  # the documented ImageNet classifier: always its 1,000 classes
            classes = IMAGENET_CLASSES
        else:
            classes = spec.num_classes if self.classes is None else _check_classes(self.classes)
        return dataclasses.replace(self, input_size=input_size, width=width, knobs=knobs,
                                   raw_shape=raw_shape, classes=classes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, Mapping):
            raise ValueError(f"A model configuration is a dict with the keys {', '.join(sorted(names))}. "
                             f"Received: {data!r}")
        unknown = sorted(map(str, set(data) - names))
        if unknown:
            raise ValueError(f"Unknown model setting {unknown[0]!r}; expected only: {', '.join(sorted(names))}.")
        data = dict(data)
        if isinstance(data.get("raw_shape"), list):  # JSON has no tuples
            data["raw_shape"] = tuple(data["raw_shape"])
        if "arch" not in data:
            raise ValueError(f"A model configuration needs its 'arch', one of: {', '.join(ARCHITECTURES)}.")
        return cls(**data)


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown architecture {name!r}. Choose one of: {', '.join(ARCHITECTURES)}.") from None


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
        x = arch.builder(x, config, load_weights)
    else:
        for layer in arch.builder(width=config.width, classes=config.classes, **config.knobs):
            x = checked(config, layer, layer, x, x.shape)
    return keras.Model(inputs, x, name=config.arch)


def pixel_scaling(config: ModelConfig) -> str:
    """How a model scales pixels: "rescale" (/255), an ImageNet mode, or "none"; a transfer model
    scales them the way its base was trained."""
    arch = get_architecture(config.arch)
    if config.arch == "transfer":
        return APPLICATIONS[config.resolved().knobs["base"]].preprocess
    return arch.normalise


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
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    worker = threading.Thread(target=run, name="cnnlab-shapes")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["model"]


def as_config(config: ModelConfig | str, **overrides) -> ModelConfig:
    """A resolved ModelConfig from a config or an architecture name plus keyword overrides;
    overrides that are not ModelConfig fields are the architecture's knobs."""
    if isinstance(config, str):
        config = ModelConfig(config)
    elif not isinstance(config, ModelConfig):
        raise ValueError(f"Give an architecture name such as 'lenet5' or a ModelConfig. Received: {config!r}")
    if overrides:
        top = {f.name for f in dataclasses.fields(ModelConfig)}
        knobs = {k: overrides.pop(k) for k in list(overrides) if k not in top}
        if knobs:
            if not isinstance(overrides.get("knobs", config.knobs), Mapping):
                raise ValueError(f"knobs must be a dict of settings. Received: knobs={overrides['knobs']!r}")
            overrides["knobs"] = {**overrides.get("knobs", config.knobs), **knobs}
        config = dataclasses.replace(config, **overrides)
    return config.resolved()


def checked(config: ModelConfig, layer, step, value, input_shape):
    """`step(value)`, turning Keras's "output size would be zero or negative" into the learner's
    explanation: which layer lost the feature map, and the smallest input size that works."""
    try:
        result = step(value)
    except ValueError as error:
        if "negative" not in str(error) and "zero" not in str(error):
            raise
        raise vanishing_error(config, layer, input_shape) from None
    if any(d is not None and d < 1 for d in getattr(result, "shape", result)):
        raise vanishing_error(config, layer, input_shape)
    return result


def vanishing_error(config: ModelConfig, layer, input_shape) -> ValueError:
    arch = get_architecture(config.arch)
    return LabError("map_vanishes", title=arch.title, size=str(config.input_size), layer=layer.name,
                    side=f"{input_shape[1]}x{input_shape[2]}", smallest=str(arch.min_input_size))


def _whole_number(value) -> bool:
    """An int, or a float or NumPy number with no fraction; not a bool, NaN or infinity."""
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and math.isfinite(value) and int(value) == value)


def _check_size(arch: Architecture, value) -> int:
    if not _whole_number(value):
        raise ValueError(f"input_size must be a whole number of pixels. Received: input_size={value!r}")
    value = int(value)
    if not 1 <= value <= MAX_INPUT_SIZE:
        raise LabError("input_size_range", title=arch.title, smallest=str(arch.min_input_size),
                       largest=str(MAX_INPUT_SIZE), size=str(value))
    return value


def _check_width(value) -> float:
    low, high = WIDTH_RANGE
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"width must be a number such as 0.5 or 1. Received: width={value!r}") from None
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"width must lie between {low} and {high} (1 is the paper's). Received: width={value!r}")
    return number


def _check_raw_shape(value) -> tuple[int, int, int]:
    """The dataset's image: (height, width, channels), sides up to MAX_RAW_SIZE, 1 or 3 channels."""
    shape = tuple(value) if isinstance(value, (tuple, list)) else None
    if (shape is None or len(shape) != 3 or not all(_whole_number(d) for d in shape) or shape[-1] not in (1, 3)
            or not all(1 <= d <= MAX_RAW_SIZE for d in shape[:2])):
        raise ValueError(f"Images must be (height, width, channels) with sides from 1 to {MAX_RAW_SIZE} pixels "
                         f"and 1 or 3 channels. Received: raw_shape={value!r}")
    return tuple(int(d) for d in shape)


def _check_classes(value) -> int:
    from ..data import MAX_CLASSES

    if not _whole_number(value) or value < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: classes={value!r}")
    if value > MAX_CLASSES:
        raise ValueError(f"classes must be a whole number from 2 to {MAX_CLASSES}. Received: classes={value!r}")
    return int(value)


__all__ = ["ARCHITECTURES", "Architecture", "Knob", "ModelConfig", "build_model", "build_without_weights",
           "without_weights", "as_config", "zoo_architecture", "pixel_scaling", "get_architecture", "checked", "MAX_INPUT_SIZE",
           "MAX_RAW_SIZE"]
