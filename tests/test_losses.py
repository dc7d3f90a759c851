"""The seed's equations, checked against numbers worked out by hand on tiny tensors."""

import math

import pytest
import torch

from style_transfer import accel, losses


def t(rows, h, w):
    """A (1, nC, nH, nW) activation from a list of per-channel rows."""
    return torch.tensor(rows, dtype=torch.float32).reshape(1, len(rows), h, w)


def test_content_cost_eq1():
    # nC=2, nH=1, nW=2; every entry differs by 1 -> sum of squares 4; 4 / (4*1*2*2) = 0.25
    a_c = torch.ones(1, 2, 1, 2)
    a_g = torch.zeros(1, 2, 1, 2)
    assert losses.content_cost(a_c, a_g).item() == pytest.approx(0.25)
    # differences 1,2,3,4 (nC=1, 2x2) -> 30 / (4*2*2*1) = 1.875
    assert losses.content_cost(t([[1, 2, 3, 4]], 2, 2), torch.zeros(1, 1, 2, 2)).item() == pytest.approx(1.875)


def test_gram_is_a_a_transpose():
    a = t([[1, 2], [3, 4]], 1, 2)  # channel rows (1,2) and (3,4)
    assert losses.gram(a)[0].tolist() == [[5.0, 11.0], [11.0, 25.0]]


def test_style_layer_cost_eq2_same_size():
    # G_S = [[5,11],[11,25]], G_G = 0: sum of squares 25+121+121+625 = 892; 4*nC^2*(nH*nW)^2 = 4*4*4 = 64
    a_s = t([[1, 2], [3, 4]], 1, 2)
    a_g = torch.zeros(1, 2, 1, 2)
    cost = losses.style_layer_cost(losses.normalized_gram(a_s), a_g)
    assert cost.item() == pytest.approx(892 / 64)
    # and in the seed's literal form
    literal = (losses.gram(a_s) - losses.gram(a_g)).pow(2).sum() / (4 * 2**2 * (1 * 2) ** 2)
    assert cost.item() == pytest.approx(literal.item())


def test_style_cost_normalises_each_gram_by_its_own_size():
    # A style image twice as wide with the same statistics (tiled) must cost 0 against the small one.
    a_g = t([[1, 2], [3, 4]], 1, 2)
    a_s = torch.cat([a_g, a_g], dim=3)  # nW = 4: the raw Gram doubles, the normalised one is equal
    assert torch.equal(losses.gram(a_s), 2 * losses.gram(a_g))
    assert losses.style_layer_cost(losses.normalized_gram(a_s), a_g).item() == pytest.approx(0.0)


def test_style_cost_weighted_sum_over_layers():
    a_s = t([[1, 2], [3, 4]], 1, 2)
    zero = torch.zeros(1, 2, 1, 2)
    target = losses.normalized_gram(a_s)
    total = losses.style_cost([target, target], [zero, a_s], [0.2, 0.8])
    assert total.item() == pytest.approx(0.2 * 892 / 64 + 0.8 * 0.0)


def test_tv():
    # a vertical edge 0|1 in a 1x1x2x2 image: horizontal diffs (1, 1) -> sum 2; vertical diffs 0; 4 positions
    image = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert losses.tv_cost(image).item() == pytest.approx(0.5)


def test_tv_is_the_same_for_the_same_texture_at_any_size():
    """Pixel-level speckle costs the same per position at 64 and 256 px: one tv_weight fits every size/scale."""

    def checker(side: int) -> torch.Tensor:
        y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        return ((x + y) % 2).float().expand(1, 3, side, side)

    small, large = losses.tv_cost(checker(64)).item(), losses.tv_cost(checker(256)).item()
    assert large == pytest.approx(small, rel=0.02)
    assert losses.tv_cost(torch.zeros(1, 3, 64, 64)).item() == 0.0


def test_costs_are_float32_for_low_precision_activations():
    a = torch.full((1, 4, 8, 8), 300.0, dtype=torch.bfloat16)
    g = losses.gram(a)
    assert g.dtype == torch.float32 and math.isfinite(g.max().item())


def _plain_gram(a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The Gram as autograd would differentiate it (what losses did before its own backward)."""
    n, c, h, w = a.shape
    x = a.float() if mask is None else a.float() * mask
    x = x.reshape(n, c, h * w)
    return x @ x.transpose(1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("masked", [False, True])
def test_gram_gradient_equals_autograds(dtype, layout, masked):
    torch.manual_seed(0)
    a = (torch.rand(1, 6, 5, 7) * 4).to(dtype).contiguous(memory_format=layout)
    mask = torch.rand(1, 1, 5, 7) if masked else None
    upstream = torch.randn(1, 6, 6)
    ours, plain = a.clone().requires_grad_(), a.clone().requires_grad_()
    g_ours = losses._Gram.apply(ours, mask)
    g_plain = _plain_gram(plain, mask)
    assert torch.equal(g_ours, g_plain)  # the same forward
    (g_ours * upstream).sum().backward()
    (g_plain * upstream).sum().backward()
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(ours.grad.float(), plain.grad.float(), **tol)
    assert ours.grad.dtype == dtype and ours.grad.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("masked", [False, True])
def test_gram_gradient_passes_gradcheck(masked):
    torch.manual_seed(0)
    a = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(1, 1, 4, 5, dtype=torch.float64) if masked else None
    assert torch.autograd.gradcheck(lambda x: losses._Gram.apply(x, mask), (a,))


def test_gram_keeps_no_fp32_or_weighted_copy_for_backward():
    """Autograd used to keep the fp32 copy of a bf16 activation and the mask-weighted copy: ~40% of a bf16 run's
    activations, two copies per layer more with a mask and a background style."""
    a = torch.rand(1, 8, 6, 6).bfloat16().requires_grad_()
    mask = torch.rand(1, 1, 6, 6)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        losses.normalized_gram(a)
        losses.masked_normalized_gram(a, mask)
    big = [t for t in saved if t.numel() >= a.numel()]
    assert big and all(t.dtype == torch.bfloat16 and t.data_ptr() == a.data_ptr() for t in big)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_bf16_gram_path_gives_the_fp32_gram_and_a_bf16_gradient(bf16_gram_on_cpu, layout):
    torch.manual_seed(0)
    a = (torch.rand(1, 6, 5, 7) * 4).bfloat16().contiguous(memory_format=layout)
    upstream = torch.randn(1, 6, 6)
    ours, plain = a.clone().requires_grad_(), a.clone().requires_grad_()
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        g_ours = losses._Gram.apply(ours, None)
    g_plain = _plain_gram(plain, None)
    assert bf16_gram_on_cpu and g_ours.dtype == torch.float32
    assert torch.equal(g_ours, g_plain)  # the same Gram as the fp32 path: exact products, fp32 sums
    assert [t.data_ptr() for t in saved if t.numel() > 1] == [ours.data_ptr()]  # no fp32 copy kept
    (g_ours * upstream).sum().backward()
    (g_plain * upstream).sum().backward()
    # The bf16 gradient is (gG + gGᵀ) rounded to bf16 once, times A, with the result rounded to bf16: exactly that
    # within the last rounding, and autograd's fp32 gradient within bf16 rounding of the products' scale.
    sym = (upstream + upstream.transpose(1, 2)).bfloat16().double()
    exact = (sym @ a.double().reshape(1, 6, 35)).view(1, 6, 5, 7)
    torch.testing.assert_close(ours.grad.double(), exact, rtol=2**-8, atol=1e-6)
    scale = plain.grad.abs().max().item()
    torch.testing.assert_close(ours.grad.float(), plain.grad.float(), rtol=0, atol=2e-2 * scale)
    assert ours.grad.dtype == torch.bfloat16 and ours.grad.is_contiguous(memory_format=layout)


def test_bf16_gram_path_is_not_taken_for_masks_or_fp32(bf16_gram_on_cpu):
    losses.gram(torch.rand(1, 4, 3, 3))
    losses.masked_normalized_gram(torch.rand(1, 4, 3, 3).bfloat16(), torch.rand(1, 1, 3, 3))
    assert not bf16_gram_on_cpu  # a mask keeps the fp32 weighted copy path (the mask is fp32)


def test_a_failing_bf16_gram_falls_back_to_fp32_once_logged(bf16_gram_on_cpu, monkeypatch, caplog):
    def broken(x, y):
        raise RuntimeError("no such kernel on this GPU")

    monkeypatch.setattr(losses, "_fp32_out_bmm", broken)
    a = (torch.rand(1, 4, 3, 5) * 3).bfloat16().requires_grad_()
    with caplog.at_level("WARNING", logger="style_transfer.accel"):
        g = losses._Gram.apply(a, None)
    assert torch.equal(g, _plain_gram(a, None)) and list(accel.bf16_gram.failures) == [torch.bfloat16]
    assert "no such kernel" in caplog.text and "plain kernels" in caplog.text
    g.sum().backward()  # backward matches the path forward took
    expected = (2 * torch.ones(1, 4, 4) @ a.float().reshape(1, 4, 15)).view_as(a)
    torch.testing.assert_close(a.grad.float(), expected, rtol=2**-8, atol=0)  # fp32 math, rounded to bf16 once
