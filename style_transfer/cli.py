"""Command line: ``style-transfer CONTENT STYLE -o OUT.png [options]`` (installed), or ``python -m style_transfer``;
a video as CONTENT (MP4, WebM, MOV, MKV, animated GIF or WebP) gives a video (``-o OUT.mp4``, ``.gif`` or ``.webp``).

Every option except the file names is generated from :class:`~style_transfer.config.StyleConfig`, so flags, their
defaults, ranges and help always match the engine. Exit codes: 0 done, 1 unexpected error, 2 bad option value,
3 unusable input image, 4 weights unavailable, 5 the optimisation diverged (the last good frame is still saved),
130 interrupted (the last preview is saved).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .config import (
    PRESETS,
    ConfigError,
    StyleConfig,
    VideoConfig,
    default_of,
    field_specs,
    number,
    preset,
    video_field_specs,
)
from .formats import ANIMATION_SUFFIXES, STILL_SUFFIXES, is_video, video_format_for
from .output import format_for, save_image

if TYPE_CHECKING:
    from .engine import Frame
    from .video import VideoWriter

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_IMAGE, EXIT_WEIGHTS, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
ALIASES = {"learning_rate": ["--lr"], "content_weight": ["--alpha"], "style_weight": ["--beta"]}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one option per config field."""
    parser = argparse.ArgumentParser(
        # Named as it was started: the installed ``style-transfer`` script, else ``python -m style_transfer``.
        prog="style-transfer" if Path(sys.argv[0]).name == "style-transfer" else "python -m style_transfer",
        description="Paint a photo in the style of another image (Gatys et al. neural style transfer).",
    )
    parser.add_argument("content", help="content image (the photo), or a video / animated GIF or WebP")
    parser.add_argument("style", nargs="+", help="style image(s) (the painting; several are blended)")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="output file (.png, .jpg, .webp, or .tif for 16 bits per channel; for a video .mp4, .gif or .webp); "
        "the settings are embedded in it (default: stylized.png, or stylized.mp4 for a video)",
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="named settings; any option given explicitly overrides the preset's value",
    )
    parser.add_argument("--mask", help="mask image: white where the style goes, black where the photo stays")
    parser.add_argument("--background-style", help="style for the black part of --mask (default: keep the photo)")
    parser.add_argument(
        "--save-every",
        nargs=2,
        metavar=("N", "DIR"),
        help="also save the image every N steps into DIR as step_00020.png, …",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for f in [*field_specs(), *video_field_specs()]:
        meta, default = f.metadata, default_of(f)
        help_text = meta["help"]
        if meta["min"] is not None:
            help_text += f" Range {number(meta['min'])}–{number(meta['max'])}."
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        # SUPPRESS: only options the user gives reach the config, so a --preset can fill the others.
        kwargs: dict = {"dest": f.name, "help": f"{help_text} (default: {shown})", "default": argparse.SUPPRESS}
        if isinstance(default, bool):
            kwargs.update(action="store_true")
        elif isinstance(default, tuple):
            kwargs.update(metavar="A,B,…")
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
    # PyTorch's CPU allocator backs tensors of 2 MB and more with transparent huge pages when asked, before its first
    # allocation: fewer page faults for the large activations, 21-27% off a 1024 px step on a 2-core EPYC, tiled or
    # not (README, "Print size"). Only as the process's own command (not main([...]) called from Python, which
    # leaves the choice to its caller).
    if argv is None:
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    # An animated GIF or WebP asked for as a still (-o x.png) is painted from its first frame, as any image is.
    still_out = args.output is not None and Path(args.output).suffix.lower() in STILL_SUFFIXES
    video = is_video(args.content) and not (still_out and Path(args.content).suffix.lower() in ANIMATION_SUFFIXES)
    output = Path(args.output or ("stylized.mp4" if video else "stylized.png"))
    try:
        explicit = {f.name: getattr(args, f.name) for f in field_specs() if hasattr(args, f.name)}
        cfg = StyleConfig(**{**(preset(args.preset) if args.preset else {}), **explicit}).validate()
        if video:
            vcfg = VideoConfig(**{f.name: getattr(args, f.name) for f in video_field_specs() if hasattr(args, f.name)})
            return _main_video(args, cfg, vcfg.validate(), output)
        save_every, save_dir = _parse_save_every(args.save_every)
        asked = cfg  # the settings embedded in the output: the user's, not the preview interval used below
        if save_every:  # frames are needed at every multiple of N too
            cfg = cfg.replace(preview_every=math.gcd(cfg.preview_every, save_every))
        # Where the results go is checked before any work, so a typo in a path never costs a run.
        format_for(output)
        _check_writable(output, "--output")
        if save_every:
            _check_writable(save_dir / "step_00000.png", "--save-every DIR")
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc), EXIT_USAGE)

    try:  # torch loads here (seconds), after the options are checked and --help has answered
        from .engine import NonFiniteLossError, prepare, stylize
        from .images import ImageError
        from .weights import WeightsError
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)

    frame: Frame | None = None
    bar = None
    failure: tuple[str, int] | None = None
    try:
        prepared = prepare(args.content, args.style, cfg, mask=args.mask, background_style=args.background_style)
        for note in prepared.notes:
            print(f"note: {note}", file=sys.stderr)
        frames = stylize(prepared)
        for frame in frames:
            if bar is None and not args.quiet:
                from tqdm import tqdm

                bar = tqdm(total=cfg.steps, unit="step", dynamic_ncols=True, file=sys.stderr)
            if bar is not None:
                bar.update(frame.step - bar.n)
                bar.set_postfix({"J": f"{frame.total:.3g}", **{t.label: f"{t.weighted:.3g}" for t in frame.terms}})
            if save_every and frame.step % save_every == 0:
                frame.image.save(save_dir / f"step_{frame.step:05d}.png")
    except KeyboardInterrupt:
        failure = ("interrupted", EXIT_INTERRUPTED)
        if frame is not None:
            saved = _save(frame, output, asked) or f"saved to {output}"
            failure = (f"interrupted; the last preview (step {frame.step}) {saved}", EXIT_INTERRUPTED)
    except ImageError as exc:
        failure = (str(exc), EXIT_IMAGE)
    except WeightsError as exc:
        failure = (str(exc), EXIT_WEIGHTS)
    except NonFiniteLossError as exc:
        failure = (str(exc), EXIT_DIVERGED)
        if exc.last_frame is not None:
            saved = _save(exc.last_frame, output, asked) or f"saved to {output}"
            failure = (f"{exc} The last good image (step {exc.last_frame.step}) {saved}.", EXIT_DIVERGED)
    except (ConfigError, ValueError) as exc:  # e.g. blend weights that do not match the styles
        failure = (str(exc), EXIT_USAGE)
    except (RuntimeError, OSError) as exc:  # e.g. device 'cuda' without a GPU, a disk that filled up
        failure = (str(exc), EXIT_ERROR)
    finally:
        if bar is not None:
            bar.close()  # before any message, so the bar is not drawn again under it
    if failure is not None:
        return _fail(*failure)
    problem = _save(frame, output, asked)
    if problem:
        return _fail(f"the result {problem}", EXIT_ERROR)
    if not args.quiet:
        print(
            f"saved {output} ({frame.image.width}x{frame.image.height}, {frame.step} steps, {frame.elapsed:.1f} s)",
            file=sys.stderr,
        )
    return EXIT_OK


def _main_video(args: argparse.Namespace, cfg: StyleConfig, vcfg: VideoConfig, output: Path) -> int:
    """The CLI for a clip: every frame stylised (:func:`~style_transfer.temporal.stylize_video`), written as they
    finish; Ctrl-C keeps the frames done as a shorter video."""
    try:
        video_format_for(output)
        _check_writable(output, "--output")
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        from .engine import NonFiniteLossError
        from .images import ImageError
        from .temporal import stylize_video
        from .video import VideoWriter
        from .weights import WeightsError
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    settings = {**cfg.to_dict(), **vcfg.to_dict()}
    writer: VideoWriter | None = None
    bar = None
    failure: tuple[str, int] | None = None
    last = None
    try:
        for last in stylize_video(
            args.content, args.style, cfg, video=vcfg, mask=args.mask, background_style=args.background_style
        ):
            if writer is None:
                assert last.clip is not None
                writer = VideoWriter(output, last.clip, settings)
                if not args.quiet:
                    from tqdm import tqdm

                    bar = tqdm(total=last.total, unit="frame", dynamic_ncols=True, file=sys.stderr)
            if last.finished:
                writer.add(last.image)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                eta = "" if last.eta is None else f"{last.eta:.0f}s"
                bar.set_postfix({"step": f"{last.step}/{last.steps}", "eta": eta})
    except KeyboardInterrupt:
        failure = ("interrupted", EXIT_INTERRUPTED)
        if writer is not None and writer.count:
            failure = (f"interrupted; the {writer.count} frames done are saved to {output}", EXIT_INTERRUPTED)
    except ImageError as exc:  # VideoError too
        failure = (str(exc), EXIT_IMAGE)
    except WeightsError as exc:
        failure = (str(exc), EXIT_WEIGHTS)
    except NonFiniteLossError as exc:
        failure = (str(exc), EXIT_DIVERGED)
    except (ConfigError, ValueError) as exc:
        failure = (str(exc), EXIT_USAGE)
    except (RuntimeError, OSError) as exc:
        failure = (str(exc), EXIT_ERROR)
    finally:
        if bar is not None:
            bar.close()
    try:
        saved = writer.close() if writer is not None else None
    except OSError as exc:
        return _fail(f"the result could not be saved to {output}: {exc.strerror or exc}", EXIT_ERROR)
    if failure is not None:
        return _fail(*failure)
    if not args.quiet and saved is not None and last is not None:
        print(f"saved {output} ({writer.count} frames, {last.elapsed:.1f} s)", file=sys.stderr)
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


def _check_writable(path: Path, flag: str) -> None:
    """Make ``path``'s folder and prove a file can be written there (left as it was found); ConfigError if not."""
    if path.is_dir():
        raise ConfigError(f"{flag}: {path} is a folder; give a file name such as {path / 'out.png'}")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag}: cannot write {path} ({blocker} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot write {path} ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag}: cannot write {path} (the file is read-only)")


def _save(frame: Frame | None, output: Path, cfg: StyleConfig) -> str | None:
    """Save ``frame`` to ``output`` with the settings; None when saved (or nothing to save), else why not."""
    if frame is None:
        return None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        settings = {**cfg.to_dict(), "steps_done": frame.step}
        save_image(frame.image, output, settings=settings, image16=frame.image16)
    except OSError as exc:
        return f"could not be saved to {output}: {exc.strerror or exc}"
    return None


def _fail(message: str, code: int) -> int:
    field, sep, rest = message.partition(": ")
    names = {f.name for f in [*field_specs(), *video_field_specs()]}
    if sep and field in names | {"background_style", "mask"}:  # the flag, not the field
        message = f"--{field.replace('_', '-')}: {rest}"
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
