"""The layer table: what each layer does to the shape, and what it costs.

Receptive field and effective stride are counted in pixels of the network's input, after
preprocessing (LeNet's 32x32, AlexNet's 224x224): the standard recurrence
rf += (kernel - 1) * jump; jump *= stride.

For a name or a configuration the table is computed from a model built without weights
(`build_without_weights`), so that changing a knob on VGG19 (139 million parameters) redraws at
once and NASNetLarge's 1,041 layers cost no memory. Networks with branches (ResNet, Inception,
DenseNet) are walked in Keras's order; each row names the layers it reads from, and a row's
receptive field is the largest among its inputs'.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from dataclasses import asdict, dataclass

import keras
from keras import layers

from .architectures import ModelConfig, as_config, build_without_weights
from .architectures.preprocessing import is_preprocessing
from .errors import LabError

COLUMNS = ("name", "type", "kind", "output_shape", "params", "macs", "activations",
           "receptive_field", "effective_stride", "trainable_params", "inputs")
_GLOBAL = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)  # to one value per channel (1x1 with keepdims)
_WINDOWED = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.MaxPooling2D,
             layers.AveragePooling2D)


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    kind: str                          # "input", "preprocessing" or "layer"
    output_shape: tuple[int, ...]      # per image, without the batch axis
    params: int
    macs: int                          # multiply-accumulates per image
    activations: int                   # output values per image
    receptive_field: int | None        # pixels of the network input one output value sees
    effective_stride: int | None       # input pixels between neighbouring output values
    trainable_params: int = 0          # of params, those training changes: 0 in a frozen base
    inputs: tuple[str, ...] = ()       # the layers this one reads; more than one where branches merge

    def to_dict(self) -> dict:
        return asdict(self) | {"output_shape": list(self.output_shape), "inputs": list(self.inputs)}


@dataclass(frozen=True)
class LayerTable:
    arch: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def total_activations(self) -> int:
        return sum(r.activations for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.rows)

    @property
    def weight_layers(self) -> int:
        """Layers that hold weights: how the Keras Applications table counts depth."""
        return sum(1 for r in self.rows if r.params)

    @property
    def is_chain(self) -> bool:
        return all(len(r.inputs) <= 1 for r in self.rows) and all(
            r.inputs == (previous.name,) for previous, r in zip(self.rows, self.rows[1:]))

    def longest_path(self) -> int:
        """Weight layers on the longest path from input to output: the depth a signal travels."""
        depth: dict[str, int] = {}
        for r in self.rows:
            depth[r.name] = max((depth[i] for i in r.inputs), default=0) + (1 if r.params else 0)
        return max(depth.values())

    def to_csv(self) -> str:
        """One row per layer and a final 'total' row; shapes written as 28x28x6."""
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row.to_dict() | {"output_shape": "x".join(map(str, row.output_shape)),
                                             "inputs": " ".join(row.inputs)})
        writer.writerow({"name": "total", "params": self.total_params, "macs": self.total_macs,
                         "activations": self.total_activations})
        return out.getvalue()

    def to_dict(self) -> dict:
        return {"arch": self.arch, "input_shape": list(self.input_shape), "total_params": self.total_params,
                "trainable_params": self.trainable_params,
                "total_macs": self.total_macs, "total_activations": self.total_activations,
                "layers": [r.to_dict() for r in self.rows]}


def layer_table(model: keras.Model | ModelConfig | str, **overrides) -> LayerTable:
    """One row per layer, in Keras's order, from the raw input to the output.

    Give a built model, or a ModelConfig / architecture name (with the same keyword overrides
    as `build_model`) to get the table without allocating any weights.
    """
    if not isinstance(model, keras.Model):
        return _table_of(json.dumps(as_config(model, **overrides).to_dict(), sort_keys=True))
    if overrides:
        raise LabError("layer_table.overrides", names=", ".join(overrides))
    produced_by = {id(layer.output): layer.name for layer in model.layers}
    raw_shape = tuple(model.input.shape[1:])
    rows = [LayerRow("image", "InputLayer", "input", raw_shape, 0, 0, math.prod(raw_shape), None, None)]
    field = {rows[0].name: (1, 1)}   # receptive field and stride at each layer's output
    side = None                      # the network input's width once preprocessing is done
    for layer in model.layers[1:]:
        sources = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        names = tuple(produced_by[id(t)] for t in sources)
        in_shape, shape = tuple(sources[0].shape), tuple(layer.output.shape)
        if is_preprocessing(layer):
            field[layer.name] = (1, 1)
            rows.append(_row(layer, "preprocessing", in_shape, shape, None, None, names))
            continue
        side = side or in_shape[2]
        rf = max(field[n][0] for n in names)
        jumps = [field[n][1] for n in names]
        jump = None if None in jumps else max(jumps)
        if isinstance(layer, _WINDOWED) and jump is not None:
            kernel, stride, dilation = _window(layer)
            rf += (dilation * (kernel - 1)) * jump
            jump *= stride
        elif len(shape) < 4 or isinstance(layer, _GLOBAL):  # Flatten, global pooling, Dense: the whole image
            rf, jump = max(rf, side), None
        field[layer.name] = (rf, jump)
        rows.append(_row(layer, "layer", in_shape, shape, rf, jump, names))
    return LayerTable(model.name, raw_shape, tuple(rows))


@functools.lru_cache(maxsize=64)
def _table_of(config_json: str) -> LayerTable:
    """Tables are immutable, so one per configuration serves every page and every learner."""
    return layer_table(build_without_weights(ModelConfig.from_dict(json.loads(config_json))))


def _row(layer, kind, in_shape, out_shape, rf, jump, inputs) -> LayerRow:
    out = out_shape[1:]
    return LayerRow(name=layer.name, type=type(layer).__name__, kind=kind, output_shape=out,
                    params=int(layer.count_params()), macs=_macs(layer, in_shape, out), activations=math.prod(out),
                    receptive_field=rf, effective_stride=jump,
                    trainable_params=sum(math.prod(w.shape) for w in layer.trainable_weights), inputs=inputs)


def _window(layer) -> tuple[int, int, int]:
    if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)):
        return layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
    return layer.pool_size[0], layer.strides[0], 1


def _macs(layer, in_shape, out) -> int:
    """Multiply-accumulates per image; 0 for layers whose cost is not a product of weights and inputs."""
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return math.prod(out) * kh * kw
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        depthwise = math.prod(out[:-1]) * in_shape[-1] * layer.depth_multiplier
        return depthwise * kh * kw + depthwise * layer.filters
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return math.prod(out) * kh * kw * in_shape[-1] // layer.groups
    if isinstance(layer, layers.Dense):
        return math.prod(in_shape[1:]) * layer.units
    return 0
