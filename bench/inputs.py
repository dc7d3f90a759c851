"""The benchmark's inputs: one content/style pair, preprocessed once per size into PNGs that every contender reads.

Sources, in order: ``--content``/``--style``; the first file (sorted) in ``examples/content`` and
``examples/styles``; gradio's bundled ``lion.jpg`` (content) and a synthetic, seeded "painting" (style). Each
source is loaded with the engine's loader (EXIF, alpha, bit depth) and resized once with the engine's resampler
(LANCZOS, longest side = size), then saved as PNG; at that size neither contender resizes again.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from style_transfer.images import load_image, resize_longest

from .procs import REPO_ROOT

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class Inputs:
    """The PNGs of one size, and where they came from."""

    size: int
    content: Path
    style: Path
    content_source: str
    style_source: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_image(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return files[0] if files else None


def _gradio_asset(name: str) -> Path | None:
    spec = importlib.util.find_spec("gradio")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "media_assets" / "images" / name
    return path if path.is_file() else None


def synthetic_content(size: int = 512) -> Image.Image:
    """A smooth 'photo': a sky gradient, a hill and a sun (edges and flat areas), deterministic."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    sky = np.stack([0.35 + 0.4 * y, 0.55 + 0.3 * y, 0.95 - 0.2 * y], axis=-1)
    hill = (y > 0.62 + 0.12 * np.sin(6.0 * x)).astype(np.float32)[..., None]
    ground = np.stack([0.2 + 0.2 * x, 0.5 - 0.2 * y, 0.15 + 0.0 * x], axis=-1)
    sun = (((x - 0.72) ** 2 + (y - 0.25) ** 2) < 0.012).astype(np.float32)[..., None]
    rgb = sky * (1 - hill) + ground * hill
    rgb = rgb * (1 - sun) + np.array([1.0, 0.85, 0.3], dtype=np.float32) * sun
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB")


def synthetic_style(size: int = 512, seed: int = 0) -> Image.Image:
    """A colourful 'painting': swirling sinusoid bands mapped through a palette, plus brush-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    field = np.zeros_like(x)
    for _ in range(6):
        fx, fy = rng.uniform(2, 9, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(2 * np.pi * (fx * x + fy * y + 0.15 * np.sin(7 * y + phase)) + phase)
    field = (field - field.min()) / (field.max() - field.min())
    palette = np.array(
        [[0.07, 0.1, 0.35], [0.15, 0.4, 0.75], [0.95, 0.8, 0.2], [0.9, 0.35, 0.1], [0.1, 0.3, 0.15]],
        dtype=np.float32,
    )
    pos = field * (len(palette) - 1)
    low = np.floor(pos).astype(int).clip(0, len(palette) - 2)
    frac = (pos - low)[..., None]
    rgb = palette[low] * (1 - frac) + palette[low + 1] * frac
    strokes = rng.normal(0, 0.08, size=(size // 4, size // 4, 1)).astype(np.float32)
    strokes = np.kron(strokes, np.ones((4, 4, 1), dtype=np.float32))[:size, :size]
    rgb = np.clip(rgb + strokes, 0, 1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def resolve_sources(content: str | None, style: str | None) -> tuple[Image.Image, str, Image.Image, str]:
    """The content and style images (RGB) and a label of where each came from."""
    if content:
        content_img, content_src = load_image(content, name="content image"), str(Path(content).resolve())
    elif (path := _first_image(REPO_ROOT / "examples" / "content")) is not None:
        content_img, content_src = load_image(path, name="content image"), str(path)
    elif (path := _gradio_asset("lion.jpg")) is not None:
        content_img, content_src = load_image(path, name="content image"), f"gradio media asset {path.name}"
    else:
        content_img, content_src = synthetic_content(), "synthetic content (bench.inputs.synthetic_content)"
    if style:
        style_img, style_src = load_image(style, name="style image"), str(Path(style).resolve())
    elif (path := _first_image(REPO_ROOT / "examples" / "styles")) is not None:
        style_img, style_src = load_image(path, name="style image"), str(path)
    else:
        style_img, style_src = synthetic_style(), "synthetic style (bench.inputs.synthetic_style, seed 0)"
    return content_img, content_src, style_img, style_src


def prepare(
    out_dir: Path, sizes: list[int], content: str | None = None, style: str | None = None
) -> tuple[dict[int, Inputs], dict]:
    """Write ``content_{size}.png`` and ``style_{size}.png`` into ``out_dir``; return them and a provenance record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    content_img, content_src, style_img, style_src = resolve_sources(content, style)
    prepared: dict[int, Inputs] = {}
    record: dict = {"content_source": content_src, "style_source": style_src, "resampler": "LANCZOS", "sizes": {}}
    for size in sizes:
        c_path, s_path = out_dir / f"content_{size}.png", out_dir / f"style_{size}.png"
        resize_longest(content_img, size).save(c_path)
        resize_longest(style_img, size).save(s_path)
        prepared[size] = Inputs(size, c_path, s_path, content_src, style_src)
        record["sizes"][str(size)] = {
            "content": {"path": str(c_path), "sha256": sha256(c_path), "wh": list(Image.open(c_path).size)},
            "style": {"path": str(s_path), "sha256": sha256(s_path), "wh": list(Image.open(s_path).size)},
        }
    return prepared, record
