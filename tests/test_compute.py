"""How it computes: every layer's operation, redone by hand on one image, gives the model's own numbers."""

from __future__ import annotations

import dataclasses
import functools
import gc
import weakref

import keras
import numpy as np
import pytest
from keras import layers

from cnnlab import build_model, predict_proba
from cnnlab.architectures import build_without_weights
from cnnlab.compute import (
    KINDS,
    activation_cell,
    batch_norm_cell,
    conv_cell,
    dense_cell,
    flat_index,
    flat_position,
    flatten_cell,
    pool_cell,
    softmax_step,
    steps,
    trace,
)
from cnnlab.errors import LabError

# Small enough to build and run in a second or two each, large enough that every map keeps its meaning:
# VGG19 at 64 pixels still flattens a 2x2 map, so Flatten's order shows.
NETWORKS = {
    "lenet5-relu-average": ("lenet5", dict(activation="relu", pooling="average")),
    "lenet5-sigmoid-max": ("lenet5", dict(activation="sigmoid", pooling="max")),
    "lenet5-tanh-max": ("lenet5", dict(activation="tanh", pooling="max")),
    "alexnet": ("alexnet", dict(input_size=163, width=0.125)),
    "vgg19": ("vgg19", dict(input_size=64, width=0.0625, init="he")),
    "vgg19-batch-norm": ("vgg19", dict(input_size=64, width=0.0625, norm="batch")),
}
CELLS_PER_LAYER = 3


def randomised(model: keras.Model, seed: int = 0) -> keras.Model:
    """Biases and normalisation statistics away from their first values (0, 0, 1, 1, 0), as training
    leaves them: a recomputation that forgot one of them would otherwise still agree."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.Dense)) and layer.use_bias:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
        if isinstance(layer, layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.3, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, shape).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, shape).astype("float32"))
    return model


def raw_image(model: keras.Model, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, model.input_shape[1:]).astype(np.uint8)


def layer_by_layer(model: keras.Model, image: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's output, computed here by calling the layers one after another on the image."""
    x, outputs = keras.ops.convert_to_tensor(image[None].astype("float32")), {}
    for layer in model.layers[1:]:
        x = layer(x, training=False)
        outputs[layer.name] = keras.ops.convert_to_numpy(x)[0]
    return outputs


def close(ours: float, models: float, scale: float = 0.0) -> bool:
    """Equal to float32 rounding, which grows with the size of the terms summed."""
    return abs(ours - models) <= 1e-5 + 1e-4 * max(abs(models), scale)


@functools.cache
def built(network: str):
    """(name, model, raw image, its trace, each layer's output computed layer by layer), once per module."""
    arch, settings = NETWORKS[network]
    model = randomised(build_model(arch, load_weights=False, **settings))
    image = raw_image(model)
    return network, model, image, trace(model, image), layer_by_layer(model, image)


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request):
    return built(request.param)


@pytest.fixture(scope="module")
def lenet():
    model = randomised(build_model("lenet5", load_weights=False))
    return model, raw_image(model)


def test_steps_name_each_layers_operation():
    kinds = {name: [step.kind for step in steps(build_without_weights(arch, **settings))]
             for name, (arch, settings) in NETWORKS.items()}
    assert kinds["lenet5-relu-average"] == ["preprocessing", "preprocessing", "conv", "pool_avg", "conv", "pool_avg",
                                            "conv", "flatten", "dense", "softmax"]
    assert kinds["lenet5-sigmoid-max"].count("pool_max") == 2 and "pool_avg" not in kinds["lenet5-sigmoid-max"]
    assert kinds["alexnet"][-6:] == ["flatten", "dense", "dropout", "dense", "dropout", "softmax"]
    assert kinds["vgg19"].count("conv") == 16 and "activation" not in kinds["vgg19"]  # the ReLU is inside each conv
    assert kinds["vgg19-batch-norm"][:5] == ["preprocessing", "preprocessing", "conv", "batch_norm", "activation"]
    assert kinds["vgg19-batch-norm"].count("batch_norm") == kinds["vgg19-batch-norm"].count("activation") == 16
    assert set().union(*kinds.values()) <= set(KINDS) and "other" not in set().union(*kinds.values())


def test_the_trace_holds_what_each_layer_received_and_gave(network):
    _, model, image, traced, reference = network
    assert [step.layer for step in traced.steps] == [layer.name for layer in model.layers[1:]]
    previous = image.astype(np.float32)
    for step in traced.steps:
        assert traced.input_of(step.layer).shape == step.input_shape
        assert traced.output_of(step.layer).shape == step.output_shape
        np.testing.assert_allclose(traced.input_of(step.layer), previous, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(traced.output_of(step.layer), reference[step.layer], rtol=1e-4, atol=1e-5)
        previous = reference[step.layer]
    np.testing.assert_allclose(traced.probabilities, predict_proba(model, image)[0], rtol=1e-4, atol=1e-6)


def test_every_layers_step_by_step_number_is_the_models_own(network):
    """For random cells of every layer, the arithmetic on the layer's input and weights gives the
    number the model put out there (read from a layer-by-layer pass of its own)."""
    name, _, _, traced, reference = network
    rng = np.random.default_rng(sum(map(ord, name)))
    checked = set()
    for step in traced.steps:
        theirs = reference[step.layer]
        for _ in range(CELLS_PER_LAYER):
            at = tuple(int(rng.integers(side)) for side in theirs.shape)
            if step.kind == "conv":
                row, col, filter = at
                cell = conv_cell(traced, step.layer, filter, row, col)
                assert close(cell.output, theirs[at], np.abs(cell.products).sum() + abs(cell.bias)), (step, at)
                assert cell.z == pytest.approx(cell.total + cell.bias) and cell.matches
                fused = activation_cell(traced, step.layer, at)
                assert fused.before == cell.z and close(fused.after, theirs[at], abs(cell.z))
            elif step.kind in ("pool_max", "pool_avg"):
                row, col, channel = at
                cell = pool_cell(traced, step.layer, channel, row, col)
                assert close(cell.output, theirs[at]) and cell.matches, (step, at)
                if step.kind == "pool_max":
                    assert cell.output == np.nanmax(cell.window) == cell.window[cell.kept]
                else:
                    assert cell.output == pytest.approx(cell.total / cell.count)
            elif step.kind == "activation":
                cell = activation_cell(traced, step.layer, at)
                assert cell.function == "relu" and cell.after == max(cell.before, 0.0)
                assert close(cell.after, theirs[at]) and cell.matches, (step, at)
            elif step.kind == "batch_norm":
                cell = batch_norm_cell(traced, step.layer, at)
                assert cell.mean != 0 and cell.variance != 1 and cell.gamma != 1 and cell.beta != 0  # all take part
                assert close(cell.output, theirs[at], abs(cell.normalised * cell.gamma)) and cell.matches, (step, at)
            elif step.kind in ("dense", "softmax"):
                (unit,) = at
                cell = dense_cell(traced, step.layer, unit)
                assert close(cell.output, theirs[at], np.abs(cell.products).sum() + abs(cell.bias)), (step, at)
                assert cell.matches
            elif step.kind == "flatten":
                (index,) = at
                cell = flatten_cell(traced, step.layer, index)
                assert cell.value == cell.map_value and cell.matches  # flatten only moves numbers
                before = reference[traced.steps[step.index - 1].layer][cell.position]  # the layer-by-layer pass
                assert close(cell.value, theirs[index]) and close(cell.value, before)  # agrees to rounding
            elif step.kind == "dropout":  # does nothing once trained
                assert np.array_equal(traced.input_of(step.layer), traced.output_of(step.layer))
                assert np.allclose(traced.output_of(step.layer), theirs, rtol=1e-4, atol=1e-5)
            checked.add(step.kind)
    expected = {"conv", "flatten", "dense", "softmax"}
    expected |= {"pool_max"} if "max" in name or "lenet" not in name else {"pool_avg"}
    expected |= {"batch_norm", "activation"} if "batch" in name else set()
    expected |= {"dropout"} if "lenet" not in name else set()
    assert expected <= checked


def test_alexnets_first_convolution_strides_4_without_padding():
    _, _, _, traced, reference = built("alexnet")
    cell = conv_cell(traced, "conv1", 5, 38, 20)  # the last row of a 163-pixel image's 39
    assert cell.strides == (4, 4) and cell.padding == "valid" and cell.pad_top == cell.pad_left == 0
    assert (cell.top, cell.left, cell.bottom, cell.right) == (152, 80, 162, 90) and not cell.is_padding.any()
    assert cell.patch.shape == cell.kernel.shape == (11, 11, 3)
    np.testing.assert_array_equal(cell.patch, traced.input_of("conv1")[152:163, 80:91])
    assert close(cell.output, reference["conv1"][38, 20, 5], np.abs(cell.products).sum())
    pool = pool_cell(traced, "pool2", 0, 3, 4)  # overlapping 3x3 windows, 2 apart
    assert pool.rows == (6, 7, 8) and pool.cols == (8, 9, 10) and pool.count == 9


@pytest.mark.parametrize("network", ["vgg19", "vgg19-batch-norm"])
def test_a_same_padded_corner_reads_padding_zeros_and_still_equals_the_model(network):
    _, _, _, traced, reference = built(network)
    x = traced.input_of("block1_conv1")
    for row, col in [(0, 0), (63, 63)]:
        cell = conv_cell(traced, "block1_conv1", 1, row, col)
        outside = cell.is_padding
        edge = 0 if row == 0 else 2
        assert outside[edge, :].all() and outside[:, edge].all() and outside.sum() == 5
        assert (cell.patch[outside] == 0).all() and (cell.products[outside] == 0).all()
        np.testing.assert_array_equal(cell.patch[~outside], x[max(row - 1, 0): row + 2, max(col - 1, 0): col + 2]
                                      .reshape(-1, x.shape[-1]))
        assert (cell.top, cell.left) == ((-1, -1) if row == 0 else (62, 62))
        assert close(cell.output, reference["block1_conv1"][row, col, 1], np.abs(cell.products).sum() + abs(cell.bias))


def test_same_padding_puts_the_smaller_half_first_as_tensorflow_does():
    """A 4x4 kernel with stride 2 on 9 pixels needs 3 of padding: 1 before the image, 2 after;
    average pooling there divides by the cells inside only, max pooling ignores the rest."""
    inputs = keras.Input((9, 9, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(4, 4, strides=2, padding="same", activation="tanh", name="conv")(x)       # (5, 5, 4)
    x = layers.Conv2D(3, 3, dilation_rate=2, padding="same", activation="sigmoid", name="dilated")(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same", name="average")(x)                # (3, 3, 3)
    x = layers.MaxPooling2D(2, strides=2, padding="same", name="max")(x)                        # (2, 2, 3)
    model = randomised(keras.Model(inputs, x))
    image = raw_image(model, 3)
    traced, reference = trace(model, image), layer_by_layer(model, image)
    last = conv_cell(traced, "conv", 2, 4, 4)
    assert (last.pad_top, last.rows, last.cols) == (1, (7, 8, 9, 10), (7, 8, 9, 10))
    assert last.is_padding.sum() == 16 - 4
    assert close(last.output, reference["conv"][4, 4, 2], np.abs(last.products).sum())
    first = conv_cell(traced, "conv", 0, 0, 0)
    assert first.rows == (-1, 0, 1, 2) and first.is_padding[0].all() and not first.is_padding[1:, 1:].any()
    assert close(first.output, reference["conv"][0, 0, 0], np.abs(first.products).sum())
    dilated = conv_cell(traced, "dilated", 1, 0, 3)
    assert dilated.rows == (-2, 0, 2) and dilated.cols == (1, 3, 5) and dilated.is_padding.sum() == 5
    assert close(dilated.output, reference["dilated"][0, 3, 1], np.abs(dilated.products).sum() + abs(dilated.bias))
    corner = pool_cell(traced, "average", 0, 2, 2)  # 3 windows over 5 cells need 2 of padding: 1 before, 1 after
    assert corner.rows == (3, 4, 5) and corner.count == 4 and np.isnan(corner.window[corner.is_padding]).all()
    assert close(corner.output, reference["average"][2, 2, 0]) and corner.output == pytest.approx(corner.total / 4)
    biggest = pool_cell(traced, "max", 2, 1, 1)  # 2 windows over 3 cells need 1 of padding: 0 before, 1 after
    assert biggest.count == 1 and biggest.kept == (0, 0) and biggest.output == reference["max"][1, 1, 2]


def test_the_check_notices_a_number_computed_from_the_wrong_place(lenet):
    model, image = lenet
    traced = trace(model, image)
    y = traced.output_of("c1_conv")
    row, col, filter = np.unravel_index(np.argmax(y), y.shape)  # a unit that is on, so its z is its output
    cell = conv_cell(traced, "c1_conv", filter, row, col)
    shifted = conv_cell(traced, "c1_conv", filter, row, col + 1 if col < y.shape[1] - 1 else col - 1)
    wrong = float((shifted.patch * cell.kernel).sum() + cell.bias)
    assert cell.matches and not close(wrong, cell.model_value, np.abs(cell.products).sum())
    assert not dataclasses.replace(cell, output=cell.output * 1.01 + 1e-3).matches


def test_the_softmax_step_gives_the_predict_pages_probabilities(network):
    _, model, image, traced, _ = network
    step = softmax_step(traced)
    predicted = predict_proba(model, image)[0]   # what the Predict page shows for this image
    np.testing.assert_allclose(step.probabilities, predicted, rtol=1e-4, atol=1e-6)
    assert step.probabilities.sum() == pytest.approx(1.0) and step.matches
    assert step.predicted == int(np.argmax(predicted))
    assert step.shift == step.logits.max() and step.shifted.max() == 0 and step.exponentials.max() == 1
    np.testing.assert_allclose(step.shifted, np.log(predicted) - np.log(predicted.max()), atol=1e-3)
    assert step.total == pytest.approx(step.exponentials.sum())


def test_subtracting_the_largest_logit_keeps_a_confident_softmax_finite(lenet):
    model, image = lenet
    predictions = model.get_layer("predictions")
    bias = predictions.bias.numpy()
    try:
        predictions.bias.assign(bias + np.array([800.0, 799.0] + [0.0] * 8, np.float32))  # exp(800) overflows
        step = softmax_step(trace(model, image))
        assert np.isfinite(step.exponentials).all() and step.shift > 700
        with np.errstate(over="ignore"):
            assert np.isinf(np.exp(step.logits)).any()  # exp of the logits themselves would be infinite
        assert step.probabilities[:2].sum() == pytest.approx(1.0) and step.probabilities[2:].max() < 1e-300
        assert step.probabilities[0] / step.probabilities[1] == pytest.approx(np.exp(step.logits[0] - step.logits[1]))
        np.testing.assert_allclose(step.probabilities, predict_proba(model, image)[0], rtol=1e-4, atol=1e-6)
    finally:
        predictions.bias.assign(bias)


def test_flatten_reads_the_map_row_by_row_and_channel_by_channel(network):
    name, _, _, traced, reference = network
    flatten = next(step for step in traced.steps if step.kind == "flatten")
    shape = traced.input_of(flatten.layer).shape
    for index in range(int(np.prod(shape))):
        assert flat_index(shape, flat_position(shape, index)) == index
    assert flat_position((2, 2, 32), 32) == (0, 1, 0) and flat_position((2, 2, 32), 64) == (1, 0, 0)
    assert flat_index((5, 5, 16), (1, 2, 3)) == (1 * 5 + 2) * 16 + 3
    if name.startswith("vgg19"):  # a 2x2 map: the last number is the bottom right pixel's last channel
        cell = flatten_cell(traced, flatten.layer, 127)
        assert shape == (2, 2, 32) and cell.position == (1, 1, 31) and cell.matches
        assert cell.value == traced.output_of(flatten.layer)[127] and close(cell.value, reference[flatten.layer][127])


def test_a_trace_can_keep_only_the_layer_shown(lenet):
    model, image = lenet
    traced = trace(model, image, keep=["c3_conv"])
    assert list(traced.outputs) == list(traced.inputs) == ["c3_conv"]
    assert len(traced.steps) == 10 and traced.probabilities.shape == (10,)
    assert conv_cell(traced, "c3_conv", 0, 1, 1).matches
    with pytest.raises(LabError) as refused:
        pool_cell(traced, "s2_pool", 0, 0, 0)
    assert refused.value.key == "choice" and refused.value.values["choices"] == "c3_conv"


def test_the_probe_is_built_once_and_forgotten_with_the_model():
    from cnnlab import compute

    model = build_model("lenet5", load_weights=False)
    image = raw_image(model)
    trace(model, image)
    probe = compute._probe(model)
    trace(model, image)
    assert compute._probe(model) is probe and model in compute._PROBES
    gone = weakref.ref(model)
    del model, probe
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("call, key, name", [
    (lambda t: conv_cell(t, "c1_conv", 6, 0, 0), "whole", "filter"),        # LeNet's C1 has filters 0 to 5
    (lambda t: conv_cell(t, "c1_conv", 0, 28, 0), "whole", "row"),
    (lambda t: conv_cell(t, "c1_conv", 0, 0, -1), "whole", "col"),
    (lambda t: conv_cell(t, "c1_conv", 1.5, 0, 0), "whole", "filter"),
    (lambda t: pool_cell(t, "s2_pool", 6, 0, 0), "whole", "channel"),
    (lambda t: dense_cell(t, "f6_dense", 84), "whole", "unit"),
    (lambda t: activation_cell(t, "c1_conv", (0, 0)), "whole", "index"),
    (lambda t: flatten_cell(t, "flatten", 120), "whole", "index"),
    (lambda t: pool_cell(t, "c1_conv", 0, 0, 0), "choice", "layer"),         # a convolution is not a pooling
    (lambda t: conv_cell(t, "s2_pool", 0, 0, 0), "choice", "layer"),
    (lambda t: batch_norm_cell(t, "c1_conv", 0), "choice", "layer"),
    (lambda t: softmax_step(t, "f6_dense"), "choice", "layer"),
    (lambda t: conv_cell(t, "no_such_layer", 0, 0, 0), "explain.no_layer", None),
])
def test_a_cell_that_is_not_there_is_refused_with_the_reason(lenet, call, key, name):
    model, image = lenet
    with pytest.raises(LabError) as refused:
        call(trace(model, image))
    assert refused.value.key == key
    if name is not None:
        assert refused.value.values["name"] == name


def test_an_image_of_the_wrong_shape_is_refused(lenet):
    model, _ = lenet
    with pytest.raises(LabError) as refused:
        trace(model, np.zeros((32, 32, 3), np.uint8))
    assert refused.value.key == "explain.one_image"
    with pytest.raises(LabError) as refused:
        trace(model, np.zeros((28, 28), np.uint8), keep=["c9"])
    assert refused.value.key == "explain.no_layer"


def test_a_deep_kernels_channels_are_drawn_by_what_they_add_to_the_sum():
    from cnnlab.compute import ConvCell

    products = np.zeros((3, 3, 5))
    products[..., 3], products[..., 1], products[0, 0, 4] = -2.0, 1.0, 0.5   # sizes 18, 9, 0.5
    cell = ConvCell.__new__(ConvCell)
    object.__setattr__(cell, "products", products)
    assert cell.channels_by_contribution(3) == [3, 1, 4]
