"""What the Gradio Space needs beyond the engine: request validation, the strength mapping, the ZeroGPU duration
estimate, and turning frames into the values the UI (and ``gradio_client``) receive.

``app.py`` only lays out components and wires events; everything it calls lives here, so it can be tested
without a browser.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from collections.abc import Iterator, Mapping
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
from .images import ImageError, check_min_side
from .limits import GPU_DURATION_MAX_S, GPU_DURATION_MIN_S, MAX_PREVIEWS, MAX_UPLOAD_BYTES
from .limits import MAX_UPLOAD as MAX_UPLOAD  # re-exported: tests/conftest.py launches with it
from .model import VGGFeatures

# Only sizes and settings are logged, never file names, paths or pixels.
log = logging.getLogger(__name__)

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
GPU_DURATION_MARGIN = 1.5  # the clamp, GPU_DURATION_MIN_S..GPU_DURATION_MAX_S, is in limits.py


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


def check_request(
    content: str | bytes | Image.Image | None, style: str | bytes | Image.Image | None, *settings: object
) -> Request:
    """Validate the images and settings of one request; raises ``gr.Error`` with a message for the user.

    Runs in the main process before any GPU is requested, so bad input costs no GPU time.
    """
    if content is None:
        raise _error("Please add a content image (the photo to repaint).", "Missing content image")
    if style is None:
        raise _error("Please add a style image (the painting whose style to copy).", "Missing style image")
    try:
        cfg = build_config(*settings)
        if cfg.steps > MAX_PREVIEWS * cfg.preview_every:  # every preview is a PNG in the cache: bound them
            cfg = cfg.replace(preview_every=math.ceil(cfg.steps / MAX_PREVIEWS))
        content_img, style_img = prepare_images(content, style, cfg)
        check_min_side(content_img, "content image")
        check_min_side(style_img, "style image")
    except (ConfigError, ImageError) as exc:
        log.info("request refused: %s", type(exc).__name__)
        raise _error(str(exc), "Invalid input") from None
    log.info(
        "request: content %dx%d, style %dx%d, %d steps",
        *content_img.size,
        *style_img.size,
        cfg.steps,
    )
    return Request(content_img, style_img, cfg)


def _error(message: str, title: str) -> gr.Error:
    """A ``gr.Error`` for an expected problem: shown to the user, no traceback in the server log."""
    return gr.Error(message, title=title, print_exception=False)


def guard_image_input(component: gr.Image, name: str) -> gr.Image:
    """Hand uploads to our loader untouched, so every image gets our limits, conversions and messages.

    Gradio's own preprocessing would open the file with PIL first (a text file named .png then fails there, with a
    message the client never sees) and, for any mode but RGB, decode and convert it: 16-bit images clipped,
    transparency turned black, a decompression bomb decoded. Instead the uploaded file's path (or the bytes of a
    ``data:`` URL) is passed on as is, and ``images.load_image`` decodes it once in :func:`check_request`.
    Gradio has already checked that the path lies in its upload cache.
    """

    def preprocess(payload):
        if payload is None:
            return None
        url = getattr(payload, "url", None) or ""
        if url.startswith("data:"):
            return _decode_data_url(url, name)
        path = getattr(payload, "path", None)
        if not path:
            raise _error(f"{name}: no file was received", "Invalid input")
        return str(path)

    component.preprocess = preprocess
    return component


def _decode_data_url(url: str, name: str) -> bytes:
    header, _, data = url.partition(",")
    if not header.endswith(";base64"):
        raise _error(f"{name}: a data: URL must be base64-encoded", "Invalid input")
    if len(data) * 3 // 4 > MAX_UPLOAD_BYTES:
        raise _error(f"{name}: the image is larger than the upload limit ({MAX_UPLOAD})", "Invalid input")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _error(f"{name}: the data: URL is not valid base64", "Invalid input") from None


def guard_settings(components: Mapping[str, gr.components.Component]) -> None:
    """Make the settings' own checks (Gradio's range checks, run before ``stylize``) name the parameter.

    Gradio says "Value 0 is less than minimum value 32." and answers a string, ``null`` or NaN where a number is
    expected with a bare server error; this prefixes the parameter name and turns the latter into a clear message.
    """
    for name, component in components.items():
        component.preprocess = _named_preprocess(component, name)


def _named_preprocess(component: gr.components.Component, name: str):
    preprocess = component.preprocess
    numeric = isinstance(component, (gr.Slider, gr.Number))

    def named(payload):
        try:
            return preprocess(payload)
        except gr.Error as exc:
            raise _error(f"{name}: {exc.message}", "Invalid input") from None
        except Exception:  # e.g. "lots" < 32 (TypeError), int(round(nan)) (ValueError), int(inf) (OverflowError)
            expected = "a finite number" if numeric else "a valid value"
            raise _error(f"{name}: expected {expected}, got {_short_repr(payload)}", "Invalid input") from None

    return named


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    start = _clock()
    frames = stylize(request.content, request.style, request.config, model=model)
    try:
        for frame in frames:
            rows += _loss_rows(frame, request.config)
            note = ""
            over_budget = (
                time_budget_s is not None
                and not frame.done
                and _projected_next(frame, start, request.config.preview_every) > time_budget_s
            )
            if over_budget:
                note = f"Stopped early at step {frame.step}: the next preview would exceed the GPU time limit."
            yield frame.image, (request.content, frame.image), pd.DataFrame(rows), _status(frame, device, note)
            if over_budget:
                return
    except NonFiniteLossError as exc:
        last = exc.last_frame
        if last is None:
            raise _error(str(exc), "Optimisation diverged") from None
        gr.Warning(str(exc))
        yield last.image, (request.content, last.image), pd.DataFrame(rows), _status(last, device, str(exc))
    except torch.OutOfMemoryError:
        raise _error("Out of memory at this size. Try a smaller output size.", "Out of memory") from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc):  # the CPU allocator's out-of-memory message
            raise
        raise _error("Out of memory at this size. Try a smaller output size.", "Out of memory") from None
    finally:
        frames.close()


_clock = time.perf_counter  # the time budget's clock (tests replace it)


def _projected_next(frame: Frame, start: float, preview_every: int) -> float:
    """Seconds after ``start`` at which the frame after this one would arrive (linear in steps).

    The time per step includes the start-up (loading, targets), so the projection errs on the early side.
    """
    elapsed = _clock() - start
    if frame.step == 0:
        return elapsed
    per_step = elapsed / frame.step
    return elapsed + per_step * max(1, min(preview_every, frame.total_steps - frame.step))


def _device_name(model: VGGFeatures) -> str:
    device = model.device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"
