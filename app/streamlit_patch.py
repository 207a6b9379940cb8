"""The one change CNN Lab makes to Streamlit's own behaviour.

After every script run Streamlit calls `script_runner._clean_problem_modules()`, which closes
matplotlib's figures and calls `keras.backend.clear_session()` to tidy up after apps that build
models in the script. Here models train on background threads while the pages redraw every few
seconds: each clear_session reset Keras's global state under a live run and forced a full
garbage collection, which slowed LeNet's training more than tenfold. So the lab replaces that
function with one that only closes the figures.

The function is private to Streamlit. If an upgrade renames or removes it, replacing it would
silently do nothing, so the patch refuses to start instead (and tests/test_app.py checks it).
"""

from __future__ import annotations

import sys

from streamlit.runtime.scriptrunner import script_runner

PATCHED = "_clean_problem_modules"


class StreamlitChanged(RuntimeError):
    """The installed Streamlit no longer has the function the lab replaces."""


def close_figures() -> None:
    """The half of Streamlit's clean-up the lab keeps: matplotlib's figures closed after every run."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def keep_keras_state_between_reruns() -> None:
    if not callable(getattr(script_runner, PATCHED, None)):
        raise StreamlitChanged(
            f"streamlit.runtime.scriptrunner.script_runner.{PATCHED} is gone from this Streamlit; CNN Lab "
            "replaces it so that Keras's state survives page reruns during training. Pin the Streamlit "
            "version in requirements.txt, or find the function that calls keras.backend.clear_session() now.")
    script_runner._clean_problem_modules = close_figures
