"""Stop: the run's latest image becomes its result, with the before/after and the download a finished run gets.

Stop cancels the run at once (Gradio closes the generator; on ZeroGPU at the worker's next yield), so the run
cannot end itself. Instead every update also leaves the request and its latest frame in the session's state (a
``gr.State``, not part of the API), and Stop's follow-up event turns that into the final outputs. The state is
emptied when a run ends, so Stop with nothing running changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import gradio as gr

from .errors import answered
from .request import Request
from .stream import Latest, StreamItem, final_values


@dataclass(frozen=True)
class Running:
    """A run in progress: its request and latest frame (what the session's state holds for Stop)."""

    request: Request
    latest: Latest


def remember(items: Iterable[StreamItem], request: Request) -> Iterator[tuple]:
    """The stream's output values, then the state for Stop: the run in progress, or None once it has ended."""
    for *values, latest in items:
        ended = values[4] is not None  # only a run's last update carries the download
        yield (*values, None if ended else Running(request, latest))


def forget() -> None:
    """The state when a new run is asked for: a run that failed left its last frame there, which Stop must not
    show as the new run's result."""
    return None


def finish(running: Running | None) -> tuple:
    """``(result, before/after, status, download, state)`` after Stop, from the latest frame; the state emptied.

    Changes nothing when no run was in progress (Stop before a run started, or after it ended).
    """
    if running is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
    frame = running.latest.frame
    note = f"Stopped at step {frame.step} of {frame.total_steps}: the latest image is the result."
    with answered("keeping the stopped run's image"):
        compare, status, download = final_values(running.latest, running.request, note)
    return frame.image, compare, status, download, None
