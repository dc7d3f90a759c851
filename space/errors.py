"""How the Space answers failures: every one reaches the user as a ``gr.Error`` with a clear message.

Expected problems (bad input, divergence, out of memory) raise :func:`user_error` where they are found. Anything
else is caught by :func:`answered`, logged here with its traceback, and answered with :data:`UNEXPECTED`, which
names no path, value or pixel. On ZeroGPU the run is a forked worker whose plain exceptions reach the user only as
"ZeroGPU worker error: <class>", while a ``gr.Error`` passes through intact, so :func:`answered` must run inside
the GPU-decorated generator, too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import gradio as gr

log = logging.getLogger(__name__)

UNEXPECTED_TITLE = "Something went wrong"
UNEXPECTED = (
    "The style transfer stopped because of an unexpected error on the server while {doing} ({kind}). "
    "This is not caused by your images or settings, and trying again is safe."
)


def user_error(message: str, title: str) -> gr.Error:
    """A ``gr.Error`` for an expected problem: shown to the user, no traceback in the server log."""
    return gr.Error(message, title=title, print_exception=False)


@contextlib.contextmanager
def answered(doing: str) -> Iterator[None]:
    """Turn any exception but a ``gr.Error`` into :data:`UNEXPECTED`, logging its traceback server-side.

    ``doing`` says what was going on, for the message ("checking the request", "running the optimisation").
    Cancellation (``GeneratorExit``) and interrupts are not exceptions of the run and pass through.
    """
    try:
        yield
    except gr.Error:
        raise
    except Exception as exc:
        log.exception("unexpected %s while %s", type(exc).__name__, doing)
        message = UNEXPECTED.format(doing=doing, kind=type(exc).__name__)
        raise user_error(message, UNEXPECTED_TITLE) from None
