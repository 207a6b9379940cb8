"""Transfer learning, as the lecture's last step suggests: a pretrained base, frozen, and a new head."""

from __future__ import annotations

from keras import layers

from . import preprocessing
from .applications import get_application


def transfer(x, config, weights: str | None):
    """A Keras application's convolutional base, frozen, with a small classifier trained on top.

    Reference:
    - Yosinski, Clune, Bengio and Lipson, "How transferable are features in deep neural
      networks?", NeurIPS 2014.

    The base sees the image the way it was trained (its own preprocessing), and global average
    pooling turns its last feature maps into one vector per image (512 numbers for VGG19, 1,280
    for MobileNetV2). Only the head learns: a normalisation that puts every feature on one scale
    (its mean and variance over the training images, set once before training), a hidden ReLU
    layer with dropout, and the softmax.

    Knobs: base (a Keras application), weights ("imagenet" or "random"), units, dropout.
    `weights` is the base's ImageNet weights file, which the factory found (None: random).
    """
    app = get_application(config.knobs["base"])
    for layer in preprocessing.normalise(app.preprocess):
        x = layer(x)
    base = app.model(x, include_top=False, weights=weights, input_size=config.input_size, pooling="avg")
    base.trainable = False
    x = base.outputs[0]                                                             # (C,) pooled features
    for layer in head_layers(config):
        x = layer(x)
    return x


def head_layers(config) -> list[layers.Layer]:
    """The new classifier, the only part that trains; the training code builds it again on the
    base's cached features. Its first layer is the normalisation."""
    return [
        layers.Normalization(axis=-1, name="head_norm"),
        layers.Dense(config.knobs["units"], activation="relu", name="head_dense"),
        layers.Dropout(config.knobs["dropout"], name="head_dropout"),
        layers.Dense(config.classes, activation="softmax", name="predictions"),
    ]
