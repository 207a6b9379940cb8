"""Bad input everywhere: every public function and every command either does its job or says, in one
clear ValueError (exit code 2 on the command line), what was wrong and what is allowed.

Each property feeds random and hostile values (wrong shapes and types, NaN and infinity, empty
arrays, huge sizes, garbage bytes) and accepts exactly two outcomes: a sane result, or a ValueError
that cnnlab raised on purpose (`raise ...` in cnnlab's own code, not a NumPy, Pillow, Keras or
TensorFlow error passing through). Sizes that would need memory are refused before any is taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import linecache
import os
import tracemalloc
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import cnnlab
from cnnlab import (
    ARCHITECTURES,
    Dataset,
    ModelConfig,
    TrainConfig,
    build_model,
    detect_collapse,
    evaluate_model,
    get_architecture,
    layer_table,
    load_dataset,
    load_npz,
    predict_proba,
    random_test_image,
    read_image,
    top_k,
)
from cnnlab.architectures import MAX_INPUT_SIZE, WIDTH_RANGE, as_config, preprocessing
from cnnlab.cli import main
from cnnlab.errors import LabError
from cnnlab.images import normalise_digit

PACKAGE = Path(cnnlab.__file__).resolve().parent
REFUSED = object()
MB = 2**20
# CNNLAB_PROPERTY_SCALE=10 runs ten times as many examples of every property, for a deeper search than CI's.
SCALE = max(1, int(os.environ.get("CNNLAB_PROPERTY_SCALE", "1")))


def examples(count: int, deadline_ms: int = 60_000) -> settings:
    return settings(max_examples=count * SCALE, deadline=deadline_ms, suppress_health_check=[HealthCheck.too_slow])


CHEAP = examples(150, 10_000)     # pure validation: microseconds to milliseconds an example
MODEST = examples(40, 30_000)     # builds layer tables without weights


def costly(count: int) -> settings:
    """For properties that run a network or the command line: few examples, a minute each at most."""
    return examples(count)


# --- what counts as a clear refusal -------------------------------------------------------------------------

def assert_learner_error(error: BaseException) -> None:
    """A ValueError raised on purpose by cnnlab (its deepest frame is a `raise` in the package), with a message."""
    assert isinstance(error, ValueError), f"crashed with {type(error).__name__}: {error}"
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    line = linecache.getline(str(where), tb.tb_lineno).strip()
    assert where.is_relative_to(PACKAGE) and line.startswith("raise"), (
        f"{type(error).__name__} from {where.name}:{tb.tb_lineno} ({line!r}) passed through: {error}")
    message = str(error)
    assert len(message) >= 15 and "Traceback" not in message, message
    if isinstance(error, LabError):  # the app shows it in the learner's language
        assert error.in_language("ko") and error.in_language("en") == message


def outcome(call, *, missing_file_ok: bool = False):
    """call()'s result, or REFUSED when it raised a learner's error."""
    try:
        result = call()
    except FileNotFoundError:
        if not missing_file_ok:
            raise
        event("refused: no such file")
        return REFUSED
    except Exception as error:  # noqa: BLE001 - judged below
        assert_learner_error(error)
        event("refused")
        return REFUSED
    event("accepted")
    return result


def peak_bytes(call, **options) -> tuple[object, int]:
    """outcome(call) and the most memory Python and NumPy held meanwhile."""
    tracemalloc.start()
    try:
        result = outcome(call, **options)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- strategies ---------------------------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=6), st.binary(max_size=4),
    st.lists(st.integers(-3, 40), max_size=4), st.tuples(), st.complex_numbers(max_magnitude=10),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([np.int64(32), np.float32(0.5), np.nan, np.inf, -np.inf, 10**6, 10**9, 1e9, 2**63, object(),
                     np.array([1, 2]), np.zeros(0)]))


def mostly(*valid, junk=JUNK):
    """One of `valid` three times in four, else junk. (A plain one_of would flatten JUNK's many branches and
    draw junk nearly every time, so that the accepting half of a property would hardly run; and st.integers leans
    towards its lower bound, while st.sampled_from draws evenly.)"""
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: st.one_of(*valid) if ok else junk)


def rarely(*valid, junk=JUNK):
    """Valid nine times in ten: for properties with many arguments, where one bad one refuses the whole call."""
    return st.sampled_from([True] * 9 + [False]).flatmap(lambda ok: st.one_of(*valid) if ok else junk)


HUGE = st.sampled_from([10**6, 10**9, 10**12, 2**63, 1e9, 1e300, float("inf")])
SIDE = mostly(st.integers(-2, 600), junk=st.one_of(HUGE, JUNK))
LAB_ARCHS = tuple(cnnlab.list_architectures(zoo=False))
ARCH = mostly(st.sampled_from(LAB_ARCHS + ("keras-mobilenetv2", "keras-vgg19")))
KNOB_NAMES = st.sampled_from(["activation", "pooling", "dropout", "weight_decay", "base", "weights", "units", "nope"])
KNOB_VALUES = mostly(st.sampled_from(["relu", "tanh", "max", "average", "imagenet", "random", "vgg19",
                                      "mobilenetv2", 0.0, 0.5, 0.9, 1.0, 8, 4096, 5000, "0.5"]))
KNOBS = mostly(st.dictionaries(KNOB_NAMES, KNOB_VALUES, max_size=3))
RAW_SHAPE = mostly(st.none(), st.tuples(SIDE, SIDE, mostly(st.integers(-1, 4))),
                   st.lists(st.integers(-1, 40), max_size=5).map(tuple))
PIXEL_DTYPES = st.sampled_from([np.uint8, np.int8, np.int32, np.int64, np.uint64, np.float16, np.float32, np.float64,
                                np.bool_, np.complex64, "U2", "datetime64[s]"])


ARRAY_SHAPES = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)


def arrays(dtypes=PIXEL_DTYPES, shapes=ARRAY_SHAPES):
    return hnp.arrays(dtypes, shapes)


# --- architectures and models -------------------------------------------------------------------------------

def check_resolved(config: ModelConfig) -> None:
    arch = get_architecture(config.arch)
    assert type(config.input_size) is int and 1 <= config.input_size <= MAX_INPUT_SIZE
    assert type(config.width) is float and WIDTH_RANGE[0] <= config.width <= WIDTH_RANGE[1]
    assert set(config.knobs) == {knob.name for knob in arch.knobs}
    for knob in arch.knobs:
        value = config.knobs[knob.name]
        assert value in knob.choices if knob.choices else knob.range[0] <= value <= knob.range[1]
    assert isinstance(config.raw_shape, tuple) and len(config.raw_shape) == 3
    assert all(type(d) is int and 1 <= d <= cnnlab.architectures.MAX_RAW_SIZE for d in config.raw_shape)
    assert config.raw_shape[-1] in (1, 3)
    assert type(config.classes) is int and 2 <= config.classes <= cnnlab.data.MAX_CLASSES


@CHEAP
@given(arch=ARCH,
       input_size=rarely(st.sampled_from([None, 32, 224, 512]), st.integers(-2, 600), junk=st.one_of(HUGE, JUNK)),
       width=rarely(st.sampled_from([1.0, 1, 0.5, 4.0]), st.floats(0, 5), st.floats(), HUGE),
       knobs=rarely(st.just({}), st.dictionaries(KNOB_NAMES, KNOB_VALUES, max_size=2)),
       raw_shape=rarely(st.sampled_from([None, (28, 28, 1), (32, 32, 3), [4096, 1, 3]]),
                        st.tuples(SIDE, SIDE, mostly(st.integers(-1, 4)))),
       classes=rarely(st.sampled_from([None, 2, 10, 1000]), st.integers(-3, 2000), st.integers(-3, 10**7), HUGE))
@example(arch="lenet5", input_size=float("inf"), width=1.0, knobs={}, raw_shape=None, classes=None)
@example(arch="lenet5", input_size=32, width=1.0, knobs=None, raw_shape=None, classes=None)
@example(arch="lenet5", input_size=32, width=1.0, knobs={}, raw_shape=(10**9, 10**9, 1), classes=None)
@example(arch="lenet5", input_size=32, width=1.0, knobs={}, raw_shape=None, classes=10**12)
@example(arch="lenet5", input_size=32, width=1e9, knobs={}, raw_shape=None, classes=None)
@example(arch="lenet5", input_size=10**6, width=1.0, knobs={}, raw_shape=None, classes=None)
def test_model_settings_are_checked_before_anything_is_built(arch, input_size, width, knobs, raw_shape, classes):
    config = outcome(lambda: ModelConfig(arch, input_size, width, knobs, raw_shape, classes).resolved())
    if config is not REFUSED:
        check_resolved(config)


@CHEAP
@given(config=mostly(st.sampled_from(LAB_ARCHS), st.builds(ModelConfig, st.sampled_from(LAB_ARCHS))),
       overrides=st.dictionaries(st.sampled_from(["input_size", "width", "knobs", "raw_shape", "classes", "arch",
                                                  "activation", "dropout", "bogus"]),
                                 mostly(st.sampled_from([None, 32, 64, 0.5, 1.0, "tanh", (32, 32, 3), {}, 10]), SIDE),
                                 max_size=3))
@example(config=5, overrides={})
@example(config=None, overrides={})
def test_as_config_takes_a_name_or_a_config(config, overrides):
    result = outcome(lambda: as_config(config, **overrides))
    if result is not REFUSED:
        check_resolved(result)
    if isinstance(config, str) and config in ARCHITECTURES:  # the same overrides on a ModelConfig agree
        again = outcome(lambda: as_config(ModelConfig(config), **overrides))
        assert (again is REFUSED) == (result is REFUSED) and (again is REFUSED or again == result)


@CHEAP
@given(data=st.one_of(JUNK, st.dictionaries(st.sampled_from(["arch", "input_size", "width", "knobs", "raw_shape",
                                                             "classes", "other"]), JUNK, max_size=4),
                      st.fixed_dictionaries({"arch": st.sampled_from(LAB_ARCHS), "raw_shape": RAW_SHAPE}),
                      st.builds(lambda arch: ModelConfig(arch).to_dict(), st.sampled_from(LAB_ARCHS))))
@example(data=5)
@example(data={"arch": "lenet5", "raw_shape": 5})
def test_model_config_from_any_dict(data):
    config = outcome(lambda: ModelConfig.from_dict(data).resolved())
    if config is not REFUSED:
        check_resolved(config)
        assert ModelConfig.from_dict(config.to_dict()) == config


@CHEAP
@given(name=ARCH)
def test_architecture_names(name):
    arch = outcome(lambda: get_architecture(name))
    assert arch is REFUSED or arch is ARCHITECTURES[name]


@MODEST
@given(input_size=st.one_of(st.none(), st.integers(1, 80)), width=st.sampled_from([0.05, 0.3, 1.0, 2.5]),
       activation=st.sampled_from(["relu", "tanh", "sigmoid"]), pooling=st.sampled_from(["average", "max"]),
       raw_shape=st.one_of(st.none(), st.tuples(st.integers(1, 70), st.integers(1, 70), st.sampled_from([1, 3]))),
       classes=st.one_of(st.none(), st.integers(2, 1000)))
def test_lenet_tables_for_any_valid_settings_or_the_vanishing_layer(input_size, width, activation, pooling, raw_shape,
                                                                    classes):
    table = outcome(lambda: layer_table("lenet5", input_size=input_size, width=width, raw_shape=raw_shape,
                                        classes=classes, activation=activation, pooling=pooling))
    if table is REFUSED:
        assert input_size is not None and input_size < 32  # only a too-small input is refused
        return
    assert table.rows[-1].output_shape == ((classes or 10),) and table.total_params > 0
    assert all(d >= 1 for row in table.rows for d in row.output_shape)


@CHEAP
@given(raw_shape=mostly(st.tuples(st.integers(-2, 70), st.integers(-2, 70), st.integers(-1, 4))),
       input_size=SIDE, method=mostly(st.sampled_from(["pad", "resize"])))
def test_preprocessing_layers(raw_shape, input_size, method):
    result = outcome(lambda: preprocessing.fit_to_size(raw_shape, input_size, method))
    if result is not REFUSED:
        assert isinstance(result, list) and len(result) <= 1
        assert all(preprocessing.is_preprocessing(layer) for layer in result)


SCALING_MODES = ("rescale", "none", *preprocessing.IMAGENET_MODES)
_BUILT_SCALING: dict = {}  # (arch, knobs): the scaling the built model's own layers apply


def built_scaling(config: ModelConfig) -> str:
    """How the model built from `config` scales pixels, read from its preprocessing layers (no weights held)."""
    key = (config.arch, tuple(sorted(config.knobs.items())))
    if key not in _BUILT_SCALING:
        import keras

        from cnnlab.architectures import build_without_weights

        scalers = (preprocessing.ImageNetPreprocess, keras.layers.Rescaling)  # not the padding or resizing
        scaling = [layer.mode if isinstance(layer, preprocessing.ImageNetPreprocess) else "rescale"
                   for layer in build_without_weights(config).layers
                   if preprocessing.is_preprocessing(layer) and isinstance(layer, scalers)]
        assert len(scaling) <= 1, f"{config.arch} scales its pixels twice: {scaling}"
        _BUILT_SCALING[key] = scaling[0] if scaling else "none"
    return _BUILT_SCALING[key]


@CHEAP
@given(arch=ARCH, knobs=mostly(st.just({}), KNOBS,  # bases that scale every way: caffe, tf, torch, none
                               st.sampled_from(["vgg19", "mobilenetv2", "densenet121", "efficientnetb0", "nope"])
                               .map(lambda base: {"base": base})))
@example(arch="transfer", knobs={"base": "mobilenetv2"})  # its base's [-1, 1], not the network's own "none"
@example(arch="transfer", knobs={"base": "nope"})
@example(arch="nope", knobs={})
def test_pixel_scaling_modes(arch, knobs):
    """`Architecture.pixel_scaling`: for every model the lab accepts, one of the modes `normalise` makes layers
    of, and the one the built model applies (a transfer network's is its base's); settings that are not a model
    are refused, with a learner's error, before any scaling is asked for."""
    config = outcome(lambda: ModelConfig(arch, knobs=knobs).resolved())
    if config is REFUSED:
        return
    assert isinstance(arch, str) and arch in ARCHITECTURES  # an unknown name never resolves
    mode = get_architecture(config.arch).pixel_scaling(config.knobs)
    assert isinstance(mode, str) and mode in SCALING_MODES, mode
    assert mode == built_scaling(config), (config.arch, config.knobs, mode)
    layers = preprocessing.normalise(mode)
    assert [type(layer).__name__ for layer in layers] == {"none": [], "rescale": ["Rescaling"]}.get(
        mode, ["ImageNetPreprocess"])
    assert all(preprocessing.is_preprocessing(layer) and getattr(layer, "mode", mode) == mode for layer in layers)


# --- datasets and .npz files ----------------------------------------------------------------------------------

@CHEAP
@given(x=st.one_of(arrays(), arrays(st.sampled_from([np.uint8, np.float32, np.int64]),
                                    st.sampled_from([(2, 4, 4), (1, 3, 3, 1), (2, 2, 5, 3), (3, 1, 1)])),
                   JUNK, st.just([[1, 2], [3]])))
@example(x=[[1, 2], [3]])
def test_images_are_raw_pixels_or_refused(x):
    from cnnlab.data import as_images

    images = outcome(lambda: as_images(x))
    if images is not REFUSED:
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] in (1, 3) and len(images) > 0


@CHEAP
@given(y=mostly(hnp.arrays(np.int64, st.sampled_from([(3,), (3, 1), (2,), (0,)]), elements=st.integers(-1, 1200)),
                arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
                   hnp.arrays(np.int64, st.just((3,)), elements=st.sampled_from([0, 1, 9, 999, 1000, 10**6, 2**40])),
                   hnp.arrays(np.uint64, st.just((3,)), elements=st.sampled_from([0, 9, 2**63 + 5])),
                   hnp.arrays(np.float64, st.just((3,)), elements=st.sampled_from([0.0, 2.5, 9.0, 2.0**63, 1e300]))),
       n=st.sampled_from([0, 2, 3, 3, 3, 4]))
@example(y=np.array([2**62]), n=1)
@example(y=np.array([2**63 + 5], dtype=np.uint64), n=1)
def test_labels_are_class_indices_or_refused(y, n):
    from cnnlab.data import MAX_CLASSES, as_labels

    labels = outcome(lambda: as_labels(y, n))
    if labels is not REFUSED:
        assert labels.dtype == np.int64 and labels.shape == (n,)
        assert n == 0 or 0 <= labels.min() <= labels.max() < MAX_CLASSES


def tiny_dataset(n_train: int = 20, n_test: int = 6) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset("tiny", "file", rng.integers(0, 256, (n_train, 4, 4, 1), np.uint8), np.arange(n_train) % 3,
                   rng.integers(0, 256, (n_test, 4, 4, 1), np.uint8), np.arange(n_test) % 3, ("a", "b", "c"))


@CHEAP
@given(fraction=mostly(st.floats(0, 1), st.floats(), st.sampled_from(["0.5", "half", True, 10**9])),
       seed=mostly(st.integers(-5, 2**32), st.sampled_from([np.int64(3), 2**31 - 1, 2**31])))
@example(fraction=0.5, seed=-1)
@example(fraction=0.5, seed="a")
@example(fraction=0.5, seed=1.5)
def test_sampling_any_fraction_and_seed(fraction, seed):
    data = tiny_dataset()
    sample = outcome(lambda: data.sample(fraction, seed=seed))
    if sample is not REFUSED:
        assert 1 <= len(sample.x_train) <= 20 and 1 <= len(sample.x_test) <= 6
        assert len(sample.x_train) == len(sample.y_train)


@CHEAP
@given(split=mostly(st.sampled_from(["train", "test"])), class_index=mostly(st.integers(-3, 5)),
       count=mostly(st.integers(-5, 30), st.integers(-5, 10**12)))
@example(split="foo", class_index=0, count=1)
@example(split="train", class_index=0, count=-3)
def test_class_counts_and_examples(split, class_index, count):
    data = tiny_dataset()
    counts = outcome(lambda: data.class_counts(split))
    if counts is not REFUSED:
        assert counts.shape == (3,) and counts.sum() == (20 if split == "train" else 6)
    examples = outcome(lambda: data.examples(class_index, count))
    if examples is not REFUSED:
        assert examples.shape[1:] == (4, 4, 1) and len(examples) <= max(0, count)


@examples(30, 10_000)
@given(name=mostly(st.sampled_from(["mnist", "cifar10"])), source=mostly(st.just("bundled")))
def test_dataset_names_and_sources(name, source):
    assume(not (isinstance(source, str) and source == "full"))
    data = outcome(lambda: load_dataset(name, source))
    if data is not REFUSED:
        assert data.name == name and data.num_classes == 10


@CHEAP
@given(config=mostly(st.sampled_from(LAB_ARCHS), st.builds(ModelConfig, st.sampled_from(LAB_ARCHS)),
                     st.builds(ModelConfig, st.just("lenet5"), input_size=SIDE)),
       n_images=mostly(st.integers(0, 10**6), st.integers(-3, 10**30)), lang=mostly(st.sampled_from(["en", "ko"])))
@example(config="lenet5", n_images="a", lang="en")
@example(config=ModelConfig("lenet5"), n_images=5, lang=[])
def test_preprocessing_steps_for_any_model(config, n_images, lang):
    from cnnlab.architectures.steps import preprocessing_steps

    steps = outcome(lambda: preprocessing_steps(config, n_images, lang))
    if steps is not REFUSED:
        assert steps[0].shape[0] == n_images and all(step.nbytes_whole_array >= 0 for step in steps)


def write(tmp: Path, name: str, payload: bytes) -> Path:
    path = tmp / name
    path.write_bytes(payload)
    return path


def npz_bytes(arrays_by_key: dict, compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays_by_key)
    return buffer.getvalue()


def corrupted(payload: bytes, data) -> bytes:
    """payload with a few bytes flipped, cut short, or garbage appended."""
    how = data.draw(st.sampled_from(["flip", "cut", "append"]))
    if how == "cut":
        return payload[: data.draw(st.integers(0, max(0, len(payload) - 1)))]
    if how == "append":
        return payload + data.draw(st.binary(min_size=1, max_size=64))
    blob = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    return bytes(blob)


VALID_NPZ = npz_bytes({"x_train": np.zeros((4, 6, 6), np.uint8), "y_train": np.arange(4) % 2,
                       "x_test": np.zeros((2, 6, 6), np.uint8), "y_test": np.arange(2)})


@CHEAP
@given(data=st.data(), kind=st.sampled_from(["garbage", "corrupt", "corrupt-compressed", "npy", "empty"]))
def test_garbage_npz_files_are_refused(tmp_path_factory, data, kind):
    if kind == "garbage":
        payload = data.draw(st.binary(max_size=300))
    elif kind == "corrupt":
        payload = corrupted(VALID_NPZ, data)
    elif kind == "corrupt-compressed":
        payload = corrupted(npz_bytes({"x_train": np.arange(64, dtype=np.uint8).reshape(1, 8, 8),
                                       "y_train": np.zeros(1, np.int64), "x_test": np.zeros((1, 8, 8), np.uint8),
                                       "y_test": np.zeros(1, np.int64)}, compressed=True), data)
    elif kind == "npy":  # a single array, not an archive
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((2, 3, 3), np.uint8))
        payload = buffer.getvalue()
    else:
        payload = b""
    path = write(tmp_path_factory.mktemp("npz"), "data.npz", payload)
    result = outcome(lambda: load_npz(path))
    if result is not REFUSED:
        assert isinstance(result, Dataset) and len(result.x_train) and len(result.x_test)


NPZ_KEYS = st.sampled_from(["x_train", "y_train", "x_test", "y_test", "x", "y", "other"])
NPZ_ARRAYS = st.one_of(
    arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
    hnp.arrays(np.uint8, st.sampled_from([(3, 5, 5), (3, 5, 5, 1), (2, 5, 5, 3)])),
    hnp.arrays(np.int64, st.sampled_from([(3,), (2,), (3, 1)]), elements=st.integers(-2, 12)),
    hnp.arrays(np.float64, st.just((3,)), elements=st.floats()),
    hnp.arrays(np.int64, st.just((3,)), elements=st.sampled_from([10**9, 2**62])))


@st.composite
def keras_layouts(draw):
    """x_train, y_train, x_test, y_test as Keras saves them; half the time one of them is replaced by any array."""
    side, channels, classes = draw(st.integers(1, 6)), draw(st.sampled_from([(), (1,), (3,)])), draw(st.integers(1, 12))
    contents = {}
    for split in ("train", "test"):
        n = draw(st.integers(1, 4))
        contents[f"x_{split}"] = draw(hnp.arrays(st.sampled_from([np.uint8, np.float32, np.int16]),
                                                 (n, side, side, *channels), elements=st.integers(0, 255)))
        contents[f"y_{split}"] = draw(hnp.arrays(np.int64, st.sampled_from([(n,), (n, 1)]),
                                                 elements=st.integers(0, classes - 1)))
    if draw(st.booleans()):
        contents[draw(st.sampled_from(sorted(contents)))] = draw(NPZ_ARRAYS)
    return contents


@CHEAP
@given(contents=st.one_of(keras_layouts(), st.dictionaries(NPZ_KEYS, NPZ_ARRAYS, min_size=1, max_size=5)))
@example(contents={"x_train": np.zeros((1, 2, 2), np.uint8), "y_train": np.array([2**62]),
                   "x_test": np.zeros((1, 2, 2), np.uint8), "y_test": np.array([0])})
def test_npz_with_any_arrays(tmp_path_factory, contents):
    path = write(tmp_path_factory.mktemp("npz"), "data.npz", npz_bytes(contents))
    data = outcome(lambda: load_npz(path))
    if data is not REFUSED:
        assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
        assert data.num_classes > int(max(data.y_train.max(), data.y_test.max()))
        assert data.num_classes <= cnnlab.data.MAX_CLASSES


def npy_with_header(shape, dtype="|u1", payload: bytes = b"\0" * 64) -> bytes:
    """A .npy whose header claims `shape` but whose data is only `payload`."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return np.lib.format.magic(1, 0) + buffer.getvalue() + payload


@examples(25, 10_000)
@given(shape=st.tuples(st.sampled_from([10**4, 10**6, 10**9]), st.sampled_from([28, 1000, 10**5]),
                       st.sampled_from([28, 1000]), st.sampled_from([1, 3])),
       compressed=st.booleans(), which=st.sampled_from(["x_train", "x_test"]))
@example(shape=(10**6, 1000, 1000, 3), compressed=False, which="x_train")
def test_npz_claiming_huge_arrays_is_refused_before_allocating(tmp_path_factory, shape, compressed, which):
    path = tmp_path_factory.mktemp("npz") / "huge.npz"
    small = {"x_train": np.zeros((1, 28, 28, 1), np.uint8), "y_train": np.zeros(1, np.int64),
             "x_test": np.zeros((1, 28, 28, 1), np.uint8), "y_test": np.zeros(1, np.int64)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        for key, value in small.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(f"{key}.npy", npy_with_header(shape) if key == which else buffer.getvalue())
    result, peak = peak_bytes(lambda: load_npz(path))
    assert result is REFUSED and peak < 64 * MB


# --- learners' pictures ---------------------------------------------------------------------------------------

IMAGE_SHAPES = mostly(st.sampled_from([(28, 28, 1), (32, 32, 3), (5, 7, 1), (1, 1, 3), (64, 48, 1)]),
                      st.tuples(SIDE, SIDE, mostly(st.integers(-1, 5))),
                      st.lists(st.integers(1, 30), max_size=4).map(tuple))
SAVEABLE = [("PNG", "1"), ("PNG", "L"), ("PNG", "LA"), ("PNG", "P"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "I;16"),
            ("JPEG", "L"), ("JPEG", "RGB"), ("JPEG", "CMYK"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "F")]


@st.composite
def encoded_images(draw):
    fmt, mode = draw(st.sampled_from(SAVEABLE))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    seed = draw(st.integers(0, 2**16))
    noise = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), np.uint8)
    picture = Image.fromarray(noise, "RGBA")
    picture = picture.convert("F") if mode == "F" else picture.convert(mode)
    if mode == "P" and draw(st.booleans()):
        picture.info["transparency"] = 0
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def check_image(image, shape):
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == tuple(shape)


@CHEAP
@given(data=st.data(), shape=IMAGE_SHAPES, digit=st.one_of(st.none(), st.booleans()),
       kind=st.sampled_from(["image", "image", "image", "garbage", "corrupt", "empty", "junk"]))
@example(data=None, shape=(10**6, 10**6, 3), digit=None, kind="image")
@example(data=None, shape=(5, 5, 1), digit=True, kind="image")
@example(data=None, shape=(28,), digit=None, kind="image")
@example(data=None, shape=(28, 28, 1), digit=None, kind="junk")
def test_any_bytes_or_shape_as_a_picture(data, shape, digit, kind):
    if data is None:  # the explicit examples: a white square drawn with a black stroke
        picture = np.full((30, 30), 255, np.uint8)
        picture[5:25, 14:16] = 0
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG")
        source = buffer.getvalue() if kind == "image" else 5
    elif kind == "image":
        source = data.draw(encoded_images())
        source = data.draw(st.sampled_from([source, bytearray(source), memoryview(source)]))
    elif kind == "garbage":
        source = data.draw(st.binary(max_size=200))
    elif kind == "corrupt":
        source = corrupted(data.draw(encoded_images()), data)
    elif kind == "empty":
        source = b""
    else:
        source = data.draw(JUNK)
    image, peak = peak_bytes(lambda: read_image(source, shape, digit), missing_file_ok=kind == "junk")
    if image is not REFUSED:
        check_image(image, shape)
    assert peak < 64 * MB


@CHEAP
@given(grey=mostly(hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 30)),
                              elements=st.floats(-1e3, 1e3) | st.sampled_from([0.0, 255.0, np.nan, np.inf])),
                   hnp.arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30))),
                   junk=st.one_of(arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=8)),
                                  JUNK)),
       size=mostly(st.just((28, 28)), st.tuples(st.integers(-2, 60), st.integers(-2, 60)), junk=st.one_of(HUGE, JUNK)),
       box=mostly(st.just(20), st.integers(-3, 80)))
@example(grey=np.full((5, 5), np.nan), size=(28, 28), box=20)
@example(grey=np.eye(10) * 255, size=(5, 5), box=20)
@example(grey=np.eye(10) * 255, size=(10**6, 10**6), box=20)
def test_digit_normalisation_of_any_array(grey, size, box):
    digit, peak = peak_bytes(lambda: normalise_digit(grey, size, box))
    if digit is not REFUSED:
        check_image(digit, size)
    assert peak < 64 * MB


# --- predictions ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lenet():
    return build_model("lenet5")


@pytest.fixture(scope="module")
def lenet_file(lenet, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.keras"
    lenet.save(path)
    return path


IMAGE_BATCHES = st.sampled_from([(28, 28), (28, 28, 1), (2, 28, 28), (1, 28, 28, 1), (2, 28, 28, 3), (0, 28, 28, 1),
                                 (28, 28, 3), (1, 32, 32, 1)])
BATCH = mostly(st.just(128), st.integers(-3, 5), st.sampled_from([10**9, 10**12]))


@costly(30)
@given(images=mostly(
    hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32]), IMAGE_BATCHES,
               elements=st.sampled_from([0, 1, 127, 255])),
    hnp.arrays(st.sampled_from([np.float32, np.float64]), IMAGE_BATCHES,
               elements=st.sampled_from([0, 1, 127, 255, 256, -1, np.nan, np.inf])),
    hnp.arrays(np.int64, IMAGE_BATCHES, elements=st.sampled_from([256, -1, 2**40])),
    junk=st.one_of(arrays(), JUNK)), batch_size=BATCH)
@example(images=np.zeros((28, 28, 1), np.uint8), batch_size=-1)
@example(images=np.zeros((28, 28, 1), np.uint8), batch_size="a")
def test_probabilities_for_any_images(lenet, images, batch_size):
    probabilities = outcome(lambda: predict_proba(lenet, images, batch_size))
    if probabilities is not REFUSED:
        assert probabilities.ndim == 2 and probabilities.shape[1] == 10 and len(probabilities) >= 1
        assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)


@CHEAP
@given(probabilities=mostly(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5),
               elements=st.floats(0, 1)),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5),
               elements=st.floats(0, 1) | st.sampled_from([np.nan, np.inf, -1.0])), junk=st.one_of(arrays(), JUNK)),
       class_names=mostly(st.lists(st.text(max_size=3), min_size=5, max_size=6), st.lists(st.text(max_size=3)),
                          st.text(min_size=5, max_size=6)),
       k=mostly(st.integers(1, 6), st.integers(-2, 10**9), st.floats()))
@example(probabilities=np.ones((1, 3)) / 3, class_names="abc", k=float("inf"))
@example(probabilities=np.ones((1, 3)) / 3, class_names="abc", k=None)
@example(probabilities=np.ones((1, 3)) / 3, class_names=["a"], k=3)
@example(probabilities=np.array([["a", "b"]]), class_names=["a", "b"], k=1)
def test_top_k_of_anything(probabilities, class_names, k):
    rows = outcome(lambda: top_k(probabilities, class_names, k))
    if rows is not REFUSED:
        for row in rows:
            assert 1 <= len(row) <= len(class_names)
            assert [c["probability"] for c in row] == sorted((c["probability"] for c in row), reverse=True)
            assert all(c["name"] == class_names[c["class"]] and 0 <= c["probability"] <= 1 for c in row)


@CHEAP
@given(predicted=mostly(hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(0, 3)),
                        hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(-1, 4)),
                        junk=st.one_of(arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6)),
                                       JUNK)),
       class_names=mostly(st.lists(st.text(max_size=2), min_size=4, max_size=5), st.lists(st.text(max_size=2))),
       threshold=mostly(st.floats(0, 1), st.floats()))
@example(predicted=np.array([0.5, 1.2]), class_names=["a", "b"], threshold=0.5)
@example(predicted=np.array([5]), class_names=["a", "b"], threshold=0.5)
def test_collapse_detection_of_anything(predicted, class_names, threshold):
    collapse = outcome(lambda: detect_collapse(predicted, class_names, threshold))
    if collapse is not REFUSED and collapse is not None:
        assert collapse.class_name == class_names[collapse.class_index] and threshold <= collapse.share <= 1


@costly(25)
@given(x=mostly(hnp.arrays(np.uint8, st.sampled_from([(3, 28, 28), (3, 28, 28, 1), (3, 32, 32, 3)])),
                junk=st.one_of(arrays(), JUNK)),
       y=mostly(hnp.arrays(np.int64, st.sampled_from([(3,), (3, 1)]), elements=st.integers(0, 9)),
                hnp.arrays(np.int64, st.sampled_from([(3,), (2,)]), elements=st.integers(-1, 12)),
                junk=st.one_of(arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)), JUNK)),
       class_names=mostly(st.just(tuple("0123456789")), st.just(np.array(list("0123456789"))),
                          st.lists(st.text(max_size=2), max_size=12)))
@example(x=np.zeros((3, 28, 28), np.uint8), y=np.array([0, 1, 11]), class_names=tuple("0123456789"))
@example(x=np.zeros((3, 28, 28), np.uint8), y=np.array([0, 1, 2]), class_names=("a", "b"))
def test_evaluation_of_any_test_set(lenet, x, y, class_names):
    evaluation = outcome(lambda: evaluate_model(lenet, x, y, class_names))
    if evaluation is not REFUSED:
        n = len(evaluation.class_names)
        assert 0 <= evaluation.accuracy <= 1 and evaluation.confusion.shape == (n, n)
        assert evaluation.confusion.sum() == len(evaluation.labels)
        evaluation.worst_confusion()
        recall = evaluation.per_class_accuracy  # NaN for a class with no test images
        assert recall.shape == (n,) and all(np.isnan(r) or 0 <= r <= 1 for r in recall)


@CHEAP
@given(rng=mostly(st.none(), st.integers(-3, 2**70), st.builds(np.random.default_rng, st.integers(0, 9))),
       n_test=st.integers(0, 3))
@example(rng="a", n_test=3)
@example(rng=0, n_test=0)
def test_random_test_image_with_any_seed(rng, n_test):
    data = dataclasses.replace(tiny_dataset(), x_test=np.zeros((n_test, 4, 4, 1), np.uint8),
                               y_test=np.zeros(n_test, np.int64))
    picked = outcome(lambda: random_test_image(data, rng))
    if picked is not REFUSED:
        index, image, label = picked
        assert 0 <= index < n_test and image.shape == (4, 4, 1) and label == 0


@CHEAP
@given(payload=st.one_of(st.binary(max_size=300), st.builds(npz_bytes, st.just({"a": np.zeros(3)}))),
       as_zip=st.booleans(), config=st.one_of(st.text(max_size=40), st.just('{"class_name": "Sequential"}'),
                                               st.just('{"class_name": "Functional", "config": {}}')))
def test_unreadable_model_files(tmp_path_factory, payload, as_zip, config):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    if as_zip:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", config)
            archive.writestr("metadata.json", payload.decode("latin-1"))
            archive.writestr("model.weights.h5", payload)
    else:
        path.write_bytes(payload)
    assert outcome(lambda: cnnlab.load_trained(path)) is REFUSED


# --- inside the network ---------------------------------------------------------------------------------------

@costly(10)
@given(class_index=mostly(st.none(), st.integers(-2, 12)),
       layer_name=mostly(st.none(), st.sampled_from(["c1_conv", "c3_conv", "s4_pool", "flatten", "prep_pad", "nope"])))
@example(class_index=float("inf"), layer_name=None)
@example(class_index="a", layer_name=None)
def test_grad_cam_with_any_class_and_layer(lenet, class_index, layer_name):
    from cnnlab.explain import grad_cam

    image = np.zeros((28, 28, 1), np.uint8)
    image[8:20, 12:16] = 255
    result = outcome(lambda: grad_cam(lenet, image, class_index, layer_name))
    if result is not REFUSED:
        heat, explained, layer = result
        assert heat.shape == (28, 28) and np.isfinite(heat).all() and 0 <= heat.min() <= heat.max() <= 1
        assert 0 <= explained < 10


@costly(10)
@given(image=mostly(hnp.arrays(np.uint8, st.sampled_from([(28, 28), (28, 28, 1), (1, 28, 28, 1), (32, 32, 3)])),
                    hnp.arrays(np.float64, (28, 28), elements=st.sampled_from([0.0, 255.0, np.nan, 300.0])),
                    junk=st.one_of(arrays(), JUNK)),
       max_channels=mostly(st.integers(-2, 40), st.integers(-2, 10**9)))
def test_feature_maps_of_any_image(lenet, image, max_channels):
    from cnnlab.explain import feature_maps

    maps = outcome(lambda: feature_maps(lenet, image, max_channels))
    if maps is not REFUSED:
        assert [m.layer for m in maps] == ["c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_conv"]
        assert all(1 <= m.channels_shown <= max_channels and np.isfinite(m.maps).all() for m in maps)


@CHEAP
@given(image=mostly(hnp.arrays(np.uint8, st.sampled_from([(8, 8, 1), (8, 8, 3), (8, 8), (8, 8, 2)])),
                    junk=st.one_of(arrays(), JUNK)),
       heat=mostly(hnp.arrays(np.float32, st.sampled_from([(8, 8), (5, 5), (8, 8, 1)]),
                              elements=st.floats(0, 1, width=32) | st.sampled_from([np.nan, 2.0, -1.0]))),
       alpha=mostly(st.floats(0, 1), st.floats()))
def test_overlay_of_any_image_and_heat(image, heat, alpha):
    from cnnlab.explain import overlay

    mixed = outcome(lambda: overlay(image, heat, alpha))
    if mixed is not REFUSED:
        check_image(mixed, (8, 8, 3))


# --- charts ---------------------------------------------------------------------------------------------------

@CHEAP
@given(images=mostly(hnp.arrays(np.float32, st.sampled_from([(3, 4, 4), (2, 4, 4, 1), (2, 4, 4, 3), (0, 4, 4)]),
                                elements=st.floats(0, 1, width=32)), junk=st.one_of(arrays(), JUNK)),
       columns=mostly(st.integers(-2, 20)), scale=mostly(st.integers(-2, 6), junk=st.one_of(HUGE, JUNK)),
       gap=mostly(st.integers(-2, 4), junk=st.one_of(HUGE, JUNK)))
@example(images=np.zeros((2, 4, 4), np.float32), columns=2, scale=10**6, gap=1)
@example(images=np.zeros((0, 4, 4), np.float32), columns=2, scale=1, gap=1)
def test_tiles_of_any_pictures(images, columns, scale, gap):
    from cnnlab.charts import tile

    sheet, peak = peak_bytes(lambda: tile(images, columns, scale, gap))
    if sheet is not REFUSED:
        assert sheet.dtype == np.uint8 and sheet.ndim in (2, 3) and min(sheet.shape[:2]) >= 1
    assert peak < 128 * MB  # the largest sheet allowed, 4096x4096, is drawn in float32: 84 MB


@examples(60, 10_000)
@given(probabilities=mostly(hnp.arrays(np.float64, st.just(4), elements=st.floats(0, 1) | st.just(np.nan)),
                            hnp.arrays(np.float64, st.integers(0, 5), elements=st.floats(0, 1)),
                            junk=st.one_of(arrays(), JUNK)),
       class_names=mostly(st.lists(st.text(max_size=3), min_size=4, max_size=4), st.lists(st.text(max_size=3))),
       true_class=mostly(st.none(), st.integers(-1, 6)))
@example(probabilities=np.zeros(0), class_names=[], true_class=None)
def test_probability_bars_of_anything(probabilities, class_names, true_class):
    from cnnlab.charts import class_probabilities

    figure = outcome(lambda: class_probabilities(probabilities, class_names, true_class))
    if figure is not REFUSED:
        assert len(figure.data[0].x) == len(class_names)


# --- the model zoo --------------------------------------------------------------------------------------------

@CHEAP
@given(probabilities=mostly(hnp.arrays(np.float32, st.sampled_from([(1000,), (1, 1000), (10,)]),
                                       elements=st.floats(0, 1, width=32)), junk=st.one_of(arrays(), JUNK)),
       k=mostly(st.integers(-2, 2000)))
@example(probabilities=np.ones(1000, np.float32) / 1000, k="a")
def test_imagenet_top_classes_of_anything(probabilities, k):
    from cnnlab.pretrained import top_classes

    best = outcome(lambda: top_classes(probabilities, k))
    if best is not REFUSED:
        assert 1 <= len(best) <= 1000 and all(isinstance(name, str) and 0 <= p <= 1 for name, p in best)


@CHEAP
@given(key=st.one_of(JUNK, st.sampled_from(["VGG19", "resnet", "keras-vgg19-notop", ""])))
def test_zoo_refuses_unknown_models_before_building_anything(key):
    from cnnlab import zoo

    for call in (zoo.counted, zoo.timing_memory, zoo.pretrained_memory, zoo.measure_cpu_ms, zoo.load_pretrained):
        assert outcome(lambda call=call: call(key)) is REFUSED


@pytest.fixture(scope="module")
def tiny_imagenet_classifier():
    """Anything with 1,000 softmax outputs classifies photos the same way; this one builds in a moment."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(x))


PHOTO_SHAPES = st.sampled_from([(20, 30, 3), (20, 30), (20, 30, 1), (20, 30, 4), (20, 30, 2), (5,), (0, 3, 3),
                                (1, 1, 1, 3)])


@costly(25)
@given(picture=mostly(encoded_images(), hnp.arrays(np.uint8, st.sampled_from([(20, 30, 3), (20, 30), (3, 3, 4)])),
                      hnp.arrays(np.float64, PHOTO_SHAPES, elements=st.sampled_from([0, 7, 255, 300, -3, np.nan])),
                      hnp.arrays(np.int64, PHOTO_SHAPES, elements=st.sampled_from([0, 7, 255, 300, -3])),
                      junk=st.one_of(st.binary(max_size=100), JUNK)),
       k=mostly(st.just(5), st.integers(-1, 3)))
@example(picture=np.zeros((20, 30, 2), np.uint8), k=5)
@example(picture=bytearray(b"\x89PNG"), k=5)
def test_classifying_any_photo(tiny_imagenet_classifier, picture, k):
    from cnnlab.zoo import classify

    result = outcome(lambda: classify(tiny_imagenet_classifier, picture, k))
    if result is not REFUSED:
        image, best = result
        check_image(image, (16, 16, 3))
        assert 1 <= len(best) <= 1000


# --- training settings and their cost -------------------------------------------------------------------------

RECIPE = mostly(st.sampled_from(["seed", "paper", "stable"]))


@CHEAP
@given(recipe=RECIPE, epochs=rarely(st.none(), st.integers(-2, 2000), junk=st.one_of(HUGE, JUNK)),
       batch_size=rarely(st.none(), st.sampled_from([1, 8, 32, 128, 4096, 4097, 0]), st.integers(-2, 5000),
                         junk=st.one_of(HUGE, JUNK)),
       learning_rate=rarely(st.none(), st.floats(1e-6, 10), st.floats()),
       steps_per_epoch=rarely(st.none(), st.integers(-2, 100), st.sampled_from([10**6, 10**6 + 1])),
       accumulation_steps=rarely(st.sampled_from([1, 1, 2, 4]), st.integers(-2, 300)),
       seed=rarely(st.integers(-2, 1000), st.sampled_from([2**31 - 1, 2**31])),
       sample=rarely(st.none(), st.floats(0, 1), st.floats()))
@example(recipe="seed", epochs=1, batch_size=10**9, learning_rate=None, steps_per_epoch=None, accumulation_steps=1,
         seed=0, sample=None)
def test_training_settings_are_checked(recipe, epochs, batch_size, learning_rate, steps_per_epoch, accumulation_steps,
                                       seed, sample):
    config = outcome(lambda: TrainConfig(ModelConfig("lenet5"), recipe=recipe, epochs=epochs, batch_size=batch_size,
                                         learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                                         accumulation_steps=accumulation_steps, seed=seed, sample=sample).resolved())
    if config is not REFUSED:
        assert 1 <= config.epochs <= 1000 and 1 <= config.batch_size <= 4096
        assert config.batch_size % config.accumulation_steps == 0
        assert 0 < config.learning_rate <= 10 and 0 < config.sample <= 1
        assert config.steps_per_epoch is None or 1 <= config.steps_per_epoch <= 10**6


@CHEAP
@given(model=st.one_of(st.builds(ModelConfig, st.sampled_from(LAB_ARCHS)), st.sampled_from(LAB_ARCHS), JUNK))
@example(model="lenet5")
@example(model={"arch": "lenet5"})
@example(model=ModelConfig("lenet5"))
def test_training_needs_a_model_config(model):
    if not isinstance(model, ModelConfig):  # a name, a dict, junk: refused, saying what it takes
        with pytest.raises(ValueError) as refusal:
            TrainConfig(model).resolved()
        assert_learner_error(refusal.value)
        assert "ModelConfig" in str(refusal.value), refusal.value
        return
    config = outcome(lambda: TrainConfig(model).resolved())
    if ARCHITECTURES[model.arch].trainable:
        assert config is not REFUSED and config.model.resolved() == model.resolved()
    else:  # a feature extractor: a ModelConfig, but refused for its own reason
        assert config is REFUSED


@CHEAP
@given(input_size=st.one_of(st.none(), SIDE), width=st.one_of(st.just(1.0), HUGE, JUNK), knobs=KNOBS)
@example(input_size=10**6, width=1.0, knobs={})
@example(input_size=32, width=1e9, knobs={})
def test_training_checks_the_model_settings(input_size, width, knobs):
    model = ModelConfig("lenet5", input_size=input_size, width=width, knobs=knobs)
    model_ok = outcome(lambda: model.resolved()) is not REFUSED
    train_ok = outcome(lambda: TrainConfig(model).resolved()) is not REFUSED
    assert train_ok == model_ok


@CHEAP
@given(dataset=st.one_of(st.none(), st.sampled_from(["mnist", "cifar10"]), JUNK),
       source=st.one_of(st.sampled_from(["bundled", "full"]), JUNK))
@example(dataset=None, source="cloud")
def test_training_checks_dataset_and_source(dataset, source):
    config = outcome(lambda: TrainConfig(ModelConfig("lenet5"), dataset=dataset, source=source).resolved())
    if config is not REFUSED:
        assert config.dataset in cnnlab.DATASETS and config.source in cnnlab.data.SOURCES


@MODEST
@given(arch=st.sampled_from(["lenet5", "alexnet"]), input_size=st.one_of(st.none(), st.integers(1, 600), HUGE),
       width=st.one_of(st.just(1.0), st.floats(0.01, 5), HUGE), batch_size=st.one_of(st.none(), st.integers(-1, 5000)),
       n_train=st.integers(1, 10**6))
@example(arch="lenet5", input_size=10**6, width=1.0, batch_size=None, n_train=100)
@example(arch="lenet5", input_size=None, width=1e9, batch_size=None, n_train=100)
@example(arch="lenet5", input_size=None, width=1.0, batch_size=10**9, n_train=100)
def test_costs_of_valid_runs_and_refusals_of_huge_ones(arch, input_size, width, batch_size, n_train):
    from cnnlab.cost import estimate_cost

    config = TrainConfig(ModelConfig(arch, input_size=input_size, width=width), batch_size=batch_size)
    cost = outcome(lambda: estimate_cost(config, n_train, 100, macs_per_second=1e9))
    if cost is not REFUSED:
        assert cost.peak_bytes > 0 and cost.seconds_per_epoch > 0 and cost.steps_per_epoch >= 1
        assert all(value >= 0 for value in cost.breakdown.values())


@CHEAP
@given(n_train=st.one_of(st.integers(-5, 10**7), st.floats(), JUNK), n_test=st.one_of(st.integers(-5, 10**6), JUNK),
       speed=st.one_of(st.none(), st.floats(), JUNK))
@example(n_train=float("nan"), n_test=0, speed=None)
@example(n_train=float("inf"), n_test=0, speed=None)
@example(n_train="100", n_test=0, speed=None)
@example(n_train=-500, n_test=0, speed=1e9)
def test_cost_of_any_image_count(n_train, n_test, speed):
    from cnnlab.cost import estimate_cost

    cost = outcome(lambda: estimate_cost(TrainConfig(ModelConfig("lenet5")), n_train, n_test, speed))
    if cost is not REFUSED:
        assert cost.peak_bytes > 0 and cost.seconds_per_epoch >= 0 and cost.steps_per_epoch >= 0
        assert all(value >= 0 for value in cost.breakdown.values())


# --- the command line -----------------------------------------------------------------------------------------

class ReachedTraining(Exception):
    """Raised in place of building the model: everything before training accepted the command."""


def cli_short_of_training(argv) -> tuple[int, str] | None:
    """The command's exit code and stderr, or None when it passed every check and would now train
    (the network is never built: a sentinel stops it there; downloads are refused)."""
    with mock.patch("cnnlab.training.build_model", side_effect=ReachedTraining), \
            mock.patch("cnnlab.data._download", side_effect=AssertionError("no downloads here")):
        try:
            code, _, err = cli(argv)
        except ReachedTraining:
            event("reached training")
            return None
    return code, err


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exited:  # argparse's own checks
            code = exited.code
    event(f"exit code {code}")
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err) -> None:
    assert code == 2, (code, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err, err


NUMBERS = st.one_of(st.integers(-3, 600).map(str), st.sampled_from(["1e9", "1000000", "nan", "inf", "-inf", "0x10",
                                                                     "", "1.5", "-0", "9" * 30]),
                    st.floats().map(repr), st.text(alphabet="0123456789.-e", max_size=6))
WORDS = st.text(alphabet="abcxyz_=.-9", max_size=8)


def option(name, values):
    return st.tuples(st.just(name), values).map(list)


MODEL_OPTIONS = [option("--input-size", NUMBERS), option("--width", NUMBERS),
                 option("--set", st.one_of(st.tuples(KNOB_NAMES, st.one_of(NUMBERS, WORDS, st.sampled_from(
                     ["relu", "tanh", "max", "random", "imagenet", "mobilenetv2"]))).map("=".join), WORDS))]


@st.composite
def commands(draw, name, arch, options):
    chosen = draw(st.lists(st.one_of(*options), max_size=4))
    return [name, draw(arch), *[token for pair in chosen for token in pair]]


@costly(30)
@given(argv=st.one_of(
    commands("summary", st.just("lenet5"), MODEL_OPTIONS + [st.just(["--json"])]),
    commands("summary", st.sampled_from(["alexnet", "vgg19", "resnet", "", "LENET5"]), MODEL_OPTIONS)))
@example(argv=["summary", "lenet5", "--input-size", "1000000"])
@example(argv=["summary", "lenet5", "--width", "1e9"])
@example(argv=["summary", "lenet5", "--set", "activation"])
def test_summary_with_any_options(argv):
    code, out, err = cli(argv)
    if code == 0:
        assert "parameters" in out or out.startswith("{")
    else:
        assert_one_line_error(code, err)


TRAIN_OPTIONS = [option("--epochs", NUMBERS), option("--batch-size", NUMBERS), option("--lr", NUMBERS),
                 option("--sample", NUMBERS), option("--steps-per-epoch", NUMBERS), option("--seed", NUMBERS),
                 option("--accumulation-steps", NUMBERS), option("--recipe", st.one_of(RECIPE.map(str), WORDS)),
                 option("--dataset", st.sampled_from(["mnist", "cifar10", "imagenet", ""])),
                 option("--source", st.sampled_from(["bundled", "cloud", ""])),
                 option("--data", st.sampled_from(["absent.npz", "garbage.npz", "arrays.npz", "folder"])),
                 *MODEL_OPTIONS]


@costly(40)
@given(argv=commands("train", st.sampled_from(["lenet5", "alexnet", "transfer", "keras-vgg19-notop",
                                               "keras-mobilenetv2", "nope"]), TRAIN_OPTIONS))
@example(argv=["train", "lenet5", "--batch-size", "1000000000"])
@example(argv=["train", "lenet5", "--lr", "nan"])
def test_train_refuses_bad_commands_before_training(tmp_path_factory, argv):
    """Commands that pass every check reach the model's construction, where this test stops them."""
    folder = tmp_path_factory.mktemp("train")
    write(folder, "garbage.npz", b"PK\x03\x04 not really")
    write(folder, "arrays.npz", npz_bytes({"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.arange(4),
                                           "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.arange(2)}))
    (folder / "folder").mkdir()
    argv = [*argv, "--out", str(folder / "run")]
    argv = [str(folder / token) if token in ("absent.npz", "garbage.npz", "arrays.npz", "folder") else token
            for token in argv]
    outcome_of_command = cli_short_of_training(argv)
    if outcome_of_command is not None:
        assert_one_line_error(*outcome_of_command)


@costly(5)
@given(option=st.sampled_from([["--input-size", "1000000"], ["--width", "1e9"], ["--set", "pooling=sum"]]))
def test_train_refuses_bad_model_settings_before_creating_the_run_folder(tmp_path_factory, option):
    out = tmp_path_factory.mktemp("train") / "run"
    with mock.patch("cnnlab.training.build_model", side_effect=ReachedTraining):
        code, _, err = cli(["train", "lenet5", *option, "--out", str(out)])
    assert_one_line_error(code, err)
    assert not out.exists()


@costly(15)
@given(data=st.data(), kind=st.sampled_from(["garbage", "corrupt", "arrays", "arrays", "absent"]))
def test_evaluate_any_file(lenet_file, tmp_path_factory, data, kind):
    folder = tmp_path_factory.mktemp("evaluate")
    if kind == "garbage":
        path = write(folder, "data.npz", data.draw(st.binary(max_size=200)))
    elif kind == "corrupt":
        path = write(folder, "data.npz", corrupted(npz_bytes({"x": np.zeros((2, 28, 28), np.uint8),
                                                              "y": np.arange(2)}), data))
    elif kind == "arrays":
        x_key, n = data.draw(st.sampled_from(["x", "x_test"])), data.draw(st.integers(1, 3))
        contents = {x_key: data.draw(hnp.arrays(np.uint8, st.sampled_from([(n, 28, 28), (n, 28, 28, 1)]))),
                    x_key.replace("x", "y"): data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 9)))}
        if data.draw(st.booleans()):  # one array replaced or added
            contents[data.draw(st.sampled_from(["x", "y", "x_test", "y_test"]))] = data.draw(st.one_of(
                hnp.arrays(np.uint8, st.sampled_from([(2, 28, 28), (2, 28, 28, 1), (2, 32, 32, 3)])),
                hnp.arrays(np.int64, st.sampled_from([(2,), (2, 1), (3,)]), elements=st.integers(-1, 12)),
                arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3))))
        path = write(folder, "data.npz", npz_bytes(contents))
    else:
        path = folder / "absent.npz"
    code, out, err = cli(["evaluate", str(lenet_file), "--data", str(path)])
    if code == 0:
        result = json.loads(out)
        assert 0 <= result["accuracy"] <= 1 and result["n"] >= 1
    else:
        assert_one_line_error(code, err)


@costly(15)
@given(pictures=st.lists(rarely(encoded_images(), junk=st.binary(max_size=100)), min_size=1, max_size=3),
       top=mostly(st.integers(1, 12).map(str), junk=NUMBERS))
def test_predict_any_pictures(lenet_file, tmp_path_factory, pictures, top):
    folder = tmp_path_factory.mktemp("predict")
    paths = [str(write(folder, f"picture{i}.png", picture)) for i, picture in enumerate(pictures)]
    code, out, err = cli(["predict", str(lenet_file), *paths, "--top", top])
    if code == 0:
        predictions = json.loads(out)["predictions"]
        assert len(predictions) == len(paths) and all(1 <= len(p["top"]) <= 10 for p in predictions)
    else:
        assert_one_line_error(code, err)


TOKENS = st.one_of(st.sampled_from(["summary", "train", "evaluate", "predict", "lenet5", "alexnet", "--input-size",
                                    "--width", "--set", "--json", "--epochs", "--batch-size", "--lr", "--sample",
                                    "--out", "--data", "--top", "--recipe", "--source", "-h", "continue", "mnist", "0",
                                    "1", "-1", "32", "1e9", "nan", "pooling=max", "dropout=2", "model.keras", "x.png"]),
                   WORDS)


@costly(60)
@given(argv=st.lists(TOKENS, max_size=8))
def test_any_command_line_exits_0_or_2(tmp_path_factory, argv):
    with contextlib.chdir(tmp_path_factory.mktemp("cwd")):
        outcome_of_command = cli_short_of_training(argv)
    if outcome_of_command is None:
        return
    code, err = outcome_of_command
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
