"""The house rules: the engine loads no web framework; the endpoint is wired by name from one table and serves
exactly that table; the Space starts without alarming output; an unexpected failure is answered clearly; the first
screen shows every example whole, in Chromium."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError

import space.request
from space import errors, limits, params
from style_transfer.config import StyleConfig, default_of, field_spec
from tests.serving import serve_app, stop_app

ROOT = Path(__file__).resolve().parents[1]
WEB_FRAMEWORKS = ("gradio", "gradio_client", "pandas", "spaces", "fastapi", "starlette", "uvicorn", "mcp")
CONFIG_FIELDS = {f.name for f in dataclasses.fields(StyleConfig)}


# --- The engine is only the engine ------------------------------------------------------------------------------
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import style_transfer
names = [m.name for m in pkgutil.walk_packages(style_transfer.__path__, "style_transfer.")]
for name in names:
    if name != "style_transfer.__main__":  # runs the CLI
        importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
"""


def test_engine_imports_no_web_framework():
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL % (WEB_FRAMEWORKS,)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    report = json.loads(out.splitlines()[-1])
    assert {"style_transfer.cli", "style_transfer.engine", "style_transfer.output"} <= set(report["modules"])
    assert report["loaded"] == [], "the engine package must not import web frameworks"


def test_engine_and_cli_import_without_gradio():
    code = "import sys, style_transfer, style_transfer.cli; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- One table ------------------------------------------------------------------------------------------------------
def test_every_output_format_has_one_suffix_read_back_as_that_format(tmp_path, monkeypatch):
    """The Space's download and the CLI's ``-o`` use the one suffix map (style_transfer/output.py): every format the
    config offers is written with a suffix that names that format again."""
    from PIL import Image

    from space import files
    from style_transfer.config import OUTPUT_FORMATS
    from style_transfer.engine import Frame
    from style_transfer.output import format_for, suffix_for

    monkeypatch.setattr(files, "RESULTS_DIR", tmp_path)
    frame = Frame(step=1, total_steps=1, image=Image.new("RGB", (8, 8)))
    for fmt in OUTPUT_FORMATS:
        assert format_for("x" + suffix_for(fmt)) == fmt
        assert Path(files.save_result(frame, StyleConfig(), fmt)).suffix == suffix_for(fmt)


def test_table_defaults_and_ranges_come_from_style_config():
    for param in params.PARAMS:
        if param.name in CONFIG_FIELDS:
            f = field_spec(param.name)
            assert param.default == default_of(f), param.name
            with gr.Blocks():
                component = param.make(param.default)
            if isinstance(component, (gr.Slider, gr.Number)):
                # the Space's own limit where it runs
                top = limits.max_size(torch.cuda.is_available()) if param.name == "size" else f.metadata["max"]
                assert (component.minimum, component.maximum) == (f.metadata["min"], top), param.name
            if isinstance(component, gr.Radio):
                assert [c[1] for c in component.choices] == list(f.metadata["choices"]), param.name
            # One help text per setting: the control's help and the API's description are the config's.
            assert component.info == f.metadata["help"], param.name
            assert param.doc.startswith(f.metadata["help"]), param.name


def test_served_endpoint_matches_the_table(client):
    import app

    served = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/stylize"]["parameters"]
    assert [p["parameter_name"] for p in served] == list(params.NAMES)
    for p in served:
        name = p["parameter_name"]
        default = app.endpoint.defaults[name]
        if default is params.REQUIRED:
            assert not p["parameter_has_default"], name
        else:
            assert p["parameter_has_default"] and p["parameter_default"] == default, name
        if name in CONFIG_FIELDS and name not in app.endpoint.overrides:
            assert p["parameter_default"] == default_of(field_spec(name)), name
    # The function, the event's inputs and the docs (API and MCP) are the table, in its order.
    signature = inspect.signature(app.stylize)
    assert list(signature.parameters) == list(params.NAMES)
    assert all(signature.parameters[n].default == app.endpoint.defaults[n] for n in params.NAMES)
    assert app.inputs == [app.endpoint.components[n] for n in params.NAMES]
    _, described, _ = gr.utils.get_function_description(app.stylize)
    assert all(described[n] == params.BY_NAME[n].doc for n in params.NAMES)


def test_app_wires_by_name():
    """No positional slicing of parameters or components in app.py (only the example file lists are cut)."""
    source = (ROOT / "app.py").read_text()
    sliced = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)
    ]
    assert all(text.split("[")[0].endswith("_EXAMPLES") for text in sliced), sliced
    assert "locals()" not in source


def test_endpoint_function_binds_by_name_and_position():
    endpoint = params.Endpoint({"size": 64})
    seen = []

    def run(values):
        seen.append(values)
        yield values

    fn = endpoint.function(run)
    assert inspect.isgeneratorfunction(fn) and fn.__name__ == "stylize"
    list(fn("c.png", "s.png", steps=3))
    list(fn(*["c.png", "s.png", 48]))
    assert seen[0]["size"] == 64 and seen[0]["steps"] == 3 and seen[0]["mask"] is None
    assert seen[1]["size"] == 48 and list(seen[1]) == list(params.NAMES)
    with pytest.raises(KeyError, match="not parameters"):
        params.Endpoint({"sise": 64})


def test_examples_fill_every_input_they_list_and_run(image_dir):
    """Cached examples need a value for every input they list (else Gradio warns at start-up); they run."""
    import app

    examples = app.examples
    names = app.endpoint.example_names()
    assert examples.inputs == app.endpoint.inputs(names)
    assert all(value is not None for row in examples.examples for value in row)
    row = dict(zip(names, examples.examples[0], strict=True))
    row.update(content=str(image_dir / "content.png"), style=str(image_dir / "style.png"), size=32, steps=2)
    final = list(examples.fn(*row.values()))[-1]
    assert final[3].startswith("Done: 2 steps") and final[4].endswith(".png")


def test_every_parameter_gets_a_component():
    endpoint = params.Endpoint()
    with gr.Blocks():
        with pytest.raises(LookupError, match="no component was laid out for: content"):
            endpoint.inputs()
        size = endpoint.component("size")
        rest = endpoint.remaining()
    assert endpoint.inputs()[2] is size and len(rest) == len(params.NAMES) - 1
    assert endpoint.remaining() == []


# --- Unexpected failures --------------------------------------------------------------------------------------------
def _fail_in_the_engine(monkeypatch, exc):
    import style_transfer.engine as engine

    def style_cost(*args, **kwargs):
        raise exc

    monkeypatch.setattr(engine.losses, "style_cost", style_cost)


def _fail_in_the_checks(monkeypatch, exc):
    def prepare(*args, **kwargs):
        raise exc

    monkeypatch.setattr(space.request, "prepare", prepare)


@pytest.mark.parametrize(("inject", "doing"), [(_fail_in_the_engine, "running"), (_fail_in_the_checks, "checking")])
def test_unexpected_failure_is_answered_and_the_server_keeps_working(
    client, style_path, monkeypatch, caplog, inject, doing
):
    detail = "detail-k7x2q at /home/someone/private/photo.png"
    inject(monkeypatch, ZeroDivisionError(detail))
    caplog.set_level(logging.ERROR, logger="space")
    image = handle_file(str(style_path))
    with pytest.raises(AppError) as info:
        client.submit(content=image, style=image, size=32, steps=2, api_name="/stylize").result(timeout=120)
    message = info.value.message
    assert info.value.title == errors.UNEXPECTED_TITLE
    assert doing in message and "unexpected error" in message and "ZeroDivisionError" in message
    assert "not caused by your images or settings" in message and "trying again is safe" in message
    assert "k7x2q" not in message and "/home" not in message
    logged = [r for r in caplog.records if r.name == "space.errors"]
    assert logged and logged[-1].exc_info and logged[-1].exc_info[0] is ZeroDivisionError  # with its traceback
    monkeypatch.undo()
    final = client.submit(content=image, style=image, size=32, steps=1, api_name="/stylize").result(timeout=120)
    assert final[3].startswith("Done: 1 step in ")


def test_gpu_function_raises_only_picklable_gr_errors(image_dir, model, monkeypatch):
    """On ZeroGPU the run is a forked worker: only a gr.Error reaches the user intact (pickled), so the stream
    itself must turn an unexpected failure into one."""
    import pickle

    import space.stream

    _fail_in_the_engine(monkeypatch, ZeroDivisionError("detail"))
    path = image_dir / "style.png"
    request = space.request.check_request({**params.Endpoint().defaults, "content": path, "style": path, "size": 32})
    with pytest.raises(gr.Error) as info:
        list(space.stream.stream(request, model))
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.title, copy.message) == (errors.UNEXPECTED_TITLE, info.value.message)
    assert "running the optimisation (ZeroDivisionError)" in copy.message


# --- Start-up ---------------------------------------------------------------------------------------------------
ALARMING = ("error", "traceback", "warning")


def test_python_app_py_starts_cleanly(tmp_path):
    """``python app.py`` as a newcomer runs it: nothing that looks like an error or a warning before it serves."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1",  # a terminal shows each line at once; a pipe would hold them back
        "GRADIO_EXAMPLES_CACHE": str(tmp_path / "examples_cache"),
    }
    if "PYTHONPATH" in os.environ:  # where extras may be installed
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc, _url = serve_app(["app.py"], env)
    try:
        time.sleep(3)  # start-up work that ends after the first answer (example caching set-up) prints by now
    finally:
        output = stop_app(proc)
    lines = output.splitlines()
    assert any("Running on local URL" in line for line in lines), output
    bad = [line for line in lines if any(word in line.lower() for word in ALARMING)]
    assert bad == [], output
    if importlib.util.find_spec("mcp") is None:  # without the extra: one line says MCP is off, nothing else
        assert sum("mcp" in line.lower() for line in lines) == 1, output


# --- The first screen -------------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Each example gallery's box, whether it scrolls, and each thumbnail's and caption's box and whether its text is cut.
GALLERY_GEOMETRY = """(id) => {
  const wrap = document.querySelector(`#${id} .grid-wrap`);
  const rect = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {
    box: rect(wrap),
    scrolls: wrap.scrollHeight > wrap.clientHeight + 1 || wrap.scrollWidth > wrap.clientWidth + 1,
    items: [...wrap.querySelectorAll('button.thumbnail-item')].map((b) => {
      const cap = b.querySelector('.caption-label');
      return {thumb: rect(b), caption: rect(cap), text: cap.textContent.trim(),
              cut: cap.scrollWidth > cap.clientWidth + 1 || cap.scrollHeight > cap.clientHeight + 1};
    }),
  };
}"""


def _inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0] - 1 and inner[1] >= outer[1] - 1 and inner[2] <= outer[2] + 1 and inner[3] <= outer[3] + 1
    )


@pytest.mark.system
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_first_screen_shows_every_example_and_a_readable_result(app_url):
    """At 1280x800 and 1920x1080 every example thumbnail and its whole caption is in view without scrolling inside
    its gallery or the page; a small result (32 px) fills the result box instead of sitting small in it."""
    from playwright.sync_api import expect, sync_playwright

    import app

    expected = {"content-gallery": app.CONTENT_EXAMPLES, "style-gallery": app.STYLE_EXAMPLES}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for width, height in ((1280, 800), (1920, 1080)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(app_url, wait_until="load")
                expect(page.locator("#run")).to_be_visible(timeout=60_000)
                page.wait_for_function("document.querySelectorAll('.examples img').length >= 22", timeout=30_000)
                screen = [0, 0, width, height]
                for elem_id, paths in expected.items():
                    g = page.evaluate(GALLERY_GEOMETRY, elem_id)
                    where = f"{elem_id} at {width}x{height}"
                    assert not g["scrolls"], where
                    assert [i["text"] for i in g["items"]] == [p.stem.replace("_", " ") for p in paths], where
                    for item in g["items"]:
                        assert _inside(item["thumb"], g["box"]) and _inside(item["thumb"], screen), (where, item)
                        assert _inside(item["caption"], item["thumb"]) and not item["cut"], (where, item)
                page.close()

            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(app_url, wait_until="load")
            page.locator("#content-gallery").get_by_label(re.compile(r"Thumbnail 1 of \d+")).click()
            page.locator("#style-gallery").get_by_label(re.compile(r"Thumbnail 1 of \d+")).click()
            for label, value in (("Output size (px)", 32), ("Steps", 2)):
                box = page.locator("#picture-tab").get_by_label(f"number input for {label}", exact=True)
                box.fill(str(value))
                box.press("Enter")
            page.locator("#run").click()
            expect(page.locator("#status textarea")).to_have_value(re.compile(r"^Done: 2 steps"), timeout=60_000)
            page.wait_for_function(  # the final image may still be on its way when the status says done
                "() => { const i = document.querySelector('#result img'); return i && i.complete && i.naturalWidth; }",
                timeout=30_000,
            )
            shown = page.evaluate(
                """() => { const img = document.querySelector('#result img'), r = img.getBoundingClientRect();
                  const k = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
                  return {natural: img.naturalWidth, box: [r.width, r.height], fit: getComputedStyle(img).objectFit,
                          drawn: [img.naturalWidth * k, img.naturalHeight * k]}; }"""
            )
            assert shown["natural"] == 32 and shown["fit"] == "contain", shown
            assert shown["drawn"][0] >= 0.99 * shown["box"][0] or shown["drawn"][1] >= 0.99 * shown["box"][1], shown
        finally:
            browser.close()
