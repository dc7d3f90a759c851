"""Security probes against the launched app: one public endpoint, no file served or read outside Gradio's cache,
weights that cannot run code, no user data in the logs, temporary files deleted."""

from __future__ import annotations

import ast
import json
import logging
import socket
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from space import limits
from style_transfer.weights import WeightsError, load_conv_params

ROOT = Path(__file__).resolve().parents[1]
MARKER = "s3cret-m4rker-9f1c"


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """A file outside Gradio's cache that no request may read."""
    path = tmp_path_factory.mktemp("private") / "secret.txt"
    path.write_text(MARKER)
    return path


@pytest.fixture(scope="module")
def uploaded(app_url, style_path) -> str:
    """The server path of a file uploaded the normal way (inside the cache)."""
    with style_path.open("rb") as f:
        r = httpx.post(app_url + "gradio_api/upload", files={"files": ("style.png", f, "image/png")}, timeout=30)
    r.raise_for_status()
    return r.json()[0]


def _cache_dir() -> Path:
    import app

    return Path(app.result.GRADIO_CACHE).resolve()


# --- One public endpoint ---------------------------------------------------------------------------------------
def test_only_stylize_is_exposed(client, app_url, secret):
    import app

    api = client.view_api(print_info=False, return_format="dict")
    endpoints = ["/stylize", "/stylize_video"]  # the still image, the Video tab
    assert list(api["named_endpoints"]) == endpoints and api["unnamed_endpoints"] == {}
    info = httpx.get(app_url + "gradio_api/info", timeout=30).json()
    assert list(info["named_endpoints"]) == endpoints and info["unnamed_endpoints"] == {}
    public = [fn.api_name for fn in app.demo.fns.values() if fn.api_visibility != "private"]
    assert public == ["stylize", "stylize_video"]
    # The UI's private events (gallery picks, example loading) answer raw HTTP, as in every Gradio app; they only
    # index the fixed example lists, so whatever is sent they return an example file or an error. Stop's two
    # read and write only the caller's own session state (a gr.State is never taken from the request).
    private = {fn.api_name for fn in app.demo.fns.values() if fn.api_visibility == "private" and fn.fn is not None}
    allowed = {"pick", "pick_1", "load_example", "apply_preset", "mask_editor_value", "finish", "finish_video"}
    allowed |= {"load_example_1"}  # the Video tab's example clips
    assert private <= allowed, private
    hostile = {"index": str(secret), "value": {"path": str(secret)}}
    for name in sorted(private):
        for data in ([], [0], [str(secret)], [10**9]):
            r = httpx.post(app_url + f"gradio_api/call/{name}", json={"data": data, "event_data": hostile}, timeout=30)
            text = r.text
            if r.status_code == 200:
                with httpx.stream("GET", app_url + f"gradio_api/call/{name}/{r.json()['event_id']}", timeout=60) as s:
                    text += "".join(s.iter_lines())
            assert MARKER not in text, (name, data)
    for name in ("predict", "stylize_1", "run_on_gpu", "gpu"):
        r = httpx.post(app_url + f"gradio_api/call/{name}", json={"data": []}, timeout=30)
        assert r.status_code != 200, name  # Gradio answers unknown names with 404 or 500, never runs anything


# --- Files served ------------------------------------------------------------------------------------------------
def _probes(secret: Path, uploaded: str) -> list[str]:
    cache_entry = Path(uploaded).parent
    up = "../" * (len(cache_entry.parts) + 2)
    return [
        f"gradio_api/file={secret}",
        "gradio_api/file=/etc/passwd",
        "gradio_api/file=/proc/self/environ",
        f"gradio_api/file={ROOT / 'app.py'}",
        "gradio_api/file=app.py",
        f"gradio_api/file={ROOT / 'examples' / 'content' / 'cat.jpg'}",
        f"gradio_api/file={cache_entry}/{up}{str(secret).lstrip('/')}",
        f"gradio_api/file={cache_entry}/" + urllib.parse.quote(f"{up}{str(secret).lstrip('/')}", safe=""),
        "gradio_api/file=" + urllib.parse.quote(f"{up}{str(secret).lstrip('/')}", safe=""),
        f"gradio_api/file={up}{str(secret).lstrip('/')}",
        f"file={secret}",
        f"gradio_api/file={secret.parent}/%2e%2e/{secret.parent.name}/{secret.name}",
        f"static/{up}{str(secret).lstrip('/')}",
        f"assets/{up}{str(secret).lstrip('/')}",
    ]


def test_file_route_serves_the_cache_only(app_url, secret, uploaded):
    assert httpx.get(app_url + f"gradio_api/file={uploaded}", timeout=30).status_code == 200  # the probe works
    for probe in _probes(secret, uploaded):
        r = httpx.get(app_url + probe, timeout=30)
        assert r.status_code in (400, 403, 404), (probe, r.status_code)
        assert MARKER not in r.text and "root:" not in r.text, probe


def _call(app_url: str, content: object, style: object) -> tuple[str | None, str]:
    from tests.test_robustness import FEATURE_DEFAULTS

    data = [content, style, 32, 1, 5, 0.02, 1, 0, 1e4, 1.0, 0.0, "content", *FEATURE_DEFAULTS]
    r = httpx.post(app_url + "gradio_api/call/stylize", json={"data": data}, timeout=30)
    if r.status_code != 200:
        return None, r.text
    event, text = None, ""
    with httpx.stream("GET", app_url + f"gradio_api/call/stylize/{r.json()['event_id']}", timeout=120) as s:
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            text += line + "\n"
    return event, text


def test_inputs_pointing_outside_the_cache_are_refused(app_url, client, secret, uploaded):
    good = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
    cache_entry = Path(uploaded).parent
    hostile = [
        {"path": str(secret), "meta": {"_type": "gradio.FileData"}},
        {"path": str(ROOT / "app.py"), "meta": {"_type": "gradio.FileData"}},
        {"path": f"{cache_entry}/../../../../{str(secret).lstrip('/')}", "meta": {"_type": "gradio.FileData"}},
        {"path": None, "url": f"file://{secret}", "meta": {"_type": "gradio.FileData"}},
        {"path": None, "url": app_url + f"gradio_api/file={uploaded}", "meta": {"_type": "gradio.FileData"}},
        str(secret),
    ]
    for payload in hostile:
        for content, style in ((payload, good), (good, payload)):
            event, text = _call(app_url, content, style)
            assert event in ("error", None), (payload, text[:300])
            assert MARKER not in text
    # gradio_client with a URL to a private address: the server's SSRF guard refuses to fetch it.
    for url in (app_url + f"gradio_api/file={uploaded}", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(AppError):
            client.submit(content=handle_file(url), style=good, size=32, steps=1, api_name="/stylize").result(60)
    event, _ = _call(app_url, good, good)
    assert event == "complete"  # still serving


def test_results_live_in_the_cache(client, style_path):
    job = client.submit(
        content=handle_file(str(style_path)), style=handle_file(str(style_path)), size=32, steps=2, api_name="/stylize"
    )
    paths = []
    for image, compare, _plot, _status, _download in job:
        pair = [c["path"] for c in compare] if isinstance(compare, (list, tuple)) else []  # final update only
        paths += [image["path"], *pair] + ([_download["path"]] if _download else [])
    assert any(p.endswith(".png") and "stylized-" in p for p in paths)  # the final download is served too
    cache = _cache_dir()
    assert paths and all(Path(p).resolve().is_relative_to(cache) for p in paths), (cache, paths)


# --- Weights -----------------------------------------------------------------------------------------------------
def test_every_torch_load_uses_weights_only():
    calls = 0
    for path in [*sorted((ROOT / "style_transfer").rglob("*.py")), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "load") and node.args:
                if ast.unparse(node.func) == "load" and "torch" not in path.read_text():
                    continue
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kw and ast.literal_eval(kw["weights_only"]) is True, (path, node.lineno)
    assert calls >= 1


class _Exploit:
    """Pickles as a call to Path.touch: a weights file that would run code if loaded with weights_only=False."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_a_weights_file_cannot_run_code(tmp_path):
    pwned = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"block1_conv1_W": _Exploit(pwned)}, evil)
    with pytest.raises(WeightsError, match="Could not read weights file"):
        load_conv_params(str(evil))
    assert not pwned.exists()


# --- Logs ---------------------------------------------------------------------------------------------------------
SERVER_LOGGERS = ("style_transfer", "space", "gradio", "uvicorn", "fastapi", "starlette", "httpx", "safehttpx")


def _server_record(record: logging.LogRecord) -> bool:
    return any(record.name == n or record.name.startswith(n + ".") for n in SERVER_LOGGERS)


def test_no_user_data_in_the_logs(client, tmp_path, capfd, caplog):
    name = "holiday_k7x2q_private"
    good, bad = tmp_path / f"{name}.png", tmp_path / f"{name}_broken.png"
    Image.new("RGB", (40, 30), (90, 140, 200)).save(good)
    bad.write_text("not a picture")
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    final = client.submit(
        content=handle_file(str(good)), style=handle_file(str(good)), size=32, steps=1, api_name="/stylize"
    ).result(timeout=120)
    assert final[3].startswith("Done: 1 step in ")
    with pytest.raises(AppError, match="content image: not an image"):
        client.submit(
            content=handle_file(str(bad)), style=handle_file(str(good)), size=32, steps=1, api_name="/stylize"
        ).result(timeout=120)
    time.sleep(0.5)  # let the server threads finish writing
    out, err = capfd.readouterr()
    server_logs = "\n".join(r.getMessage() for r in caplog.records if _server_record(r))
    for text in (out, err, server_logs):
        assert name not in text and str(tmp_path) not in text
    assert "Traceback" not in err  # expected errors are answered, not logged as crashes
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("style_transfer", "space"))]
    assert any(m.startswith("request: content 32x24, 1 style(s), mask no") for m in ours), ours
    assert any(m == "request refused: ImageError" for m in ours), ours


# --- Temporary files ----------------------------------------------------------------------------------------------
def test_app_deletes_its_temporary_files():
    import app

    every, age = app.demo.delete_cache
    assert (every, age) == limits.DELETE_CACHE and every <= 3600 and age <= 2 * 3600


def test_gradio_delete_cache_removes_uploads(tmp_path, monkeypatch):
    """The mechanism the app relies on, shown with a short age on a throwaway app."""
    import gradio as gr

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    with gr.Blocks(delete_cache=(1, 1)) as demo:
        box = gr.Image(type="filepath")
        box.upload(lambda p: None, box, None, api_visibility="private")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        image = tmp_path / "x.png"
        Image.new("RGB", (8, 8)).save(image)
        with image.open("rb") as f:
            r = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", files={"files": ("x.png", f)}, timeout=30)
        stored = Path(json.loads(r.text)[0])
        assert stored.exists()
        deadline = time.monotonic() + 20
        while stored.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not stored.exists(), "the upload outlived delete_cache"
    finally:
        demo.close()
