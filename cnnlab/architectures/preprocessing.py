"""The lecture's preprocessing, as layers inside the model.

Every model cnnlab builds takes the dataset's raw images (pixel values 0 to 255) and brings them
to the network's input size itself. A saved `.keras` file therefore classifies raw images with
no extra code, and no dataset is ever materialised at 224x224: the resize happens per batch.

Preprocessing layers are named with the prefix `prep_`, which is how the layer table marks them.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from .. import checks
from ..errors import LabError

PREFIX = "prep_"

# What each Keras application's preprocess_input does to RGB pixels in 0-255 (keras.applications.imagenet_utils).
IMAGENET_MODES = ("caffe", "tf", "torch")
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="cnnlab")
class ImageNetPreprocess(layers.Layer):
    """`keras.applications.<model>.preprocess_input`, as a layer.

    mode "caffe" (VGG, ResNet): RGB -> BGR, ImageNet mean subtracted, no scaling.
    mode "tf" (Inception, Xception, MobileNet, ResNetV2, NASNet): scaled to [-1, 1].
    mode "torch" (DenseNet): scaled to [0, 1], then standardised per channel.
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        self.mode = checks.choice(mode, "mode", IMAGENET_MODES)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x / 255.0 - ops.convert_to_tensor(_TORCH_MEAN, self.compute_dtype)) / ops.convert_to_tensor(
                _TORCH_STD, self.compute_dtype)
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"mode": self.mode}


def fit_to_size(raw_shape: tuple[int, int, int], input_size: int, method: str) -> list[layers.Layer]:
    """Layers that bring a raw (H, W, C) image to (input_size, input_size, C).

    `method="pad"` is LeNet's: MNIST's 28x28 digits get a zero border up to 32x32, so that
    strokes near the edge still reach the centre of C1's 5x5 kernels. It only grows images;
    a smaller target, or `method="resize"`, resizes bilinearly as the lecture's tf.image.resize.
    """
    checks.choice(method, "method", ("pad", "resize"))
    shape = tuple(raw_shape) if isinstance(raw_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(checks.is_whole(d) and d >= 1 for d in shape) or not checks.is_whole(input_size) \
            or input_size < 1:
        raise LabError("fit_to_size", shape=checks.shown(raw_shape), size=checks.shown(input_size))
    height, width, input_size = int(shape[0]), int(shape[1]), int(input_size)
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


def normalise(mode: str) -> list[layers.Layer]:
    """The pixel scaling a network expects: "rescale" (/255, the lecture's), an ImageNet mode, or
    "none" for networks that scale inside themselves (EfficientNet)."""
    checks.choice(mode, "mode", ("rescale", "none") + IMAGENET_MODES)
    if mode == "rescale":
        return [rescale()]
    if mode == "none":
        return []
    return [ImageNetPreprocess(mode, name=PREFIX + "imagenet")]


def is_preprocessing(layer: layers.Layer) -> bool:
    return layer.name.startswith(PREFIX)
