"""Videos and animations: frame count, timing, audio and settings kept; the temporal cost lowers flicker; bad clips
get clear messages. Every clip is made here with PyAV or Pillow, tiny (48-64 px, 3-5 frames, a few steps)."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from style_transfer import cli, flow, video
from style_transfer.temporal import stylize_video
from style_transfer.video import VideoError, read_clip, read_video_settings, write_video
from tests.conftest import make_content

FAST = {"size": 48, "steps": 3, "frame_steps": 2, "device": "cpu"}


def pan(count: int, dx: int = 3, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """``count`` frames panning right over a smooth test picture by ``dx`` px a frame."""
    wide = np.asarray(make_content(width + dx * count, height))
    return [np.ascontiguousarray(wide[:, t * dx : t * dx + width]) for t in range(count)]


def make_mp4(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 10,
    *,
    audio: bool = False,
    rotation: int = 0,
    times: list[float] | None = None,
) -> Path:
    """An H.264 MP4 of ``frames``; optionally with a sine tone, a display rotation, or its own frame times."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        tone = out.add_stream("aac", rate=8000, layout="mono") if audio else None  # every stream before any packet
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if tone is not None:
            _add_tone(out, tone, seconds=len(frames) / fps)
    return path


def _add_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float, rate: int = 8000) -> None:
    samples = int(seconds * rate)
    t = np.arange(samples) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    chunk = 1024
    for start in range(0, samples, chunk):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(tone[:, start : start + chunk]), format="fltp", layout="mono"
        )
        frame.rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_gif(path: Path, frames: list[np.ndarray], durations: list[int]) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


def probe(path: Path) -> tuple[int, Fraction, bool]:
    """(frames, frame rate, has audio) of an MP4, counted by decoding."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = stream.average_rate
        count = sum(1 for _ in c.decode(stream))
        return count, rate, bool(c.streams.audio)


def finished(frames) -> list:
    return [f for f in frames if f.finished]


# --- Output keeps what the input had ---------------------------------------------------------------------------------


def test_mp4_to_mp4_keeps_frame_count_rate_audio_and_settings(tmp_path, style_path, model):
    clip_path = make_mp4(tmp_path / "in.mp4", pan(4), fps=12, audio=True)
    done = finished(stylize_video(clip_path, style_path, model=model, **FAST))
    assert [f.index for f in done] == [0, 1, 2, 3] and done[-1].done
    out = write_video(tmp_path / "out.mp4", [f.image for f in done], done[0].clip, {"size": 48})
    count, rate, has_audio = probe(out)
    assert (count, rate, has_audio) == (4, 12, True)
    assert read_video_settings(out) == {"size": 48}


def test_gif_to_gif_keeps_frame_count_and_timing(tmp_path, style_path, model):
    gif = make_gif(tmp_path / "in.gif", pan(3), durations=[80, 120, 200])
    done = finished(stylize_video(gif, style_path, model=model, **FAST))
    out = write_video(tmp_path / "out.gif", [f.image for f in done], done[0].clip, {"steps": 3})
    with Image.open(out) as img:
        assert img.n_frames == 3
        durations = []
        for i in range(img.n_frames):
            img.seek(i)
            durations.append(img.info["duration"])
    assert durations == [80, 120, 200]
    assert read_video_settings(out) == {"steps": 3}


def test_animated_webp_output(tmp_path):
    clip = read_clip(make_gif(tmp_path / "in.gif", pan(3), durations=[100] * 3), 48)
    out = write_video(tmp_path / "out.webp", clip.frames, clip, {"a": 1})
    with Image.open(out) as img:
        assert img.n_frames == 3
    assert read_video_settings(out) == {"a": 1}


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".webp"])
def test_a_failed_encode_leaves_no_file(tmp_path, monkeypatch, suffix):
    """A result is written under a temporary name and renamed when complete: an error mid-encode (here after the
    first frame is on disk) leaves neither the result nor the temporary file."""
    clip = read_clip(make_gif(tmp_path / "in.gif", pan(3), durations=[100] * 3), 48)
    folder = tmp_path / "out"
    out = write_video(folder / f"ok{suffix}", clip.frames, clip)
    assert sorted(p.name for p in folder.iterdir()) == [out.name]  # written whole: no temporary file left
    real_add, real_save = video.VideoWriter._add_mp4, Image.Image.save

    def add_then_fail(self, image):
        if self.count:
            raise OSError(28, "No space left on device")
        real_add(self, image)

    def save_then_fail(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video.VideoWriter, "_add_mp4", add_then_fail)
    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    writer = video.VideoWriter(folder / f"bad{suffix}", clip)
    with pytest.raises(OSError, match="No space"):
        for frame in clip.frames:
            writer.add(frame)
        writer.close()
    assert writer.close() is None and writer.count == 0
    assert sorted(p.name for p in folder.iterdir()) == [out.name]


@pytest.mark.parametrize(("suffix", "codec"), [(".webm", "libvpx-vp9"), (".mov", "libx264"), (".mkv", "libx264")])
def test_other_containers_are_read_whole(tmp_path, suffix, codec):
    path = tmp_path / f"in{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for array in pan(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    clip = read_clip(path, 48)
    assert len(clip) == 4 and clip.fps == 10 and clip.size == (48, 36)


def test_animated_webp_input(tmp_path):
    images = [Image.fromarray(f) for f in pan(3)]
    images[0].save(tmp_path / "in.webp", save_all=True, append_images=images[1:], duration=[100, 100, 100], loop=0)
    clip = read_clip(tmp_path / "in.webp", 48)
    assert len(clip) == 3 and clip.durations == pytest.approx([0.1] * 3)


def test_variable_frame_rate_keeps_each_frames_time(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.5]
    clip = read_clip(make_mp4(tmp_path / "vfr.mp4", pan(5), times=times), 48)
    assert clip.variable_rate and clip.times == pytest.approx(times, abs=2e-3)
    out = write_video(tmp_path / "out.mp4", clip.frames, clip)
    with av.open(str(out)) as c:
        shown = [f.time for f in c.decode(video=0)]
    assert shown == pytest.approx(times, abs=2e-3)


def test_portrait_phone_video_is_read_upright(tmp_path):
    frames = [np.zeros((32, 64, 3), np.uint8) for _ in range(3)]
    for f in frames:
        f[:, :16] = 255  # white on the left of the stored (landscape) picture
    clip = read_clip(make_mp4(tmp_path / "phone.mp4", frames, rotation=-90), 64)  # a phone's "rotate 90"
    image = np.asarray(clip.frames[0])
    assert clip.size == (32, 64)  # portrait
    assert image[:8].mean() > 200 and image[-8:].mean() < 50  # turned clockwise: the left edge is now the top


# --- Temporal consistency -------------------------------------------------------------------------------------------


def test_temporal_cost_lowers_flicker(model, style_path):
    """Each frame warm-started and tied to the previous one flickers less than frames stylised on their own (the
    difference to the previous output moved by the true motion, 3 px a frame), at equal steps."""
    dx = 3
    clip = video.Clip([Image.fromarray(f) for f in pan(3, dx)], [0, 0.1, 0.2], [0.1] * 3, Fraction(10))

    def flicker(weight: float) -> float:
        run = stylize_video(
            clip, style_path, model=model, size=64, steps=20, frame_steps=20, temporal_weight=weight, device="cpu"
        )
        outs = [np.asarray(f.image, np.float32) for f in finished(run)]
        return float(np.mean([np.abs(b[:, :-dx] - a[:, dx:]).mean() for a, b in itertools.pairwise(outs)]))

    # At 64 px the style pulls each pixel much harder than at 256 px (its gradient falls faster with size than the
    # temporal cost's), so the tie must be stronger than the default to hold it.
    assert flicker(1e14) < 0.5 * flicker(0.0)


def test_flow_finds_the_motion_and_distrusts_what_was_hidden():
    a, b = pan(2, dx=4)
    backward = flow.optical_flow(b, a)  # pixel x of b was at x + 4 in a
    assert np.median(backward[8:-8, 8:-12, 0]) == pytest.approx(4, abs=0.5)
    trust = flow.reliability(backward, flow.optical_flow(a, b))
    assert trust[:, -2:].mean() < 0.2  # the right edge came into view: nothing to keep there
    assert trust[8:-8, 8:-12].mean() > 0.8


def test_closing_the_generator_stops_the_run(tmp_path, style_path, model):
    run = stylize_video(make_mp4(tmp_path / "in.mp4", pan(4)), style_path, model=model, **FAST)
    first = next(f for f in run if f.finished)
    run.close()
    assert first.index == 0 and first.total == 4
    assert next(run, None) is None


def test_clip_benchs_flicker_is_zero_for_still_outputs_and_grows_with_a_shift():
    """bench.video's real-clip measure (motion estimated on the input by Farnebäck): outputs that follow the motion
    flicker (almost) 0; outputs that do not follow it, or shift where the input stood still, flicker."""
    from bench.video import clip_motion, flicker_along

    # A textured picture (blobs of noise, 8 px across), so the flow has something to follow.
    noise = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    wide = Image.fromarray(noise).resize((96, 64), Image.Resampling.BICUBIC)
    moving = [wide.crop((2 * t, 8, 2 * t + 64, 56)) for t in range(3)]  # a pan by 2 px a frame
    still = [moving[0]] * 3
    no_motion = [(np.zeros((48, 64, 2), np.float32), np.ones((48, 64), bool))] * 2
    assert flicker_along(still, no_motion) == 0.0
    assert flicker_along(moving, no_motion) > 5.0  # the outputs shifted, the input did not
    motion = clip_motion(moving)
    assert all(seen.mean() > 0.8 for _, seen in motion)  # all but the strip that came into view
    assert flicker_along(moving, motion) < 0.1 * flicker_along(still, motion)  # following the motion: (almost) none


# --- Bad input ------------------------------------------------------------------------------------------------------


def test_audio_only_file_is_refused(tmp_path):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as out:
        _add_tone(out, out.add_stream("aac", rate=8000, layout="mono"), 0.3)
    with pytest.raises(VideoError, match="no video stream"):
        read_clip(path, 48)


@pytest.mark.parametrize("cut", [0, 0.5])
def test_corrupt_or_truncated_file_is_refused(tmp_path, cut):
    good = make_mp4(tmp_path / "good.mp4", pan(4)).read_bytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good[: int(len(good) * cut)] if cut else b"\x00not a video" * 100)
    with pytest.raises(VideoError, match=r"damaged|empty|not a video"):
        read_clip(bad, 48)


def test_too_many_frames_is_refused_unless_a_range_is_picked(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "MAX_VIDEO_FRAMES", 3)
    path = make_mp4(tmp_path / "long.mp4", pan(5))
    with pytest.raises(VideoError, match=r"too many frames.*limit is 3"):
        read_clip(path, 48)
    assert len(read_clip(path, 48, video.VideoConfig(max_frames=2))) == 2
    assert len(read_clip(path, 48, video.VideoConfig(start=0.2, duration=0.2))) == 2


def test_too_long_and_too_large_are_refused_from_the_header(tmp_path, monkeypatch):
    path = make_mp4(tmp_path / "clip.mp4", pan(5))
    monkeypatch.setattr(video, "MAX_VIDEO_SECONDS", 0.2)
    with pytest.raises(VideoError, match="too long"):
        read_clip(path, 48)
    monkeypatch.setattr(video, "MAX_VIDEO_SECONDS", 600.0)
    monkeypatch.setattr(video, "MAX_VIDEO_FRAME_PIXELS", 1000)
    with pytest.raises(VideoError, match="frames are too large"):
        read_clip(path, 48)


# --- Command line ---------------------------------------------------------------------------------------------------


def test_cli_stylizes_a_clip_to_a_gif(tmp_path, style_path, capsys):
    clip_path = make_mp4(tmp_path / "in.mp4", pan(4), fps=10)
    out = tmp_path / "out.gif"
    args = [str(clip_path), str(style_path), "-o", str(out), "--size", "48", "--steps", "2", "--frame-steps", "1"]
    code = cli.main([*args, "--max-frames", "3", "--device", "cpu", "-q"])
    assert code == cli.EXIT_OK, capsys.readouterr().err
    with Image.open(out) as img:
        assert img.n_frames == 3
    assert read_video_settings(out)["max_frames"] == 3


def test_cli_refuses_a_still_image_output_for_a_clip(tmp_path, style_path, capsys):
    clip_path = make_mp4(tmp_path / "in.mp4", pan(3))
    code = cli.main([str(clip_path), str(style_path), "-o", str(tmp_path / "out.png"), "-q"])
    assert code == cli.EXIT_USAGE
    assert ".mp4, .gif or .webp" in capsys.readouterr().err


def test_loop_ties_the_last_frame_to_the_first(tmp_path, style_path, model):
    """With loop, the last frame is pulled towards the first frame's result too: it ends closer to it."""
    frames = pan(4, dx=2)
    frames[-1] = frames[0]  # a clip that comes back to where it started, as a looping GIF does
    clip = video.Clip([Image.fromarray(f) for f in frames], [0, 0.1, 0.2, 0.3], [0.1] * 4, Fraction(10))

    def gap(loop: bool) -> float:
        run = stylize_video(
            clip, style_path, model=model, size=64, steps=10, frame_steps=10, temporal_weight=1e14, loop=loop
        )
        outs = [np.asarray(f.image, np.float32) for f in finished(run)]
        return float(np.abs(outs[-1] - outs[0]).mean())

    assert gap(True) < gap(False)
