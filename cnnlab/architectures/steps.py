"""The lecture's preprocessing, step by step: what its code does to the whole array up front, and
the shape and size of the array after each step. cnnlab's models do the image steps in their own
layers, per batch (`preprocessing`); this is the table a learner compares them with."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import checks
from ..i18n import LANGUAGES, text
from .config import as_config
from .registry import get_architecture


@dataclass(frozen=True)
class PreprocessingStep:
    step: str
    shape: tuple[int, ...]
    dtype: str
    why: str
    topic: str | None = None   # its longer explanation: "explain.preprocessing.<topic>" in the catalogues

    @property
    def nbytes_whole_array(self) -> int:
        """What the array takes if materialised for the whole split, as the lecture's code does."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def preprocessing_steps(model_config, n_images: int, lang: str = "en") -> list[PreprocessingStep]:
    """The lecture's preprocessing for a model, step by step, with the array's shape after each.

    The lecture applies these to the whole array up front; cnnlab's models do the image steps
    in their own layers, per batch (see `preprocessing`). Names and reasons are the
    catalogue's ("steps.<id>") in `lang`.
    """
    lang = checks.choice(lang, "lang", LANGUAGES)
    n_images = checks.whole(n_images, "n_images", 0)

    def step(name, shape, dtype, topic=None, **values):
        return PreprocessingStep(text(f"steps.{name}.name", lang), shape, dtype,
                                 text(f"steps.{name}.why", lang, **values), topic)

    config = as_config(model_config)
    arch = get_architecture(config.arch)
    h, w, c = config.raw_shape
    size = config.input_size
    grey = c == 1
    shape = (n_images, h, w) if grey else (n_images, h, w, c)
    steps = [step("raw", shape, "uint8")]
    if (h, w) != (size, size):
        shape = (n_images, size, size) + (() if grey else (c,))
        if arch.fit == "pad" and size >= max(h, w):
            steps.append(step("pad", shape, "uint8", "pad", border=str((size - h) // 2)))
        else:
            steps.append(step("resize", shape, "float32", "resize", before=f"{h}x{w}", after=f"{size}x{size}"))
    if grey:
        shape = shape + (1,)
        steps.append(step("channel", shape, steps[-1].dtype))
    scaling = arch.pixel_scaling(config.knobs)  # EfficientNet ("none") scales pixels in its own first layers
    if scaling != "none":
        steps.append(step(scaling, shape, "float32", "rescale" if scaling == "rescale" else None))
    if arch.labels == "one-hot":
        steps.append(step("onehot", (n_images, config.classes), "float32", "labels"))
    else:
        steps.append(step("integer", (n_images,), "int64", "labels"))
    return steps
