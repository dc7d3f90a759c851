"""The Space's limits: uploads, previews, GPU time, the queue and the file cache.

The engine's limits (output size, steps, image pixels and sides) are in ``style_transfer/limits.py``; the README's
"Limits and errors" section documents both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CPU_QUEUE",
    "DELETE_CACHE",
    "GPU_DURATION_MAX_S",
    "GPU_DURATION_MIN_S",
    "GPU_WORKER_START_S",
    "MAX_PREVIEWS",
    "MAX_SIZE_CPU",
    "MAX_SIZE_GPU",
    "MAX_UPLOAD",
    "MAX_UPLOAD_BYTES",
    "STOP_STATE_TTL_S",
    "VIDEO_GPU_DURATION_MAX_S",
    "VIDEO_MAX_FRAMES",
    "VIDEO_MAX_SIZE",
    "ZEROGPU_QUEUE",
    "QueueLimits",
    "max_size",
    "queue_limits",
]

# --- Inputs -----------------------------------------------------------------------------------------------------
# Uploads above this are refused by Gradio before they reach our code (HTTP 413; gradio_client checks locally).
MAX_UPLOAD = "20mb"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # what Gradio makes of "20mb"

# --- One run ----------------------------------------------------------------------------------------------------
# Longest side of the output in the Space (the engine goes to 8192): 4096 px on a GPU, where a picture too big for
# its memory is computed in tiles and GPU time is the bound; 2048 px on a CPU, where a 2048 px run already takes
# minutes between previews and a bigger one would take most of the machine's memory.
MAX_SIZE_GPU, MAX_SIZE_CPU = 4096, 2048


def max_size(on_gpu: bool) -> int:
    """The Space's largest output size where it runs."""
    return MAX_SIZE_GPU if on_gpu else MAX_SIZE_CPU


# ZeroGPU allocation per run, seconds: the estimate (zerogpu.gpu_duration) is clamped to this range. A run that would
# outlast its allocation stops itself before it (checked every step), with its latest image and a note.
GPU_DURATION_MIN_S, GPU_DURATION_MAX_S = 15, 240
# Of that allocation, the seconds a worker spends before its run's clock starts (fork, GPU init, weights moved in);
# the run stops itself that much before its duration (zerogpu.allocation), and the platform's clock includes them.
GPU_WORKER_START_S = 4.0

# Every preview is written to Gradio's cache as a PNG (up to ~10 MB at 2048 px), so a run streams at most this many:
# a smaller preview interval is raised to steps / MAX_PREVIEWS (the final image always comes).
MAX_PREVIEWS = 100

# What Stop needs (the photo and the latest frame, two images) stays in the session's state at most this long after
# the last preview, for a run that no Stop and no end emptied (a gradio_client caller's cancel). Gradio keeps the
# state of a closed browser tab an hour too. A CPU run at 2048 px can take minutes between previews.
STOP_STATE_TTL_S = 3600

# --- Files ------------------------------------------------------------------------------------------------------
# gr.Blocks(delete_cache=(every, age)): every hour, delete the uploads and results this app created that are over
# two hours old; the whole cache is deleted when the server restarts.
DELETE_CACHE = (3600, 7200)


# --- Load -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueLimits:
    """Gradio queue settings for the ``stylize`` event.

    ``max_size`` counts the requests *waiting* (Gradio does not count those running), so the Space holds at most
    ``max_size + concurrency`` requests; the next one gets "Queue is full" at once instead of a long wait.
    """

    max_size: int
    concurrency: int

    @property
    def capacity(self) -> int:
        """Requests held at once: running plus waiting."""
        return self.max_size + self.concurrency


# On a CPU one run already uses every core, so runs go one at a time. Eight waiting requests still all fit when they
# arrive together (before the first has started); at the app's CPU default (256 px, 150 steps, about 1 min per run)
# the last of them waits under 10 minutes, which is the longest wait we accept.
CPU_QUEUE = QueueLimits(max_size=8, concurrency=1)
# On ZeroGPU every run holds its own GPU, billed to its own user, so four run at once; sixteen waiting requests are
# four rounds of ~20 s default runs (about a minute and a half), at worst four rounds of GPU_DURATION_MAX_S.
ZEROGPU_QUEUE = QueueLimits(max_size=16, concurrency=4)


def queue_limits(on_zerogpu: bool) -> QueueLimits:
    """The queue settings for where the app runs."""
    return ZEROGPU_QUEUE if on_zerogpu else CPU_QUEUE


# --- Videos (the Video tab) ---------------------------------------------------------------------------------------
# A clip is one GPU call: at most this many frames and this size, so that the default (256 px, 100 steps for the
# first frame, 40 for each later one) of a full clip fits VIDEO_GPU_DURATION_MAX_S on an H100-class GPU (about
# 0.01 s an eager step at 512 px: 59 x 40 steps = 24 s, a minute at 512 px).
VIDEO_MAX_FRAMES = 60
VIDEO_MAX_SIZE = 512
# ZeroGPU allows a Pro user's call up to a few minutes; a clip asks for at most this.
VIDEO_GPU_DURATION_MAX_S = 300
