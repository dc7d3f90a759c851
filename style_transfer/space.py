"""What the Gradio Space needs beyond the engine: request validation, the strength mapping, the ZeroGPU duration
estimate, and turning frames into the values the UI (and ``gradio_client``) receive.

``app.py`` only lays out components and wires events; everything it calls lives here, so it can be tested
without a browser.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import math
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd
import torch
from PIL import Image, ImageChops

from .config import (
    OUTPUT_FORMATS,
    STRENGTH_MAX,
    STRENGTH_MIN,
    ConfigError,
    StyleConfig,
    strength_multiplier,
)
from .engine import Frame, NonFiniteLossError, prepare_images, style_side, stylize
from .images import ImageError, check_min_side, load_image, resize_longest
from .limits import DELETE_CACHE, GPU_DURATION_MAX_S, GPU_DURATION_MIN_S, MAX_PREVIEWS, MAX_UPLOAD_BYTES
from .limits import MAX_UPLOAD as MAX_UPLOAD  # re-exported: tests/conftest.py launches with it
from .model import VGGFeatures
from .output import save_image

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

# Settings added by the features issue, after the ten above (API keyword arguments; UI: "More styles", "Colour,
# region and output", "Advanced"). The extra images are passed separately (EXTRA_IMAGES).
FEATURES = (
    "style_1_blend",
    "style_2_blend",
    "style_3_blend",
    "preserve_colors",
    "style_scale",
    "scales",
    "optimizer",
    "pooling",
    "precision",
    "output_format",
)
EXTRA_IMAGES = ("style_2", "style_3", "mask", "background_style")

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
    styles: list[Image.Image] = field(default_factory=list)  # every style image, ``style`` first
    mask: Image.Image | None = None  # "L", white where the style goes
    background: Image.Image | None = None  # style of the unpainted region
    output_format: str = "png"


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
    content: str | bytes | Image.Image | None,
    style: str | bytes | Image.Image | None,
    *settings: object,
    features: Mapping[str, object] | None = None,
    style_2: object = None,
    style_3: object = None,
    mask: object = None,
    background_style: object = None,
) -> Request:
    """Validate the images and settings of one request; raises ``gr.Error`` with a message for the user.

    ``settings`` are the ten :data:`SETTINGS` in order; ``features`` holds any of :data:`FEATURES`.
    Runs in the main process before any GPU is requested, so bad input costs no GPU time.
    """
    if content is None:
        raise _error("Please add a content image (the photo to repaint).", "Missing content image")
    if style is None:
        raise _error("Please add a style image (the painting whose style to copy).", "Missing style image")
    features = dict(features or {})
    try:
        cfg = build_config(*settings)
        output_format = str(features.pop("output_format", "png") or "png")
        if output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"output_format: {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        extra_styles = [(s, features.get(f"style_{i}_blend", 1.0)) for i, s in ((2, style_2), (3, style_3))]
        blends = [features.get("style_1_blend", 1.0)] + [b for s, b in extra_styles if s is not None]
        changes = {k: v for k, v in features.items() if not k.endswith("_blend") and v is not None}
        if len(blends) > 1:
            changes["style_blend_weights"] = tuple(blends)
        cfg = cfg.replace(**changes)
        if cfg.steps > MAX_PREVIEWS * cfg.preview_every:  # every preview is a PNG in the cache: bound them
            cfg = cfg.replace(preview_every=math.ceil(cfg.steps / MAX_PREVIEWS))
        content_img, style_img = prepare_images(content, style, cfg)
        styles = [style_img]
        for number, (extra, _) in enumerate(extra_styles, start=2):
            if extra is not None:
                styles.append(_style_image(extra, cfg, f"style image {number}"))
        background = _style_image(background_style, cfg, "background style image") if background_style else None
        mask_img = mask_from_editor(mask, content_img.size)
    except (ConfigError, ImageError, ValueError) as exc:
        log.info("request refused: %s", type(exc).__name__)
        raise _error(str(exc), "Invalid input") from None
    log.info(
        "request: content %dx%d, %d style(s), mask %s, %d steps",
        *content_img.size,
        len(styles),
        "yes" if mask_img is not None else "no",
        cfg.steps,
    )
    return Request(content_img, style_img, cfg, styles, mask_img, background, output_format)


def _style_image(source: object, cfg: StyleConfig, name: str) -> Image.Image:
    img = resize_longest(load_image(source, name=name), style_side(cfg.size, cfg))
    check_min_side(img, name)
    return img


def mask_editor_value(content: object) -> dict:
    """The mask editor's value for a new content photo: the photo as background, nothing painted yet.

    A file our loader refuses leaves the editor as it is (``stylize`` reports the problem on Generate).
    """
    if content is None:
        return {"background": None, "layers": [], "composite": None}
    try:
        img = resize_longest(load_image(content, name="content image"), 1024)
    except ImageError:
        return gr.skip()
    return {"background": img, "layers": [], "composite": img}


def mask_from_editor(value: object, size: tuple[int, int]) -> Image.Image | None:
    """The region mask ("L", white = paint) from a ``gr.ImageEditor`` value, or None when nothing is painted.

    Painted layers count by their opacity; an opaque layer (an uploaded black-and-white mask) by its brightness.
    """
    if value is None:
        return None
    layers = value.get("layers") if isinstance(value, Mapping) else [value]
    mask: Image.Image | None = None
    for layer in layers or []:
        if layer is None:
            continue
        img = load_image(layer, name="mask") if not isinstance(layer, Image.Image) else layer
        if img.mode in ("RGBA", "LA", "PA") and img.getchannel("A").getextrema()[0] < 255:
            part = img.getchannel("A")
        else:
            part = load_image(img, name="mask").convert("L")
        part = part.resize(size, Image.Resampling.BILINEAR)
        mask = part if mask is None else ImageChops.lighter(mask, part)
    if mask is None or mask.getextrema()[1] == 0:
        return None
    return mask


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


StreamItem = tuple[Image.Image, tuple[Image.Image, Image.Image], pd.DataFrame, str, str | None]


def stream(
    request: Request, models: VGGFeatures | Mapping[str, VGGFeatures], time_budget_s: float | None = None
) -> Iterator[StreamItem]:
    """Run the engine and yield ``(result, (before, after), loss table, status, download)`` per frame.

    Only CPU objects are yielded (ZeroGPU pickles them). ``download`` is None until the final frame, then a file
    in the requested format with the settings embedded. ``models`` maps a pooling ("max"/"avg") to a loaded
    network (one network is used for both). Stops cleanly, yielding the best image so far, when ``time_budget_s``
    would be exceeded or the cost diverges.
    """
    model = models if isinstance(models, VGGFeatures) else models[request.config.pooling]
    device = _device_name(model)
    rows: list[dict] = []
    frame: Frame | None = None
    start = _clock()
    frames = stylize(
        request.content,
        request.styles or request.style,
        request.config,
        model=model,
        mask=request.mask,
        background_style=request.background,
    )

    def item(frame: Frame, note: str = "", final: bool = False) -> StreamItem:
        download = save_result(frame, request) if final else None
        status = _status(frame, device, note)
        return frame.image, (request.content, frame.image), pd.DataFrame(rows), status, download

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
            yield item(frame, note, final=frame.done or over_budget)
            if over_budget:
                return
    except NonFiniteLossError as exc:
        last = exc.last_frame
        if last is None:
            raise _error(str(exc), "Optimisation diverged") from None
        gr.Warning(str(exc))
        yield item(last, str(exc), final=True)
    except torch.OutOfMemoryError:
        raise _error("Out of memory at this size. Try a smaller output size.", "Out of memory") from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc):  # the CPU allocator's out-of-memory message
            raise
        raise _error("Out of memory at this size. Try a smaller output size.", "Out of memory") from None
    finally:
        frames.close()


RESULTS_DIR = Path(tempfile.gettempdir()) / "style_transfer_results"


def save_result(frame: Frame, request: Request) -> str:
    """Write the frame in the requested format, settings embedded; old files are swept (limits.DELETE_CACHE)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    cutoff = time.time() - DELETE_CACHE[1]
    for old in RESULTS_DIR.glob("stylized-*"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    suffix = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[request.output_format]
    path = RESULTS_DIR / f"stylized-{uuid.uuid4().hex[:12]}{suffix}"
    settings = {**request.config.to_dict(), "steps_done": frame.step}
    save_image(frame.image, path, request.output_format, settings)
    return str(path)


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
