"""The model zoo: every Keras application counted as documented, pretrained weights found, fetched or
explained, ImageNet predictions, and transfer learning on the bundled CIFAR-10 sample."""

from __future__ import annotations

import hashlib
import io
import threading
import urllib.error

import keras
import numpy as np
import pytest

from cnnlab import ModelConfig, TrainConfig, build_model, layer_table, load_dataset, train, zoo
from cnnlab.architectures.applications import APPLICATIONS
from cnnlab.architectures.preprocessing import normalise
from cnnlab.features import FEATURES
from cnnlab.pretrained import WeightsUnavailable, cached_path, imagenet_class_names, top_classes

KERAS_COUNTS = {"resnet50": 25_636_712, "vgg19": 143_667_240, "mobilenetv2": 3_538_984, "nasnetlarge": 88_949_818}


@pytest.fixture
def offline(monkeypatch):
    """No network: every download fails the way an offline server's does."""
    def refuse(url, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


@pytest.mark.parametrize("key", APPLICATIONS)
def test_every_zoo_model_counts_as_documented(key):
    app, ours = APPLICATIONS[key], zoo.counted(key)
    assert round(ours.params / 1e6, 1) == app.documented.params_m
    assert ours.weight_layers == app.documented.depth
    assert ours.longest_path <= ours.weight_layers
    assert not zoo.disagreements(app, ours)
    if key in KERAS_COUNTS:
        assert ours.params == KERAS_COUNTS[key]


def test_counts_equal_keras_built_with_weights_none():
    for name in ("MobileNetV2", "EfficientNetB0"):
        assert zoo.counted(name.lower()).params == getattr(keras.applications, name)(weights=None).count_params()


def test_counting_the_big_ones_allocates_no_weights():
    def resident() -> int:
        return int(open("/proc/self/statm").read().split()[1]) * 4096

    before = resident()
    table = layer_table("keras-nasnetlarge")
    layer_table("keras-vgg19", input_size=240)
    assert table.total_params == KERAS_COUNTS["nasnetlarge"]
    assert resident() - before < 150 * 2**20   # their weights alone would be 356 MB and 600 MB


def test_registry_names_follow_keras_and_keep_the_lecture_extractor():
    assert build_model("keras-vgg19-notop").count_params() == 20_024_384           # the lecture's, without top
    assert layer_table("keras-vgg19").total_params == KERAS_COUNTS["vgg19"]
    assert layer_table("keras-resnet50").rows[-1].output_shape == (1000,)
    with pytest.raises(ValueError, match="fixed widths"):
        layer_table("keras-resnet50", width=0.5)
    with pytest.raises(ValueError, match="at least 75"):
        layer_table("keras-inceptionv3", input_size=64)


@pytest.mark.parametrize("key", APPLICATIONS)
def test_preprocessing_equals_keras_preprocess_input(key):
    app = APPLICATIONS[key]
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    ours = x
    for layer in normalise(app.preprocess):
        ours = np.asarray(layer(ours))
    theirs = getattr(keras.applications, app.module).preprocess_input(x.copy())
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-5, atol=1e-4)


def test_weights_files_are_the_ones_keras_downloads(monkeypatch):
    """Keras's own constructors, asked for ImageNet weights, request exactly our file names and addresses."""
    from keras.src.utils import file_utils

    requested = {}

    class Asked(Exception):
        pass

    def record(fname, origin=None, **kwargs):
        requested[key, top] = (fname, origin, kwargs.get("file_hash"))
        raise Asked

    monkeypatch.setattr(file_utils, "get_file", record)
    for key, app in APPLICATIONS.items():
        for top in (True, False):
            if not top and key not in ("vgg19", "mobilenetv2", "resnet50"):
                continue
            with pytest.raises(Asked):
                _build_lazily(lambda app=app, top=top: getattr(keras.applications, app.name)(
                    weights="imagenet", include_top=top, **({} if top else {"pooling": "avg"})))
            file = app.top if top else app.no_top
            assert requested[key, top] == (file.file_name, file.url, file.md5)


def _build_lazily(build):
    error = {}

    def run():
        try:
            with keras.StatelessScope(initialize_variables=False):
                build()
        except Exception as problem:  # noqa: BLE001 - hand any error from the thread back to the caller to re-raise
            error["e"] = problem

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    raise error["e"]


def test_imagenet_class_names_are_keras_own_file():
    from cnnlab.pretrained import _CLASS_INDEX

    assert hashlib.md5(_CLASS_INDEX.read_bytes()).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"
    probabilities = np.full(1000, 0.0005)
    probabilities[[281, 285, 0]] = [0.5, 0.3, 0.01]
    assert [name for name, _ in top_classes(probabilities, 3)] == ["tabby", "Egyptian cat", "tench"]


def _legacy_weights_file(model, path) -> None:
    """A weights file in the layout Keras publishes its ImageNet weights in (HDF5, by layer)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_pretrained_weights_download_once_then_load_from_the_cache(keras_home, tmp_path, monkeypatch):
    app = APPLICATIONS["mobilenetv2"]
    keras.utils.set_random_seed(3)
    source = keras.applications.MobileNetV2(weights=None)
    # A random MobileNetV2 says "uniform" to every image; a bias gives its classes an order to check.
    source.get_layer("predictions").bias.assign(np.random.default_rng(0).normal(size=1000).astype("float32"))
    published = tmp_path / "published.h5"
    _legacy_weights_file(source, published)
    fetched = []

    def serve(url, timeout=None):
        fetched.append((url, timeout))
        return io.BytesIO(published.read_bytes())

    monkeypatch.setattr("urllib.request.urlopen", serve)
    model = zoo.load_pretrained("mobilenetv2")
    assert fetched == [(app.top.url, 20)]
    assert cached_path(app.top) == keras_home / "models" / app.top.file_name and cached_path(app.top).is_file()
    np.testing.assert_array_equal(model.get_layer("Conv1").kernel.numpy(), source.get_layer("Conv1").kernel.numpy())

    image = load_dataset("cifar10").x_test[0]
    seen, best = zoo.classify(model, image)
    assert seen.shape == (224, 224, 3) and len(best) == 5                 # resized to what the model takes
    assert all(name in imagenet_class_names() for name, _ in best) and best[0][1] >= best[-1][1]
    same = keras.applications.MobileNetV2(weights=None)
    same.set_weights(source.get_weights())
    expected = same.predict(keras.applications.mobilenet_v2.preprocess_input(seen[None].astype("float32")),
                            verbose=0)[0]
    assert best[0] == (imagenet_class_names()[int(expected.argmax())], pytest.approx(float(expected.max()), abs=1e-5))

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("downloaded twice"))
    zoo.load_pretrained("mobilenetv2")                                # from the cache, no network


def test_offline_says_what_is_missing_and_where_to_put_it(keras_home, offline):
    app = APPLICATIONS["resnet50"]
    with pytest.raises(WeightsUnavailable) as missing:
        zoo.load_pretrained("resnet50")
    message = str(missing.value)
    assert app.top.url in message and str(keras_home / "models" / app.top.file_name) in message
    assert "could not be downloaded" in message and "place the file" in message
    assert not (keras_home / "models").exists() or not list((keras_home / "models").iterdir())


def test_a_damaged_download_is_refused_and_not_kept(keras_home, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout=None: io.BytesIO(b"not weights"))
    with pytest.raises(WeightsUnavailable, match="damaged"):
        zoo.load_pretrained("resnet50")
    assert not list((keras_home / "models").iterdir())


def test_too_little_memory_refuses_a_big_model(monkeypatch):
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 300 * 2**20)
    with pytest.raises(ValueError, match=r"needs about .* GB of memory.*0.3 GB free.*MobileNetV2"):
        zoo.load_pretrained("vgg19")


def test_cpu_time_is_measured_in_a_child_process_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path))
    ms = zoo.measure_cpu_ms("mobilenetv2")
    assert 0 < ms < 60_000
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("measured twice"))
    assert zoo.measure_cpu_ms("mobilenetv2") == pytest.approx(ms, abs=0.01)
    row = next(r for r in zoo.zoo_rows() if r["model"] == "MobileNetV2")
    assert row["cpu_ms_per_image_here"] == pytest.approx(ms, abs=0.01) and row["cpu_ms"] == 25.9


# Transfer learning. The bundled CIFAR-10 sample, 40% of it: 2,000 training and 400 test images.
RANDOM_VGG = dict(base="vgg19", weights="random", units=64)


def transfer_config(**overrides) -> TrainConfig:
    knobs = RANDOM_VGG | overrides.pop("knobs", {})
    return TrainConfig(ModelConfig("transfer", input_size=32, knobs=knobs),
                       **{"sample": 0.4, "epochs": 4, "batch_size": 64, "seed": 0} | overrides)


def test_transfer_learns_on_a_random_base_and_reuses_its_features():
    FEATURES.clear()
    first = train(transfer_config())
    assert first.test_accuracy > 0.2, "a random VGG19 base still carries enough for well above 10%"
    assert (FEATURES.misses, FEATURES.hits) == (2, 0)                        # train and test features
    again = train(transfer_config(learning_rate=3e-3, knobs={"units": 32}))
    assert (FEATURES.misses, FEATURES.hits) == (2, 2)                        # a new head, the same features
    assert again.epochs_completed == 4 and not again.notes
    # The whole network, raw images in, carries the head that learnt on the features.
    from cnnlab.training import evaluate_predictions

    data = load_dataset("cifar10").sample(0.4, seed=0)
    _, accuracy, _ = evaluate_predictions(again.model, data.x_test, data.y_test, 64)
    assert accuracy == pytest.approx(again.test_accuracy, abs=0.01)
    assert all(not layer.trainable for layer in again.model.layers if layer.name.startswith("block"))


def test_transfer_offline_falls_back_to_a_random_base_and_says_why(offline, keras_home):
    notes = []

    class Listener:
        def on_batch(self, progress): ...
        def on_epoch(self, progress): ...
        def on_note(self, text, lasting=True): notes.append((text, lasting))

    run = train(transfer_config(knobs={"base": "mobilenetv2", "weights": "imagenet"}, sample=0.05, epochs=1),
                listener=Listener())
    assert run.config.model.knobs["weights"] == "random" and run.epochs_completed == 1
    assert "could not be downloaded" in str(run.notes[0]) and "expect a low accuracy" in str(run.notes[0])
    assert "정확도는 낮을 것입니다" in run.notes[0].in_language("ko")
    assert notes[0] == (run.notes[0], True)
    assert any("computes each image's features once" in str(text) and not lasting for text, lasting in notes)


def test_stop_while_features_are_computed_ends_the_run_cleanly():
    FEATURES.clear()
    stop = threading.Event()
    stop.set()
    run = train(transfer_config(knobs={"base": "mobilenetv2"}), stop=stop)
    assert run.stopped and run.epochs_completed == 0 and run.test_accuracy is None
    assert FEATURES.misses == 0


def test_transfer_cost_splits_the_base_computed_once_from_the_head_trained_each_epoch():
    from cnnlab.cost import estimate_cost

    vgg = estimate_cost(transfer_config(), 2000, 400, macs_per_second=1e10)
    bigger = estimate_cost(transfer_config().__class__(ModelConfig("transfer", input_size=64, knobs=RANDOM_VGG)),
                           2000, 400, macs_per_second=1e10)
    assert vgg.once_seconds > 10 * vgg.seconds_per_epoch
    assert bigger.once_seconds == pytest.approx(4 * vgg.once_seconds, rel=0.05)   # MACs grow with the area
    assert vgg.breakdown["features"] == 2400 * 512 * 4
