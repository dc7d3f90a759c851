"""Optical flow between video frames, warping along it, and where a warp can be trusted.

The flow is OpenCV's DIS (dense inverse search; Kroeger et al. 2016), a classical method that needs no network:
fast on a CPU, in ``opencv-python-headless``. The reliability mask follows Ruder et al. 2016 ("Artistic style
transfer for videos", eq. 6): a pixel is trusted where the forward and backward flows agree (otherwise it was
hidden in the other frame: a disocclusion) and away from motion boundaries (where the flow is smeared).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# OpenCV's DIS presets, by the names the settings use.
PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def _gray(img: Image.Image | np.ndarray) -> np.ndarray:
    array = np.asarray(img.convert("L") if isinstance(img, Image.Image) else img)
    if array.ndim == 3:
        array = array.mean(axis=2)
    return np.ascontiguousarray(array.astype(np.uint8))


def optical_flow(
    source: Image.Image | np.ndarray, target: Image.Image | np.ndarray, preset: str = "medium"
) -> np.ndarray:
    """Dense flow (H, W, 2) float32 from ``source`` to ``target``: pixel (x, y) of ``source`` is seen at
    (x + u, y + v) in ``target``."""
    import cv2

    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    return dis.calc(_gray(source), _gray(target), None)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, C) sampled at (x + flow) for every pixel (x) (bilinear); and a mask (H, W) that is 0 where
    the sample falls outside the image."""
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return warped, inside.astype(np.float32)


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the previous frame warped onto the current one can be trusted: (H, W) float32 of 0 and 1.

    ``backward`` is the flow from the current frame to the previous one, ``forward`` from the previous to the
    current. Ruder et al.'s tests with their thresholds: the round trip must come back (|b + f(x + b)|² ≤
    0.01 (|b|² + |f(x + b)|²) + 0.5), the pixel must not sit on a motion boundary (|∇b_u|² + |∇b_v|² ≤ 0.01 |b|²
    + 0.002), and its source must lie inside the previous frame.
    """
    forward_at, inside = warp(forward, backward)
    round_trip = np.sum((backward + forward_at) ** 2, axis=2)
    magnitude = np.sum(backward**2, axis=2) + np.sum(forward_at**2, axis=2)
    consistent = round_trip <= 0.01 * magnitude + 0.5
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    boundary = du_x**2 + du_y**2 + dv_x**2 + dv_y**2 > 0.01 * np.sum(backward**2, axis=2) + 0.002
    return (consistent & ~boundary).astype(np.float32) * inside
