"""The layer table: what each layer does to the shape, and what it costs.

Receptive field and effective stride are counted in pixels of the network's input, after
preprocessing (LeNet's 32x32, AlexNet's 224x224): the standard recurrence
rf += (kernel - 1) * jump; jump *= stride.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
from keras import layers

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
        return asdict(self)


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

    def to_dict(self) -> dict:
        return {"arch": self.arch, "input_shape": list(self.input_shape), "total_params": self.total_params,
                "total_macs": self.total_macs, "total_activations": self.total_activations,
                "layers": [r.to_dict() | {"output_shape": list(r.output_shape)} for r in self.rows]}


def layer_table(model: keras.Model) -> LayerTable:
    """One row per layer of a model cnnlab built, in order, from the raw input to the output.

    cnnlab's networks are chains, so each layer's input is the previous layer's output.
    """
    rows = []
    rf, jump, side = 1, 1, None  # side: the network input's width once preprocessing is done
    shape = tuple(model.input.shape)
    for layer in model.layers:
        in_shape = shape
        if not isinstance(layer, layers.InputLayer):
            shape = tuple(layer.compute_output_shape(in_shape))
        out_shape = shape[1:]
        if isinstance(layer, layers.InputLayer):
            rows.append(_row(layer, "input", out_shape, None, None))
            continue
        if is_preprocessing(layer):
            rows.append(_row(layer, "preprocessing", out_shape, None, None))
            continue
        if side is None:
            side = in_shape[2]
        if isinstance(layer, (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D)) and jump is not None:
            kernel, stride, dilation = _window(layer)
            rf += (dilation * (kernel - 1)) * jump
            jump *= stride
        elif len(out_shape) < 3:  # Flatten, Dense, Dropout: every unit sees the whole image
            rf, jump = max(rf, side), None
        rows.append(_row(layer, "layer", out_shape, rf, jump, _macs(layer, in_shape, out_shape)))
    return LayerTable(model.name, tuple(model.input.shape[1:]), tuple(rows))


def _row(layer, kind, out_shape, rf, jump, macs=0) -> LayerRow:
    return LayerRow(name=layer.name, type=type(layer).__name__, kind=kind, output_shape=out_shape,
                    params=int(layer.count_params()), macs=int(macs), activations=int(math.prod(out_shape)),
                    receptive_field=rf, effective_stride=jump)


def _window(layer) -> tuple[int, int, int]:
    if isinstance(layer, layers.Conv2D):
        return layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
    return layer.pool_size[0], layer.strides[0], 1


def _macs(layer, in_shape, out_shape) -> int:
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return math.prod(out_shape) * kh * kw * in_shape[-1] // layer.groups
    if isinstance(layer, layers.Dense):
        return in_shape[-1] * layer.units
    return 0
