"""The registry of architectures and the one factory that builds them.

An architecture is data: a builder that returns the paper's layers in order, plus what a learner
wants to know about it. Pages, the command line and the tests all list architectures from
`ARCHITECTURES`; adding an entry here is all it takes for a new network to appear everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import keras

from . import preprocessing
from .alexnet import alexnet
from .lenet import ACTIVATIONS, POOLING, lenet5
from .vgg import keras_vgg19, vgg19

MAX_INPUT_SIZE = 512
WIDTH_RANGE = (0.05, 4.0)


@dataclass(frozen=True)
class Knob:
    """An architecture-specific setting: a choice from a list or a number in a range."""

    name: str
    default: Any
    help: str
    choices: tuple = ()
    range: tuple[float, float] | None = None

    def check(self, arch: str, value: Any) -> Any:
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{arch}: {self.name} must be one of {', '.join(map(str, self.choices))}. "
                                 f"Received: {self.name}={value!r}")
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
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
    builder: Callable[..., list]
    fit: str                    # how raw images reach input_size: "pad" (LeNet) or "resize"
    labels: str                 # the lecture's label format: "one-hot" or "integer"
    lecture_sample: float       # fraction of the full dataset the lecture trains on
    knobs: tuple[Knob, ...] = ()
    classifier: bool = True     # False for a feature extractor with no softmax to train
    imagenet_inputs: bool = False  # Keras's ImageNet models want caffe-style inputs, not /255
    depth: int = 0              # weight layers, as the papers count them


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in [
    Architecture(
        name="lenet5", title="LeNet-5", year=1998, depth=5,
        paper="LeCun et al., Gradient-based learning applied to document recognition, 1998",
        dataset="mnist", input_size=32, min_input_size=32, builder=lenet5, fit="pad",
        labels="one-hot", lecture_sample=1.0,
        knobs=(Knob("activation", "relu", "relu as in the lecture; tanh or sigmoid as in 1998", choices=ACTIVATIONS),
               Knob("pooling", "average", "average (the paper's subsampling) or max", choices=tuple(POOLING)))),
    Architecture(
        name="alexnet", title="AlexNet", year=2012, depth=8,
        paper="Krizhevsky, Sutskever and Hinton, ImageNet classification with deep CNNs, 2012",
        dataset="cifar10", input_size=224, min_input_size=163, builder=alexnet, fit="resize",
        labels="integer", lecture_sample=0.1,
        knobs=(Knob("dropout", 0.5, "dropout rate after fc6 and fc7; 0 turns it off", range=(0.0, 0.9)),)),
    Architecture(
        name="vgg19", title="VGG19", year=2014, depth=19,
        paper="Simonyan and Zisserman, Very deep convolutional networks for large-scale image recognition, 2014",
        dataset="cifar10", input_size=224, min_input_size=32, builder=vgg19, fit="resize",
        labels="integer", lecture_sample=0.1,
        knobs=(Knob("weight_decay", 5e-4, "L2 penalty on the convolutions (the paper's 5e-4); 0 turns it off",
                    range=(0.0, 0.1)),
               Knob("dropout", 0.5, "dropout rate after fc1 and fc2; 0 turns it off", range=(0.0, 0.9)))),
    Architecture(
        name="keras-vgg19", title="VGG19 (Keras Applications, no top)", year=2014, depth=16,
        paper="keras.applications.VGG19(include_top=False); Simonyan and Zisserman, 2014",
        dataset="cifar10", input_size=224, min_input_size=32, builder=keras_vgg19, fit="resize",
        labels="integer", lecture_sample=0.1, classifier=False, imagenet_inputs=True),
]}


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
        spec = DATASETS[arch.dataset]
        input_size = arch.input_size if self.input_size is None else _check_size(arch, self.input_size)
        width = _check_width(self.width)
        known = {k.name: k for k in arch.knobs}
        unknown = sorted(set(self.knobs) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise ValueError(f"{arch.name} has no setting {unknown[0]!r}; its settings are: {allowed}.")
        knobs = {name: knob.check(arch.name, self.knobs.get(name, knob.default)) for name, knob in known.items()}
        raw_shape = tuple(int(d) for d in (self.raw_shape or spec.image_shape))
        if len(raw_shape) != 3 or raw_shape[-1] not in (1, 3) or min(raw_shape) < 1:
            raise ValueError("Images must be (height, width, channels) with 1 or 3 channels. "
                             f"Received: raw_shape={self.raw_shape}")
        if arch.imagenet_inputs and raw_shape[-1] != 3:
            raise ValueError(f"{arch.name} takes colour images (3 channels). Received: raw_shape={raw_shape}")
        classes = spec.num_classes if self.classes is None else int(self.classes)
        if classes < 2:
            raise ValueError(f"A classifier needs at least 2 classes. Received: classes={self.classes}")
        return dataclasses.replace(self, input_size=input_size, width=width, knobs=knobs,
                                   raw_shape=raw_shape, classes=classes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown model setting {unknown[0]!r}; expected only: {', '.join(sorted(names))}.")
        data = dict(data)
        if data.get("raw_shape") is not None:
            data["raw_shape"] = tuple(data["raw_shape"])
        return cls(**data)


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown architecture {name!r}. Choose one of: {', '.join(ARCHITECTURES)}.") from None


def build_model(config: ModelConfig | str, **overrides) -> keras.Model:
    """Build an architecture by name: raw images in, class probabilities (or features) out.

    `build_model("lenet5")` is the lecture's LeNet-5; `build_model("vgg19", input_size=64,
    width=0.25)` a VGG19 small enough for a laptop. Keyword overrides fill a ModelConfig.
    """
    config, chain = model_layers(config, **overrides)
    inputs = keras.Input(config.raw_shape, name="image")  # raw pixels, 0-255
    x = inputs
    for layer in chain:
        x = checked(config, layer, layer, x, x.shape)
    return keras.Model(inputs, x, name=config.arch)


def model_layers(config: ModelConfig | str, **overrides) -> tuple[ModelConfig, list[keras.layers.Layer]]:
    """The resolved configuration and the model's layers in order, preprocessing first, not yet built.

    Every cnnlab network is a chain; the layer table walks this list without allocating weights.
    """
    if isinstance(config, str):
        top = {f.name for f in dataclasses.fields(ModelConfig)}
        knobs = {k: overrides.pop(k) for k in list(overrides) if k not in top}
        config = ModelConfig(config, knobs=knobs, **overrides)
    config = config.resolved()
    arch = get_architecture(config.arch)
    prep = preprocessing.fit_to_size(config.raw_shape, config.input_size, arch.fit)
    prep.append(preprocessing.imagenet_caffe() if arch.imagenet_inputs else preprocessing.rescale())
    return config, prep + arch.builder(width=config.width, classes=config.classes, **config.knobs)


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
    return ValueError(
        f"{arch.title} cannot take {config.input_size}x{config.input_size} images: the feature map vanishes at "
        f"layer {layer.name} (its input is only {input_shape[1]}x{input_shape[2]}). "
        f"Use an input size of at least {arch.min_input_size}.")


def _check_size(arch: Architecture, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"input_size must be a whole number of pixels. Received: input_size={value!r}")
    value = int(value)
    if not 1 <= value <= MAX_INPUT_SIZE:
        raise ValueError(f"input_size must lie between {arch.min_input_size} and {MAX_INPUT_SIZE} for "
                         f"{arch.title}. Received: input_size={value}")
    return value


def _check_width(value) -> float:
    low, high = WIDTH_RANGE
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"width must be a number such as 0.5 or 1. Received: width={value!r}") from None
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"width must lie between {low} and {high} (1 is the paper's). Received: width={value!r}")
    return number


__all__ = ["ARCHITECTURES", "Architecture", "Knob", "ModelConfig", "build_model", "get_architecture",
           "model_layers", "checked", "MAX_INPUT_SIZE"]
