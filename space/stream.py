"""Frames to UI values: run the engine for a request and yield what the outputs show, failures as ``gr.Error``.

This is the body of the GPU-decorated generator (a forked worker on ZeroGPU), so it yields CPU objects only and
maps every failure to a ``gr.Error`` itself (see errors.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from style_transfer.config import StyleConfig
from style_transfer.engine import Frame, NonFiniteLossError, stylize
from style_transfer.model import VGGFeatures

from .errors import answered, user_error
from .files import save_result
from .request import Request

StreamItem = tuple[Image.Image, tuple[Image.Image, Image.Image] | dict, pd.DataFrame, str, str | None, "Latest"]
OUT_OF_MEMORY = "Out of memory at this size. Try a smaller output size."


def stream(
    request: Request, models: VGGFeatures | Mapping[str, VGGFeatures], time_budget_s: float | None = None
) -> Iterator[StreamItem]:
    """Run the engine and yield ``(result, (before, after), loss table, status, download, latest)`` per frame.

    The first five are the outputs' values; ``latest`` (the frame and the device's name) is for Stop, which
    finishes a cancelled run with it (see stop.py). Only CPU objects are yielded (ZeroGPU pickles them; the
    frame's image is the result's, pickled once). ``download`` is None until the final frame, then a file
    in the requested format with the settings embedded. ``models`` maps a pooling ("max"/"avg") to a loaded
    network (one network is used for both). Stops cleanly, yielding the latest image, once ``time_budget_s``
    seconds have passed (checked before every step) or when the cost diverges. Any failure reaches the caller as
    a ``gr.Error``.
    """
    with answered("running the optimisation"):
        yield from _stream(request, models, time_budget_s)


def _stream(
    request: Request, models: VGGFeatures | Mapping[str, VGGFeatures], time_budget_s: float | None
) -> Iterator[StreamItem]:
    model = models if isinstance(models, VGGFeatures) else models[request.config.pooling]
    device = _device_name(model)
    rows: list[dict] = []
    deadline = None if time_budget_s is None else _clock() + time_budget_s
    frames = stylize(
        request.prepared,
        model=model,
        should_stop=None if deadline is None else lambda: _clock() > deadline,  # a clock reading per step
    )

    first = True
    previous: Frame | None = None

    def item(frame: Frame, note: str = "", final: bool = False) -> StreamItem:
        nonlocal first, previous
        latest = Latest(frame, device, _seconds_per_step(previous, frame))
        previous = frame
        if final:
            compare, status, download = final_values(
                latest, request.content, request.config, request.output_format, _notes(request, note)
            )
        else:
            # The before/after slider only at the end: sent with every preview, the same photo was written again
            # into Gradio's cache each time, in place, and a browser fetching it then got a truncated image. The
            # first preview empties it, so the last run's pair is not shown beside this run's picture.
            status = _status(frame, device, request.config, _notes(request))
            compare, download = (None if first else gr.skip()), None
        first = False
        return frame.image, compare, pd.DataFrame(rows), status, download, latest

    try:
        for frame in frames:
            rows += _loss_rows(frame)
            note = ""
            if frame.stopped:
                note = f"Stopped early at step {frame.step}: the run's GPU time limit was reached."
            yield item(frame, note, final=frame.done or frame.stopped)
            if frame.stopped:
                return
    except NonFiniteLossError as exc:
        last = exc.last_frame
        if last is None:
            raise user_error(str(exc), "Optimisation diverged") from None
        gr.Warning(str(exc))
        yield item(last, str(exc), final=True)
    except torch.OutOfMemoryError:
        raise user_error(OUT_OF_MEMORY, "Out of memory") from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc):  # the CPU allocator's out-of-memory message
            raise
        raise user_error(OUT_OF_MEMORY, "Out of memory") from None
    finally:
        frames.close()


class Latest(NamedTuple):
    """A run's latest frame, the name of the device it runs on, and the seconds per step measured since the frame
    before it (None for a scale's first frame): what the main process learns the device's speed from."""

    frame: Frame
    device: str
    seconds_per_step: float | None = None


def _seconds_per_step(previous: Frame | None, frame: Frame) -> float | None:
    if previous is None or previous.scale != frame.scale or frame.step <= previous.step:
        return None
    return (frame.elapsed - previous.elapsed) / (frame.step - previous.step)


def final_values(
    latest: Latest, content: Image.Image, cfg: StyleConfig, output_format: str, note: str = ""
) -> tuple[tuple, str, str]:
    """``(before/after, status, download)`` for the image a run ends with (finished, stopped early or by Stop)."""
    frame = latest.frame
    status = _status(frame, latest.device, cfg, note, running=False)
    return (content, frame.image), status, save_result(frame, cfg, output_format)


# The status's cost line starts so: the page shows it apart, under "Cost details" (app.py).
COST_LINE = "Cost J = "


def _status(frame: Frame, device: str, cfg: StyleConfig, note: str = "", running: bool = True) -> str:
    """Where the run is, in plain words (with the time left while ``running``; done or stopped at the end), then
    the cost J and its weighted terms as the plot draws them, then ``note`` on lines of their own."""
    done, total = frame.step, frame.total_steps
    scale = ""
    if frame.num_scales > 1:
        scale = f" (scale {frame.scale + 1} of {frame.num_scales}, {max(frame.image.size)} px)"
    if not running:
        if frame.done:
            where = f"Done: {done} step{'s' * (done != 1)} in {_seconds(frame.elapsed)} on {device}"
        else:
            where = f"Stopped at step {done} of {total} on {device}"
    elif done == 0:
        where = f"Starting: step 0 of {total}{scale} on {device}"
    else:
        eta = _remaining_s(frame, cfg) if done < total else 0.0
        where = f"Step {done} of {total}{scale} — about {_seconds(eta)} left"
    detail = ", ".join(f"{term.label} {term.weighted:.4g}" for term in frame.terms)
    text = f"{where}\n{COST_LINE}{frame.total:.4g} ({detail})"
    return f"{text}\n{note}" if note else text


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _notes(request: Request, note: str = "") -> str:
    """The request's notes (e.g. an enlarged photo) and ``note``, one per line."""
    return "\n".join([*request.prepared.notes, *([note] if note else [])])


def _remaining_s(frame: Frame, cfg: StyleConfig) -> float:
    """Seconds left, from the time so far and the work left. A step costs in proportion to its pixels, so the
    full-size steps of a coarse-to-fine run count for more than the early ones (counting steps alone, a 1024 px run
    said 17 s where 70 s were left)."""
    done = left = 0.0
    first = 0
    for size, steps in cfg.scale_sizes():
        steps_done = min(max(frame.step - first, 0), steps)
        done += steps_done * size * size
        left += (steps - steps_done) * size * size
        first += steps
    return frame.elapsed * left / done if done else 0.0


def _loss_rows(frame: Frame) -> list[dict]:
    """The plot's rows for a frame: J and each weighted term (what J adds up), on a log scale."""
    costs = {"total J": frame.total, **{term.label: term.weighted for term in frame.terms}}
    return [{"step": frame.step, "term": k, "log10 cost": math.log10(v) if v > 0 else None} for k, v in costs.items()]


_clock = time.perf_counter  # the time budget's clock (tests replace it)


def _device_name(model: VGGFeatures) -> str:
    device = model.device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"
