"""Tiles: a run under a memory budget too small for the whole picture computes the same objective over tiles, and
ends where the untiled run of the same seed ends, to float error; a budget too small for any tile is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from style_transfer import StyleConfig, memory, stylize, tiling
from style_transfer.config import ConfigError
from style_transfer.engine import Objective
from style_transfer.images import pil_to_tensor
from tests.conftest import make_content, make_style

# Layers to block3 keep the halo small (16 px), so tiny pictures have real halos and interiors; one case below
# takes the default layers (to block5_conv1: an 80 px halo).
SHALLOW = {"style_layers": ("block1_conv1", "block2_conv1", "block3_conv1"), "content_layer": "block3_conv2"}
CONTENT = make_content(128, 112)
STYLES = [make_style(64, 64), make_style(48, 64).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]


def _half_mask(img: Image.Image) -> Image.Image:
    mask = Image.new("L", img.size, 0)
    mask.paste(255, (0, 0, img.width // 2, img.height))
    return mask


def budget_for_tiles(height: int, width: int, cfg: StyleConfig, masked: bool, tiles: int) -> int:
    """A budget under which the planner splits the picture into at least ``tiles`` tiles."""
    budget = memory.plan(height, width, cfg, False, None, masked).bytes
    while True:
        budget *= 0.9
        plan = memory.plan(height, width, cfg, False, budget, masked)
        if plan.rows * plan.cols >= tiles:
            return int(budget)


def _final(content, styles, cfg, model, **kw):
    *_, final = stylize(content, styles, cfg, model=model, **kw)
    return final


CASES = {
    "adam, mask, two styles, background": ({}, True),
    "lbfgs": ({"optimizer": "lbfgs", "steps": 5}, False),
    "coarse-to-fine": ({"scales": 2}, False),
    "colour: histogram": ({"preserve_colors": "histogram"}, False),
}


@pytest.mark.parametrize("case", CASES)
def test_a_tiled_run_ends_where_the_untiled_run_ends(case, model):
    settings, masked = CASES[case]
    cfg = StyleConfig(**{"size": 128, "steps": 6, "scales": 1, "precision": "fp32", **SHALLOW, **settings}).validate()
    kw = {"mask": _half_mask(CONTENT), "background_style": STYLES[1]} if masked else {}
    height, width = 112, 128
    limit = budget_for_tiles(height, width, cfg, masked, tiles=4)
    assert memory.plan(height, width, cfg, False, limit, masked).bytes <= limit
    untiled = _final(CONTENT, STYLES, cfg, model, **kw)
    tiled = _final(CONTENT, STYLES, cfg.replace(memory_limit=str(limit)), model, **kw)
    for name, value in untiled.losses.items():
        assert tiled.losses[name] == pytest.approx(value, rel=1e-4, abs=1e-9), name
    assert _psnr(tiled.image16, untiled.image16) > 60


@pytest.mark.parametrize("sums", ["over the same tiles", "over larger tiles of its own"])
def test_default_layers_tile_with_their_full_halo(sums, model):
    """To block5_conv1 (80 px halos), at least 4 tiles smaller than the picture: the same cost and gradient, whether
    the first pass (the Grams, without gradients) runs over the same tiles or over the plan's larger ones."""
    cfg = StyleConfig(size=224, precision="fp32").validate()
    content = pil_to_tensor(make_content(224, 208))
    styles = [pil_to_tensor(s) for s in STYLES]
    image = _noisy(content)
    plan = memory.plan(208, 224, cfg, False, budget_for_tiles(208, 224, cfg, False, tiles=4), False)
    tiles = memory.tiles(208, 224, cfg, plan.rows, plan.cols)
    assert len(tiles) >= 4 and max(t.pixels for t in tiles) < 208 * 224
    assert plan.sum_rows * plan.sum_cols < len(tiles)  # the budget leaves that pass room for larger tiles
    untiled = image.clone().requires_grad_(True)
    total, _ = Objective(model, content, styles, cfg)(untiled)
    total.backward()
    tiled = image.clone().requires_grad_(True)

    def planner(height, width):
        return memory.tiles(height, width, cfg, plan.rows, plan.cols)

    def own(height, width):
        return memory.tiles(height, width, cfg, plan.sum_rows, plan.sum_cols)

    sum_plan = own if sums == "over larger tiles of its own" else None
    objective = tiling.TiledObjective(model, content, styles, cfg, planner, sum_plan=sum_plan)
    assert len(objective.sum_tiles) == (plan.sum_rows * plan.sum_cols if sum_plan else len(tiles))
    total_tiled, _ = objective.backward(tiled)
    assert float(total_tiled) == pytest.approx(float(total.detach()), rel=1e-5)
    error = (tiled.grad - untiled.grad).norm() / untiled.grad.norm()
    assert float(error) < 1e-5


def test_a_run_whose_first_pass_takes_larger_tiles_ends_where_the_untiled_run_ends(model):
    """A tight budget (10 tiles) leaves the first pass, which holds no activations for a backward, room for fewer,
    larger tiles (less halo to compute); the run still ends where the untiled one does."""
    cfg = StyleConfig(size=160, steps=4, scales=1, precision="fp32", **SHALLOW).validate()
    content = make_content(160, 144)
    pixels = 160 * 144
    state = memory.state_bytes_per_pixel(cfg, False, False, tiled=True) * pixels
    limit = int(state + memory.PASS_BYTES + 0.25 * memory.activation_bytes_per_pixel(False) * pixels)
    plan = memory.plan(144, 160, cfg, False, limit)
    assert plan.bytes <= limit and 1 < plan.sum_rows * plan.sum_cols < plan.rows * plan.cols
    untiled = _final(content, STYLES, cfg, model)
    tiled = _final(content, STYLES, cfg.replace(memory_limit=str(limit)), model)
    for name, value in untiled.losses.items():
        assert tiled.losses[name] == pytest.approx(value, rel=1e-4, abs=1e-9), name
    assert _psnr(tiled.image16, untiled.image16) > 60


def test_the_first_pass_takes_larger_tiles_only_where_they_save_work():
    """1024x640 px, fp32: under 400M (8 tiles) the Grams are summed over 2 larger tiles, within the budget; under a
    budget that needs only 2 x 2 tiles, larger ones would save too little, and the first pass keeps the last of the
    same tiles for the second instead."""
    cfg = StyleConfig(size=1024, precision="fp32").validate()
    tight = memory.plan(640, 1024, cfg, False, 400 * 2**20)
    assert (tight.rows * tight.cols, tight.sum_rows * tight.sum_cols) == (8, 2)
    assert tight.state_bytes + tight.sum_bytes <= tight.bytes <= 400 * 2**20
    roomier = memory.plan(640, 1024, cfg, False, 640 * 2**20)
    assert (roomier.rows, roomier.cols) == (roomier.sum_rows, roomier.sum_cols) == (2, 2)


def test_a_halo_short_of_the_receptive_field_is_not_exact(model):
    """The halo is what makes it exact: one pooling cell less and the gradient differs."""
    cfg = StyleConfig(size=128, precision="fp32", **SHALLOW).validate()
    content, styles = pil_to_tensor(CONTENT), [pil_to_tensor(s) for s in STYLES]
    start = _noisy(content)  # flat areas tie in max pooling: a rounding difference would pick another maximum
    align, halo = tiling.halo_for((cfg.content_layer, *cfg.style_layers))
    errors = []
    for width in (halo, halo - align):
        image = start.clone().requires_grad_(True)
        Objective(model, content, styles, cfg)(image)[0].backward()
        tiled = start.clone().requires_grad_(True)
        planner = lambda h, w: tiling.grid(h, w, 2, 2, align, width)  # noqa: B023, E731 - used at once
        tiling.TiledObjective(model, content, styles, cfg, planner).backward(tiled)
        errors.append(float((tiled.grad - image.grad).norm() / image.grad.norm()))
    assert errors[0] < 2e-6 and errors[1] > 20 * errors[0]  # 3.5e-7 and 4.3e-5 measured


def test_receptive_field_of_vgg19():
    assert tiling.layer_reach(("block1_conv1",)) == (1, 1)
    assert tiling.layer_reach(("block5_conv1", "block4_conv2")) == (16, 70)  # a 156 px field
    assert tiling.halo_for(("block5_conv1",)) == (16, 80)


def test_each_block_keeps_only_the_halo_the_layers_after_it_see():
    """The halo a tile needs shrinks with depth (the strides of the convs still to come): the activations entering
    blocks 2-5 are cut to it, which spares work no interior feature depends on (the runs above stay exact)."""
    default = StyleConfig()
    layers = (default.content_layer, *default.style_layers)
    assert tiling.block_margins(layers) == {1: 80, 2: 80, 3: 64, 4: 48, 5: 16}
    assert tiling.block_margins(layers)[1] == tiling.halo_for(layers)[1]
    assert tiling.block_margins((SHALLOW["content_layer"], *SHALLOW["style_layers"])) == {
        1: 16,
        2: 12,
        3: 8,
        4: 0,
        5: 0,
    }


def test_a_budget_too_small_for_any_tile_says_what_works(model):
    cfg = StyleConfig(size=128, steps=1, precision="fp32")
    with pytest.raises(memory.MemoryBudgetError, match=r"memory_limit: 1M is too small .* needs at least (\S+)") as err:
        stylize(CONTENT, STYLES[0], cfg, model=model, memory_limit="1M")
    least = err.value.args[0].split("needs at least ")[1].split(" ")[0]
    *_, final = stylize(CONTENT, STYLES[0], cfg, model=model, memory_limit=least)  # the smallest that works does
    assert final.done


@pytest.mark.parametrize(
    ("text", "size"), [("3G", 3 * 2**30), ("512M", 512 * 2**20), ("1.5g", 3 * 2**29), ("2GB", 2**31), ("auto", None)]
)
def test_sizes_parse(text, size):
    assert memory.parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "3X"])
def test_a_bad_size_is_refused_by_name(text):
    with pytest.raises(ConfigError, match="memory_limit"):
        StyleConfig(memory_limit=text).validate()


def _noisy(image: torch.Tensor) -> torch.Tensor:
    return (image + 0.05 * torch.rand(image.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) / 65535 - b.astype(np.float64) / 65535) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def test_cli_refuses_a_budget_too_small_with_exit_code_2(tmp_path, capsys):
    from style_transfer import cli

    CONTENT.save(tmp_path / "c.png")
    STYLES[0].save(tmp_path / "s.png")
    argv = [str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(tmp_path / "out.png"), "--size", "128"]
    assert cli.main([*argv, "--memory-limit", "2M", "--steps", "1", "-q"]) == cli.EXIT_USAGE
    assert "--memory-limit: 2M is too small" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_sizes_beyond_the_limits_are_refused_by_name(tmp_path):
    import gradio as gr

    from space import limits
    from space.request import check_request

    with pytest.raises(ConfigError, match=r"size: 8193 is outside the allowed range \[32, 8192\]"):
        StyleConfig(size=8193).validate()
    assert StyleConfig(size=8192).validate().size == 8192
    on_gpu = torch.cuda.is_available()
    top = limits.max_size(on_gpu)
    assert top == (4096 if on_gpu else 2048)
    CONTENT.save(tmp_path / "c.png")
    STYLES[0].save(tmp_path / "s.png")
    with pytest.raises(gr.Error, match=rf"size: {top + 16} px is above this Space's limit of {top} px"):
        check_request({"content": str(tmp_path / "c.png"), "style": str(tmp_path / "s.png"), "size": top + 16})


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_budgeted_run_stays_within_its_budget(optimizer, model, tmp_path):
    """The live tensors' peak (PyTorch's profiler, the weights loaded before) stays under the budget, which is
    below what the same run takes untiled."""
    from tests.test_memory import _peak_growth_mb

    cfg = StyleConfig(size=160, steps=3, scales=1, precision="fp32", optimizer=optimizer, **SHALLOW).validate()
    content = make_content(160, 144)
    pixels = 160 * 144
    state = memory.state_bytes_per_pixel(cfg, False, False, tiled=True) * pixels
    limit = int(state + memory.PASS_BYTES + 0.25 * memory.activation_bytes_per_pixel(False) * pixels)
    assert memory.plan(144, 160, cfg, False, limit).tiled
    peaks = {}
    for name, budget in (("untiled", "auto"), ("tiled", str(limit))):
        run = lambda b=budget: list(stylize(content, STYLES[0], cfg, model=model, memory_limit=b))  # noqa: E731
        peaks[name] = _peak_growth_mb(run, tmp_path) * 2**20
    assert peaks["tiled"] <= limit < peaks["untiled"], (peaks, limit)


RSS_PROBE = """
import json, sys
import torch
from style_transfer import memory, stylize
from tests.conftest import make_content, make_style
torch.set_num_threads(1)
if sys.argv[2] == "glibc-default":
    memory.return_freed_memory = lambda: False
def peak():  # this process image's peak RSS (ru_maxrss would start at the forking parent's, pytest's)
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
style = make_style()
list(stylize(make_content(64, 48), style, size=64, steps=2, scales=1, precision="fp32"))
base = peak()
list(stylize(make_content(320, 240), style, size=320, steps=2, scales=1, precision="fp32", memory_limit=sys.argv[1]))
print(json.dumps({"grown": peak() - base}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc (Linux)")
def test_a_budgeted_cpu_run_keeps_the_process_memory_within_its_budget(tmp_path):
    """What a user watches (the process's RSS), not only the live tensors: a run given a budget grows the
    process by at most the budget over a tiny run's peak. glibc kept the freed tile-sized blocks in its heap, so the
    RSS ran 28–57% over small budgets until ``memory.return_freed_memory``; the glibc default is run too, so the test
    shows it still measures that. Linux only (the peak is read from ``/proc/self/status``)."""
    import json
    import subprocess
    import sys

    limit = 120 * 2**20  # 320x240 px untiled plans 170 MB; this 2 x 2 tiles
    assert memory.plan(240, 320, StyleConfig(size=320, precision="fp32").validate(), False, limit).tiled
    root = Path(__file__).resolve().parents[1]
    grown = {}
    for allocator in ("returned", "glibc-default"):
        done = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, str(limit), allocator],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        grown[allocator] = json.loads(done.stdout.splitlines()[-1])["grown"]
    assert grown["returned"] <= limit < grown["glibc-default"], {k: v / 2**20 for k, v in grown.items()}


def test_on_a_gpu_the_default_budget_follows_its_free_memory(monkeypatch):
    """``auto`` on a GPU plans for a share of the card's free memory (no GPU here: the driver's answer is given), so
    a picture that would not fit is tiled instead of failing, and one that fits runs whole; on a CPU, no limit."""
    free = 3 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    cfg = StyleConfig(size=4096).validate()
    budget = memory.budget(cfg, torch.device("cuda"))
    assert budget == free * memory.GPU_FREE_FRACTION
    assert memory.budget(cfg, torch.device("cpu")) is None
    assert memory.budget(cfg.replace(memory_limit="1G"), torch.device("cuda")) == 2**30
    large = memory.plan(3072, 4096, cfg, True, budget)
    assert large.tiled and large.bytes <= budget
    assert not memory.plan(768, 1024, cfg.replace(size=1024), True, budget).tiled
