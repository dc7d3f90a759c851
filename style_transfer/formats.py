"""Which files are clips, told from their names (and an animation's frame count), without loading torch: the
command line decides between a still and a video before the engine is imported."""

from __future__ import annotations

import os
from pathlib import Path

CONTAINER_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
ANIMATION_SUFFIXES = (".gif", ".webp")
# Output names that ask for a still picture (style_transfer.output writes them).
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# The formats a stylised clip is written in, by output suffix.
VIDEO_OUTPUT_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".gif": "gif", ".webp": "webp"}


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a clip: a video container by its suffix, or a GIF / WebP with more than one frame."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in CONTAINER_SUFFIXES:
        return True
    if suffix in ANIMATION_SUFFIXES and p.is_file():
        from PIL import Image

        try:
            with Image.open(p) as img:
                return bool(getattr(img, "is_animated", False))
        except Exception:  # not readable as an image: the image loader will say why
            return False
    return False


def video_format_for(path: str | os.PathLike) -> str:
    """The video format implied by an output name (``.mp4``, ``.gif``, ``.webp``); ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_OUTPUT_SUFFIXES:
        shown = repr(suffix) if suffix else "a name without a suffix"
        raise ValueError(f"output: a video is written as .mp4, .gif or .webp, not {shown}")
    return VIDEO_OUTPUT_SUFFIXES[suffix]
