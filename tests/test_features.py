"""Beyond the seed: several styles, colour preservation, init options, L-BFGS, coarse-to-fine, masks, formats, presets.

Each test would fail if its feature were missing or wrong.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.quality import laplacian_energy, luminance
from style_transfer import ConfigError, StyleConfig, colour, run, stylize
from style_transfer.config import PRESETS, preset
from style_transfer.engine import Objective, prepare, style_side
from style_transfer.images import ImageError, pil_to_tensor
from style_transfer.model import load_model
from style_transfer.output import encode_image, read_settings, save_image
from tests.conftest import make_content, make_style


def _ycc(img: Image.Image) -> np.ndarray:
    return colour.rgb_to_ycc(pil_to_tensor(img))[0].numpy()


def test_blend_weights_one_zero_equal_the_single_style_targets(model):
    cfg = StyleConfig(size=32).validate()
    content = pil_to_tensor(make_content(32, 24))
    a = pil_to_tensor(make_style(32, 32))
    b = pil_to_tensor(make_content(32, 32))
    single = Objective(model, content, [a], cfg)
    blended = Objective(model, content, [a, b], cfg, blend=[1.0, 0.0])
    half = Objective(model, content, [a, b], cfg, blend=[0.5, 0.5])
    other = Objective(model, content, [b], cfg)
    for s, bl, h, o in zip(
        single.style_targets, blended.style_targets, half.style_targets, other.style_targets, strict=True
    ):
        assert torch.allclose(s, bl)
        assert torch.allclose(h, 0.5 * s + 0.5 * o, rtol=1e-5, atol=1e-3)


def test_several_styles_through_stylize(content_path, style_path, model):
    frame = run(
        content_path, [style_path, make_content(40, 40)], model=model, size=32, steps=3, style_blend_weights=(3, 1)
    )
    assert frame.image.size == (32, 24)
    with pytest.raises(ValueError, match="style_blend_weights: 1 weights given for 2 style images"):
        run(content_path, [style_path, style_path], model=model, size=32, steps=1, style_blend_weights=(1,))


def test_luminance_mode_keeps_the_content_chroma(content_path, style_path, model):
    plain = run(content_path, style_path, model=model, size=48, steps=15)
    kept = run(content_path, style_path, model=model, size=48, steps=15, preserve_colors="luminance")
    content = _ycc(Image.open(content_path).convert("RGB").resize(kept.image.size, Image.Resampling.LANCZOS))
    chroma_kept = np.abs(_ycc(kept.image)[1:] - content[1:]).mean()
    chroma_plain = np.abs(_ycc(plain.image)[1:] - content[1:]).mean()
    assert chroma_kept < 0.02 < chroma_plain  # kept: within rounding/clipping; plain: the style's colours
    assert np.abs(_ycc(kept.image)[0] - _ycc(plain.image)[0]).mean() < 0.02  # same luminance as the plain run


def test_histogram_mode_gives_the_style_the_content_colour_statistics():
    # Smooth random colours with different means and correlations, well inside [0, 1] (no clipping).
    g = torch.Generator().manual_seed(0)
    mix_c = torch.tensor([[1.0, 0.5, 0.0], [0.2, 1.0, 0.3], [0.0, 0.4, 1.0]])
    mix_s = torch.tensor([[1.0, -0.6, 0.2], [0.0, 0.5, 0.0], [0.3, 0.0, 0.8]])
    content = torch.tensor([0.4, 0.5, 0.6])[:, None] + 0.06 * mix_c @ torch.randn(3, 48 * 64, generator=g)
    style = torch.tensor([0.6, 0.3, 0.5])[:, None] + 0.06 * mix_s @ torch.randn(3, 32 * 32, generator=g)
    content, style = content.reshape(1, 3, 48, 64), style.reshape(1, 3, 32, 32)
    matched = colour.match_colour_statistics(style, content)
    flat = lambda t: t.reshape(3, -1).double()  # noqa: E731
    assert torch.allclose(flat(matched).mean(1), flat(content).mean(1), atol=0.02)
    rel = lambda a, b: float((torch.cov(flat(a)) - torch.cov(flat(b))).norm() / torch.cov(flat(b)).norm())  # noqa: E731
    assert rel(matched, content) < 0.05 < 0.3 < rel(style, content)


def test_init_options(content_path, style_path, model):
    first = {
        init: next(stylize(content_path, style_path, model=model, size=32, steps=2, init=init)).image
        for init in ("content", "noise", "gray", "style-mean")
    }
    gray = np.asarray(first["gray"], dtype=float)
    assert abs(gray.mean() - 127.5) < 4 and gray.std() > 2  # grey with a little seeded noise
    style_mean = np.asarray(Image.open(style_path).convert("RGB"), dtype=float).reshape(-1, 3).mean(0)
    assert np.allclose(np.asarray(first["style-mean"], dtype=float).reshape(-1, 3).mean(0), style_mean, atol=6)
    noise = np.asarray(first["noise"], dtype=float)
    assert noise.std() > 60  # uniform noise
    content = np.asarray(Image.open(content_path).convert("RGB").resize((32, 24), Image.Resampling.LANCZOS))
    assert np.abs(np.asarray(first["content"], dtype=float) - content).mean() < 1.0


def test_style_scale_and_pooling(content_path, style_path):
    prepared = prepare(content_path, style_path, size=64, style_scale=0.5)
    assert style_side(64, prepared.config, max(prepared.inputs.styles[0].size)) == 32
    avg = load_model("caffe", "cpu", "avg")
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in avg.features)
    assert not any(isinstance(m, torch.nn.AvgPool2d) for m in load_model("caffe", "cpu", "max").features)


def test_lbfgs_does_not_jump_out_of_the_picture():
    """temple x great_wave with average pooling: L-BFGS's second step moved pixels by ~7e6, every pixel saturated,
    J(project(x)) lost its gradient and the run stayed on a picture of black, white and primary blocks."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    frames = list(
        stylize(
            examples / "content" / "temple.jpg",
            examples / "styles" / "great_wave.jpg",
            size=96,
            steps=8,
            preview_every=1,
            optimizer="lbfgs",
            pooling="avg",
        )
    )
    costs = [f.losses["total"] for f in frames]
    assert all(later < costs[0] for later in costs[2:]), costs  # it descends instead of jumping up and stalling
    pixels = np.asarray(frames[-1].image)
    assert ((pixels == 0) | (pixels == 255)).mean() < 0.2  # not a saturated picture


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LAKE, STARRY = EXAMPLES / "content" / "lake_boats.jpg", EXAMPLES / "styles" / "starry_night.jpg"


def _sharpness(image: Image.Image) -> float:
    """The quality harness's Laplacian energy: high for strokes and edges, low for a blurred picture."""
    return laplacian_energy(luminance(image))


def _final(cfg: StyleConfig) -> Image.Image:
    return run(LAKE, STARRY, cfg).image


def test_average_pooling_is_as_crisp_as_max_pooling():
    """Average pooling's costs are ~35x smaller than max pooling's, so at the same smoothing weight the smoothing
    won and the picture came out blurred (64 px: sharpness 3% of max pooling's). Its smoothing is weighted to keep
    the balance (config.AVG_POOLING_TV_SCALE); now 55%."""
    cfg = StyleConfig(size=64, steps=40, preview_every=40)
    assert cfg.replace(pooling="avg").effective_tv_weight == pytest.approx(cfg.tv_weight / 35)
    assert _sharpness(_final(cfg.replace(pooling="avg"))) > 0.3 * _sharpness(_final(cfg))


def test_a_low_style_strength_is_not_blurred():
    """The strength scales the smoothing with the style: with the smoothing fixed, strength 0 left it dominant and
    the picture blurred (64 px: sharpness 5% of strength 5's); now 100%."""
    low, default = (StyleConfig(style_strength=s, size=64, steps=40).validate() for s in (0, 5))
    assert low.effective_tv_weight == pytest.approx(default.effective_tv_weight / 100)
    assert low.effective_style_weight == pytest.approx(default.effective_style_weight / 100)
    assert _sharpness(_final(low)) > 0.5 * _sharpness(_final(default))


def test_lbfgs_lowers_the_cost_faster_per_step_than_adam(content_path, style_path, model):
    kw = {"model": model, "size": 32, "steps": 12, "preview_every": 4, "precision": "fp32"}
    adam = [f.losses["total"] for f in stylize(content_path, style_path, optimizer="adam", **kw)]
    lbfgs = [f.losses["total"] for f in stylize(content_path, style_path, optimizer="lbfgs", **kw)]
    assert len(lbfgs) == len(adam) == 4  # previews at 0, 4, 8 and the final frame: it streams too
    assert lbfgs[0] == pytest.approx(adam[0])
    assert lbfgs[-1] < adam[-1], (lbfgs, adam)


def test_coarse_to_fine_streams_increasing_sizes_and_ends_at_the_requested_size(content_path, style_path, model):
    frames = list(stylize(content_path, style_path, model=model, size=128, steps=9, scales=3, preview_every=100))
    assert [max(f.image.size) for f in frames] == [32, 64, 128, 128]
    assert [f.scale for f in frames] == [0, 1, 2, 2] and all(f.num_scales == 3 for f in frames)
    assert [f.step for f in frames] == [0, 2, 4, 9] and frames[-1].image.size == (128, 96)
    # too small for three scales of at least 32 px: two are used
    # The last scale gets half the steps (it repairs the upscaling blur); the earlier ones share the rest.
    assert StyleConfig(size=64, scales=3, steps=9).validate().scale_sizes() == [(32, 4), (64, 5)]
    assert StyleConfig(size=1024, scales=0, steps=300).validate().scale_sizes() == [(512, 150), (1024, 150)]
    assert StyleConfig(size=2048, scales=0, steps=300).validate().scale_sizes() == [
        (512, 75),
        (1024, 75),
        (2048, 150),
    ]
    assert StyleConfig(size=512, scales=0, steps=300).validate().scale_sizes() == [(512, 300)]
    assert StyleConfig(size=512, scales=4, steps=301).validate().scale_sizes() == [
        (64, 50),
        (128, 50),
        (256, 50),
        (512, 151),
    ]


def test_a_black_mask_is_refused_and_a_full_mask_stylises(content_path, style_path, model):
    kw = {"model": model, "size": 48, "steps": 10}
    content = np.asarray(
        Image.open(content_path).convert("RGB").resize((48, 36), Image.Resampling.LANCZOS), dtype=float
    )
    # A black mask paints nothing: a whole run for the unchanged photo is a mistake (an inverted or wrong file).
    with pytest.raises(ImageError, match="black everywhere"):
        stylize(content_path, style_path, mask=Image.new("L", (64, 48), 0), **kw)
    full = run(content_path, style_path, mask=Image.new("L", (64, 48), 255), **kw)
    unmasked = run(content_path, style_path, **kw)
    assert np.abs(np.asarray(full.image, dtype=float) - content).mean() > 3
    assert np.abs(np.asarray(full.image, dtype=float) - np.asarray(unmasked.image, dtype=float)).mean() < 1.0

    half = Image.new("L", (64, 48), 0)
    half.paste(255, (32, 0, 64, 48))  # paint the right half only
    out = np.asarray(run(content_path, style_path, mask=half, **kw).image, dtype=float)
    assert np.abs(out[:, :20] - content[:, :20]).mean() < 0.5  # left: the photo
    assert np.abs(out[:, 28:] - content[:, 28:]).mean() > 3  # right: painted

    layer = Image.new("RGBA", (64, 48), (0, 0, 0, 0))  # the same region drawn on a transparent layer
    layer.paste((255, 255, 255, 255), (32, 0, 64, 48))
    drawn = np.asarray(run(content_path, style_path, mask=layer, **kw).image, dtype=float)
    assert np.array_equal(drawn, out)


def test_background_style_paints_the_unmasked_region(content_path, style_path, model):
    content = np.asarray(
        Image.open(content_path).convert("RGB").resize((48, 36), Image.Resampling.LANCZOS), dtype=float
    )
    out = run(
        content_path,
        style_path,
        model=model,
        size=48,
        steps=10,
        mask=Image.new("L", (64, 48), 0),
        background_style=make_style(32, 32).transpose(Image.Transpose.ROTATE_90),
    )
    assert np.abs(np.asarray(out.image, dtype=float) - content).mean() > 3


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_formats_embed_the_settings(fmt, tmp_path):
    settings = StyleConfig(size=64, seed=3).validate().to_dict()
    data = encode_image(make_content(), fmt, settings)
    with Image.open(__import__("io").BytesIO(data)) as img:
        assert img.format == fmt.upper() and img.size == (64, 48)
    assert read_settings(data) == settings
    path = tmp_path / f"out.{fmt}"
    save_image(make_content(), path, fmt, settings)
    assert read_settings(path)["seed"] == 3


def test_presets():
    assert set(PRESETS) == {"subtle", "balanced", "bold", "high-res", "seed"}
    for name in PRESETS:
        StyleConfig(**preset(name)).validate()
    assert StyleConfig(**preset("high-res")).validate().scale_sizes()[-1][0] == 1024
    # The seed preset is the seed's run, whatever the defaults become: one scale, no TV, its Adam and weights.
    seed = StyleConfig(**preset("seed")).validate()
    assert seed.scale_sizes() == [(512, 1000)]
    assert (seed.learning_rate, seed.beta1, seed.eps) == (0.02, 0.99, 0.1)
    assert (seed.content_weight, seed.style_weight, seed.tv_weight) == (1e4, 1e-2, 0.0)
    assert (seed.content_layer, seed.layer_weights) == ("block5_conv2", (0.2,) * 5)
    with pytest.raises(ConfigError, match="preset: 'wild' is not one of subtle, balanced, bold, high-res, seed"):
        preset("wild")


@pytest.mark.parametrize("shape", [(48, 64), (37, 53), (17, 90)])
def test_layer_masks_match_the_activation_sizes(model, shape):
    cfg = StyleConfig(size=64).validate()
    content = torch.rand(1, 3, *shape)
    objective = Objective(model, content, [content], cfg, mask=torch.ones(1, 1, *shape))
    acts = model(content, cfg.style_layers)
    assert [m.shape[-2:] for m in objective.masks] == [acts[name].shape[-2:] for name in cfg.style_layers]
