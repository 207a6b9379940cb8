"""The app as a learner reaches it: `streamlit run` on a free loopback port, and Debian's Chromium.

Shared by the browser tests and `bench/class_load.py`, so both measure the same server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium"))
# Root runs Chromium without its sandbox; the rest keeps it off a network that is not there.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(env: dict | None = None, args: tuple[str, ...] = (), log: Path | None = None,
               preexec_fn=None, start_timeout: float = 60):
    """A fresh `streamlit run streamlit_app.py`; yields (url, process). `env` adds to the environment,
    `args` are more `streamlit run` options, `log` keeps the server's output. Its data folder is a new,
    empty one unless `env` names one (CNNLAB_DATA_DIR), as a restart test does to find its runs again."""
    port = free_port()
    scratch = tempfile.TemporaryDirectory(prefix="cnnlab-data-")
    env = {"CNNLAB_DATA_DIR": scratch.name, **(env or {})}
    output = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", *args], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
        env=os.environ | (env or {}), preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {process.returncode} before it served")
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start within {start_timeout:g} s") from None
                time.sleep(0.5)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log:
            output.close()
        scratch.cleanup()
