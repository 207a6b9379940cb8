"""The layer table: what each layer does to the shape, and what it costs.

Receptive field and effective stride are counted in pixels of the network's input, after
preprocessing (LeNet's 32x32, AlexNet's 224x224): the standard recurrence
rf += (kernel - 1) * jump; jump *= stride.

The table is computed from the layer list, without allocating weights, so that changing a knob
on VGG19 (139 million parameters) redraws at once; for a built model it reads Keras's counts.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass

import keras
from keras import layers

from .architectures import ModelConfig, checked, model_layers
from .architectures.preprocessing import is_preprocessing

COLUMNS = ("name", "type", "kind", "output_shape", "params", "macs", "activations",
           "receptive_field", "effective_stride")


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

    def to_dict(self) -> dict:
        return asdict(self) | {"output_shape": list(self.output_shape)}


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

    def to_csv(self) -> str:
        """One row per layer and a final 'total' row; shapes written as 28x28x6."""
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row.to_dict() | {"output_shape": "x".join(map(str, row.output_shape))})
        writer.writerow({"name": "total", "params": self.total_params, "macs": self.total_macs,
                         "activations": self.total_activations})
        return out.getvalue()

    def to_dict(self) -> dict:
        return {"arch": self.arch, "input_shape": list(self.input_shape), "total_params": self.total_params,
                "total_macs": self.total_macs, "total_activations": self.total_activations,
                "layers": [r.to_dict() for r in self.rows]}


def layer_table(model: keras.Model | ModelConfig | str, **overrides) -> LayerTable:
    """One row per layer, in order, from the raw input to the output.

    Give a built model, or a ModelConfig / architecture name (with the same keyword overrides
    as `build_model`) to get the table without building. cnnlab's networks are chains, so each
    layer's input is the previous layer's output.
    """
    if isinstance(model, keras.Model):
        name, raw_shape, chain = model.name, tuple(model.input.shape[1:]), model.layers[1:]
        config = None
    else:
        config, chain = model_layers(model, **overrides)
        name, raw_shape = config.arch, config.raw_shape
    rows = [LayerRow("image", "InputLayer", "input", raw_shape, 0, 0, math.prod(raw_shape), None, None)]
    rf, jump, side = 1, 1, None  # side: the network input's width once preprocessing is done
    shape = (None,) + raw_shape
    for layer in chain:
        in_shape, shape = shape, tuple(checked(config, layer, layer.compute_output_shape, shape, shape))
        if is_preprocessing(layer):
            rows.append(_row(layer, "preprocessing", in_shape, shape, None, None))
            continue
        side = side or in_shape[2]
        if isinstance(layer, (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D)) and jump is not None:
            kernel, stride, dilation = _window(layer)
            rf += (dilation * (kernel - 1)) * jump
            jump *= stride
        elif len(shape) < 4:  # Flatten, Dense, Dropout: every unit sees the whole image
            rf, jump = max(rf, side), None
        rows.append(_row(layer, "layer", in_shape, shape, rf, jump))
    return LayerTable(name, raw_shape, tuple(rows))


def _row(layer, kind, in_shape, out_shape, rf, jump) -> LayerRow:
    out = out_shape[1:]
    return LayerRow(name=layer.name, type=type(layer).__name__, kind=kind, output_shape=out,
                    params=_params(layer, in_shape), macs=_macs(layer, in_shape, out), activations=math.prod(out),
                    receptive_field=rf, effective_stride=jump)


def _window(layer) -> tuple[int, int, int]:
    if isinstance(layer, layers.Conv2D):
        return layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
    return layer.pool_size[0], layer.strides[0], 1


def _params(layer, in_shape) -> int:
    if layer.built:
        return int(layer.count_params())
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return kh * kw * (in_shape[-1] // layer.groups) * layer.filters + (layer.filters if layer.use_bias else 0)
    if isinstance(layer, layers.Dense):
        return in_shape[-1] * layer.units + (layer.units if layer.use_bias else 0)
    if isinstance(layer, (layers.Flatten, layers.Dropout, layers.MaxPooling2D, layers.AveragePooling2D,
                          layers.ZeroPadding2D, layers.Resizing, layers.Rescaling)) or is_preprocessing(layer):
        return 0
    layer.build(in_shape)  # a layer type the table does not know: let Keras count its weights
    return int(layer.count_params())


def _macs(layer, in_shape, out) -> int:
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return math.prod(out) * kh * kw * in_shape[-1] // layer.groups
    if isinstance(layer, layers.Dense):
        return in_shape[-1] * layer.units
    return 0
