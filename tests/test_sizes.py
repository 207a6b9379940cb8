"""Why each layer has its size, checked against Keras, and which input pixels one value sees, checked
by perturbing the input and watching which values change."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from cnnlab import build_model, get_architecture, layer_table, list_architectures
from cnnlab.errors import LabError
from cnnlab.sizes import (
    KINDS,
    explain_sizes,
    flatten_keeps_values,
    is_dense_in_effect,
    output_size,
    receptive_region,
)
from tests.conftest import LAB, OFFLINE

# Every choice of every knob that changes layers, every lab network at its smallest input, and a narrow one.
VARIANTS = [(name, {knob.name: choice}) for name in LAB for knob in get_architecture(name).knobs
            for choice in knob.choices] + \
           [(name, {"input_size": get_architecture(name).min_input_size}) for name in LAB] + \
           [("lenet5", dict(width=0.5, input_size=40)), ("vgg19", dict(width=0.25, input_size=64))]


def by_name(rows):
    return {row.name: row for row in rows}


def check_rules(rows):
    assert rows[0].kind == "input"
    assert {row.kind for row in rows} <= set(KINDS)
    for row in rows:
        assert row.computed == row.output_shape, row
        if row.kind == "window":
            assert (row.height.out, row.width.out) == row.output_shape[:2]
    assert {row.type for row in rows if row.kind == "other"} <= {"Reshape"}   # all else explained


# --- one axis of a window --------------------------------------------------------------------------------------------

def test_alexnet_conv1_drops_the_last_pixel_at_224_and_none_at_227():
    conv1 = by_name(explain_sizes("alexnet"))["conv1"].height
    assert (conv1.numerator, conv1.quotient, conv1.floor, conv1.out) == (213, 53.25, 53, 54)
    assert (conv1.covered, conv1.dropped, conv1.exact) == (223, (223,), False)   # 53 * 4 + 11 = 223 pixels read
    conv1 = by_name(explain_sizes("alexnet", input_size=227))["conv1"].height
    assert (conv1.quotient, conv1.out, conv1.covered, conv1.dropped, conv1.exact) == (54.0, 55, 227, (), True)
    assert layer_table("alexnet", input_size=227).rows[3].output_shape == (55, 55, 96)


@pytest.mark.parametrize("args, expected", [
    ((32, 5, 1), dict(out=28, numerator=27, pad_before=0, pad_after=0, dropped=())),          # LeNet's C1
    ((28, 5, 1, "same"), dict(out=28, pad_before=2, pad_after=2, covered=28)),
    ((224, 3, 2, "same"), dict(out=112, pad_before=0, pad_after=1, quotient=111.0)),        # the odd zero goes last
    ((224, 11, 4), dict(out=54, quotient=53.25, covered=223, dropped=(223,))),              # AlexNet's conv1
    ((7, 2, 3), dict(out=2, covered=5, dropped=(2, 5, 6))),                                 # gaps: stride > kernel
    ((56, 1, 2), dict(out=28, dropped=tuple(range(1, 56, 2)))),                             # ResNet's shortcut
    ((4, 2, 3, "same"), dict(out=2, pad_before=0, pad_after=1, dropped=(2,))),
    ((9, 3, 1, "valid", 2), dict(effective_kernel=5, out=5, dropped=())),
    ((6, 2, 2, "valid", 2), dict(effective_kernel=3, out=2, covered=5, dropped=(1, 3, 5))),  # between the taps
    ((3, 5, 1, "same"), dict(out=3, pad_before=2, pad_after=2)),                            # same never vanishes
])
def test_output_size_cases(args, expected):
    step = output_size(*args)
    assert {key: getattr(step, key) for key in expected} == expected
    assert step.out == step.floor + 1 and step.numerator == step.n + step.pad_before + step.pad_after - \
        step.effective_kernel


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_size_reads_the_pixels_keras_reads(padding):
    """Against Keras itself: its output size, and the pixels that change no output are the dropped ones."""
    for n in range(1, 10):
        one_pixel_each = np.eye(n, dtype="float32").reshape(n, n, 1, 1)
        for kernel in (1, 2, 3, 5):
            for stride, dilation in [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2)]:   # Keras refuses both above 1
                if padding == "valid" and n < dilation * (kernel - 1) + 1:
                    continue
                step = output_size(n, kernel, stride, padding, dilation)
                out = keras.ops.convert_to_numpy(keras.ops.conv(
                    one_pixel_each, np.ones((kernel, 1, 1, 1), "float32"), (stride, 1), padding,
                    dilation_rate=(dilation, 1)))
                case = (n, kernel, stride, padding, dilation)
                assert out.shape[1] == step.out, case
                assert tuple(np.flatnonzero(out.sum(axis=(1, 2, 3)) == 0)) == step.dropped, case
                if dilation == 1:   # a dilated kernel may step over the last pixels it spans
                    assert step.covered == max(set(range(n)) - set(step.dropped)) + 1, case


def test_a_window_larger_than_a_valid_input_is_refused_like_keras():
    with pytest.raises(ValueError, match="zero or negative"):
        layers.Conv2D(1, 5).compute_output_shape((1, 3, 3, 1))
    with pytest.raises(LabError, match="at least 5") as refused:
        output_size(3, 5, 1)
    assert refused.value.key == "too_small_for"
    with pytest.raises(LabError, match="at least 5"):
        output_size(4, 3, 1, dilation=2)
    assert output_size(5, 3, 1, dilation=2).out == 1


@pytest.mark.parametrize("args, key", [((0, 3, 1), "whole_at_least"), ((5, 2.5, 1), "whole_at_least"),
                                       ((5, 3, True), "whole_at_least"), ((5, 3, 1, "full"), "choice"),
                                       ((5, 3, 1, "valid", 0), "whole_at_least")])
def test_output_size_takes_whole_numbers(args, key):
    with pytest.raises(LabError) as refused:
        output_size(*args)
    assert refused.value.key == key


# --- whole networks ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list_architectures())
def test_every_layer_of_every_network_gets_its_shape_by_rule(name):
    check_rules(explain_sizes(name, **OFFLINE.get(name, {})))


@pytest.mark.parametrize("name, overrides", VARIANTS, ids=lambda v: str(v))
def test_every_knob_and_size_of_the_lab_networks_gets_its_shape_by_rule(name, overrides):
    overrides = {**OFFLINE.get(name, {}), **overrides}
    rows = explain_sizes(name, **overrides)
    check_rules(rows)
    if not get_architecture(name).graph:   # Keras numbers the unnamed layers of the others anew per build
        assert [(r.name, r.type, r.output_shape) for r in rows] == [
            (r.name, r.type, r.output_shape) for r in layer_table(name, **overrides).rows]


def test_lenet_explained():
    rows = by_name(explain_sizes("lenet5"))
    assert rows["prep_pad"].kind == "pad" and rows["prep_pad"].border == ((2, 2), (2, 2))
    assert rows["prep_pad"].preprocessing and not rows["c1_conv"].preprocessing
    assert rows["prep_rescale"].kind == "same"
    c1 = rows["c1_conv"]
    assert (c1.input_shape, c1.height.numerator, c1.height.out, c1.channels) == ((32, 32, 1), 27, 28, 6)
    assert rows["s2_pool"].channels == 6 and rows["s2_pool"].height.stride == 2
    assert is_dense_in_effect(rows["c5_conv"]) and rows["c5_conv"].output_shape == (1, 1, 120)
    assert not is_dense_in_effect(rows["c3_conv"]) and not is_dense_in_effect(rows["f6_dense"])
    assert flatten_keeps_values(rows["flatten"]) and rows["flatten"].computed == (120,)
    assert rows["f6_dense"].kind == "dense" and rows["f6_dense"].channels == 84


def test_alexnet_at_its_smallest_input_pools_to_one_pixel():
    rows = by_name(explain_sizes("alexnet", input_size=163))
    assert rows["pool5"].output_shape[:2] == (1, 1) and flatten_keeps_values(rows["flatten"])
    assert not is_dense_in_effect(rows["pool5"])   # a pooling over the whole map is a global pooling, not a dense layer
    assert not flatten_keeps_values(by_name(explain_sizes("alexnet"))["flatten"])   # 2x2x256 at 224


def test_branches_merge_by_their_rules():
    rows = by_name(explain_sizes("keras-densenet121"))
    concat = rows["conv2_block1_concat"]
    assert concat.kind == "concat" and concat.parts == (64, 32) and concat.channels == 96
    assert concat.inputs == ("pool1", "conv2_block1_2_conv")
    resnet = by_name(explain_sizes("keras-resnet50"))
    assert resnet["conv2_block1_add"].kind == "same" and len(resnet["conv2_block1_add"].inputs) == 2
    assert resnet["avg_pool"].kind == "global" and resnet["avg_pool"].computed == (2048,)
    nasnet = by_name(explain_sizes("keras-nasnetmobile"))
    assert {row.kind for row in nasnet.values() if row.type == "Cropping2D"} == {"crop"}
    depthwise = next(row for row in explain_sizes("keras-mobilenetv2") if row.type == "DepthwiseConv2D")
    assert depthwise.channels == depthwise.input_shape[-1]


def test_a_built_model_is_explained_without_settings():
    model = build_model("lenet5")
    assert [r.computed for r in explain_sizes(model)] == [r.computed for r in explain_sizes("lenet5")]
    with pytest.raises(LabError) as refused:
        explain_sizes(model, width=0.5)
    assert refused.value.key == "layer_table.overrides"


# --- receptive regions ------------------------------------------------------------------------------------------------

def test_regions_agree_with_the_layer_table_in_every_chain():
    """In a chain the layer table's recurrence is exact: the region spans its receptive field and
    moves by its effective stride."""
    cases = [(name, OFFLINE.get(name, {})) for name in list_architectures()] + [
        ("vgg19", dict(input_size=48, norm="batch")), ("lenet5", dict(input_size=40, pooling="max")),
        ("alexnet", dict(input_size=227))]
    checked = []
    for name, overrides in cases:
        if any(len(row.inputs) > 1 for row in explain_sizes(name, **overrides)):
            continue
        table = layer_table(name, **overrides)
        network = next(i for i, row in enumerate(table.rows) if row.kind == "layer")
        for row, sizes in zip(table.rows[network:], explain_sizes(name, **overrides)[network:]):
            if sizes.kind not in ("window", "same", "pad"):   # the maps end: global pooling, Flatten
                break
            last = row.output_shape[0] - 1
            for cell in [(0, 0), (last, last), (last // 2, last)]:
                region = receptive_region(name, row.name, *cell, **overrides)
                assert region.receptive_field == (row.receptive_field,) * 2, (name, row.name)
                assert region.jump == (row.effective_stride,) * 2, (name, row.name)
                assert region.input_side == table.rows[network - 1].output_shape[:2]
        checked.append(name)
    assert {"lenet5", "alexnet", "vgg19", "keras-vgg19-notop", "transfer", "keras-vgg16"} <= set(checked)
    assert "keras-resnet50" not in checked


def test_regions_grow_with_depth():
    for name, overrides in [("lenet5", {}), ("vgg19", dict(input_size=64, width=0.25))]:
        windows = [row.name for row in explain_sizes(name, **overrides) if row.kind == "window"]
        fields = [receptive_region(name, layer, 0, 0, **overrides).receptive_field[0] for layer in windows]
        assert fields == sorted(set(fields)), name
    assert [receptive_region("lenet5", layer, 0, 0).receptive_field[0]
            for layer in ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_conv")] == [5, 6, 14, 16, 32]


def test_lenet_regions_on_its_padded_digit():
    c3 = receptive_region("lenet5", "c3_conv", 2, 7)
    assert c3.input_side == (32, 32) and (c3.jump, c3.receptive_field) == ((2, 2), (14, 14))
    assert c3.unclipped == c3.clipped == (4, 14, 17, 27)          # 'valid' all the way: inside the image
    assert receptive_region("lenet5", "c5_conv", 0, 0).clipped == (0, 0, 31, 31)
    vgg = receptive_region("vgg19", "block1_conv1", 0, 0)
    assert vgg.unclipped == (-1, -1, 1, 1) and vgg.clipped == (0, 0, 1, 1)   # 'same' pads a zero border


def test_every_value_after_squeeze_and_excitation_sees_the_whole_image():
    region = receptive_region("keras-efficientnetb0", "block1a_se_excite", 0, 0)
    assert region.clipped == (0, 0, 223, 223)
    assert receptive_region("keras-efficientnetb0", "stem_conv", 0, 0).clipped == (0, 0, 2, 2)


@pytest.mark.parametrize("layer, cell, key", [("flatten", (0, 0), "explain.no_feature_map"),
                                              ("prep_pad", (0, 0), "explain.no_feature_map"),
                                              ("c9_conv", (0, 0), "explain.no_layer"),
                                              ("c3_conv", (10, 0), "whole"), ("c3_conv", (0, -1), "whole")])
def test_a_region_needs_a_value_of_a_map(layer, cell, key):
    with pytest.raises(LabError) as refused:
        receptive_region("lenet5", layer, *cell)
    assert refused.value.key == key
    if key == "explain.no_feature_map":
        assert refused.value.values["maps"] == "c1_conv, s2_pool, c3_conv, s4_pool, c5_conv"


def rectangle(corners, side) -> np.ndarray:
    mask = np.zeros(side, bool)
    if corners is not None:
        top, left, bottom, right = corners
        mask[top:bottom + 1, left:right + 1] = True
    return mask


def changed_by_each_pixel(apply, side) -> dict[str, np.ndarray]:
    """Layer name -> (out height, out width, input height, input width): whether raising that input
    pixel from 0 to 1 changes that output value (in any channel). Every network here gives 0 for 0."""
    pixels = side[0] * side[1]
    outputs = apply(np.eye(pixels, dtype="float32").reshape(pixels, *side, 1))
    return {name: np.moveaxis(np.any(out != 0, axis=-1), 0, -1).reshape(*out.shape[1:3], *side)
            for name, out in outputs.items()}


def bounding_box(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (rows[0], cols[0], rows[-1], cols[-1]) if rows.size else None


def check_tight(model_or_name, changed, side, *, chain=True, **overrides):
    """Each value's clipped region holds exactly the pixels that change it (where branches merge: it is
    their bounding box), and lies inside the unclipped window."""
    for name, seen in changed.items():
        for row in range(seen.shape[0]):
            for col in range(seen.shape[1]):
                region = receptive_region(model_or_name, name, row, col, **overrides)
                if chain:
                    assert (seen[row, col] == rectangle(region.clipped, side)).all(), (name, row, col)
                else:
                    assert bounding_box(seen[row, col]) == region.clipped, (name, row, col)
                if region.clipped is None:   # a value of a zero border reads nothing
                    continue
                top, left, bottom, right = region.clipped
                assert region.top <= top <= bottom <= region.bottom and region.left <= left <= right <= region.right


def positive(model):
    """Every kernel an average of its window and no biases: a change of any pixel read reaches the output."""
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.full(w.shape, 1 / np.prod(w.shape[:-1]), "float32") if w.ndim > 1
                               else np.zeros(w.shape, "float32") for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("pooling", next(k for k in get_architecture("lenet5").knobs if k.name == "pooling").choices)
def test_lenet_regions_are_exactly_the_pixels_that_change_each_value(pooling):
    # tanh(0) = 0 and tanh rises everywhere (no dead zones), so raising one pixel of a black image changes
    # every value that reads it, through averages and maxima alike.
    overrides = dict(width=0.25, activation="tanh", pooling=pooling)
    model = positive(build_model("lenet5", **overrides))
    rows = explain_sizes("lenet5", **overrides)
    network = [layer for layer, row in zip(model.layers, rows) if row.kind != "input" and not row.preprocessing]
    maps = [layer.name for layer, row in zip(model.layers, rows) if layer in network and len(row.output_shape) == 3]

    def apply(x):
        outputs = {}
        for layer in network[:len(maps)]:
            x = layer(x)
            outputs[layer.name] = keras.ops.convert_to_numpy(x)
        return outputs

    changed = changed_by_each_pixel(apply, (32, 32))
    assert list(changed) == ["c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_conv"]
    check_tight("lenet5", changed, (32, 32), **overrides)
    # The check can fail: one row or column less on any side leaves a pixel that changes the value outside.
    region, seen = receptive_region("lenet5", "c3_conv", 3, 4, **overrides), changed["c3_conv"][3, 4]
    top, left, bottom, right = region.clipped
    for shrunk in [(top + 1, left, bottom, right), (top, left + 1, bottom, right), (top, left, bottom - 1, right),
                   (top, left, bottom, right - 1)]:
        assert (seen & ~rectangle(shrunk, (32, 32))).any()


def small_chain() -> keras.Model:
    """'valid' and 'same' padding, stride 2, a dropped last pixel, a zero border and a pooling window."""
    x = inputs = keras.Input((16, 16, 1), name="image")
    x = layers.Conv2D(2, 3, strides=2, name="conv_valid")(x)               # (7, 7): pixel 15 is never read
    x = layers.Conv2D(2, 3, padding="same", name="conv_same")(x)           # (7, 7)
    x = layers.AveragePooling2D(2, padding="same", name="pool")(x)         # (4, 4): one zero after the end
    x = layers.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(x)              # (5, 5)
    x = layers.Conv2D(1, 3, strides=2, padding="same", name="conv_s2")(x)  # (3, 3)
    return positive(keras.Model(inputs, x, name="small_chain"))


def small_branches() -> keras.Model:
    """Two paths that add up, a concatenation with a pooled copy, and a crop."""
    x = inputs = keras.Input((12, 12, 1), name="image")
    x = layers.Conv2D(2, 3, padding="same", name="stem")(x)                          # (12, 12)
    a = layers.Conv2D(2, 3, strides=2, padding="same", name="a_conv")(x)             # (6, 6)
    b = layers.ZeroPadding2D(1, name="b_pad")(x)                                     # (14, 14)
    b = layers.Conv2D(2, 5, strides=2, name="b_conv")(b)                             # (5, 5)
    b = layers.ZeroPadding2D(((0, 1), (1, 0)), name="b_fill")(b)                     # (6, 6)
    x = layers.Add(name="add")([a, b])
    pooled = layers.AveragePooling2D(3, strides=1, padding="same", name="pool")(a)
    x = layers.Concatenate(name="concat")([x, pooled])
    x = layers.Cropping2D(((1, 0), (0, 2)), name="crop")(x)                          # (5, 4)
    return positive(keras.Model(inputs, x, name="small_branches"))


def outputs_of(model):
    """A function from images to every map of `model`, by layer name."""
    maps = [layer for layer in model.layers[1:] if len(layer.output.shape) == 4]
    probe = keras.Model(model.input, [layer.output for layer in maps])
    return lambda x: {layer.name: keras.ops.convert_to_numpy(out) for layer, out in zip(maps, probe(x))}


def test_regions_of_a_small_chain_are_exactly_the_pixels_that_change_each_value():
    model = small_chain()
    rows = by_name(explain_sizes(model))
    assert rows["conv_valid"].height.dropped == (15,) and rows["pool"].height.pad_after == 1
    changed = changed_by_each_pixel(outputs_of(model), (16, 16))
    check_tight(model, changed, (16, 16))
    corner = receptive_region(model, "conv_s2", 2, 2)
    assert corner.bottom >= 15 and corner.clipped[2] == 14      # the window reaches pixel 15, which no layer reads
    table = by_name(layer_table(model).rows)
    for name in changed:
        region = receptive_region(model, name, 1, 1)
        assert region.receptive_field == (table[name].receptive_field,) * 2
        assert region.jump == (table[name].effective_stride,) * 2


def test_regions_of_small_branches_bound_the_pixels_that_change_each_value():
    model = small_branches()
    assert {"pad", "window", "same", "concat", "crop"} == {row.kind for row in explain_sizes(model)[1:]}
    changed = changed_by_each_pixel(outputs_of(model), (12, 12))
    check_tight(model, changed, (12, 12), chain=False)
    add = receptive_region(model, "add", 0, 1)   # a_conv's 4x5 window, and the 5x5 one of b_conv beside it
    assert add.clipped == (0, 0, 4, 5) and not changed["add"][0, 1][4, 5]
