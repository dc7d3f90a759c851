"""Saving results as PNG, JPEG or WebP with the run's settings embedded, so any result can be reproduced.

PNG gets a text chunk, JPEG a comment, WebP an EXIF ImageDescription; each holds the same JSON
(``{"software": ..., "settings": {...}}``), which :func:`read_settings` reads back from any of the three.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, PngImagePlugin

from . import __version__
from .config import OUTPUT_FORMATS

METADATA_KEY = "style_transfer"
_EXIF_IMAGE_DESCRIPTION = 0x010E
# Each file suffix and its format (the one map of both); a format's first suffix is the one results are written with.
_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def format_for(path: str | Path) -> str:
    """The output format implied by a file name (``.png``, ``.jpg``/``.jpeg``, ``.webp``); ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"output: unsupported file type {suffix!r}; use .png, .jpg or .webp")
    return _SUFFIXES[suffix]


def suffix_for(fmt: str) -> str:
    """The file suffix a result in ``fmt`` is written with (``jpeg`` -> ``.jpg``); StopIteration for no format."""
    return next(suffix for suffix, known in _SUFFIXES.items() if known == fmt)


def save_image(
    image: Image.Image,
    target: str | Path | BinaryIO,
    fmt: str | None = None,
    settings: dict[str, Any] | None = None,
    quality: int = 95,
) -> None:
    """Write ``image`` as ``fmt`` (default: from the file name) with ``settings`` embedded as JSON."""
    fmt = fmt or format_for(target)  # type: ignore[arg-type]
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output_format: {fmt!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    text = json.dumps({"software": f"style_transfer {__version__}", "settings": settings or {}}, sort_keys=True)
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(METADATA_KEY, text)
        image.save(target, format="PNG", pnginfo=info)
    elif fmt == "jpeg":
        image.convert("RGB").save(target, format="JPEG", quality=quality, subsampling=0, comment=text.encode())
    else:
        exif = Image.Exif()
        exif[_EXIF_IMAGE_DESCRIPTION] = text
        image.save(target, format="WEBP", quality=quality, method=6, exif=exif.tobytes())


def encode_image(image: Image.Image, fmt: str, settings: dict[str, Any] | None = None) -> bytes:
    """The bytes :func:`save_image` would write."""
    buffer = io.BytesIO()
    save_image(image, buffer, fmt, settings)
    return buffer.getvalue()


def read_settings(source: str | Path | bytes) -> dict[str, Any] | None:
    """The settings embedded by :func:`save_image`, or None if the file has none."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        text = img.info.get(METADATA_KEY) or img.info.get("comment") or img.getexif().get(_EXIF_IMAGE_DESCRIPTION)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text)["settings"] if text else None
    except (ValueError, KeyError, TypeError):
        return None
