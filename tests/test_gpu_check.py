"""The GPU check command (``python -m bench.gpu``) runs end to end on the CPU, so it is ready when a GPU is."""

import torch

from bench import gpu
from style_transfer import StyleConfig, graphs, stylize


def test_gpu_check_smoke_runs_every_case_and_reports(tmp_path, capsys):
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for case in ("plain loop", "adam+graphs", "lbfgs", "adam, scales 0"):
        assert case in out
    assert "graphed vs eager J" in out and (tmp_path / "results.json").is_file()


def test_missed_targets_fail_the_check():
    slow = gpu.Result("adam", 512, 300, loop_s=2.4, ms_per_step=8.0, first_frame_s=7.8, final_j=1.0, target_s=0.6)
    plain = gpu.Result("plain loop", 512, 300, loop_s=2.5, ms_per_step=8.3, first_frame_s=1.0, final_j=1.0)
    slow.peak_mb, slow.activations_mb = 33000.0, 300.0
    missed = gpu.check([slow, plain], j_diff=2e-3, smoke=False)
    assert len(missed) == 5, missed  # time, memory, speed-up, first frame, graphed J


def test_cuda_graphs_never_apply_on_a_cpu(content_path, style_path, model):
    """The CPU path is unchanged by the setting: same frames, same costs."""
    assert not graphs.wanted("on", "adam", torch.device("cpu"))
    assert not graphs.wanted("on", "lbfgs", torch.device("cuda"))
    assert not graphs.wanted("off", "adam", torch.device("cuda"))
    kw = {"model": model, "size": 32, "steps": 3, "preview_every": 1, "precision": "fp32"}
    off = [f.losses["total"] for f in stylize(content_path, style_path, StyleConfig(cuda_graphs="off"), **kw)]
    on = [f.losses["total"] for f in stylize(content_path, style_path, StyleConfig(cuda_graphs="on"), **kw)]
    assert on == off
