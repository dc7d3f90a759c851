"""The Space's Video tab: a clip checked in the main process, stylised in one GPU call, streamed frame by frame.

``/stylize_video`` takes a clip (MP4, WebM, MOV, animated GIF or WebP), a style image and a few settings, and
streams ``(latest frame, status, video)``: the status says "frame 12 of 60" with an ETA, the video comes with the
last frame. Stop keeps the frames done as a shorter video (the session's :class:`VideoRun`, finished by
:func:`finish_video`). On ZeroGPU the whole clip is one GPU call whose duration comes from :func:`video_gpu_duration`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import gradio as gr
import httpx
from PIL import Image

from style_transfer.config import ConfigError, StyleConfig, VideoConfig, field_spec
from style_transfer.images import ImageError, load_image
from style_transfer.model import VGGFeatures
from style_transfer.temporal import stylize_video
from style_transfer.video import Clip, VideoWriter, read_clip

from . import limits, platform, zerogpu
from .errors import answered, user_error
from .files import RESULTS_DIR

log = logging.getLogger(__name__)

# Optical flow and warping per frame on the host (DIS medium at 512 px: ~20 ms for each of two flows, measured on a
# 2-core EPYC) and the frame's targets (one forward pass of the photo and of the style: a step's worth).
FLOW_S_PER_FRAME = 0.1
TARGET_STEPS_PER_FRAME = 1.0


@dataclass
class VideoRequest:
    """A checked video request: the clip read at its working size, the style, the settings."""

    clip: Clip
    style: Image.Image
    config: StyleConfig
    video: VideoConfig


@dataclass
class VideoRun:
    """What Stop needs of a run in progress: the clip's timing and the frames finished so far."""

    clip: Clip
    settings: dict
    frames: list[Image.Image] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def check_video_request(
    video: str | None,
    style: str | Image.Image | None,
    size: float,
    steps: float,
    frame_steps: float,
    temporal_weight: float,
    max_frames: float,
    loop: bool,
) -> VideoRequest:
    """The request's values checked and the clip read (main process: a bad clip costs no GPU time)."""
    if not video:
        raise user_error("Upload a video or an animated GIF first.", "No video")
    if style is None:
        raise user_error("Pick or upload a style image.", "No style image")
    try:
        cfg = StyleConfig(size=size, steps=steps, temporal_weight=temporal_weight).validate()
        if cfg.size > limits.VIDEO_MAX_SIZE:
            raise ConfigError(f"size: a video is at most {limits.VIDEO_MAX_SIZE} px here")
        frames = int(max_frames or limits.VIDEO_MAX_FRAMES)
        if frames > limits.VIDEO_MAX_FRAMES:
            raise ConfigError(f"max_frames: at most {limits.VIDEO_MAX_FRAMES} frames here")
        vcfg = VideoConfig(frame_steps=frame_steps, max_frames=frames, loop=bool(loop)).validate()
        clip = read_clip(video, cfg.size, vcfg)
        style_img = load_image(style, name="style image")
    except ConfigError as exc:
        raise user_error(str(exc), "Invalid setting") from None
    except ImageError as exc:
        raise user_error(str(exc), "Unusable input") from None
    return VideoRequest(clip, style_img, cfg, vcfg)


def video_gpu_seconds(request: VideoRequest) -> float:
    """Estimated GPU seconds for the whole clip: start-up, the first frame's steps, the later frames' steps, flow."""
    width, height = request.clip.size
    first = zerogpu.loop_seconds(width, height, request.config)
    later_cfg = request.config.replace(steps=request.video.frame_steps)
    later = zerogpu.loop_seconds(width, height, later_cfg) + FLOW_S_PER_FRAME
    later += TARGET_STEPS_PER_FRAME * zerogpu.step_seconds(width * height / 1e6, request.config.optimizer)
    return zerogpu.GPU_STARTUP_S + first + (len(request.clip) - 1) * later


def video_gpu_duration(request: VideoRequest, *args: object, **kwargs: object) -> int:
    """ZeroGPU ``duration=`` callable for a clip: the estimate x margin, clamped to the Space's range."""
    seconds = video_gpu_seconds(request) * zerogpu.GPU_DURATION_MARGIN
    return int(min(limits.VIDEO_GPU_DURATION_MAX_S, max(limits.GPU_DURATION_MIN_S, math.ceil(seconds))))


def stream_video(request: VideoRequest, model: VGGFeatures, budget_s: float | None = None) -> Iterator[tuple]:
    """``(image, status, finished frame or None)`` for every preview; runs on the GPU (CPU objects only).

    With ``budget_s`` (the seconds the worker may take on ZeroGPU) the run ends itself at the first preview past
    it, so the frames done come back as a shorter video instead of being cut off by the platform.
    """
    start = time.monotonic()
    frames = stylize_video(request.clip, request.style, request.config, video=request.video, model=model)
    try:
        for vf in frames:
            eta = "" if vf.eta is None else f" · about {_duration(vf.eta)} left"
            state = "done" if vf.finished else f"step {vf.step} of {vf.steps}"
            status = f"frame {vf.index + 1} of {vf.total} ({state}){eta} · {vf.elapsed:.0f} s so far"
            yield vf.image, status, vf.image if vf.finished else None
            if budget_s is not None and time.monotonic() - start > budget_s and vf.index + 1 < vf.total:
                yield vf.image, TIME_LIMIT_NOTE, None
                return
    finally:
        frames.close()


TIME_LIMIT_NOTE = "The run's GPU time limit was reached"
PLATFORM_ENDED_NOTE = "The GPU platform ended the run (its time ran out, or the GPU failed)"


def video_budget_s(seconds: int) -> float:
    """The seconds a clip's worker may run before it stops itself: its allocation less the worker's own start and
    a margin for the frame in progress and the pickled results."""
    return max(1.0, seconds - limits.GPU_WORKER_START_S - 0.1 * seconds)


def run_video(request: VideoRequest, items: Generator[tuple, None, None], seconds: int | None) -> Iterator[tuple]:
    """The endpoint's updates ``(latest frame, status, video, run for Stop)`` from a GPU run's ``items``.

    The frames finished are kept in the main process, so whatever ends the run (its time limit, the platform
    killing the worker, Stop) the frames done become the video. Platform failures are clear messages
    (:mod:`.platform`); closing the run happens off the server's event loop.
    """
    settings = {**request.config.to_dict(), **request.video.to_dict()}
    running = VideoRun(request.clip, settings)
    image, note = None, ""
    try:
        for image, status, finished in items:
            if finished is not None:
                running.frames.append(finished)
            if status == TIME_LIMIT_NOTE:
                note = status
                break
            yield platform.mark(image), status, gr.update(), running
    except gr.Error as exc:
        if not platform.from_platform(exc):
            raise
        log.warning("GPU platform: %s: %s", exc.title, exc.message)
        if not (platform.aborted(exc) and running.frames):
            plan = None if seconds is None else zerogpu.Allocation(seconds, 0.0)
            raise platform.platform_error(exc, plan) from None
        note = PLATFORM_ENDED_NOTE
    except (RuntimeError, httpx.HTTPError, OSError) as exc:
        log.exception("GPU platform failure: %s", type(exc).__name__)
        raise platform.platform_error(exc, None) from None
    finally:
        platform.close_elsewhere(items)
    with answered("writing the video"):
        path = write_result(running)
    status = done_status(running) if not note else f"{note}: {_frames_done(running)} the video."
    yield image, status, path, None


def write_result(run: VideoRun) -> str | None:
    """The frames done as an MP4 with the settings embedded, in the swept results folder (files.RESULTS_DIR: files
    older than limits.DELETE_CACHE are removed); None when no frame was finished."""
    if not run.frames:
        return None
    RESULTS_DIR.mkdir(exist_ok=True)
    cutoff = time.time() - limits.DELETE_CACHE[1]
    for old in RESULTS_DIR.glob("stylized-*"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    # The id makes every result's bytes unique: Gradio names the file it serves after its content, so two identical
    # runs would otherwise share (and rewrite) one file.
    result_id = uuid.uuid4().hex[:12]
    writer = VideoWriter(RESULTS_DIR / f"stylized-{result_id}.mp4", run.clip, {**run.settings, "result_id": result_id})
    for frame in run.frames:
        writer.add(frame)
    return str(writer.close())


def done_status(run: VideoRun) -> str:
    """The status at the end of a run: how many frames, how long."""
    return f"Done: {len(run.frames)} frames in {_duration(time.monotonic() - run.started)}."


def finish_video(run: VideoRun | None) -> tuple:
    """Stop: the frames finished so far become a shorter video (status, video, emptied state)."""
    if run is None or not run.frames:
        return gr.update(), gr.update(value="Stopped before the first frame was finished."), None
    path = write_result(run)
    status = f"Stopped: {_frames_done(run)} the video."
    return gr.update(value=path), status, None


def _frames_done(run: VideoRun) -> str:
    count = len(run.frames)
    return "the frame done is" if count == 1 else f"the {count} frames done are"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def slider_range(name: str) -> tuple[float, float]:
    """A StyleConfig / VideoConfig field's range (for the tab's sliders)."""
    try:
        meta = field_spec(name).metadata
    except KeyError:
        from dataclasses import fields

        meta = next(f for f in fields(VideoConfig) if f.name == name).metadata
    return meta["min"], meta["max"]
