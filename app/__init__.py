"""The app's own package: what the pages share, over cnnlab. Pages are short scripts over these.

    nav.py        every page's start: its title and icon, the sidebar's navigation and language
    resources.py  what the whole server shares, made once: datasets, the training pool, a pretrained network
    session.py    the learner's own runs, in this browser session
    text.py       the catalogue's texts in this session's language, and names and numbers as a learner reads them
    widgets.py    the pieces several pages draw: knob inputs, the test-image picker, a refusal, the drawing pad
    train.py      the Train page's panels
    streamlit_patch.py  the one change to Streamlit's own behaviour, checked against the installed version
    pad/          the drawing pad's HTML, CSS and JavaScript

Only this package imports Streamlit; cnnlab never does.
"""

from . import streamlit_patch

streamlit_patch.keep_keras_state_between_reruns()
