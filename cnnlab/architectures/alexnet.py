"""AlexNet, as the lecture builds it for CIFAR-10 resized to 224x224."""

from __future__ import annotations

from keras import layers

from .common import scaled


def alexnet(*, width: float = 1.0, classes: int = 10, dropout: float = 0.5) -> list[layers.Layer]:
    """AlexNet on a 224x224 image, single-tower and without local response normalisation.

    Reference:
    - Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional
      Neural Networks", NeurIPS 2012.

    The lecture's variant: every convolution is 'valid', pooling is the paper's overlapping
    3x3 with stride 2, and the two 4096-unit layers are followed by dropout 0.5. With a 224
    input the maps are 54, 50, 24, 22, 10, 8, 6 and 2 pixels wide, and Flatten gives 1,024.

    Args:
        width: multiplies every layer's filters and units.
        classes: units of the softmax output.
        dropout: rate after each 4096-unit layer; 0 turns dropout off.

    Returns:
        The network's layers, in order, after preprocessing.
    """
    return [
        # Convolutions: 96@11x11/4, 256@5x5, 384@3x3, 384@3x3, 256@3x3
        layers.Conv2D(scaled(96, width), 11, strides=4, activation="relu", name="conv1"),   # (54, 54, 96)
        layers.Conv2D(scaled(256, width), 5, activation="relu", name="conv2"),              # (50, 50, 256)
        layers.MaxPooling2D(3, strides=2, name="pool2"),                                    # (24, 24, 256)
        layers.Conv2D(scaled(384, width), 3, activation="relu", name="conv3"),              # (22, 22, 384)
        layers.MaxPooling2D(3, strides=2, name="pool3"),                                    # (10, 10, 384)
        layers.Conv2D(scaled(384, width), 3, activation="relu", name="conv4"),              # (8, 8, 384)
        layers.Conv2D(scaled(256, width), 3, activation="relu", name="conv5"),              # (6, 6, 256)
        layers.MaxPooling2D(3, strides=2, name="pool5"),                                    # (2, 2, 256)
        # Classifier
        layers.Flatten(name="flatten"),                                                     # (1024,)
        layers.Dense(scaled(4096, width), activation="relu", name="fc6"),
        layers.Dropout(dropout, name="fc6_dropout"),
        layers.Dense(scaled(4096, width), activation="relu", name="fc7"),
        layers.Dropout(dropout, name="fc7_dropout"),
        layers.Dense(classes, activation="softmax", name="predictions"),
    ]
