"""Speed settings per device: bf16 autocast, memory layout, backend flags, fused optimiser.

Measured reasons (README, Performance; ../shared/docs/performance.md):
* bf16 autocast of the VGG forward/backward is ~1.9x faster per step on this AVX-512-BF16 CPU and uses the tensor
  cores on a GPU; the Gram matrices and costs stay fp32 (an fp16 Gram overflows, bf16 loses the small residuals).
* On CUDA: no cuDNN autotuning (memory spikes), TF32 for convs/matmuls outside autocast, channels_last,
  fused Adam (no host syncs). TF32 also runs the fp32 Gram matmuls: in a bf16 run their inputs are bf16 values,
  which TF32 holds exactly (sums stay fp32); an fp32 run (L-BFGS) gets products of 10-bit-mantissa inputs there.
* L-BFGS keeps fp32: its curvature pairs are unreliable in 16-bit.
"""

from __future__ import annotations

import contextlib
import logging

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
        # No autotuning: on an H100 it tried workspace-hungry algorithms (peaks of 33-65 GB instead of 0.6-2 GB)
        # and re-tuned at every new shape (each scale), which made whole runs slower, not faster.
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def adam_kwargs(device: torch.device, capturable: bool = False) -> dict:
    """Extra Adam arguments: the fused (single-kernel, sync-free) implementation on CUDA; ``capturable`` keeps its
    step count on the GPU so that the step can be captured in a CUDA graph."""
    if device.type != "cuda":
        return {}
    return {"fused": True, "capturable": True} if capturable else {"fused": True}
