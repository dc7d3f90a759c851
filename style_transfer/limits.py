"""The engine's limits: what one run may ask for and what image it accepts.

The per-run ranges (``MIN_SIZE``, ``MAX_SIZE``, ``MAX_STEPS``) live with the other settings in :mod:`.config`
(the CLI, the sliders and the validation are generated from there); they are re-exported here so that this module
lists every limit of the engine. The Space's own limits (upload size, previews, GPU time, queue, cache) are in
``space/limits.py``. The README's "Limits and errors" section documents both.
"""

from __future__ import annotations

from .config import MAX_SIZE, MAX_STEPS, MAX_VIDEO_FRAMES, MIN_SIZE

__all__ = [
    "MAX_INPUT_PIXELS",
    "MAX_SIZE",
    "MAX_STEPS",
    "MAX_VIDEO_BYTES",
    "MAX_VIDEO_FRAMES",
    "MAX_VIDEO_FRAME_PIXELS",
    "MAX_VIDEO_SECONDS",
    "MAX_VIDEO_WORK_PIXELS",
    "MIN_IMAGE_SIDE",
    "MIN_INPUT_SIDE",
    "MIN_SIZE",
    "UPSCALE_NOTE_FACTOR",
]

# Images above this many pixels are refused from their header, before any pixel is decoded: a 30000x30000
# "decompression bomb" is 900 MP (2.7 GB as RGB); a 50 MP camera photo is fine.
MAX_INPUT_PIXELS = 80_000_000
# VGG-19 pools four times before block5, so each side of an image must be at least 16 px at the size it is used;
# a 2x2000 strip resized to a 64 px output is 1 px wide and is refused with a message instead of crashing the net.
MIN_IMAGE_SIDE = 16
# A photo or painting must have at least this many pixels on each side as given: the network sees an image in
# cells of 16 px at its deepest layers, so anything smaller (a 1x1 or 8x8 file) holds less than one cell of
# content or style, and enlarging it to the output only paints blur.
MIN_INPUT_SIDE = 16
# A content photo enlarged at least this much to the output size gets a note (the result will look soft).
UPSCALE_NOTE_FACTOR = 2.0

# Videos. A file above this size is refused before it is opened (a phone's minute of 4K is about 400 MB).
MAX_VIDEO_BYTES = 2 * 1024**3
# Frames above this many pixels are refused from the stream's header, before decoding: 4K (4096x2160) passes, 8K not.
MAX_VIDEO_FRAME_PIXELS = 4096 * 2304
# The longest stretch of a clip one run reads (seconds); a longer one is refused unless a range is picked.
MAX_VIDEO_SECONDS = 600.0
# The decoded frames of a run are kept at the working size: at most this many pixels in all (1.5 GB as RGB), so a
# long clip at a large size is refused before it fills the memory.
MAX_VIDEO_WORK_PIXELS = 500_000_000
