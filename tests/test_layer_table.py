"""The layer table agrees with Keras and with the known receptive fields of the papers."""

from __future__ import annotations

import re

import pytest

from cnnlab import build_model, layer_table
from tests.conftest import LAB, OFFLINE


def summary_totals(model) -> int:
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines))
    return int(re.search(r"Total params:\s*([\d,]+)", text).group(1).replace(",", ""))


@pytest.mark.parametrize("name", LAB)
def test_totals_equal_keras_count_and_summary(name):
    model = build_model(name, **OFFLINE.get(name, {}))
    table = layer_table(model)
    assert table.total_params == model.count_params() == summary_totals(model)
    assert [row.name for row in table.rows] == [layer.name for layer in model.layers]
    assert [row.output_shape for row in table.rows[1:]] == [tuple(layer.output.shape[1:]) for layer in model.layers[1:]]


@pytest.mark.parametrize("name", LAB)
def test_preprocessing_rows_are_marked_and_free(name):
    rows = layer_table(build_model(name, **OFFLINE.get(name, {}))).rows
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
    ("keras-vgg19-notop", dict(input_size=48)), ("keras-mobilenetv2", dict(input_size=96)),
    ("transfer", dict(base="resnet50", input_size=64, weights="random", units=32)),
])
def test_table_without_building_equals_the_built_models(name, overrides):
    def content(table):  # Keras numbers unnamed layers per thread (pooling_1, ...): compare all but names
        return [(r.type, r.kind, r.output_shape, r.params, r.macs, r.receptive_field, r.effective_stride,
                 r.trainable_params, len(r.inputs)) for r in table.rows]

    assert content(layer_table(name, **overrides)) == content(layer_table(build_model(name, **overrides)))


def test_table_without_building_explains_a_vanishing_map():
    for size, layer in [(100, "conv5"), (162, "pool5")]:
        with pytest.raises(ValueError, match=f"{layer}.*at least 163"):
            layer_table("alexnet", input_size=size)
        with pytest.raises(ValueError, match=f"{layer}.*at least 163"):
            build_model("alexnet", input_size=size)


def test_branched_networks_name_their_inputs_and_merge_receptive_fields():
    table = layer_table("keras-resnet50")
    rows = {row.name: row for row in table.rows}
    assert not table.is_chain and table.weight_layers == 107 and table.longest_path() == 99
    add = rows["conv2_block1_add"]
    assert add.inputs == ("conv2_block1_0_bn", "conv2_block1_3_bn")   # the shortcut and the block
    assert add.receptive_field == max(rows[name].receptive_field for name in add.inputs)
    assert rows["predictions"].trainable_params == rows["predictions"].params == 2048 * 1000 + 1000
    assert table.trainable_params == 25_583_592     # batch normalisation's running statistics are not trained


def test_a_frozen_base_has_nothing_to_train():
    table = layer_table("transfer", base="mobilenetv2", input_size=32, units=64)
    trainable = [row.name for row in table.rows if row.trainable_params]
    assert trainable == ["head_dense", "predictions"]
    assert table.trainable_params == 1280 * 64 + 64 + 64 * 10 + 10

