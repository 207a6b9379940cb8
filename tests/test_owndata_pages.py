"""Your classes as a learner uses them: make classes, add photos by file, zip and camera, train on them
from the Train page, and see where the model errs on the Evaluate page."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.test_app import no_exceptions, page, runs_of, same_workspace, wait_for_run
from tests.test_owndata import png, zipped

OWN = "pages/11_Your_classes.py"


def jpeg_shot(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def classes_of(at) -> dict[str, int]:
    from app.resources import store

    own = store().own(at.session_state["workspace"])
    return {c.name: c.count for c in own.classes()}


def add_class(at, name: str):
    at.text_input[0].set_value(name)
    return no_exceptions(at.button(key="FormSubmitter:own-new-class-Add class").click().run())


def test_make_classes_add_several_files_and_see_them_after_a_reload():
    at = no_exceptions(page(OWN).run())
    assert "No classes yet" in at.info[-1].value
    add_class(at, "mug")
    add_class(at, "Mug")
    assert "already" in at.error[0].value and classes_of(at) == {"mug": 0}
    uploader = next(u for u in at.file_uploader if u.label.startswith("Add photos to mug"))
    uploader.set_value([(f"{i}.png", png(noise=i + 1), "image/png") for i in range(3)] +
                       [("notes.png", b"not a picture", "image/png")])
    no_exceptions(at.run())
    assert classes_of(at) == {"mug": 3}
    assert "Images added: 3." in [s.value for s in at.success]
    assert any(c.value.startswith("Left out notes") for c in at.caption)
    assert any("at least 5" in w.value for w in at.warning)  # too small to train on, with the minimum
    reloaded = no_exceptions(same_workspace(at, page(OWN)).run())
    assert classes_of(reloaded) == {"mug": 3} and len(reloaded.get("image")) >= 1


def test_a_zip_and_the_camera_fill_classes_and_the_page_says_it_is_ready():
    at = no_exceptions(page(OWN).run())
    data = zipped({"photos/red/" + f"{i}.png": png((240, 0, 0), noise=i + 1) for i in range(6)} |
                  {"photos/blue/" + f"{i}.png": png((0, 0, 240), noise=i + 1) for i in range(5)} |
                  {"photos/.DS_Store": b"junk"})
    at.file_uploader(key="own-zip-0").set_value(("photos.zip", data, "application/zip"))
    no_exceptions(at.run())
    assert classes_of(at) == {"red": 6, "blue": 5}
    at.toggle(key="own-camera-on").set_value(True).run()
    at.selectbox(key="own-camera-class").select_index(1)  # blue
    at.camera_input(key="own-camera").set_value(("shot.jpg", jpeg_shot((0, 0, 230)), "image/jpeg"))
    no_exceptions(at.run())
    no_exceptions(at.run())  # the same snapshot shown again is not added twice
    assert classes_of(at) == {"red": 6, "blue": 6}
    assert "Ready to train: 2 classes, 12 images" in at.success[0].value


def test_eleven_class_folders_are_refused_and_nothing_changes():
    at = no_exceptions(page(OWN).run())
    add_class(at, "keep")
    at.file_uploader(key="own-zip-0").set_value(
        ("many.zip", zipped({f"c{k}/1.png": png((k * 20, 0, 0)) for k in range(11)}), "application/zip"))
    no_exceptions(at.run())
    assert "up to 10 classes" in at.error[0].value and classes_of(at) == {"keep": 0}


def test_train_on_own_classes_then_open_a_confusion_cell():
    at = no_exceptions(page(OWN).run())
    rng = np.random.default_rng(0)
    entries = {}
    for name, colour in (("sun", (250, 200, 0)), ("sea", (0, 60, 200))):
        for i in range(8):
            pixels = np.clip(np.array(colour) + rng.integers(-25, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            entries[f"{name}/{i}.png"] = buffer.getvalue()
    at.file_uploader(key="own-zip-0").set_value(("two.zip", zipped(entries), "application/zip"))
    no_exceptions(at.run())
    train = same_workspace(at, page("pages/3_Train.py"))
    train.query_params["data"] = "own"
    no_exceptions(train.run())
    assert any("held out for the test, so 12 images to train on and 4 to test on" in c.value for c in train.caption)
    train.session_state["train-own-transfer-weights"] = "random"  # nothing is downloaded in the tests
    no_exceptions(train.run())
    assert any("random weights" in c.value for c in train.caption)
    next(b for b in train.button if b.label == "Start").click().run()
    wait_for_run(train, 180)
    run = runs_of(train)[-1]
    assert run.run.class_names == ("sun", "sea") and run.run.dataset["n_test"] == 4
    format_key = next(s.key for s in train.selectbox if s.label == "Format")
    train.selectbox(key=format_key).select_index(2).run()  # LiteRT: the phone's format
    next(b for b in train.button if b.label == "Prepare the download").click().run()
    no_exceptions(train)
    assert any(d.label.startswith("Download it as LiteRT") for d in train.get("download_button"))
    evaluate = no_exceptions(same_workspace(at, page("pages/5_Evaluate.py")).run())
    assert evaluate.metric[1].value == "4"
    assert evaluate.get("image"), "the cell's test images are shown with their probabilities"


def test_a_camera_snapshot_on_your_image_shows_what_the_net_sees_and_the_top_classes():
    at = no_exceptions(page(OWN).run())
    at.file_uploader(key="own-zip-0").set_value(("two.zip", zipped(
        {f"{name}/{i}.png": png(colour, noise=i + 1) for name, colour in (("sun", (250, 200, 0)), ("sea", (0, 60, 200)))
         for i in range(5)}), "application/zip"))
    no_exceptions(at.run())
    train = same_workspace(at, page("pages/3_Train.py"))
    train.query_params["data"] = "own"
    train.query_params["weights"] = "random"
    no_exceptions(train.run())
    next(b for b in train.button if b.label == "Start").click().run()
    wait_for_run(train, 180)
    mine = no_exceptions(same_workspace(at, page("pages/7_Your_image.py")).run())
    mine.radio[0].set_value("camera").run()
    mine.camera_input[0].set_value(("shot.jpg", jpeg_shot((250, 200, 0)), "image/jpeg"))
    no_exceptions(mine.run())
    seen = [img.caption for element in mine.get("image") for img in element.proto.imgs]
    assert "what the network receives: 96x96 RGB" in seen
    captions = " ".join(c.value for c in mine.caption)
    assert "Top classes: " in captions and "sun" in captions and "sea" in captions


def test_a_class_is_renamed_and_a_taken_name_is_refused():
    at = no_exceptions(page(OWN).run())
    add_class(at, "mug")
    add_class(at, "cup")
    from app.resources import store

    form = "FormSubmitter:own-rename-{}-Rename"
    ids = {c.name: c for c in store().own(at.session_state["workspace"]).classes()}
    cup = ids["cup"].id
    at.text_input(key=f"own-rename-name-{cup}").set_value("mug")
    no_exceptions(at.button(key=form.format(cup)).click().run())
    assert "already" in at.error[0].value and classes_of(at) == {"mug": 0, "cup": 0}
    at.text_input(key=f"own-rename-name-{cup}").set_value("teapot")
    no_exceptions(at.button(key=form.format(cup)).click().run())
    assert classes_of(at) == {"mug": 0, "teapot": 0}


def test_a_missing_image_and_a_damaged_list_leave_the_page_working():
    from app.resources import store

    at = no_exceptions(page(OWN).run())
    add_class(at, "mug")
    uploader = next(u for u in at.file_uploader if u.label.startswith("Add photos to mug"))
    uploader.set_value([(f"{i}.png", png(noise=i + 1), "image/png") for i in range(2)])
    no_exceptions(at.run())
    own = store().own(at.session_state["workspace"])
    (own.folder / f"{own.classes()[0].images[0]}.png").unlink()  # gone from the disk by hand
    no_exceptions(at.run())
    assert any("cannot be read any more" in c.value for c in at.caption)
    (own.folder / "classes.json").write_text("[]")
    no_exceptions(at.run())
    assert "cannot be read any more" in at.error[0].value
    next(b for b in at.button if b.label == "Start over").click().run()
    no_exceptions(at)
    assert classes_of(at) == {} and "No classes yet" in at.info[-1].value
