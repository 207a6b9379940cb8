"""Run bundles: a learner's work leaves as one .zip and comes back to predict or to continue;
nothing in an uploaded file is ever run, and every bad file is refused with a clear message."""

from __future__ import annotations

import dataclasses
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from cnnlab import ModelConfig, TrainConfig, load_dataset
from cnnlab.bundle import bundle_bytes, read_bundle
from cnnlab.errors import LabError
from cnnlab.training import train

LIMIT = 50 * 2**20


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist").sample(0.02, seed=0)


@pytest.fixture(scope="module")
def run(mnist):
    return train(TrainConfig(ModelConfig("lenet5"), epochs=1, batch_size=32, learning_rate=3e-3, seed=1), data=mnist)


@pytest.fixture(scope="module")
def bundle(run) -> bytes:
    return bundle_bytes(run)


def members(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def edited(bundle: bytes, change) -> bytes:
    files = members(bundle)
    record = json.loads(files["run.json"])
    change(record)
    files["run.json"] = json.dumps(record).encode()
    return rezip(files)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_a_bundle_brings_back_the_same_predictions_names_curves_and_optimizer(run, bundle, mnist):
    back = read_bundle(bundle, LIMIT)
    images = mnist.x_test[:64]
    np.testing.assert_allclose(back.model.predict(images, verbose=0), run.model.predict(images, verbose=0), atol=1e-6)
    assert back.class_names == run.class_names and back.config == run.config
    assert back.history.epochs == run.history.epochs and back.history.batches == run.history.batches
    assert back.test_accuracy == pytest.approx(run.test_accuracy) and back.test_accuracy > 0.5
    assert int(back.optimizer.iterations.numpy()) == int(run.optimizer.iterations.numpy()) == 38
    assert set(members(bundle)) == {"run.json"} | {f"weights/{i:05d}.npy" for i in range(len(run.model.weights))} | {
        f"optimizer/{i:05d}.npy" for i in range(len(run.optimizer.variables))}


def test_reading_a_bundle_never_deserialises_keras_objects(bundle, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a bundle must not be read through Keras's object loading")

    for name in ("keras.models.load_model", "keras.saving.load_model", "keras.saving.deserialize_keras_object",
                 "keras.models.model_from_json"):
        monkeypatch.setattr(name, forbidden)
    monkeypatch.setattr("pickle.loads", forbidden)
    assert read_bundle(bundle, LIMIT).model is not None


def test_a_continued_run_goes_on_from_where_it_ended_and_leaves_the_earlier_one_alone(run, bundle, mnist):
    earlier = read_bundle(bundle, LIMIT)
    before = [w.copy() for w in earlier.model.get_weights()]
    more = train(dataclasses.replace(earlier.config, epochs=1), data=mnist, resume=earlier)
    assert [e["epoch"] for e in more.history.epochs] == [1, 2]
    assert more.history.epochs[0] == run.history.epochs[0]
    assert more.history.batches[-1]["seen"] == 2 * len(mnist.sample(1.0).x_train)
    assert int(more.optimizer.iterations.numpy()) == 2 * 38  # Adam's step count carried on
    assert more.history.batches[38]["loss"] < run.history.batches[0]["loss"] / 2  # not a network starting afresh
    assert all(np.array_equal(a, b) for a, b in zip(before, earlier.model.get_weights()))
    assert more.test_accuracy > run.test_accuracy


def test_a_continued_run_needs_the_same_model(bundle, mnist):
    earlier = read_bundle(bundle, LIMIT)
    other = TrainConfig(ModelConfig("lenet5", width=0.5), epochs=1)
    with pytest.raises(ValueError, match="same model"):
        train(other, data=mnist, resume=earlier)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "not a run bundle CNN Lab can read"),
    (lambda b: b"PK\x03\x04" + bytes(200), "not a run bundle CNN Lab can read"),
    (lambda b: b"not a zip at all", "not a run bundle CNN Lab can read"),
    (lambda b: b"", "not a run bundle CNN Lab can read"),
])
def test_damaged_files_are_refused(bundle, damage, message):
    with pytest.raises(LabError, match=message):
        read_bundle(damage(bundle), LIMIT)


def test_an_oversized_bundle_is_refused_before_it_is_opened(bundle):
    with pytest.raises(LabError, match=r"this server accepts run bundles up to 0\.\d+ MB"):
        read_bundle(bundle, 100_000)


def test_a_zip_bomb_is_refused_by_what_it_would_unpack_to(bundle):
    files = members(bundle)
    files["weights/00000.npy"] = npy(np.zeros((40 * 2**20,), np.float32))  # 160 MB of zeros, a few hundred kB packed
    bomb = rezip(files)
    assert len(bomb) < 2 * 2**20
    with pytest.raises(LabError, match="MB"):
        read_bundle(bomb, 2 * 2**20)


def test_a_keras_file_or_anything_else_in_the_zip_is_not_a_bundle(run, bundle, tmp_path):
    run.model.save(tmp_path / "model.keras")  # a .keras file is a zip too: config.json, weights, metadata
    with pytest.raises(LabError, match="not a CNN Lab run bundle"):
        read_bundle((tmp_path / "model.keras").read_bytes(), LIMIT)
    with pytest.raises(LabError, match="not a CNN Lab run bundle: it holds.*evil.py"):
        read_bundle(rezip({**members(bundle), "evil.py": b"import os"}), LIMIT)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(version=2), "format version 2"),
    (lambda r: r.update(format="something-else"), "not a CNN Lab run bundle"),
    (lambda r: r["config"].update(learning_rate=-1), "learning_rate must be a number above 0"),
    (lambda r: r["config"].update(shell="rm -rf /"), "Unknown training setting 'shell'"),
    (lambda r: r["config"]["model"].update(arch="__import__('os')"), "Unknown architecture"),
    (lambda r: r["config"]["model"].update(input_size=10**9), "input_size"),
    (lambda r: r["config"]["model"]["knobs"].update(activation="eval"), "activation"),
    (lambda r: r.update(class_names=["only one"]), "10 class names"),
    (lambda r: r["history"]["epochs"].append({"epoch": "1; drop"}), "history row"),
    (lambda r: r.update(config=None), "configuration must be an object"),
])
def test_a_bundle_whose_settings_are_wrong_is_refused(bundle, change, message):
    with pytest.raises(ValueError, match=message):
        read_bundle(edited(bundle, change), LIMIT)


def test_a_path_in_a_bundle_never_chooses_what_the_server_reads(bundle):
    back = read_bundle(edited(bundle, lambda r: r["config"].update(data_path="/etc/passwd", source="full")), LIMIT)
    assert back.config.data_path is None and back.config.source == "bundled"


def test_weights_that_do_not_fit_the_network_are_refused(bundle):
    files = members(bundle)
    last = sorted(name for name in files if name.startswith("weights/"))[-1]
    wrong_shape = {**files, "weights/00000.npy": npy(np.zeros((3, 3, 1, 6), np.float32))}
    with pytest.raises(LabError, match=r"weights weights/00000.npy has \(3, 3, 1, 6\).*needs \(5, 5, 1, 6\)"):
        read_bundle(rezip(wrong_shape), LIMIT)
    missing = {name: data for name, data in files.items() if name != last}
    with pytest.raises(LabError, match="weights has 9 where the network it describes needs 10"):
        read_bundle(rezip(missing), LIMIT)


def test_a_huge_shape_claimed_in_a_header_is_refused_before_anything_is_allocated(bundle):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    files = {**members(bundle), "weights/00000.npy": header.getvalue()}
    with pytest.raises(LabError, match=r"\(1000000000000,\)"):
        read_bundle(rezip(files), LIMIT)


def test_pickled_objects_and_non_numbers_are_refused_without_unpickling(bundle):
    files = members(bundle)
    shape = np.load(io.BytesIO(files["weights/00000.npy"])).shape
    objects = np.empty(shape, dtype=object)
    with pytest.raises(LabError, match="holds object"):
        read_bundle(rezip({**files, "weights/00000.npy": npy(objects)}), LIMIT)
    with pytest.raises(LabError, match="holds <U1"):
        read_bundle(rezip({**files, "weights/00000.npy": npy(np.full(shape, "a"))}), LIMIT)


def test_nan_weights_are_refused(bundle):
    files = members(bundle)
    poisoned = np.load(io.BytesIO(files["weights/00000.npy"]))
    poisoned[0, 0, 0, 0] = np.nan
    with pytest.raises(LabError, match="NaN or infinite"):
        read_bundle(rezip({**files, "weights/00000.npy": npy(poisoned)}), LIMIT)


def test_truncated_arrays_are_refused(bundle):
    files = members(bundle)
    with pytest.raises(LabError, match="cut short"):
        read_bundle(rezip({**files, "weights/00000.npy": files["weights/00000.npy"][:-4]}), LIMIT)


def test_refusals_speak_korean_too(bundle):
    with pytest.raises(LabError) as refused:
        read_bundle(rezip({**members(bundle), "evil.py": b""}), LIMIT)
    assert "실행 번들" in refused.value.in_language("ko")


def never_built(monkeypatch):
    """The network a bundle describes must not be built: a test fails if it is."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the network was built before the bundle's manifest was checked")

    monkeypatch.setattr("cnnlab.bundle.build_model", forbidden)


def test_a_small_file_naming_a_big_network_is_refused_before_the_network_is_built(bundle, monkeypatch):
    files = members(bundle)
    record = json.loads(files["run.json"])
    record["config"]["model"].update(arch="vgg19", input_size=160, raw_shape=[32, 32, 3], knobs={}, width=1.0)
    record["config"].update(dataset="cifar10")
    lure = rezip({"run.json": json.dumps(record).encode()})  # VGG19's 89 million weights (341 MB) named, none carried
    assert len(lure) < 4096
    never_built(monkeypatch)
    tracemalloc.start()
    try:
        with pytest.raises(LabError, match="weights has 0 where the network it describes needs 38") as refused:
            read_bundle(lure, 300 * 2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20
    assert "실행 번들" in refused.value.in_language("ko")


def test_weights_packed_tighter_than_trained_weights_ever_pack_are_refused_before_the_network_is_built(
        bundle, monkeypatch):
    files = members(bundle)
    zeros = {name: npy(np.zeros_like(np.load(io.BytesIO(data)))) for name, data in files.items()
             if name.startswith("weights/")}
    never_built(monkeypatch)
    with pytest.raises(LabError, match=r"weights unpack to 0.24 MB from only 0.00 MB") as refused:
        read_bundle(rezip({**files, **zeros}), LIMIT)
    assert "압축되지 않으므로" in refused.value.in_language("ko")


def test_an_optimizer_array_that_does_not_match_its_own_header_is_refused_before_the_network_is_built(
        bundle, monkeypatch):
    files = members(bundle)
    never_built(monkeypatch)
    with pytest.raises(LabError, match="optimizer/00002.npy is cut short") as refused:
        read_bundle(rezip({**files, "optimizer/00002.npy": files["optimizer/00002.npy"][:-4]}), LIMIT)
    assert "실행 번들" in refused.value.in_language("ko")


def test_a_transfer_run_travels_with_its_head_and_base():
    cifar = load_dataset("cifar10").sample(0.04, seed=0)
    config = TrainConfig(ModelConfig("transfer", input_size=32, knobs={"base": "mobilenetv2", "weights": "random"}),
                         epochs=1, batch_size=64, steps_per_epoch=2)
    run = train(config, data=cifar)
    back = read_bundle(bundle_bytes(run), LIMIT)
    images = cifar.x_test[:16]
    np.testing.assert_allclose(back.model.predict(images, verbose=0), run.model.predict(images, verbose=0), atol=1e-5)
    assert back.optimizer is None  # the head's optimizer trained a separate model: it starts afresh
    more = train(dataclasses.replace(back.config, epochs=1), data=cifar, resume=back)
    assert [e["epoch"] for e in more.history.epochs] == [1, 2]


def test_a_zip_directory_flooded_with_entries_is_refused_before_it_is_read(bundle):
    files = members(bundle)
    flood = rezip({**files, **{f"weights/{i:05d}.npy": b"" for i in range(100, 5000)}}, zipfile.ZIP_STORED)
    with pytest.raises(LabError, match="directory lists 4,933 entries"):
        read_bundle(flood, LIMIT)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.comment = b""
    forced = out.getvalue().replace(b"PK\x05\x06", b"PK\x06\x07" + bytes(16) + b"PK\x05\x06")  # a zip64 locator
    with pytest.raises(LabError, match="zip64|not a run bundle"):
        read_bundle(forced, LIMIT)


@pytest.mark.parametrize("change", [
    lambda r: r["history"]["batches"][-1].update(epoch=-5),
    lambda r: r["history"]["batches"][0].update(step=None),
    lambda r: r["history"]["batches"][0].update(step=0),
    lambda r: r["history"]["epochs"][0].update(epoch=7),
    lambda r: r["history"]["epochs"][0].update(loss=float("inf")),
    lambda r: r.update(history=[1]),
])
def test_a_history_that_could_not_have_been_trained_is_refused(bundle, change):
    with pytest.raises(LabError, match="not a run bundle CNN Lab can read"):
        read_bundle(edited(bundle, change), LIMIT)


def test_the_learning_rate_is_the_checked_setting_not_a_number_in_the_file(bundle, mnist):
    files = members(bundle)
    files["optimizer/00001.npy"] = npy(np.float32(-1e30))  # Adam's learning-rate variable
    back = read_bundle(rezip(files), LIMIT)
    assert float(back.optimizer.learning_rate.numpy()) == pytest.approx(back.config.learning_rate)
    slower = train(dataclasses.replace(back.config, epochs=1, learning_rate=1e-5, steps_per_epoch=2), data=mnist,
                   resume=back)
    assert float(slower.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)


def test_a_run_json_that_unpacks_far_beyond_its_packed_size_is_refused_before_it_is_parsed(bundle, monkeypatch):
    files = members(bundle)
    files["run.json"] = files["run.json"][:-1] + b" " * (4 * 2**20) + b"}"  # 4 MB of padding packs to a few KB
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("run.json was parsed"))
    with pytest.raises(LabError, match="unpacks"):
        read_bundle(rezip(files), LIMIT)
