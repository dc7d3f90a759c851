"""One request to the endpoint, checked: the values by name become a :class:`Request` or a clear ``gr.Error``.

Runs in the main process before any GPU is requested, so bad input costs no GPU time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import gradio as gr
import torch
from PIL import Image, ImageChops

from style_transfer.config import (
    MAX_SIZE,
    OUTPUT_FORMATS,
    STRENGTH_DEFAULT,
    STRENGTH_MAX,
    STRENGTH_MIN,
    ConfigError,
    StyleConfig,
    field_spec,
    strength_multiplier,
)
from style_transfer.engine import prepare_images, prepare_style
from style_transfer.images import ImageError, load_image, resize_longest

from .errors import user_error
from .limits import MAX_PREVIEWS, max_size
from .params import BY_NAME

# Only sizes and settings are logged, never file names, paths or pixels.
log = logging.getLogger(__name__)

# The endpoint's parameters that are StyleConfig fields (passed on by name); the others are handled below.
CONFIG_FIELDS = tuple(f.name for f in fields(StyleConfig) if f.name in BY_NAME)
EXTRA_STYLES = ("style_2", "style_3")  # their blend weights are style_2_blend, style_3_blend


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


def build_config(values: Mapping[str, object], base: StyleConfig | None = None) -> StyleConfig:
    """The engine config for the endpoint's values, by name (a missing or ``None`` field keeps its default).

    The style strength scales ``style_weight`` and ``tv_weight`` (see config.py); the blend weights of the styles
    that are given become ``style_blend_weights``.
    """
    strength = values.get("style_strength", STRENGTH_DEFAULT)
    if not isinstance(strength, (int, float)) or not STRENGTH_MIN <= strength <= STRENGTH_MAX:
        raise ConfigError(
            f"style_strength: {strength!r} is outside the allowed range [{STRENGTH_MIN:g}, {STRENGTH_MAX:g}]"
        )
    base = base or StyleConfig()
    changes = {name: values[name] for name in CONFIG_FIELDS if values.get(name) is not None}
    factor = strength_multiplier(strength)
    for name in ("style_weight", "tv_weight"):  # the smoothing keeps its balance with the style (config.py)
        weight = changes.get(name, getattr(base, name))
        if isinstance(weight, (int, float)) and not isinstance(weight, bool):
            top = field_spec(name).metadata["max"]
            if weight * factor > top:  # a value the user never typed: say where it comes from
                raise ConfigError(
                    f"{name}: {weight:g} × {factor:g} (style strength {strength:g}) is above the maximum {top:g}; "
                    "lower one of them"
                )
            changes[name] = weight * factor
    extra = [name for name in EXTRA_STYLES if values.get(name) is not None]
    if extra:
        names = [f"{name}_blend" for name in ("style_1", *extra)]
        blends = tuple(1.0 if values.get(name) is None else values[name] for name in names)
        if all(isinstance(b, (int, float)) and b == 0 for b in blends):  # named as the endpoint names them
            raise ConfigError(f"{', '.join(names)}: at least one blend weight must be above 0")
        changes["style_blend_weights"] = blends
    return base.replace(**changes)


def check_request(values: Mapping[str, object]) -> Request:
    """Validate the images and settings of one request (the endpoint's values by name).

    Raises ``gr.Error`` with a message for the user that names the problem.
    """
    if values.get("content") is None:
        raise user_error("Please add a content image (the photo to repaint).", "Missing content image")
    if values.get("style") is None:
        raise user_error("Please add a style image (the painting whose style to copy).", "Missing style image")
    try:
        cfg = build_config(values)
        top = max_size(torch.cuda.is_available())
        if cfg.size > top:
            raise ConfigError(
                f"size: {cfg.size} px is above this Space's limit of {top} px "
                f"(the command line and the Python API go to {MAX_SIZE} px)"
            )
        output_format = str(values.get("output_format") or OUTPUT_FORMATS[0])
        if output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"output_format: {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if cfg.steps > MAX_PREVIEWS * cfg.preview_every:  # every preview is a PNG in the cache: bound them
            cfg = cfg.replace(preview_every=math.ceil(cfg.steps / MAX_PREVIEWS))
        content_img, style_img = prepare_images(values["content"], values["style"], cfg)
        styles = [style_img]
        for name in EXTRA_STYLES:
            if values.get(name) is not None:
                styles.append(prepare_style(values[name], cfg, BY_NAME[name].what))
        background_style = values.get("background_style")
        background = (
            prepare_style(background_style, cfg, BY_NAME["background_style"].what) if background_style else None
        )
        mask_img = mask_from_editor(values.get("mask"), content_img.size)
        if background is not None and mask_img is None:
            raise ValueError(
                "Background style: it paints the part of the photo outside the mask, and nothing is painted on the "
                "mask; paint the region to style, or remove the background style."
            )
    except (ConfigError, ImageError, ValueError) as exc:
        log.info("request refused: %s", type(exc).__name__)
        raise user_error(str(exc), "Invalid input") from None
    log.info(
        "request: content %dx%d, %d style(s), mask %s, %d steps",
        *content_img.size,
        len(styles),
        "yes" if mask_img is not None else "no",
        cfg.steps,
    )
    return Request(content_img, style_img, cfg, styles, mask_img, background, output_format)


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
