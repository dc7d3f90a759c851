"""Start the real ``python app.py`` in its own process group on a free loopback port, and stop it (start-up tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def serve_app(args: list[str], env: dict[str, str], timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Run ``python ARGS`` in the repository with ``env`` (plus a free port) until it answers; (process, URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: stopping it leaves no orphaned workers
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"app exited early:\n{proc.stdout.read()}")
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"app did not serve within {timeout:.0f} s:\n{proc.communicate(timeout=30)[0]}")


def stop_app(proc: subprocess.Popen) -> str:
    """Stop the whole process group; everything it printed."""
    os.killpg(proc.pid, signal.SIGTERM)
    return proc.communicate(timeout=30)[0]
