"""One whole Adam step captured as a CUDA graph and replayed: ~530 kernel launches become one.

At 512 px on an H100 the eager step is launch-bound (7–8 ms/step; a prototype graph of the same step ran 2.6 ms).
A graph needs fixed shapes and fixed buffers, which one scale of a run has: the image is optimised in place, the
targets never change. The graph also copies the image into a ``shown`` buffer before it steps, so a preview shows
the image and the costs of the same (pre-step) state that the eager loop shows, read without breaking the graph.

Only on CUDA, only for Adam (L-BFGS's step has data-dependent control flow), and only when ``cuda_graphs`` is "on";
any failure while capturing falls back to the eager step, logged. Nothing here runs on a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuDNN/cuBLAS pick their kernels, Adam its state)


def wanted(setting: str, optimizer: str, device: torch.device) -> bool:
    """Whether to capture: ``setting`` is "on", the optimiser is Adam and the device is a CUDA GPU."""
    return setting == "on" and optimizer == "adam" and device.type == "cuda"


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
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        # The warm-up moved the image and filled Adam's state: back to the start, so the run is the eager run.
        with torch.no_grad():
            image.copy_(start)
            for state in optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)  # backward in the capture allocates .grad from the graph's pool
        with torch.cuda.graph(self.graph):
            self.total, self.terms = self._body()

    def _body(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            self.shown.copy_(self.image)
        with torch.enable_grad():
            total, terms = self.objective(self.image)
            total.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.project_(self.image)
        return total, {k: v.detach() for k, v in terms.items()}

    def step(self) -> None:
        """One optimiser step (no host sync); afterwards ``shown`` and ``terms`` hold the pre-step state."""
        self.graph.replay()


def capture(
    image: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    project_: Callable[[torch.Tensor], None],
) -> GraphedStep | None:
    """A captured step, or None (logged) when capture fails: the caller then steps eagerly from the same state."""
    start = image.detach().clone()
    try:
        return GraphedStep(image, optimizer, objective, project_, start)
    except Exception as exc:  # any capture problem: the eager loop is always correct
        log.warning("CUDA graph capture failed (%s: %s): running the steps eagerly", type(exc).__name__, exc)
        with torch.no_grad():
            image.copy_(start)
        optimizer.state.clear()
        optimizer.zero_grad(set_to_none=True)
        return None
