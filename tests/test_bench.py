"""The benchmark harness (bench/): the judge agrees with the engine, the naive loop works, the harness runs end to end.

Small sizes and few steps only; nothing here asserts a timing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import peers, score
from bench.inputs import prepare
from bench.naive import build_naive_vgg, naive_stylize
from bench.run import main, parse_variant, snapshot_steps
from bench.score import Scorer
from style_transfer.config import StyleConfig
from style_transfer.engine import stylize
from style_transfer.images import load_image, pil_to_tensor, tensor_to_pil

REPO_ROOT = Path(__file__).resolve().parent.parent
# The judge's objective, spelled out for the engine (independent of StyleConfig's current defaults).
JUDGE_CFG = {
    "content_layer": score.CONTENT_LAYER,
    "style_layers": score.STYLE_LAYERS,
    "style_layer_weights": score.STYLE_LAYER_WEIGHTS,
    "content_weight": score.ALPHA,
    "style_weight": score.BETA,
    "tv_weight": 0.0,
    "weights": "caffe",
}
# Compare with the engine in fp32 (its default precision may be bf16 autocast where the CPU/GPU has it).
ENGINE_FP32 = {"precision": "fp32"} if any(f.name == "precision" for f in dataclasses.fields(StyleConfig)) else {}


@pytest.fixture(scope="module")
def inputs48(content_path, style_path, tmp_path_factory):
    prepared, _ = prepare(tmp_path_factory.mktemp("bench_inputs"), [48], str(content_path), str(style_path))
    return prepared[48]


@pytest.fixture(scope="module")
def scorer48(inputs48):
    return Scorer(inputs48.content, inputs48.style, "cpu")


def test_scorer_constants_are_frozen():
    assert score.CONTENT_LAYER == "block5_conv2"
    assert score.STYLE_LAYERS == ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
    assert score.STYLE_LAYER_WEIGHTS == (0.2,) * 5
    assert (score.ALPHA, score.BETA) == (1e4, 1.0)
    assert score.scorer_matches(StyleConfig(**JUDGE_CFG).validate())
    assert not score.scorer_matches(StyleConfig(**{**JUDGE_CFG, "style_weight": 2.0}).validate())


def test_scorer_agrees_with_the_engine_loss(inputs48, scorer48, model, tmp_path):
    settings = {"size": 48, "steps": 6, "preview_every": 6, **JUDGE_CFG, **ENGINE_FP32}
    run = stylize(inputs48.content, inputs48.style, model=model, **settings)
    frames = list(run)
    first, last = frames[0], frames[-1]
    assert first.step == 0 and last.step == 6
    # Step 0 is the content image itself (already uint8): the judge's J of the content equals the engine's.
    init = scorer48(inputs48.content)
    assert init["content"] == 0.0
    assert init["total"] == pytest.approx(first.losses["total"], rel=1e-5)
    # The final frame, saved as PNG and read back: equal up to the 8-bit rounding of the saved image.
    path = tmp_path / "final.png"
    last.image.save(path)
    judged = scorer48(path)
    assert judged["total"] == pytest.approx(last.losses["total"], rel=5e-3)
    assert judged["style"] == pytest.approx(last.losses["style"], rel=5e-3)
    assert judged["content"] == pytest.approx(last.losses["content"], rel=2e-2)
    assert judged["total"] < 0.9 * init["total"]
    # PIL images are accepted too, and give the same number as the PNG.
    assert scorer48(last.image)["total"] == pytest.approx(judged["total"], rel=1e-9)


def test_scorer_refuses_an_image_of_another_size(scorer48, content_path):
    with pytest.raises(ValueError, match="content is 48x36"):
        scorer48(content_path)


def test_naive_loop_is_naive_and_lowers_the_judges_cost(inputs48, scorer48):
    vgg, relu_index, _ = build_naive_vgg("cpu")
    assert len(vgg) == 37 and isinstance(vgg[-1], torch.nn.MaxPool2d)  # the full features, through pool5
    assert all(p.requires_grad for p in vgg.parameters())  # weights not frozen
    assert relu_index["block5_conv2"] == 31
    content = pil_to_tensor(load_image(inputs48.content))
    style = pil_to_tensor(load_image(inputs48.style))
    res = naive_stylize(content, style, steps=6, snapshot_steps=frozenset({0, 3, 6}))
    assert len(res["losses"]) == 6 and res["losses"][-1] < res["losses"][0]
    assert [s[0] for s in res["snapshots"]] == [0, 3, 6]
    assert res["t_loop_end"] >= res["t_loop_start"]
    judged = [scorer48(tensor_to_pil(img))["total"] for _, _, img in res["snapshots"]]
    assert judged[0] == pytest.approx(scorer48(inputs48.content)["total"], rel=1e-6)
    assert judged[2] < judged[1] < judged[0]
    # Its in-loop loss (computed before each update) is the judge's objective, even with a non-square style image.
    assert res["losses"][0] == pytest.approx(judged[0], rel=1e-3)


def test_variant_specs_parse():
    assert parse_variant("naive").kind == "naive"
    v = parse_variant("ours:precision=bf16,steps_x=3,flag=true", {"precision": "fp32", "other": 1.5})
    assert v.kind == "ours" and v.name == "ours:precision=bf16,steps_x=3,flag=true"
    assert v.options == {"precision": "bf16", "steps_x": 3, "flag": True, "other": 1.5}
    assert parse_variant("ours:style_layers=conv1_1,conv2_1").options == {"style_layers": "conv1_1,conv2_1"}
    p = parse_variant("pastiche:optimizer=adam")
    assert (p.kind, p.preset, p.options) == ("pastiche", "pastiche", {"optimizer": "adam"})
    assert parse_variant("pastiche-seedloss").preset == "pastiche-seedloss"
    with pytest.raises(Exception, match="unknown variant"):
        parse_variant("fast")
    assert snapshot_steps(100, 10) == list(range(0, 101, 10))
    assert snapshot_steps(7, 2) == [0, 3, 6, 7]


@pytest.mark.skipif(not peers.available(), reason="pastiche is not installed")
def test_pastiche_seedloss_preset_optimises_the_judges_objective(inputs48, scorer48, tmp_path):
    """pastiche's own printed loss of its starting image (the content) equals the judge's J of the content."""
    args = peers.pastiche_args(
        "pastiche-seedloss", {}, inputs48.content, inputs48.style, tmp_path / "o.png", 48, 0, "cpu"
    )
    args.remove("--no-verbose")
    out = subprocess.run([sys.executable, "-m", "pastiche", *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "size: 48x36" in out.stdout and "style_sizes[0]: 48x48" in out.stdout  # no resizing by pastiche
    loss = float(re.search(r"^0\s+\S+\s+(\S+)$", out.stdout, re.M).group(1))
    assert loss == pytest.approx(scorer48(inputs48.content)["total"], rel=1e-5)


def test_harness_runs_end_to_end(content_path, style_path, tmp_path):
    out = tmp_path / "results"
    argv = ["--device", "cpu", "--sizes", "32", "--steps", "2", "--repeats", "1", "--no-pastiche"]
    argv += ["--curve-points", "2", "--content", str(content_path), "--style", str(style_path), "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    for key in ("meta", "init_scores", "runs", "curves", "summary", "ratios", "time_to_quality", "cold_start"):
        assert key in results
    meta = results["meta"]
    assert meta["device"] == "cpu" and meta["sizes"] == [32] and meta["steps"] == 2
    assert meta["scorer"]["alpha"] == 1e4 and len(meta["scorer"]["weights_sha256"]) == 64
    assert {r["variant"] for r in results["runs"]} == {"naive", "ours"}
    assert any("pastiche" in note for note in results["notes"])
    for run in results["runs"]:
        assert run["ok"], run.get("error")
        assert run["s_per_step"] > 0 and run["wall_s"] > run["loop_s"] > 0
        assert run["peak_mb"] > 50 and run["score"]["total"] > 0
        assert Path(run["output"]).is_file()
    ours = next(r for r in results["runs"] if r["variant"] == "ours")
    assert ours["objective_matches_scorer"] in (True, False)
    assert ours["config"]["size"] == 32 and ours["config"]["steps"] == 2
    rows = {r["variant"]: r for r in results["summary"]}
    assert rows["ours"]["s_per_step_median"] > 0 and rows["naive"]["score_median"] > 0
    (ratio,) = results["ratios"]
    assert (ratio["ours"], ratio["vs"]) == ("ours", "naive") and ratio["s_per_step_ratio"] > 0
    for curve in results["curves"]:
        assert [s["step"] for s in curve["snapshots"]] == [0, 1, 2]
        assert all(s["score"] > 0 for s in curve["snapshots"])
    with open(out / "runs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4  # 2 timed runs + 2 curve runs
    assert (out / "summary.csv").is_file() and (out / "report.txt").is_file()


# ---------------------------------------------------------------- the quality harness (bench/quality.py)


def test_quality_pairs_cover_enough_photos_and_styles():
    from bench import quality

    assert len(quality.PAIRS) >= 8
    assert len({p for p, _ in quality.PAIRS}) >= 6 and len({s for _, s in quality.PAIRS}) >= 6
    pairs = quality.resolve_pairs()  # every file exists
    assert [p.index for p in quality.select_pairs(pairs, ["2", f"{pairs[0].name},2"])] == [2, 1]
    with pytest.raises(SystemExit, match="unknown pair"):
        quality.select_pairs(pairs, ["no-such-pair"])
    with pytest.raises(SystemExit, match=r"pair 2: examples/styles/missing\.jpg not found"):
        quality.resolve_pairs((quality.PAIRS[0], ("cat.jpg", "missing.jpg")))


def test_quality_figures():
    from bench import quality

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:96] / 64.0
    smooth = np.stack([x / 1.5, y, 0.5 + 0 * x], axis=-1)
    photo = Image.fromarray((smooth * 255).astype(np.uint8))
    noisy = Image.fromarray((np.clip(smooth + rng.normal(0, 0.1, smooth.shape), 0, 1) * 255).astype(np.uint8))
    flat = Image.new("RGB", (96, 64), (128, 128, 128))
    assert quality.laplacian_energy(quality.luminance(flat)) == 0.0
    # The photo itself is at most 1 (its own energy is one of the two references); speckle is far above.
    assert quality.noise_figure(photo, photo, flat) == pytest.approx(1.0)
    assert quality.noise_figure(noisy, photo, photo) > 10
    lum = quality.luminance(photo)
    assert quality.ssim(lum, lum) == pytest.approx(1.0)
    assert quality.ssim(lum, 1.0 - lum) < 0.5
    assert quality.structure_figure(photo, photo) == pytest.approx(1.0)
    assert 0 < quality.structure_figure(noisy, photo) < 1.0


def test_quality_smoke_runs_end_to_end(tmp_path):
    """``python -m bench.quality --smoke``: 2 pairs, 48 px, 3 steps, no pastiche (a few seconds per run)."""
    from bench import quality

    out = tmp_path / "quality"
    threads = torch.get_num_threads()
    assert quality.main(["--smoke", "--variant", "ours:tv_weight=10", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # the harness's 1 thread is not left on the caller
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["sizes"] == [48] and results["meta"]["steps"] == 3 and not results["meta"]["pastiche"]
    records = results["records"]
    assert len(records) == 2 and {r["variant"] for r in records} == {"ours:tv_weight=10"}
    assert all(r["config"]["tv_weight"] == 10 for r in records)
    for rec in records:
        assert rec["ok"], rec.get("error")
        assert rec["noise"] > 0 and rec["style_distance"] > 0 and 0 < rec["structure"] <= 1 and rec["seconds"] > 0
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    report = (out / "report.md").read_text()
    assert "| ours:tv_weight=10 |" in report and "Medians" in report and "Incomplete" not in report
    sheet = Image.open(out / "contact_48.png")
    assert sheet.width > 3 * quality.THUMB and sheet.height > 2 * quality.THUMB
    (out / "report.md").unlink()
    assert quality.main(["--report-from", str(out / "results.json")]) == 0
    assert (out / "report.md").read_text() == report


def test_stroke_scale_figure_follows_the_texture_relative_to_the_picture():
    """``bench.scale``'s figure (cycles per picture width of the painted texture): the same stripes drawn at two
    picture sizes give the same figure; stripes twice as fine give about twice it."""
    from bench.scale import stroke_cycles

    def painted(width: int, period: float) -> tuple[Image.Image, Image.Image]:
        x = np.arange(width)[None, :].repeat(width * 3 // 4, 0)
        photo = np.full((width * 3 // 4, width, 3), 128, np.uint8)
        stripes = (128 + 60 * np.sin(2 * np.pi * x / period))[..., None].repeat(3, 2).astype(np.uint8)
        return Image.fromarray(stripes), Image.fromarray(photo)

    small = stroke_cycles(*painted(128, 8))  # 16 stripes across the picture
    large = stroke_cycles(*painted(512, 32))  # the same 16, at 4x the size
    finer = stroke_cycles(*painted(512, 16))  # 32 across
    assert small == pytest.approx(16, rel=0.15) and large == pytest.approx(16, rel=0.15)
    assert finer == pytest.approx(2 * large, rel=0.15)
