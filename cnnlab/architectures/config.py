"""A model's settings, checked: what the factory builds from, and what travels with a run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import checks
from ..datasets import DATASETS, MAX_CLASSES
from ..errors import LabError, Text
from .applications import IMAGENET_CLASSES
from .registry import Architecture, get_architecture, list_architectures

MAX_INPUT_SIZE = 512
MAX_RAW_SIZE = 4096           # the side of a dataset's raw images; larger ones are refused before any memory is taken
WIDTH_RANGE = (0.05, 4.0)


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

    def resolved(self) -> ModelConfig:
        """A copy with every default filled in and every value checked."""
        arch = get_architecture(self.arch)
        spec = DATASETS.get(arch.dataset)  # None for ImageNet, which the lab does not hold
        input_size = arch.input_size if self.input_size is None else _check_size(arch, self.input_size)
        width = checks.number(self.width, "width", *WIDTH_RANGE)
        if arch.fixed_width and width != 1.0:
            raise LabError("fixed_width", name=arch.name, width=checks.shown(self.width))
        knobs = _check_knobs(arch, self.knobs)
        raw_shape = _check_raw_shape(self.raw_shape if self.raw_shape is not None
                                     else spec.image_shape if spec else (input_size, input_size, 3))
        if arch.pixel_scaling(knobs) != "rescale" and raw_shape[-1] != 3:  # ImageNet's networks take RGB
            raise LabError("colour_only", name=arch.name, shape=str(raw_shape))
        if arch.zoo:  # the documented ImageNet classifier: always its 1,000 classes
            classes = IMAGENET_CLASSES
        else:
            classes = spec.num_classes if self.classes is None else checks.whole(self.classes, "classes", 2,
                                                                                 MAX_CLASSES)
        return dataclasses.replace(self, input_size=input_size, width=width, knobs=knobs,
                                   raw_shape=raw_shape, classes=classes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        names = sorted(f.name for f in dataclasses.fields(cls))
        if not isinstance(data, Mapping):
            raise LabError("model_config", keys=", ".join(names), value=checks.shown(data))
        unknown = sorted(map(str, set(data) - set(names)))
        if unknown:
            raise LabError("unknown_setting", what=Text("errors.setting_model"), name=repr(unknown[0]),
                           names=", ".join(names))
        data = dict(data)
        if isinstance(data.get("raw_shape"), list):  # JSON has no tuples
            data["raw_shape"] = tuple(data["raw_shape"])
        if "arch" not in data:
            raise LabError("model_needs_arch", names=", ".join(list_architectures()))
        return cls(**data)


def as_config(config: ModelConfig | str, **overrides) -> ModelConfig:
    """A resolved ModelConfig from a config or an architecture name plus keyword overrides;
    overrides that are not ModelConfig fields are the architecture's knobs."""
    if isinstance(config, str):
        config = ModelConfig(config)
    elif not isinstance(config, ModelConfig):
        raise LabError("not_a_model", value=checks.shown(config))
    if overrides:
        top = {f.name for f in dataclasses.fields(ModelConfig)}
        knobs = {k: overrides.pop(k) for k in list(overrides) if k not in top}
        if knobs:
            if not isinstance(overrides.get("knobs", config.knobs), Mapping):
                raise LabError("knobs_not_dict", name=config.arch, example="...",
                               value=checks.shown(overrides["knobs"]))
            overrides["knobs"] = {**overrides.get("knobs", config.knobs), **knobs}
        config = dataclasses.replace(config, **overrides)
    return config.resolved()


def _check_size(arch: Architecture, value) -> int:
    if not checks.is_whole(value):
        raise LabError("input_size_whole", value=checks.shown(value))
    value = int(value)
    if not 1 <= value <= MAX_INPUT_SIZE:
        raise LabError("input_size_range", title=arch.title, smallest=str(arch.min_input_size),
                       largest=str(MAX_INPUT_SIZE), size=str(value))
    return value


def _check_knobs(arch: Architecture, knobs) -> dict:
    if not isinstance(knobs, Mapping):
        example = ", ".join(f"{k.name!r}: {k.default!r}" for k in arch.knobs)
        raise LabError("knobs_not_dict", name=arch.name, example="{" + example + "}", value=checks.shown(knobs))
    known = {k.name: k for k in arch.knobs}
    unknown = sorted(map(str, set(knobs) - set(known)))
    if unknown:
        raise LabError("unknown_knob", name=arch.name, knob=repr(unknown[0]), knobs=", ".join(known) or "-")
    return {name: knob.check(knobs.get(name, knob.default)) for name, knob in known.items()}


def _check_raw_shape(value) -> tuple[int, int, int]:
    """The dataset's image: (height, width, channels), sides up to MAX_RAW_SIZE, 1 or 3 channels."""
    shape = tuple(value) if isinstance(value, (tuple, list)) else None
    if (shape is None or len(shape) != 3 or not all(checks.is_whole(d) for d in shape) or shape[-1] not in (1, 3)
            or not all(1 <= d <= MAX_RAW_SIZE for d in shape[:2])):
        raise LabError("raw_shape", largest=str(MAX_RAW_SIZE), value=checks.shown(value))
    return tuple(int(d) for d in shape)
