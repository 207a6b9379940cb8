"""The layer table agrees with Keras and with the known receptive fields of the papers."""

from __future__ import annotations

import re

import pytest

from cnnlab import ARCHITECTURES, build_model, layer_table


def summary_totals(model) -> int:
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines))
    return int(re.search(r"Total params:\s*([\d,]+)", text).group(1).replace(",", ""))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_totals_equal_keras_count_and_summary(name):
    model = build_model(name)
    table = layer_table(model)
    assert table.total_params == model.count_params() == summary_totals(model)
    assert [row.name for row in table.rows] == [layer.name for layer in model.layers]
    assert [row.output_shape for row in table.rows[1:]] == [tuple(l.output.shape[1:]) for l in model.layers[1:]]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_preprocessing_rows_are_marked_and_free(name):
    rows = layer_table(build_model(name)).rows
    assert rows[0].kind == "input"
    prep = [row for row in rows if row.kind == "preprocessing"]
    assert prep and all(row.params == 0 and row.macs == 0 for row in prep)
    assert all(row.kind == "layer" for row in rows[1 + len(prep):])


def test_lenet_costs_and_receptive_fields():
    rows = {row.name: row for row in layer_table(build_model("lenet5")).rows}
    assert rows["c1_conv"].macs == 28 * 28 * 6 * 5 * 5 * 1
    assert (rows["c1_conv"].receptive_field, rows["c1_conv"].effective_stride) == (5, 1)
    assert (rows["s4_pool"].receptive_field, rows["s4_pool"].effective_stride) == (16, 4)
    assert rows["c5_conv"].receptive_field == 32  # C5 sees the whole padded digit
    assert rows["f6_dense"].macs == 120 * 84
    assert rows["c1_conv"].activations == 28 * 28 * 6


def test_alexnet_and_vgg19_receptive_fields():
    alex = {row.name: row for row in layer_table(build_model("alexnet")).rows}
    assert (alex["conv1"].receptive_field, alex["conv1"].effective_stride) == (11, 4)
    assert alex["conv1"].macs == 54 * 54 * 96 * 11 * 11 * 3
    assert (alex["pool5"].receptive_field, alex["pool5"].effective_stride) == (163, 32)
    vgg = {row.name: row for row in layer_table(build_model("vgg19", input_size=32, width=0.125)).rows}
    # VGG16's pool5 sees 212 pixels; VGG19's four extra 3x3 convolutions add 2*4 + 2*8 + 2*16.
    assert (vgg["block5_pool"].receptive_field, vgg["block5_pool"].effective_stride) == (268, 32)


def test_table_serialises_for_json():
    data = layer_table(build_model("lenet5")).to_dict()
    assert data["total_params"] == 61_706 and data["input_shape"] == [28, 28, 1]
    assert {"name", "type", "output_shape", "params", "macs", "receptive_field"} <= set(data["layers"][0])


@pytest.mark.parametrize("name, overrides", [
    ("lenet5", {}), ("lenet5", dict(width=0.5, pooling="max", input_size=40)), ("alexnet", {}),
    ("alexnet", dict(input_size=180, width=0.3)), ("vgg19", dict(input_size=64, width=0.25, weight_decay=0)),
    ("keras-vgg19", dict(input_size=48)),
])
def test_table_without_building_equals_the_built_models(name, overrides):
    assert layer_table(name, **overrides) == layer_table(build_model(name, **overrides))


def test_table_without_building_explains_a_vanishing_map():
    for size, layer in [(100, "conv5"), (162, "pool5")]:
        with pytest.raises(ValueError, match=f"{layer}.*at least 163"):
            layer_table("alexnet", input_size=size)
        with pytest.raises(ValueError, match=f"{layer}.*at least 163"):
            build_model("alexnet", input_size=size)
