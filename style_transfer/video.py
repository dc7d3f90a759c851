"""Reading clips (MP4, WebM, MOV, MKV; animated GIF and WebP) into upright RGB frames, and writing results.

A clip is read once, at the run's working size, into a :class:`Clip`: its frames, each frame's time, the frame rate
and where its audio is. Containers are read with PyAV (FFmpeg bundled in its wheel; no ffmpeg binary needed),
animations with Pillow. Every limit (:mod:`.limits`) is checked from the headers before decoding and again while
decoding, so a clip that lies about its length still stops at the limit.

Results are written as MP4 (H.264, yuv420p: plays in browsers), animated GIF or animated WebP with the same frame
count and timing as the clip read, the audio kept in an MP4, and the settings embedded as the same JSON the still
images carry (MP4: the ``comment`` tag; GIF: its comment; WebP: EXIF ImageDescription); :func:`read_video_settings`
reads them back. A result is written under a temporary name in its folder and renamed when complete (as a still
is), so a failure while encoding (a full disk, an error mid-way) leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image, ImageSequence

from .config import VIDEO_OUTPUT_FORMATS, VideoConfig
from .formats import ANIMATION_SUFFIXES, video_format_for
from .images import ImageError, resize_longest
from .limits import (
    MAX_VIDEO_BYTES,
    MAX_VIDEO_FRAME_PIXELS,
    MAX_VIDEO_FRAMES,
    MAX_VIDEO_SECONDS,
    MAX_VIDEO_WORK_PIXELS,
)
from .output import EXIF_IMAGE_DESCRIPTION, replaced, settings_from_text, settings_text

# Frame intervals that differ by more than this fraction from the median make a clip "variable frame rate".
_VFR_TOLERANCE = 0.1


class VideoError(ImageError):
    """A clip could not be used; the message says why, in words for the user."""


@dataclass
class Clip:
    """Frames of a clip at the working size, with their timing.

    ``times[i]`` is when frame ``i`` is shown, in seconds from the first frame; ``durations[i]`` how long.
    """

    frames: list[Image.Image]
    times: list[float]
    durations: list[float]
    fps: Fraction
    variable_rate: bool = False
    source: str | None = None  # the file, for its audio
    audio: bool = False
    start: float = 0.0  # where in the source the frames begin (seconds)
    loop: int = 0  # an animation's loop count (0 = forever)
    rotation: int = 0  # the rotation applied to make the frames upright (degrees counter-clockwise)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return self.frames[0].size


def preload() -> None:
    """Import now what a clip's run would otherwise import on first use (PyAV to read and write clips, OpenCV for the
    optical flow), so that a server's first video request is as fast as its later ones; app.py calls it at start-up
    beside :func:`style_transfer.engine.preload`."""
    import av
    import av.subtitles.stream  # imported by a container's first look at its streams
    import cv2

    av.open  # noqa: B018  (the imports are the point)
    cv2.DISOpticalFlow_create(0)


def read_clip(path: str | os.PathLike, size: int, video: VideoConfig | None = None) -> Clip:
    """Read the frames of ``path`` that ``video`` selects (start, duration, max_frames), upright, resized so their
    longest side is ``size``. Raises :class:`VideoError` with a clear message for anything unusable."""
    video = video or VideoConfig()
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"content video: file not found: {p}")
    nbytes = p.stat().st_size
    if nbytes == 0:
        raise VideoError("content video: the file is empty")
    if nbytes > MAX_VIDEO_BYTES:
        raise VideoError(
            f"content video: the file is too large ({nbytes / 2**20:.0f} MB; "
            f"the limit is {MAX_VIDEO_BYTES // 2**20} MB)"
        )
    if p.suffix.lower() in ANIMATION_SUFFIXES:
        clip = _read_animation(p, size, video)
    else:
        clip = _read_container(p, size, video)
    if not clip.frames:
        raise VideoError("content video: no frames in the chosen range (check --start and --duration)")
    clip.source = str(p)
    return clip


def _frame_budget(video: VideoConfig) -> int:
    return video.max_frames or MAX_VIDEO_FRAMES


def _too_many(count: int | str, video: VideoConfig) -> VideoError:
    return VideoError(
        f"content video: too many frames ({count}; the limit is {MAX_VIDEO_FRAMES}). Pick a part of it with "
        "start/duration or max_frames."
    )


def _check_work(width: int, height: int, size: int, count: int) -> None:
    scale = size / max(width, height)
    pixels = round(width * scale) * round(height * scale) * count
    if pixels > MAX_VIDEO_WORK_PIXELS:
        raise VideoError(
            f"content video: {count} frames at {size} px are too much to hold ({pixels:,} pixels; the limit is "
            f"{MAX_VIDEO_WORK_PIXELS:,}). Choose a smaller size or fewer frames."
        )


def _check_frame_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise VideoError(f"content video: the frames are empty ({width}x{height})")
    if width * height > MAX_VIDEO_FRAME_PIXELS:
        raise VideoError(
            f"content video: the frames are too large ({width}x{height}; the limit is "
            f"{MAX_VIDEO_FRAME_PIXELS:,} pixels a frame)"
        )


def _read_container(path: Path, size: int, video: VideoConfig) -> Clip:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"content video: not a video, or the file is damaged ({_reason(exc)})") from None
    with container:
        if not container.streams.video:
            raise VideoError("content video: the file has no video stream (is it audio only?)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        _check_frame_pixels(ctx.width, ctx.height)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        length = _stream_seconds(container, stream)
        wanted = video.duration or (length - video.start if length else 0.0)
        if not video.max_frames and wanted > MAX_VIDEO_SECONDS:
            raise VideoError(
                f"content video: too long ({wanted:.0f} s; the limit is {MAX_VIDEO_SECONDS:.0f} s). Pick a part of "
                "it with start/duration or max_frames."
            )
        expected = int(wanted * float(rate) + 0.5) if wanted else (stream.frames or 0)
        if expected > MAX_VIDEO_FRAMES and not video.max_frames:
            raise _too_many(f"about {expected}", video)
        budget = _frame_budget(video)
        _check_work(ctx.width, ctx.height, size, min(budget, expected or budget))
        if video.start > 0:
            # To the keyframe before start; the frames before start are decoded and skipped below.
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(int(video.start * av.time_base), backward=True)
        frames: list[Image.Image] = []
        times: list[float] = []
        rotation = 0
        end = video.start + video.duration if video.duration else None
        first_time = None
        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else (first_time or 0.0) + len(frames) / float(rate)
                if first_time is None:
                    first_time = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
                t -= first_time
                if t < video.start - 1e-6:
                    continue
                if end is not None and t >= end - 1e-6:
                    break
                if len(frames) >= budget:
                    if video.max_frames:
                        break
                    raise _too_many(f"more than {MAX_VIDEO_FRAMES}", video)
                rotation = frame.rotation or 0
                frames.append(_upright(resize_longest(frame.to_image(), size), rotation))
                times.append(t)
        except av.error.FFmpegError as exc:
            if not frames:
                raise VideoError(f"content video: the file is damaged and cannot be decoded ({_reason(exc)})") from None
            # A file cut short mid-stream: the frames that decoded are the clip.
        audio = bool(container.streams.audio)
    if not frames:
        return Clip([], [], [], rate)
    t0 = times[0]
    times = [t - t0 for t in times]
    durations = [b - a for a, b in itertools.pairwise(times)]
    durations.append(durations[-1] if durations else 1.0 / float(rate))
    variable = _variable(durations)
    if variable:  # the mean rate, from the timestamps themselves
        span = times[-1] + durations[-1]
        rate = Fraction(len(frames) / span).limit_denominator(1001) if span > 0 else rate
    return Clip(
        frames,
        times,
        durations,
        Fraction(rate),
        variable_rate=variable,
        audio=audio,
        start=video.start + (times[0] if times else 0.0),
        rotation=rotation,
        info={"width": ctx.width, "height": ctx.height, "codec": ctx.name},
    )


def _upright(img: Image.Image, rotation: int) -> Image.Image:
    """The frame as it is meant to be seen: the container's rotation (counter-clockwise degrees) applied."""
    turns = round(rotation / 90) % 4
    if turns == 1:
        return img.transpose(Image.Transpose.ROTATE_90)
    if turns == 2:
        return img.transpose(Image.Transpose.ROTATE_180)
    if turns == 3:
        return img.transpose(Image.Transpose.ROTATE_270)
    return img


def _stream_seconds(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return 0.0


def _variable(durations: Sequence[float]) -> bool:
    if len(durations) < 3:
        return False
    ordered = sorted(durations[:-1])
    median = ordered[len(ordered) // 2]
    return median > 0 and any(abs(d - median) > _VFR_TOLERANCE * median for d in durations[:-1])


def _read_animation(path: Path, size: int, video: VideoConfig) -> Clip:
    try:
        img = Image.open(path)
    except Exception as exc:
        raise VideoError(f"content video: not an animation, or the file is damaged ({_reason(exc)})") from None
    with img:
        _check_frame_pixels(*img.size)
        count = getattr(img, "n_frames", 1)
        budget = _frame_budget(video)
        if count > MAX_VIDEO_FRAMES and not video.max_frames and not video.duration:
            raise _too_many(count, video)
        _check_work(*img.size, size, min(count, budget))
        frames, times, durations = [], [], []
        clock = 0.0
        end = video.start + video.duration if video.duration else None
        try:
            for frame in ImageSequence.Iterator(img):
                shown = max(float(frame.info.get("duration", 100) or 100), 10.0) / 1000.0  # 0 ms plays as ~100 ms
                t, clock = clock, clock + shown
                if t < video.start - 1e-6:
                    continue
                if end is not None and t >= end - 1e-6:
                    break
                if len(frames) >= budget:
                    break
                frames.append(resize_longest(_rgb(frame), size))
                times.append(t)
                durations.append(shown)
        except Exception as exc:  # a truncated GIF fails mid-way; what decoded is the clip
            if not frames:
                raise VideoError(f"content video: the file is damaged and cannot be decoded ({_reason(exc)})") from None
        loop = int(img.info.get("loop", 0) or 0)
    if not frames:
        return Clip([], [], [], Fraction(10))
    t0 = times[0]
    times = [t - t0 for t in times]
    span = sum(durations)
    fps = Fraction(len(frames) / span).limit_denominator(1000) if span > 0 else Fraction(10)
    return Clip(
        frames,
        times,
        durations,
        fps,
        variable_rate=_variable([*durations, durations[-1]]),
        start=video.start + t0,
        loop=loop,
        info={"width": img.size[0], "height": img.size[1], "codec": path.suffix.lower().lstrip(".")},
    )


def _rgb(frame: Image.Image) -> Image.Image:
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return frame.convert("RGB")


def _reason(exc: BaseException) -> str:
    text = str(exc).split(": '")[0]  # FFmpeg errors end with the file name: never shown
    return text[:120] or type(exc).__name__


class VideoWriter:
    """Writes frames as they come to an MP4, GIF or WebP with ``clip``'s timing (and, in an MP4, its audio for
    the frames written). :meth:`close` finishes the file; a run stopped early gives a shorter video."""

    def __init__(self, path: str | os.PathLike, clip: Clip, settings: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.format = video_format_for(path)
        if self.format not in VIDEO_OUTPUT_FORMATS:
            raise ValueError(f"output: {self.format!r} is not one of {', '.join(VIDEO_OUTPUT_FORMATS)}")
        self.clip = clip
        self.text = settings_text(settings)
        self.count = 0
        self._frames: list[Image.Image] = []  # GIF / WebP are written at the end (Pillow writes them whole)
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._file = contextlib.ExitStack()  # the temporary file while it is written: renamed, or removed on failure
        self._part: Path | None = None
        self._failed = False

    def add(self, image: Image.Image) -> None:
        """Append the next frame. If it cannot be written, nothing is left on disk (the error is raised; the
        writer is then spent: ``count`` 0, :meth:`close` returns None)."""
        if self._failed:
            return
        try:
            if self.format == "mp4":
                self._add_mp4(image)
            else:
                self._frames.append(image.convert("RGB"))
        except BaseException as exc:
            self._abort(exc)
            raise
        self.count += 1

    def _open(self) -> Path:
        """The temporary file next to ``path`` that the frames go to (made on first use)."""
        if self._part is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._part = self._file.enter_context(replaced(self.path))
        return self._part

    def _abort(self, exc: BaseException) -> None:
        """Give up the file: the encoder closed, the temporary file removed."""
        self._failed, self.count = True, 0
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        self._file.__exit__(type(exc), exc, exc.__traceback__)

    def _add_mp4(self, image: Image.Image) -> None:
        import av

        if self._container is None:
            width, height = image.size
            self._size = (width - width % 2, height - height % 2)  # yuv420p needs even sides
            self._container = av.open(str(self._open()), "w", format="mp4")
            self._container.metadata["comment"] = self.text
            if self.clip.variable_rate:  # every frame keeps its own time
                stream = self._container.add_stream("libx264", rate=self.clip.fps)
                stream.codec_context.time_base = Fraction(1, 1000)
            else:
                stream = self._container.add_stream("libx264", rate=self.clip.fps)
            stream.width, stream.height = self._size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "medium"}
            self._stream = stream
        if image.size != self._size:
            image = image.crop((0, 0, *self._size))
        frame = av.VideoFrame.from_image(image.convert("RGB"))
        if self.clip.variable_rate:
            frame.pts = round(self.clip.times[self.count] * 1000)
            frame.time_base = Fraction(1, 1000)
        else:
            frame.pts = self.count
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> Path | None:
        """Finish the file; returns its path, or None when no frame was added (nothing is written). If it cannot be
        finished, nothing is left on disk (the error is raised)."""
        if self.count == 0 or self._failed:
            return None
        try:
            self._finish(self._open())
        except BaseException as exc:
            self._abort(exc)
            raise
        self._file.close()  # complete: renamed to path
        return self.path

    def _finish(self, part: Path) -> None:
        if self.format == "mp4":
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            if self.clip.audio and self.clip.source:
                self._add_audio(part)
            return
        durations = [max(10, round(d * 1000)) for d in self.clip.durations[: self.count]]
        first, rest = self._frames[0], self._frames[1:]
        if self.format == "gif":
            extra: dict[str, Any] = {"comment": self.text.encode(), "disposal": 1, "optimize": False}
        else:
            exif = Image.Exif()
            exif[EXIF_IMAGE_DESCRIPTION] = self.text
            extra = {"quality": 90, "exif": exif.tobytes()}
        first.save(
            part,
            format=self.format.upper(),
            save_all=True,
            append_images=rest,
            duration=durations,
            loop=self.clip.loop,
            **extra,
        )

    def _add_audio(self, part: Path) -> None:
        """Remux: the video just written to ``part``, plus the source's audio for the same stretch, re-encoded as
        AAC, back into ``part``."""
        import av

        span = self.clip.times[self.count - 1] + self.clip.durations[self.count - 1]
        begin, end = self.clip.start, self.clip.start + span
        silent = part.with_name(f"{part.name}.video")
        part.replace(silent)
        try:
            with av.open(str(silent)) as vin, av.open(str(self.clip.source)) as ain:
                ain_stream = ain.streams.audio[0]
                out = av.open(str(part), "w", format="mp4")
                with out:
                    out.metadata["comment"] = self.text
                    vout = out.add_stream_from_template(vin.streams.video[0])
                    rate = ain_stream.rate or 44100
                    aout = out.add_stream("aac", rate=rate, layout="stereo")
                    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
                    for packet in vin.demux(vin.streams.video[0]):
                        if packet.dts is None:
                            continue
                        packet.stream = vout
                        out.mux(packet)
                    if begin > 0:
                        ain.seek(int(begin * av.time_base), backward=True)
                    first_audio = float(ain_stream.start_time * ain_stream.time_base) if ain_stream.start_time else 0
                    for frame in ain.decode(ain_stream):
                        t = (frame.time or 0.0) - first_audio
                        if t < begin - 0.05:
                            continue
                        if t >= end:
                            break
                        frame.pts = None
                        for resampled in resampler.resample(frame):
                            for packet in aout.encode(resampled):
                                out.mux(packet)
                    for packet in aout.encode(None):
                        out.mux(packet)
        except av.error.FFmpegError:
            # The audio could not be carried over (an unusual codec, a damaged track): the video alone is kept.
            silent.replace(part)
            return
        finally:
            silent.unlink(missing_ok=True)


def write_video(
    path: str | os.PathLike, images: Sequence[Image.Image], clip: Clip, settings: dict[str, Any] | None = None
) -> Path | None:
    """Write ``images`` (the stylised frames, in order) with ``clip``'s timing and audio; see :class:`VideoWriter`."""
    writer = VideoWriter(path, clip, settings)
    for image in images:
        writer.add(image)
    return writer.close()


def read_video_settings(path: str | os.PathLike) -> dict[str, Any] | None:
    """The settings embedded in a result written by :class:`VideoWriter`, or None."""
    p = Path(path)
    text: Any = None
    if p.suffix.lower() in ANIMATION_SUFFIXES:
        with Image.open(p) as img:
            text = img.info.get("comment") or img.getexif().get(EXIF_IMAGE_DESCRIPTION)
    else:
        import av

        with av.open(str(p)) as container:
            text = container.metadata.get("comment")
    return settings_from_text(text)
