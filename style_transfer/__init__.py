"""Neural style transfer with the method of Gatys et al. ("A Neural Algorithm of Artistic Style").

Python API::

    from style_transfer import stylize, run, StyleConfig

    for frame in stylize("photo.jpg", "painting.jpg", size=256, steps=200):
        print(frame.step, frame.losses["total"])
    frame.image.save("out.png")
"""

from . import accel, colour
from .config import ConfigError, StyleConfig
from .engine import Frame, NonFiniteLossError, preload, run, stylize
from .images import ImageError, load_image
from .model import VGGFeatures, load_model
from .weights import WeightsError

__all__ = [
    "ConfigError",
    "Frame",
    "ImageError",
    "NonFiniteLossError",
    "StyleConfig",
    "VGGFeatures",
    "WeightsError",
    "accel",
    "colour",
    "load_image",
    "load_model",
    "preload",
    "run",
    "stylize",
]
__version__ = "0.1.0"
