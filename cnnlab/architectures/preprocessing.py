"""The lecture's preprocessing, as layers inside the model.

Every model cnnlab builds takes the dataset's raw images (pixel values 0 to 255) and brings them
to the network's input size itself. A saved `.keras` file therefore classifies raw images with
no extra code, and no dataset is ever materialised at 224x224: the resize happens per batch.

Preprocessing layers are named with the prefix `prep_`, which is how the layer table marks them.
"""

from __future__ import annotations

import keras
from keras import layers, ops

PREFIX = "prep_"

# Keras VGG19's ImageNet weights expect "caffe" inputs: BGR channel order, ImageNet mean removed.
_IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="cnnlab")
class ImageNetCaffePreprocess(layers.Layer):
    """RGB 0-255 -> BGR with the ImageNet mean subtracted, as `keras.applications.vgg19.preprocess_input`."""

    def call(self, inputs):
        bgr = ops.flip(ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(_IMAGENET_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def fit_to_size(raw_shape: tuple[int, int, int], input_size: int, method: str) -> list[layers.Layer]:
    """Layers that bring a raw (H, W, C) image to (input_size, input_size, C).

    `method="pad"` is LeNet's: MNIST's 28x28 digits get a zero border up to 32x32, so that
    strokes near the edge still reach the centre of C1's 5x5 kernels. It only grows images;
    a smaller target, or `method="resize"`, resizes bilinearly as the lecture's tf.image.resize.
    """
    height, width = raw_shape[0], raw_shape[1]
    if height == width == input_size:
        return []
    if method == "pad" and input_size >= max(height, width):
        top, left = (input_size - height) // 2, (input_size - width) // 2
        padding = ((top, input_size - height - top), (left, input_size - width - left))
        return [layers.ZeroPadding2D(padding, name=PREFIX + "pad")]
    return [layers.Resizing(input_size, input_size, interpolation="bilinear", name=PREFIX + "resize")]


def rescale() -> layers.Layer:
    """Divide by 255, so that pixels lie in [0, 1] as in the lecture."""
    return layers.Rescaling(1.0 / 255, name=PREFIX + "rescale")


def imagenet_caffe() -> layers.Layer:
    return ImageNetCaffePreprocess(name=PREFIX + "imagenet")


def is_preprocessing(layer: layers.Layer) -> bool:
    return layer.name.startswith(PREFIX)
