"""The CUDA-only kernel paths side by side, in one process: what each one gains, costs and changes.

    python -m bench.kernels --out DIR    # on a CUDA machine, about two minutes on an H100
    python -m bench.kernels --smoke      # the same code on the CPU at tiny sizes (the paths then never apply)

Each variant switches the paths in ``style_transfer.accel`` (fused conv + bias + ReLU, bf16 Gram), pooling indices
kept or recomputed (``model.LeanMaxPool2d``) and the warm-up calls before a capture (``graphs.WARMUP_CALLS``), then
first times one forward + backward at a size no other run uses (a new shape's first use: cuDNN picks, and may
compile, its kernels, and the fused conv is checked), then runs, in two rounds, the graphed Adam loop at 512 px (50
and 300 steps) and 2048 px (300 steps, automatic scales). It prints loop time, first-frame latency, peak memory, J,
and J's and the picture's difference from the variant with every path off (whose own round-to-round difference is
the noise floor); it writes that table, the final pictures at 512 px and kernel profiles under ``--out``. Needs what
``bench.gpu`` needs.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import torch
from PIL import Image

from style_transfer import StyleConfig, accel, graphs, preload
from style_transfer.engine import Objective
from style_transfer.model import LeanMaxPool2d, load_model

from .gpu import Result, _sync, activations_mb, kernel_profile, parse_args, run_engine

# name -> (fused conv + ReLU, bf16 Gram, pooling indices kept on CUDA, warm-up calls before a capture)
VARIANTS: dict[str, tuple[bool, bool, bool, int]] = {
    "none": (False, False, False, 3),
    "bf16 gram": (False, True, False, 3),
    "fused conv": (True, False, False, 3),
    "pool indices": (False, False, True, 3),
    "gram+conv": (True, True, False, 3),
    "gram+conv+indices": (True, True, True, 3),
    "gram+conv, 1 warm-up": (True, True, False, 1),
}
BASE = "none"
# (case, size, steps, overrides)
CASES = [
    ("512 graphed, 50 steps", 512, 50, {"scales": 1, "cuda_graphs": "on", "preview_every": 50}),
    ("512 graphed", 512, 300, {"scales": 1, "cuda_graphs": "on"}),
    ("2048 graphed, scales 0", 2048, 300, {"scales": 0, "cuda_graphs": "on"}),
]
FAST_PATHS = (accel.fused_conv_relu, accel.bf16_gram)
EAGER = ("512 eager", 512, 300, {"scales": 1, "cuda_graphs": "off"})  # for "none" and "gram+conv" only
SMOKE_SIZE = {512: 48, 2048: 64}


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """The process-wide switches of ``name``, restored afterwards; each variant starts with no failure on record
    (a fast path's or a capture's), so one failure shows in its own rows only."""
    fused, gram, indices, warmups = VARIANTS[name]
    for path in FAST_PATHS:
        path.failures.clear()
    graphs.disabled = None
    saved = (accel.fused_conv_relu.on, accel.bf16_gram.on, LeanMaxPool2d.keep_indices_on_cuda, graphs.WARMUP_CALLS)
    accel.fused_conv_relu.on, accel.bf16_gram.on = fused, gram
    LeanMaxPool2d.keep_indices_on_cuda, graphs.WARMUP_CALLS = indices, warmups
    try:
        yield
    finally:
        accel.fused_conv_relu.on, accel.bf16_gram.on, LeanMaxPool2d.keep_indices_on_cuda, graphs.WARMUP_CALLS = saved


def first_use_s(model, device: torch.device, size: int) -> tuple[float, float]:
    """Seconds of the first and the second forward + backward at a size not seen before (cuDNN's kernel choice and
    any runtime compilation happen in the first)."""
    image = torch.rand(1, 3, size, size * 2 // 3, device=device).contiguous(memory_format=accel.memory_format(device))
    cfg = StyleConfig(size=size)
    objective = Objective(model, image, [image], cfg, amp=accel.use_bf16(cfg, device))
    times = []
    for _ in range(2):
        _sync(device)
        start = time.perf_counter()
        x = image.clone().requires_grad_()
        objective(x)[0].backward()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def main(argv: list[str] | None = None) -> int:
    args, device = parse_args("python -m bench.kernels", __doc__, "write results.json, report.txt, pictures here", argv)
    if device is None:
        return 2
    size_of = (lambda s: SMOKE_SIZE[s]) if args.smoke else (lambda s: s)
    steps_of = (lambda s: 6) if args.smoke else (lambda s: s)
    model = load_model("caffe", device)
    preload()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    pictures: dict[tuple[str, str], np.ndarray] = {}
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    log(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}; torch {torch.__version__}")
    for size in (512, 2048):
        log(f"activations at {size_of(size)} px: {activations_mb(model, size_of(size), device):.0f} MB")
    with variant(BASE):
        first_use_s(model, device, size_of(512))  # the process's own first use (cuBLAS, autograd) is not a path's
    for name in VARIANTS:  # first use of a new shape, per path setting (sizes no case uses)
        with variant(name):
            size = size_of(600) if not args.smoke else 40
            size += 8 * list(VARIANTS).index(name)
            first, second = first_use_s(model, device, size)
        log(f"first use at {size} px, {name}: {first:.3f} s (then {second:.3f} s)")
    for round_ in (1, 2):
        for name in VARIANTS:
            cases = CASES + ([EAGER] if name in (BASE, "gram+conv") else [])
            for case, size, steps, overrides in cases:
                final: list = []
                with variant(name):
                    try:
                        r: Result = run_engine(case, size_of(size), steps_of(steps), overrides, device, model, final)
                    except Exception as exc:  # reported; the next variant still runs
                        log(f"{name} / {case} round {round_}: FAILED {type(exc).__name__}: {exc}")
                        continue
                    failures = [f"{p.name} {k}: {v}" for p in FAST_PATHS for k, v in p.failures.items()]
                    failures += [f"graphs off: {graphs.disabled}"] if graphs.disabled else []
                picture = np.asarray(final[-1].image, dtype=np.int16)
                pictures.setdefault((name, case), picture)
                base = next((x for x in rows if x["variant"] == BASE and x["case"] == case), None)
                row = {"variant": name, "round": round_, **asdict(r), "failures": failures}
                if base is not None:
                    row["j_rel_diff"] = abs(r.final_j - base["final_j"]) / base["final_j"]
                    diff = np.abs(picture - pictures[(BASE, case)])
                    row["pixel_mean_abs"], row["pixel_max_abs"] = float(diff.mean()), int(diff.max())
                rows.append(row)
                log(
                    f"{name:22s} {case:24s} r{round_} loop {r.loop_s:7.3f} s  first {r.first_frame_s:6.3f} s  "
                    f"peak {r.peak_mb or 0:7.0f} MB  J {r.final_j:.5g}  dJ {row.get('j_rel_diff', 0):.1e}  "
                    f"pixels {row.get('pixel_mean_abs', 0):.2f}/{row.get('pixel_max_abs', 0)}  "
                    f"graphs {r.captures}{f' ({r.fallbacks} eager)' if r.fallbacks else ''}"
                    f"{'  ' + '; '.join(row['failures']) if row['failures'] else ''}"
                )
                if args.out:
                    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    profiles = []
    for name in (BASE, "gram+conv"):
        with variant(name):
            profiles.append(f"[{name}]\n" + kernel_profile(size_of(2048), device, model))
    log("\n\n".join(profiles))
    if args.out:
        for (name, case), picture in pictures.items():
            if case.startswith("512"):
                Image.fromarray(picture.astype(np.uint8)).save(args.out / f"{case} - {name}.png".replace(" ", "_"))
        (args.out / "report.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
