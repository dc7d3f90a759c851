"""Every kind of bad input gets a correct result or a clear message, through gradio_client, the CLI and the browser;
cancelled and disconnected runs stop and give their memory back; a run that diverges or runs out of time ends with
its best image.

The server is the in-process app of ``conftest.app_url``, so these tests can watch its model and monkeypatch it.
"""

from __future__ import annotations

import gc
import io
import json
import math
import pickle
import random
import re
import shutil
import struct
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.client import Status
from gradio_client.exceptions import AppError
from PIL import Image

import space.stop
import space.stream
import style_transfer.engine as engine
from space import limits as space_limits
from space import params
from space.request import check_request
from style_transfer import cli, limits
from style_transfer.config import StyleConfig
from style_transfer.engine import Frame
from style_transfer.images import load_image, resize_longest
from style_transfer.output import read_settings
from style_transfer.terms import TermValue
from tests.conftest import make_content, make_style

ROOT = Path(__file__).resolve().parents[1]
SIZE = 48  # output size for the input cases (longest side)


# --- The inputs ------------------------------------------------------------------------------------------------
def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height with a tiny body: must be refused from the header alone."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + body + _png_chunk(b"IEND", b"")


def _gif_header_only(width: int, height: int) -> bytes:
    frame = _encode(Image.new("P", (4, 4), 1), "GIF")
    return frame[:6] + struct.pack("<HH", width, height) + frame[10:]


def _corrupt_jpeg() -> bytes:
    """Noise over part of the entropy-coded scan (no new markers): decodes, with visible damage."""
    data = bytearray(_encode(make_content(64, 48), "JPEG", quality=90))
    sos = data.index(b"\xff\xda")
    rng = random.Random(0)
    for i in range(sos + 30, sos + 130):
        data[i] = rng.randrange(0, 0xFF)
    return bytes(data)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    data = bytearray(_encode(make_content(64, 48), "PNG"))
    data[data.index(b"IDAT") + 20] ^= 0xFF  # flips bits in the compressed stream
    return bytes(data)


def _png_16bit() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (48, 1))
    return _encode(Image.fromarray(ramp), "PNG")  # mode I;16: Gradio's own conversion would clip this to white


def _tiff_16bit() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 48, dtype=np.uint16)[:, None], (1, 64))
    return _encode(Image.fromarray(ramp), "TIFF")


def _cmyk_jpeg() -> bytes:
    return _encode(make_content(64, 48).convert("CMYK"), "JPEG", quality=95)


def _palette_transparent() -> bytes:
    img = Image.new("P", (64, 48), 0)
    img.putpalette([0, 0, 0] + [30, 160, 60] * 255)
    img.paste(1, (16, 12, 48, 36))
    return _encode(img, "PNG", transparency=0)  # index 0 (black) is transparent: must become white, not black


def _rgba() -> bytes:
    img = make_content(64, 48).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((64, 48)))
    return _encode(img, "PNG")


def _frames() -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), (230, 30, 30)), Image.new("RGB", (64, 48), (30, 30, 230))]


def _animated_gif() -> bytes:
    first, *rest = _frames()
    return _encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def _animated_webp() -> bytes:
    first, *rest = _frames()
    return _encode(first, "WEBP", save_all=True, append_images=rest, duration=100, lossless=True)


def _exif_rotated() -> bytes:
    img = make_content(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, "rotate 90° clockwise to display": upright it is portrait
    return _encode(img, "JPEG", exif=exif.tobytes(), quality=95)


@dataclass(frozen=True)
class Case:
    name: str  # file name as uploaded
    build: object  # () -> bytes
    error: str | None = None  # regex of the message, or None for a correct result


CASES = {
    "corrupt_jpeg": Case("photo.jpg", _corrupt_jpeg),  # damaged scan data still decodes: a (damaged) picture
    "truncated_jpeg": Case("photo.jpg", lambda: _encode(make_content(64, 48), "JPEG")[:600], "damaged or truncated"),
    "corrupt_png": Case("photo.png", _corrupt_png, "damaged or truncated"),
    "truncated_png": Case("photo.png", lambda: _half(_encode(make_content(64, 48), "PNG")), "damaged or truncated"),
    "text_named_png": Case("photo.png", lambda: b"this is not a picture\n", "not an image, or a format"),
    "empty_file": Case("photo.png", lambda: b"", "the file is empty"),
    "1x1": Case("dot.png", lambda: _encode(Image.new("RGB", (1, 1), (200, 120, 40)), "PNG"), "too small"),
    "2x2000": Case("strip.png", lambda: _encode(Image.new("RGB", (2, 2000), (200, 120, 40)), "PNG"), "too narrow"),
    "png_16bit": Case("deep.png", _png_16bit),
    "tiff_16bit": Case("deep.tif", _tiff_16bit),
    "cmyk_jpeg": Case("print.jpg", _cmyk_jpeg),
    "palette_transparency": Case("logo.png", _palette_transparent),
    "rgba": Case("cutout.png", _rgba),
    "animated_gif": Case("anim.gif", _animated_gif),
    "animated_webp": Case("anim.webp", _animated_webp),
    "exif_rotated": Case("phone.jpg", _exif_rotated),
    "bomb_30000_png": Case("bomb.png", lambda: _png_header_only(30000, 30000), "too large"),
    "bomb_30000_gif": Case("bomb.gif", lambda: _gif_header_only(30000, 30000), "too large"),
    "heic": Case("photo.heic", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64, "HEIC"),
    "svg": Case("drawing.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "SVG"),
    "pdf": Case("scan.pdf", lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_inputs")
    paths = {}
    for kind, case in CASES.items():
        (d / kind).mkdir()
        paths[kind] = d / kind / case.name
        paths[kind].write_bytes(case.build())
    make_style().save(d / "style.png")
    paths["style"] = d / "style.png"
    return paths


def _reference(path: Path) -> Image.Image:
    """What a correct result starts from: the engine's own reading of the file, at the output size."""
    return resize_longest(load_image(path), SIZE)


def _fetch(image: dict) -> Image.Image:
    with Image.open(io.BytesIO(httpx.get(image["url"], timeout=30).content)) as img:
        return img.convert("RGB")


def _submit(client, content, style, **kw):
    args = {"size": SIZE, "steps": 1, "preview_every": 1, **kw}
    return client.submit(content=content, style=style, api_name="/stylize", **args)


def _server_still_answers(client, style_path):
    final = _submit(client, handle_file(str(style_path)), handle_file(str(style_path)), size=32).result(timeout=120)
    assert final[3].startswith("Done: 1 step in ")


# --- Bad images through gradio_client ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(CASES))
def test_image_through_client(client, files, kind):
    case = CASES[kind]
    content = handle_file(str(files[kind]))
    if case.error:
        with pytest.raises(AppError, match=case.error) as info:
            _submit(client, content, handle_file(str(files["style"]))).result(timeout=120)
        assert info.value.message.startswith("content image: ")
        assert "Traceback" not in info.value.message and str(files[kind].parent) not in info.value.message
    else:
        job = _submit(client, content, handle_file(str(files["style"])))
        updates = list(job)
        assert updates[-1][3].startswith("Done: 1 step in "), updates[-1][3]
        first = _fetch(updates[0][0])  # step 0 is the starting image: the content as the app read it
        expected = _reference(files[kind])
        assert first.size == expected.size
        diff = np.abs(np.asarray(first, dtype=np.float32) - np.asarray(expected, dtype=np.float32)).mean()
        assert diff < 2.0, f"the app read the file differently from the engine's loader (mean diff {diff:.1f})"
        assert np.asarray(first).mean() > 20, "black image"
    _server_still_answers(client, files["style"])


def test_style_image_errors_name_the_style(client, files):
    with pytest.raises(AppError, match=r"^style image: .*too large"):
        _submit(client, handle_file(str(files["style"])), handle_file(str(files["bomb_30000_png"]))).result(120)


def test_correct_results_are_right(files):
    """What the cases above compare against is itself right: upright, first frame, white behind transparency."""
    assert _reference(files["exif_rotated"]).size == (36, 48)  # portrait: the EXIF rotation was applied
    assert _reference(files["animated_gif"]).getpixel((5, 5))[0] > 200  # the first (red) frame
    assert _reference(files["animated_webp"]).getpixel((5, 5))[0] > 200
    assert _reference(files["palette_transparency"]).getpixel((1, 1)) == (255, 255, 255)
    ramp = np.asarray(_reference(files["png_16bit"]))[:, :, 0]
    assert ramp[:, 0].mean() < 10 and ramp[:, -1].mean() > 245  # scaled from 16 bits, not clipped
    assert np.asarray(_reference(files["cmyk_jpeg"])).std() > 20


def test_upload_over_the_limit(client, files, app_url, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(files["1x1"].read_bytes() + b"\0" * (space_limits.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks first
        _submit(client, handle_file(str(big)), handle_file(str(files["style"]))).result(timeout=60)
    with big.open("rb") as f:  # a client that does not check gets 413 from the server
        r = httpx.post(app_url + "gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    _server_still_answers(client, files["style"])


def test_data_url_image(app_url, files):
    """The API also takes images as data: URLs (MCP clients send those); they go through the same loader."""
    import base64

    def data_url(path):
        url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        return {"path": None, "url": url, "meta": {"_type": "gradio.FileData"}}

    ok = _rest_call(app_url, [data_url(files["rgba"]), data_url(files["style"]), 32, 1, 5, 0.02, 1])
    assert ok[0] == "complete"
    bad = _rest_call(app_url, [data_url(files["heic"]), data_url(files["style"]), 32, 1, 5, 0.02, 1])
    assert bad[0] == "error" and "content image: HEIC" in bad[1]["error"]


# --- Bad settings ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("size", 0, r"^size: Value 0 is less than minimum value 32"),
        ("size", limits.MAX_SIZE + 1, rf"^size: Value {limits.MAX_SIZE + 1} is greater than maximum value"),
        ("size", -64, r"^size: Value -64 is less than"),
        ("size", "big", r"^size: expected a finite number, got 'big'"),
        ("size", None, r"^size: expected a finite number, got None"),
        ("size", 40.5, r"^size: expected a whole number, got 40.5"),
        ("steps", limits.MAX_STEPS + 1, r"^steps: Value 5001 is greater than maximum value 5000"),
        ("steps", [1, 2], r"^steps: expected a finite number, got \[1, 2\]"),
        ("style_strength", -1, r"^style_strength: Value -1 is less than minimum value 0"),
        ("learning_rate", 0, r"^learning_rate: Value 0 is less than minimum value"),
        ("preview_every", 0, r"^preview_every: Value 0 is less than minimum value 1"),
        ("seed", -1, r"^seed: Value -1 is less than minimum value 0"),
        ("seed", "x", r"^seed: expected a finite number, got 'x'"),
        ("content_weight", -1, r"^content_weight: Value -1 is less than minimum value 0"),
        ("style_weight", 1e30, r"^style_weight: Value 1e\+30 is greater than maximum value"),
        ("tv_weight", "0.1", r"^tv_weight: expected a finite number, got '0.1'"),
        ("init", "zeros", r"^init: Value: 'zeros'"),
        ("init", 3, r"^init: Value: 3"),
    ],
)
def test_bad_setting_through_client(client, files, name, value, message):
    style = handle_file(str(files["style"]))
    with pytest.raises(AppError, match=message) as info:
        _submit(client, style, style, **{"size": 32, name: value}).result(timeout=60)
    assert info.value.title == "Invalid input"


def test_all_weights_zero_is_refused(client, files):
    style = handle_file(str(files["style"]))
    with pytest.raises(AppError, match="at least one must be above 0"):
        _submit(client, style, style, size=32, content_weight=0, style_weight=0, tv_weight=0).result(timeout=60)


def test_nan_and_inf_cannot_be_sent_by_gradio_client(client, files):
    style = handle_file(str(files["style"]))
    with pytest.raises(ValueError, match="not JSON compliant"):  # refused on the client, before any request
        _submit(client, style, style, size=float("nan")).result(timeout=60)


def _upload(app_url: str, path: Path) -> dict:
    with path.open("rb") as f:
        r = httpx.post(app_url + "gradio_api/upload", files={"files": (path.name, f, "image/png")}, timeout=30)
    r.raise_for_status()
    return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}


# Raw REST needs every input: the values of stylize()'s parameters after the ten settings, at their defaults
# (style_2, style_3, three blend weights, preserve_colors, style_scale, scales, optimizer, pooling, precision,
# mask, background_style, output_format).
FEATURE_DEFAULTS = [None, None, 1, 1, 1, "none", 1.0, 1, "adam", "max", "auto", None, None, "png"]


def _rest_call(app_url: str, data: list, *, raw: str | None = None, timeout: float = 120) -> tuple[str, object]:
    """POST /gradio_api/call/stylize with a JSON body (``raw`` may hold NaN literals); the last SSE event."""
    settings = [32, 1, 5, 0.02, 1, 0, 1e4, 1.0, 0.0, "content"]
    body = raw if raw is not None else json.dumps({"data": [*data, *settings[len(data) - 2 :], *FEATURE_DEFAULTS]})
    r = httpx.post(app_url + "gradio_api/call/stylize", content=body, headers={"content-type": "application/json"})
    r.raise_for_status()
    event, payload = None, None
    with httpx.stream("GET", app_url + f"gradio_api/call/stylize/{r.json()['event_id']}", timeout=timeout) as s:
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = json.loads(line.split(":", 1)[1])
    return event, payload


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("index", range(10))
def test_nan_and_inf_over_raw_http(app_url, files, literal, index):
    """A client that does send NaN/inf (JSON extensions) gets a message naming the setting, for every setting."""
    image = json.dumps(_upload(app_url, files["style"]))
    values = ["32", "1", "5", "0.02", "1", "0", "10000.0", "1.0", "0.0", '"content"']
    values[index] = literal
    extra = [json.dumps(v) for v in FEATURE_DEFAULTS]
    event, payload = _rest_call(app_url, [], raw='{"data": [' + ",".join([image, image, *values, *extra]) + "]}")
    name = params.NAMES[2 + index]
    assert event == "error", payload
    if name == "init":
        assert payload["error"].startswith("init: Value: ")
    else:
        assert payload["error"].startswith(f"{name}: "), payload
        assert re.search(
            r"finite|whole number|outside the allowed range|than (minimum|maximum) value", payload["error"]
        )


# --- The CLI ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(CASES))
def test_image_through_cli(capsys, files, tmp_path, kind):
    case = CASES[kind]
    out = tmp_path / "out.png"
    code = cli.main([str(files[kind]), str(files["style"]), "-o", str(out), "-q", "--size", str(SIZE), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    if case.error:
        assert code == cli.EXIT_IMAGE, err
        assert err.startswith("error: content image: ") and "\n" not in err and re.search(case.error, err)
        assert not out.exists()
    else:
        assert code == cli.EXIT_OK, err
        with Image.open(out) as img:
            assert img.size == _reference(files[kind]).size and np.asarray(img.convert("RGB")).mean() > 20


# --- Cancellation, disconnects, memory ---------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on some torch objects warns about deprecations
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def _settled(counter: list, quiet: float = 1.0, timeout: float = 60) -> int:
    """Wait until ``counter`` stops growing for ``quiet`` seconds; its length then."""
    deadline = time.monotonic() + timeout
    last, since = len(counter), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError("the run kept going")
        time.sleep(0.05)
        if len(counter) != last:
            last, since = len(counter), time.monotonic()
    return last


@pytest.fixture
def forward_calls():
    """Counts forward passes of the app's VGG (one per optimisation step, plus the targets)."""
    import app

    calls: list[int] = []
    handle = app.MODELS["max"].register_forward_hook(lambda *a: calls.append(1))
    yield calls
    handle.remove()


def test_cancel_ten_times_stops_each_run_and_memory_stays_flat(client, files, forward_calls, capsys):
    steps = 100  # far more than a run gets to before it is cancelled
    rss, tensors, overshoot = [], [], []
    for _ in range(10):
        job = _submit(client, handle_file(str(files["style"])), handle_file(str(files["style"])), size=64, steps=steps)
        _wait_until(lambda job=job: len(job.outputs()) >= 3, 120, "three previews")
        assert job.cancel()
        at_cancel = len(forward_calls)
        _wait_until(lambda job=job: job.done(), 30, "the job to end")
        # One preview per step here: after the cancel at most the step in flight (and its preview) completes.
        overshoot.append(_settled(forward_calls) - at_cancel)
        assert job.status().code == Status.CANCELLED
        assert len(job.outputs()) < steps // 2
        rss.append(_rss_mb())
        tensors.append(_live_tensors())
    with capsys.disabled():
        print(
            f"\ncancel x10: forward passes after cancel {overshoot}; RSS MB {[round(r) for r in rss]}; "
            f"live tensors {tensors}"
        )
    assert max(overshoot) <= 2
    assert tensors[-1] <= tensors[0] + 5, tensors  # nothing of the cancelled runs is kept
    assert rss[-1] - min(rss[:3]) < 100, rss  # no steady growth (allocator noise is a few MB)
    _server_still_answers(client, files["style"])


def test_client_that_disappears_stops_its_run(app_url, files, forward_calls):
    image = _upload(app_url, files["style"])
    body = json.dumps({"data": [image, image, 64, 200, 5, 0.02, 1, 0, 1e4, 1.0, 0.0, "content"]})
    r = httpx.post(app_url + "gradio_api/call/stylize", content=body, headers={"content-type": "application/json"})
    event_id = r.json()["event_id"]
    frames = 0
    with httpx.stream("GET", app_url + f"gradio_api/call/stylize/{event_id}", timeout=120) as stream:
        for line in stream.iter_lines():
            frames += line.startswith("event: generating")
            if frames >= 3:
                break  # leaving the block closes the connection: the client is gone
    at_leave = len(forward_calls)
    stopped = _settled(forward_calls, quiet=1.5)
    assert stopped - at_leave <= 3, "the run went on after its client left"
    assert stopped < 100


# --- Numerical safety and the time budget ---------------------------------------------------------------------
def _check_request(path: Path, size: int, steps: int, preview_every: int):
    """The Space's request for ``path`` as both images, with the settings these tests were written for."""
    settings = (size, steps, 5, 0.02, preview_every, 0, 1e4, 1.0, 0.0, "content")
    values = {**params.Endpoint().defaults, "content": path, "style": path}
    return check_request({**values, **dict(zip(params.NAMES[2:12], settings, strict=True))})


@pytest.fixture
def nan_after(monkeypatch):
    """Make the style cost NaN from its (n+1)-th evaluation on (one evaluation per step)."""

    def install(n: int):
        real = engine.losses.style_cost
        count = {"calls": 0}

        def style_cost(*args, **kwargs):
            count["calls"] += 1
            value = real(*args, **kwargs)
            return value * float("nan") if count["calls"] > n else value

        monkeypatch.setattr(engine.losses, "style_cost", style_cost)

    return install


def test_nan_stops_with_a_message_and_the_last_good_frame(client, files, nan_after):
    nan_after(3)  # steps 0, 1, 2 are fine; step 3 diverges
    style = handle_file(str(files["style"]))
    job = _submit(client, style, style, size=32, steps=20)
    updates = list(job)
    final = updates[-1]
    assert "diverged at step 3" in final[3] and final[3].startswith("Stopped at step 2 of 20")
    with Image.open(final[0]["path"]) as last, Image.open(updates[-2][0]["path"]) as good:
        assert np.array_equal(np.asarray(last), np.asarray(good))  # the same image as the last good preview
    assert len(updates) == 4  # steps 0, 1, 2, then the last good one again with the message


def test_nan_on_the_first_step_is_a_clear_error(client, files, nan_after):
    nan_after(0)
    style = handle_file(str(files["style"]))
    with pytest.raises(AppError, match="diverged at step 0") as info:
        _submit(client, style, style, size=32, steps=5).result(timeout=60)
    assert info.value.title == "Optimisation diverged"


def test_nan_through_space_stream_warns(files, model, nan_after):
    nan_after(2)
    request = _check_request(files["style"], 32, 10, 1)
    with pytest.warns(UserWarning, match="diverged"):  # gr.Warning outside a request is a warning
        items = list(space.stream.stream(request, model))
    assert [re.search(r"step (\d+) of 10", item[3], re.IGNORECASE)[1] for item in items] == ["0", "1", "1"]
    assert items[-1][0] is items[-2][0]


def test_time_budget_stops_the_run_between_previews_with_its_latest_image(files, model, monkeypatch):
    """The budget is checked before every step, not only at previews: a run whose next preview is far away still
    stops in time, and its image so far is the result (the platform would otherwise kill it and lose it)."""
    ticks = iter(range(10_000))
    monkeypatch.setattr(space.stream, "_clock", lambda: float(next(ticks)))  # one "second" per clock reading
    request = _check_request(files["style"], 32, 40, 20)
    # deadline = 0 + 3.5; the clock is read before each step (1, 2, 3, 4): step 3 is the last image.
    items = list(space.stream.stream(request, model, time_budget_s=3.5))
    assert [re.search(r"step (\d+) of 40", item[3]).group(1) for item in items] == ["0", "3"]
    status = items[-1][3]
    assert status.startswith("Stopped at step 3 of 40")
    assert "Stopped early at step 3" in status and "GPU time limit" in status
    assert items[-1][1] == (request.content, items[-1][0]) and items[-1][4] is not None
    assert read_settings(items[-1][4])["steps_done"] == 3


def test_time_budget_never_cuts_a_run_that_fits(files, model):
    request = _check_request(files["style"], 32, 4, 2)
    items = list(space.stream.stream(request, model, time_budget_s=3600))
    assert items[-1][3].startswith("Done: 4 steps") and "Stopped early" not in items[-1][3]


def test_a_run_whose_gpu_time_ran_out_keeps_its_latest_image(files, model, monkeypatch):
    """On ZeroGPU the platform kills a worker whose time is up: the latest preview becomes the result, as Stop does."""
    import gradio as gr

    import space.platform
    from space.zerogpu import Allocation, SpeedModel

    monkeypatch.setattr(space.platform, "speeds", SpeedModel())  # the process's own estimate stays untouched
    request = _check_request(files["style"], 32, 40, 5)

    def killed():
        frames = space.stream.stream(request, model)
        yield next(frames)
        yield next(frames)
        frames.close()
        raise gr.Error("GPU task aborted", title="ZeroGPU worker error", print_exception=False)  # as spaces says

    final = list(space.platform.on_gpu(killed(), request, Allocation(0, 0.0)))[-1]
    assert final[3].startswith("Stopped at step 5 of 40") and " left" not in final[3]
    assert final[3].endswith("The GPU time ran out at step 5 of 40: the latest image is the result.")
    assert read_settings(final[4])["steps_done"] == 5 and final[1][1] is final[0]


def test_an_example_is_cached_only_from_a_complete_run(files, model, monkeypatch):
    """Gradio caches an example's last update for everyone: a run cut short must end in an error, not a result."""
    import gradio as gr

    request = _check_request(files["style"], 32, 4, 2)
    updates = list(space.stop.complete(space.stream.stream(request, model)))
    assert updates[-1][3].startswith("Done: 4 steps") and updates[-1][4] is not None
    ticks = iter(range(10_000))
    monkeypatch.setattr(space.stream, "_clock", lambda: float(next(ticks)))
    with pytest.raises(gr.Error, match="stopped at step 3 of 40"):
        list(space.stop.complete(space.stream.stream(_check_request(files["style"], 32, 40, 20), model, 3.5)))


def test_stop_keeps_the_latest_image_as_the_result(files, model):
    """Stop cancels the run (its generator is closed); what the run left in the session's state becomes the result,
    with the download and before/after a finished run has, and a status that says where it stopped."""
    request = _check_request(files["style"], 32, 40, 5)
    frames = space.stream.stream(request, model)
    shipped = [next(frames), next(frames)]  # steps 0 and 5, then Stop closes the generator
    frames.close()
    # On ZeroGPU the items cross from the worker pickled: the frame's image goes once, shared with the result's.
    payloads = [pickle.dumps(item) for item in shipped]
    extra = len(payloads[-1]) - len(pickle.dumps(shipped[-1][:5]))
    assert extra < 0.5 * len(pickle.dumps(shipped[-1][0]))
    latest = list(space.stop.remember((pickle.loads(p) for p in payloads), request))[-1]
    image, compare, status, download, state = space.stop.finish(latest[5])
    same = [
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in [(image, latest[0]), *zip(compare, (request.content, image), strict=True)]
    ]
    assert all(same) and state is None
    assert status.startswith("Stopped at step 5 of 40") and " left" not in status
    assert status.endswith("Stopped at step 5 of 40: the latest image is the result.")
    assert read_settings(download)["steps_done"] == 5
    with Image.open(download) as saved:
        assert saved.size == image.size and np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(image))


def test_stop_after_a_run_ended_changes_nothing(files, model):
    request = _check_request(files["style"], 32, 4, 2)
    updates = list(space.stop.remember(space.stream.stream(request, model), request))
    assert [u[5] is None for u in updates] == [False, False, True]  # the final update empties the state
    assert space.stop.finish(updates[-1][5]) == (*[SKIP] * 4, None)


SKIP = {"__type__": "update"}


def test_after_stop_the_run_sends_nothing_newer(files, model):
    """Stop's follow-up and the cancel reach the server independently: a preview the run makes after Stop has
    taken its image must not replace that result on the page, and a second Stop changes nothing."""
    request = _check_request(files["style"], 32, 40, 5)
    updates = space.stop.remember(space.stream.stream(request, model), request)
    running = [next(updates), next(updates)][-1][5]
    assert space.stop.finish(running)[2].startswith("Stopped at step 5 of 40")
    assert next(updates, None) is None  # the run ends instead of sending step 10
    assert space.stop.finish(running) == (*[SKIP] * 4, None)


def test_stop_after_a_failed_run_changes_nothing(files, model):
    """A run that failed (an error after some previews) leaves its state; Stop must not show its last preview."""
    request = _check_request(files["style"], 32, 40, 5)

    def failing():
        yield next(space.stream.stream(request, model))
        raise RuntimeError("out of memory")

    updates = space.stop.remember(failing(), request)
    running = next(updates)[5]
    with pytest.raises(RuntimeError):
        next(updates)
    assert space.stop.finish(running) == (*[SKIP] * 4, None)


def test_status_says_where_the_run_is_in_words_and_shows_the_frames_terms():
    """The status says in words where the run is and how long is left, and when it is done; then J and the
    frame's weighted terms, as the engine weighted them (they add up to J). With coarse-to-fine scales it names
    the scale, and the time left weighs a step by its pixels (a 1024 px run said 17 s where 70 s were left: its
    full-size steps cost 4x the first scale's)."""
    cfg = StyleConfig(size=1024, steps=24, content_weight=1e4)  # 512 px for 12 steps, then 1024 px for 12
    assert cfg.scale_sizes() == [(512, 12), (1024, 12)]
    terms = (
        TermValue("content", "α·content", 1e4, 2.0),
        TermValue("style", "β·style", 1.0, 3e4),
        TermValue("tv", "smoothness (TV)", 5e9, 0.01),
    )
    losses = {**{t.name: t.value for t in terms}, "total": 2e4 + 3e4 + 5e7}
    frame = Frame(12, 24, Image.new("RGB", (1024, 683)), losses, 10.0, 1, 2, terms)
    assert space.stream._status(frame, "CPU", cfg) == (
        "Step 12 of 24 (scale 2 of 2, 1024 px) — about 40 s left\n"
        "Cost J = 5.005e+07 (α·content 2e+04, β·style 3e+04, smoothness (TV) 5e+07)"
    )
    done = Frame(24, 24, frame.image, losses, 41.2, 1, 2, terms)
    assert space.stream._status(done, "CPU", cfg, running=False).startswith("Done: 24 steps in 41 s on CPU\n")


def test_previews_are_capped_per_run(files):
    request = _check_request(files["style"], 32, limits.MAX_STEPS, 1)
    assert request.config.preview_every == math.ceil(limits.MAX_STEPS / space_limits.MAX_PREVIEWS)


# --- The browser -----------------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
@pytest.mark.parametrize("kind", ["text_named_png", "heic", "bomb_30000_png"])
def test_image_through_the_browser(app_url, files, kind, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    # "load", not "networkidle": the page keeps Gradio's session heartbeat open (the app has a gr.State).
    page.goto(app_url, wait_until="load")
    expect(page.locator("#run")).to_be_visible(timeout=60_000)
    page.locator("#content input[type=file]").set_input_files(str(files[kind]))
    page.locator("#style input[type=file]").set_input_files(str(files["style"]))
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_text(re.compile(r"content image: .*" + CASES[kind].error))).to_be_visible(timeout=60_000)


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1100})
        finally:
            browser.close()
