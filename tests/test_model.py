"""The bundled original VGG-19: loads offline, gives finite features of the right shapes, stays frozen."""

import socket

import pytest
import torch

from style_transfer import WeightsError
from style_transfer.layers import DEFAULT_STYLE_LAYERS, LAYER_NAMES, canonical_layer, short_name
from style_transfer.model import VGGFeatures, load_model
from style_transfer.weights import CAFFE_PREPROCESSING, load_conv_params

EXPECTED_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def test_default_weights_load_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the default weights must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    params, prep = load_conv_params("caffe")
    assert len(params) == 16 and prep == CAFFE_PREPROCESSING
    assert params[0][0].shape == (64, 3, 3, 3) and params[-1][0].shape == (512, 512, 3, 3)
    # dequantised: at most 256 distinct values per layer, real (non-constant) filters
    assert 1 < params[0][0].unique().numel() <= 256


def test_features_at_every_named_layer(model):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 48)
    feats = model(image, LAYER_NAMES)
    for name in LAYER_NAMES:
        block = int(name[5])
        scale = 2 ** (block - 1)
        assert feats[name].shape == (1, EXPECTED_CHANNELS[block], 64 // scale, 48 // scale), name
        assert torch.isfinite(feats[name]).all(), name
        assert (feats[name] >= 0).all(), "post-ReLU activations are non-negative"
    # a real network responds to images: activations are not all zero, and differ between two images
    other = model(torch.rand(1, 3, 64, 48), ("block3_conv1",))["block3_conv1"]
    assert feats["block3_conv1"].abs().sum() > 0 and not torch.allclose(other, feats["block3_conv1"])


def test_weights_are_frozen_and_model_is_cached(model):
    assert not any(p.requires_grad for p in model.parameters())
    assert load_model("caffe", "cpu") is model


def test_forward_stops_after_deepest_requested_layer(model):
    calls = []
    deep_conv = model.features[model.relu_index["block5_conv4"] - 1]
    handle = deep_conv.register_forward_hook(lambda *a: calls.append(1))
    try:
        model(torch.rand(1, 3, 32, 32), DEFAULT_STYLE_LAYERS)
        assert calls == []
        model(torch.rand(1, 3, 32, 32), ("block5_conv4",))
        assert calls == [1]
    finally:
        handle.remove()


def test_gradients_flow_to_the_image_only(model):
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    model(image, ("block2_conv1",))["block2_conv1"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_layer_name_aliases():
    assert canonical_layer("conv4_2") == "block4_conv2"
    assert canonical_layer("RELU1_1") == "block1_conv1"
    assert canonical_layer("block5_conv2") == "block5_conv2"
    assert short_name("block5_conv2") == "conv5_2"
    with pytest.raises(KeyError, match="unknown VGG-19 layer"):
        canonical_layer("conv6_1")


def test_state_dict_file_in_torchvision_layout_matches(tmp_path, model):
    # Save the bundled weights under torchvision's "features.N" keys; loading that path must give the same net
    # (with ImageNet preprocessing, so compare the raw conv stacks).
    state = {k: v for k, v in model.features.state_dict().items()}
    path = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in state.items()}, path)
    params, prep = load_conv_params(str(path))
    other = VGGFeatures(params, prep)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(other.features(x), model.features(x))


def test_bad_weights_sources_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="neither 'caffe', 'torchvision' nor an existing file"):
        load_conv_params(str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="Could not read weights file"):
        load_conv_params(str(junk))

    from torchvision.models import VGG19_Weights

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(type(VGG19_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(WeightsError, match="weights='caffe'"):
        load_conv_params("torchvision")


def test_bf16_copy_gives_what_autocast_gives(model):
    """Under bf16 autocast a model with a bf16 copy of its weights (as on CUDA) gives the same activations, bit for
    bit, as autocast casting the fp32 weights itself on every forward."""
    params, prep = load_conv_params("caffe")
    twin = VGGFeatures(params, prep, bf16_copy=True)
    assert model.features_bf16 is None  # CPU models have none
    x = torch.rand(1, 3, 40, 56)
    layers = ("block1_conv1", "block3_conv1", "block5_conv1")
    used = []
    handles = [
        layers_[0].register_forward_hook(lambda *a, w=w: used.append(w))
        for w, layers_ in (("bf16", twin.features_bf16), ("fp32", twin.features))
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        ours, theirs = twin(x, layers), model(x, layers)
    for handle in handles:
        handle.remove()
    assert used == ["bf16"]  # the copy ran, not autocast's casts of the fp32 weights
    for name in layers:
        assert ours[name].dtype == theirs[name].dtype == torch.bfloat16
        assert torch.equal(ours[name], theirs[name]), name
    assert twin(x, layers)["block1_conv1"].dtype == torch.float32  # without autocast: the fp32 weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_lean_max_pooling_equals_torchs_bit_for_bit(dtype, layout):
    from torch import nn

    from style_transfer.model import LeanMaxPool2d

    torch.manual_seed(0)
    x = (torch.randn(1, 8, 10, 14) * 3).to(dtype).contiguous(memory_format=layout)
    x[..., :2, :2] = 1.0  # ties inside a window: both must pick the same element
    grad = torch.randn(1, 8, 5, 7).to(dtype)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_theirs = LeanMaxPool2d()(ours), nn.MaxPool2d(2, 2)(theirs)
    out_ours.backward(grad)
    out_theirs.backward(grad)
    assert torch.equal(out_ours, out_theirs) and torch.equal(ours.grad, theirs.grad)
    assert ours.grad.is_contiguous(memory_format=layout)


def test_backward_keeps_no_pooling_indices(model):
    """The int64 indices of max pooling were about a fifth of the activations, held through every step's backward."""
    saved: list[torch.Tensor] = []
    image = torch.rand(1, 3, 64, 48, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        model(image, ("block5_conv1",))
    assert saved and not [t for t in saved if t.dtype == torch.int64]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("bf16", [False, True])
def test_fused_conv_relu_gives_the_same_activations_and_gradients(fused_on_cpu, monkeypatch, layout, bf16):
    """The fused path's backward makes autograd's own two calls (ReLU's, then the conv's for the input): with the
    same forward, every activation and the image's gradient are the same bit for bit, in both layouts and in a bf16
    run (the bf16 weight copy, as on a GPU)."""
    import contextlib

    from style_transfer import model as model_module

    params, prep = load_conv_params("caffe")
    net = VGGFeatures(params, prep, bf16_copy=bf16).to(memory_format=layout)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 36, 44).contiguous(memory_format=layout)
    layers = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv2", "block5_conv1")
    results = []
    for fused in (True, False):
        monkeypatch.setattr(model_module.accel.fused_conv_relu, "on", fused)
        x = image.clone().requires_grad_()
        amp = torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False) if bf16 else contextlib.nullcontext()
        with amp:
            acts = net(x, layers)
        sum(a.float().pow(2).mean() for a in acts.values()).backward()
        results.append((acts, x.grad))
    assert len(fused_on_cpu) == 13  # every conv up to block5_conv1, once
    (fused_acts, fused_grad), (plain_acts, plain_grad) = results
    for name in layers:
        assert fused_acts[name].dtype == (torch.bfloat16 if bf16 else torch.float32)
        assert torch.equal(fused_acts[name], plain_acts[name]), name
    assert torch.equal(fused_grad, plain_grad)


def test_a_failing_fused_conv_falls_back_once_per_layer_logged(fused_on_cpu, monkeypatch, model, caplog):
    """A kernel cuDNN lacks for one layer (conv1_1's 3 input channels, say) turns the fused path off for that layer's
    kind only, with one warning; the next forward warns no more and gives the plain result."""
    from style_transfer import accel
    from style_transfer import model as model_module

    def broken(x, weight, bias):
        if x.shape[1] == 3:
            raise RuntimeError("cuDNN: no engine for this shape")
        return torch.nn.functional.relu(torch.nn.functional.conv2d(x, weight, bias, padding=1))

    monkeypatch.setattr(model_module, "conv_relu_kernel", broken)
    image = torch.rand(1, 3, 32, 32)
    with caplog.at_level("WARNING", logger="style_transfer.accel"):
        got = model(image, ("block3_conv1",))["block3_conv1"]
        again = model(image, ("block3_conv1",))["block3_conv1"]
    assert list(accel.fused_conv_relu.failures) == [(torch.float32, 3, 64)] and caplog.text.count("no engine") == 1
    monkeypatch.setattr(model_module, "_fuses", lambda x, conv: False)
    plain = model(image, ("block3_conv1",))["block3_conv1"]
    assert torch.equal(got, plain) and torch.equal(again, plain)


def test_running_out_of_memory_in_a_fast_path_turns_nothing_off(fused_on_cpu, monkeypatch, model):
    from style_transfer import accel
    from style_transfer import model as model_module

    def out_of_memory(x, weight, bias):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(model_module, "conv_relu_kernel", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        model(torch.rand(1, 3, 32, 32), ("block1_conv1",))
    assert accel.fused_conv_relu.on and not accel.fused_conv_relu.failures


def test_a_fast_path_failing_inside_a_graph_capture_is_not_swallowed(monkeypatch):
    """Inside a capture the failure must reach the graph code, which falls back to eager steps."""
    from style_transfer.accel import FastPath

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    path = FastPath("test")

    def broken():
        raise RuntimeError("operation not permitted when stream is capturing")

    with pytest.raises(RuntimeError, match="capturing"):
        path("key", broken, lambda: 0)
    assert list(path.failures) == ["key"]  # the eager retry, and the next capture, take the plain way
    assert path("key", broken, lambda: 0) == 0


def test_a_fused_conv_that_disagrees_with_the_plain_one_is_caught_at_first_use(fused_on_cpu, monkeypatch, model):
    """A fused kernel that read the garbage it is told to add with weight 0 would give wrong pixels, silently: the
    first use of each shape compares it with the plain conv, and a disagreement turns the fused path off."""
    import torch.nn.functional as F

    from style_transfer import accel
    from style_transfer import model as model_module

    def reads_garbage(x, weight, bias):
        out = F.relu(F.conv2d(x, weight, bias, padding=1))
        out[..., 0, 0] = 0.0  # a NaN read and clipped by the ReLU: a wrong zero
        return out

    monkeypatch.setattr(model_module, "_checked", set())
    monkeypatch.setattr(model_module, "conv_relu_kernel", reads_garbage)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 24, 24)
    got = model(image, ("block2_conv1",))["block2_conv1"]
    assert "differs from the plain conv" in accel.fused_conv_relu.failures[(torch.float32, 3, 64)]
    monkeypatch.setattr(model_module, "_fuses", lambda x, conv: False)
    assert torch.equal(got, model(image, ("block2_conv1",))["block2_conv1"])


def test_the_fused_conv_is_checked_once_per_shape(fused_on_cpu, monkeypatch, model):
    from style_transfer import model as model_module

    monkeypatch.setattr(model_module, "_checked", set())
    for size in (24, 24, 32):
        model(torch.rand(1, 3, size, size), ("block1_conv2",))
    assert len(model_module._checked) == 4  # two convs at two sizes
    assert len(fused_on_cpu) == 6  # every call ran the fused kernel (the checks' included)


def test_the_fused_conv_is_used_only_where_it_computes_what_autocast_would(monkeypatch):
    """The fused call is not autocast's: under bf16 autocast it must get bf16 inputs and weights (the bf16 weight
    copy), or it would compute in fp32 where the plain conv computes in bf16 (and its backward would mix them)."""
    from torch import nn

    from style_transfer import accel
    from style_transfer.model import _fusable

    monkeypatch.setattr(accel.fused_conv_relu, "on", True)
    conv, x = nn.Conv2d(3, 4, 3, padding=1), torch.rand(1, 3, 8, 8)
    assert _fusable(x, conv)  # fp32 run
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _fusable(x, conv)  # autocast would run this conv in bf16
        assert _fusable(x.bfloat16(), conv.bfloat16())  # the bf16 copy with a bf16 input
    assert not _fusable(x, conv.bfloat16())
    monkeypatch.setattr(accel.fused_conv_relu, "on", False)
    assert not _fusable(x, conv.float())
