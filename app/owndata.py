"""The Your classes page's panels: make classes, add photos (files, a zip of folders, the camera), see each
class's images and remove any, and whether the classes are ready to train on."""

from __future__ import annotations

import streamlit as st

from cnnlab import owndata
from cnnlab.datasets import TEST_SHARE
from cnnlab.errors import LabError
from cnnlab.owndata import OwnData

from . import nav, session
from .nav import TRAIN_PAGE
from .text import plain, say, t
from .widgets import IMAGE_UPLOAD_MB, upscaled

GRID_COLUMNS = 6       # thumbnails per row: a phone shows them two or three to a row, stacked
SHOWN = 24             # thumbnails per class before "show all"
ZIP_MB = 200           # a zip of a class's photos: 500 phone photos shrunk to 400 KB each


def data() -> OwnData:
    return session.own_data()


def readable() -> bool:
    """Whether the workspace's list of classes can be read; if not, why, and a way to start over."""
    try:
        data().classes()
    except LabError as damaged:
        st.error(say(damaged))
        if st.button(t("own.start_over"), icon="🧹", type="primary"):
            data().start_over()
            st.rerun()
        return False
    return True


def _report(key: str) -> None:
    """What the last upload into `key` added and left out, kept across the rerun that cleared the uploader."""
    report = st.session_state.pop(f"own-report-{key}", None)
    if report is None:
        return
    added, skipped = report
    if added:
        st.success(t("own.added", count=added))
    for name, why in skipped[:10]:
        st.caption(t("own.skipped", name=plain(name), why=plain(say(why))))
    if len(skipped) > 10:
        st.caption(t("own.skipped_more", count=len(skipped) - 10))


def _uploaded(key: str, add) -> None:
    """Run `add` once for the files just uploaded, then clear the uploader (a new key) and say what happened."""
    try:
        result = add()
    except LabError as problem:
        st.session_state[f"own-error-{key}"] = problem.text
    else:
        st.session_state[f"own-report-{key}"] = (result.total, result.skipped)
    st.session_state[f"own-round-{key}"] = st.session_state.get(f"own-round-{key}", 0) + 1
    st.rerun()


def _error(key: str) -> None:
    problem = st.session_state.pop(f"own-error-{key}", None)
    if problem is not None:
        st.error(say(problem))


def new_class() -> None:
    """A name and a button: a new, empty class."""
    with st.form("own-new-class", clear_on_submit=True, border=False):
        name_col, add_col = st.columns([3, 1], vertical_alignment="bottom")
        name = name_col.text_input(t("own.class_name"), max_chars=owndata.MAX_NAME, placeholder=t("own.name_example"))
        if add_col.form_submit_button(t("own.add_class"), icon="➕", width="stretch"):
            try:
                data().add_class(name)
            except LabError as problem:
                st.error(say(problem))
            else:
                st.rerun()  # the readiness above counts the new class


def zip_upload() -> None:
    """A zip with one folder per class: classes made or joined by folder name."""
    with st.expander(t("own.zip_header"), icon="🗂️"):
        st.caption(t("own.zip_note", most=owndata.MAX_CLASSES))
        round_ = st.session_state.get("own-round-zip", 0)
        upload = st.file_uploader(t("own.zip_uploader"), type=["zip"], key=f"own-zip-{round_}", max_upload_size=ZIP_MB)
        _error("zip")
        _report("zip")
        if upload is not None:
            with st.spinner(t("own.reading")):
                _uploaded("zip", lambda: data().add_zip(upload.getvalue(), upload.name))


def camera() -> None:
    """Snapshots from the phone's or laptop's camera, each into the class chosen beside it."""
    classes = data().classes()
    if not classes:
        return
    with st.expander(t("own.camera_header"), icon="📷"):
        by_id = {c.id: c for c in classes}
        target = st.selectbox(t("own.camera_class"), list(by_id), format_func=lambda i: plain(by_id[i].name),
                              key="own-camera-class")
        if not st.toggle(t("own.camera_on"), key="own-camera-on"):
            st.caption(t("own.camera_note"))
            return
        shot = st.camera_input(t("own.camera_take"), key="own-camera")
        _error("camera")
        _report("camera")
        if shot is not None and st.session_state.get("own-camera-last") != shot.file_id:
            st.session_state["own-camera-last"] = shot.file_id  # a rerun shows the same snapshot: added once
            _uploaded("camera", lambda: data().add_images(target, [(t("own.snapshot"), shot.getvalue())]))


def classes() -> None:
    """Each class: its name, count, photos to add, its images with a remove button each."""
    own = data()
    found = own.classes()
    if not found:
        st.info(t("own.empty"))
        return
    for own_class in found:
        with st.container(border=True):
            name_col, count_col, remove_col = st.columns([3, 2, 2], vertical_alignment="center")
            name_col.subheader(plain(own_class.name))
            count_col.markdown(t("own.count", count=own_class.count))
            _rename(own, own_class, count_col)
            if remove_col.button(t("own.remove_class"), key=f"own-remove-{own_class.id}", icon="🗑️"):
                own.remove_class(own_class.id)
                st.rerun()
            if own_class.count < owndata.MIN_IMAGES:
                st.warning(t("own.too_few_images", name=plain(own_class.name), count=own_class.count,
                             least=owndata.MIN_IMAGES))
            key = f"files-{own_class.id}"
            round_ = st.session_state.get(f"own-round-{key}", 0)
            uploads = st.file_uploader(t("own.files_uploader", name=plain(own_class.name)), type=["png", "jpg", "jpeg"],
                                       accept_multiple_files=True, key=f"own-{key}-{round_}",
                                       max_upload_size=IMAGE_UPLOAD_MB)
            _error(key)
            _report(key)
            if uploads:
                with st.spinner(t("own.reading")):
                    _uploaded(key, lambda c=own_class.id, files=uploads: own.add_images(
                        c, [(u.name, u.getvalue()) for u in files]))
            _grid(own, own_class)


def _rename(own: OwnData, own_class, column) -> None:
    with column.popover(t("own.rename"), icon="✏️"), st.form(f"own-rename-{own_class.id}", border=False):
        name = st.text_input(t("own.new_name"), value=own_class.name, max_chars=owndata.MAX_NAME,
                             key=f"own-rename-name-{own_class.id}")
        if st.form_submit_button(t("own.rename")):
            try:
                own.rename_class(own_class.id, name)
            except LabError as problem:
                st.error(say(problem))
            else:
                st.rerun()


def _grid(own: OwnData, own_class) -> None:
    everything = st.session_state.get(f"own-all-{own_class.id}", False)
    shown = own_class.images if everything else own_class.images[:SHOWN]
    for start in range(0, len(shown), GRID_COLUMNS):
        for column, image_id in zip(st.columns(GRID_COLUMNS), shown[start:start + GRID_COLUMNS]):
            try:
                column.image(upscaled(own.pixels(image_id), 1), width="stretch")
            except LabError as gone:  # its file went missing: it can still be removed
                column.caption(say(gone))
            if column.button(t("own.remove_image"), key=f"own-remove-image-{image_id}", icon="✖️", width="stretch"):
                own.remove_image(own_class.id, image_id)
                st.rerun()
    if len(own_class.images) > SHOWN:
        st.toggle(t("own.show_all", count=own_class.count), key=f"own-all-{own_class.id}")


def readiness() -> None:
    """Whether the classes can be trained on; if so, the split the Train page will make, and a link to it."""
    own = data()
    problems = own.problems()
    if problems:
        st.info(t("own.not_ready", why=plain(say(problems[0]))))
        return
    found = own.classes()
    counts = [c.count for c in found]
    train, test = zip(*owndata.split_counts(counts))
    st.success(t("own.ready", classes=len(found), images=sum(counts), train=sum(train), test=sum(test),
                 share=f"{TEST_SHARE:.0%}"))
    nav.link(TRAIN_PAGE, label=t("own.to_train"), icon="📈", query={"data": "own"})

