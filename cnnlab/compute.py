"""How a trained network computes: each layer's own operation, redone on one image's real numbers.

`trace(model, image)` runs the image through the network once and keeps every layer's input and
output. The cell functions then take one number a layer put out and compute it again the way the
textbook writes it, from the layer's input and its weights:

    conv_cell        a convolution: patch x kernel, summed, plus the bias, through the activation
    pool_cell        max or average pooling over one window
    activation_cell  an activation function on one value
    batch_norm_cell  (x - moving mean) / sqrt(moving variance + epsilon) * gamma + beta
    dense_cell       one unit: inputs x weights, summed, plus the bias, through the activation
    flatten_cell     where a flattened number sat in the feature map
    softmax_step     the logits, their exponentials, their sum, and the probabilities

Each result carries the value the model itself computed next to the recomputed one, and `matches`
says whether the two agree to float32 rounding. The numbers are computed in float64 from the
model's float32 arrays, so a disagreement is never the recomputation's own rounding. Nothing here
writes a sentence: a page composes the words from its catalogues.

Works on channels-last models whose layers each take one tensor, as every chain model cnnlab
builds; a layer it does not know is listed as "other".
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from . import checks
from .architectures.preprocessing import is_preprocessing
from .errors import LabError
from .explain import batch_of_one

RTOL, ATOL = 1e-4, 1e-5  # how closely a recomputed number must agree with the model's float32 one
TOP = 5                   # a dense unit's largest contributions listed by default

KINDS = ("preprocessing", "conv", "pool_max", "pool_avg", "activation", "batch_norm", "flatten", "dense",
         "dropout", "softmax", "other")
ACTIVATION_LAYERS = (layers.Activation, layers.ReLU, layers.LeakyReLU)
VECTOR_ACTIVATIONS = ("softmax", "log_softmax")  # functions of a whole vector, not of one number


# --- The steps and the trace -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One layer of the network, as the page lists it."""

    index: int                      # its place among the layers after the input, from 0
    layer: str
    kind: str                       # one of KINDS
    type: str                       # the Keras class, such as "Conv2D"
    input_shape: tuple[int, ...]    # one image's, without the batch axis
    output_shape: tuple[int, ...]


def steps(model: keras.Model) -> list[Step]:
    """Every layer after the input, in the order the image passes through them, with its kind."""
    result = []
    for layer in _layers(model):
        inputs = keras.tree.flatten(layer.input)
        output = keras.tree.flatten(layer.output)[0]
        result.append(Step(len(result), layer.name, kind_of(layer), type(layer).__name__,
                           _shape(inputs[0].shape), _shape(output.shape)))
    return result


def kind_of(layer: keras.layers.Layer) -> str:
    """The operation a layer performs on one image, as the page groups them (one of KINDS)."""
    if is_preprocessing(layer):
        return "preprocessing"
    if len(keras.tree.flatten(layer.input)) != 1:
        return "other"
    rank = len(layer.input.shape)
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    if isinstance(layer, layers.Conv2D) and channels_last and rank == 4:
        return "conv"
    if isinstance(layer, layers.MaxPooling2D) and channels_last:
        return "pool_max"
    if isinstance(layer, layers.AveragePooling2D) and channels_last:
        return "pool_avg"
    if isinstance(layer, ACTIVATION_LAYERS):
        return "activation"
    if isinstance(layer, layers.BatchNormalization) and isinstance(layer.axis, int):
        return "batch_norm"
    if isinstance(layer, layers.Flatten):
        return "flatten"
    if isinstance(layer, layers.Dense) and rank == 2:
        return "softmax" if _activation_name(layer.activation) == "softmax" else "dense"
    if isinstance(layer, layers.Dropout):
        return "dropout"
    return "other"


@dataclass(frozen=True, eq=False)
class Trace:
    """One raw image's pass through a model: each kept layer's input and output, batch axis dropped."""

    model: keras.Model
    image: np.ndarray                   # the raw image as the model takes it, (height, width, channels)
    steps: tuple[Step, ...]
    inputs: dict[str, np.ndarray]       # layer name -> what it received (float32)
    outputs: dict[str, np.ndarray]      # layer name -> what it gave (float32)
    probabilities: np.ndarray           # the model's output for the image

    def step(self, layer: str) -> Step:
        found = next((step for step in self.steps if step.layer == layer), None)
        if found is None:
            raise LabError("explain.no_layer", model=self.model.name, layer=checks.shown(layer))
        return found

    def input_of(self, layer: str) -> np.ndarray:
        return self.inputs[self._kept(layer)]

    def output_of(self, layer: str) -> np.ndarray:
        return self.outputs[self._kept(layer)]

    def _kept(self, layer: str) -> str:
        self.step(layer)
        return checks.choice(layer, "layer", self.outputs)


def trace(model: keras.Model, image: np.ndarray, keep: Sequence[str] | None = None) -> Trace:
    """Run one raw image (pixels 0-255, as the dataset holds it) through `model` once.

    Every layer's input and output is computed; only those of the layers named in `keep` (all when
    None) are kept, so a page that shows one layer at a time holds that layer's arrays rather than
    all of VGG19's (about 70 MB at 224x224, 190 MB with batch normalisation). The probe model that
    reads the layers out is built once per model and forgotten with it.
    """
    batch = batch_of_one(model, image)
    all_steps = tuple(steps(model))
    names = [step.layer for step in all_steps]
    if keep is None:
        kept = names
    else:
        keep = [keep] if isinstance(keep, str) else list(keep)
        for name in keep:
            if name not in names:
                raise LabError("explain.no_layer", model=model.name, layer=checks.shown(name))
        kept = [name for name in names if name in keep]
    probe, where, final = _probe(model)
    computed = probe.predict(batch, verbose=0)
    computed = computed if isinstance(computed, list) else [computed]
    arrays = [batch[0].astype(np.float32)] + [np.asarray(each[0], dtype=np.float32) for each in computed]
    inputs = {name: arrays[where[name][0]] for name in kept}
    outputs = {name: arrays[where[name][1]] for name in kept}
    return Trace(model, batch[0], all_steps, inputs, outputs, arrays[final])


_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its probe; gone with the model
_PROBES_LOCK = threading.Lock()


def _probe(model: keras.Model):
    """A model that gives every layer's output at once, and where each layer's input and output is
    among the arrays a trace holds (0 is the model's input; a chain's layer reads its predecessor's)."""
    with _PROBES_LOCK:
        found = _PROBES.get(model)
    if found is not None:
        return found
    tensors, position = [], {id(model.inputs[0]): 0}

    def place(tensor) -> int:
        if id(tensor) not in position:
            tensors.append(tensor)
            position[id(tensor)] = len(tensors)
        return position[id(tensor)]

    where = {}
    for layer in _layers(model):
        input_at = place(keras.tree.flatten(layer.input)[0])
        where[layer.name] = (input_at, place(keras.tree.flatten(layer.output)[0]))
    final = place(keras.tree.flatten(model.outputs)[0])
    found = (keras.Model(model.inputs, tensors), where, final)
    with _PROBES_LOCK:
        _PROBES[model] = found
    return found


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]


class _OnTheInput:
    """Where a kernel or a window lies on its layer's input: the first and last row and column it reads,
    inclusive (outside 0..size-1 where it lies on padding). `rows` and `cols` are the cell's fields."""

    @property
    def top(self) -> int:
        return self.rows[0]

    @property
    def left(self) -> int:
        return self.cols[0]

    @property
    def bottom(self) -> int:
        return self.rows[-1]

    @property
    def right(self) -> int:
        return self.cols[-1]


# --- Convolution ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # its arrays have no single truth value to compare by
class ConvCell(_OnTheInput):
    """One number of a convolution's output: filter `filter` at (row, col)."""

    layer: str
    filter: int
    row: int
    col: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    padding: str                  # "valid" or "same"
    pad_top: int                  # zero rows and columns 'same' adds before the input (TensorFlow's rule)
    pad_left: int
    channels: tuple[int, int]     # the input channels the filter reads, [start, stop) (all but in a grouped conv)
    rows: tuple[int, ...]         # the input row under each kernel row; outside 0..height-1 in the padding
    cols: tuple[int, ...]         # the input column under each kernel column
    patch: np.ndarray             # (kh, kw, channels): the input under the kernel, 0 where it is padding
    is_padding: np.ndarray        # (kh, kw) bool: True where the kernel lies on padding, outside the input
    kernel: np.ndarray            # (kh, kw, channels): the filter's weights
    products: np.ndarray          # patch * kernel, element by element
    total: float                  # the products' sum
    bias: float                   # 0 when the layer has none
    z: float                      # total + bias: the value before the activation
    activation: str               # "linear", "relu", "sigmoid", "tanh", ...
    output: float                 # activation(z)
    model_value: float            # what the model computed there

    @property
    def matches(self) -> bool:
        return _agree(self.output, self.model_value, np.abs(self.products).sum() + abs(self.bias))

    def channels_by_contribution(self, most: int) -> list[int]:
        """The input channels (of the patch) whose products add the most, in size, to the sum: the ones to
        draw when a deep kernel reads hundreds."""
        share = np.abs(self.products.reshape(-1, self.products.shape[-1]).sum(axis=0))
        return [int(i) for i in np.argsort(-share, kind="stable")[:most]]


def conv_cell(traced: Trace, layer: str, filter: int, row: int, col: int) -> ConvCell:
    """Filter `filter` of Conv2D `layer` at output (row, col), computed as the textbook does."""
    conv = _layer_of(traced, layer, ("conv",))
    x, y = traced.input_of(layer), traced.output_of(layer)
    filter = checks.whole(filter, "filter", 0, y.shape[2] - 1)
    row = checks.whole(row, "row", 0, y.shape[0] - 1)
    col = checks.whole(col, "col", 0, y.shape[1] - 1)
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.strides, conv.dilation_rate
    pad_top = _pad_before(x.shape[0], y.shape[0], kh, sh, dh, conv.padding)
    pad_left = _pad_before(x.shape[1], y.shape[1], kw, sw, dw, conv.padding)
    rows = row * sh - pad_top + dh * np.arange(kh)
    cols = col * sw - pad_left + dw * np.arange(kw)
    kernel = keras.ops.convert_to_numpy(conv.kernel)                    # (kh, kw, in / groups, filters)
    per_group = kernel.shape[2]
    start = filter // (kernel.shape[3] // conv.groups) * per_group
    patch, is_padding = _window(x[..., start: start + per_group], rows, cols, fill=0.0)
    weights = kernel[..., filter]
    products = patch.astype(np.float64) * weights
    total = float(products.sum())
    bias = float(keras.ops.convert_to_numpy(conv.bias)[filter]) if conv.use_bias else 0.0
    z = total + bias
    name = _activation_name(conv.activation)
    if name in VECTOR_ACTIVATIONS:  # a function of every filter's z at this position
        every_z = _every_z(conv, x, rows, cols, kernel)
        output = float(_activate(name, conv.activation, every_z)[filter])
    else:
        output = float(_activate(name, conv.activation, np.float64(z)))
    return ConvCell(layer, filter, row, col, (kh, kw), (sh, sw), (dh, dw), conv.padding, pad_top, pad_left,
                    (start, start + per_group), tuple(int(r) for r in rows), tuple(int(c) for c in cols), patch,
                    is_padding, weights, products, total, bias, z, name, output, float(y[row, col, filter]))


def _every_z(conv, x: np.ndarray, rows: np.ndarray, cols: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """z of every filter at one output position, each filter reading its group's channels."""
    per_group, filters_per_group = kernel.shape[2], kernel.shape[3] // conv.groups
    every_z = np.empty(kernel.shape[3])
    for group in range(conv.groups):
        patch, _ = _window(x[..., group * per_group: (group + 1) * per_group], rows, cols, fill=0.0)
        chosen = slice(group * filters_per_group, (group + 1) * filters_per_group)
        every_z[chosen] = np.einsum("hwc,hwcf->f", patch.astype(np.float64), kernel[..., chosen])
    return every_z + keras.ops.convert_to_numpy(conv.bias) if conv.use_bias else every_z


def _pad_before(size: int, out: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """The rows (or columns) of padding before the input: TensorFlow's 'same' pads
    max((out - 1) * stride + reach - size, 0) in all, the smaller half first; 'valid' pads none."""
    if padding != "same":
        return 0
    reach = (kernel - 1) * dilation + 1
    return max((out - 1) * stride + reach - size, 0) // 2


def _window(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """x[rows][:, cols] with `fill` where a row or column lies outside x, and where it does."""
    inside_rows = (rows >= 0) & (rows < x.shape[0])
    inside_cols = (cols >= 0) & (cols < x.shape[1])
    window = x[np.clip(rows, 0, x.shape[0] - 1)][:, np.clip(cols, 0, x.shape[1] - 1)].astype(np.float32)
    outside = ~(inside_rows[:, None] & inside_cols[None, :])
    window[outside] = fill
    return window, outside


# --- Pooling ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # its arrays have no single truth value to compare by
class PoolCell(_OnTheInput):
    """One number of a pooling layer's output: channel `channel` at (row, col)."""

    layer: str
    kind: str                     # "pool_max" or "pool_avg"
    channel: int
    row: int
    col: int
    pool_size: tuple[int, int]
    strides: tuple[int, int]
    padding: str                  # "valid" or "same"
    rows: tuple[int, ...]         # the input row under each window row
    cols: tuple[int, ...]
    window: np.ndarray            # (ph, pw): the input under the window; NaN where it hangs over the edge
    is_padding: np.ndarray        # (ph, pw) bool: outside the input, so the pooling leaves it out
    count: int                    # the cells that take part
    total: float                  # their sum
    kept: tuple[int, int] | None  # max pooling: the (row, col) within the window of the value kept
    output: float                 # the largest value, or total / count
    model_value: float

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def matches(self) -> bool:
        return _agree(self.output, self.model_value, np.nanmax(np.abs(self.window)))


def pool_cell(traced: Trace, layer: str, channel: int, row: int, col: int) -> PoolCell:
    """Channel `channel` of MaxPooling2D or AveragePooling2D `layer` at output (row, col).

    With 'same' padding the window may hang over the input's edge: max pooling ignores those cells,
    and average pooling divides by the cells inside only, as TensorFlow does.
    """
    pool = _layer_of(traced, layer, ("pool_max", "pool_avg"))
    kind = kind_of(pool)
    x, y = traced.input_of(layer), traced.output_of(layer)
    channel = checks.whole(channel, "channel", 0, y.shape[2] - 1)
    row = checks.whole(row, "row", 0, y.shape[0] - 1)
    col = checks.whole(col, "col", 0, y.shape[1] - 1)
    (ph, pw), (sh, sw) = pool.pool_size, pool.strides
    rows = row * sh - _pad_before(x.shape[0], y.shape[0], ph, sh, 1, pool.padding) + np.arange(ph)
    cols = col * sw - _pad_before(x.shape[1], y.shape[1], pw, sw, 1, pool.padding) + np.arange(pw)
    window, is_padding = _window(x[..., channel], rows, cols, fill=np.nan)
    count = int((~is_padding).sum())
    total = float(np.nansum(window, dtype=np.float64))
    if kind == "pool_max":
        at = int(np.nanargmax(window))
        kept = (at // pw, at % pw)
        output = float(window[kept])
    else:
        kept, output = None, total / count
    return PoolCell(layer, kind, channel, row, col, (ph, pw), (sh, sw), pool.padding,
                    tuple(int(r) for r in rows), tuple(int(c) for c in cols), window, is_padding, count, total, kept,
                    output, float(y[row, col, channel]))


# --- Activation -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationCell:
    """An activation function on one value: a separate activation layer's, or a layer's own."""

    layer: str
    index: tuple[int, ...]        # the position in the layer's output
    function: str                 # "relu", "sigmoid", "tanh", "softmax", "leaky_relu", ...
    parameters: dict              # a ReLU layer's negative_slope, max_value and threshold where set
    before: float
    after: float
    model_value: float

    @property
    def matches(self) -> bool:
        return _agree(self.after, self.model_value, abs(self.before))


def activation_cell(traced: Trace, layer: str, index) -> ActivationCell:
    """The activation at `index` (a position in the layer's output, or its flat index) of an
    activation layer, or of a convolution's or dense layer's own activation (before: its z)."""
    found = _layer_of(traced, layer, ("activation", "conv", "dense", "softmax"))
    y = traced.output_of(layer)
    index = _index(index, y.shape)
    kind = kind_of(found)
    if kind == "conv":
        cell = conv_cell(traced, layer, index[2], index[0], index[1])
        return ActivationCell(layer, index, cell.activation, {}, cell.z, cell.output, cell.model_value)
    if kind in ("dense", "softmax"):
        cell = dense_cell(traced, layer, index[0])
        return ActivationCell(layer, index, cell.activation, {}, cell.z, cell.output, cell.model_value)
    x = traced.input_of(layer).astype(np.float64)
    if isinstance(found, (layers.ReLU, layers.LeakyReLU)):
        name, parameters = _relu_parameters(found)
        after = float(_relu(x[index], **parameters))
    else:
        name, parameters = _activation_name(found.activation), {}
        if name in VECTOR_ACTIVATIONS:  # over the last axis, as Keras's softmax
            after = float(_activate(name, found.activation, x[index[:-1]])[index[-1]])
        else:
            after = float(_activate(name, found.activation, x[index]))
    return ActivationCell(layer, index, name, parameters, float(x[index]), after, float(y[index]))


def _relu_parameters(layer) -> tuple[str, dict]:
    if isinstance(layer, layers.LeakyReLU):
        return "leaky_relu", {"negative_slope": float(layer.negative_slope)}
    parameters = {"negative_slope": float(layer.negative_slope), "max_value": layer.max_value,
                  "threshold": float(layer.threshold)}
    defaults = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
    return "relu", {name: value for name, value in parameters.items() if value != defaults[name]}


def _relu(x, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0):
    """x from the threshold on (at most max_value), negative_slope * (x - threshold) below it."""
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.minimum(y, max_value)


def _activation_name(function) -> str:
    name = keras.activations.serialize(function) if function is not None else "linear"
    return name if isinstance(name, str) else getattr(function, "__name__", "other")


def _activate(name: str, function, z):
    """activation(z) in float64, written as the textbook writes it; another function is Keras's own."""
    z = np.asarray(z, dtype=np.float64)
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-z) overflows to infinity for z below -709: the sigmoid is 0
            return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        exponentials = np.exp(z - z.max())
        return exponentials / exponentials.sum()
    if name == "log_softmax":
        shifted = z - z.max()
        return shifted - np.log(np.exp(shifted).sum())
    return keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(z.astype(np.float32)))).astype(np.float64)


# --- Batch normalisation ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchNormCell:
    """One number of a batch normalisation at inference: its moving statistics, not the batch's."""

    layer: str
    index: tuple[int, ...]
    channel: int                  # the position along the normalised axis
    x: float
    mean: float                   # the moving mean learnt in training
    variance: float               # the moving variance
    epsilon: float
    gamma: float                  # 1 when the layer does not scale
    beta: float                   # 0 when the layer does not shift
    normalised: float             # (x - mean) / sqrt(variance + epsilon)
    output: float                 # normalised * gamma + beta
    model_value: float

    @property
    def matches(self) -> bool:
        return _agree(self.output, self.model_value, abs(self.normalised * self.gamma) + abs(self.beta))


def batch_norm_cell(traced: Trace, layer: str, index) -> BatchNormCell:
    """The BatchNormalization `layer` at `index` (a position in its output, or its flat index)."""
    norm = _layer_of(traced, layer, ("batch_norm",))
    x, y = traced.input_of(layer), traced.output_of(layer)
    index = _index(index, y.shape)
    channel = index[norm.axis - 1 if norm.axis > 0 else norm.axis]    # the layer's axis counts the batch axis

    def value(variable, default: float) -> float:
        return float(keras.ops.convert_to_numpy(variable)[channel]) if variable is not None else default

    mean, variance = value(norm.moving_mean, 0.0), value(norm.moving_variance, 1.0)
    gamma = value(norm.gamma, 1.0) if norm.scale else 1.0
    beta = value(norm.beta, 0.0) if norm.center else 0.0
    x_value = float(x[index])
    normalised = (x_value - mean) / np.sqrt(variance + norm.epsilon)
    return BatchNormCell(layer, index, channel, x_value, mean, variance, float(norm.epsilon), gamma, beta,
                         float(normalised), float(normalised * gamma + beta), float(y[index]))


# --- Flatten and dense ----------------------------------------------------------------------------------------------

def flat_position(shape: Sequence[int], index: int) -> tuple[int, ...]:
    """The (row, col, channel) of a (height, width, channels) map that Flatten puts at `index`:
    Keras flattens row by row, and within a pixel channel by channel (the last axis fastest)."""
    shape = tuple(int(d) for d in shape)
    index = checks.whole(index, "index", 0, int(np.prod(shape)) - 1)
    return tuple(int(i) for i in np.unravel_index(index, shape))


def flat_index(shape: Sequence[int], position: Sequence[int]) -> int:
    """Where Flatten puts the map's (row, col, channel): the inverse of `flat_position`."""
    shape = tuple(int(d) for d in shape)
    position = _index(tuple(position), shape)
    return int(np.ravel_multi_index(position, shape))


@dataclass(frozen=True)
class FlattenCell:
    """One number of Flatten's vector, and where it sat in the map."""

    layer: str
    index: int
    position: tuple[int, ...]     # (row, col, channel) in the map
    map_shape: tuple[int, ...]
    value: float                  # the vector's number at index
    map_value: float              # the map's number at position

    @property
    def matches(self) -> bool:
        return self.value == self.map_value


def flatten_cell(traced: Trace, layer: str, index: int) -> FlattenCell:
    """Number `index` of Flatten `layer`'s output, traced back to the map it came from."""
    flatten = _layer_of(traced, layer, ("flatten",))
    x, y = traced.input_of(layer), traced.output_of(layer)
    if flatten.data_format == "channels_first" and x.ndim > 1:  # Keras puts the channels last before flattening
        x = np.moveaxis(x, 0, -1)
    position = flat_position(x.shape, index)
    return FlattenCell(layer, int(index), position, tuple(x.shape), float(y[int(index)]), float(x[position]))


@dataclass(frozen=True, eq=False)  # its arrays have no single truth value to compare by
class DenseCell:
    """One unit of a fully connected layer."""

    layer: str
    unit: int
    inputs: np.ndarray            # (n,): the vector the layer receives
    weights: np.ndarray           # (n,): the unit's weight for each input
    products: np.ndarray          # inputs * weights
    total: float                  # the products' sum
    bias: float                   # 0 when the layer has none
    z: float                      # total + bias
    activation: str
    output: float                 # activation(z); for softmax, over every unit's z
    model_value: float
    largest: np.ndarray           # indices of the largest products by size, largest first

    @property
    def matches(self) -> bool:
        return _agree(self.output, self.model_value, np.abs(self.products).sum() + abs(self.bias))


def dense_cell(traced: Trace, layer: str, unit: int, top: int = TOP) -> DenseCell:
    """Unit `unit` of Dense `layer`: sum of inputs x weights, plus the bias, through the activation.
    `largest` lists the `top` inputs that contributed most, for inputs of thousands of numbers."""
    dense = _layer_of(traced, layer, ("dense", "softmax"))
    x, y = traced.input_of(layer), traced.output_of(layer)
    unit = checks.whole(unit, "unit", 0, y.shape[0] - 1)
    top = checks.whole(top, "top", 0)
    kernel = keras.ops.convert_to_numpy(dense.kernel)                  # (n, units)
    weights = kernel[:, unit]
    products = x.astype(np.float64) * weights
    total = float(products.sum())
    biases = keras.ops.convert_to_numpy(dense.bias) if dense.use_bias else np.zeros(kernel.shape[1], np.float32)
    bias = float(biases[unit])
    z = total + bias
    name = _activation_name(dense.activation)
    if name in VECTOR_ACTIVATIONS:
        output = float(_activate(name, dense.activation, _logits(x, kernel, biases))[unit])
    else:
        output = float(_activate(name, dense.activation, np.float64(z)))
    largest = np.argsort(-np.abs(products), kind="stable")[:top]
    return DenseCell(layer, unit, x, weights, products, total, bias, z, name, output, float(y[unit]), largest)


def _logits(x: np.ndarray, kernel: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """W . x + b for every unit, in float64."""
    return x.astype(np.float64) @ kernel.astype(np.float64) + biases


# --- Softmax ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # its arrays have no single truth value to compare by
class SoftmaxStep:
    """The last layer's softmax, step by step: logits, exponentials, their sum, probabilities.

    The exponentials are of the logits less their largest (`shift`): exp(z - shift) / sum exp(z - shift)
    is the same fraction as exp(z) / sum exp(z), and no exponential overflows.
    """

    layer: str
    inputs: np.ndarray            # (n,): the vector the layer receives
    logits: np.ndarray            # (classes,): W . x + b
    shift: float                  # the largest logit, subtracted before exponentiating
    shifted: np.ndarray           # logits - shift: all at most 0
    exponentials: np.ndarray      # exp(shifted): all in (0, 1], the largest exactly 1
    total: float                  # their sum
    probabilities: np.ndarray     # exponentials / total
    model_probabilities: np.ndarray  # what the model computed

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def matches(self) -> bool:
        return bool(np.allclose(self.probabilities, self.model_probabilities, rtol=RTOL, atol=ATOL))


def softmax_step(traced: Trace, layer: str | None = None) -> SoftmaxStep:
    """The softmax of Dense `layer` (by default the last Dense layer with a softmax), step by step."""
    if layer is None:
        layer = next((step.layer for step in reversed(traced.steps) if step.kind == "softmax"), None)
    dense = _layer_of(traced, layer, ("softmax",))
    x = traced.input_of(layer)
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    biases = keras.ops.convert_to_numpy(dense.bias) if dense.use_bias else np.zeros(kernel.shape[1], np.float32)
    logits = _logits(x, kernel, biases)
    shift = float(logits.max())
    shifted = logits - shift
    exponentials = np.exp(shifted)
    total = float(exponentials.sum())
    return SoftmaxStep(layer, x, logits, shift, shifted, exponentials, total, exponentials / total,
                       traced.output_of(layer))


# --- Shared -------------------------------------------------------------------------------------------------------

def _layer_of(traced: Trace, layer: str, kinds: tuple[str, ...]) -> keras.layers.Layer:
    """The model's layer named `layer`, when it is of one of `kinds` and the trace kept its arrays."""
    step = None if layer is None else traced.step(layer)
    if step is None or step.kind not in kinds:
        checks.choice(layer, "layer", [each.layer for each in traced.steps if each.kind in kinds])
    traced._kept(layer)
    return traced.model.get_layer(layer)


def _index(index, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A position in an array of `shape`: one whole number per axis, or one flat (row-major) index."""
    if checks.is_whole(index):
        return tuple(int(i) for i in np.unravel_index(checks.whole(index, "index", 0, int(np.prod(shape)) - 1),
                                                      shape))
    if not isinstance(index, (tuple, list)) or len(index) != len(shape):
        raise LabError("whole", name="index", low="0", high=str(int(np.prod(shape)) - 1), value=checks.shown(index))
    names = _AXES.get(len(shape), tuple(f"index[{axis}]" for axis in range(len(shape))))
    return tuple(checks.whole(i, name, 0, size - 1) for i, name, size in zip(index, names, shape))


_AXES = {1: ("unit",), 3: ("row", "col", "channel")}


def _agree(ours: float, models: float, scale: float) -> bool:
    """Whether a recomputed number equals the model's to float32 rounding, which grows with the size
    of the terms summed (`scale`), not of the result."""
    return bool(abs(ours - models) <= ATOL + RTOL * max(abs(models), float(scale)))


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else -1 for d in shape[1:])
