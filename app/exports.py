"""A finished run's network as one file to take anywhere (cnnlab.exports): a format to pick, then
its package to download."""

from __future__ import annotations

import streamlit as st

from cnnlab.exports import FORMATS, export_package, unavailable

from .text import say, t
from .widgets import refusal

HELD = "export-package"  # the session's one prepared package: (name, format, bytes)


def download(model, class_names, name: str) -> None:
    """The format select and, once the learner asks for it, the package's download button. The
    export runs only on "Prepare" (seconds, and ONNX takes about 60 times the weights in memory),
    and the session keeps only the package last prepared. `name` is the run's, for the widgets'
    keys and the file's name (`lenet5_run3` gives lenet5_run3_onnx.zip)."""
    st.subheader(t("exports.title"))
    st.caption(t("exports.caption"))
    fmt = st.selectbox(t("exports.format"), list(FORMATS), format_func=lambda each: t(f"exports.formats.{each}"),
                       key=f"export-format-{name}")
    problem = unavailable(fmt)
    if problem is not None:
        st.info(say(problem))
        return
    held = st.session_state.get(HELD)
    if held is None or held[:2] != (name, fmt):
        if not st.button(t("exports.prepare"), key=f"export-prepare-{name}", help=t("exports.prepare_help")):
            return
        st.session_state.pop(HELD, None)  # the earlier package goes before the next one is made
        with refusal(stop=False), st.spinner(t("exports.preparing")):
            st.session_state[HELD] = (name, fmt, export_package(model, class_names, fmt))
        held = st.session_state.get(HELD)
        if held is None:  # refused: the warning says why
            return
    st.download_button(t("exports.download", format=FORMATS[fmt].title), held[2], file_name=f"{name}_{fmt}.zip",
                       mime="application/zip", on_click="ignore", key=f"export-download-{name}")
