"""Regenerate docs/gallery.jpg: one row per example painting, each applied to two photos with the default settings.

Usage: .venv/bin/python docs/make_gallery.py [SIZE] [STEPS]   (defaults 256 px and the app's CPU steps)

Every tile is the engine's default result (``style_transfer.run`` with only size and steps given), so the gallery
shows what a first click gives. Rows: the style image, then the photos painted in it.
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from style_transfer import run  # noqa: E402

STYLES = ("starry_night", "great_wave", "the_scream", "composition_viii", "cafe_terrace_at_night", "autumn")
PHOTOS = ("lake_boats", "temple")
TILE = 220


def main(size: int = 256, steps: int = 150) -> None:
    rows = []
    for style in STYLES:
        style_path = ROOT / "examples" / "styles" / f"{style}.jpg"
        tiles = [(style.replace("_", " "), Image.open(style_path).convert("RGB"))]
        for photo in PHOTOS:
            frame = run(ROOT / "examples" / "content" / f"{photo}.jpg", style_path, size=size, steps=steps)
            tiles.append((photo.replace("_", " "), frame.image))  # timings belong to bench/, not to a picture
            print(f"{style} × {photo}: {frame.elapsed:.1f} s", flush=True)
        rows.append(tiles)
    sheet = Image.new("RGB", (TILE * (1 + len(PHOTOS)), (TILE + 18) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, tiles in enumerate(rows):
        for c, (caption, img) in enumerate(tiles):
            x, y = c * TILE, r * (TILE + 18)
            sheet.paste(ImageOps.pad(img, (TILE - 4, TILE - 4), color="white"), (x + 2, y + 2))
            draw.text((x + 4, y + TILE), caption, fill="black")
    out = ROOT / "docs" / "gallery.jpg"
    sheet.save(out, quality=88)
    print(f"wrote {out} ({size} px, {steps} steps per tile)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
