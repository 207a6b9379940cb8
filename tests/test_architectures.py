"""The registry builds the lecture's networks exactly, and every knob does what it says."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnlab import ModelConfig, build_model, get_architecture
from tests.conftest import LAB, OFFLINE

# The lecture's numbers.
LECTURE_PARAMS = {"lenet5": 61_706, "alexnet": 24_767_882, "vgg19": 139_611_210, "keras-vgg19-notop": 20_024_384,
                  # the lecture's frozen VGG19 base plus the new head: 1,025 + 131,328 + 2,570
                  "transfer": 20_024_384 + 134_923}
# Every architecture's smallest input and the layer where the map vanishes one pixel below it.
VANISHES_AT = {"lenet5": "c5_conv", "alexnet": "pool5", "vgg19": "block5_pool", "keras-vgg19-notop": "block5_pool",
               "transfer": "VGG19"}


def body(model):
    return [layer for layer in model.layers if not layer.name.startswith(("image", "prep_"))]


def test_every_registered_architecture_has_the_lectures_count():
    assert set(LECTURE_PARAMS) == set(LAB), "a new architecture needs its expected count here"


@pytest.mark.parametrize("name", LAB)
def test_builds_with_lecture_defaults(name):
    arch = get_architecture(name)
    model = build_model(name, **OFFLINE.get(name, {}))
    assert model.count_params() == LECTURE_PARAMS[name]
    assert model.input_shape[1:] == {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}[arch.dataset]
    first = body(model)[0]
    assert first.input.shape[1:3] == (arch.input_size, arch.input_size)


def test_lenet_shapes_follow_the_lecture():
    shapes = [layer.output.shape[1:] for layer in body(build_model("lenet5"))]
    assert shapes == [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (1, 1, 120), (120,), (84,), (10,)]


def test_alexnet_spatial_sizes_follow_the_lecture():
    model = build_model("alexnet")
    sizes = [layer.output.shape[1] for layer in body(model) if len(layer.output.shape) == 4]
    assert sizes == [54, 50, 24, 22, 10, 8, 6, 2]
    assert model.get_layer("flatten").output.shape[1:] == (1024,)


def test_vgg19_matches_keras_applications_convolution_stack():
    ours = build_model("vgg19")
    reference = keras.applications.VGG19(weights=None, include_top=False, input_shape=(224, 224, 3))
    ref_convs = [(layer.name, tuple(layer.kernel.shape), layer.output.shape[1:]) for layer in reference.layers
                 if isinstance(layer, keras.layers.Conv2D)]
    our_convs = [(layer.name, tuple(layer.kernel.shape), layer.output.shape[1:]) for layer in ours.layers
                 if isinstance(layer, keras.layers.Conv2D)]
    assert our_convs == ref_convs
    assert ours.get_layer("flatten").output.shape[1:] == (25088,)
    assert ours.get_layer("block1_conv1").kernel_regularizer.l2 == pytest.approx(5e-4)


def test_keras_vgg19_is_the_feature_extractor_without_top():
    model = build_model("keras-vgg19-notop")
    assert model.output_shape == (None, 7, 7, 512)
    assert model.count_params() == keras.applications.VGG19(weights=None, include_top=False).count_params()


@pytest.mark.parametrize("name", LAB)
def test_smallest_input_builds_and_one_pixel_less_names_the_layer(name):
    arch = get_architecture(name)
    build_model(name, input_size=arch.min_input_size, **OFFLINE.get(name, {}))
    with pytest.raises(ValueError) as error:
        build_model(name, input_size=arch.min_input_size - 1, **OFFLINE.get(name, {}))
    message = str(error.value)
    assert VANISHES_AT[name] in message and f"at least {arch.min_input_size}" in message


@pytest.mark.parametrize("name", LAB)
def test_tables_scale_with_input_size_above_native(name):
    model = build_model(name, input_size=get_architecture(name).input_size + 16, **OFFLINE.get(name, {}))
    assert model.count_params() > 0


def test_width_multiplier_scales_filters_and_units():
    model = build_model("lenet5", width=0.5)
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [3, 8, 60]
    assert model.get_layer("f6_dense").units == 42
    assert model.get_layer("predictions").units == 10
    assert build_model("vgg19", width=0.25, input_size=32).get_layer("block5_conv4").filters == 128


def test_lenet_activation_and_pooling_knobs():
    model = build_model("lenet5", activation="sigmoid", pooling="max")
    assert model.get_layer("c1_conv").activation.__name__ == "sigmoid"
    assert isinstance(model.get_layer("s2_pool"), keras.layers.MaxPooling2D)


def test_vgg19_regularisation_can_be_switched_off():
    model = build_model("vgg19", input_size=32, width=0.125, weight_decay=0, dropout=0)
    assert model.get_layer("block1_conv1").kernel_regularizer is None
    assert model.get_layer("fc1_dropout").rate == 0


@pytest.mark.parametrize("kwargs, words", [
    (dict(activation="softmax"), ["activation", "softmax", "relu, tanh, sigmoid"]),
    (dict(colour="red"), ["colour", "activation, pooling"]),
    (dict(width=0), ["width", "0"]),
    (dict(width=float("nan")), ["width", "nan"]),
    (dict(width="wide"), ["width", "wide"]),
    (dict(input_size=10_000), ["input_size", "10000"]),
    (dict(input_size=31.5), ["input_size", "31.5"]),
])
def test_impossible_settings_explain_themselves(kwargs, words):
    with pytest.raises(ValueError) as error:
        build_model("lenet5", **kwargs)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_unknown_architecture_lists_the_registry():
    with pytest.raises(ValueError, match="lenet5, alexnet, vgg19, keras-vgg19-notop"):
        build_model("resnet")


def test_a_whole_number_setting_refuses_a_fraction_instead_of_truncating_it():
    from cnnlab.errors import LabError

    with pytest.raises(LabError, match="units must be a whole number from 8 to 4096. Received: units=8.9") as error:
        ModelConfig("transfer", knobs={"units": 8.9, "weights": "random"}).resolved()
    assert "정수" in error.value.in_language("ko")
    assert ModelConfig("transfer", knobs={"units": 64.0, "weights": "random"}).resolved().knobs["units"] == 64


def test_the_registry_refuses_a_second_architecture_of_the_same_name():
    import dataclasses

    from cnnlab.architectures import registry

    before = dict(registry.ARCHITECTURES)
    with pytest.raises(registry.NameClash, match="'vgg19' is registered already"):
        registry.register(dataclasses.replace(registry.get_architecture("alexnet"), name="vgg19"))
    assert registry.ARCHITECTURES == before and registry.get_architecture("vgg19").title == "VGG19"


def test_the_registry_answers_every_query():
    from cnnlab import list_architectures

    assert list_architectures(trainable=True) == ["lenet5", "alexnet", "vgg19", "transfer"]
    assert list_architectures(zoo=False, dataset="cifar10") == ["alexnet", "vgg19", "keras-vgg19-notop", "transfer"]
    zoo = list_architectures(zoo=True)
    assert len(zoo) == 19 and "keras-vgg19" in zoo and all(name.startswith("keras-") for name in zoo)
    assert list_architectures(dataset="mnist") == ["lenet5"]


def test_keras_vgg19_has_fixed_widths():
    with pytest.raises(ValueError, match="width"):
        build_model("keras-vgg19-notop", width=0.5)


def test_model_config_round_trips_through_a_dict():
    config = ModelConfig("vgg19", input_size=64, width=0.25, knobs={"dropout": 0.0}).resolved()
    again = ModelConfig.from_dict(config.to_dict())
    assert again == config
    with pytest.raises(ValueError, match="Unknown model setting"):
        ModelConfig.from_dict({"arch": "vgg19", "evil": 1})


# The model owns its preprocessing: the lecture's numpy/TensorFlow code gives the same arrays.

def preprocessed(model, images):
    last_prep = [layer for layer in model.layers if layer.name.startswith("prep_")][-1]
    return keras.Model(model.input, last_prep.output).predict(images, verbose=0)


def test_lenet_pads_and_rescales_like_the_lecture():
    from cnnlab import load_dataset

    x = load_dataset("mnist").x_test[:16]                           # (16, 28, 28, 1) uint8
    lecture = np.pad(x[..., 0], ((0, 0), (2, 2), (2, 2)), "constant")[..., None].astype("float32") / 255
    np.testing.assert_allclose(preprocessed(build_model("lenet5"), x), lecture, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the lecture's resize is tf.image.resize")
def test_alexnet_resizes_and_rescales_like_the_lecture():
    import tensorflow as tf

    from cnnlab import load_dataset

    x = load_dataset("cifar10").x_test[:4]
    lecture = tf.image.resize(x, (224, 224)).numpy() / 255
    np.testing.assert_allclose(preprocessed(build_model("alexnet"), x), lecture, atol=1e-5)


def test_keras_vgg19_uses_imagenet_caffe_preprocessing():
    from keras.applications.vgg19 import preprocess_input

    model = build_model("keras-vgg19-notop", input_size=32)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(preprocessed(model, x), preprocess_input(x.astype("float32")), atol=1e-4)


@pytest.mark.parametrize("name", LAB)
def test_saved_model_takes_raw_images(name, tmp_path):
    arch = get_architecture(name)
    small = arch.min_input_size if name != "lenet5" else 32
    model = build_model(name, input_size=small, **({"width": 0.125} if name in ("alexnet", "vgg19") else {}),
                        **OFFLINE.get(name, {}))
    x = np.random.default_rng(0).integers(0, 256, (2,) + model.input_shape[1:]).astype("uint8")
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_vgg19_offers_he_initialisation_and_batch_norm_as_departures_from_the_lecture():
    lecture = build_model("vgg19", input_size=32, width=0.125)
    defaults = {knob.name: knob.default for knob in get_architecture("vgg19").knobs}
    assert defaults["init"] == "glorot" and defaults["norm"] == "none"  # the lecture's, unless a learner asks
    assert lecture.get_layer("block1_conv1").kernel_initializer.__class__.__name__ == "GlorotUniform"
    he = build_model("vgg19", input_size=32, width=0.125, init="he")
    assert he.get_layer("block1_conv1").kernel_initializer.__class__.__name__ == "HeNormal"
    assert he.count_params() == lecture.count_params()
    normed = build_model("vgg19", input_size=32, width=0.125, norm="batch")
    assert len([layer for layer in normed.layers if isinstance(layer, keras.layers.BatchNormalization)]) == 16
    assert normed.get_layer("block1_conv1").use_bias is False and normed.get_layer("block1_relu1")
    with pytest.raises(ValueError, match="init must be one of glorot, he"):
        build_model("vgg19", init="lecun")
