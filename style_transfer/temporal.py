"""Stylising a clip frame by frame without flicker (Ruder, Dosovitskiy and Brox, "Artistic style transfer for
videos", 2016).

Every frame is a still-image run of :func:`~style_transfer.engine.stylize`; what ties them together is given to it
as a starting image and one more cost term. Frame 1 gets the full ``steps`` from ``cfg.init``. Each later frame
starts from the previous stylised frame warped onto it by optical flow (:mod:`.flow`), and the temporal cost
``temporal_weight · mean(c · (x − warped)²)`` keeps it there wherever the reliability ``c`` trusts the warp, while
disoccluded pixels and motion boundaries are free to change; it needs only ``frame_steps`` steps. With
``temporal_weight`` 0 every frame is a still of its own (``steps`` each, from ``cfg.init``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import colour, flow
from .config import ConfigError, StyleConfig, VideoConfig
from .engine import Frame, StyleSource, _as_list, _style_name, stylize
from .images import ImageSource, load_image, pil_to_tensor
from .model import VGGFeatures, load_model, resolve_device
from .video import Clip, read_clip


@dataclass
class VideoFrame:
    """One streamed state of a video run: frame ``index`` (0-based) of ``total`` after ``step`` of its ``steps``.

    ``finished`` marks a frame's final image (the one a result keeps); the others are previews of the frame in
    progress. ``eta`` is the estimated number of seconds left for the whole clip (None until one frame is done).
    """

    index: int
    total: int
    step: int
    steps: int
    image: Image.Image
    losses: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    eta: float | None = None
    finished: bool = False
    clip: Clip | None = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)  # of a finished frame: "flow" and "optimise" seconds

    @property
    def done(self) -> bool:
        """True for the last frame's final image."""
        return self.finished and self.index + 1 >= self.total


def split_settings(overrides: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """Keyword settings split into StyleConfig's and VideoConfig's (unknown names go to StyleConfig, which refuses
    them by name)."""
    video_names = {f.name for f in fields(VideoConfig)}
    style = {k: v for k, v in overrides.items() if k not in video_names}
    video = {k: v for k, v in overrides.items() if k in video_names}
    return style, video


def stylize_video(
    content: str | os.PathLike | Clip,
    style: StyleSource,
    config: StyleConfig | None = None,
    *,
    video: VideoConfig | None = None,
    model: VGGFeatures | None = None,
    mask: ImageSource | None = None,
    background_style: StyleSource | None = None,
    **overrides: object,
) -> Iterator[VideoFrame]:
    """Paint every frame of the clip ``content`` in the style of ``style``, yielding :class:`VideoFrame` objects:
    previews while a frame is optimised, and each frame's final image (``finished``). Closing the generator stops
    the run; the finished frames so far are a shorter clip.

    ``content`` is a file (MP4, WebM, MOV, MKV, animated GIF or WebP) or a :class:`Clip` already read. Keyword
    ``overrides`` may name fields of :class:`StyleConfig` and :class:`VideoConfig`. The settings and the clip are
    checked at the call (``ConfigError``, ``VideoError``), before any network work; the clip is read then too.
    Styles, blends, masks and colour preservation act on every frame as on a still.
    """
    start = time.perf_counter()
    if config is not None and not isinstance(config, StyleConfig):
        raise TypeError(f"config: expected a StyleConfig, got {type(config).__name__}")
    if video is not None and not isinstance(video, VideoConfig):
        raise TypeError(f"video: expected a VideoConfig, got {type(video).__name__}")
    style_changes, video_changes = split_settings(overrides)
    cfg = (config if config is not None else StyleConfig()).replace(**style_changes)
    vcfg = (video if video is not None else VideoConfig()).replace(**video_changes)
    clip = content if isinstance(content, Clip) else read_clip(content, cfg.size, vcfg)
    if not clip.frames:
        raise ConfigError("content: the clip has no frames")
    styles = [load_image(s, name=_style_name(i, len(_as_list(style)))) for i, s in enumerate(_as_list(style))]
    background = [load_image(s, name="background style image") for s in _as_list(background_style or [])]
    mask_img = load_image(mask, name="mask", matte=0).convert("L") if mask is not None else None
    return _run(clip, styles, cfg, vcfg, model, mask_img, background or None, start)


def _run(
    clip: Clip,
    styles: Sequence[Image.Image],
    cfg: StyleConfig,
    vcfg: VideoConfig,
    model: VGGFeatures | None,
    mask: Image.Image | None,
    background: Sequence[Image.Image] | None,
    start: float,
) -> Iterator[VideoFrame]:
    if model is None:
        model = load_model(cfg.weights, resolve_device(cfg.device), cfg.pooling)
    temporal = cfg.temporal_weight > 0
    # The optimised pixels are warped to the next frame; the photo's colours are put back only on what is shown, so
    # they are not applied twice.
    luminance = cfg.preserve_colors == "luminance"
    run_cfg = cfg.replace(preserve_colors="none") if luminance else cfg
    total = len(clip)
    previous: np.ndarray | None = None  # the previous frame's optimised pixels, (H, W, 3) float32 in [0, 1]
    first: np.ndarray | None = None
    later_seconds: list[float] = []
    step_ratio = vcfg.frame_steps / cfg.steps if temporal else 1.0  # a later frame's steps against the first's
    first_seconds = 0.0
    for index, content in enumerate(clip.frames):
        began = time.perf_counter()
        warm = temporal and previous is not None
        frame_cfg = run_cfg.replace(steps=vcfg.frame_steps) if warm else run_cfg
        init_image = guide = None
        flow_seconds = 0.0
        if warm:
            assert previous is not None
            targets = [_guide(clip.frames[index - 1], content, previous, vcfg.flow)]
            if vcfg.loop and index == total - 1 and total > 2 and first is not None:
                targets.append(_guide(clip.frames[0], content, first, vcfg.flow))  # the last frame leads to the first
            init_image = _tensor(targets[0][0])
            guide = _combine(targets)
            flow_seconds = time.perf_counter() - began
        frames = stylize(
            content,
            list(styles),
            frame_cfg,
            model=model,
            mask=mask,
            background_style=list(background) if background else None,
            init_image=init_image,
            temporal=guide,
        )
        last: Frame | None = None
        for last in frames:
            if last.done:
                break
            eta = _eta(index, total, first_seconds, later_seconds, step_ratio)
            yield _video_frame(clip, index, last, frame_cfg.steps, _shown(last.image, content, luminance), start, eta)
        assert last is not None
        result = np.asarray(last.image, dtype=np.float32) / 255.0
        previous = result
        if index == 0:
            first = result
        seconds = time.perf_counter() - began
        if index == 0:
            first_seconds = seconds
        else:
            later_seconds.append(seconds)
        eta = _eta(index + 1, total, first_seconds, later_seconds, step_ratio) if index + 1 < total else 0.0
        timings = {"flow": flow_seconds, "optimise": seconds - flow_seconds}
        shown = _shown(last.image, content, luminance)
        yield _video_frame(clip, index, last, frame_cfg.steps, shown, start, eta, finished=True, timings=timings)


def _video_frame(
    clip: Clip, index: int, frame: Frame, steps: int, shown: Image.Image, start: float, eta: float | None, **extra: Any
) -> VideoFrame:
    """Frame ``index`` of ``clip`` as the still run's ``frame`` left it, shown as ``shown``."""
    return VideoFrame(
        index, len(clip), frame.step, steps, shown, frame.losses, time.perf_counter() - start, eta, clip=clip, **extra
    )


def _guide(
    source: Image.Image, target: Image.Image, stylised: np.ndarray, preset: str
) -> tuple[np.ndarray, np.ndarray]:
    """``stylised`` (the result for frame ``source``) warped onto frame ``target``, and where to trust it."""
    backward = flow.optical_flow(target, source, preset)  # for each pixel of target: where it was in source
    forward = flow.optical_flow(source, target, preset)
    warped, _ = flow.warp(stylised, backward)
    trust = flow.reliability(backward, forward)
    # What came into view (at the border, or from behind something that moved) has no previous result: it starts
    # from the photo. Warped there it would be a smear of the edge, or a ghost of what moved, that fewer steps
    # cannot paint over and the next frames would keep.
    photo = np.asarray(target, dtype=np.float32) / 255.0
    return np.where(trust[..., None] > 0, warped, photo), trust


def _combine(targets: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One (target, weight) for several: Σ cᵢ (x − ωᵢ)² = (Σ cᵢ) (x − Σ cᵢ ωᵢ / Σ cᵢ)² + a constant."""
    if len(targets) == 1:
        warped, weight = targets[0]
        return _tensor(warped), torch.from_numpy(weight)[None, None]
    weight = sum(c for _, c in targets)
    blended = sum(w * c[..., None] for w, c in targets) / np.maximum(weight, 1e-6)[..., None]
    return _tensor(blended.astype(np.float32)), torch.from_numpy(weight.astype(np.float32))[None, None]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)[None]


def _shown(image: Image.Image, content: Image.Image, luminance: bool) -> Image.Image:
    if not luminance:
        return image
    kept = colour.keep_content_colours(pil_to_tensor(image), pil_to_tensor(content))
    return Image.fromarray(kept.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy(), "RGB")


def _eta(done: int, total: int, first: float, later: Sequence[float], ratio: float) -> float | None:
    """Seconds left: later frames take about the mean of those done so far (before any, the first frame's time
    scaled by their share of its steps)."""
    if done == 0:
        return None
    each = sum(later) / len(later) if later else first * ratio
    return each * (total - done)
