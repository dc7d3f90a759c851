"""Property-based tests: the image loader and the settings validation answer any input with a result or their own
error (``ImageError`` / ``ConfigError`` / ``gr.Error``), never with another exception.

Derandomised (the same examples on every run) and small, so they are deterministic and fast in CI.
"""

from __future__ import annotations

import io
import math

import gradio as gr
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from space import params
from space.request import engine_settings
from style_transfer.config import ConfigError, StyleConfig, field_specs
from style_transfer.images import ImageError, load_image, resize_longest

# Every setting of the Space's endpoint (the parameters that are not images or the mask), in API order.
SETTINGS = tuple(p.name for p in params.PARAMS if p.kind == "setting")
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _sample(mode: str, size=(24, 16)) -> Image.Image:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return rgb.convert(mode)


# One small valid file per format the loader reads (and per interesting mode); fuzzing mutates these.
SEEDS = {
    "png_rgb": _encode(_sample("RGB"), "PNG"),
    "png_rgba": _encode(_sample("RGBA"), "PNG"),
    "png_p": _encode(_sample("P"), "PNG"),
    "png_16": _encode(Image.fromarray(np.arange(384, dtype=np.uint16).reshape(16, 24) * 170), "PNG"),
    "jpeg": _encode(_sample("RGB"), "JPEG"),
    "jpeg_cmyk": _encode(_sample("CMYK"), "JPEG"),
    "gif": _encode(_sample("P"), "GIF"),
    "webp": _encode(_sample("RGB"), "WEBP"),
    "bmp": _encode(_sample("RGB"), "BMP"),
    "tiff": _encode(_sample("RGB"), "TIFF"),
    "tiff_f": _encode(Image.fromarray(np.linspace(0, 1, 384, dtype=np.float32).reshape(16, 24)), "TIFF"),
    "ico": _encode(_sample("RGB", (16, 16)), "ICO"),
}


def _check(result: Image.Image) -> None:
    assert isinstance(result, Image.Image) and result.mode == "RGB"
    assert result.width >= 1 and result.height >= 1


def _load_or_image_error(source) -> Image.Image | None:
    try:
        result = load_image(source)
    except ImageError as exc:
        assert str(exc).startswith("image: ")
        return None
    _check(result)
    return result


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    _load_or_image_error(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the damaged metadata it meets
@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_files(seed, edits, cut):
    """Valid files with bytes overwritten and/or cut short: a picture or a clear error."""
    data = bytearray(SEEDS[seed])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _load_or_image_error(bytes(data))


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)))
def test_seed_files_load_at_their_size(seed):
    with Image.open(io.BytesIO(SEEDS[seed])) as img:
        size = img.size
    result = load_image(SEEDS[seed])
    _check(result)
    assert result.size == size


@FUZZ
@given(
    mode=st.sampled_from(["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"]),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
)
def test_pil_images_of_any_mode(mode, width, height):
    result = load_image(_sample("RGB", (width, height)).convert(mode))
    _check(result)
    assert result.size == (width, height)


@FUZZ
@given(orientation=st.integers(0, 12), width=st.integers(1, 30), height=st.integers(1, 30))
def test_any_exif_orientation(orientation, width, height):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    _sample("RGB", (width, height)).save(buf, format="JPEG", exif=exif.tobytes())
    result = load_image(buf.getvalue())
    _check(result)
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    assert result.size == upright


_dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64, bool])
_shapes = st.one_of(
    st.tuples(st.integers(0, 12), st.integers(0, 12)),
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 5)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.integers(0, 12)),
)


@FUZZ
@given(dtype=_dtypes, shape=_shapes, data=st.data())
def test_numpy_arrays(dtype, shape, data):
    values = st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype is np.float16 else 64)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = st.integers(int(info.min), int(info.max))
    elif dtype is bool:
        values = st.booleans()
    fill = data.draw(st.lists(values, min_size=1, max_size=4))
    with np.errstate(over="ignore"):  # large floats into float16 become inf, which is one of the cases
        array = np.resize(np.array(fill, dtype=dtype), shape) if all(shape) else np.zeros(shape, dtype=dtype)
    result = _load_or_image_error(array)
    if result is not None:
        assert result.size == (shape[1], shape[0])


@FUZZ
@given(width=st.integers(1, 8000), height=st.integers(1, 8000), size=st.integers(16, 2048))
def test_resize_longest(width, height, size):
    scale = size / max(width, height)
    expected = (max(1, round(width * scale)), max(1, round(height * scale)))
    assert max(expected) == size and min(expected) >= 1
    if width * height <= 4_000_000:  # only build images that are cheap to resize
        assert resize_longest(Image.new("L", (width, height)), size).size == expected


# --- Settings ----------------------------------------------------------------------------------------------------
_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1", "1e3", "nan", "inf", "-0", "0x10", "256", "content", "noise", "conv4_2", " 7 "]),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=3)), max_size=3),
)
NUMERIC = [f for f in field_specs() if f.metadata["min"] is not None]


@FUZZ
@given(field=st.sampled_from(field_specs()), value=_anything)
def test_one_setting_of_any_value(field, value):
    try:
        cfg = StyleConfig().replace(**{field.name: value})
    except ConfigError as exc:
        named = str(exc).split(":")[0].split(",")[0] in {f.name for f in field_specs()}
        # Layer names are checked by layers.canonical_layer, whose message names the layer, not the field.
        assert named or (field.name in ("content_layer", "style_layers") and "VGG-19 layer" in str(exc)), str(exc)
        return
    _check_ranges(cfg)


@FUZZ
@given(st.fixed_dictionaries({f.name: _anything for f in NUMERIC}))
def test_all_numeric_settings_at_once(values):
    try:
        cfg = StyleConfig().replace(**values)
    except ConfigError:
        return
    _check_ranges(cfg)


def _check_ranges(cfg: StyleConfig) -> None:
    for f in NUMERIC:
        value = getattr(cfg, f.name)
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert math.isfinite(value) and f.metadata["min"] <= value <= f.metadata["max"], (f.name, value)
        assert isinstance(value, type(f.default))
    for f in field_specs():
        if f.metadata["choices"]:
            assert getattr(cfg, f.name) in f.metadata["choices"]


@FUZZ
@given(st.tuples(*[_anything for _ in SETTINGS]))
def test_space_settings(values):
    try:
        cfg = StyleConfig().replace(**engine_settings(dict(zip(SETTINGS, values, strict=True))))
    except ConfigError:
        return
    _check_ranges(cfg)  # the style strength is a config field too: in its range like every other


@pytest.fixture(scope="module")
def setting_components():
    import app

    return {name: app.endpoint.components[name] for name in SETTINGS}


@FUZZ
@given(name=st.sampled_from(SETTINGS), payload=_anything)
def test_ui_components_answer_any_payload(setting_components, name, payload):
    """Gradio's own preprocessing of each control (run before our code): a value or a gr.Error naming it."""
    try:
        setting_components[name].preprocess(payload)
    except gr.Error as exc:
        assert exc.message.startswith(f"{name}: ")


def test_fuzz_inputs_are_not_vacuous():
    """The seeds really are readable files, so the mutations start from valid data."""
    for data in SEEDS.values():
        _check(load_image(data))
