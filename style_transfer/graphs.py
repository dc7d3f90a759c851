"""CUDA graphs of the optimiser's step: the hundreds of kernel launches of one step become one replay.

At 512 px on a data-centre GPU the eager step is launch-bound (several ms per step, a few times a graph's replay).
A graph needs fixed shapes and fixed buffers, which one scale of a run has: the image is optimised in place and the
targets never change. Two kinds, one per optimiser:

* :class:`GraphedStep` (Adam): copy the image into a ``shown`` buffer, J and its terms, backward, fused capturable
  Adam, projection. A preview reads ``shown`` and the terms, the same pre-step state the eager loop shows.
* :class:`GraphedClosure` (L-BFGS): J of the projected image and its gradient. L-BFGS's own update stays eager: it
  reads the cost on the host and branches on it.

Only on CUDA and only when ``cuda_graphs`` is "on". Each capture is checked: its first replay must give the eager
cost of the same image (:func:`verify`); any failure or mismatch falls back to eager steps, logged, and the process
captures no more graphs (a failed capture can leave CUDA's allocator in capture mode and leak its pool: at most once).
One capture at a time per process (a lock): ``torch.cuda.graph`` synchronises the device on entry and shares one
capture stream. Other threads' eager work and replays go on meanwhile (``capture_error_mode="thread_local"``).
:func:`warm_up` and :func:`record` are the only CUDA calls: a test replaces them with eager stand-ins to check the
logic on a CPU. :data:`counts` tells a benchmark whether its graphs were really used.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

# Eager calls on a side stream before capture (cuDNN/cuBLAS pick their kernels, Adam makes its state). One is enough:
# the J after 50 graphed steps is the same with 1 as with 3 (Adam and L-BFGS), and each eager call more per scale
# only delays the first frame.
WARMUP_CALLS = 1
MAX_RELATIVE_ERROR = 1e-3  # first replay vs the eager cost of the same image: beyond this the graph is not used


_lock = threading.Lock()  # one capture at a time in the process
_streams: dict[torch.device, tuple[torch.cuda.Stream, torch.cuda.Stream]] = {}  # per GPU: (warm-up, capture)
disabled: str | None = None  # why the process stopped capturing (the first failure), or None
counts: collections.Counter[str] = collections.Counter()  # "captured", "fallback", "skipped", "capture_ms"


class GraphMismatch(RuntimeError):
    """The captured graph's first replay disagrees with the eager computation."""


def verify(replayed: torch.Tensor, expected: torch.Tensor) -> None:
    """Raise :class:`GraphMismatch` unless the replayed cost matches the eager one (one host sync, once per scale)."""
    got, want = float(replayed), float(expected)
    if not abs(got - want) <= MAX_RELATIVE_ERROR * abs(want):  # also refuses NaN
        raise GraphMismatch(f"first replay gave J = {got:.6g}, the eager step {want:.6g}")


def wanted(setting: str, device: torch.device) -> bool:
    """Whether to capture: ``setting`` is "on" and the device is a CUDA GPU."""
    return setting == "on" and device.type == "cuda"


def _side_streams() -> tuple[torch.cuda.Stream, torch.cuda.Stream]:
    """This GPU's warm-up and capture streams, made once (two calls to the stream pool give two distinct streams)."""
    device = torch.device("cuda", torch.cuda.current_device())
    if device not in _streams:
        _streams[device] = (torch.cuda.Stream(device), torch.cuda.Stream(device))
    return _streams[device]


def warm_up(body: Callable[[], Any], calls: int | None = None) -> None:
    """Run ``body`` ``calls`` (default :data:`WARMUP_CALLS`) times on a side stream, as capture requires (lazy
    initialisations happen there)."""
    side = _side_streams()[0]
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_CALLS if calls is None else calls):
            body()
    torch.cuda.current_stream().wait_stream(side)


def record(body: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
    """Capture one call of ``body``: returns ``(replay, outputs)``; each replay rewrites ``outputs`` in place."""
    stream = _side_streams()[1]
    graph = torch.cuda.CUDAGraph()
    # The outer context gives the caller its stream back even when the capture fails at its end (torch.cuda.graph's
    # own exit then skips that), so a later step on this thread does not run on the capture stream.
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
        outputs = body()
    return graph.replay, outputs


class GraphedStep:
    """``step()`` = one replay of: copy image to ``shown``; J(image) and its terms; backward; Adam; projection."""

    def __init__(
        self,
        image: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]],
        project_: Callable[[torch.Tensor], None],
        start: torch.Tensor,
    ) -> None:
        """``start`` is a copy of the image before any step (the warm-up's steps are undone with it)."""
        self.image, self.optimizer, self.objective, self.project_ = image, optimizer, objective, project_
        self.shown = torch.empty_like(image, requires_grad=False)
        with torch.no_grad():
            expected = objective(image)[0]
        warm_up(self._body)
        optimizer.zero_grad(set_to_none=True)  # backward in the capture allocates .grad from the graph's pool
        self.step, (self.total, self.terms) = record(self._body)
        self._restart(start)
        self.step()
        verify(self.total, expected)
        self._restart(start)

    def _restart(self, start: torch.Tensor) -> None:
        """Back to the start: the image and Adam's state (in place, where the graph reads them), so the graphed run
        is the eager run after the warm-up, the capture (which runs nothing on a GPU; the tests' CPU stand-in runs
        it once) and the checked replay."""
        with torch.no_grad():
            self.image.copy_(start)
            for state in self.optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()

    def _body(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.shown.copy_(self.image)
        with torch.enable_grad():
            total, terms = self.objective(self.image)
            total.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.project_(self.image)
        return total.detach(), {k: v.detach() for k, v in terms.items()}


class GraphedClosure:
    """L-BFGS's closure as one replay: the cost of the image and its gradient, left in ``image.grad``.

    ``loss`` computes the cost of ``image`` and back-propagates it (L-BFGS differentiates through the projection).
    The gradient is kept contiguous (L-BFGS flattens it with ``.view(-1)``), in a buffer the replays rewrite.
    """

    def __init__(self, image: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.image, self.loss = image, loss
        expected = self._body()[0]  # the eager evaluation (no optimiser step here: the image never changes)
        warm_up(self._body)
        image.grad = None  # backward in the capture allocates the gradient from the graph's pool
        self.replay, (self.total, self.grad) = record(self._body)
        verify(self(), expected)

    def _body(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.image.grad = None
        with torch.enable_grad():
            total = self.loss(self.image)
        return total.detach(), self.image.grad.contiguous()

    def __call__(self) -> torch.Tensor:
        """One evaluation (no host sync): the cost, with the gradient in ``image.grad``."""
        self.replay()
        self.image.grad = self.grad
        return self.total


def capture_step(
    image: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    project_: Callable[[torch.Tensor], None],
) -> GraphedStep | None:
    """A captured Adam step, or None (logged) when capture fails: the caller then steps eagerly from the same state."""
    start = image.detach().clone()

    def undo() -> None:
        with torch.no_grad():
            image.copy_(start)
        optimizer.state.clear()
        optimizer.zero_grad(set_to_none=True)

    return _capture(image.device, lambda: GraphedStep(image, optimizer, objective, project_, start), undo)


def capture_closure(image: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]) -> GraphedClosure | None:
    """A captured L-BFGS closure, or None (logged) when capture fails: the caller then evaluates eagerly."""

    def undo() -> None:
        image.grad = None

    return _capture(image.device, lambda: GraphedClosure(image, loss), undo)


def _capture(device: torch.device, build: Callable[[], Any], undo: Callable[[], None]) -> Any:
    """``build()`` under the capture lock on ``device``; on any failure ``undo()`` and None (the eager loop is
    always correct), and None without trying once a capture has failed in this process."""
    with _lock, torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        if disabled is not None:
            counts["skipped"] += 1
            return None
        start = time.perf_counter()
        try:
            graph = build()
        except Exception as exc:  # any capture problem
            _fall_back(exc)
            undo()
            return None
        counts["captured"] += 1
        counts["capture_ms"] += round(1000 * (time.perf_counter() - start))  # warm-up, capture and the checked replay
        return graph


def _fall_back(exc: Exception) -> None:
    global disabled
    disabled = f"{type(exc).__name__}: {exc}"
    counts["fallback"] += 1
    log.warning(
        "CUDA graph capture failed (%s): running the steps eagerly, and no more captures in this process", disabled
    )
