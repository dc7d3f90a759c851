"""16-bit TIFF: the optimised pixels at 16 bits per channel with the settings embedded; never half-written."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile

from style_transfer import cli, output
from tests.conftest import make_content, make_style


def test_cli_writes_a_16_bit_tiff_with_its_settings(tmp_path):
    make_content(64, 48).save(tmp_path / "c.png")
    make_style().save(tmp_path / "s.png")
    out = tmp_path / "result.tif"
    argv = [str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(out), "--size", "64", "--steps", "3", "-q"]
    assert cli.main(argv) == cli.EXIT_OK
    pixels = tifffile.imread(out)
    assert pixels.dtype == np.uint16 and pixels.shape == (48, 64, 3)
    assert np.any(pixels % 257 != 0), "not an 8-bit picture scaled up"
    settings = output.read_settings(out)
    assert settings["size"] == 64 and settings["steps_done"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_full_disk_leaves_no_file(tmp_path, monkeypatch):
    def full(path, data, **kw):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    target = tmp_path / "out.tif"
    with pytest.raises(OSError, match="No space"):
        output.save_image(make_content(), target, image16=np.zeros((48, 64, 3), np.uint16))
    assert list(tmp_path.iterdir()) == []


def test_an_8_bit_frame_is_written_as_8_bits(tmp_path):
    """A frame without 16-bit pixels (a stopped run's preview) is not passed off as 16-bit."""
    target = tmp_path / "out.tiff"
    output.save_image(make_content(), target, settings={"size": 64})
    assert tifffile.imread(target).dtype == np.uint8 and output.read_settings(target) == {"size": 64}
