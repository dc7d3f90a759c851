"""The GPU check command (``python -m bench.gpu``) runs end to end on the CPU, so it is ready when a GPU is."""

import csv

import torch

from bench import gpu
from style_transfer import StyleConfig, graphs, stylize


def test_gpu_check_smoke_runs_every_case_and_reports(tmp_path, capsys):
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for case in (
        "cold start",
        "plain loop",
        "adam+graphs",
        "lbfgs+graphs",
        "adam, scales 0",
        "mask + 3 styles",
        "high-res",
    ):
        assert case in out
    assert "graphed vs eager J" in out and (tmp_path / "results.json").is_file()
    rows = list(csv.DictReader((tmp_path / "durations.csv").open()))  # what the ZeroGPU model is checked against
    assert {r["what"] for r in rows} == {"loop", "warm_call"} and all(float(r["seconds"]) > 0 for r in rows)
    assert {r["optimizer"] for r in rows} == {"adam", "lbfgs"} and {r["scales"] for r in rows} == {"0", "1"}


def test_a_failing_part_is_reported_and_the_rest_still_runs_and_is_saved(tmp_path, capsys, monkeypatch):
    """A GPU session may get one try: a crash in one case must not lose the figures measured around it."""

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(gpu, "run_plain", broken)
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSED: plain loop 48 px failed: RuntimeError: CUDA error" in out
    assert "graphed vs eager J" in out and "compute ATen ops" in out  # the parts after the failures ran
    rows = list(csv.DictReader((tmp_path / "durations.csv").open()))
    assert len(rows) == 2 * len(gpu.SMOKE_CASES)  # every engine case was written
    assert "MISSED" in (tmp_path / "report.txt").read_text()


def test_missed_targets_fail_the_check():
    cold = gpu.Result(gpu.COLD, 512, 2, loop_s=0.1, ms_per_step=8.0, first_frame_s=7.8, final_j=1.0)
    slow = gpu.Result("adam", 512, 300, loop_s=2.4, ms_per_step=8.0, first_frame_s=0.5, final_j=1.0, target_s=0.6)
    plain = gpu.Result("plain loop", 512, 300, loop_s=2.5, ms_per_step=8.3, first_frame_s=1.0, final_j=1.0)
    slow.peak_mb, slow.activations_mb = 33000.0, 300.0
    missed = gpu.check([cold, slow, plain], j_diff={"adam": 2e-3, "lbfgs": 1e-4}, smoke=False)
    assert len(missed) == 6, missed  # time, memory, speed-up, cold and warm first frame, graphed J
    fast = gpu.Result("adam", 512, 300, loop_s=0.5, ms_per_step=1.7, first_frame_s=0.1, final_j=1.0, target_s=0.6)
    fast.peak_mb, fast.activations_mb = 500.0, 300.0
    cold.first_frame_s = 1.0
    assert gpu.check([cold, fast, plain], j_diff={"adam": 1e-5, "lbfgs": 1e-4}, smoke=False) == []
    assert gpu.check([cold, fast, plain], j_diff={"adam, eager twice": 2e-3}, smoke=False) == []  # the noise floor


def test_graphed_rows_whose_graphs_were_not_used_fail_the_check():
    """A capture that falls back runs eager steps: its timings must not pass for the graphs' (nor its J check)."""
    used = gpu.Result("adam+graphs", 512, 300, loop_s=0.5, ms_per_step=1.7, first_frame_s=0.1, final_j=1.0)
    used.captures = 1
    eager = gpu.Result("adam+graphs", 1024, 300, loop_s=2.0, ms_per_step=6.7, first_frame_s=0.2, final_j=1.0)
    eager.fallbacks = 1
    assert gpu.check([used], j_diff={}, smoke=False) == []
    assert gpu.check([used, eager], j_diff={}, smoke=False) == [
        "adam+graphs 1024 px: graphs not used (0 captured, 1 fell back)"
    ]


def test_cuda_graphs_never_apply_on_a_cpu(content_path, style_path, model):
    """The CPU path is unchanged by the setting: same frames, same costs."""
    assert not graphs.wanted("on", torch.device("cpu"))
    assert not graphs.wanted("off", torch.device("cuda"))
    assert graphs.wanted("on", torch.device("cuda"))
    for optimizer in ("adam", "lbfgs"):
        kw = {"model": model, "size": 32, "steps": 3, "preview_every": 1, "optimizer": optimizer}
        off = [f.losses["total"] for f in stylize(content_path, style_path, StyleConfig(cuda_graphs="off"), **kw)]
        on = [f.losses["total"] for f in stylize(content_path, style_path, StyleConfig(cuda_graphs="on"), **kw)]
        assert on == off
