"""A GPU run seen from the main process: what reaches the outputs, whatever the platform does.

On ZeroGPU the run is a forked worker behind ``spaces``: its failures arrive as ``gr.Error``s titled "ZeroGPU …"
(or, for the device API, plain exceptions), closing it waits for the worker's next yield and the GPU's release, and
the platform may kill it when its time runs out. :func:`on_gpu` wraps the run's items so that:

- every platform failure is a ``gr.Error`` that names its cause and what to do (the log keeps the details);
- a run the platform ended after some previews ends with its latest image, download and a note, as Stop does;
- closing the run (a cancel, Stop) happens on a thread of its own, never on the server's event loop;
- every image sent gets a marker of its own, so Gradio, which names output files after their content and writes
  them in place, never gives two runs (or two updates) the same file;
- each run's measured step speed is handed to the duration model (``zerogpu.speeds``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Generator, Iterator

import gradio as gr
import httpx
from PIL import Image

from .errors import user_error
from .request import Request
from .stream import StreamItem, final_values
from .zerogpu import Allocation, speeds

log = logging.getLogger(__name__)

OUTPUT_MARKER = "output-id"  # a PNG text chunk: the only difference between two runs' identical pictures

BUSY = (
    "No GPU is free",
    "All of this Space's GPUs are busy right now. Please try again in a minute; nothing was charged to your quota.",
)
QUOTA = (
    "GPU quota used up",
    "The ZeroGPU quota is used up: this run asks for {seconds} s of GPU time, more than is left. A smaller size or "
    "fewer steps asks for less, and visitors logged in to Hugging Face get more GPU time a day. The platform says: "
    "{platform}",
)
TOO_LONG = (
    "Run too long for the GPU",
    "This run asks for {seconds} s of GPU time, more than ZeroGPU allows one run for your account. Choose a smaller "
    "size or fewer steps. The platform says: {platform}",
)
PLATFORM_DOWN = (
    "GPU platform unavailable",
    "The Space could not get a GPU: the GPU platform {what}. This is not caused by your images or settings; please "
    "try again in a minute.",
)
AUTH = (
    "GPU session expired",
    "The GPU platform did not accept this page's session ({platform}). Reload the page and try again.",
)
ABORTED = (
    "GPU run ended by the platform",
    "The GPU platform ended the run before its first image (its GPU time ran out, or the GPU failed). Trying again "
    "is safe; a smaller size or fewer steps needs less GPU time.",
)
WORKER = (
    "GPU worker failed",
    "The GPU worker failed ({kind}) before the run could finish. This is not caused by your images or settings, "
    "and trying again is safe.",
)
OTHER = ("GPU platform error", "The GPU platform answered: {platform} ({title}). Please try again in a minute.")
TIME_UP_NOTE = "The GPU time ran out at step {step} of {total}: the latest image is the result."
ABORTED_NOTE = (
    "The GPU platform ended the run at step {step} of {total} (the GPU failed, or its time ran out): the latest "
    "image is the result."
)


def on_gpu(
    items: Generator[StreamItem, None, None], request: Request, plan: Allocation | None = None
) -> Iterator[StreamItem]:
    """``items`` (a GPU run's stream) as the outputs should get them; see the module's docstring.

    ``plan`` is the run's ZeroGPU allocation (None off ZeroGPU: nothing is learned). Closing this generator returns
    at once and closes ``items`` on a thread of its own.
    """
    last: StreamItem | None = None
    steps: list[float] = []
    started = time.monotonic()  # before the GPU is asked for: the platform's clock starts a little later
    try:
        try:
            for item in items:
                last = item
                if item[5].seconds_per_step is not None:
                    steps.append(item[5].seconds_per_step)
                yield marked(item)
        except gr.Error as exc:
            if not from_platform(exc):
                raise
            log.warning("GPU platform: %s: %s", exc.title, exc.message)
            if aborted(exc) and last is not None:
                time_up = plan is not None and time.monotonic() - started >= plan.seconds
                yield marked(_ended_by_platform(last, request, TIME_UP_NOTE if time_up else ABORTED_NOTE))
                return
            raise platform_error(exc, plan) from None
        except (RuntimeError, httpx.HTTPError, OSError) as exc:
            # The device API's other answers and network failures (spaces raises them as they come).
            log.exception("GPU platform failure: %s", type(exc).__name__)
            raise platform_error(exc, plan) from None
    finally:
        close_elsewhere(items)
        if plan is not None and last is not None:
            latest = last[5]
            width, height = latest.frame.image.size
            speeds.observe_run(latest.device, width * height / 1e6, request.config.optimizer, steps)


def marked(item: StreamItem) -> StreamItem:
    """``item`` with a fresh output marker on each of its images (a result and its before/after pair)."""
    image, compare, *rest = item
    if isinstance(image, Image.Image):
        mark(image)
    if isinstance(compare, tuple):
        for side in compare:
            mark(side)
    return (image, compare, *rest)


def mark(image: Image.Image) -> Image.Image:
    """Give ``image`` (in place) a marker no other output has: Gradio writes it into the PNG it names the file after.

    An image sent twice (the result and the "after" of the pair in one update) gets the marker of its second call
    for both, which is fine: Gradio writes both before anyone is told the file's name.
    """
    image.info[OUTPUT_MARKER] = uuid.uuid4().hex
    return image


def from_platform(exc: gr.Error) -> bool:
    """Whether ``exc`` comes from ZeroGPU itself (spaces titles its errors "ZeroGPU …"), not from the run."""
    return str(getattr(exc, "title", "")).startswith("ZeroGPU")


def aborted(exc: gr.Error) -> bool:
    """Whether ``exc`` says the platform killed the worker (its time ran out, or the GPU failed)."""
    return exc.title == "ZeroGPU worker error" and exc.message == "GPU task aborted"


def _ended_by_platform(last: StreamItem, request: Request, note: str) -> StreamItem:
    """The final item of a run the platform ended: its latest frame as the result, as Stop would make it."""
    latest = last[5]
    frame = latest.frame
    note = note.format(step=frame.step, total=frame.total_steps)
    compare, status, download = final_values(latest, request.content, request.config, request.output_format, note)
    return frame.image, compare, last[2], status, download, latest


def platform_error(exc: BaseException, plan: Allocation | None) -> gr.Error:
    """The user's message for a platform failure."""
    seconds = plan.seconds if plan is not None else "?"
    if not isinstance(exc, gr.Error):
        what = "could not be reached" if isinstance(exc, httpx.HTTPError | OSError) else "answered with an error"
        if "/schedule error:" in str(exc):
            what = f"answered HTTP {str(exc).split('/schedule error:', 1)[1].strip().split(' ', 1)[0]}"
        title, message = PLATFORM_DOWN
        return user_error(message.format(what=what), title)
    platform, kind = str(exc.message), exc.title
    if kind in ("ZeroGPU quota exceeded", "ZeroGPU pending credits exceeded"):
        title, message = QUOTA
    elif kind == "ZeroGPU illegal duration":
        title, message = TOO_LONG
    elif kind == "ZeroGPU queue timeout" or platform.startswith("No GPU was available"):
        title, message = BUSY
    elif kind == "ZeroGPU client error" and "token" in platform:
        title, message = AUTH
    elif aborted(exc):
        title, message = ABORTED
    elif kind == "ZeroGPU worker error":
        title, message = WORKER
    else:
        title, message = OTHER
    return user_error(message.format(seconds=seconds, platform=platform, kind=platform, title=kind), title)


def close_elsewhere(items: Generator) -> None:
    """Close ``items`` on a thread of its own when that may wait (a run still going): on ZeroGPU closing waits for
    the worker's next yield and the GPU's release, and Gradio closes a cancelled run on its event loop."""
    if items.gi_frame is None:  # finished: nothing to wait for
        return
    threading.Thread(target=_close, args=(items,), name="close-gpu-run", daemon=True).start()


def _close(items: Generator) -> None:
    try:
        items.close()
    except Exception:
        log.exception("closing a stopped GPU run failed")
