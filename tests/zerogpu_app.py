"""Run app.py as ``python app.py`` does, on ZeroGPU's real path (``spaces`` unmodified) on a machine without a GPU.

Started by ``tests/test_zerogpu_platform.py`` with ``SPACES_ZERO_GPU=true`` and the device API stand-in's URL. Only
the two calls of ``spaces``' forked worker that need a GPU are replaced (``spaces.zero.torch.init`` and ``move``):
``init`` creates no CUDA context, and ``move`` reads the weights ``spaces`` packed to disk at launch back into CPU
tensors (same dtype, shape and strides) and points the model's tensors at them, where the real one copies them to
the GPU. Everything else (torch patching and CUDA emulation in the main process, /startup-report, /schedule, the
fork, /allow, pickled yields, /release, the duration warning) is ``spaces``' own code.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import spaces  # noqa: E402,F401  (first, as app.py does: on ZeroGPU it patches torch)
import torch  # noqa: E402
from spaces.zero import torch as zero_torch  # noqa: E402
from spaces.zero.torch import patching  # noqa: E402


def cpu_init(nvidia_uuid: str) -> None:
    """``init`` without the CUDA context: the worker runs on the CPU."""
    os.environ["CUDA_VISIBLE_DEVICES"] = nvidia_uuid


def cpu_move(callback: Any = None) -> None:
    """``move`` to the CPU: the packed weights read back from spaces' own file (its layout: every tensor of every
    batch, then the big ones, each padded to its aligned size)."""
    callback = callback or (lambda _n: None)
    for fake, original in list(patching.cuda_aliases.items()):  # tensors made after the launch: never packed
        if original is not None:
            fake.data = torch.Tensor(original)
    for pack in patching.tensor_packs:
        with open(pack.path(), "rb") as f:
            for tensor, size, aligned in [t for batch in pack.batches for t in batch] + list(pack.big_tensors):
                data = torch.frombuffer(bytearray(f.read(aligned))[:size], dtype=torch.uint8)
                cpu = torch.tensor([], dtype=tensor.dtype)
                cpu.set_(data.untyped_storage(), 0, tensor.shape, tensor.stride())
                for fake in pack.fakes[tensor]:
                    fake.data = cpu
                callback(size)


zero_torch.init = cpu_init
zero_torch.move = cpu_move
os.chdir(ROOT)
sys.argv = [str(ROOT / "app.py")]
runpy.run_path(sys.argv[0], run_name="__main__")
