"""MCP: with the gradio[mcp] extra the stylize tool is listed; without it the app still starts and serves."""

import os

import httpx
import pytest

from tests.serving import serve_app, stop_app

BLOCK_MCP = "import sys, runpy; sys.modules['mcp'] = None; runpy.run_path('app.py', run_name='__main__')"


def _serve(args: list[str]):
    env = {**os.environ, "NST_MCP": "1", "GRADIO_ANALYTICS_ENABLED": "False", "NST_CACHE_EXAMPLES": "0"}
    return serve_app(args, env, timeout=120)


def test_mcp_tool_is_listed():
    pytest.importorskip("mcp")
    proc, url = _serve(["app.py"])
    try:
        schema = httpx.get(url + "/gradio_api/mcp/schema", timeout=30).json()
        names = [tool["name"] for tool in schema]
        assert any(name.endswith("stylize") for name in names), names
        assert any(name.endswith("stylize_video") for name in names), names
        assert len(names) == 2, "only the stylize and stylize_video endpoints are tools"
    finally:
        stop_app(proc)


def test_app_starts_without_the_mcp_extra():
    proc, url = _serve(["-c", BLOCK_MCP])
    try:
        info = httpx.get(url + "/gradio_api/info", timeout=30).json()
        assert "/stylize" in info["named_endpoints"]
    finally:
        stop_app(proc)
