"""The first request of a process is as quick as the next: nothing is left to import on first use (fast start).

Building the first optimiser imported ``torch._dynamo``: 0.8-1.3 s on a 2-core EPYC, 17x the first frame of a 48 px
run. ``style_transfer.preload()`` (called by app.py at start-up, and inherited by ZeroGPU's forked worker) imports
it before any request. Guarded by what a first request imports, in a fresh process, rather than by a timing.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples" / "content" / "lake_boats.jpg"
STYLE = ROOT / "examples" / "styles" / "starry_night.jpg"

ENGINE_SETUP = """
from style_transfer import load_model, preload, run
model = load_model("caffe", "cpu")
preload()
"""
ENGINE_REQUESTS = """
for settings in ({}, {"optimizer": "lbfgs"}, {"scales": 2, "preserve_colors": "luminance"}):
    run(CONTENT, STYLE, model=model, size=48, steps=2, **settings)
"""
APP_SETUP = """
import app
from space import params
from space.request import check_request
"""
APP_VIDEO_REQUESTS = """
for _ in app.stylize_video(CLIP, STYLE, size=32, steps=2, frame_steps=1, max_frames=3):
    pass
"""
APP_REQUESTS = """
values = {**params.Endpoint().defaults, "content": CONTENT, "style": STYLE, "size": 48, "steps": 2}
for _ in app.run(values):
    pass
"""


def _imported_by_first_request(setup: str, requests: str, clip: Path | None = None) -> list[str]:
    script = (
        f"import json, sys\nCONTENT, STYLE, CLIP = {str(CONTENT)!r}, {str(STYLE)!r}, {str(clip)!r}\n{setup}\n"
        "before = set(sys.modules)\n"
        f"{requests}\nprint(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_engine_first_request_imports_nothing_after_preload():
    assert _imported_by_first_request(ENGINE_SETUP, ENGINE_REQUESTS) == []


def test_app_first_request_imports_nothing():
    assert _imported_by_first_request(APP_SETUP, APP_REQUESTS) == []


def test_app_first_video_request_imports_nothing(tmp_path):
    """PyAV and OpenCV (reading the clip, the optical flow, writing the MP4) are imported at start-up too
    (``style_transfer.video.preload``)."""
    import av
    import numpy as np

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for seed in range(3):
            pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert _imported_by_first_request(APP_SETUP, APP_VIDEO_REQUESTS, clip) == []
