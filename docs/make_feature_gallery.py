"""Regenerate docs/features.jpg: one small example per feature, same photo and style, captioned.

Usage: .venv/bin/python docs/make_feature_gallery.py [SIZE] [STEPS]   (about 3 minutes on a 2-core CPU at 160 px)
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from style_transfer import run  # noqa: E402

CONTENT = ROOT / "examples" / "content" / "lake_boats.jpg"
STYLE = ROOT / "examples" / "styles" / "autumn.jpg"
SECOND = ROOT / "examples" / "styles" / "great_wave.jpg"


def main(size: int = 160, steps: int = 120) -> None:
    half = Image.new("L", (768, 480), 0)
    half.paste(255, (384, 0, 768, 480))  # paint the right half only
    variants = [
        ("default (Adam)", {}),
        ("keep colours: luminance", {"preserve_colors": "luminance"}),
        ("keep colours: histogram", {"preserve_colors": "histogram"}),
        ("two styles 1:1", {"style": [STYLE, SECOND], "style_blend_weights": (1, 1)}),
        ("mask: right half", {"mask": half}),
        ("style scale 0.5", {"style_scale": 0.5}),
        ("avg pooling", {"pooling": "avg"}),
        ("L-BFGS", {"optimizer": "lbfgs"}),
        ("coarse-to-fine, 2 scales", {"scales": 2}),
    ]
    tiles = [
        (f"photo ({CONTENT.stem})", Image.open(CONTENT).convert("RGB")),
        (f"style ({STYLE.stem})", Image.open(STYLE).convert("RGB")),
    ]
    for caption, kw in variants:
        style = kw.pop("style", STYLE)
        frame = run(CONTENT, style, size=size, steps=steps, **kw)
        print(f"{caption}: J = {frame.losses['total']:.4g}, {frame.elapsed:.1f} s", flush=True)
        tiles.append((caption, frame.image))
    width = size
    height = max(round(img.height * width / img.width) for _, img in tiles)
    cols = 4
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * width, rows * (height + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (caption, img) in enumerate(tiles):
        x, y = (i % cols) * width, (i // cols) * (height + 18)
        sheet.paste(img.resize((width, round(img.height * width / img.width))), (x, y + 18))
        draw.text((x + 3, y + 3), caption, fill="black")
    sheet.save(ROOT / "docs" / "features.jpg", quality=88)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
