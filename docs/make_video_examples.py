"""Make the Space's example clips from the redistributable example photos (examples/ATTRIBUTION.md): a pan across
lake_boats.jpg and a slow zoom into forest_path.jpg, 2 s at 12 fps, 256 px wide, H.264 MP4.

    python docs/make_video_examples.py
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FPS, FRAMES, WIDTH, HEIGHT = 12, 24, 256, 160


def write(path: Path, frames: list[Image.Image]) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "20"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def pan(photo: Path, step: int = 4) -> list[Image.Image]:
    img = Image.open(photo).convert("RGB")
    scale = HEIGHT / img.height
    img = img.resize((round(img.width * scale), HEIGHT), Image.Resampling.LANCZOS)
    return [img.crop((t * step, 0, t * step + WIDTH, HEIGHT)) for t in range(FRAMES)]


def zoom(photo: Path, rate: float = 1.01) -> list[Image.Image]:
    img = Image.open(photo).convert("RGB")
    frames = []
    for t in range(FRAMES):
        s = rate**t
        w, h = img.width / s, img.width / s * HEIGHT / WIDTH
        box = ((img.width - w) / 2, (img.height - h) / 2, (img.width + w) / 2, (img.height + h) / 2)
        frames.append(img.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS, box=box))
    return frames


if __name__ == "__main__":
    out = ROOT / "examples" / "video"
    out.mkdir(exist_ok=True)
    write(out / "lake_boats_pan.mp4", pan(ROOT / "examples" / "content" / "lake_boats.jpg"))
    write(out / "forest_path_zoom.mp4", zoom(ROOT / "examples" / "content" / "forest_path.jpg"))
