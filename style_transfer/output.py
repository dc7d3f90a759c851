"""Saving results as PNG, JPEG, WebP or 16-bit TIFF with the run's settings embedded, so any result can be
reproduced.

PNG gets a text chunk, JPEG a comment, WebP an EXIF ImageDescription, TIFF its ImageDescription tag; each holds the
same JSON (``{"software": ..., "settings": {...}}``), which :func:`read_settings` reads back from any of them. A
TIFF holds 16 bits per channel when given the final frame's ``image16`` (the optimised pixels rounded once), else
the 8-bit picture as it is. A file is written under a temporary name in its folder and renamed when complete, so a
full disk leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, PngImagePlugin

from . import __version__
from .config import OUTPUT_FORMATS

METADATA_KEY = "style_transfer"
EXIF_IMAGE_DESCRIPTION = 0x010E
# Each file suffix and its format (the one map of both); a format's first suffix is the one results are written with.
_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}
# What files can hold: the Space's download formats, and TIFF (16 bits per channel, for print).
FILE_FORMATS = (*OUTPUT_FORMATS, "tiff")


def format_for(path: str | Path) -> str:
    """The output format implied by a file name (``.png``, ``.jpg``/``.jpeg``, ``.webp``, ``.tif``/``.tiff``);
    ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"output: unsupported file type {suffix!r}; use .png, .jpg, .webp or .tif")
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
    image16: np.ndarray | None = None,
) -> None:
    """Write ``image`` as ``fmt`` (default: from the file name) with ``settings`` embedded as JSON; a TIFF takes
    ``image16`` ((H, W, 3) uint16) instead when given. A path is written whole or not at all."""
    fmt = fmt or format_for(target)  # type: ignore[arg-type]
    if fmt not in FILE_FORMATS:
        raise ValueError(f"output_format: {fmt!r} is not one of {', '.join(FILE_FORMATS)}")
    text = settings_text(settings)
    if isinstance(target, (str, Path)):
        with replaced(Path(target)) as part:
            _write(image, part, fmt, text, quality, image16)
    else:
        _write(image, target, fmt, text, quality, image16)


@contextlib.contextmanager
def replaced(path: Path):
    """A temporary file next to ``path``, renamed to it when the block ends without error, else removed."""
    name = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask's mode, as a plain open's
    try:
        yield name
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def _write(
    image: Image.Image, target: Path | BinaryIO, fmt: str, text: str, quality: int, image16: np.ndarray | None
) -> None:
    if fmt == "tiff":
        import tifffile  # only for TIFF files

        pixels = image16 if image16 is not None else np.asarray(image.convert("RGB"))
        # metadata=None: no tifffile JSON of its own, so ImageDescription holds ours alone.
        tifffile.imwrite(target, pixels, photometric="rgb", compression="zlib", description=text, metadata=None)
    elif fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(METADATA_KEY, text)
        image.save(target, format="PNG", pnginfo=info)
    elif fmt == "jpeg":
        image.convert("RGB").save(target, format="JPEG", quality=quality, subsampling=0, comment=text.encode())
    else:
        exif = Image.Exif()
        exif[EXIF_IMAGE_DESCRIPTION] = text
        image.save(target, format="WEBP", quality=quality, method=6, exif=exif.tobytes())


def encode_image(image: Image.Image, fmt: str, settings: dict[str, Any] | None = None) -> bytes:
    """The bytes :func:`save_image` would write."""
    buffer = io.BytesIO()
    save_image(image, buffer, fmt, settings)
    return buffer.getvalue()


def read_settings(source: str | Path | bytes) -> dict[str, Any] | None:
    """The settings embedded by :func:`save_image`, or None if the file has none."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    if _is_tiff(source):
        import tifffile

        with tifffile.TiffFile(stream) as tif:
            text = tif.pages.first.description
    else:
        with Image.open(stream) as img:
            text = img.info.get(METADATA_KEY) or img.info.get("comment") or img.getexif().get(EXIF_IMAGE_DESCRIPTION)
    return settings_from_text(text)


def settings_text(settings: dict[str, Any] | None) -> str:
    """The JSON every result embeds (stills and videos alike): the software and the settings."""
    return json.dumps({"software": f"style_transfer {__version__}", "settings": settings or {}}, sort_keys=True)


def settings_from_text(text: str | bytes | None) -> dict[str, Any] | None:
    """The settings in an embedded metadata text (as any of our files carry it), or None if it holds none."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text)["settings"] if text else None
    except (ValueError, KeyError, TypeError):
        return None


def _is_tiff(source: str | Path | bytes) -> bool:
    if isinstance(source, bytes):
        head = source[:4]
    else:
        with open(source, "rb") as fh:
            head = fh.read(4)
    return head in (b"II*\x00", b"MM\x00*")
