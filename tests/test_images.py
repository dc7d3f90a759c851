"""Every image mode ends up as upright RGB of the right size; broken and oversized files get clear errors."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from style_transfer.images import ImageError, load_image, pil_to_tensor, resize_longest, tensor_to_pil


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _check_rgb(img: Image.Image, size=(40, 30)):
    assert img.mode == "RGB" and img.size == size


@pytest.mark.parametrize("mode", ["L", "1", "RGB", "CMYK", "YCbCr"])
def test_plain_modes_to_rgb(mode, tmp_path):
    src = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    path = tmp_path / ("x.jpg" if mode in ("CMYK", "YCbCr") else "x.png")
    src.save(path)
    _check_rgb(load_image(path))


def test_rgba_and_la_composite_on_white():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (255, 0, 0, 255))  # one opaque red pixel
    out = load_image(_png_bytes(rgba))
    _check_rgb(out)
    assert out.getpixel((5, 5)) == (255, 255, 255) and out.getpixel((0, 0)) == (255, 0, 0)
    la = Image.new("LA", (40, 30), (0, 0))
    assert load_image(_png_bytes(la)).getpixel((3, 3)) == (255, 255, 255)


def test_palette_with_transparency():
    p = Image.new("P", (40, 30), 0)
    p.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    p.info["transparency"] = 0
    out = load_image(_png_bytes(p, transparency=0))
    _check_rgb(out)
    assert out.getpixel((1, 1)) == (255, 255, 255)
    opaque = Image.new("P", (40, 30), 1)
    opaque.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    assert load_image(opaque).getpixel((1, 1)) == (0, 255, 0)


def test_16_bit_and_float_are_scaled_not_clipped(tmp_path):
    a16 = np.full((30, 40), 65535, dtype=np.uint16)
    a16[0, 0] = 32768
    path = tmp_path / "deep.png"
    Image.fromarray(a16).save(path)  # I;16 PNG
    out = load_image(path)
    _check_rgb(out)
    assert out.getpixel((5, 5)) == (255, 255, 255) and out.getpixel((0, 0))[0] == 128
    f = Image.fromarray(np.full((30, 40), 0.5, dtype=np.float32), "F")
    assert load_image(f).getpixel((1, 1)) == (128, 128, 128)
    tiff = tmp_path / "deep.tif"
    f.save(tiff)
    _check_rgb(load_image(tiff))


def test_numpy_arrays():
    _check_rgb(load_image(np.zeros((30, 40, 3), dtype=np.uint8)))
    assert load_image(np.ones((30, 40), dtype=np.float32)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.zeros((30, 40, 4), dtype=np.uint8)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageError, match="not an image"):
        load_image(np.zeros((3, 30, 40, 2)))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((30, 40), np.nan, dtype=np.float32))


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 30), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=100)
    out = load_image(path)
    assert out.size == (30, 40)  # upright: width and height swap
    assert sum(out.getpixel((29, 0))) > 600  # the white corner moved from top-left to top-right


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue())
    _check_rgb(out)
    assert out.getpixel((1, 1))[0] > 200


def test_corrupt_and_non_image_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(ImageError, match="not an image"):
        load_image(text)
    good = _png_bytes(Image.new("RGB", (64, 64), (10, 200, 30)))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(truncated)
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="expected a file path"):
        load_image(42)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (invalid) body: must be refused from the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(30000, 30000))
    # The body is not valid image data, so "too large" (not "damaged") proves it was refused from the header.
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb)


def test_resize_longest_keeps_aspect():
    assert resize_longest(Image.new("RGB", (100, 50)), 64).size == (64, 32)
    assert resize_longest(Image.new("RGB", (50, 100)), 64).size == (32, 64)
    assert resize_longest(Image.new("RGB", (20, 10)), 64).size == (64, 32)  # upscales too
    assert resize_longest(Image.new("RGB", (2, 2000)), 64).size == (1, 64)


def test_tensor_round_trip():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    t = pil_to_tensor(img)
    assert t.shape == (1, 3, 30, 40) and t.dtype == torch.float32 and t.min() >= 0 and t.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_pil(t)), np.asarray(img))


def test_a_dark_16_bit_png_stays_dark():
    """A 16-bit file's depth is known: values below 256 are near black, not read as 8-bit data."""
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint16)).save(buf, "PNG")
    assert np.asarray(load_image(buf.getvalue())).max() == 1  # 200 / 65535 * 255


def test_a_mask_s_transparent_part_is_not_painted(tmp_path):
    """A mask drawn on a transparent layer: the transparent part counts as black (keep the photo), as in the app."""
    mask = Image.new("RGBA", (8, 4), (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (4, 0, 8, 4))
    mask.save(tmp_path / "mask.png")
    grey = np.asarray(load_image(tmp_path / "mask.png", name="mask", matte=0).convert("L"))
    assert (grey[:, :4] == 0).all() and (grey[:, 4:] == 255).all()
    assert (np.asarray(load_image(tmp_path / "mask.png").convert("L")) == 255).all()  # other images: on white
