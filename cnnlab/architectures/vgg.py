"""VGG19, as the lecture builds it, and Keras's own VGG19 feature extractor."""

from __future__ import annotations

import copy
import functools

import keras
from keras import layers, regularizers

from .common import scaled

# Filters per convolution, "M" for a 2x2 max-pool: configuration E of the paper.
VGG19_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


INITS = {"glorot": "glorot_uniform", "he": "he_normal"}
NORMS = ("none", "batch")


def vgg19(*, width: float = 1.0, classes: int = 10, weight_decay: float = 5e-4, dropout: float = 0.5,
          init: str = "glorot", norm: str = "none") -> list[layers.Layer]:
    """VGG19 (configuration E) on a 224x224 image.

    Reference:
    - Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
      Recognition", ICLR 2015.

    Five blocks of 3x3 'same' convolutions (64x2, 128x2, 256x4, 512x4, 512x4), each closed by a
    2x2 max-pool, then two 4096-unit layers with dropout and the softmax. Layer names are
    Keras's (`block1_conv1`, ..., `fc1`, `fc2`, `predictions`).

    Args:
        width: multiplies every layer's filters and units.
        classes: units of the softmax output.
        weight_decay: L2 penalty on the convolution kernels (the paper's 5e-4); 0 turns it off.
        dropout: rate after fc1 and fc2 (the paper's 0.5); 0 turns dropout off.
        init: the weights' first values. "glorot" is Keras's default, and the lecture's; "he" is He,
            Zhang, Ren and Sun's (2015) for ReLU networks, which keeps the signal's variance through
            16 convolutions where Glorot's halves it at every ReLU. A departure from the lecture.
        norm: "batch" puts a batch normalisation (Ioffe and Szegedy, 2015) between every convolution
            and its ReLU, as VGG was later trained; "none" is the paper's and the lecture's. A departure
            from the lecture.

    Returns:
        The network's layers, in order, after preprocessing.
    """
    l2 = regularizers.L2(weight_decay) if weight_decay else None
    kernels = INITS[init]
    stack, block, conv = [], 1, 1
    for item in VGG19_CONFIG:
        if item == "M":
            stack.append(layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool"))
            block, conv = block + 1, 1
            continue
        name = f"block{block}_conv{conv}"
        if norm == "batch":  # convolution, normalisation, then the ReLU
            stack += [layers.Conv2D(scaled(item, width), 3, padding="same", use_bias=False, kernel_initializer=kernels,
                                    kernel_regularizer=l2, name=name),
                      layers.BatchNormalization(name=f"block{block}_bn{conv}"),
                      layers.ReLU(name=f"block{block}_relu{conv}")]
        else:
            stack.append(layers.Conv2D(scaled(item, width), 3, padding="same", activation="relu",
                                       kernel_initializer=kernels, kernel_regularizer=l2, name=name))
        conv += 1
    return stack + [                                                                # (7, 7, 512)
        layers.Flatten(name="flatten"),                                             # (25088,)
        layers.Dense(scaled(4096, width), activation="relu", kernel_initializer=kernels, name="fc1"),
        layers.Dropout(dropout, name="fc1_dropout"),
        layers.Dense(scaled(4096, width), activation="relu", kernel_initializer=kernels, name="fc2"),
        layers.Dropout(dropout, name="fc2_dropout"),
        layers.Dense(classes, activation="softmax", name="predictions"),
    ]


def keras_vgg19(*, width: float = 1.0, classes: int = 10) -> list[layers.Layer]:
    """Keras's VGG19 without its classifier: the lecture's pretrained feature extractor.

    Reference:
    - `keras.applications.VGG19(include_top=False)`; Simonyan and Zisserman, ICLR 2015.

    Built with random weights (no download) from Keras's own layer configurations, so its table is exactly
    Keras's: 20,024,384 parameters at any input size. It has no classifier, so `classes` is
    unused, and Keras's layers have fixed widths (the registry accepts only width 1).

    Returns:
        The convolution blocks, in order, after preprocessing.
    """
    return [cls.from_config(copy.deepcopy(config)) for cls, config in _keras_vgg19_configs()]


@functools.cache
def _keras_vgg19_configs() -> tuple:
    """Keras's VGG19 layer classes and configurations; building it once is enough."""
    base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    return tuple((type(layer), layer.get_config()) for layer in base.layers[1:])
