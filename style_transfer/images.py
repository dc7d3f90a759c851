"""Loading user images safely into RGB, resizing them, and converting between PIL and tensors.

Every input (a path, raw bytes, a PIL image or a numpy array) ends up as an upright 8-bit RGB PIL image:
EXIF orientation applied, transparency composited on white, 16-bit and float data scaled (not clipped), the first
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

# Refuse images above this many pixels (a 30000x30000 "bomb" is 900 MP; a 50 MP photo is fine).
MAX_INPUT_PIXELS = 80_000_000

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


class ImageError(ValueError):
    """An input image could not be used; the message says which and why, in words for the user."""


def load_image(source: ImageSource, *, name: str = "image") -> Image.Image:
    """Open ``source`` and return it as an upright RGB PIL image. ``name`` labels the image in error messages."""
    if isinstance(source, np.ndarray):
        return _from_array(source, name)
    if isinstance(source, Image.Image):
        return _to_rgb(source, name)
    if isinstance(source, bytes):
        return _open(io.BytesIO(source), name)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: file not found: {path}")
        return _open(path, name)
    raise ImageError(f"{name}: expected a file path, bytes, a PIL image or a numpy array, got {type(source).__name__}")


def _open(fp: Path | io.BytesIO, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL only warns between its own limit and twice it; we decide ourselves from the header below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                _check_pixels(img, name)
                img.load()  # decode now, inside the try, so truncated files fail here
                return _to_rgb(img, name)
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: the image is too large to open safely (over {MAX_INPUT_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name}: not an image, or a format this app cannot read (use PNG, JPEG, WebP, GIF, BMP or TIFF)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name}: the file is damaged or truncated and cannot be decoded ({exc})") from None


def _check_pixels(img: Image.Image, name: str) -> None:
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image is empty ({width}x{height})")
    if width * height > MAX_INPUT_PIXELS:
        raise ImageError(
            f"{name}: the image is too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_INPUT_PIXELS:,})"
        )


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Any PIL mode -> upright RGB; transparency goes on white, high bit depths are scaled to 8 bits."""
    _check_pixels(img, name)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animations: the first frame
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _from_array(np.asarray(img), name)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    """HxW, HxWx1, HxWx3 or HxWx4 arrays of uint8, uint16, int or float ([0, 1]) -> RGB."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: array of shape {a.shape} is not an image (need HxW, HxWx3 or HxWx4)")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"{name}: the image is empty ({a.shape[1]}x{a.shape[0]})")
    if a.shape[0] * a.shape[1] > MAX_INPUT_PIXELS:
        raise ImageError(f"{name}: the image is too large ({a.shape[1]}x{a.shape[0]})")
    a = _to_uint8(a, name)
    if a.ndim == 2:
        return Image.fromarray(a, "L").convert("RGB")
    if a.shape[2] == 4:
        return _to_rgb(Image.fromarray(a, "RGBA"), name)
    return Image.fromarray(a, "RGB")


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
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
    else:  # 16/32-bit integers: 16-bit full range unless the data is plainly 8-bit
        top = 255.0 if f.max(initial=0) <= 255 else 65535.0 if f.max() <= 65535 else float(f.max())
    return np.clip(np.rint(f / top * 255.0), 0, 255).astype(np.uint8)


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """Resize so the longest side is ``size`` pixels, keeping the aspect ratio (each side at least 1 px)."""
    width, height = img.size
    scale = size / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img if new == img.size else img.resize(new, Image.Resampling.LANCZOS)


def pil_to_tensor(img: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1] on ``device``."""
    array = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
    return array.permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=torch.float32).div_(255.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] (any device) -> RGB PIL image on the CPU."""
    t = tensor.detach()
    if t.dim() == 4:
        t = t[0]
    array = t.clamp(0, 1).mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")
