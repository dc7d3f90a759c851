"""A run's memory budget and the tile plan that keeps it (see :mod:`.tiling`).

What a step holds scales with the picture in two ways:

* the *state*, held for the whole step: the image, its gradient, the photo, the optimiser's state (Adam's two
  moments; L-BFGS's ``2 × history`` vectors and its working copies) and the content target (one deep layer);
* the *activations* of one forward and backward pass of the network, held only while a tile is differentiated:
  the whole picture untiled, one tile tiled.

The planner splits the picture into the fewest tiles (least total work, halos included) whose activations fit in
the budget left after the state. The budget counts the run's own tensors, not the network's weights (loaded once per
process) nor the interpreter; this module imports no torch until a GPU's free memory is asked for.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import math
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import ConfigError, StyleConfig
from .layers import VGG19_BLOCKS

if TYPE_CHECKING:
    import torch

    from .tiling import Tile

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

# One forward and backward pass to block5_conv1, per pixel of the input, above the state: the peak of live tensors
# measured with PyTorch's profiler between 128 and 256 px (the slope; ``python -m bench.tiling activations``): 1864
# (fp32) and 1297 (bf16) bytes, plus ~8% for the allocator. The first block's 64-channel layers dominate (their
# outputs, the gradients of two of them and the Gram's backward).
ACTIVATION_BYTES_PER_PIXEL = {"fp32": 2000, "bf16": 1400}
# The forward alone, without gradients (a tiled step's first pass, which only sums the Grams): nothing is kept for a
# backward, so a layer's input and output are all it holds. Measured the same way: 608 (fp32) and 304 (bf16) bytes,
# plus ~8%. About a third to a quarter of the above, so that pass can take tiles 3-4 times as large.
SUM_BYTES_PER_PIXEL = {"fp32": 660, "bf16": 330}
# Pass 1 takes larger tiles of its own when they work at most this share of the pixels pass 2's tiles would (see plan).
SUM_TILES_WORTH = 0.8
# And per pass, whatever the tile's size: the convolution library's working copies of a layer's weights (block5's are
# 9.4 MB in fp32). Measured: 88 MB live at the peak of a 288 px run in 32 tiles planned at 76 MB without it.
PASS_BYTES = 16 * 2**20

# Fraction of a GPU's free memory a run plans for when no limit is given: the allocator's fragmentation and the
# cuBLAS/cuDNN workspaces are not in the model above.
GPU_FREE_FRACTION = 0.8


class MemoryBudgetError(ConfigError):
    """The budget cannot hold even the smallest tile; the message names the smallest budget that works."""


def parse_size(text: str) -> int | None:
    """``"3G"``, ``"512M"``, ``"1.5g"``, ``"2GB"``, ``"1000000"`` -> bytes (binary units); ``"auto"``/``""`` ->
    None. ValueError for anything else."""
    value = str(text).strip().lower()
    if value in ("", "auto", "none"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", value)
    if not match:
        raise ValueError(f"{text!r} is not a size; write it like 512M, 2G or 3.5G")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"{text!r} is not a size above 0")
    return size


def format_size(size: float) -> str:
    """Bytes as people write them: ``1.9G``, ``640M`` (rounded up, so a budget quoted back always works)."""
    for unit, factor in (("G", 2**30), ("M", 2**20)):
        if size >= factor:
            return f"{math.ceil(size / factor * 10) / 10:g}{unit}"
    return f"{math.ceil(size / 2**10):g}K"


def _channels_and_factor(layer: str) -> tuple[int, int]:
    block, conv = int(layer[5]), int(layer.split("conv")[1])
    return VGG19_BLOCKS[block - 1][conv - 1], 2 ** (block - 1)


def state_bytes_per_pixel(cfg: StyleConfig, amp: bool, masked: bool, tiled: bool) -> float:
    """Bytes per pixel of the picture held through a step besides the activations (fp32 pixels: 12 B each)."""
    picture = 12.0
    held = 3 * picture  # the image, its gradient, the photo
    if cfg.optimizer == "lbfgs":
        # history pairs (s, y), then its flat gradient, previous gradient, direction, and the projected image
        held += 2 * cfg.lbfgs_history * picture + 4 * picture
        if tiled:
            held += picture  # the projected image's gradient, back-propagated through the projection
    else:
        held += 2 * picture  # Adam's two moments
    channels, factor = _channels_and_factor(cfg.content_layer)
    held += channels / factor**2 * (2 if amp else 4)  # the content target
    if masked:
        held += 8.0  # the mask and the region kept
    # Transient, between passes: Adam's denominator, a preview's copy of the pixels; the larger of them.
    return held + picture


def activation_bytes_per_pixel(amp: bool) -> float:
    """Bytes per input pixel of one forward and backward pass (:data:`ACTIVATION_BYTES_PER_PIXEL`)."""
    return float(ACTIVATION_BYTES_PER_PIXEL["bf16" if amp else "fp32"])


@dataclass(frozen=True)
class Plan:
    """How a picture is computed: ``rows × cols`` tiles (1 × 1: untiled), and the bytes it is expected to use.

    A tiled step first sums every Gram without gradients (:mod:`.tiling`), over ``sum_rows × sum_cols`` tiles: the
    same ones, or fewer and larger where that pass's smaller footprint lets them save work."""

    rows: int
    cols: int
    state_bytes: float
    tile_bytes: float
    sum_rows: int = 1
    sum_cols: int = 1
    sum_bytes: float = 0.0

    @property
    def tiled(self) -> bool:
        return self.rows * self.cols > 1

    @property
    def bytes(self) -> float:
        return self.state_bytes + max(self.tile_bytes, self.sum_bytes)


def _extents(length: int, parts: int, align: int, halo: int) -> tuple[int, int]:
    """(largest tile extent, sum of extents) along one axis split into ``parts`` tiles."""
    from .tiling import split

    bounds = split(length, parts, align)
    sizes = [min(length, b1 + halo) - max(0, b0 - halo) for b0, b1 in itertools.pairwise(bounds)]
    return max(sizes), sum(sizes)


def plan(height: int, width: int, cfg: StyleConfig, amp: bool, budget: float | None, masked: bool = False) -> Plan:
    """The fewest-work tiling of a ``height × width`` picture that fits ``budget`` bytes (None: no limit, untiled).

    Raises :class:`MemoryBudgetError` naming the smallest budget that works when none fits.
    """
    from .tiling import halo_for

    pixels = height * width
    per_pixel = activation_bytes_per_pixel(amp)
    untiled = Plan(1, 1, state_bytes_per_pixel(cfg, amp, masked, tiled=False) * pixels, PASS_BYTES + per_pixel * pixels)
    if budget is None or untiled.bytes <= budget:
        return untiled
    state = state_bytes_per_pixel(cfg, amp, masked, tiled=True) * pixels
    align, halo = halo_for((cfg.content_layer, *cfg.style_layers))
    ys = [_extents(height, n, align, halo) for n in range(1, max(1, height // align) + 1)]
    xs = [_extents(width, n, align, halo) for n in range(1, max(1, width // align) + 1)]
    best = _least_work(ys, xs, (budget - state - PASS_BYTES) / per_pixel)
    if best is None:
        least = state + PASS_BYTES + per_pixel * min(y for y, _ in ys) * min(x for x, _ in xs)
        raise MemoryBudgetError(
            f"memory_limit: {format_size(budget)} is too small for a {width}x{height} px picture; it needs at least "
            f"{format_size(least)} ({format_size(state)} for the picture and the optimiser's state, the rest for "
            "the smallest tile of the network's activations). Give more, or a smaller size."
        )
    work, rows, cols = best
    tile_bytes = PASS_BYTES + per_pixel * ys[rows - 1][0] * xs[cols - 1][0]
    # Pass 1 over the same tiles keeps the last for pass 2 (its forward is not repeated). Larger tiles of its own pay
    # only when they clearly work less: a larger tile's layers cost more per pixel (1024 px fp32, a step with them
    # against without: 5 % slower at 0.92 of the pixels; 10 %, 19 % and 10 % faster at 0.73, 0.72 and 0.57).
    sum_per_pixel = SUM_BYTES_PER_PIXEL["bf16" if amp else "fp32"]
    sums = _least_work(ys, xs, (budget - state - PASS_BYTES) / sum_per_pixel)
    tiles = rows * cols
    if sums is not None and sums[0] < SUM_TILES_WORTH * work * (tiles - 1) / tiles:
        _, sum_rows, sum_cols = sums
        sum_bytes = PASS_BYTES + sum_per_pixel * ys[sum_rows - 1][0] * xs[sum_cols - 1][0]
        return Plan(rows, cols, state, tile_bytes, sum_rows, sum_cols, sum_bytes)
    return Plan(rows, cols, state, tile_bytes, rows, cols, 0.0)


def _least_work(ys: list[tuple[int, int]], xs: list[tuple[int, int]], pixels: float) -> tuple[int, int, int] | None:
    """``(pixels worked, rows, cols)`` of the split whose largest tile has at most ``pixels`` and which works the
    fewest pixels, halos included (``ys[n - 1]``, ``xs[n - 1]``: an axis in ``n`` tiles), or None."""
    best: tuple[int, int, int] | None = None
    for rows, (y_max, y_sum) in enumerate(ys, start=1):
        for cols, (x_max, x_sum) in enumerate(xs, start=1):
            if y_max * x_max <= pixels and (best is None or y_sum * x_sum < best[0]):
                best = (y_sum * x_sum, rows, cols)
                break  # more columns only cost more work
    return best


def tiles(height: int, width: int, cfg: StyleConfig, rows: int, cols: int) -> list[Tile]:
    """The tiles of a ``rows × cols`` plan for ``cfg``'s layers."""
    from .tiling import grid, halo_for

    align, halo = halo_for((cfg.content_layer, *cfg.style_layers))
    return grid(height, width, rows, cols, align, halo)


def budget(cfg: StyleConfig, device: torch.device) -> float | None:
    """The run's budget in bytes: ``cfg.memory_limit``, or on a GPU (``auto``) a share of its free memory; None
    (no limit) on a CPU."""
    given = parse_size(cfg.memory_limit)
    if given is not None and device.type == "cpu":
        return_freed_memory()  # a CPU budget is a promise about the process's memory, not only its tensors
    if given is not None or device.type != "cuda":
        return given
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free * GPU_FREE_FRACTION


# glibc's mallopt parameter for the size from which a block is mapped on its own (and unmapped when freed).
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 2**10  # glibc's own starting value


@functools.cache
def return_freed_memory() -> bool:
    """Make the C allocator give freed tensor memory back to the system at once, so that a budgeted CPU run's
    process memory (RSS) follows its live tensors; True where it took effect (Linux with glibc).

    Why: glibc raises its mmap threshold to the largest block freed so far (up to 32 MB) and keeps blocks under it
    in its heap when freed, so a tiled run's tile-sized blocks stayed in the process: 1024 px under a 400M budget in
    8 tiles, RSS 615 MB over a tiny run's; with the threshold fixed at glibc's starting 128 KB, 399 MB
    (``python -m bench.tiling rss``). Process-wide and once: it also turns glibc's adjustment off for the rest of the
    process, so only runs given a budget ask for it (the Space on a CPU never does).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
        libc.malloc_trim(0)  # and hand back what the heap already holds free
    except (OSError, AttributeError):  # another C library (musl), or none by that name
        return False
    return done


__all__ = [
    "ACTIVATION_BYTES_PER_PIXEL",
    "PASS_BYTES",
    "SUM_BYTES_PER_PIXEL",
    "MemoryBudgetError",
    "Plan",
    "budget",
    "format_size",
    "parse_size",
    "plan",
    "return_freed_memory",
    "state_bytes_per_pixel",
    "tiles",
]
