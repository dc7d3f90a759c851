"""MCP: with the gradio[mcp] extra the stylize tool is listed; without it the app still starts and serves."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK_MCP = "import sys, runpy; sys.modules['mcp'] = None; runpy.run_path('app.py', run_name='__main__')"


def _serve(args: list[str]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "NST_MCP": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "NST_CACHE_EXAMPLES": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
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
    raise AssertionError("app did not start in 120 s")


def _stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group: no orphaned workers
    proc.wait(timeout=30)


def test_mcp_tool_is_listed():
    pytest.importorskip("mcp")
    proc, url = _serve(["app.py"])
    try:
        schema = httpx.get(url + "/gradio_api/mcp/schema", timeout=30).json()
        names = [tool["name"] for tool in schema]
        assert any(name.endswith("stylize") for name in names), names
        assert len(names) == 1, "only the stylize endpoint is a tool"
    finally:
        _stop(proc)


def test_app_starts_without_the_mcp_extra():
    proc, url = _serve(["-c", BLOCK_MCP])
    try:
        info = httpx.get(url + "/gradio_api/info", timeout=30).json()
        assert "/stylize" in info["named_endpoints"]
    finally:
        _stop(proc)
