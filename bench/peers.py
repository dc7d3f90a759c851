"""Peers run through their own command line: pastiche (dstein64/pastiche, PyPI ``pastiche==1.6.0``).

pastiche is run exactly as a user would, ``python -m pastiche --content C --styles S --output O --size N
--num-steps K --device D --no-verbose``, in a subprocess. Its defaults: L-BFGS (``max_iter=1, lr=1``, history
100: one f+g evaluation per step, no line search), content at block4_relu2 with ``mse·0.01``, style
``10/C²·mse(Gram/(H·W))`` over relu1_1..relu5_1, pixels in BGR 0–255 space, no clamp until it saves.

Presets:

* ``pastiche``: its defaults (its own objective, which is not the judge's J).
* ``pastiche-seedloss``: the same optimizer on exactly the judge's J (content block5_relu2 with weight alpha/4 on
  its MSE, style weights beta·0.2/4 on its Gram MSE, since ``Σ/(4·nH·nW·nC) = mse/4`` and
  ``Σ/(4·nC²) = mse/4``), the like-for-like quality comparison.

Extra flags: ``pastiche:optimizer=adam`` adds ``--optimizer adam``. Timing: the wall time of the subprocess (it
includes Python start-up, ``import torch``, weight de-quantisation and target computation), and the loop time
from the modification times of its ``--workspace`` images of step 0 and step N (``--workspace-step N``). A
1-step run measures its start-up separately. On CUDA, pastiche runs under ``python -m bench.peers`` (a thin
wrapper that calls its ``main`` unchanged) so that ``torch.cuda.max_memory_allocated`` can be read.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

PRESET_NAMES = ("pastiche", "pastiche-seedloss")


def preset_flags(preset: str) -> dict[str, object]:
    """The extra pastiche flags of a preset (see the module docstring)."""
    if preset == "pastiche":
        return {}
    if preset == "pastiche-seedloss":
        from . import score  # imported here: the CUDA wrapper below should not pay for torch-side imports twice

        return {
            "content-layers": [score.CONTENT_LAYER.replace("conv", "relu")],
            "content-layer-weights": [score.ALPHA / 4.0],
            "content-weight": 1.0,
            "style-layers": [name.replace("conv", "relu") for name in score.STYLE_LAYERS],
            "style-layer-weights": [score.BETA * w / 4.0 for w in score.STYLE_LAYER_WEIGHTS],
        }
    raise KeyError(f"unknown pastiche preset {preset!r}; use one of {', '.join(PRESET_NAMES)}")


def available() -> bool:
    """Whether pastiche is installed (its CLI can be run)."""
    return importlib.util.find_spec("pastiche") is not None


def version() -> str | None:
    try:
        import importlib.metadata

        return importlib.metadata.version("pastiche")
    except Exception:
        return None


def pastiche_args(
    preset: str,
    extra: dict[str, object],
    content: Path,
    style: Path,
    output: Path,
    size: int,
    steps: int,
    device: str,
    workspace: Path | None = None,
    workspace_step: int | None = None,
) -> list[str]:
    """The pastiche command-line arguments (after ``python -m pastiche``) for one run."""
    args = [
        "--content", str(content),
        "--styles", str(style),
        "--output", str(output),
        "--size", str(size),
        "--style-size", str(size),
        "--num-steps", str(steps),
        "--device", device,
        "--seed", "0",
        "--no-verbose",
    ]  # fmt: skip
    options = {**preset_flags(preset), **extra}
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, (list, tuple)):
            args += [flag, *(str(v) for v in value)]
        elif value is True:
            args.append(flag)
        else:
            args += [flag, str(value)]
    if workspace is not None:
        args += ["--workspace", str(workspace), "--workspace-step", str(workspace_step or steps)]
    return args


def command(args: list[str], device: str, mem_out: Path | None = None) -> list[str]:
    """Full command line. CPU: the plain pastiche CLI; CUDA: the same CLI via our wrapper that reports GPU memory."""
    if device.startswith("cuda") and mem_out is not None:
        return [sys.executable, "-m", "bench.peers", "--mem-out", str(mem_out), "--", *args]
    return [sys.executable, "-m", "pastiche", *args]


def workspace_stamps(workspace: Path) -> list[tuple[int, float, Path]]:
    """``(step, mtime, path)`` of pastiche's workspace images, by step."""
    out = []
    if workspace.is_dir():
        for path in workspace.glob("*.png"):
            try:
                out.append((int(path.stem), path.stat().st_mtime, path))
            except ValueError:
                continue
    return sorted(out)


def _wrapper(argv: list[str]) -> int:
    """``python -m bench.peers --mem-out FILE -- PASTICHE_ARGS``: pastiche's own ``main``, plus peak GPU memory."""
    mem_out = Path(argv[argv.index("--mem-out") + 1])
    args = argv[argv.index("--") + 1 :]
    import torch
    from pastiche.pastiche import main as pastiche_main

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rc = pastiche_main(["pastiche", *args])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        mem = {
            "cuda_peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "cuda_peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
            "cuda_device": torch.cuda.get_device_name(),
        }
        mem_out.write_text(json.dumps(mem))
    return rc or 0


if __name__ == "__main__":
    sys.exit(_wrapper(sys.argv[1:]))
