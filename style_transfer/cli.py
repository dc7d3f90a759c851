"""Command line: ``python -m style_transfer CONTENT STYLE -o OUT.png [options]``.

Every option except the file names is generated from :class:`~style_transfer.config.StyleConfig`, so flags, their
defaults, ranges and help always match the engine. Exit codes: 0 done, 1 unexpected error, 2 bad option value,
3 unusable input image, 4 weights unavailable, 5 the optimisation diverged (the last good frame is still saved),
130 interrupted (the latest frame is saved).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, StyleConfig, default_of, field_specs
from .engine import Frame, NonFiniteLossError, stylize
from .images import ImageError
from .weights import WeightsError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_IMAGE, EXIT_WEIGHTS, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
OUTPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
ALIASES = {"learning_rate": ["--lr"], "content_weight": ["--alpha"], "style_weight": ["--beta"]}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one option per config field."""
    parser = argparse.ArgumentParser(
        prog="python -m style_transfer",
        description="Paint a photo in the style of another image (Gatys et al. neural style transfer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("content", help="content image (the photo)")
    parser.add_argument("style", help="style image (the painting)")
    parser.add_argument("-o", "--output", default="stylized.png", help="output file (.png, .jpg or .webp)")
    parser.add_argument(
        "--save-every",
        nargs=2,
        metavar=("N", "DIR"),
        help="also save the image every N steps into DIR as step_00020.png, …",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for f in field_specs():
        meta, default = f.metadata, default_of(f)
        help_text = meta["help"]
        if meta["min"] is not None:
            help_text += f" Range {meta['min']:g}–{meta['max']:g}."
        kwargs: dict = {"dest": f.name, "help": help_text, "default": default}
        if isinstance(default, tuple):
            kwargs.update(default=",".join(map(str, default)), metavar="A,B,…")
        elif meta["choices"]:
            kwargs.update(choices=meta["choices"])
        else:
            kwargs.update(type=str, metavar=type(default).__name__.upper())  # the config converts and checks
        parser.add_argument(f"--{f.name.replace('_', '-')}", *ALIASES.get(f.name, []), **kwargs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    output = Path(args.output)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        return _fail(f"output: unsupported file type {output.suffix!r}; use .png, .jpg or .webp", EXIT_USAGE)
    try:
        settings = {f.name: getattr(args, f.name) for f in field_specs()}
        cfg = StyleConfig(**settings).validate()
        save_every, save_dir = _parse_save_every(args.save_every)
        if save_every:  # frames are needed at every multiple of N too
            cfg = cfg.replace(preview_every=math.gcd(cfg.preview_every, save_every))
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)

    frame: Frame | None = None
    bar = None
    try:
        for frame in stylize(args.content, args.style, cfg):
            if bar is None and not args.quiet:
                from tqdm import tqdm

                bar = tqdm(total=cfg.steps, unit="step", dynamic_ncols=True, file=sys.stderr)
            if bar is not None:
                bar.update(frame.step - bar.n)
                bar.set_postfix({k: f"{v:.3g}" for k, v in frame.losses.items()})
            if save_every and frame.step % save_every == 0:
                save_dir.mkdir(parents=True, exist_ok=True)
                frame.image.save(save_dir / f"step_{frame.step:05d}.png")
    except KeyboardInterrupt:
        _save(frame, output)
        return _fail(
            f"interrupted at step {frame.step if frame else 0}; latest image saved to {output}"
            if frame
            else "interrupted",
            EXIT_INTERRUPTED,
        )
    except ImageError as exc:
        return _fail(str(exc), EXIT_IMAGE)
    except WeightsError as exc:
        return _fail(str(exc), EXIT_WEIGHTS)
    except NonFiniteLossError as exc:
        _save(exc.last_frame, output)
        return _fail(str(exc), EXIT_DIVERGED)
    except (ConfigError, RuntimeError) as exc:  # e.g. device 'cuda' without a GPU
        return _fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR)
    finally:
        if bar is not None:
            bar.close()
    _save(frame, output)
    if not args.quiet:
        print(
            f"saved {output} ({frame.image.width}x{frame.image.height}, {frame.step} steps, {frame.elapsed:.1f} s)",
            file=sys.stderr,
        )
    return EXIT_OK


def _parse_save_every(value: list[str] | None) -> tuple[int, Path]:
    if not value:
        return 0, Path()
    try:
        every = int(value[0])
    except ValueError:
        every = 0
    if every < 1:
        raise ConfigError(f"--save-every: N must be a whole number >= 1, got {value[0]!r}")
    return every, Path(value[1])


def _save(frame: Frame | None, output: Path) -> None:
    if frame is None:
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.image.save(output, **({"quality": 95} if output.suffix.lower() != ".png" else {}))


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
