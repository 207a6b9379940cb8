"""A learner's own classes: what each way of adding images gives, and what each mistake says."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cnnlab import ModelConfig, TrainConfig, train
from cnnlab.bundle import bundle_bytes, read_bundle
from cnnlab.data import load_dataset, load_folder, load_npz, split
from cnnlab.errors import LabError
from cnnlab.features import FEATURES
from cnnlab.owndata import MAX_CLASSES, MIN_IMAGES, SIDE, OwnData, clean_name, zip_classes


def png(colour=(200, 30, 30), size=(120, 80), noise=0) -> bytes:
    pixels = np.full((size[1], size[0], 3), colour, np.uint8)
    if noise:
        pixels = np.clip(pixels + np.random.default_rng(noise).integers(-20, 20, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(colour=(30, 30, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def own(tmp_path):
    return OwnData(tmp_path / "own", max_images=60)


def files_on_disk(own) -> set[str]:
    return {p.name for p in own.folder.rglob("*")} if own.folder.exists() else set()


def test_several_files_at_once_join_one_class_at_the_working_size(own):
    cat = own.add_class("  my   cat ")
    added = own.add_images(cat.id, [("a.png", png()), ("b.jpg", jpeg()), ("notes.txt", b"hello")])
    assert clean_name("  my   cat ") == "my cat" and own.get(cat.id).count == 2 and added.total == 2
    assert [name for name, _ in added.skipped] == ["notes.txt"]  # the unreadable file is named, not fatal
    images = own.images(cat.id)
    assert images.shape == (2, SIDE, SIDE, 3) and images.dtype == np.uint8
    assert tuple(images[0, 0, 0]) == (200, 30, 30)


def test_a_zip_of_class_folders_inside_one_top_folder_makes_a_class_per_folder(own):
    data = zipped({"pets/cat/1.png": png(), "pets/cat/2.jpg": jpeg(), "pets/dog/1.png": png((0, 200, 0)),
                   "pets/.DS_Store": b"junk", "__MACOSX/pets/cat/._1.png": b"junk", "pets/dog/readme.txt": b"x"})
    added = own.add_zip(data, "pets.zip")
    assert {c.name: c.count for c in own.classes()} == {"cat": 2, "dog": 1}
    assert [name for name, _ in added.skipped] == ["pets/dog/readme.txt"]  # system files pass silently


def test_a_zip_merges_into_classes_of_the_same_name(own):
    cat = own.add_class("Cat")
    own.add_zip(zipped({"cat/1.png": png(), "mug/1.png": png((9, 9, 9))}))
    assert {c.name: c.count for c in own.classes()} == {"Cat": 1, "mug": 1} and own.get(cat.id).count == 1


def test_names_that_climb_out_of_the_zip_are_left_out_and_nothing_is_written_outside(own, tmp_path):
    data = zipped({"../evil/1.png": png(), "/abs/1.png": png(), "cat/../../x.png": png(), "cat/ok.png": png()})
    before = {p for p in tmp_path.rglob("*")}
    added = own.add_zip(data)
    assert {c.name: c.count for c in own.classes()} == {"cat": 1}
    assert len(added.skipped) == 3 and all("outside" in str(why) for _, why in added.skipped)
    written = {p for p in tmp_path.rglob("*")} - before
    assert all(own.folder in p.parents or p == own.folder for p in written)


def test_an_empty_zip_and_a_file_that_is_not_one_are_refused_with_nothing_changed(own):
    own.add_class("cat")
    before = files_on_disk(own)
    with pytest.raises(LabError, match="empty"):
        own.add_zip(zipped({}), "empty.zip")
    with pytest.raises(LabError, match="not a zip"):
        own.add_zip(b"not a zip at all", "photo.zip")
    with pytest.raises(LabError, match="No image"):
        own.add_zip(zipped({"loose.png": png()}))  # an image outside any class folder
    assert files_on_disk(own) == before and [c.name for c in own.classes()] == ["cat"]


def test_eleven_classes_are_refused_whole(own):
    data = zipped({f"class{k}/1.png": png((k * 20, 0, 0)) for k in range(MAX_CLASSES + 1)})
    with pytest.raises(LabError, match=f"up to {MAX_CLASSES} classes.*11"):
        own.add_zip(data)
    assert own.classes() == [] and files_on_disk(own) == set()
    for k in range(MAX_CLASSES):
        own.add_class(f"class {k}")
    with pytest.raises(LabError, match=f"up to {MAX_CLASSES} classes"):
        own.add_class("one more")


def test_a_duplicate_class_name_is_refused_whatever_its_case(own):
    own.add_class("Cat")
    with pytest.raises(LabError, match="called 'Cat' already"):
        own.add_class("cat")
    dog = own.add_class("dog")
    with pytest.raises(LabError, match="already"):
        own.rename_class(dog.id, "CAT")
    own.rename_class(dog.id, "puppy")
    assert [c.name for c in own.classes()] == ["Cat", "puppy"]
    with pytest.raises(LabError, match="name"):
        own.add_class("   ")


def test_a_class_too_small_to_train_on_says_the_minimum(own):
    cat, dog = own.add_class("cat"), own.add_class("dog")
    own.add_images(cat.id, [(f"{i}.png", png(noise=i + 1)) for i in range(MIN_IMAGES)])
    own.add_images(dog.id, [("1.png", png((0, 0, 250)))])
    problems = [str(p) for p in own.problems()]
    assert len(problems) == 1 and "dog" in problems[0] and str(MIN_IMAGES) in problems[0]
    with pytest.raises(LabError, match="dog"):
        own.freeze()


def test_the_server_limit_bounds_the_images_and_refuses_a_whole_upload(own):
    cat = own.add_class("cat")
    own.add_images(cat.id, [(f"{i}.png", png(noise=i + 1)) for i in range(58)])
    with pytest.raises(LabError, match="60 images"):
        own.add_images(cat.id, [(f"{i}.png", png()) for i in range(3)])
    assert own.get(cat.id).count == 58


def test_removing_an_image_or_a_class_removes_its_files(own):
    cat = own.add_class("cat")
    own.add_images(cat.id, [("a.png", png()), ("b.png", png((1, 2, 3)))])
    first = own.get(cat.id).images[0]
    own.remove_image(cat.id, first)
    assert own.get(cat.id).count == 1 and f"{first}.png" not in files_on_disk(own)
    own.remove_class(cat.id)
    assert own.classes() == [] and not any(name.endswith(".png") for name in files_on_disk(own))


def test_the_split_is_seeded_and_stratified_and_the_frozen_file_loads_with_its_names(own):
    for k, colour in enumerate([(250, 0, 0), (0, 250, 0)]):
        c = own.add_class(["rock", "paper"][k])
        own.add_images(c.id, [(f"{i}.png", png(colour, noise=i + 1)) for i in range(10)])
    path = own.freeze(seed=3)
    data = load_npz(path)
    assert data.class_names == ("rock", "paper") and list(data.class_counts("test")) == [2, 2]
    assert list(data.class_counts("train")) == [8, 8]
    assert own.freeze(seed=3) == path and own.freeze(seed=4) != path


def test_a_folder_of_class_folders_reads_as_keras_orders_it(tmp_path):
    for name, colour in (("zebra", (0, 0, 0)), ("apple", (255, 0, 0))):
        (tmp_path / name / "more").mkdir(parents=True)
        for i in range(5):
            (tmp_path / name / ("more" if i == 4 else "") / f"{i}.png").write_bytes(png(colour, noise=i + 1))
    (tmp_path / "apple" / "notes.txt").write_text("not an image")
    data = load_folder(tmp_path, seed=0)
    assert data.class_names == ("apple", "zebra") and len(data.x_train) + len(data.x_test) == 10
    assert list(data.class_counts("test")) == [1, 1]
    assert load_dataset(path=tmp_path).class_names == ("apple", "zebra")


def test_a_bad_folder_says_what_it_needs(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(LabError, match="one folder per class"):
        load_folder(tmp_path)
    (tmp_path / "other").mkdir()
    with pytest.raises(LabError, match="no PNG or JPEG"):
        load_folder(tmp_path)


def test_split_holds_out_a_share_of_every_class():
    y = np.array([0] * 10 + [1] * 3)
    data = split(np.zeros((13, 2, 2, 3), np.uint8), y, ("a", "b"), seed=1)
    assert list(data.class_counts("test")) == [2, 1] and list(data.class_counts("train")) == [8, 2]


def test_zip_classes_reads_only_bytes():
    folders, skipped = zip_classes(zipped({"a/1.png": png(), "a/2.png": png()}))
    assert list(folders) == ["a"] and len(folders["a"]) == 2 and skipped == []


PATTERNS = {"stripes": (0, 230), "bars": (1, 40), "grey": (None, 128)}  # (lines along axis, brightness)


def pattern(name: str, rng, side: int = 96) -> bytes:
    """A PNG of one of PATTERNS, with noise: bright horizontal stripes, dark vertical bars or a flat grey,
    different to any base, random or trained."""
    axis, level = PATTERNS[name]
    pixels = np.full((side, side, 3), level if axis is None else 0, np.uint8)
    if axis is not None:
        lines = [slice(None), slice(None)]
        lines[axis] = slice(int(rng.integers(0, 4)), None, 8)
        pixels[tuple(lines)] = level
    noisy = np.clip(pixels + rng.integers(0, 30, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="PNG")
    return buffer.getvalue()


def two_clear_classes(own, per_class: int = 12):
    rng = np.random.default_rng(0)
    for name in ("stripes", "bars"):
        made = own.add_class(name)
        own.add_images(made.id, [(f"{i}.png", pattern(name, rng)) for i in range(per_class)])


def test_transfer_learns_two_clear_classes_and_reuses_their_features(tmp_path):

    """Nothing is downloaded here, so the base keeps random weights: VGG16's (a random MobileNetV2's
    features fade to about 1e-12 through its unfitted batch normalisations, as the Train page warns)."""
    own = OwnData(tmp_path / "own")
    two_clear_classes(own)
    path = own.freeze(seed=0)
    model = ModelConfig("transfer", input_size=96, knobs={"base": "vgg16", "weights": "random"})
    first = train(TrainConfig(model, data_path=str(path), epochs=5, batch_size=8, seed=0))
    assert first.test_accuracy > 0.9 and first.class_names == ("stripes", "bars")
    computed = FEATURES.misses
    again = train(TrainConfig(model, data_path=str(path), epochs=5, batch_size=8, learning_rate=3e-3, seed=0))
    assert FEATURES.misses == computed, "the second run's features come from the cache"
    assert again.test_accuracy > 0.9
    data = load_npz(path)
    back = read_bundle(bundle_bytes(again), 2**30)  # as the pages read a finished run: its head's statistics too
    assert np.allclose(back.model.predict(data.x_test, verbose=0), again.model.predict(data.x_test, verbose=0),
                       atol=1e-5)


def test_a_workspaces_classes_live_in_its_own_folder_and_go_with_it(tmp_path):
    from cnnlab.workspaces import open_store

    store = open_store(tmp_path / "data")
    mine, theirs = store.create_workspace(), store.create_workspace()
    store.own(mine).add_images(store.own(mine).add_class("cat").id, [("a.png", png())])
    store.own(theirs).add_class("dog")
    assert [c.name for c in store.own(mine).classes()] == ["cat"] and mine not in str(store.own(mine).folder)
    assert [c.name for c in open_store(tmp_path / "data").own(mine).classes()] == ["cat"]  # a restarted server
    folder = store.own(mine).folder
    store.delete_workspace(mine)
    assert not folder.exists() and [c.name for c in store.own(theirs).classes()] == ["dog"]


def test_a_zip_that_inflates_far_past_its_photos_is_refused_before_it_is_read(own):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(5):
            archive.writestr(f"c{i % 2}/{i}.png", b"\0" * (8 * 2**20))  # 40 MB of zeros in a zip of 40 KB
    with pytest.raises(LabError, match="inflate"):
        own.add_zip(buffer.getvalue(), "bomb.zip")
    assert own.classes() == []


def test_more_images_than_there_is_room_for_is_refused_before_any_is_decoded(own, monkeypatch):
    import cnnlab.owndata as owndata

    decoded = []
    monkeypatch.setattr(owndata, "read_image", lambda *a, **k: decoded.append(1))
    with pytest.raises(LabError, match="room for 60 more"):
        own.add_zip(zipped({f"c/{i}.png": png() for i in range(61)}))
    with pytest.raises(LabError, match="60 images"):
        own.add_images(own.add_class("c").id, [(f"{i}.png", png()) for i in range(61)])
    assert decoded == []


def test_a_damaged_member_is_left_out_and_the_rest_is_added(own):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat/good.png", png())
        archive.writestr("cat/bad.png", png((1, 2, 3), noise=5))
    data = bytearray(buffer.getvalue())
    start = data.index(b"cat/bad.png") + len(b"cat/bad.png")  # the local header's name, then its deflated bytes
    data[start + 10: start + 60] = bytes(50)
    added = own.add_zip(bytes(data))
    assert added.added == {"cat": 1} and [name for name, _ in added.skipped] == ["cat/bad.png"]


def test_a_stray_file_beside_the_class_folders_does_not_merge_them(own):
    added = own.add_zip(zipped({"photos/cover.png": png(), "photos/red/1.png": png(), "photos/blue/1.png": png()}))
    assert {c.name for c in own.classes()} == {"red", "blue"}
    assert [name for name, _ in added.skipped] == ["photos/cover.png"]


def test_names_that_read_the_same_are_one_class_and_the_message_names_the_one_there(own):
    own.add_class("Straße")
    for same in ("STRASSE", "ｓｔｒａßｅ"):
        with pytest.raises(LabError, match="called 'Straße' already"):
            own.add_class(same)
    with pytest.raises(LabError, match="Give the class a name"):
        own.add_class("\u0301")  # a lone accent is not a name


def test_a_missing_image_file_is_named_and_a_damaged_list_can_be_started_over(own):
    cat = own.add_class("cat")
    own.add_images(cat.id, [("a.png", png())])
    image_id = own.get(cat.id).images[0]
    (own.folder / f"{image_id}.png").unlink()
    with pytest.raises(LabError, match="cannot be read any more"):
        own.pixels(image_id)
    (own.folder / "classes.json").write_text('{"classes": [')
    with pytest.raises(LabError, match="list of your classes cannot be read"):
        own.classes()
    own.start_over()
    assert own.classes() == []


def test_a_phone_photo_taken_upright_is_kept_upright_and_16_bit_grey_keeps_its_shade(own):
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40], pixels[:, 40:] = (0, 0, 255), (255, 0, 0)
    photo = Image.fromarray(pixels)
    exif = photo.getexif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif.tobytes())
    grey = io.BytesIO()
    Image.fromarray(np.full((50, 50), 128 * 257, np.uint16)).save(grey, format="PNG")
    cat = own.add_class("cat")
    own.add_images(cat.id, [("upright.jpg", buffer.getvalue()), ("deep.png", grey.getvalue())])
    upright, deep = own.images(cat.id)
    assert upright[5, 48, 2] > 200 and upright[90, 48, 0] > 200  # blue on top, red below, as the phone showed it
    assert abs(int(deep[10, 10, 0]) - 128) <= 1


def test_a_class_folder_with_one_image_and_hostile_class_names_are_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "one" / name).mkdir(parents=True)
        (tmp_path / "one" / name / "1.png").write_bytes(png())
    with pytest.raises(LabError, match="at least 2 images"):
        load_folder(tmp_path / "one")
    x = np.zeros((2, 4, 4, 3), np.uint8)
    np.savez(tmp_path / "names.npz", x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([0, 1]),
             class_names=np.array(["same", "same"]))
    assert load_npz(tmp_path / "names.npz").class_names == ("class 0", "class 1")
