"""Speed settings per device: bf16 autocast, memory layout, backend flags, fused optimiser.

Why (the measurements behind each choice are in bench/README.md):
* bf16 autocast of the VGG forward/backward is ~1.9x faster per step on a CPU with native bf16 and uses the tensor
  cores on a GPU; the Gram matrices and costs stay fp32 (an fp16 Gram overflows, bf16 loses the small residuals).
* On CUDA: no cuDNN autotuning (memory spikes), TF32 for convs/matmuls outside autocast, channels_last,
  fused Adam (no host syncs). TF32 also runs the fp32 Gram matmuls: in a bf16 run their inputs are bf16 values,
  which TF32 holds exactly (sums stay fp32); an fp32 run (L-BFGS) gets products of 10-bit-mantissa inputs there.
* L-BFGS keeps fp32: its curvature pairs are unreliable in 16-bit.
* CUDA-only kernels (:class:`FastPath`): fewer passes over the activations in a step, which at 2048 px is bound by
  memory traffic: the conv, its bias and the ReLU in one cuDNN call; the Gram of bf16 activations straight into fp32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable
from typing import Any

import torch

from .config import StyleConfig

log = logging.getLogger(__name__)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (not emulated) on ``device``."""
    if device.type == "cuda":
        # Ampere or later; torch's default also says yes for older GPUs (T4, V100), which only emulate bf16.
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def use_bf16(cfg: StyleConfig, device: torch.device) -> bool:
    """Resolve ``cfg.precision`` for ``device`` ("auto": bf16 when native and the optimiser is Adam)."""
    if cfg.precision == "bf16":
        if bf16_supported(device):
            return True
        # Emulated bf16 (a CPU without AVX-512-BF16/AMX) ran 10-20x slower per step than fp32: never worth it.
        log.warning("precision 'bf16' asked for, but %s has no native bf16: running in fp32", device.type)
        return False
    if cfg.precision == "fp32":
        return False
    return cfg.optimizer == "adam" and bf16_supported(device)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled``, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    # No cast cache: it is not allowed while a CUDA graph is captured, and the frozen weights never use it anyway.
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (cuDNN's fast layout for convs); the default layout on CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def configure_backends(device: torch.device) -> None:
    """Process-wide flags that only make things faster for this workload."""
    if device.type == "cuda":
        # No autotuning: it tries workspace-hungry algorithms (peaks of tens of GB for runs that need 0.6-2 GB)
        # and re-tunes at every new shape (each scale), which made whole runs slower, not faster.
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # The Gram's bf16 backward matmul (losses._bf16_gram_backward) sums in fp32 even if cuBLAS splits the sum
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False


def adam_kwargs(device: torch.device, capturable: bool = False) -> dict:
    """Extra Adam arguments: the fused (single-kernel, sync-free) implementation on CUDA; ``capturable`` keeps its
    step count on the GPU so that the step can be captured in a CUDA graph."""
    if device.type != "cuda":
        return {}
    return {"fused": True, "capturable": True} if capturable else {"fused": True}


class FastPath:
    """A CUDA-only faster way to compute something the engine can always compute the plain way.

    Used while ``on``, per ``key`` (what a kernel's availability depends on: the dtype, a layer's channels). Its
    first failure for a key turns it off for that key for the process, logged, and that call is computed the plain
    way: a kernel a GPU or a cuDNN build lacks costs one warning, not a request. Inside a CUDA graph capture the
    failure also propagates (the capture then falls back to eager steps, which take the plain way). Running out of
    memory, or a broken CUDA context, is not the path's fault: it propagates and turns nothing off. The GPU check
    (``python -m bench.gpu --fused-conv off``) switches ``on`` to time both ways.
    """

    def __init__(self, name: str, on: bool = True) -> None:
        self.name, self.on = name, on
        self.failures: dict[Hashable, str] = {}

    def __call__(self, key: Hashable, fast: Callable[..., Any], plain: Callable[..., Any], *args: Any) -> Any:
        """``fast(*args)`` while on and never failed for ``key``, else (or when it fails) ``plain(*args)``."""
        if self.on and key not in self.failures:
            try:
                return fast(*args)
            except (torch.OutOfMemoryError, torch.AcceleratorError):
                raise
            except RuntimeError as exc:
                self.failures[key] = f"{type(exc).__name__}: {exc}"
                log.warning("%s failed for %s (%s): the plain kernels there from now on", self.name, key, exc)
                if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
                    raise
        return plain(*args)


# The conv, its bias and its ReLU as one cuDNN call (model.VGGFeatures); bias and ReLU were two more passes over
# each conv's output, forward (the bias add alone was about an eighth of a 2048 px step's GPU time). On because it
# is faster at every size with the same peak memory and picture, and a new shape's first use compiles nothing
# (python -m bench.gpu --fused-conv off times both ways; figures in bench/README.md).
fused_conv_relu = FastPath("fused conv + bias + ReLU (cuDNN)")
# The Gram of bf16 activations as a bf16 matmul with an fp32 result, and its gradient in bf16 (losses._Gram): no
# fp32 copy of the activations, forward or backward, and no cast of the gradient back. The same products and fp32
# sums as the TF32 matmul of the fp32 copy (TF32 holds bf16 values exactly); the gradient is rounded to bf16 where
# the network's bf16 backward rounded it anyway.
bf16_gram = FastPath("bf16 Gram with an fp32 result")
