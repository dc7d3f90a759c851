"""The fast path: bf16 autocast for the network must not cost quality; Gram and costs stay fp32."""

import pytest
import torch

from style_transfer import StyleConfig, accel, losses, run
from style_transfer.engine import Objective
from style_transfer.images import pil_to_tensor


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert accel.use_bf16(StyleConfig(precision="fp32"), cpu) is False
    assert accel.use_bf16(StyleConfig(precision="bf16"), cpu) == accel.bf16_supported(cpu)
    assert accel.use_bf16(StyleConfig(precision="auto", optimizer="lbfgs"), cpu) is False  # L-BFGS keeps fp32
    assert accel.use_bf16(StyleConfig(precision="auto"), cpu) == accel.bf16_supported(cpu)
    assert accel.memory_format(cpu) == torch.contiguous_format
    assert accel.memory_format(torch.device("cuda")) == torch.channels_last


def test_gram_stays_fp32_under_autocast():
    a = torch.rand(1, 8, 6, 6) * 300
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = losses.gram(a.bfloat16())
    assert g.dtype == torch.float32
    assert torch.allclose(g, losses.gram(a.bfloat16().float()))


def test_bf16_without_native_support_falls_back_to_fp32(monkeypatch, caplog):
    """On a CPU without native bf16 (AVX2 only) emulated bf16 is 10-20x slower: asking for it runs fp32, with a
    warning, on every machine (the hardware check is replaced so this runs the same everywhere)."""
    monkeypatch.setattr(accel, "bf16_supported", lambda device: False)
    with caplog.at_level("WARNING", logger="style_transfer.accel"):
        assert accel.use_bf16(StyleConfig(precision="bf16"), torch.device("cpu")) is False
        assert accel.use_bf16(StyleConfig(precision="auto"), torch.device("cpu")) is False
    assert "no native bf16" in caplog.text


def test_a_gpu_that_only_emulates_bf16_runs_fp32(monkeypatch):
    """torch.cuda.is_bf16_supported() says yes for a T4 or V100 by default (emulated bf16); "auto" must pick fp32
    there. The GPU query is replaced by one that answers like such a GPU."""
    import contextlib

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    gpu = torch.device("cuda")
    assert accel.bf16_supported(gpu) is False
    assert accel.use_bf16(StyleConfig(precision="auto"), gpu) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100 or H100
    assert accel.use_bf16(StyleConfig(precision="auto"), gpu) is True


@pytest.mark.skipif(
    not accel.bf16_supported(torch.device("cpu")),
    reason="this CPU has no native bf16 (no AVX-512-BF16/AMX): the fast path is not used here, so there is "
    "nothing to compare (the fallback is tested above)",
)
def test_bf16_fast_path_scores_within_2_percent_of_fp32(content_path, style_path, model):
    kw = {"model": model, "size": 48, "steps": 25, "tv_weight": 0.0}
    fp32 = run(content_path, style_path, precision="fp32", **kw)
    bf16 = run(content_path, style_path, precision="bf16", **kw)
    # One neutral scorer: the fp32 objective on the saved (uint8) images.
    cfg = StyleConfig(size=48, precision="fp32", tv_weight=0.0).validate()  # the seed's J
    from PIL import Image

    content = pil_to_tensor(Image.open(content_path).convert("RGB").resize(fp32.image.size, Image.Resampling.LANCZOS))
    style = pil_to_tensor(Image.open(style_path).convert("RGB").resize((48, 48), Image.Resampling.LANCZOS))
    score = Objective(model, content, [style], cfg)
    with torch.no_grad():
        s32 = float(score(pil_to_tensor(fp32.image))[0])
        s16 = float(score(pil_to_tensor(bf16.image))[0])
        start = float(score(content)[0])
    assert s32 < 0.5 * start and s16 < 0.5 * start  # both really optimised
    assert s16 == pytest.approx(s32, rel=0.02)
