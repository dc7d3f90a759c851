"""Which content layer (and α) keeps the photo at the Space's real default, 512 px / 300 steps on a GPU?

    python -m bench.content_layer_probe OUT                       # 512 and 1024 px, default steps: 82 s on an H200
    python -m bench.content_layer_probe OUT --size 256 --steps 150  # the CPU defaults
    python -m bench.content_layer_probe OUT --smoke                 # CPU, 2 pairs, 48 px, 4 steps

Runs the quality harness's 8 pairs through the engine for each variant below, in one process (the harness starts a
process per run, too slow for a few minutes of a lent GPU), scores them as ``bench.quality`` does (noise, style
distance, structure) and writes ``results.json`` (after every run) and one contact sheet per size under OUT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from style_transfer import StyleConfig, preload, stylize
from style_transfer.model import load_model

from .quality import noise_figure, prepare_pair, resolve_pairs, structure_figure
from .score import Scorer

# name -> StyleConfig overrides
VARIANTS: dict[str, dict] = {
    "block5_conv2 a1e4": {"content_layer": "block5_conv2", "content_weight": 1e4},  # the seed's, the old default
    "block4_conv2 a1e4": {"content_layer": "block4_conv2"},
    "block4_conv2 a3e3": {"content_layer": "block4_conv2", "content_weight": 3e3},
    "block4_conv2 a1e3": {"content_layer": "block4_conv2", "content_weight": 1e3},
}
TILE = 256


def main(argv: list[str]) -> int:
    """Run the variants on every pair at each size; write OUT/results.json and OUT/sheet_<size>.jpg."""
    parser = argparse.ArgumentParser(prog="python -m bench.content_layer_probe", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--steps", type=int, default=None, help="default: the engine's")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    out, smoke = args.out, args.smoke
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pairs = resolve_pairs()[: 2 if smoke else None]
    sizes = (48,) if smoke else tuple(args.size)
    steps = {"steps": 4} if smoke else ({"steps": args.steps} if args.steps else {})
    model = load_model("caffe", device)
    preload()
    variants = {name: VARIANTS[name] for name in args.variants}
    rows: list[dict] = []
    for size in sizes:
        sheet = Image.new("RGB", (TILE * len(variants), TILE * len(pairs)), "white")
        for i, pair in enumerate(pairs):
            inputs = prepare_pair(pair, size, Path(tempfile.gettempdir()) / "content_layer_probe")
            scorer = Scorer(inputs.content, inputs.style, device)
            photo_style = scorer(inputs.content)["style"]
            for j, (name, overrides) in enumerate(variants.items()):
                cfg = StyleConfig(size=size, device=device, **steps, **overrides)
                start = time.perf_counter()
                *_, last = stylize(pair.photo, pair.style, cfg, model=model)
                seconds = time.perf_counter() - start
                img = last.image.convert("RGB")
                row = {
                    "size": size,
                    "pair": pair.name,
                    "variant": name,
                    "noise": noise_figure(img, inputs.content, inputs.style),
                    "style_distance": scorer(img)["style"] / photo_style,
                    "structure": structure_figure(img, inputs.content),
                    "seconds": seconds,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                (out / "results.json").write_text(json.dumps(rows, indent=1))
                thumb = img.copy()
                thumb.thumbnail((TILE, TILE))
                sheet.paste(thumb, (j * TILE, i * TILE))
                ImageDraw.Draw(sheet).text((j * TILE + 4, i * TILE + 4), f"{name} s{row['structure']:.2f}", "white")
        sheet.save(out / f"sheet_{size}.jpg", quality=88)
        for name in variants:
            mine = [r for r in rows if r["size"] == size and r["variant"] == name]
            med = {k: statistics.median(r[k] for r in mine) for k in ("noise", "style_distance", "structure")}
            ok = sum(r["structure"] >= 0.75 for r in mine)
            print(f"{size} px {name:20s} noise {med['noise']:.3f} style {med['style_distance']:.2e} "
                  f"structure {med['structure']:.3f} ({ok}/{len(mine)} >= 0.75)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
