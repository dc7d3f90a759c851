"""Stop: the run's latest image becomes its result, with the before/after and the download a finished run gets.

Stop cancels the run (Gradio closes the generator; on ZeroGPU at the worker's next yield), so the run cannot end
itself. Instead every update also puts the run's :class:`Running` in the session's state (a ``gr.State``, not part
of the API), and Stop's follow-up event, :func:`finish`, turns its latest frame into the final outputs. The cancel
and the follow-up reach the server independently, so the run checks the flag ``finish`` sets and sends nothing
after it. The state is emptied when a run ends; a run that failed or was stopped leaves an inert one.

An example's run, whose last update Gradio caches for everyone, must end complete: :func:`complete` sees to it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Iterator

import gradio as gr
from PIL import Image

from style_transfer.config import StyleConfig

from .errors import answered, user_error
from .platform import mark
from .request import Request
from .stream import Latest, StreamItem, final_values


class Running:
    """A run in progress, shared by the run and Stop: only what ``finish`` needs (not the style images or mask)."""

    def __init__(self, request: Request) -> None:
        self.content: Image.Image = request.content
        self.config: StyleConfig = request.config
        self.output_format: str = request.output_format
        self._latest: Latest | None = None
        self._ended = False
        self._lock = threading.Lock()  # the run's thread and Stop's request

    def update(self, latest: Latest) -> bool:
        """Keep the run's newest frame; False once the run has ended (stopped, or failed)."""
        with self._lock:
            if not self._ended:
                self._latest = latest
            return not self._ended

    def end(self) -> Latest | None:
        """Mark the run ended; its latest frame, or None if it had ended already (or had no frame yet)."""
        with self._lock:
            latest = None if self._ended else self._latest
            self._ended = True
            self._latest = None  # the session keeps this object a while: keep no image in it
            return latest


def remember(items: Generator[StreamItem, None, None], request: Request) -> Iterator[tuple]:
    """The stream's output values, then the state for Stop: the run in progress, or None once it has ended.

    Once Stop has taken the latest frame nothing more is sent, so no newer preview replaces Stop's result.
    """
    running = Running(request)
    try:
        for *values, latest in items:
            if not running.update(latest):
                return
            ended = values[4] is not None  # only a run's last update carries the download
            yield (*values, None if ended else running)
    except Exception:  # a failed run: Stop must not bring its last preview back as a result
        running.end()
        raise
    finally:
        items.close()


def finish(running: Running | None) -> tuple:
    """``(result, before/after, status, download, state)`` after Stop, from the latest frame; the state emptied.

    Changes nothing when no run was in progress (Stop before a run's first image, after it ended, or after it
    failed).
    """
    latest = running.end() if running is not None else None
    if latest is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
    # Copies with markers of their own: the run may still be writing its last preview's file (same pixels).
    frame = dataclasses.replace(latest.frame, image=mark(latest.frame.image.copy()))
    note = f"Stopped at step {frame.step} of {frame.total_steps}: the latest image is the result."
    with answered("keeping the stopped run's image"):
        compare, status, download = final_values(
            latest._replace(frame=frame), mark(running.content.copy()), running.config, running.output_format, note
        )
    return frame.image, compare, status, download, None


INCOMPLETE_EXAMPLE = (
    "This example's run stopped at step {step} of {total}, so its result was not kept for the example. "
    "Press Generate to run it with live previews."
)


def complete(items: Iterator[StreamItem]) -> Iterator[tuple]:
    """The outputs' values of a run that must finish (an example Gradio caches): a run that ended early (time
    limit, divergence, the platform) ends in a ``gr.Error`` instead, so no partial picture is cached."""
    latest = None
    for item in items:
        latest = item[5]
        yield tuple(item[:5])
    if latest is None or not latest.frame.done:
        step, total = (latest.frame.step, latest.frame.total_steps) if latest is not None else (0, "?")
        raise user_error(INCOMPLETE_EXAMPLE.format(step=step, total=total), "Example not finished")
