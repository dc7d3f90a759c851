"""Picture-quality harness: ``python -m bench.quality [--size 256] [--steps N] [--variant ours:KEY=VALUE ...]``.

A fixed list of photo × style pairs from ``examples/`` (:data:`PAIRS`) runs through our engine (each variant of
``ours``) and, as the reference, through the peer ``pastiche`` (its CLI, its defaults), at every size. Each output
gets four figures:

* **noise**: mean squared 3×3 Laplacian of the output's luminance ÷ the larger of the same figure for the photo and
  for the style image, both at the output's size (the run's own inputs). Above 1: more fine-grained energy than either
  source (speckle, checkerboard). Target ≤ 0.6.
* **style distance**: Σ over block1..5_conv1 of the Gram distance (eq. 2, each Gram ÷ its nH·nW) between output
  and style ÷ the same for the photo itself (the judge's style term, :mod:`bench.score`, fp32). Lower = more style.
  Target: ≤ pastiche's.
* **structure**: SSIM of luminance, output vs photo, both at ¼ size (Gaussian window 11, σ 1.5, K1 0.01, K2 0.03).
  Higher = the composition is kept. Target ≥ 0.75.
* **seconds**: the engine's own loop time with a fixed thread count (ours: step-0 frame to final frame; pastiche:
  its step-0 to step-N workspace images), and the process's total wall time.

Every run is a fresh process (:mod:`bench.worker`, or pastiche's CLI) through :func:`bench.run.run_one`. pastiche
outputs are cached in ``OUT/pastiche-cache/`` keyed by pair, size, steps, device, pastiche version and the input
PNGs' hashes, so rerunning with new variants of ours does not rerun the peer. Outputs in ``--out``:
``results.json``, ``results.csv``, ``report.md`` and ``contact_SIZE.png`` (rows = pairs; columns = photo, style,
each variant of ours, pastiche; the figures under each tile).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import peers
from .inputs import REPO_ROOT, Inputs, sha256
from .run import Variant, environment, parse_variant, run_one, slug

# The fixed pairs (photo in examples/content/, style in examples/styles/). Edit freely; keep >= 8 pairs covering
# >= 6 photos and >= 6 styles. A missing file stops the harness before anything runs.
PAIRS: tuple[tuple[str, str], ...] = (
    ("lake_boats.jpg", "starry_night.jpg"),
    ("architecture.jpg", "great_wave.jpg"),
    ("astronaut.jpg", "the_scream.jpg"),
    ("cat.jpg", "composition_viii.jpg"),
    ("coffee.jpg", "cafe_terrace_at_night.jpg"),
    ("dune.jpg", "autumn.jpg"),
    ("forest_path.jpg", "the_kiss.jpg"),
    ("temple.jpg", "elephants.jpg"),
)
CONTENT_DIR = REPO_ROOT / "examples" / "content"
STYLE_DIR = REPO_ROOT / "examples" / "styles"

TARGET_NOISE = 0.6  # at most
TARGET_STRUCTURE = 0.75  # at least
SMOKE = {"pairs": 2, "size": 48, "steps": 3}
METRICS = ("noise", "style_distance", "structure", "seconds")
THUMB = 200  # contact-sheet tile box (px)


@dataclass(frozen=True)
class Pair:
    index: int  # 1-based, as in the tables
    photo: Path
    style: Path

    @property
    def name(self) -> str:
        return f"{self.photo.stem}-{self.style.stem}"


def resolve_pairs(pairs: tuple[tuple[str, str], ...] = PAIRS) -> list[Pair]:
    """The pair list as paths; a missing file is a clear error (the example images are being replaced)."""
    out, missing = [], []
    for i, (photo, style) in enumerate(pairs, start=1):
        p, s = CONTENT_DIR / photo, STYLE_DIR / style
        missing += [f"pair {i}: {path.relative_to(REPO_ROOT)} not found" for path in (p, s) if not path.is_file()]
        out.append(Pair(i, p, s))
    if missing:
        raise SystemExit("bench.quality: " + "; ".join(missing) + " (edit PAIRS at the top of bench/quality.py)")
    return out


def select_pairs(pairs: list[Pair], picks: list[str] | None) -> list[Pair]:
    """``--pairs 1 3 lake_boats-autumn`` (1-based index or name, or comma-separated); none = all."""
    if not picks:
        return pairs
    chosen: list[Pair] = []
    for token in (t.strip() for item in picks for t in item.split(",")):
        if not token:
            continue
        match = [p for p in pairs if str(p.index) == token or p.name == token]
        if not match:
            names = ", ".join(f"{p.index}={p.name}" for p in pairs)
            raise SystemExit(f"bench.quality: unknown pair {token!r}; choose from {names}")
        chosen += [p for p in match if p not in chosen]
    return chosen


# ---------------------------------------------------------------- figures


def luminance(image: Image.Image | Path | str) -> np.ndarray:
    """Rec. 601 luma in [0, 1], float64, H×W."""
    img = image if isinstance(image, Image.Image) else Image.open(image)
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114])


def laplacian_energy(lum: np.ndarray) -> float:
    """Mean squared 3×3 Laplacian ([0 1 0; 1 -4 1; 0 1 0]) over the valid interior."""
    c = lum[1:-1, 1:-1]
    lap = lum[:-2, 1:-1] + lum[2:, 1:-1] + lum[1:-1, :-2] + lum[1:-1, 2:] - 4.0 * c
    return float(np.mean(lap**2))


def noise_figure(output: Image.Image | Path, photo: Image.Image | Path, style: Image.Image | Path) -> float:
    """Output's Laplacian energy ÷ max(photo's, style's); all three at their run size."""
    ref = max(laplacian_energy(luminance(photo)), laplacian_energy(luminance(style)))
    return laplacian_energy(luminance(output)) / max(ref, 1e-12)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _filter_valid(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """2-D 'valid' correlation with a small window (sums of shifted slices; no scipy needed)."""
    k = win.shape[0]
    h, w = img.shape[0] - k + 1, img.shape[1] - k + 1
    out = np.zeros((h, w))
    for dy in range(k):
        for dx in range(k):
            out += win[dy, dx] * img[dy : dy + h, dx : dx + w]
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004): Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, valid positions only.

    Images smaller than the window use the largest odd window that fits (σ scaled with it).
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    size = min(11, *a.shape)
    size -= 1 - size % 2
    win = _gaussian_window(size, 1.5 * size / 11)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, win), _filter_valid(b, win)
    var_a = _filter_valid(a * a, win) - mu_a**2
    var_b = _filter_valid(b * b, win) - mu_b**2
    cov = _filter_valid(a * b, win) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def structure_figure(output: Image.Image | Path, photo: Image.Image | Path) -> float:
    """SSIM of luminance, output vs photo, both box-downsampled to ¼ size."""
    imgs = [x if isinstance(x, Image.Image) else Image.open(x) for x in (output, photo)]
    w, h = imgs[1].size
    quarter = (max(1, round(w / 4)), max(1, round(h / 4)))
    a, b = (luminance(x.convert("RGB").resize(quarter, Image.Resampling.BOX)) for x in imgs)
    return ssim(a, b)


# ---------------------------------------------------------------- runs


def prepare_pair(pair: Pair, size: int, folder: Path) -> Inputs:
    """The pair's photo and style at ``size`` (engine loader, LANCZOS, longest side = size) as PNGs."""
    from style_transfer.images import load_image, resize_longest

    folder.mkdir(parents=True, exist_ok=True)
    c_path, s_path = folder / f"{pair.photo.stem}_{size}.png", folder / f"{pair.style.stem}_{size}.png"
    resize_longest(load_image(pair.photo, name="content image"), size).save(c_path)
    resize_longest(load_image(pair.style, name="style image"), size).save(s_path)
    return Inputs(size, c_path, s_path, str(pair.photo), str(pair.style))


def pastiche_run(
    pair: Pair, inputs: Inputs, steps: int, device: str, out: Path, timeout: float, threads: int | None
) -> dict:
    """pastiche's defaults on one pair, from the cache when the same run was made before."""
    key = "_".join(
        [pair.name, f"{inputs.size}px", f"{steps}steps", device, f"pastiche-{peers.version()}",
         sha256(inputs.content)[:10], sha256(inputs.style)[:10]]
    )  # fmt: skip
    run_dir = out / "pastiche-cache" / key
    record_path = run_dir / "record.json"
    if record_path.is_file():
        rec = json.loads(record_path.read_text())
        if rec.get("ok") and (run_dir / "output.png").is_file():
            rec.update(cached=True, output=str(run_dir / "output.png"))  # the folder may have moved since
            return rec
    rec = run_one(Variant("pastiche", "pastiche", preset="pastiche"), inputs, steps, device, run_dir, timeout, 0,
                  threads)  # fmt: skip
    rec.update(cache_key=key, threads=threads)
    if rec.get("ok") and rec.get("loop_s") is None:  # no workspace stamps: fall back to the whole process
        rec["loop_note"] = "no workspace stamps: process wall time"
    record_path.write_text(json.dumps(rec, indent=1, default=str))
    rec["cached"] = False
    return rec


def score_outputs(records: list[dict], inputs: Inputs, device: str) -> dict:
    """Adds noise, style distance and structure to each ok record of one pair and size; returns the photo's figures."""
    from .score import Scorer

    scorer = Scorer(inputs.content, inputs.style, device)
    photo_style = scorer(inputs.content)["style"]
    for rec in records:
        if not rec.get("ok"):
            continue
        out_img = Image.open(rec["output"]).convert("RGB")
        rec["noise"] = noise_figure(out_img, inputs.content, inputs.style)
        rec["style_distance"] = scorer(out_img)["style"] / photo_style
        rec["structure"] = structure_figure(out_img, inputs.content)
        rec["seconds"] = rec.get("loop_s") if rec.get("loop_s") is not None else rec.get("wall_s")
    return {
        "photo_style_cost": photo_style,
        "photo_laplacian": laplacian_energy(luminance(inputs.content)),
        "style_laplacian": laplacian_energy(luminance(inputs.style)),
    }


# ---------------------------------------------------------------- report


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 0.01 or abs(value) >= 1e4):
            return f"{value:.2e}"
        return f"{value:.{digits}g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def cpu_s(rec: dict) -> float | None:
    """CPU seconds (user + system) of the run's whole process: steadier than wall time on a busy shared machine."""
    if rec.get("cpu_user_s") is None:
        return None
    return rec["cpu_user_s"] + (rec.get("cpu_sys_s") or 0.0)


def medians(records: list[dict], size: int, variant: str) -> dict[str, float | None]:
    rows = [r for r in records if r["size"] == size and r["variant"] == variant and r.get("ok")]
    out: dict[str, float | None] = {}
    for m in (*METRICS, "wall_s", "cpu_s"):
        vals = [v for r in rows if (v := (cpu_s(r) if m == "cpu_s" else r.get(m))) is not None]
        out[m] = statistics.median(vals) if vals else None
    out["n"] = len(rows)
    return out


def target_counts(records: list[dict], size: int, variants: list[str]) -> list[str]:
    """Per variant: on how many pairs each target is met (style: against pastiche on the same pair)."""
    ref = {r["pair"]: r for r in records if r["size"] == size and r["variant"] == "pastiche" and r.get("ok")}
    out = []
    for v in variants:
        rows = [r for r in records if r["size"] == size and r["variant"] == v and r.get("ok")]
        if not rows:
            continue
        n = len(rows)
        text = (
            f"{v}: noise ≤ {TARGET_NOISE} on {sum(r['noise'] <= TARGET_NOISE for r in rows)}/{n} pairs, structure ≥ "
            f"{TARGET_STRUCTURE} on {sum(r['structure'] >= TARGET_STRUCTURE for r in rows)}/{n}"
        )
        paired = [r for r in rows if r["pair"] in ref]
        if v != "pastiche" and paired:
            wins = sum(r["style_distance"] <= ref[r["pair"]]["style_distance"] for r in paired)
            text += f", style distance ≤ pastiche's on {wins}/{len(paired)}"
        out.append(text + ".")
    return out


def render_markdown(results: dict) -> str:
    meta, records = results["meta"], results["records"]
    variants = [*meta["variants"], *(["pastiche"] if meta["pastiche"] else [])]
    lines = [
        "# Quality harness",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['env'].get('date_utc')}, {meta['device']} ({meta['env'].get('cuda_device') or meta['env'].get('cpu')}),"
        f" {meta['threads_per_run'] or 'default'} thread(s) per run, {meta['steps']} steps, pastiche "
        f"{meta['env'].get('pastiche')}, commit {str(meta['env'].get('git_commit'))[:10]}"
        f"{' (dirty)' if meta['env'].get('git_dirty') else ''}.",
        "",
        f"Targets: noise ≤ {TARGET_NOISE}, structure ≥ {TARGET_STRUCTURE}, style distance ≤ pastiche's. "
        "noise = output's mean squared Laplacian of luminance ÷ max(photo's, style's); style = Gram distance to the "
        "style ÷ the photo's own (lower = more style); structure = SSIM of luminance vs the photo at ¼ size; "
        "s = the engine's loop time (step 0 to the final step), total = the whole process's wall time, CPU s = its "
        "CPU time (user + system; steadier than wall time when the machine is shared).",
    ]
    if not meta.get("complete", True):
        done = len({(r["size"], r["pair"]) for r in records})
        lines += ["", f"**Incomplete**: {done} of {len(meta['pairs']) * len(meta['sizes'])} pair × size runs so far."]
    for size in meta["sizes"]:
        lines += ["", f"## {size} px", "", "| # | pair | variant | noise | style | structure | s | total s | CPU s |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for rec in [r for r in records if r["size"] == size]:
            if not rec.get("ok"):
                lines.append(f"| {rec['pair_index']} | {rec['pair']} | {rec['variant']} | FAILED: "
                             f"{str(rec.get('error', ''))[-120:].strip().replace('|', '/').replace(chr(10), ' ')}"
                             " | | | | | |")  # fmt: skip
                continue
            cached = " (cached)" if rec.get("cached") else ""
            lines.append(
                f"| {rec['pair_index']} | {rec['pair']} | {rec['variant']}{cached} | {_fmt(rec['noise'])} | "
                f"{_fmt(rec['style_distance'])} | {_fmt(rec['structure'])} | {_fmt(rec['seconds'])} | "
                f"{_fmt(rec.get('wall_s'))} | {_fmt(cpu_s(rec))} |"
            )
        ref = medians(records, size, "pastiche") if meta["pastiche"] else None
        lines += ["", f"Medians over pairs at {size} px (✓/✗ against the targets):", ""]
        lines += [
            "| variant | pairs | noise | style | structure | s | total s | CPU s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in variants:
            med = medians(records, size, v)
            if not med["n"]:
                lines.append(f"| {v} | 0 | | | | | | |")
                continue
            noise_ok = "✓" if med["noise"] <= TARGET_NOISE else "✗"
            struct_ok = "✓" if med["structure"] >= TARGET_STRUCTURE else "✗"
            style_ok = ""
            if ref and ref["style_distance"] is not None and v != "pastiche":
                style_ok = " ✓" if med["style_distance"] <= ref["style_distance"] else " ✗"
            lines.append(
                f"| {v} | {med['n']} | {_fmt(med['noise'])} {noise_ok} | {_fmt(med['style_distance'])}{style_ok} | "
                f"{_fmt(med['structure'])} {struct_ok} | {_fmt(med['seconds'])} | {_fmt(med['wall_s'])} | "
                f"{_fmt(med['cpu_s'])} |"
            )
        lines += [""] + [f"- {line}" for line in target_counts(records, size, variants)]
        lines += ["", f"Contact sheet: `contact_{size}.png`."]
    failed = [r for r in records if not r.get("ok")]
    if failed:
        lines += ["", f"{len(failed)} run(s) FAILED; see results.json."]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, records: list[dict]) -> None:
    cols = ["size", "pair_index", "pair", "photo", "style", "variant", "ok", "cached", *METRICS, "loop_s", "wall_s",
            "cpu_s", "output", "error"]  # fmt: skip
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for rec in records:
            writer.writerow({**{c: rec.get(c) for c in cols}, "cpu_s": cpu_s(rec)})


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _thumb(image: Image.Image) -> Image.Image:
    img = image.convert("RGB")
    img.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return img


def contact_sheet(results: dict, size: int, path: Path) -> Path:
    """Rows = pairs; columns = photo, style, each variant of ours, pastiche; the figures under each output tile."""
    meta, records = results["meta"], results["records"]
    columns = ["photo", "style", *meta["variants"], *(["pastiche"] if meta["pastiche"] else [])]
    inputs = results["inputs"].get(str(size), {})
    pairs = [p for p in meta["pairs"] if p["name"] in inputs]  # an interrupted run: only the pairs it reached
    font, small = _font(14), _font(12)
    pad, head, foot = 8, 20, 34
    cell_w, cell_h = THUMB + pad, head + THUMB + foot
    title_h = 28
    sheet = Image.new("RGB", (pad + cell_w * len(columns), title_h + cell_h * len(pairs) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), f"{size} px, {meta['steps']} steps, {meta['device']}: noise / style distance / structure "
              f"(SSIM) / seconds", fill="black", font=font)  # fmt: skip
    by_key = {(r["pair"], r["variant"]): r for r in records if r["size"] == size}
    for row, pair in enumerate(pairs):
        y0 = title_h + row * cell_h
        for col, name in enumerate(columns):
            x0 = pad + col * cell_w
            label, lines, img = name, [], None
            if name == "photo":
                img, label = Image.open(inputs[pair["name"]]["content"]), f"{pair['index']}. {Path(pair['photo']).stem}"
            elif name == "style":
                img, label = Image.open(inputs[pair["name"]]["style"]), Path(pair["style"]).stem
            else:
                rec = by_key.get((pair["name"], name))
                if rec and rec.get("ok"):
                    img = Image.open(rec["output"])
                    lines = [
                        f"noise {rec['noise']:.2f}  style {_fmt(rec['style_distance'])}",
                        f"SSIM {rec['structure']:.3f}  {rec['seconds']:.1f} s",
                    ]
                else:
                    lines = ["FAILED" if rec else "not run"]
            draw.text((x0, y0 + 3), label[:34], fill="black", font=font)
            if img is not None:
                t = _thumb(img)
                sheet.paste(t, (x0 + (THUMB - t.width) // 2, y0 + head + (THUMB - t.height) // 2))
            for i, text in enumerate(lines):
                draw.text((x0, y0 + head + THUMB + 3 + i * 15), text, fill="black", font=small)
    sheet.save(path)
    return path


# ---------------------------------------------------------------- main


def _pair_record(p: Pair) -> dict:
    return {"index": p.index, "name": p.name, "photo": str(p.photo.relative_to(REPO_ROOT)),
            "style": str(p.style.relative_to(REPO_ROOT))}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description="Picture quality of our engine vs pastiche on a fixed set of photo × style pairs: noise, style "
        "distance, structure, time, and a contact sheet per size.",
    )
    p.add_argument("--size", type=int, nargs="+", dest="sizes", help="longest sides (default: cpu 256; cuda 512 1024)")
    p.add_argument("--steps", type=int, help="steps per run (default: the engine's StyleConfig().steps)")
    p.add_argument("--variant", action="append", dest="variants", metavar="ours[:KEY=VALUE,...]",
                   help="a variant of ours with StyleConfig overrides (repeatable; default: ours)")  # fmt: skip
    p.add_argument("--pairs", nargs="+", metavar="PAIR", help="a subset: 1-based index or name (photo-style)")
    p.add_argument("--no-pastiche", action="store_true", help="do not run the pastiche reference")
    p.add_argument("--threads", type=int, help="CPU threads per run (default: 1 on CPU, torch's default on CUDA)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results-quality"), help="output folder")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds before one run is killed")
    smoke = f"tiny check: {SMOKE['pairs']} pairs, {SMOKE['size']} px, {SMOKE['steps']} steps, no pastiche"
    p.add_argument("--smoke", action="store_true", help=smoke)
    p.add_argument("--note", action="append", default=[], help="free text kept in results.json (repeatable)")
    p.add_argument("--report-from", metavar="RESULTS_JSON", help="run nothing: rewrite report.md and the contact "
                   "sheets from a saved results.json (next to it)")  # fmt: skip
    return p


def write_outputs(results: dict, out: Path) -> None:
    """report.md (printed too) and one contact sheet per size, from the results."""
    text = render_markdown(results)
    (out / "report.md").write_text(text)
    print(text)
    for size in results["meta"]["sizes"]:
        print(f"quality: wrote {contact_sheet(results, size, out / f'contact_{size}.png')}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report_from:
        path = Path(args.report_from)
        write_outputs(json.loads(path.read_text()), path.parent)
        return 0
    import torch

    from style_transfer.config import StyleConfig

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to torch")
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    all_pairs = resolve_pairs()
    pairs = select_pairs(all_pairs, args.pairs)
    sizes = args.sizes or ([256] if device == "cpu" else [512, 1024])
    steps = args.steps or StyleConfig().steps
    use_pastiche = not args.no_pastiche
    if args.smoke:
        pairs, sizes, steps, use_pastiche = pairs[: SMOKE["pairs"]], [SMOKE["size"]], SMOKE["steps"], False
    if use_pastiche and not peers.available():
        raise SystemExit("bench.quality: pastiche is not installed (use --no-pastiche)")
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    torch_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # the scoring in this process (restored at the end)
    try:
        return _run(args, argv, device, pairs, sizes, steps, use_pastiche, threads)
    finally:
        torch.set_num_threads(torch_threads)


def _run(
    args: argparse.Namespace,
    argv: list[str] | None,
    device: str,
    pairs: list[Pair],
    sizes: list[int],
    steps: int,
    use_pastiche: bool,
    threads: int | None,
) -> int:
    variants = []
    for spec in args.variants or ["ours"]:
        v = parse_variant(spec)
        if v.kind != "ours":
            raise SystemExit(f"--variant {spec!r}: only ours[:KEY=VALUE,...] (pastiche always runs as the reference)")
        variants.append(v)
    if len({v.name for v in variants}) != len(variants):
        raise SystemExit("--variant: the same variant twice")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "-m", "bench.quality", *(argv if argv is not None else sys.argv[1:])])
    print(f"quality: device={device} sizes={sizes} steps={steps} threads={threads} pairs={len(pairs)} "
          f"variants={', '.join(v.name for v in variants)} pastiche={use_pastiche} out={out}", flush=True)  # fmt: skip

    env = environment(device)  # before the runs: the commit and load that were measured
    started = time.perf_counter()
    records: list[dict] = []
    inputs_record: dict[str, dict] = {}
    refs: dict[str, dict] = {}

    def save(complete: bool) -> None:
        results = {
            "meta": {
                "command": command,
                "device": device,
                "sizes": sizes,
                "steps": steps,
                "threads_per_run": threads,
                "variants": [v.name for v in variants],
                "overrides": {v.name: v.options for v in variants},
                "pastiche": use_pastiche,
                "pairs": [_pair_record(p) for p in pairs],
                "targets": {"noise_max": TARGET_NOISE, "structure_min": TARGET_STRUCTURE, "style": "<= pastiche's"},
                "env": env,
                "complete": complete,
                "wall_s": time.perf_counter() - started,
                "loadavg_end": list(os.getloadavg()),
                "notes": args.note,
            },
            "inputs": inputs_record,
            "references": refs,
            "records": records,
        }
        names = [*results["meta"]["variants"], "pastiche"]
        results["medians"] = {str(size): {v: medians(records, size, v) for v in names} for size in sizes}
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        write_csv(out / "results.csv", records)
        if complete:
            write_outputs(results, out)
        else:
            (out / "report.md").write_text(render_markdown(results))

    for size in sizes:
        inputs_record[str(size)] = {}
        for pair in pairs:
            inputs = prepare_pair(pair, size, out / "inputs" / str(size))
            inputs_record[str(size)][pair.name] = {"content": str(inputs.content), "style": str(inputs.style),
                                                   "content_sha256": sha256(inputs.content),
                                                   "style_sha256": sha256(inputs.style)}  # fmt: skip
            pair_recs = []
            if use_pastiche:  # first: it is cached, and the slow one
                rec = pastiche_run(pair, inputs, steps, device, out, args.timeout, threads)
                rec["variant"] = "pastiche"
                pair_recs.append(rec)
            for v in variants:
                run_dir = out / "runs" / str(size) / slug(v.name) / pair.name
                rec = run_one(v, inputs, steps, device, run_dir, args.timeout, 0, threads)
                rec["variant"] = v.name
                pair_recs.append(rec)
            for rec in pair_recs:
                rec.update(pair=pair.name, pair_index=pair.index, photo=pair.photo.name, style=pair.style.name)
            refs[f"{size}/{pair.name}"] = score_outputs(pair_recs, inputs, device)
            for rec in sorted(pair_recs, key=lambda r: r["variant"] != "pastiche"):
                state = (
                    f"noise {_fmt(rec['noise'])} style {_fmt(rec['style_distance'])} structure "
                    f"{_fmt(rec['structure'])} {_fmt(rec['seconds'])} s"
                    if rec.get("ok")
                    else f"FAILED {str(rec.get('error', ''))[-300:]}"
                )
                cached = " (cached)" if rec.get("cached") else ""
                print(f"[{time.perf_counter() - started:7.1f}s] {size}px {pair.index}:{pair.name} "
                      f"{rec['variant']}{cached}: {state}", flush=True)  # fmt: skip
            records += pair_recs
            save(complete=False)  # after every pair: an interrupted run still leaves its figures

    save(complete=True)
    print(f"quality: wrote {out / 'results.json'}, results.csv, report.md")
    return 0 if all(r.get("ok") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
