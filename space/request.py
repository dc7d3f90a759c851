"""One request to the endpoint, checked: the values by name become a :class:`Request` or a clear ``gr.Error``.

Runs in the main process before any GPU is requested, so bad input costs no GPU time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import gradio as gr
import torch
from PIL import Image, ImageChops

from style_transfer.config import MAX_SIZE, ConfigError, StyleConfig
from style_transfer.engine import Prepared, prepare
from style_transfer.images import ImageError, load_image, resize_longest
from style_transfer.output import FILE_FORMATS

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
    """A checked request: the engine's prepared run (settings and images, loaded once) and the Space's extras."""

    prepared: Prepared
    content: Image.Image  # the photo at the output size: the "before" of before/after
    output_format: str = "png"

    @property
    def config(self) -> StyleConfig:
        """The run's settings."""
        return self.prepared.config

    @property
    def styles(self) -> list[Image.Image]:
        """Every style image, the first style first."""
        return self.prepared.inputs.styles

    @property
    def background(self) -> Image.Image | None:
        """The style of the unpainted region (None: the photo is kept there)."""
        return next(iter(self.prepared.inputs.background_styles), None)


def engine_settings(values: Mapping[str, object]) -> dict[str, object]:
    """The engine settings in the endpoint's values, by name (a missing or ``None`` field keeps its default); the
    blend weights of the styles that are given become ``style_blend_weights``. ``engine.prepare`` checks them."""
    changes = {name: values[name] for name in CONFIG_FIELDS if values.get(name) is not None}
    extra = [name for name in EXTRA_STYLES if values.get(name) is not None]
    if extra:
        names = [f"{name}_blend" for name in ("style_1", *extra)]
        changes["style_blend_weights"] = tuple(1.0 if values.get(name) is None else values[name] for name in names)
    return changes


def check_request(values: Mapping[str, object]) -> Request:
    """Check the images and settings of one request (the endpoint's values by name) with the engine's
    :func:`~style_transfer.engine.prepare`: each image is loaded once, here, and the run gets them as they are.

    Raises ``gr.Error`` with a message for the user that names the problem; what the user should know before the
    run (a small photo is enlarged) is shown as a warning.
    """
    if values.get("content") is None:
        raise user_error("Please add a content image (the photo to repaint).", "Missing content image")
    if values.get("style") is None:
        raise user_error("Please add a style image (the painting whose style to copy).", "Missing style image")
    try:
        output_format = str(values.get("output_format") or FILE_FORMATS[0])
        if output_format not in FILE_FORMATS:
            raise ConfigError(f"output_format: {output_format!r} is not one of {', '.join(FILE_FORMATS)}")
        styles = [values["style"], *(values[name] for name in EXTRA_STYLES if values.get(name) is not None)]
        mask = mask_from_editor(values.get("mask"))
        background = values.get("background_style")
        prepared = prepare(values["content"], styles, mask=mask, background_style=background, **engine_settings(values))
        cfg = prepared.config
        top = max_size(torch.cuda.is_available())
        if cfg.size > top:
            raise ConfigError(
                f"size: {cfg.size} px is above this Space's limit of {top} px "
                f"(the command line and the Python API go to {MAX_SIZE} px)"
            )
        if cfg.steps > MAX_PREVIEWS * cfg.preview_every:  # every preview is a PNG in the cache: bound them
            cfg = prepared.config = cfg.replace(preview_every=math.ceil(cfg.steps / MAX_PREVIEWS))
        # The GPU worker gets the request pickled: images no larger than the run uses, not a 50 MP upload.
        prepared = prepared.fitted()
    except (ConfigError, ImageError, ValueError) as exc:
        log.info("request refused: %s", type(exc).__name__)
        raise user_error(str(exc), "Invalid input") from None
    for note in prepared.notes:
        gr.Warning(note)
    before = resize_longest(prepared.inputs.content, cfg.size)
    log.info(
        "request: content %dx%d, %d style(s), mask %s, %d steps",
        *before.size,
        len(styles),
        "yes" if prepared.inputs.mask is not None else "no",
        cfg.steps,
    )
    return Request(prepared, before, output_format)


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


def mask_from_editor(value: object, size: tuple[int, int] | None = None) -> Image.Image | None:
    """The region mask ("L", white = paint) from a ``gr.ImageEditor`` value, or None when nothing is painted.

    Painted layers count by their opacity; an opaque layer (an uploaded black-and-white mask) by its brightness.
    The mask has ``size``, or the first layer's size (the engine fits it to the photo).
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
        size = size or part.size
        part = part.resize(size, Image.Resampling.BILINEAR)
        mask = part if mask is None else ImageChops.lighter(mask, part)
    if mask is None or mask.getextrema()[1] == 0:
        return None
    return mask
