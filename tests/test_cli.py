"""The command line end to end: a PNG of the requested size, and one-line errors with meaningful exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from style_transfer import cli

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
        (["--size", "0"], "size: 0 is outside the allowed range [32, 2048]"),
        (["--steps", "lots"], "steps: expected a number"),
        (["--lr", "nan"], "learning_rate: must be a finite number"),
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
