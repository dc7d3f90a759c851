"""Tiles against the whole picture: exactness, memory and speed (``python -m bench.tiling MODE ...``).

Modes:

* ``activations``: bytes per input pixel of one forward + backward pass (fp32 and bf16), the slope of the profiler's
  peak between two sizes: what ``style_transfer.memory.ACTIVATION_BYTES_PER_PIXEL`` holds.
* ``run``: one run in this process (``--size``, ``--steps``, ``--memory-limit``, ``--precision``, ``--scales``,
  ``--out`` for the 16-bit pixels as .npy and a PNG); prints one JSON line: the plan, J's terms, the step times and
  the process's peak RSS.
* ``compare``: at ``--size``, an untiled run and a tiled one whose budget leaves the tiles under half of the untiled
  run's activations, each in a fresh process, plus a tiny run for the interpreter's own RSS: PSNR between the two
  pictures, relative difference of J, the memory each used (peak RSS minus the tiny run's) and the step times.
* ``rss``: peak RSS against ``--sizes``, without and with ``--limit`` (fresh process each).

The parent imports no torch, so each child's peak RSS is its own. CPU figures on a shared VM are noisy: a few steps
each, medians of the step times.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "content" / "lake_boats.jpg"
STYLE = ROOT / "examples" / "styles" / "starry_night.jpg"


def activations(sizes: tuple[int, int] = (128, 256)) -> dict[str, float]:
    """Bytes per pixel of the objective's forward + backward, and of its forward alone without gradients (what a
    tiled step's first pass holds), per precision: the slope between two sizes of the profiler's peak of live tensors
    above the start."""
    import json as _json
    import tempfile
    import warnings

    import torch
    from torch.profiler import ProfilerActivity, profile

    from style_transfer import StyleConfig
    from style_transfer.engine import Objective
    from style_transfer.images import load_image, pil_to_tensor, resize_longest
    from style_transfer.model import load_model

    model = load_model("caffe", "cpu")
    out = {}
    for precision, grad in itertools.product(("fp32", "bf16"), (True, False)):
        peaks = []
        for size in sizes:
            cfg = StyleConfig(size=size, precision=precision).validate()
            content = pil_to_tensor(resize_longest(load_image(CONTENT), size))
            style = pil_to_tensor(resize_longest(load_image(STYLE), size))
            objective = Objective(model, content, [style], cfg, amp=precision == "bf16")
            image = content.clone().requires_grad_(grad)
            kinds = {"profile_memory": True, "record_shapes": True, "with_stack": True, "acc_events": True}
            with profile(activities=[ProfilerActivity.CPU], **kinds) as prof, torch.set_grad_enabled(grad):
                total = objective(image)[0]
                if grad:
                    total.backward()
            with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                path = Path(tmp) / "m.json"
                prof.export_memory_timeline(str(path), device="cpu")
                _, samples = _json.loads(path.read_text())
            totals = [sum(s) for s in samples]
            peaks.append((max(totals) - totals[0], content.shape[-2] * content.shape[-1]))
        (p0, n0), (p1, n1) = peaks
        out[precision if grad else f"{precision} without gradients"] = (p1 - p0) / (n1 - n0)
    return out


def run(args: argparse.Namespace) -> dict:
    """One run in this process; the record printed by ``run``."""
    import resource

    import numpy as np
    import torch

    from style_transfer import StyleConfig, memory, stylize
    from style_transfer.accel import use_bf16
    from style_transfer.images import load_image, resize_longest
    from style_transfer.output import save_image

    torch.manual_seed(0)
    cfg = StyleConfig(
        size=args.size,
        steps=args.steps,
        scales=args.scales,
        precision=args.precision,
        memory_limit=args.memory_limit,
        preview_every=1,
        seed=0,
    ).validate()
    width, height = resize_longest(load_image(CONTENT), args.size).size
    amp = use_bf16(cfg, torch.device("cpu"))
    plan = memory.plan(height, width, cfg, amp, memory.parse_size(cfg.memory_limit))
    times = []
    final = None
    last = time.perf_counter()
    for frame in stylize(CONTENT, STYLE, cfg):
        now = time.perf_counter()
        if 0 < frame.step < cfg.steps:
            times.append(now - last)
        last, final = now, frame
    assert final is not None and final.image16 is not None
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out.with_suffix(".npy"), final.image16)
        save_image(final.image, out.with_suffix(".png"), settings=cfg.to_dict())
    return {
        "size": args.size,
        "pixels": width * height,
        "memory_limit": args.memory_limit,
        "precision": "bf16" if amp else "fp32",
        "tiles": plan.rows * plan.cols,
        "planned_mb": plan.bytes / 2**20,
        "losses": final.losses,
        "step_s": statistics.median(times) if times else None,
        "steps_timed": len(times),
        "elapsed_s": final.elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(*options: str) -> dict:
    """``run`` in a fresh interpreter (its peak RSS is its own), its JSON record."""
    cmd = [sys.executable, "-m", "bench.tiling", "run", *options]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(size: int, steps: int, out: Path, precision: str = "fp32") -> dict:
    """Untiled and tiled at ``size``, and a tiny run's RSS as the baseline."""
    import numpy as np
    import torch

    from style_transfer import StyleConfig, memory
    from style_transfer.accel import use_bf16

    tiny = _child("--size", "64", "--steps", "2", "--precision", precision, "--scales", "1")
    untiled = _child(*_opts(size, steps, precision), "--out", str(out / f"untiled_{size}"))
    width, height = _shape(size)
    cfg = StyleConfig(size=size, steps=steps, precision=precision, scales=1).validate()
    amp = use_bf16(cfg, torch.device("cpu"))
    state = memory.state_bytes_per_pixel(cfg, amp, False, tiled=True) * width * height
    acts = memory.activation_bytes_per_pixel(amp) * width * height
    limit = int(state + memory.PASS_BYTES + 0.45 * acts)  # the tiles get under half of the untiled activations
    tiled = _child(*_opts(size, steps, precision), "--memory-limit", str(limit), "--out", str(out / f"tiled_{size}"))
    a = np.load(out / f"untiled_{size}.npy").astype(np.float64) / 65535
    b = np.load(out / f"tiled_{size}.npy").astype(np.float64) / 65535
    mse = float(np.mean((a - b) ** 2))
    return {
        "size": size,
        "steps": steps,
        "precision": tiled["precision"],
        "budget_mb": limit / 2**20,
        "untiled_activations_mb": acts / 2**20,
        "tiles": tiled["tiles"],
        "psnr_db": math.inf if mse == 0 else 10 * math.log10(1 / mse),
        "max_abs_diff_8bit": float(np.abs(a - b).max() * 255),
        "rel_diff_J": abs(tiled["losses"]["total"] - untiled["losses"]["total"]) / untiled["losses"]["total"],
        "tiny_rss_mb": tiny["peak_rss_mb"],
        "untiled_used_mb": untiled["peak_rss_mb"] - tiny["peak_rss_mb"],
        "tiled_used_mb": tiled["peak_rss_mb"] - tiny["peak_rss_mb"],
        "untiled_step_s": untiled["step_s"],
        "tiled_step_s": tiled["step_s"],
    }


def _opts(size: int, steps: int, precision: str = "fp32") -> list[str]:
    return ["--size", str(size), "--steps", str(steps), "--precision", precision, "--scales", "1"]


def _shape(size: int) -> tuple[int, int]:
    from style_transfer.images import load_image, resize_longest

    return resize_longest(load_image(CONTENT), size).size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("activations", "run", "compare", "rss"))
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--scales", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--memory-limit", default="auto")
    parser.add_argument("--limit", default="1G", help="the budget of the rss mode's budgeted runs")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    if args.mode == "activations":
        print(json.dumps(activations()))
    elif args.mode == "run":
        print(json.dumps(run(args)))
    elif args.mode == "compare":
        print(json.dumps(compare(args.size, args.steps, Path(args.out or "/tmp/bench_tiling"), args.precision)))
    else:
        tiny = _child("--size", "64", "--steps", "2", "--precision", args.precision, "--scales", "1")
        for size in args.sizes:
            for limit in ("auto", args.limit):
                opts = ["--size", str(size), "--steps", str(args.steps), "--precision", args.precision]
                record = _child(*opts, "--scales", "1", "--memory-limit", limit)
                record["used_mb"] = record["peak_rss_mb"] - tiny["peak_rss_mb"]
                print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
