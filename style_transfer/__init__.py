"""Neural style transfer with the method of Gatys et al. ("A Neural Algorithm of Artistic Style").

Python API::

    from style_transfer import stylize, run, StyleConfig

    for frame in stylize("photo.jpg", "painting.jpg", size=256, steps=200):
        print(frame.step, frame.total, [(term.label, term.weighted) for term in frame.terms])
    frame.image.save("out.png")

Videos (MP4, WebM, MOV, animated GIF / WebP)::

    from style_transfer import stylize_video, write_video

    done = [f for f in stylize_video("clip.mp4", "painting.jpg", size=256, max_frames=30) if f.finished]
    write_video("out.mp4", [f.image for f in done], done[0].clip)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public names and the module of each, imported on first use: ``python -m style_transfer --help`` then answers
# without loading torch (seconds), and Ctrl-C while torch loads reaches the CLI, which exits quietly with 130.
_EXPORTS = {
    "ConfigError": "config",
    "StyleConfig": "config",
    "VideoConfig": "config",
    "Frame": "engine",
    "NonFiniteLossError": "engine",
    "Prepared": "engine",
    "prepare": "engine",
    "preload": "engine",
    "run": "engine",
    "stylize": "engine",
    "ImageError": "images",
    "load_image": "images",
    "VGGFeatures": "model",
    "load_model": "model",
    "WeightsError": "weights",
    "VideoFrame": "temporal",
    "stylize_video": "temporal",
    "Clip": "video",
    "VideoError": "video",
    "VideoWriter": "video",
    "read_clip": "video",
    "read_video_settings": "video",
    "write_video": "video",
}
_SUBMODULES = ("accel", "colour")
__all__ = [
    "Clip",
    "ConfigError",
    "Frame",
    "ImageError",
    "NonFiniteLossError",
    "Prepared",
    "StyleConfig",
    "VGGFeatures",
    "VideoConfig",
    "VideoError",
    "VideoFrame",
    "VideoWriter",
    "WeightsError",
    "accel",
    "colour",
    "load_image",
    "load_model",
    "preload",
    "prepare",
    "read_clip",
    "read_video_settings",
    "run",
    "stylize",
    "stylize_video",
    "write_video",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # what static tools see
    from . import accel, colour
    from .config import ConfigError, StyleConfig, VideoConfig
    from .engine import Frame, NonFiniteLossError, Prepared, preload, prepare, run, stylize
    from .images import ImageError, load_image
    from .model import VGGFeatures, load_model
    from .temporal import VideoFrame, stylize_video
    from .video import Clip, VideoError, VideoWriter, read_clip, read_video_settings, write_video
    from .weights import WeightsError
