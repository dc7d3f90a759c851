"""The optimisation loop: it streams, lowers the cost, carries the style, stops when closed, fails cleanly."""

import itertools

import numpy as np
import pytest

import style_transfer.engine as engine
from style_transfer import ConfigError, ImageError, NonFiniteLossError, StyleConfig, run, stylize

SMALL = {"size": 64, "steps": 30, "preview_every": 10}


def test_run_streams_lowers_cost_and_carries_style(content_path, style_path, model):
    frames = list(stylize(content_path, style_path, model=model, **SMALL))
    assert [f.step for f in frames] == [0, 10, 20, 30]
    assert frames[-1].done and not frames[0].done
    assert all(f.total_steps == 30 and f.image.size == (64, 48) for f in frames)
    assert all(f.image.mode == "RGB" for f in frames)
    totals = [f.losses["total"] for f in frames]
    assert totals[-1] < 0.5 * totals[0], totals
    assert all(b < a for a, b in itertools.pairwise(totals)), totals
    # Step 0 is the content image itself (init="content"): its style cost is the content's own style cost.
    assert frames[-1].losses["style"] < frames[0].losses["style"]
    content = np.asarray(frames[0].image, dtype=np.float32)
    final = np.asarray(frames[-1].image, dtype=np.float32)
    assert np.abs(final - content).mean() > 2.0  # visibly changed (mean change of > 2 of 255 levels)
    assert frames[-1].elapsed >= frames[0].elapsed > 0


def test_frame_losses_match_the_seed_equations(content_path, style_path, model):
    cfg = StyleConfig(size=64, steps=1, content_weight=3.0, style_weight=0.5, tv_weight=0.0)
    frame = next(stylize(content_path, style_path, cfg, model=model))
    terms = frame.losses
    assert terms["content"] < 1e-6  # the first frame is the content image itself (up to float rounding)
    assert terms["total"] == pytest.approx(3.0 * terms["content"] + 0.5 * terms["style"], rel=1e-6)
    # The default smoothing term is an add-on: J = αJc + βJs + tv_weight·J_tv.
    terms = next(stylize(content_path, style_path, cfg.replace(tv_weight=1e4), model=model)).losses
    assert terms["tv"] > 0
    assert terms["total"] == pytest.approx(3.0 * terms["content"] + 0.5 * terms["style"] + 1e4 * terms["tv"], rel=1e-5)


def test_frames_carry_the_weighted_terms_that_add_up_to_j(content_path, style_path, model):
    """Every face shows the frame's terms as they are: each names itself and its weight, and they add up to J
    (the style strength scales the style and smoothing weights; a term weighted 0 is left out)."""
    cfg = StyleConfig(size=64, steps=1, content_weight=3.0, style_weight=0.5, tv_weight=1e4, style_strength=7.5)
    frame = next(stylize(content_path, style_path, cfg, model=model))
    assert [(t.name, t.label) for t in frame.terms] == [
        ("content", "α·content"),
        ("style", "β·style"),
        ("tv", "smoothness (TV)"),
    ]
    assert [t.weight for t in frame.terms] == pytest.approx([3.0, 5.0, 1e5])
    assert all(t.value == frame.losses[t.name] for t in frame.terms)
    assert sum(t.weighted for t in frame.terms) == pytest.approx(frame.total, rel=1e-5)
    without_tv = next(stylize(content_path, style_path, cfg.replace(tv_weight=0), model=model))
    assert [t.name for t in without_tv.terms] == ["content", "style"] and "tv" not in without_tv.losses


def test_a_prepared_run_is_the_same_run(content_path, style_path, model):
    """prepare() checks and loads once; stylize() of it gives the same picture as stylize() of the files."""
    prepared = engine.prepare(content_path, style_path, size=48, steps=3)
    assert prepared.config.size == 48 and prepared.inputs.content.size != (48, 36)  # loaded, not resized yet
    direct = list(stylize(content_path, style_path, model=model, size=48, steps=3))[-1]
    again = list(stylize(prepared, model=model))[-1]
    assert again.image.tobytes() == direct.image.tobytes() and again.losses == direct.losses
    with pytest.raises(TypeError, match="pass it alone"):
        stylize(prepared, style_path)


def test_closing_after_first_frame_stops_the_work(content_path, style_path, model):
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        gen = stylize(content_path, style_path, model=model, size=48, steps=50, preview_every=5)
        first = next(gen)
        assert first.step == 0
        after_first = len(calls)
        assert after_first == 3  # content target, style target, and the step-0 forward
        gen.close()
        assert len(calls) == after_first
        with pytest.raises(StopIteration):
            next(gen)
        assert len(calls) == after_first
    finally:
        handle.remove()


def test_seeded_noise_runs_are_reproducible_on_cpu(content_path, style_path, model):
    kw = {"size": 32, "steps": 3, "init": "noise", "seed": 7, "model": model}
    a = run(content_path, style_path, **kw).image
    b = run(content_path, style_path, **kw).image
    c = run(content_path, style_path, **{**kw, "seed": 8}).image
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_tv_weight_adds_a_tv_term(content_path, style_path, model):
    frame = run(content_path, style_path, size=32, steps=2, tv_weight=10.0, model=model)
    assert frame.losses["tv"] > 0


def test_non_finite_cost_stops_with_a_clear_error(content_path, style_path, model, monkeypatch):
    real = engine.losses.style_cost
    calls = {"n": 0}

    def style_cost_turning_nan(*args):
        calls["n"] += 1
        value = real(*args)
        return value * float("nan") if calls["n"] > 4 else value

    monkeypatch.setattr(engine.losses, "style_cost", style_cost_turning_nan)
    frames = []
    with pytest.raises(NonFiniteLossError, match="NaN or infinite") as info:
        for f in stylize(content_path, style_path, model=model, size=32, steps=20, preview_every=2):
            frames.append(f)
    assert frames, "the good frames before the failure were streamed"
    assert info.value.last_frame is frames[-1]
    assert all(np.isfinite(v) for f in frames for v in f.losses.values())


def test_inputs_and_settings_validated_before_any_work(content_path, tmp_path):
    with pytest.raises(ConfigError, match="size"):
        next(stylize(tmp_path / "missing.png", content_path, size=0))
    # At the call itself, not at the first next(), and a misspelt name is named as a setting.
    with pytest.raises(ConfigError, match=r"unknown setting.*style_wieght"):
        stylize(content_path, content_path, style_wieght=3)
    with pytest.raises(TypeError, match="config: expected a StyleConfig, got dict"):
        stylize(content_path, content_path, {"size": 64})
    with pytest.raises(ImageError, match="content image: file not found"):
        next(stylize(tmp_path / "missing.png", content_path, size=32))
    bad = tmp_path / "style.png"
    bad.write_text("hello")
    with pytest.raises(ImageError, match="style image: not an image"):
        next(stylize(content_path, bad, size=32))


def test_accepts_pil_and_numpy_inputs(model):
    from tests.conftest import make_content, make_style

    frame = run(make_content(), np.asarray(make_style()), size=32, steps=1, model=model)
    assert frame.image.size == (32, 24)


def test_a_tiny_picture_is_refused_and_a_small_photo_is_enlarged_with_a_note(tmp_path, style_path):
    """A 1x1 photo was accepted and silently blown up to the output: now each side must be MIN_INPUT_SIDE px,
    and a photo much smaller than the output is enlarged with a note the faces show."""
    from PIL import Image

    from style_transfer.limits import MIN_INPUT_SIDE, UPSCALE_NOTE_FACTOR

    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 120, 40)).save(dot)
    with pytest.raises(
        ImageError, match=rf"^content image: too small \(1x1 px; each side must be at least {MIN_INPUT_SIDE}"
    ):
        engine.prepare(dot, style_path, size=64)
    with pytest.raises(ImageError, match=r"^style image: too small"):
        engine.prepare(style_path, dot, size=64)
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(small)
    assert engine.prepare(small, style_path, size=round(40 * UPSCALE_NOTE_FACTOR) - 1).notes == ()
    (note,) = engine.prepare(small, style_path, size=256).notes
    assert "(40x30 px) was enlarged 6.4x to the 256 px output" in note


@pytest.mark.parametrize("style_scale", [1.0, 1.5])
def test_a_fitted_run_sends_small_images_and_paints_the_same_picture(content_path, style_path, model, style_scale):
    """A run handed to another process (the Space's GPU worker) carries images no larger than it uses, and paints
    the same picture as with the full images."""
    prepared = engine.prepare(content_path, style_path, size=32, steps=2, style_scale=style_scale)
    fitted = prepared.fitted()
    assert max(fitted.inputs.content.size) == 32 < max(prepared.inputs.content.size)
    assert max(fitted.inputs.styles[0].size) == round(32 * style_scale) < max(prepared.inputs.styles[0].size)
    full, small = (list(stylize(p, model=model))[-1] for p in (prepared, fitted))
    assert small.image.tobytes() == full.image.tobytes() and small.losses == full.losses
