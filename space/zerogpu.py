"""The ZeroGPU duration model: how many GPU seconds to ask for a run (``@spaces.GPU(duration=...)``)."""

from __future__ import annotations

import math
import os

from .limits import GPU_DURATION_MAX_S, GPU_DURATION_MIN_S
from .request import Request

# Whether the app runs on a ZeroGPU Space (the switch ``spaces`` itself reads; it then runs the GPU function in a
# forked worker).
ON_ZEROGPU = os.getenv("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")

# NOT yet calibrated on a GPU (no GPU was available when this was written): performance.md derives ~1.2 ms/step at
# 512 px as the H100 fp32 floor and ~2.7 ms on a ZeroGPU half card; we assume ~4x that in practice (launch overhead,
# previews) and add start-up (fork, CUDA init, targets).
GPU_STARTUP_S = 8.0
GPU_S_PER_STEP_FIXED = 0.004  # kernel launches, optimiser, per step
GPU_S_PER_MEGAPIXEL_STEP = 0.040  # grows with the number of pixels (~10 ms/step at 512x512)
GPU_DURATION_MARGIN = 1.5  # the clamp, GPU_DURATION_MIN_S..GPU_DURATION_MAX_S, is in limits.py


def estimate_seconds(pixels: int, steps: int) -> float:
    """Estimated GPU seconds for ``steps`` steps on an image of ``pixels`` pixels (without margin)."""
    return GPU_STARTUP_S + steps * (GPU_S_PER_STEP_FIXED + GPU_S_PER_MEGAPIXEL_STEP * pixels / 1e6)


def gpu_duration(request: Request, *args: object, **kwargs: object) -> int:
    """ZeroGPU ``duration=`` callable: seconds to request for this run (estimate x margin, clamped)."""
    width, height = request.content.size
    seconds = estimate_seconds(width * height, request.config.steps) * GPU_DURATION_MARGIN
    return int(min(GPU_DURATION_MAX_S, max(GPU_DURATION_MIN_S, math.ceil(seconds))))
