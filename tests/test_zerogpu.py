"""The ZeroGPU duration model (space/zerogpu.py) against the GPU timings in bench/results-gpu/*.csv.

A run that outlasts its allocation is stopped early, so the model must stay at or above every measured row; it must
also stay near them (within 3x), because a longer allocation costs the visitor's ZeroGPU quota and queue priority.
"""

import csv
from pathlib import Path

import pytest
from PIL import Image

from space import limits, zerogpu
from space.request import Request
from style_transfer.config import MAX_SIZE, MAX_STEPS, MIN_SIZE, StyleConfig
from style_transfer.engine import Inputs, Prepared

ROOT = Path(__file__).resolve().parent.parent
TABLES = sorted((ROOT / "bench" / "results-gpu").rglob("*.csv"))
ROWS = [row for table in TABLES for row in csv.DictReader(table.open()) if row["gpu"] != "CPU"]


def _estimate(row: dict) -> float:
    width, height, steps = int(row["width"]), int(row["height"]), int(row["steps"])
    cfg = StyleConfig(
        size=max(width, height),
        steps=steps,
        optimizer=row["optimizer"],
        scales=int(row["scales"]),
        precision=row["precision"],
    ).validate()
    if row["what"] == "loop":  # first frame to final frame
        return zerogpu.loop_seconds(width, height, cfg)
    if row["what"] == "warm_call":  # call to final frame in a warm process: everything but the start-up
        return zerogpu.loop_seconds(width, height, cfg)
    if row["what"] == "first_frame":  # call to first frame, in a fresh process
        return zerogpu.GPU_STARTUP_S
    assert row["what"] == "call", row  # call to final frame
    return zerogpu.estimate_seconds(width, height, cfg)


def test_there_are_h100_timings():
    assert any("H100" in row["gpu"] for row in ROWS), TABLES


@pytest.mark.parametrize(
    "row", ROWS, ids=lambda r: f"{r['width']}px-{r['steps']}-{r['optimizer']}-s{r['scales']}-{r['what']}"
)
def test_model_covers_each_measured_run_without_overasking(row):
    """Graphed runs are only covered, not matched: a capture that fails falls back to eager steps, so the model must
    fit the eager runs (within 3x) and stays far above the graphed ones."""
    measured, estimate = float(row["seconds"]), _estimate(row)
    assert measured <= estimate, (row, estimate)
    if "+graphs" not in row["source"]:
        assert estimate <= 3 * measured, (row, estimate)


def _request(size: int, steps: int, styles: int = 1, **settings) -> Request:
    img = Image.new("RGB", (size, size))
    prepared = Prepared(StyleConfig(size=size, steps=steps, **settings), Inputs(img, [img] * styles))
    return Request(prepared, img)


def test_duration_at_the_slider_extremes():
    assert zerogpu.gpu_duration(_request(MIN_SIZE, 1)) == limits.GPU_DURATION_MIN_S
    assert zerogpu.gpu_duration(_request(MAX_SIZE, MAX_STEPS)) == limits.GPU_DURATION_MAX_S
    assert zerogpu.gpu_duration(_request(512, 300)) <= 30  # the default run asks for half a minute at most


def test_duration_grows_with_the_work():
    base = zerogpu.estimate_seconds(1024, 1024, StyleConfig(size=1024, steps=300, scales=1))
    assert zerogpu.estimate_seconds(2048, 2048, StyleConfig(size=2048, steps=300, scales=1)) > base
    assert zerogpu.estimate_seconds(1024, 1024, StyleConfig(size=1024, steps=600, scales=1)) > base
    assert zerogpu.estimate_seconds(1024, 1024, StyleConfig(size=1024, steps=300, scales=1, optimizer="lbfgs")) > base
    assert zerogpu.estimate_seconds(1024, 1024, StyleConfig(size=1024, steps=300, scales=1), images=4) > base
    # a coarse-to-fine run spends part of its steps at smaller sizes: cheaper than all of them at full size
    assert zerogpu.estimate_seconds(2048, 2048, StyleConfig(size=2048, steps=300, scales=0)) < zerogpu.estimate_seconds(
        2048, 2048, StyleConfig(size=2048, steps=300, scales=1)
    )


# --- Learning the GPU's speed ------------------------------------------------------------------------------------
def _run_on(model: zerogpu.SpeedModel, device: str, times_the_model: float, megapixels: float = 0.25) -> None:
    """Report a run whose steps took ``times_the_model`` x what the tables say."""
    step = zerogpu.step_seconds(megapixels, "adam") * times_the_model
    model.observe_run(device, megapixels, "adam", [step * 0.95, step, step * 1.05])


def test_a_device_nobody_measured_gets_the_committed_tables():
    assert zerogpu.SpeedModel().factor("NVIDIA RTX PRO 6000 Blackwell Server Edition") == 1.0


def test_a_slower_gpu_is_learned_and_asks_for_more_time(monkeypatch):
    speeds = zerogpu.SpeedModel()
    monkeypatch.setattr(zerogpu, "speeds", speeds)
    request = _request(1024, 1000)
    before = zerogpu.gpu_duration(request)
    for _ in range(3):
        _run_on(speeds, "half a Blackwell", 3.0)
    assert speeds.factor() == pytest.approx(3.0)  # the latest device a run reported
    assert zerogpu.gpu_duration(request) > 2 * before
    # and a faster one asks for less, down to the floor
    for _ in range(5):
        _run_on(speeds, "a fast card", 0.5)
    assert speeds.factor("a fast card") == pytest.approx(0.5) and speeds.factor() == pytest.approx(0.5)
    assert zerogpu.gpu_duration(request) < before


def test_one_odd_run_does_not_swing_the_estimate():
    speeds = zerogpu.SpeedModel()
    for _ in range(10):
        _run_on(speeds, "gpu", 1.2)
    _run_on(speeds, "gpu", 9.0)  # one run on a busy host
    assert speeds.factor("gpu") == pytest.approx(1.2)
    _run_on(speeds, "gpu", 0.01)  # and one that measured nothing useful
    assert speeds.factor("gpu") == pytest.approx(1.2)
    for _ in range(30):  # but the card itself changed: only the recent runs count
        _run_on(speeds, "gpu", 2.0)
    assert speeds.factor("gpu") == pytest.approx(2.0)


def test_the_run_stops_itself_inside_its_allocation():
    """The worker's budget leaves room for its start (outside the run's clock) and for what follows the last step."""
    for size, steps in ((64, 10), (512, 300), (2048, 2000)):
        plan = zerogpu.allocation(_request(size, steps))
        assert plan.seconds == zerogpu.gpu_duration(_request(size, steps))
        assert 0 < plan.budget_s <= plan.seconds - limits.GPU_WORKER_START_S
        assert zerogpu.requested_seconds(_request(size, steps), plan) == plan.seconds


def test_the_estimate_shown_before_a_run_is_what_it_asks_for(tmp_path):
    """The page shows, before a run, the GPU seconds the run will ask for (of a visitor's few daily minutes)."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (600, 400)).save(photo)
    settings = {"size": 1024, "steps": 300, "optimizer": "adam", "scales": 0}
    note = zerogpu.estimate_note(str(photo), **settings)
    img, style = Image.new("RGB", (1024, 683)), Image.new("RGB", (64, 64))
    asked = zerogpu.gpu_duration(Request(Prepared(StyleConfig(**settings), Inputs(img, [style])), img))
    assert f"about **{asked} s** of GPU time" in note
    bigger = zerogpu.estimate_note(str(photo), **{**settings, "size": 4096})
    assert int(bigger.split("**")[1].split()[0]) > asked
    assert zerogpu.estimate_note(None, **settings)  # no photo yet: a 3:2 one
    assert zerogpu.estimate_note(str(photo), **{**settings, "size": 1}) == ""  # out of range: the run says why
