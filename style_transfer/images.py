"""Loading user images safely into RGB, resizing them, and converting between PIL and tensors.

Every input (a path, raw bytes, a PIL image or a numpy array) ends up as an upright 8-bit RGB PIL image:
EXIF orientation applied, transparency composited on white, 16-bit data and floats in [0, 1] scaled, the first
frame of an animation. Oversized images are refused from their header, before their pixels are decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .limits import MAX_INPUT_PIXELS, MIN_IMAGE_SIDE, MIN_INPUT_SIDE

READABLE = "PNG, JPEG, WebP, AVIF, GIF, BMP or TIFF"

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


class ImageError(ValueError):
    """An input image could not be used; the message says which and why, in words for the user."""


def load_image(source: ImageSource, *, name: str = "image", matte: int = 255) -> Image.Image:
    """Open ``source`` and return it as an upright RGB PIL image. ``name`` labels the image in error messages;
    transparent parts are composited on the grey level ``matte`` (white; a mask's are black: not painted)."""
    if isinstance(source, np.ndarray):
        return _from_array(source, name, matte)
    if isinstance(source, Image.Image):
        try:
            return _to_rgb(source, name, matte)
        except ImageError:
            raise
        except Exception as exc:  # e.g. a mode PIL cannot convert
            raise ImageError(f"{name}: cannot use this image ({source.mode} {source.size}: {exc})") from None
    if isinstance(source, bytes):
        return _open(io.BytesIO(source), name, matte)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: file not found: {path}")
        return _open(path, name, matte)
    raise ImageError(f"{name}: expected a file path, bytes, a PIL image or a numpy array, got {type(source).__name__}")


def _open(fp: Path | io.BytesIO, name: str, matte: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL only warns between its own limit and twice it; we decide ourselves from the header below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                _check_pixels(img, name)
                img.load()  # decode now, inside the try, so truncated files fail here
                return _to_rgb(img, name, matte)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        limit = f"{MAX_INPUT_PIXELS:,}"
        raise ImageError(f"{name}: the image is too large to open safely (the limit is {limit} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError(_unreadable_message(fp, name)) from None
    except Exception as exc:  # a decoder fails in many ways on a hostile file; each means "damaged"
        detail = str(exc).replace(str(fp), "<file>") if isinstance(fp, Path) else str(exc)
        detail = f" ({detail[:120]})" if detail else ""
        raise ImageError(f"{name}: the file is damaged or truncated and cannot be decoded{detail}") from None


# Formats people upload that PIL cannot read, recognised from their first bytes for a precise message.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftyphevc", "HEIC"),
    (4, b"ftypheim", "HEIC"),
    (4, b"ftypheis", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypmsf1", "HEIF"),
    (0, b"%PDF", "PDF"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
)


def _unreadable_message(fp: Path | io.BytesIO, name: str) -> str:
    """Why PIL could not identify the file, as precisely as its first bytes allow."""
    try:
        if isinstance(fp, Path):
            with fp.open("rb") as f:
                head = f.read(512)
        else:
            head = fp.getvalue()[:512]
    except OSError:
        head = b""
    kind = next((label for offset, magic, label in _SIGNATURES if head[offset : offset + len(magic)] == magic), None)
    text = head.lstrip().lower()
    if kind is None and (text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)):
        kind = "SVG (vector)"
    if kind:
        return f"{name}: {kind} images are not supported; save it as {READABLE} and try again"
    if not head:
        return f"{name}: the file is empty"
    return f"{name}: not an image, or a format this app cannot read (use {READABLE})"


def check_min_side(img: Image.Image, name: str = "image") -> None:
    """Refuse an image (already at its working size) that is too thin for the network: VGG-19 pools four times
    before its deepest layers, so each side must be at least ``MIN_IMAGE_SIDE`` pixels."""
    width, height = img.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageError(
            f"{name}: too narrow for this output size ({width}x{height} px after resizing; each side must be at "
            f"least {MIN_IMAGE_SIDE} px). Crop it to a less elongated shape or choose a larger output size."
        )


def check_input_side(img: Image.Image, name: str = "image") -> None:
    """Refuse a picture (as given, before any resizing) with a side under ``MIN_INPUT_SIDE`` pixels."""
    width, height = img.size
    if min(width, height) < MIN_INPUT_SIDE:
        thin = max(width, height) >= MIN_INPUT_SIDE
        raise ImageError(
            f"{name}: too {'narrow' if thin else 'small'} ({width}x{height} px; each side must be at least "
            f"{MIN_INPUT_SIDE} px). " + ("Crop it to a less elongated shape." if thin else "Use a larger picture.")
        )


def _check_pixels(img: Image.Image, name: str) -> None:
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image is empty ({width}x{height})")
    if width * height > MAX_INPUT_PIXELS:
        raise ImageError(
            f"{name}: the image is too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_INPUT_PIXELS:,})"
        )


def _to_rgb(img: Image.Image, name: str, matte: int = 255) -> Image.Image:
    """Any PIL mode -> upright RGB; transparency goes on grey level ``matte``, high bit depths are scaled to 8 bits."""
    _check_pixels(img, name)
    if getattr(img, "is_animated", False) and img.tell() != 0:
        img.seek(0)  # animations: the first frame (is_animated, unlike n_frames, does not walk every frame)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _from_array(np.asarray(img), name, matte, bits=16 if img.mode.startswith("I;16") else None)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (matte, matte, matte, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _from_array(array: np.ndarray, name: str, matte: int = 255, bits: int | None = None) -> Image.Image:
    """HxW, HxWx1, HxWx3 or HxWx4 arrays of uint8, uint16, int or float ([0, 1]) -> RGB. ``bits``: the known
    depth of integer data (a 16-bit file), otherwise guessed from the values."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: array of shape {a.shape} is not an image (need HxW, HxWx3 or HxWx4)")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"{name}: the image is empty ({a.shape[1]}x{a.shape[0]})")
    if a.shape[0] * a.shape[1] > MAX_INPUT_PIXELS:
        raise ImageError(f"{name}: the image is too large ({a.shape[1]}x{a.shape[0]})")
    a = _to_uint8(a, name, bits)
    if a.ndim == 2:
        return Image.fromarray(a, "L").convert("RGB")
    if a.shape[2] == 4:
        return _to_rgb(Image.fromarray(a, "RGBA"), name, matte)
    return Image.fromarray(a, "RGB")


def _to_uint8(a: np.ndarray, name: str, bits: int | None = None) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"{name}: unsupported pixel type {a.dtype}")
    f = a.astype(np.float64)
    if not np.isfinite(f).all():
        raise ImageError(f"{name}: the image contains NaN or infinite values")
    if np.issubdtype(a.dtype, np.floating):
        top = 1.0 if f.max(initial=0) <= 1.0 else (255.0 if f.max() <= 255.0 else float(f.max()))
    elif bits:
        top = float(2**bits - 1)
    else:  # 16/32-bit integers: 16-bit full range unless the data is plainly 8-bit
        top = 255.0 if f.max(initial=0) <= 255 else 65535.0 if f.max() <= 65535 else float(f.max())
    return np.clip(np.rint(f / top * 255.0), 0, 255).astype(np.uint8)


def longest_fit(dimensions: tuple[int, int], size: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the longest side is ``size`` pixels (each side at least 1 px)."""
    width, height = dimensions
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """Resize so the longest side is ``size`` pixels, keeping the aspect ratio (each side at least 1 px)."""
    new = longest_fit(img.size, size)
    return img if new == img.size else img.resize(new, Image.Resampling.LANCZOS)


def pil_to_tensor(img: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1] on ``device``."""
    array = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
    return array.permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=torch.float32).div_(255.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] (any device) -> RGB PIL image on the CPU."""
    return Image.fromarray(to_pixels(tensor).cpu().numpy(), "RGB")


def to_pixels(tensor: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> (H, W, 3) uint8, on the tensor's device (what a picture is made
    of: a GPU copies a quarter of the bytes to the host)."""
    t = tensor.detach()
    if t.dim() == 4:
        t = t[0]
    return t.clamp(0, 1).mul(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous()


def to_pixels16(tensor: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> (H, W, 3) uint16 (0-65535), on the tensor's device."""
    t = tensor.detach()
    if t.dim() == 4:
        t = t[0]
    return t.clamp(0, 1).mul(65535).round_().to(torch.uint16).permute(1, 2, 0).contiguous()
