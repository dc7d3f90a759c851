"""The Space's Video tab through its public endpoint: frames stream with "frame i of n", the result keeps the clip's
frame count, bad clips get a clear message, and the GPU time asked for grows with the clip."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from space import video as video_space
from style_transfer.config import StyleConfig, VideoConfig
from style_transfer.video import Clip
from tests.test_video import make_mp4, pan


def test_stylize_video_streams_frames_and_returns_the_whole_clip(client, tmp_path, style_path):
    clip = make_mp4(tmp_path / "in.mp4", pan(3), fps=10)
    job = client.submit(
        handle_file(str(clip)), handle_file(str(style_path)), 48, 2, 1, 1e12, 3, False, api_name="/stylize_video"
    )
    result = job.result(timeout=120)
    statuses = [out[1] for out in job.outputs()]
    assert any(s.startswith("frame 1 of 3") for s in statuses)
    assert any(s.startswith("frame 3 of 3 (done)") for s in statuses)
    video = result[2]["path"]
    with av.open(video) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3
        assert c.streams.video[0].average_rate == 10


def test_a_file_that_is_not_a_video_is_refused_clearly(client, tmp_path, style_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    with pytest.raises(AppError, match="content video"):
        client.predict(handle_file(str(bad)), handle_file(str(style_path)), api_name="/stylize_video")


def test_gpu_time_grows_with_frames_and_stays_in_range():
    from PIL import Image

    def duration(frames: int, size: int) -> int:
        clip = Clip([Image.new("RGB", (size, size * 2 // 3))] * frames, [0.0] * frames, [0.1] * frames, Fraction(10))
        cfg = StyleConfig(size=size, steps=100).validate()
        request = video_space.VideoRequest(clip, Image.new("RGB", (64, 64)), cfg, VideoConfig(frame_steps=40))
        return video_space.video_gpu_duration(request)

    assert duration(10, 256) < duration(60, 256) <= duration(60, 512)
    assert duration(60, 512) <= video_space.limits.VIDEO_GPU_DURATION_MAX_S


def test_a_path_outside_the_upload_cache_is_never_read(app_url, tmp_path, style_path):
    """A caller naming a server file instead of uploading one gets an error; nothing of that file comes back."""
    import httpx

    from tests.test_video import make_mp4

    secret = make_mp4(tmp_path / "secret.mp4", pan(3))  # a real clip: were it read, the run would succeed
    hostile = {"path": str(secret), "meta": {"_type": "gradio.FileData"}}
    with style_path.open("rb") as f:  # the style is uploaded properly: only the clip is hostile
        uploaded = httpx.post(app_url + "gradio_api/upload", files={"files": f}, timeout=30).json()[0]
    style = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
    r = httpx.post(app_url + "gradio_api/call/stylize_video", json={"data": [hostile, style, 48, 1, 1]}, timeout=30)
    event = None
    if r.status_code == 200:
        url = app_url + f"gradio_api/call/stylize_video/{r.json()['event_id']}"
        with httpx.stream("GET", url, timeout=120) as s:
            for line in s.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
    assert event in ("error", None)


def _request(frames: int = 3) -> video_space.VideoRequest:
    from PIL import Image

    clip = Clip([Image.new("RGB", (48, 32))] * frames, [0.1 * i for i in range(frames)], [0.1] * frames, Fraction(10))
    return video_space.VideoRequest(clip, Image.new("RGB", (48, 32)), StyleConfig(size=48), VideoConfig())


def _gpu_run(finished: int, then: BaseException | None):
    """A GPU run's items as the worker sends them: ``finished`` frames, then ``then`` raised (as spaces does)."""
    from PIL import Image

    for i in range(finished):
        image = Image.new("RGB", (48, 32), (40 * i, 0, 0))
        yield image, f"frame {i + 1} of 3 (step 1 of 2)", None
        yield image, f"frame {i + 1} of 3 (done)", image
    if then is not None:
        raise then


def test_a_clip_the_platform_ends_keeps_the_frames_done():
    """ZeroGPU kills a worker whose time is up: the frames finished before become the video, with a note."""
    import gradio as gr

    aborted = gr.Error("GPU task aborted", title="ZeroGPU worker error", print_exception=False)
    updates = list(video_space.run_video(_request(), _gpu_run(2, aborted), 60))
    image, status, path, running = updates[-1]
    assert image is not None  # the last frame stays shown
    assert status.startswith("The GPU platform ended the run") and "the 2 frames done are the video" in status
    assert running is None
    with av.open(path) as c:
        assert sum(1 for _ in c.decode(video=0)) == 2


def test_a_clip_that_reaches_its_time_limit_ends_itself_with_the_frames_done():
    from PIL import Image

    def items():
        yield from _gpu_run(1, None)
        yield Image.new("RGB", (48, 32)), video_space.TIME_LIMIT_NOTE, None
        raise AssertionError("the run must not be asked for more after its time limit")

    status, path = list(video_space.run_video(_request(), items(), 60))[-1][1:3]
    assert status == "The run's GPU time limit was reached: the frame done is the video."
    with av.open(path) as c:
        assert sum(1 for _ in c.decode(video=0)) == 1


@pytest.mark.parametrize(
    ("error", "title"),
    [
        ("quota", "GPU quota used up"),
        ("busy", "No GPU is free"),
        ("aborted-at-once", "GPU run ended by the platform"),
    ],
)
def test_platform_failures_of_a_clip_get_clear_messages(error, title):
    import gradio as gr

    raised = {
        "quota": gr.Error("You have exceeded your ZeroGPU quota", title="ZeroGPU quota exceeded"),
        "busy": gr.Error("No GPU was available after 60s", title="ZeroGPU queue timeout"),
        "aborted-at-once": gr.Error("GPU task aborted", title="ZeroGPU worker error"),
    }[error]
    with pytest.raises(gr.Error) as info:
        list(video_space.run_video(_request(), _gpu_run(0, raised), 60))
    assert info.value.title == title


def test_identical_clips_get_files_of_their_own():
    """Gradio names a served file after its content: two identical runs must not write the same bytes."""
    from style_transfer.video import read_video_settings

    paths = [list(video_space.run_video(_request(), _gpu_run(2, None), None))[-1][2] for _ in range(2)]
    ids = [read_video_settings(p)["result_id"] for p in paths]
    assert paths[0] != paths[1] and ids[0] != ids[1]
