"""LeNet-5, as the lecture builds it."""

from __future__ import annotations

from keras import layers

from .common import scaled

POOLING = {"average": layers.AveragePooling2D, "max": layers.MaxPooling2D}
ACTIVATIONS = ("relu", "tanh", "sigmoid")


def lenet5(*, width: float = 1.0, classes: int = 10, activation: str = "relu",
           pooling: str = "average") -> list[layers.Layer]:
    """LeNet-5 on a 32x32 image.

    Reference:
    - LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
      recognition", Proceedings of the IEEE, 1998.

    The 1998 network used scaled tanh/sigmoid units and trainable average-pooling
    ("subsampling"); the lecture's Keras code keeps average pooling and uses relu, which is the
    default here. Layer names follow the paper: C = convolution, S = subsampling, F = full.

    Args:
        width: multiplies every layer's filters and units (1.0 is the paper's 6-16-120-84).
        classes: units of the softmax output.
        activation: "relu" (the lecture), "tanh" or "sigmoid" (the 1998 flavour).
        pooling: "average" (the paper's subsampling) or "max".

    Returns:
        The network's layers, in order, after preprocessing.
    """
    Pool = POOLING[pooling]
    return [
        layers.Conv2D(scaled(6, width), 5, activation=activation, name="c1_conv"),      # (28, 28, 6)
        Pool(2, strides=2, name="s2_pool"),                                             # (14, 14, 6)
        layers.Conv2D(scaled(16, width), 5, activation=activation, name="c3_conv"),     # (10, 10, 16)
        Pool(2, strides=2, name="s4_pool"),                                             # (5, 5, 16)
        layers.Conv2D(scaled(120, width), 5, activation=activation, name="c5_conv"),    # (1, 1, 120)
        layers.Flatten(name="flatten"),                                                 # (120,)
        layers.Dense(scaled(84, width), activation=activation, name="f6_dense"),        # (84,)
        layers.Dense(classes, activation="softmax", name="predictions"),                # (10,)
    ]
