"""Why each layer's output has the size it has, and which input pixels one output value sees.

The layer table says *what* the shapes are; this module says *why*, in numbers a page can put
into words. One spatial axis of a convolution or pooling layer follows Keras's (TensorFlow's)
rule:

    out = floor((n + pad_before + pad_after - effective_kernel) / stride) + 1
    effective_kernel = dilation * (kernel - 1) + 1

with no padding for "valid" and, for "same", out = ceil(n / stride) and a total padding of
max((out - 1) * stride + effective_kernel - n, 0), split as total // 2 before and the rest after
(TensorFlow puts the odd pixel at the end). When the division is not exact the floor drops the
input pixels past the last window: AlexNet's conv1 on 224 pixels reads pixels 0 to 222 only.

`explain_sizes` walks a whole network with this rule (and the rules of flattening, dense layers,
padding, resizing and merging), and `receptive_region` walks it backwards from one output value to
the rectangle of the network input it can see.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass

import keras
from keras import layers

from . import checks
from .architectures import ModelConfig, as_config, build_without_weights
from .errors import LabError
from .layer_table import layer_table

PADDINGS = ("valid", "same")
KINDS = ("input", "window", "flatten", "dense", "global", "same", "pad", "crop", "resize", "concat", "other")

_CONVOLUTIONS = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)
_POOLING = (layers.MaxPooling2D, layers.AveragePooling2D)
_GLOBAL = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
_DENSE_IN_EFFECT = ("Conv2D", "SeparableConv2D")   # every output value reads every input channel


@dataclass(frozen=True)
class SizeStep:
    """One spatial axis of a window (convolution or pooling) layer: n input pixels to `out`."""

    n: int                       # input pixels along the axis
    kernel: int                  # the window as written (kernel_size, pool_size)
    dilation: int
    effective_kernel: int        # dilation * (kernel - 1) + 1: the pixels one window spans
    stride: int
    padding: str                 # "valid" or "same"
    pad_before: int              # zeros added before pixel 0 ("same" only)
    pad_after: int               # zeros added after the last pixel
    numerator: int               # n + pad_before + pad_after - effective_kernel
    quotient: float              # numerator / stride, exactly
    floor: int                   # floor(quotient): the steps the window takes after its first place
    out: int                     # floor + 1
    covered: int                 # 1 + the last input pixel any window reaches (unpadded coordinates)
    dropped: tuple[int, ...]     # input pixels no window reads: past the last window, and between windows
                                 # (stride above the effective kernel) or between a dilated kernel's taps

    @property
    def exact(self) -> bool:
        """Whether the stride divides the numerator, so that no pixel falls off the end."""
        return self.numerator % self.stride == 0


@dataclass(frozen=True)
class SizeRow:
    """How one row of the layer table gets its output shape from its input shape.

    `computed` is the shape this module works out from `input_shape` by the rule of `kind`;
    `output_shape` is the layer table's (Keras's). Which detail fields are set depends on `kind`:

        window   height, width (SizeSteps) and channels: filters; input channels x depth
                 multiplier for a depthwise convolution; the input's channels for pooling
        flatten  nothing more: height x width x channels values in one vector
        dense    channels: the units
        global   channels: the input's, one value per channel (1x1 maps with keepdims)
        pad      border: ((top, bottom), (left, right)) zeros added
        crop     border: ((top, bottom), (left, right)) pixels cut off
        resize   size: (height, width)
        concat   parts: the channels of each input, in order; channels: their sum
        same     nothing: the output has the input's shape (activations, normalisation, dropout,
                 rescaling, additions and products of maps)
        input    nothing: the raw image
        other    nothing: Keras's shape, which the lab does not explain (reshaping)
    """

    name: str
    type: str
    kind: str
    input_shape: tuple[int, ...]           # the first input's, without the batch axis
    output_shape: tuple[int, ...]          # the layer table's
    computed: tuple[int, ...]              # worked out from input_shape; equals output_shape
    inputs: tuple[str, ...] = ()           # the rows this one reads, as in the layer table
    preprocessing: bool = False            # one of the lab's preprocessing layers, before the network
    height: SizeStep | None = None
    width: SizeStep | None = None
    channels: int | None = None
    border: tuple[tuple[int, int], tuple[int, int]] | None = None
    size: tuple[int, int] | None = None
    parts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Region:
    """The rectangle of the network input (after preprocessing) that one output value can see.

    top, left, bottom and right are inclusive, in pixels of the network input, and follow the
    standard recurrence without clipping: they may lie outside the image where padding was added,
    and they span `receptive_field` pixels. `clipped` is the part that can change the value: the
    rectangle cut at every layer to the map that layer reads, so padding and the pixels a 'valid'
    layer drops at the end are left out (None if the value reads only padding). Between the taps
    of a dilated kernel or a stride wider than its window, some pixels inside it may still be unread.
    """

    layer: str
    row: int
    col: int
    input_side: tuple[int, int]            # (height, width) of the network input
    receptive_field: tuple[int, int]       # (rows, columns) the unclipped rectangle spans
    jump: tuple[int, int]                  # input pixels between this value and the next one down, right
    top: int
    left: int
    bottom: int
    right: int
    clipped: tuple[int, int, int, int] | None   # (top, left, bottom, right)

    @property
    def unclipped(self) -> tuple[int, int, int, int]:
        return self.top, self.left, self.bottom, self.right


def output_size(n: int, kernel: int, stride: int, padding: str = "valid", dilation: int = 1) -> SizeStep:
    """One spatial axis of a convolution or pooling layer, as Keras computes it.

    `output_size(224, 11, 4)` is AlexNet's conv1: 213 / 4 = 53.25, so 54 outputs, and pixel 223
    is never read. A window larger than a 'valid' input raises a LabError.
    """
    n, kernel, stride = (checks.whole(n, "n", 1), checks.whole(kernel, "kernel", 1),
                         checks.whole(stride, "stride", 1))
    dilation, padding = checks.whole(dilation, "dilation", 1), checks.choice(padding, "padding", PADDINGS)
    effective = dilation * (kernel - 1) + 1
    total = max((-(-n // stride) - 1) * stride + effective - n, 0) if padding == "same" else 0
    before, after = total // 2, total - total // 2
    numerator = n + total - effective
    if numerator < 0:
        name = f"kernel_size={kernel}" + (f", dilation_rate={dilation}" if dilation > 1 else "")
        raise LabError("too_small_for", name=name, size=str(n), smallest=str(effective))
    out = numerator // stride + 1
    read = bytearray(n)   # 1 where some window reads the pixel
    for tap in range(kernel):
        first = tap * dilation - before          # the pixel this tap reads in the first window
        skip = max(0, -(first // stride))        # windows whose tap lies in the padding before pixel 0
        start, stop = first + skip * stride, min(first + (out - 1) * stride, n - 1)
        if start <= stop:
            read[start:stop + 1:stride] = b"\x01" * len(range(start, stop + 1, stride))
    return SizeStep(n=n, kernel=kernel, dilation=dilation, effective_kernel=effective, stride=stride,
                    padding=padding, pad_before=before, pad_after=after, numerator=numerator,
                    quotient=numerator / stride, floor=numerator // stride, out=out,
                    covered=min((out - 1) * stride - before + effective, n),
                    dropped=tuple(i for i, seen in enumerate(read) if not seen))


def fitting_input(step: SizeStep) -> SizeStep:
    """The same window on the smallest input from `step.n` up whose windows fit exactly, no pixel falling
    off the end: AlexNet's conv1 fits 227 pixels, not the paper's 224."""
    for n in range(step.n, step.n + step.stride):
        fitted = output_size(n, step.kernel, step.stride, step.padding, step.dilation)
        if fitted.exact:
            return fitted
    return step  # 'same' padding: every input fits


def explain_sizes(model: keras.Model | ModelConfig | str, **overrides) -> tuple[SizeRow, ...]:
    """One SizeRow per row of the layer table, in its order and with its names.

    Give a built model, or a ModelConfig / architecture name with the keyword overrides of
    `build_model` to explain it without allocating any weights.
    """
    return _explained(model, overrides)[1]


def is_dense_in_effect(row: SizeRow) -> bool:
    """Whether a convolution is a dense layer in disguise: one 'valid' window over the whole map,
    so its 1x1 output reads every input value once (LeNet's C5: 5x5 on a 5x5 map, 1x1x120)."""
    return row.kind == "window" and row.type in _DENSE_IN_EFFECT and all(
        step.padding == "valid" and step.dilation == 1 and step.kernel == step.n for step in (row.height, row.width))


def flatten_keeps_values(row: SizeRow) -> bool:
    """Whether a Flatten only drops two axes of size 1: its input is a 1x1 map, so the vector holds
    the same values in the same order."""
    return row.kind == "flatten" and len(row.input_shape) == 3 and row.input_shape[:2] == (1, 1)


def receptive_region(model: keras.Model | ModelConfig | str, layer_name: str, row: int, col: int,
                     **overrides) -> Region:
    """The rectangle of the network input that output value (`row`, `col`) of a layer with a map
    can see, found by walking the network back from that value.

    For a chain (the lab's own networks) the rectangle spans the layer table's receptive field and
    moves by its effective stride from one value to the next. Where branches merge the rectangle
    covers every path; a branch through global pooling (squeeze-and-excitation) sees the whole image.
    """
    arch, rows = _explained(model, overrides)
    index = {r.name: i for i, r in enumerate(rows)}
    start = _network_input(rows)
    if layer_name not in index:
        raise LabError("explain.no_layer", model=arch, layer=checks.shown(layer_name))
    target = index[layer_name]
    if target <= start or len(rows[target].output_shape) != 3:
        maps = ", ".join(r.name for r in rows[start + 1:] if r.kind == "window")
        raise LabError("explain.no_feature_map", layer=layer_name, model=arch, maps=maps)
    height, width = rows[target].output_shape[:2]
    row, col = checks.whole(row, "row", 0, height - 1), checks.whole(col, "col", 0, width - 1)
    cell = (row, col, row, col)
    top, left, bottom, right = _walk(rows, index, start, target, cell, clip=False)
    below, after, _, _ = _walk(rows, index, start, target, (row + 1, col + 1, row + 1, col + 1), clip=False)
    return Region(layer=layer_name, row=row, col=col, input_side=rows[start].output_shape[:2],
                  receptive_field=(bottom - top + 1, right - left + 1), jump=(below - top, after - left),
                  top=top, left=left, bottom=bottom, right=right,
                  clipped=_walk(rows, index, start, target, cell, clip=True))


def _explained(model, overrides) -> tuple[str, tuple[SizeRow, ...]]:
    if not isinstance(model, keras.Model):
        config = as_config(model, **overrides)
        return config.arch, _sizes_of(json.dumps(config.to_dict(), sort_keys=True))
    if overrides:
        raise LabError("layer_table.overrides", names=", ".join(overrides))
    return model.name, _explain(model)


@functools.lru_cache(maxsize=64)
def _sizes_of(config_json: str) -> tuple[SizeRow, ...]:
    """The explanation is immutable, so one per configuration serves every page and every learner."""
    return _explain(build_without_weights(ModelConfig.from_dict(json.loads(config_json))))


def _explain(model: keras.Model) -> tuple[SizeRow, ...]:
    table = layer_table(model)
    first = table.rows[0]
    rows = [SizeRow(first.name, first.type, "input", first.output_shape, first.output_shape, first.output_shape)]
    named = {model.layers[0].name: first.name}   # the table calls the raw input "image" whatever Keras calls it
    for layer, table_row in zip(model.layers[1:], table.rows[1:]):
        sources = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        shapes = [tuple(source.shape[1:]) for source in sources]
        kind, computed, details = _rule(layer, shapes)
        rows.append(SizeRow(name=table_row.name, type=table_row.type, kind=kind, input_shape=shapes[0],
                            output_shape=table_row.output_shape, computed=computed,
                            inputs=tuple(named.get(name, name) for name in table_row.inputs),
                            preprocessing=table_row.kind == "preprocessing", **details))
    return tuple(rows)


def _rule(layer, shapes: list[tuple[int, ...]]) -> tuple[str, tuple[int, ...], dict]:
    """The layer's kind, the output shape its rule gives for its inputs, and the numbers of that rule."""
    shape = shapes[0]
    if isinstance(layer, _CONVOLUTIONS + _POOLING):
        height, width = _steps(layer, shape)
        if isinstance(layer, layers.DepthwiseConv2D):
            channels = shape[-1] * layer.depth_multiplier
        else:
            channels = shape[-1] if isinstance(layer, _POOLING) else layer.filters
        return "window", (height.out, width.out, channels), dict(height=height, width=width, channels=channels)
    if isinstance(layer, layers.Flatten):
        return "flatten", (math.prod(shape),), {}
    if isinstance(layer, layers.Dense):
        return "dense", shape[:-1] + (layer.units,), dict(channels=layer.units)
    if isinstance(layer, _GLOBAL):
        channels = shape[-1]
        return "global", (1, 1, channels) if layer.keepdims else (channels,), dict(channels=channels)
    if isinstance(layer, (layers.ZeroPadding2D, layers.Cropping2D)):
        kind, sign = ("pad", 1) if isinstance(layer, layers.ZeroPadding2D) else ("crop", -1)
        edges = layer.padding if kind == "pad" else layer.cropping
        (top, bottom), (left, right) = edges
        computed = (shape[0] + sign * (top + bottom), shape[1] + sign * (left + right), shape[2])
        return kind, computed, dict(border=((top, bottom), (left, right)))
    if isinstance(layer, layers.Resizing):
        return "resize", (layer.height, layer.width, shape[-1]), dict(size=(layer.height, layer.width))
    if isinstance(layer, layers.Concatenate):
        axis = layer.axis - 1 if layer.axis > 0 else len(shape) + layer.axis   # without the batch axis
        parts = tuple(s[axis] for s in shapes)
        computed = shape[:axis] + (sum(parts),) + shape[axis + 1:]
        return "concat", computed, dict(parts=parts, channels=sum(parts) if axis == len(shape) - 1 else None)
    output = tuple(layer.output.shape[1:])
    return ("same", shape, {}) if output == shape else ("other", output, {})


def _steps(layer, shape) -> tuple[SizeStep, SizeStep]:
    kernel = layer.pool_size if isinstance(layer, _POOLING) else layer.kernel_size
    dilation = (1, 1) if isinstance(layer, _POOLING) else layer.dilation_rate
    return tuple(output_size(shape[axis], kernel[axis], layer.strides[axis], layer.padding, dilation[axis])
                 for axis in (0, 1))


def _network_input(rows: tuple[SizeRow, ...]) -> int:
    """The row whose output the network proper reads: the raw image, or the last preprocessing step."""
    start = 0
    while start + 1 < len(rows) and rows[start + 1].preprocessing:
        start += 1
    return start


# What a row is asked for: (top, left, bottom, right) of its map, inclusive, or _ALL of a row
# without a map (a vector).
_ALL = ()


def _walk(rows, index, start, target, cells, *, clip):
    """The cells of the network input (row `start`) that `cells` of row `target` read; None if none.
    Rows come in Keras's order, so walking it backwards reaches every reader of a row before the row."""
    asked = {target: cells}
    for i in range(target, start, -1):
        if i not in asked:
            continue
        for name in rows[i].inputs:
            source = index[name]
            cells = _back(rows[i], asked[i], rows[source], clip)
            if cells is not None:
                asked[source] = _union(asked.get(source), cells)
    return asked.get(start)


def _back(row: SizeRow, cells, source: SizeRow, clip: bool):
    """The cells of `source`'s output that `cells` of `row`'s output read."""
    shape = source.output_shape
    whole = (0, 0, shape[0] - 1, shape[1] - 1) if len(shape) == 3 else _ALL
    if cells == _ALL or row.kind in ("flatten", "global", "resize", "other"):
        return whole   # a vector reads every value; resizing and reshaping are not followed pixel by pixel
    if row.kind == "dense":   # on a map, a dense layer works on each position alone
        return cells if len(shape) == 3 else whole
    top, left, bottom, right = cells
    if row.kind == "window":
        (top, bottom), (left, right) = _window_back(row.height, top, bottom), _window_back(row.width, left, right)
    elif row.kind in ("pad", "crop"):
        (down, _), (across, _) = row.border
        if row.kind == "pad":
            down, across = -down, -across
        top, left, bottom, right = top + down, left + across, bottom + down, right + across
    elif len(shape) != 3 or shape[:2] != row.output_shape[:2]:   # a 1x1 map multiplied into every position
        return whole
    if clip:
        top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, shape[0] - 1), min(right, shape[1] - 1)
        if top > bottom or left > right:
            return None
    return top, left, bottom, right


def _window_back(step: SizeStep, first: int, last: int) -> tuple[int, int]:
    """The input pixels (unpadded) that output pixels `first` to `last` of one axis read."""
    return first * step.stride - step.pad_before, last * step.stride - step.pad_before + step.effective_kernel - 1


def _union(a, b):
    """The smallest request holding both."""
    if a is None:
        return b
    if a == _ALL or b == _ALL:
        return _ALL
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])
