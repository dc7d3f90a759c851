"""The Space on ZeroGPU's real code path: the real app.py under ``SPACES_ZERO_GPU=true``, ``spaces`` unmodified but
for its worker's two GPU calls (tests/zerogpu_app.py), against a stand-in device API (tests/zerogpu_device.py), used
through gradio_client as visitors and API callers use it.

What a visitor meets there: previews streamed from a forked worker; a cancel that leaves the server answering
everyone at once; clear messages when the platform fails or the quota is used up; the latest picture when the
platform ends a run; complete, separate files for identical runs sent at the same time.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from style_transfer.output import read_settings
from tests.conftest import make_content, make_style
from tests.serving import serve_app
from tests.zerogpu_device import DeviceAPI


@pytest.fixture(scope="module")
def device():
    api = DeviceAPI().start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def zerogpu_app(device, tmp_path_factory):
    if torch.version.cuda is None:
        pytest.skip("spaces' ZeroGPU path needs a CUDA build of torch (PyPI's Linux wheels are one)")
    tmp = tmp_path_factory.mktemp("zerogpu")
    (tmp / "cgroup").write_text("0::/standin\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "OMP_NUM_THREADS": "1",
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": device.url,
        "ZEROGPU_PROC_SELF_CGROUP_PATH": str(tmp / "cgroup"),
        "ZEROGPU_OFFLOAD_DIR": str(tmp / "offload"),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "GRADIO_EXAMPLES_CACHE": str(tmp / "examples"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "NST_MCP": "0",
        "PYTHONUNBUFFERED": "1",
    }
    proc, url = serve_app(["tests/zerogpu_app.py"], env)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True)  # the pipe must not fill up
    reader.start()
    try:
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # spaces' workers ignore SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("zg_images")
    make_content(48, 32).save(d / "content.png")
    make_style(48, 48).save(d / "style.png")
    return d


@pytest.fixture
def client(zerogpu_app, device):
    device.set()
    return Client(zerogpu_app[0], verbose=False, download_files=False)


def _submit(client: Client, images, **settings):
    values = {"size": 32, "steps": 6, "preview_every": 2, **settings}
    content, style = handle_file(str(images / "content.png")), handle_file(str(images / "style.png"))
    return client.submit(content, style, api_name="/stylize", **values)


def _fetch(url: str) -> bytes:
    return httpx.get(url, timeout=30).content


def test_a_run_streams_from_the_gpu_worker(zerogpu_app, client, images, device):
    before = device.count("/release")
    updates = list(_submit(client, images))
    assert [re.search(r"(\d+) (?:of|steps)", u[3]).group(1) for u in updates] == ["0", "2", "4", "6"]
    final = updates[-1]
    assert final[4] is not None and read_settings(_fetch(final[4]["url"]))["steps_done"] == 6
    assert device.count("/release") == before + 1  # the GPU was given back
    log = zerogpu_app[1]
    deadline = time.monotonic() + 10
    while not any("GPU speed on CPU" in line for line in log) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any("GPU speed on CPU" in line for line in log)  # the worker's speed, learned in the main process


def test_a_cancel_leaves_the_server_answering_at_once(zerogpu_app, client, images, device):
    """Cancelling waits for the worker's next preview (a long way off here); nobody else may wait for it."""
    url = zerogpu_app[0]
    before = device.count("/release")
    job = _submit(client, images, size=48, steps=3000, preview_every=200)
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 1 and time.monotonic() < deadline:  # the first preview (step 0)
        time.sleep(0.05)
    assert job.outputs(), "no preview within a minute"
    latencies = []
    done = threading.Event()

    def probe():
        while not done.is_set() and len(latencies) < 100:
            start = time.monotonic()
            httpx.get(url + "/gradio_api/info", timeout=60)
            latencies.append(time.monotonic() - start)
            time.sleep(0.1)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.3)
    # The cancel itself returns at the worker's next preview (Gradio closes the run then), which may be past
    # gradio_client's 5 s timeout; what matters is that nobody else waits meanwhile.
    threading.Thread(target=lambda: _quietly(job.cancel), daemon=True).start()
    deadline = time.monotonic() + 60
    while device.count("/release") == before and time.monotonic() < deadline:  # the worker's next preview
        time.sleep(0.1)
    time.sleep(0.5)
    done.set()
    prober.join()
    assert device.count("/release") == before + 1, "the GPU was not given back after the cancel"
    assert max(latencies) < 1.0, latencies


@pytest.mark.parametrize(
    ("platform", "title", "words"),
    [
        ({"status": 500}, "GPU platform unavailable", "answered HTTP 500"),
        ({"status": 503}, "No GPU is free", "try again in a minute"),
        ({"quota_left": 5}, "GPU quota used up", "more than is left"),
        ({"max_duration": 5}, "Run too long for the GPU", "smaller size or fewer steps"),
    ],
)
def test_platform_failures_get_clear_messages(client, images, device, platform, title, words):
    device.set(**platform)
    with pytest.raises(AppError) as info:
        _submit(client, images).result(timeout=60)
    assert info.value.title == title and words in info.value.message, (info.value.title, info.value.message)


def test_an_unreachable_platform_gets_a_clear_message(client, images, device):
    device.stop()
    try:
        with pytest.raises(AppError) as info:
            _submit(client, images).result(timeout=60)
    finally:
        device.start()
    assert info.value.title == "GPU platform unavailable" and "could not be reached" in info.value.message


def test_a_run_the_platform_ends_keeps_its_latest_image(client, images, device):
    """The platform kills a worker whose time is up; the visitor keeps the latest preview, with its download."""
    device.set(abort_after=2.0)
    updates = list(_submit(client, images, size=48, steps=3000, preview_every=5))
    final = updates[-1]
    assert "ended the run at step" in final[3] and "the latest image is the result" in final[3]  # not its time
    step = int(re.match(r"Stopped at step (\d+) of 3000", final[3]).group(1))
    assert 0 < step < 3000
    preview = updates[-2][0]["url"]
    assert np.array_equal(_pixels(_fetch(final[0]["url"])), _pixels(_fetch(preview)))
    assert read_settings(_fetch(final[4]["url"]))["steps_done"] == step


def test_a_run_ended_before_its_first_image_says_so(client, images, device):
    device.set(abort_after=0.0)
    with pytest.raises(AppError) as info:
        _submit(client, images).result(timeout=60)
    assert info.value.title == "GPU run ended by the platform"


def test_identical_runs_at_once_get_complete_separate_files(client, zerogpu_app, images):
    """Three visitors sending the same photo with the same settings at once (ZeroGPU runs four at a time)."""
    clients = [client] + [Client(zerogpu_app[0], verbose=False, download_files=False) for _ in range(2)]
    for _batch in range(2):
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda c: list(_submit(c, images)), clients))
        finals = [updates[-1] for updates in results]
        assert all(f[3].startswith("Done: 6 steps") for f in finals)
        files = [(f[0]["path"], f[1][0]["path"], f[1][1]["path"], f[4]["path"]) for f in finals]
        for output in zip(*files, strict=True):  # result, before, after, download: one file per run
            assert len(set(output)) == 3, output
        pixels = [_pixels(_fetch(f[0]["url"])) for f in finals]  # complete files: they decode, all the same
        assert all(np.array_equal(p, pixels[0]) for p in pixels)
        for f in finals:
            _pixels(_fetch(f[1][0]["url"]))
            _pixels(_fetch(f[1][1]["url"]))


def _quietly(call) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img.convert("RGB"))


def gr_error(message: str, title: str) -> gr.Error:
    return gr.Error(message, title=title, print_exception=False)


def _failing(error: Exception):
    raise error
    yield  # a generator, as spaces' wrapper is


@pytest.mark.parametrize(
    ("error", "title", "words"),
    [
        (gr_error("PicklingError", "ZeroGPU worker error"), "GPU worker failed", "(PicklingError)"),
        (gr_error("No GPU was available after 60s", "ZeroGPU queue timeout"), "No GPU is free", "try again"),
        (gr_error("Out of memory at this size.", "Out of memory"), "Out of memory", "Out of memory at this size."),
    ],
)
def test_worker_failures_are_named(error, title, words):
    """The worker's own failures (spaces' titles) are named; the app's own messages pass unchanged."""
    from space.platform import on_gpu

    with pytest.raises(gr.Error) as info:
        list(on_gpu(_failing(error), request=None))
    assert info.value.title == title and words in info.value.message


def test_a_clip_streams_from_the_gpu_worker_and_keeps_its_frames_when_ended(client, images, device, tmp_path):
    """The Video endpoint runs the whole clip in one forked worker: its frames stream back, and when the platform
    ends the worker mid-clip the frames done come back as a shorter video."""
    from tests.test_video import make_mp4, pan

    clip = handle_file(str(make_mp4(tmp_path / "in.mp4", pan(3), fps=10)))
    style = handle_file(str(images / "style.png"))
    job = client.submit(clip, style, 48, 2, 1, 1e12, 3, False, api_name="/stylize_video")
    final = job.result(timeout=120)
    assert any(out[1].startswith("frame 3 of 3 (done)") for out in job.outputs())
    with av.open(io.BytesIO(_fetch(final[2]["url"]))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3

    device.set(abort_after=6.0)
    job = client.submit(clip, style, 48, 2, 400, 1e12, 3, False, api_name="/stylize_video")  # a long 2nd frame
    final = job.result(timeout=120)
    assert final[1].startswith(("The GPU platform ended the run", "The run's GPU time limit was reached")), final[1]
    with av.open(io.BytesIO(_fetch(final[2]["url"]))) as c:
        assert 1 <= sum(1 for _ in c.decode(video=0)) < 3
