"""Do the CUDA fast paths change the picture, or only the J a run reports? One process, on a GPU:

    python -m bench.fastpath_probe OUT [SIZE]   # SIZE 2048 by default; ~30 s on an H200 (SIZE 64 runs on a CPU)

Written when ``bench.kernels`` showed the bf16 Gram alone ending a 2048 px, automatic-scales Adam run at J 1.25e8
where every other variant ended near 8.6e7 (bench/results-gpu/h200-session7-kernels). It writes ``probe.json`` and
half-size PNGs under OUT:

- A. per style layer, at SIZE px activations of the example photo, the bf16 Gram's and its gradient's relative error
  against fp64 (and the TF32 Gram's), with the fused conv off and on, and each activation's layout;
- B. SIZE px, automatic scales, 300 Adam steps with every path off, the bf16 Gram (graphed and eager) and the bf16
  Gram with the fused conv, each final picture then judged by the project's frozen fp32 judge (``bench.score``: the
  same targets for all, so their J compare where the runs' own last-step J may not). The committed
  ``bench/results-gpu/h200-session7-probe/probe.json`` came from a first version that judged with the engine's own
  ``Objective`` in fp32 (then block5_conv2, alpha 1e4, the TV term included): its totals are not the judge's;
- C. graphed-vs-eager J after 50 steps (Adam and L-BFGS, 512 px) with 1 and with 3 warm-up calls before a capture.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from style_transfer import StyleConfig, accel, graphs, losses, preload
from style_transfer.images import load_image, pil_to_tensor, resize_longest
from style_transfer.model import load_model

from .gpu import CONTENT, STYLE, graph_j_difference, run_engine
from .kernels import variant
from .score import Scorer


def main(argv: list[str]) -> int:
    """Run A, B and C (above) and write OUT/probe.json and the pictures."""
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[0])
    size = int(argv[1]) if len(argv) > 1 else 2048
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model("caffe", dev)
    preload()
    fmt = accel.memory_format(dev)
    report: dict = {}

    def log(*a) -> None:
        print(*a, flush=True)

    # A. the Gram and its gradient at `size` px activations, bf16 path vs fp64, for fused conv off and on
    content = pil_to_tensor(resize_longest(load_image(CONTENT), size), dev).contiguous(memory_format=fmt)
    cfg = StyleConfig(size=size)
    for name in ("bf16 gram", "gram+conv"):
        with variant(name), torch.no_grad(), accel.autocast(dev, dev.type == "cuda"):
            acts = model(content, cfg.style_layers)
        for layer, a in acts.items():
            n, c, h, w = a.shape
            ref = a.double().reshape(n, c, h * w)
            g_ref = ref @ ref.transpose(1, 2)
            with variant(name):
                g = losses._bf16_gram(a, None) if losses._bf16_kernels(a) else losses._fp32_gram(a, SimpleNamespace())
            fp32 = a.float().reshape(n, c, h * w)
            g32 = fp32 @ fp32.transpose(1, 2)
            grad = torch.randn(n, c, c, device=dev, dtype=torch.float32) * 1e-6
            b_ref = ((grad + grad.transpose(1, 2)).double() @ ref).view(n, c, h, w)
            b = losses._bf16_gram_backward(a, grad) if losses._bf16_kernels(a) else None

            def rel(x, y):
                return float((x.double() - y).norm() / y.norm())

            row = {
                "dtype": str(a.dtype),
                "channels_last": a.is_contiguous(memory_format=torch.channels_last),
                "contiguous": a.is_contiguous(),
                "stride": list(a.stride()),
                "gram_rel_err": rel(g, g_ref),
                "tf32_gram_rel_err": rel(g32, g_ref),
                "grad_rel_err": rel(b, b_ref) if b is not None else None,
                "gram_max": float(g_ref.abs().max()),
            }
            report.setdefault("numeric", {}).setdefault(name, {})[layer] = row
            log(name, layer, a.shape, row)
        del acts

    # B. end-to-end at `size` px, scales 0, judged by one fp32 evaluator with every fast path off
    evaluated = {}
    for name, overrides in (
        ("none", {"cuda_graphs": "on"}),
        ("bf16 gram", {"cuda_graphs": "on"}),
        ("bf16 gram", {"cuda_graphs": "off"}),
        ("gram+conv", {"cuda_graphs": "on"}),
    ):
        final: list = []
        with variant(name):
            r = run_engine(
                f"{size} scales 0", size, 300 if size > 256 else 20, {"scales": 0, **overrides}, dev, model, final
            )
        img = final[-1].image
        key = f"{name} graphs {overrides['cuda_graphs']}"
        img.resize((img.width // 2, img.height // 2)).save(out / (key.replace(" ", "_").replace("+", "_") + ".png"))
        evaluated[key] = {"engine_J": r.final_j, "loop_s": r.loop_s}
        photo = resize_longest(load_image(CONTENT), max(img.size)).resize(img.size)
        style = resize_longest(load_image(STYLE), max(img.size))
        evaluated[key].update({k: float(v) for k, v in Scorer(photo, style, dev)(img).items()})
        log(key, evaluated[key])
    report["evaluated"] = evaluated

    # C. the graphed-vs-eager J difference with 1 and 3 warm-up calls before a capture (Adam and L-BFGS)
    for warmups in (1, 3):
        t = time.perf_counter()
        with variant("gram+conv"):  # restores WARMUP_CALLS on exit
            graphs.WARMUP_CALLS = warmups
            report[f"j_diff_warmup_{warmups}"] = graph_j_difference(512 if size > 256 else 64, dev, model)
        log(f"warm-up {warmups}", report[f"j_diff_warmup_{warmups}"], f"{time.perf_counter() - t:.1f} s")
    (out / "probe.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
