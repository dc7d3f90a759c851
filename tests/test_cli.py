"""The command line end to end: a PNG of the requested size, and one-line errors with meaningful exit codes."""

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from style_transfer import cli, engine
from style_transfer.output import read_settings

ROOT = Path(__file__).resolve().parents[1]


def test_cli_end_to_end_in_a_subprocess(content_path, style_path, tmp_path):
    out = tmp_path / "out" / "result.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "style_transfer",
            str(content_path),
            str(style_path),
            "-o",
            str(out),
            "--size",
            "48",
            "--steps",
            "4",
            "--preview-every",
            "2",
            "--save-every",
            "2",
            str(tmp_path / "frames"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (48, 36)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "step_00000.png",
        "step_00002.png",
        "step_00004.png",
    ]
    assert "saved" in proc.stderr


def _run(capsys, *args) -> tuple[int, str]:
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def test_missing_content_file(capsys, style_path, tmp_path):
    code, err = _run(capsys, tmp_path / "nope.jpg", style_path, "-o", tmp_path / "o.png", "-q", "--size", "32")
    assert code == cli.EXIT_IMAGE
    assert err.count("\n") == 0 and err.startswith("error: content image: file not found")
    assert not (tmp_path / "o.png").exists()


def test_text_file_as_style(capsys, content_path, tmp_path):
    fake = tmp_path / "style.png"
    fake.write_text("not an image")
    code, err = _run(capsys, content_path, fake, "-o", tmp_path / "o.png", "-q", "--size", "32")
    assert code == cli.EXIT_IMAGE and err.startswith("error: style image: not an image")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--size", "0"], "size: 0 is outside the allowed range [32, 8192]"),
        (["--steps", "lots"], "steps: expected a number"),
        (["--lr", "nan"], "--learning-rate: must be a finite number"),
        (["--save-every", "0", "frames"], "--save-every: N must be a whole number >= 1"),
        (["-o", "out.gif"], "output: unsupported file type '.gif'"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, content_path, style_path, flags, message):
    code, err = _run(capsys, content_path, style_path, "-q", *flags)
    assert code == cli.EXIT_USAGE
    assert err == f"error: {message}" or (err.startswith("error: ") and message in err and "\n" not in err)


def test_bad_choice_is_an_argparse_error(capsys, content_path, style_path):
    with pytest.raises(SystemExit) as info:
        cli.main([str(content_path), str(style_path), "--init", "zeros"])
    assert info.value.code == 2
    assert "invalid choice: 'zeros'" in capsys.readouterr().err


def test_every_config_field_has_a_flag():
    help_text = cli.build_parser().format_help()
    for flag in (
        "--size",
        "--steps",
        "--learning-rate",
        "--lr",
        "--content-weight",
        "--style-weight",
        "--seed",
        "--device",
        "--weights",
        "--tv-weight",
        "--style-layers",
        "--save-every",
    ):
        assert flag in help_text


def _never_run(*args, **kwargs):
    raise AssertionError("the run started although its output cannot be written")


@pytest.mark.parametrize("where", ["folder", "under_a_file", "frames_under_a_file"])
def test_an_unwritable_destination_is_refused_before_any_work(
    capsys, monkeypatch, content_path, style_path, tmp_path, where
):
    monkeypatch.setattr(engine, "stylize", _never_run)  # the CLI imports it from there when it runs
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.png").mkdir()
    flags = {
        "folder": ["-o", tmp_path / "adir.png"],
        "under_a_file": ["-o", tmp_path / "afile" / "o.png"],
        "frames_under_a_file": ["-o", tmp_path / "o.png", "--save-every", "2", tmp_path / "afile"],
    }[where]
    code, err = _run(capsys, content_path, style_path, "-q", *flags)
    assert code == cli.EXIT_USAGE and "\n" not in err
    assert err.startswith("error: --output: ") or err.startswith("error: --save-every DIR: cannot write"), err
    if where != "folder":
        assert err.endswith(f"({tmp_path / 'afile'} is a file, not a folder)"), err


def test_a_failed_save_is_one_line_not_a_traceback(capsys, monkeypatch, content_path, style_path, tmp_path):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "save_image", disk_full)
    code, err = _run(capsys, content_path, style_path, "-q", "-o", tmp_path / "o.png", "--size", "32", "--steps", "2")
    assert code == cli.EXIT_ERROR
    assert err == f"error: the result could not be saved to {tmp_path / 'o.png'}: No space left on device"


def test_save_every_keeps_every_multiple_across_scales(capsys, content_path, style_path, tmp_path):
    """Coarse-to-fine runs count previews over the whole run, so no multiple of N is skipped at a scale's start."""
    frames = tmp_path / "frames"
    args = ["-q", "-o", tmp_path / "o.png", "--size", "64", "--steps", "30", "--scales", "2"]
    code, err = _run(capsys, content_path, style_path, *args, "--save-every", "10", frames)
    assert code == cli.EXIT_OK, err
    names = sorted(p.name for p in frames.iterdir())
    assert {f"step_{k:05d}.png" for k in (0, 10, 20, 30)} <= set(names), names
    assert read_settings(tmp_path / "o.png")["preview_every"] == 20  # the user's setting, not the one used for N


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (
            ["--background-style", "STYLE"],
            cli.EXIT_USAGE,
            "--background-style: it paints the region outside the mask, and no region is marked",
        ),
        (["--mask", "BLACK"], cli.EXIT_IMAGE, "mask: it is black everywhere"),
        (["--style-layer-weights", "0,0,0,0,0"], cli.EXIT_USAGE, "--style-layer-weights: at least one weight"),
        (["--weights", "GARBAGE"], cli.EXIT_WEIGHTS, "not a PyTorch weights file (it cannot be unpickled)"),
        (
            ["--weights", "SHAPES"],
            cli.EXIT_WEIGHTS,
            "a conv weight of shape (8, 3, 3, 3) where VGG-19 has (64, 3, 3, 3)",
        ),
    ],
)
def test_inputs_that_would_be_ignored_or_fail_late_are_refused(
    capsys, content_path, style_path, tmp_path, flags, code, message
):
    Image.new("L", (48, 36), 0).save(tmp_path / "black.png")
    (tmp_path / "garbage.pth").write_bytes(bytes(range(256)) * 8)
    torch.save(
        {
            f"features.{i}.{k}": torch.zeros((8, 3, 3, 3) if k == "weight" else (8,))
            for i in range(16)
            for k in ("weight", "bias")
        },
        tmp_path / "shapes.pth",
    )
    stand_in = {
        "STYLE": style_path,
        "BLACK": tmp_path / "black.png",
        "GARBAGE": tmp_path / "garbage.pth",
        "SHAPES": tmp_path / "shapes.pth",
    }
    flags = [stand_in.get(f, f) for f in flags]
    got, err = _run(
        capsys, content_path, style_path, "-q", "-o", tmp_path / "o.png", "--size", "32", "--steps", "2", *flags
    )
    assert got == code and message in err and "\n" not in err, err
    assert "file an issue" not in err and not (tmp_path / "o.png").exists()


def test_help_answers_without_loading_torch():
    """The package imports its modules on first use, so --help (and a bad option) answer at once."""
    code = (
        "import sys, runpy; sys.argv = ['x', '--help']\n"
        "try: runpy.run_module('style_transfer', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "usage: python -m style_transfer" in out and out.strip().endswith("False")


def test_every_public_name_resolves():
    import style_transfer

    for name in style_transfer.__all__:
        assert getattr(style_transfer, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        style_transfer.nope  # noqa: B018


def test_ctrl_c_while_torch_loads_exits_130_quietly(capsys, content_path, style_path, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def interrupted(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 1 and name == "engine":  # the CLI's `from .engine import ...`, where torch loads
            raise KeyboardInterrupt
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    code, err = _run(capsys, content_path, style_path, "-o", tmp_path / "o.png", "--size", "32")
    assert (code, err) == (cli.EXIT_INTERRUPTED, "error: interrupted")


def test_style_strength_is_a_flag_and_an_enlarged_photo_is_noted(capsys, style_path, tmp_path):
    """The style strength, once the Space's alone, is a setting of every face (embedded in the result); a photo
    much smaller than the output is enlarged with a note."""
    small, out = tmp_path / "small.png", tmp_path / "out.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(small)
    argv = [str(small), str(style_path), "-o", str(out), "--size", "96", "--steps", "1", "--style-strength", "7.5"]
    assert cli.main([*argv, "-q"]) == 0
    assert "note: The content image (40x30 px) was enlarged 2.4x to the 96 px output" in capsys.readouterr().err
    assert read_settings(out)["style_strength"] == 7.5
