"""See inside a trained network: feature maps, filters and Grad-CAM, for any model cnnlab builds.

All three take the raw image the dataset holds and work on cnnlab's chain models, so they work
for every architecture in the registry. Grad-CAM needs gradients, which each Keras backend
computes its own way; the two supported here are TensorFlow and JAX.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers
from PIL import Image

from . import checks
from .architectures.preprocessing import ImageNetPreprocess, is_preprocessing
from .data import as_images
from .errors import LabError

MAX_CHANNELS = 32  # feature maps drawn per layer: VGG's 512-channel layers would flood the page
SPATIAL = (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D)


@dataclass(frozen=True)
class FeatureMap:
    layer: str
    type: str
    shape: tuple[int, int, int]    # the layer's full output per image: (height, width, channels)
    maps: np.ndarray               # (shown channels, height, width), each scaled to [0, 1]
    values: np.ndarray | None = None  # a 1x1 map's raw values, one per channel: a picture of each would be flat

    @property
    def channels_shown(self) -> int:
        return len(self.maps)


@dataclass(frozen=True)
class FilterStats:
    layer: str
    kernel_shape: tuple[int, ...]
    mean: float
    std: float
    min: float
    max: float
    mean_abs: float


def spatial_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The convolution and pooling layers, in order."""
    return [layer for layer in model.layers if isinstance(layer, SPATIAL) and not is_preprocessing(layer)]


def feature_maps(model: keras.Model, image: np.ndarray, max_channels: int = MAX_CHANNELS) -> list[FeatureMap]:
    """The activations of every convolution and pooling layer for one raw image (one forward pass)."""
    max_channels = checks.whole(max_channels, "max_channels", 1)
    chosen = spatial_layers(model)
    probe = keras.Model(model.input, [layer.output for layer in chosen])
    outputs = probe.predict(batch_of_one(model, image), verbose=0)
    result = []
    for layer, output in zip(chosen, outputs if isinstance(outputs, list) else [outputs]):
        maps = np.moveaxis(np.asarray(output[0], dtype=np.float32), -1, 0)   # (C, H, W)
        one_pixel = maps.shape[1:] == (1, 1)
        result.append(FeatureMap(layer.name, type(layer).__name__, tuple(output.shape[1:]),
                                 _unit_scale(maps[:max_channels]), maps[:, 0, 0] if one_pixel else None))
    return result


def first_filters(model: keras.Model) -> np.ndarray:
    """The first convolution's kernels as pictures: (filters, kh, kw, channels) in [0, 1], RGB order."""
    first = next((layer for layer in model.layers if isinstance(layer, layers.Conv2D)), None)
    if first is None:
        raise LabError("explain.no_convolution", model=model.name)
    kernel = np.moveaxis(keras.ops.convert_to_numpy(first.kernel), -1, 0)   # (filters, kh, kw, in)
    if any(isinstance(layer, ImageNetPreprocess) and layer.mode == "caffe" for layer in model.layers):
        kernel = kernel[..., ::-1]  # Keras's ImageNet VGG reads BGR: show the colours a learner sees
    low, high = kernel.min(axis=(1, 2, 3), keepdims=True), kernel.max(axis=(1, 2, 3), keepdims=True)
    return (kernel - low) / np.maximum(high - low, 1e-12)


def filter_stats(model: keras.Model) -> list[FilterStats]:
    """Summary statistics of every convolution's kernel."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            w = keras.ops.convert_to_numpy(layer.kernel)
            rows.append(FilterStats(layer.name, tuple(w.shape), float(w.mean()), float(w.std()), float(w.min()),
                                    float(w.max()), float(np.abs(w).mean())))
    return rows


def grad_cam(model: keras.Model, image: np.ndarray, class_index: int | None = None,
             layer_name: str | None = None) -> tuple[np.ndarray, int, str]:
    """Grad-CAM (Selvaraju et al., 2017): which pixels made the model say `class_index`.

    Returns (heat map over the raw image in [0, 1], the class explained, the layer used). The
    default layer is the last one whose map is still wider than one pixel (LeNet's C5 is 1x1 and
    could not point anywhere), not counting pooling and padding, that every path passes through.
    """
    probabilities = model.predict(batch_of_one(model, image), verbose=0)[0]
    if class_index is None:
        class_index = int(np.argmax(probabilities))
    class_index = checks.whole(class_index, "class_index", 0, len(probabilities) - 1)
    layer, head = _cam_layer(model, layer_name)
    features = keras.Model(model.input, layer.output).predict(batch_of_one(model, image), verbose=0)
    gradients = _gradient_of_log_probability(head, features, class_index)
    weights = gradients.mean(axis=(1, 2))                                  # (1, C): each channel's importance
    cam = np.maximum((features * weights[:, None, None, :]).sum(axis=-1)[0], 0)   # (h, w)
    cam = cam / cam.max() if cam.max() > 0 else cam
    return _to_raw_image(model, layer, cam), class_index, layer.name


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The raw image in grey or colour with the heat map on top in red-yellow: uint8 RGB."""
    try:
        image, heat = np.asarray(image), np.asarray(heat)
    except (TypeError, ValueError):
        image = heat = np.asarray(None)
    if heat.dtype.kind not in "biuf":
        raise LabError("explain.overlay_heat", dtype=str(heat.dtype))
    heat = heat.astype(np.float64)
    image = as_images((image[..., None] if image.ndim == 2 else image)[None], "image")[0]
    if heat.shape != image.shape[:2]:
        raise LabError("explain.heat_cover", image=str(image.shape[:2]), heat=str(heat.shape))
    if not np.isfinite(heat).all():
        raise LabError("explain.heat_finite")
    alpha = checks.number(alpha, "alpha", 0, 1)
    heat = np.clip(heat, 0, 1)
    base = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    base = base.astype(np.float32)
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255   # red to yellow
    mixed = base * (1 - alpha * heat[..., None]) + colour * alpha * heat[..., None]
    return np.clip(mixed, 0, 255).astype(np.uint8)


def _cam_layer(model, layer_name):
    """The layer to explain and the rest of the network as a model of its output.

    In a network with branches only a layer every path passes through will do (ResNet's last
    addition, not a convolution inside a block whose shortcut bypasses it).
    """
    if layer_name is not None:
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise LabError("explain.no_layer", model=model.name, layer=checks.shown(layer_name)) from None
        if len(layer.output.shape) != 4 or is_preprocessing(layer):
            maps = ", ".join(spatial.name for spatial in spatial_layers(model))
            raise LabError("explain.no_feature_map", layer=layer.name, model=model.name, maps=maps)
        head = _head(model, layer)
        if head is None:
            raise LabError("explain.inside_branch", layer=layer.name, model=model.name)
        return layer, head
    skipped = (layers.MaxPooling2D, layers.AveragePooling2D, layers.ZeroPadding2D, layers.Dropout)
    wide = [layer for layer in model.layers[1:] if not is_preprocessing(layer) and len(layer.output.shape) == 4
            and layer.output.shape[1] > 1 and not isinstance(layer, skipped)]
    for layer in wide[::-1]:
        head = _head(model, layer)
        if head is not None:
            return layer, head
    raise LabError("explain.nothing_to_explain", model=model.name)


def _head(model, layer):
    """The network from `layer`'s output to the probabilities, or None if other branches are needed too."""
    try:
        return keras.Model(layer.output, model.output)
    except ValueError:
        return None


def _gradient_of_log_probability(head, features: np.ndarray, class_index: int) -> np.ndarray:
    def log_probability(x):
        return keras.ops.log(head(x, training=False)[:, class_index] + 1e-12)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(features)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = log_probability(x)
        return tape.gradient(score, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: log_probability(x).sum())(features))
    raise LabError("explain.backend", backend=backend)


def _to_raw_image(model, layer, cam: np.ndarray) -> np.ndarray:
    """Bring a map onto the raw image: each map cell sits at the centre of its receptive field in
    the network's input (a 'valid' convolution's map does not stretch evenly over the input), then
    LeNet's border is cut off, or the resize undone."""
    body = [each for each in model.layers[1:] if not is_preprocessing(each)]
    side = body[0].input.shape[1:3]
    if all(len(each._inbound_nodes[0].input_tensors) == 1 for each in body):
        start, jump = _map_geometry(body[: body.index(layer) + 1])
    else:  # with branches, take the map as spread evenly over the input
        jump = side[0] / cam.shape[0]
        start = (jump - 1) / 2
    heat = np.empty(tuple(side), dtype=np.float32)
    rows = np.interp(np.arange(side[0]), start + jump * np.arange(cam.shape[0]), np.arange(cam.shape[0]))
    cols = np.interp(np.arange(side[1]), start + jump * np.arange(cam.shape[1]), np.arange(cam.shape[1]))
    heat[:] = _bilinear(cam, rows, cols)
    pad = next((each for each in model.layers if isinstance(each, layers.ZeroPadding2D) and is_preprocessing(each)),
               None)
    if pad is not None:
        (top, bottom), (left, right) = pad.padding
        heat = heat[top: heat.shape[0] - bottom, left: heat.shape[1] - right]
    raw = tuple(model.input.shape[1:3])
    if heat.shape != raw:
        heat = np.asarray(Image.fromarray(heat).resize(raw[::-1], Image.BILINEAR))
    return np.clip(heat / heat.max(), 0, 1) if heat.max() > 0 else heat


def _map_geometry(chain) -> tuple[float, float]:
    """Input-pixel position of the first map cell's centre, and the step between cells."""
    start, jump = 0.0, 1.0
    for layer in chain:
        if not isinstance(layer, SPATIAL):
            continue
        kernel = layer.kernel_size[0] if isinstance(layer, layers.Conv2D) else layer.pool_size[0]
        stride, n = layer.strides[0], layer.input.shape[1]
        pad_left = 0
        if layer.padding == "same":
            pad_left = max((-(-n // stride) - 1) * stride + kernel - n, 0) // 2
        start += ((kernel - 1) / 2 - pad_left) * jump
        jump *= stride
    return start, jump


def _bilinear(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """grid sampled at fractional (row, col) positions."""
    r0 = np.clip(np.floor(rows).astype(int), 0, grid.shape[0] - 1)
    c0 = np.clip(np.floor(cols).astype(int), 0, grid.shape[1] - 1)
    r1, c1 = np.minimum(r0 + 1, grid.shape[0] - 1), np.minimum(c0 + 1, grid.shape[1] - 1)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr


def batch_of_one(model, image) -> np.ndarray:
    expected = tuple(model.input.shape[1:])
    try:
        image = np.asarray(image)
    except (TypeError, ValueError):
        raise LabError("explain.one_image_ragged", shape=str(expected)) from None
    if image.shape == expected[:2] and expected[-1] == 1:
        image = image[..., None]
    if image.shape != expected:
        raise LabError("explain.one_image", shape=str(expected), received=str(image.shape))
    return as_images(image[None], "image")


def _unit_scale(maps: np.ndarray) -> np.ndarray:
    low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-12)
