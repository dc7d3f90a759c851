"""Video harness: flicker, photo kept, style kept and time, on a pan over a photo whose true motion is exact.

The clip is made here: frame ``t`` is the window of a photo at ``t · dx`` pixels from its left edge, so pixel
``x`` of frame ``t`` is pixel ``x + dx`` of frame ``t − 1``, exactly. Figures per variant (``temporal_weight``):

* flicker: mean |out_t − out_{t−1} shifted by the true motion| over the pixels visible in both (0-255 units),
* ssim: SSIM (grey, Gaussian window) of the middle output frame against its input frame (the photo kept),
* style: the judge's (bench.score) style cost of the middle frame over that of the input frame (lower = more
  style),
* seconds of the first frame, the mean of later frames, and the flow per frame.

``--clip PATH`` runs the same figures on a real clip, whose true motion is unknown (``--start``: the first frame's
index, ``--frames``: how many). The motion is then estimated on the input frames by OpenCV's Farnebäck flow, a method
independent of the engine's (DIS), both ways; flicker counts only the pixels whose two flows agree (seen in both
frames: the round trip comes back within 0.5 px + 5 % of the motion) and whose source lies inside the previous frame,
with the previous output warped along the flow (bilinear). ``input_flicker`` is the same measure on the input frames:
what the flow's errors, noise and lighting changes leave even in the photo.

``--flow`` instead measures DIS's presets: end-point error against the true motion of a pan and of a zoom, and the
time per frame pair. ``--sheet PATH`` writes a contact sheet (input, then one row per variant).

    python -m bench.video --size 256 --frames 8 --steps 100 --frame-steps 100 --weights 0 1e10 --sheet /tmp/s.png
    python -m bench.video --clip carphone.mp4 --size 176 --start 0 --frames 8 --steps 100 --frame-steps 100
    python -m bench.video --flow --size 256
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def pan_frames(photo: Path, size: int, count: int, dx: int) -> list[Image.Image]:
    """``count`` frames of width ``size`` (3:4 of it high) panning right by ``dx`` px a frame."""
    img = Image.open(photo).convert("RGB")
    width, height = size + dx * (count - 1), round(size * 3 / 4)
    scale = max(width / img.width, height / img.height)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    top = (img.height - height) // 2
    return [img.crop((t * dx, top, t * dx + size, top + height)) for t in range(count)]


def sprite_frames(
    photo: Path, sprite: Path, size: int, count: int, dx: int
) -> tuple[list[Image.Image], list[np.ndarray]]:
    """A still photo with a second photo's disc sliding right ``dx`` px a frame across it (occlusions and
    disocclusions, true motion known): the frames, and for each frame t >= 1 a map (H, W) of where each pixel was in
    frame t - 1 horizontally (NaN where it was hidden: what the disc uncovered)."""
    height = round(size * 3 / 4)
    back = Image.open(photo).convert("RGB").resize((size, height), Image.Resampling.LANCZOS)
    disc_img = Image.open(sprite).convert("RGB").resize((height // 2, height // 2), Image.Resampling.LANCZOS)
    r = height // 4
    yy, xx = np.mgrid[0:height, 0:size]
    frames, sources = [], []
    prev_inside = None
    for t in range(count):
        cx, cy = size // 4 + t * dx, height // 2
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        frame = np.asarray(back).copy()
        sy, sx = yy[inside] - (cy - r), xx[inside] - (cx - r)
        frame[inside] = np.asarray(disc_img)[sy.clip(0, 2 * r - 1), sx.clip(0, 2 * r - 1)]
        frames.append(Image.fromarray(frame))
        if prev_inside is not None:
            source = xx.astype(np.float32)
            source[inside] -= dx  # the disc moved right: its pixel came from dx to the left
            source[~inside & prev_inside] = np.nan  # background the disc uncovered: not seen in the last frame
            sources.append(source)
        prev_inside = inside
    return frames, sources


def flicker_with_sources(outputs: list[Image.Image], sources: list[np.ndarray]) -> float:
    """Mean absolute difference to the previous output moved by the true motion, where it is known (no NaN)."""
    diffs = []
    for prev, cur, source in zip(outputs, outputs[1:], sources, strict=False):
        a, b = np.asarray(cur, dtype=np.float32), np.asarray(prev, dtype=np.float32)
        valid = ~np.isnan(source)
        ys, xs = np.nonzero(valid)
        diffs.append(np.abs(a[ys, xs] - b[ys, source[ys, xs].astype(int)]).mean())
    return float(np.mean(diffs))


def make_clip(frames: list[Image.Image], fps: Fraction | int = 10):
    from style_transfer.video import Clip

    rate = Fraction(fps)
    return Clip(frames, [float(i / rate) for i in range(len(frames))], [float(1 / rate)] * len(frames), rate)


def flicker(outputs: list[Image.Image], dx: int) -> float:
    """Mean absolute difference to the previous output moved by the true motion, over pixels seen in both."""
    diffs = []
    for prev, cur in itertools.pairwise(outputs):
        a = np.asarray(cur, dtype=np.float32)[:, : cur.width - dx]
        b = np.asarray(prev, dtype=np.float32)[:, dx:]
        diffs.append(np.abs(a - b).mean())
    return float(np.mean(diffs))


def farneback(source: Image.Image, target: Image.Image) -> np.ndarray:
    """Dense flow (H, W, 2) from ``source`` to ``target`` by Farnebäck's method (the evaluation's, not the
    engine's): pixel (x, y) of ``source`` is seen at (x + u, y + v) in ``target``."""
    import cv2

    a = np.asarray(source.convert("L"))
    b = np.asarray(target.convert("L"))
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 5, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def clip_motion(frames: list[Image.Image]) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each frame t >= 1: the flow to frame t - 1 (where each pixel was) and a mask (H, W) bool of the pixels
    seen in both frames: the forward and backward flows agree and the source lies inside frame t - 1."""
    from style_transfer.flow import warp  # the bilinear sampling only; the flow itself is Farnebäck's

    motion = []
    for prev, cur in itertools.pairwise(frames):
        backward, forward = farneback(cur, prev), farneback(prev, cur)
        forward_at, inside = warp(forward, backward)
        error = np.hypot(*np.moveaxis(backward + forward_at, 2, 0))
        speed = np.hypot(*np.moveaxis(backward, 2, 0)) + np.hypot(*np.moveaxis(forward_at, 2, 0))
        motion.append((backward, (error <= 0.5 + 0.05 * speed) & (inside > 0)))
    return motion


def flicker_along(outputs: list[Image.Image], motion: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean absolute difference (0-255) between each output frame and the previous output warped along the
    estimated motion, over the pixels :func:`clip_motion` kept."""
    from style_transfer.flow import warp

    diffs = []
    for prev, cur, (backward, seen) in zip(outputs, outputs[1:], motion, strict=False):
        warped, _ = warp(np.asarray(prev, dtype=np.float32), backward)
        diffs.append(np.abs(np.asarray(cur, dtype=np.float32) - warped)[seen].mean())
    return float(np.mean(diffs))


def read_frames(path: Path, size: int, start: int, count: int):
    """Frames ``start`` … ``start + count - 1`` of the clip at ``path`` (longest side ``size``), as a clip."""
    from style_transfer.config import VideoConfig
    from style_transfer.video import read_clip

    clip = read_clip(path, size, VideoConfig(max_frames=start + count))
    frames = clip.frames[start : start + count]
    if len(frames) < 2:
        raise SystemExit(f"{path}: fewer than 2 frames from frame {start}")
    return frames, clip.fps


def ssim(a: Image.Image, b: Image.Image) -> float:
    """SSIM of the grey images (Gaussian window, sigma 1.5; Wang et al. 2004 constants)."""
    import cv2

    x = np.asarray(a.convert("L"), dtype=np.float64)
    y = np.asarray(b.convert("L"), dtype=np.float64)

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.mean())


def run_variant(clip, style: Path, size: int, steps: int, frame_steps: int, weight: float, seed: int = 0) -> dict:
    from style_transfer.temporal import stylize_video

    outputs, timings = [], []
    began = time.perf_counter()
    for vf in stylize_video(
        clip, str(style), size=size, steps=steps, frame_steps=frame_steps, temporal_weight=weight, seed=seed
    ):
        if vf.finished:
            outputs.append(vf.image)
            timings.append(vf.timings)
    total = time.perf_counter() - began
    later = [t["optimise"] + t["flow"] for t in timings[1:]]
    return {
        "outputs": outputs,
        "seconds": total,
        "first": timings[0]["optimise"],
        "later": float(np.mean(later)) if later else 0.0,
        "flow": float(np.mean([t["flow"] for t in timings[1:]])) if later else 0.0,
    }


def contact_sheet(rows: list[list[Image.Image]], path: Path, labels: list[str]) -> None:
    from PIL import ImageDraw

    w, h = rows[0][0].size
    sheet = Image.new("RGB", (w * len(rows[0]), (h + 14) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (row, label) in enumerate(zip(rows, labels, strict=True)):
        draw.text((2, r * (h + 14)), label, fill="black")
        for c, img in enumerate(row):
            sheet.paste(img, (c * w, r * (h + 14) + 14))
    sheet.save(path)


def flow_quality(photo: Path, size: int, pairs: int = 6) -> list[dict]:
    """End-point error and time of each DIS preset on a pan (dx 5 px) and a zoom (1.5 % a frame)."""
    import cv2

    from style_transfer import flow

    frames = pan_frames(photo, size, pairs + 1, 5)
    base = np.asarray(frames[0])
    h, w = base.shape[:2]
    zoom = []
    for t in range(pairs + 1):
        s = 1.015**t
        m = np.float32([[s, 0, (1 - s) * w / 2], [0, s, (1 - s) * h / 2]])
        zoom.append(cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    results = []
    for preset in flow.PRESETS:
        errors = {"pan": [], "zoom": []}
        seconds = []
        for t in range(1, pairs + 1):
            began = time.perf_counter()
            b = flow.optical_flow(frames[t], frames[t - 1], preset)  # current -> previous: true (+5, 0)
            seconds.append(time.perf_counter() - began)
            m = 10
            errors["pan"].append(np.hypot(b[m:-m, m : w - 5 - m, 0] - 5, b[m:-m, m : w - 5 - m, 1]).mean())
            bz = flow.optical_flow(zoom[t], zoom[t - 1], preset)
            # Pixel p of zoom[t] shows base at c + (p - c)/s_t, which zoom[t-1] shows at c + (p - c) s_{t-1}/s_t.
            k = 1 / 1.015 - 1
            true_u, true_v = (gx - w / 2) * k, (gy - h / 2) * k
            errors["zoom"].append(
                np.hypot(bz[m:-m, m:-m, 0] - true_u[m:-m, m:-m], bz[m:-m, m:-m, 1] - true_v[m:-m, m:-m]).mean()
            )
        results.append(
            {
                "preset": preset,
                "epe_pan_px": round(float(np.mean(errors["pan"])), 3),
                "epe_zoom_px": round(float(np.mean(errors["zoom"])), 3),
                "ms_per_flow": round(1000 * float(np.median(seconds)), 1),
            }
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", default=str(ROOT / "examples/content/lake_boats.jpg"))
    parser.add_argument("--style", default=str(ROOT / "examples/styles/starry_night.jpg"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--dx", type=int, default=4, help="pan speed, px a frame")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--frame-steps", type=int, default=100)
    parser.add_argument("--independent-steps", type=int, default=0, help="steps of each independent frame (0: --steps)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1e10])
    parser.add_argument("--sheet", type=Path)
    parser.add_argument("--gif-dir", type=Path, help="write each variant as a GIF here")
    parser.add_argument("--clip", type=Path, help="a real clip instead of a pan (motion estimated by Farnebäck)")
    parser.add_argument("--start", type=int, default=0, help="with --clip: the first frame's index")
    parser.add_argument("--flow", action="store_true", help="measure the flow presets only")
    parser.add_argument(
        "--sprite", help="instead of a pan: this photo's disc slides across the still content photo (occlusions)"
    )
    args = parser.parse_args(argv)
    if args.flow:
        for row in flow_quality(Path(args.content), args.size):
            print(json.dumps(row))
        return
    from bench.score import Scorer

    fps: Fraction | int = 10
    sources = motion = None
    if args.clip:
        frames, fps = read_frames(args.clip, args.size, args.start, args.frames)
        began = time.perf_counter()
        motion = clip_motion(frames)
        seen = float(np.mean([m.mean() for _, m in motion]))
        print(
            json.dumps(
                {
                    "clip": args.clip.name,
                    "size": list(frames[0].size),
                    "frames": len(frames),
                    "start": args.start,
                    "seen_in_both": round(seen, 3),
                    "farneback_s": round(time.perf_counter() - began, 2),
                }
            ),
            flush=True,
        )
    elif args.sprite:
        frames, sources = sprite_frames(Path(args.content), Path(args.sprite), args.size, args.frames, args.dx)
    else:
        frames = pan_frames(Path(args.content), args.size, args.frames, args.dx)
    clip = make_clip(frames, fps)

    def flicker_of(images: list[Image.Image]) -> float:
        if motion is not None:
            return flicker_along(images, motion)
        return flicker_with_sources(images, sources) if sources else flicker(images, args.dx)

    middle = len(frames) // 2
    scorer = Scorer(frames[middle], args.style)
    photo_style = scorer(frames[middle])["style"]
    rows, labels = [frames], ["input"]
    for weight in args.weights:
        steps = args.independent_steps or args.steps if weight == 0 else args.steps
        result = run_variant(clip, Path(args.style), args.size, steps, args.frame_steps, weight)
        outs = result["outputs"]
        row = {
            "temporal_weight": weight,
            "steps": steps,
            "frame_steps": args.frame_steps if weight else steps,
            "flicker": round(flicker_of(outs), 3),
            "ssim_middle": round(ssim(outs[middle], frames[middle]), 4),
            "style_vs_photo": round(scorer(outs[middle])["style"] / photo_style, 4),
            "first_s": round(result["first"], 2),
            "later_s": round(result["later"], 2),
            "flow_s": round(result["flow"], 3),
            "total_s": round(result["seconds"], 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(outs)
        labels.append(f"temporal_weight={weight:g}")
        if args.gif_dir:
            from style_transfer.video import write_video

            args.gif_dir.mkdir(parents=True, exist_ok=True)
            write_video(args.gif_dir / f"tw{weight:g}.gif", outs, clip)
    print(json.dumps({"input_flicker": round(flicker_of(frames), 3)}))
    if args.sheet:
        contact_sheet(rows, args.sheet, labels)


if __name__ == "__main__":
    main()
