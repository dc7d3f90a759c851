"""Memory stays bounded: a run's memory grows at most twice as fast as the activations of one forward pass.

On an H100, cuDNN autotuning took 33-65 GB for runs that need 0.6-2 GB (issue 11); retained graphs, kept frames or
an unbounded L-BFGS history would grow the same way. The GPU's figure (the peak at 512-2048 px ≤ 2× the activations)
is checked by ``python -m bench.gpu``. This is the same bound on the CPU, measured by PyTorch's profiler (every tensor
allocated during the run, the model's weights excluded) at two small sizes, on the growth from one to the other: at
2048 px the activations are gigabytes and what decides the peak is how fast it grows with them, while at a test's size
fixed costs (on a CPU, bf16 autocast casts the 16 weights again in every forward: 29 MB) would hide it.
"""

import functools
import json
import warnings

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from bench.gpu import CONTENT, STYLE, STYLES_3, activations_mb, half_mask
from style_transfer import StyleConfig, stylize

SIZES = (128, 256)
MAX_RATIO = 2.0  # the GPU target, issue 11


CASES = {
    "adam": ({}, {}),
    "adam fp32": ({"precision": "fp32"}, {}),
    "lbfgs": ({"optimizer": "lbfgs", "steps": 12}, {}),  # more steps than the 10 pairs it keeps: a full history
    "two scales": ({"scales": 2}, {}),
    "mask + 3 styles + background": ({}, {"mask": "half", "styles": 3}),
    # fp32, as "auto" runs on a CPU without native bf16 (AVX2 only): 2.03x there before the Gram's backward freed
    # its weighted copy before weighting the gradient in place
    "mask + 3 styles + background, fp32": ({"precision": "fp32"}, {"mask": "half", "styles": 3}),
}


def _peak_growth_mb(run, tmp_path) -> float:
    """Peak bytes of live tensors during ``run()`` above those at its start (the weights), in MB."""
    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True, acc_events=True
    ) as prof:
        run()
    path = tmp_path / "memory.json"
    with warnings.catch_warnings():  # deprecated in favour of a CUDA-only recorder; the CPU has no other
        warnings.simplefilter("ignore", FutureWarning)
        prof.export_memory_timeline(str(path), device="cpu")
    _, sizes = json.loads(path.read_text())
    totals = [sum(sample) for sample in sizes]
    return (max(totals) - totals[0]) / 2**20


@pytest.mark.parametrize("case", CASES)
def test_memory_grows_at_most_twice_as_fast_as_the_activations(case, model, tmp_path, capsys):
    settings, inputs = CASES[case]
    mask = half_mask() if inputs.get("mask") else None
    styles = STYLES_3 if inputs.get("styles") else STYLE
    background = STYLES_3[1] if mask is not None else None
    peaks, activations = [], []
    for size in SIZES:
        cfg = StyleConfig(**{"size": size, "steps": 4, "scales": 1, "preview_every": 2, **settings})
        run = functools.partial(stylize, CONTENT, styles, cfg, model=model, mask=mask, background_style=background)
        peaks.append(_peak_growth_mb(lambda: list(run()), tmp_path))  # noqa: B023 - called at once
        activations.append(activations_mb(model, size, torch.device("cpu")))
    growth = (peaks[1] - peaks[0]) / (activations[1] - activations[0])
    with capsys.disabled():
        print(
            f"\n{case}: peak {peaks[0]:.1f} -> {peaks[1]:.1f} MB, activations {activations[0]:.1f} -> "
            f"{activations[1]:.1f} MB: grows {growth:.2f}x as fast ({peaks[1] / activations[1]:.2f}x at {SIZES[1]} px)"
        )
    assert 0 < growth <= MAX_RATIO
