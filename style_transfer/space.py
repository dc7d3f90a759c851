"""What the Gradio Space needs beyond the engine: request validation, the strength mapping, the ZeroGPU duration
estimate, and turning frames into the values the UI (and ``gradio_client``) receive.

``app.py`` only lays out components and wires events; everything it calls lives here, so it can be tested
without a browser.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from .config import (
    STRENGTH_MAX,
    STRENGTH_MIN,
    ConfigError,
    StyleConfig,
    strength_multiplier,
)
from .engine import Frame, NonFiniteLossError, prepare_images, stylize
from .images import ImageError
from .model import VGGFeatures

# The endpoint's settings, in the order of the UI controls and of the API's parameters after the two images.
SETTINGS = (
    "size",
    "steps",
    "style_strength",
    "learning_rate",
    "preview_every",
    "seed",
    "content_weight",
    "style_weight",
    "tv_weight",
    "init",
)

# ZeroGPU duration model (seconds). NOT yet calibrated on a GPU (no GPU was available when this was written):
# performance.md derives ~1.2 ms/step at 512 px as the H100 fp32 floor and ~2.7 ms on a ZeroGPU half card; we
# assume ~4x that in practice (launch overhead, previews) and add start-up (fork, CUDA init, targets).
GPU_STARTUP_S = 8.0
GPU_S_PER_STEP_FIXED = 0.004  # kernel launches, optimiser, per step
GPU_S_PER_MEGAPIXEL_STEP = 0.040  # grows with the number of pixels (~10 ms/step at 512x512)
GPU_DURATION_MARGIN = 1.5
GPU_DURATION_MIN_S, GPU_DURATION_MAX_S = 15, 240


# Queue and upload limits. The queue is bounded so a crowd gets a clear "queue full" instead of waiting forever;
# on ZeroGPU several runs may hold GPUs at once (each billed to its own user), on a CPU one run uses all cores.
QUEUE_MAX_SIZE = 16
CONCURRENCY_LIMIT = 4
MAX_UPLOAD = "20mb"


@dataclass
class Request:
    """A validated request: images loaded and resized, settings checked."""

    content: Image.Image
    style: Image.Image
    config: StyleConfig


def build_config(
    size: float,
    steps: float,
    style_strength: float,
    learning_rate: float,
    preview_every: float,
    seed: float,
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    init: str,
    base: StyleConfig | None = None,
) -> StyleConfig:
    """The engine config for the UI's values; the style strength scales ``style_weight`` (see config.py)."""
    if not isinstance(style_strength, (int, float)) or not STRENGTH_MIN <= style_strength <= STRENGTH_MAX:
        raise ConfigError(
            f"style_strength: {style_strength!r} is outside the allowed range [{STRENGTH_MIN:g}, {STRENGTH_MAX:g}]"
        )
    if isinstance(style_weight, (int, float)) and not isinstance(style_weight, bool):
        style_weight = style_weight * strength_multiplier(style_strength)
    return (base or StyleConfig()).replace(
        size=size,
        steps=steps,
        learning_rate=learning_rate,
        preview_every=preview_every,
        seed=seed,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        init=init,
    )


def check_request(content: str | Image.Image | None, style: str | Image.Image | None, *settings: object) -> Request:
    """Validate the images and settings of one request; raises ``gr.Error`` with a message for the user."""
    if content is None:
        raise gr.Error("Please add a content image (the photo to repaint).", title="Missing content image")
    if style is None:
        raise gr.Error("Please add a style image (the painting whose style to copy).", title="Missing style image")
    try:
        cfg = build_config(*settings)
        content_img, style_img = prepare_images(content, style, cfg)
    except (ConfigError, ImageError) as exc:
        raise gr.Error(str(exc), title="Invalid input") from None
    return Request(content_img, style_img, cfg)


def guard_image_input(component: gr.Image, name: str) -> gr.Image:
    """Make an image input answer undecodable uploads with a ``gr.Error`` instead of a bare server error.

    Gradio opens uploads with PIL before our code runs; a text file named .png would otherwise fail there
    with a message the client never sees.
    """
    preprocess = component.preprocess

    def safe_preprocess(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # whatever PIL says, the user needs one clear sentence
            raise gr.Error(
                f"{name}: not an image, or a format this app cannot read (use PNG, JPEG, WebP, GIF, BMP or TIFF)",
                title="Invalid input",
            ) from None

    component.preprocess = safe_preprocess
    return component


def estimate_seconds(pixels: int, steps: int) -> float:
    """Estimated GPU seconds for ``steps`` steps on an image of ``pixels`` pixels (without margin)."""
    return GPU_STARTUP_S + steps * (GPU_S_PER_STEP_FIXED + GPU_S_PER_MEGAPIXEL_STEP * pixels / 1e6)


def gpu_duration(request: Request, *args: object, **kwargs: object) -> int:
    """ZeroGPU ``duration=`` callable: seconds to request for this run (estimate x margin, clamped)."""
    width, height = request.content.size
    seconds = estimate_seconds(width * height, request.config.steps) * GPU_DURATION_MARGIN
    return int(min(GPU_DURATION_MAX_S, max(GPU_DURATION_MIN_S, math.ceil(seconds))))


def _status(frame: Frame, device: str, note: str = "") -> str:
    done = frame.step
    eta = frame.elapsed / done * (frame.total_steps - done) if 0 < done < frame.total_steps else 0.0
    terms = frame.losses
    text = (
        f"step {done}/{frame.total_steps} · {frame.elapsed:.1f} s"
        + (f" · ETA {eta:.0f} s" if eta else "")
        + f" · J = {terms['total']:.4g} (content {terms['content']:.4g}, style {terms['style']:.4g})"
        + f" · {device}"
    )
    return f"{text}\n{note}" if note else text


def _loss_rows(frame: Frame, cfg: StyleConfig) -> list[dict]:
    weighted = {
        "total J": frame.losses["total"],
        "α·content": cfg.content_weight * frame.losses["content"],
        "β·style": cfg.style_weight * frame.losses["style"],
    }
    return [
        {"step": frame.step, "term": k, "log10 cost": math.log10(v) if v > 0 else None} for k, v in weighted.items()
    ]


StreamItem = tuple[Image.Image, tuple[Image.Image, Image.Image], pd.DataFrame, str]


def stream(request: Request, model: VGGFeatures, time_budget_s: float | None = None) -> Iterator[StreamItem]:
    """Run the engine and yield ``(result, (before, after), loss table, status)`` per frame, CPU objects only.

    Stops cleanly (yielding the best image so far) when ``time_budget_s`` would be exceeded or the cost diverges.
    """
    device = _device_name(model)
    rows: list[dict] = []
    frame: Frame | None = None
    start = time.perf_counter()
    frames = stylize(request.content, request.style, request.config, model=model)
    try:
        for frame in frames:
            rows += _loss_rows(frame, request.config)
            note = ""
            over_budget = time_budget_s is not None and not frame.done and _projected_next(frame, start) > time_budget_s
            if over_budget:
                note = f"Stopped early at step {frame.step}: the next preview would exceed the GPU time limit."
            yield frame.image, (request.content, frame.image), pd.DataFrame(rows), _status(frame, device, note)
            if over_budget:
                return
    except NonFiniteLossError as exc:
        last = exc.last_frame
        if last is None:
            raise gr.Error(str(exc), title="Optimisation diverged") from None
        gr.Warning(str(exc))
        yield last.image, (request.content, last.image), pd.DataFrame(rows), _status(last, device, str(exc))
    except torch.OutOfMemoryError:
        raise gr.Error("Out of memory at this size. Try a smaller output size.", title="Out of memory") from None
    finally:
        frames.close()


def _projected_next(frame: Frame, start: float) -> float:
    """Wall time at which the frame after this one would arrive (linear in steps)."""
    elapsed = time.perf_counter() - start
    if frame.step == 0:
        return elapsed
    per_step = elapsed / frame.step
    interval = max(1, min(frame.total_steps - frame.step, frame.total_steps))
    return elapsed + per_step * min(interval, max(1, frame.step))


def _device_name(model: VGGFeatures) -> str:
    device = model.device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"
