"""The ZeroGPU duration model: how many GPU seconds to ask for a run (``@spaces.GPU(duration=...)``).

Fitted to the H100 figures in ``bench/results-gpu/h100-issue11.csv`` and the H200 runs of ``python -m bench.gpu``
beside it (bench/README.md, "GPU timings and the ZeroGPU duration"); ``tests/test_zerogpu.py`` keeps the model at or
above every row of every table there and within 3x of the eager ones. New GPU timings come from
``python -m bench.gpu --out ...`` (its ``durations.csv``); if that test then fails, refit the constants below.

Those tables are one kind of card; ZeroGPU lends another (half or all of an RTX Pro 6000 Blackwell), so the main
process also learns the speed of the GPUs it is lent (:class:`SpeedModel`, fed by every run's previews) and asks
for the estimate times what it measured. A run stops itself before its allocation runs out
(:func:`allocation`'s ``budget_s``).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import threading
from collections import deque
from typing import NamedTuple

from PIL import Image

from style_transfer.config import ConfigError, StyleConfig

from .limits import GPU_DURATION_MAX_S, GPU_DURATION_MIN_S, GPU_WORKER_START_S
from .request import Request

log = logging.getLogger(__name__)

# Whether the app runs on a ZeroGPU Space (the switch ``spaces`` itself reads; it then runs the GPU function in a
# forked worker).
ON_ZEROGPU = os.getenv("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")

# From the call to the first frame in a fresh process: 7.8 s measured at 128 px, most of it CUDA start-up and the
# cuDNN autotuning that has since been switched off. Kept whole until a GPU session measures the current code.
GPU_STARTUP_S = 8.0
# One eager Adam step (what a run falls back to when a CUDA-graph capture fails; graphed steps are 2-4x faster):
# launch-bound at 512 px (7.8-8.5 ms on the H100, 7.8-9.3 ms on an H200 in bench/results-gpu, the host's
# speed decides), compute-bound above (10.8 ms at 1024 px, 42 ms at 2048 px on the H100). The H100 table gives the
# longest side only: read as a 3:2 photo, 15.4 and 15.0 ms per megapixel (as a square, 10.3 and 10.0), so the
# model holds for any aspect. Upper ends of each range taken.
ADAM_STEP_FLOOR_S = 0.0095
ADAM_S_PER_MEGAPIXEL = 0.0155
LBFGS_STEP_FACTOR = 1.7  # one L-BFGS iteration vs one Adam step: 8.2 s vs 4.95 s at 2048 px, scales 0
# The targets: one forward pass per input image and scale, costed as half a step each.
TARGET_PASS_STEPS = 0.5
# Host work inside the GPU function (measured on a 2-core EPYC): each preview's copy to the host and conversion to
# PIL (17 ms per megapixel), and the result file (PNG: 180 ms per megapixel).
FRAME_S_PER_MEGAPIXEL = 0.02
SAVE_S_PER_MEGAPIXEL = 0.2
GPU_DURATION_MARGIN = 1.5  # the clamp, GPU_DURATION_MIN_S..GPU_DURATION_MAX_S, is in limits.py


def step_seconds(megapixels: float, optimizer: str) -> float:
    """Seconds for one optimiser step on an image of ``megapixels`` (H100)."""
    adam = max(ADAM_STEP_FLOOR_S, ADAM_S_PER_MEGAPIXEL * megapixels)
    return adam * (LBFGS_STEP_FACTOR if optimizer == "lbfgs" else 1.0)


def loop_seconds(width: int, height: int, cfg: StyleConfig, images: int = 2) -> float:
    """Estimated seconds from the first frame to the final frame (no start-up, no margin).

    ``width`` x ``height`` is the output size; every scale of ``cfg.scale_sizes()`` is costed at its own size, with
    the target passes of ``images`` input images (content and styles) and its previews.
    """
    longest = max(width, height)
    total = 0.0
    for size, steps in cfg.scale_sizes():
        megapixels = width * height * (size / longest) ** 2 / 1e6
        step = step_seconds(megapixels, cfg.optimizer)
        frames = math.ceil(steps / cfg.preview_every) + 1
        total += (steps + TARGET_PASS_STEPS * images) * step + frames * FRAME_S_PER_MEGAPIXEL * megapixels
    return total + SAVE_S_PER_MEGAPIXEL * width * height / 1e6


def estimate_seconds(width: int, height: int, cfg: StyleConfig, images: int = 2) -> float:
    """Estimated GPU seconds for a whole run, start-up included (without margin)."""
    return GPU_STARTUP_S + loop_seconds(width, height, cfg, images)


class SpeedModel:
    """The GPUs' measured speed against the model above, per device name: a robust, bounded estimate.

    Every run reports the seconds per step it measured between previews; a run's median, divided by
    :func:`step_seconds`, is one observation. A device's factor is the upper quartile of its last
    :attr:`HISTORY` observations (a slow run counts more than a fast one: asking too little cuts runs short), clamped
    to :attr:`LIMITS`; 1.0 (the committed tables) until a run on that device has been measured.
    """

    HISTORY = 20
    LIMITS = (0.25, 10.0)

    def __init__(self) -> None:
        self._runs: dict[str, deque[float]] = {}
        self._device: str | None = None  # the latest device a run reported: a Space's GPUs are all one kind
        self._lock = threading.Lock()  # runs end on several threads

    def observe_run(self, device: str, megapixels: float, optimizer: str, seconds_per_step: list[float]) -> None:
        """Record one run's step times, measured at ``megapixels`` per step; logs the device's new factor."""
        if not seconds_per_step:
            return
        ratio = statistics.median(seconds_per_step) / step_seconds(megapixels, optimizer)
        with self._lock:
            runs = self._runs.setdefault(device, deque(maxlen=self.HISTORY))
            runs.append(ratio)
            self._device = device
        log.info(
            "GPU speed on %s: this run x%.2f of the duration model, now asking x%.2f (runs measured: %d)",
            device,
            ratio,
            self.factor(device),
            len(runs),
        )

    def factor(self, device: str | None = None) -> float:
        """Measured step time / modelled step time on ``device`` (default: the latest device a run reported)."""
        with self._lock:
            runs = list(self._runs.get(device or self._device or "", ()))
        if not runs:
            return 1.0
        upper = statistics.quantiles(runs, n=4, method="inclusive")[2] if len(runs) > 1 else runs[0]
        low, high = self.LIMITS
        return min(high, max(low, upper))


speeds = SpeedModel()  # the main process's: every request asks with what the runs before it measured


def duration_for(width: int, height: int, cfg: StyleConfig, images: int = 2) -> int:
    """Seconds to request for a run of ``cfg`` on a ``width`` x ``height`` photo with ``images`` input images:
    (start-up + loop x the device's measured factor) x margin, clamped."""
    loop = loop_seconds(width, height, cfg, images) * speeds.factor()
    seconds = (GPU_STARTUP_S + loop) * GPU_DURATION_MARGIN
    return int(min(GPU_DURATION_MAX_S, max(GPU_DURATION_MIN_S, math.ceil(seconds))))


def gpu_duration(request: Request, *args: object, **kwargs: object) -> int:
    """Seconds to request for this run (:func:`duration_for` of its photo, settings and images)."""
    images = 1 + max(1, len(request.styles)) + (request.background is not None)
    return duration_for(*request.content.size, request.config, images)


def estimate_note(content: str | None, **settings: object) -> str:
    """What a run with these settings will ask of a visitor's GPU quota, shown before it starts (the photo's own
    aspect when one is given, else 3:2). Empty while a setting is out of range (the run itself says why)."""
    try:
        cfg = StyleConfig(**settings).validate()
    except (ConfigError, TypeError, ValueError):
        return ""
    aspect = 1.5
    if content:
        try:
            with Image.open(content) as photo:  # the header only
                aspect = max(photo.size) / max(1, min(photo.size))
        except (OSError, ValueError):
            pass
    width, height = cfg.size, max(1, round(cfg.size / aspect))
    seconds = duration_for(width, height, cfg)
    return (
        f"This run asks for about **{seconds} s** of GPU time. ZeroGPU's daily quota is 2 minutes without logging in "
        "to Hugging Face, more with an account; a smaller size or fewer steps asks for less."
    )


class Allocation(NamedTuple):
    """A run's GPU allocation: the seconds asked for, and the seconds its worker may take before it stops."""

    seconds: int
    budget_s: float


def allocation(request: Request) -> Allocation:
    """The allocation for ``request``: :func:`gpu_duration`, and a budget that leaves room for what the worker does
    outside its own clock (starting) and after its last step (one more step, the final frame, the result file)."""
    seconds = gpu_duration(request)
    width, height = request.content.size
    megapixels = width * height / 1e6
    after = step_seconds(megapixels, request.config.optimizer) * speeds.factor()
    after += (FRAME_S_PER_MEGAPIXEL + SAVE_S_PER_MEGAPIXEL) * megapixels
    return Allocation(seconds, max(1.0, seconds - GPU_WORKER_START_S - after))


def requested_seconds(request: Request, plan: Allocation, *args: object, **kwargs: object) -> int:
    """``@spaces.GPU(duration=...)`` callable for ``run_on_gpu(request, plan)``: the seconds the plan asked for."""
    return plan.seconds
