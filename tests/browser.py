"""Headless Chromium (Debian's package) and `mlflow ui` for the tests that look at pages as a user does."""
import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from waiting import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Why a browser test skips, in one line.
NO_CHROMIUM = "no Chromium here: apt-get install chromium (Debian) runs the browser tests"


def rendered(url: str, profile: Path, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (Chromium's own flags for a closed network: nothing to Google)."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@contextlib.contextmanager
def served_ui(uri: str):
    """``mlflow ui`` on the store ``uri``, on a free port of 127.0.0.1; yields its address."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "ui", "--host", "127.0.0.1", "--port",
                               str(port), "--backend-store-uri", uri, "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(healthy, "answer from mlflow ui", timeout=120, process=server)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
