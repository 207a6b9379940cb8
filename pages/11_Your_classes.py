"""Your classes: name 2 to 10 classes, add photos to each (files, a zip of folders, the camera), then train on them."""

import streamlit as st

from app import nav, owndata, session
from app.text import t

nav.page("own")
st.title(t("own.title"))
st.caption(t("own.intro"))
if session.read_only():
    st.info(t("own.read_only"))
    st.stop()
if not owndata.readable():
    st.stop()
owndata.readiness()
owndata.new_class()
owndata.zip_upload()
owndata.camera()
owndata.classes()
