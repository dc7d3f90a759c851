"""The seed's cost functions (eq. 1 and eq. 2 of its README), plus an optional total-variation term.

Each is one term's unweighted value; ``terms.py`` names the terms and weights them into J.

Activations are ``(N, C, H, W)`` tensors (N = 1). The Gram matrix and the costs are computed in float32 even when
the network runs in lower precision: an fp16 Gram overflows and bf16 loses the small residuals near the optimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from . import accel


def content_cost(a_c: torch.Tensor, a_g: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``J_content = 1/(4·nH·nW·nC) · Σ(a_C − a_G)²`` for one layer."""
    _, n_c, n_h, n_w = a_g.shape
    return (a_c.float() - a_g.float()).pow(2).sum() / (4.0 * n_h * n_w * n_c)


class _Gram(torch.autograd.Function):
    """``W·Wᵀ`` in fp32 with ``W = (a · weight)`` unrolled to (N, nC, nH·nW); ``weight`` (1, 1, nH, nW) may be None.

    For backward it keeps only ``a``, which autograd holds anyway (it is a ReLU's output), never the fp32 copy of a
    bf16 ``a`` nor the weighted copy, and it recomputes ``W`` there: those copies were about 40% of the activations
    in a bf16 run, and two per layer more with a mask and a background style. Its gradient, ``(gG + gGᵀ)·W · weight``,
    is one matmul where autograd's takes two. Double backward is not supported (nothing here needs it).

    bf16 activations on a GPU, without a weight, skip the fp32 copy altogether (:func:`_bf16_gram`,
    ``accel.bf16_gram``): the matmul reads bf16 and writes fp32, and the gradient is computed in bf16.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(a, weight)
        ctx.bf16 = weight is None and _bf16_kernels(a)
        if ctx.bf16:
            return accel.bf16_gram(a.dtype, _bf16_gram, _fp32_gram, a, ctx)
        return _fp32_gram(a, ctx, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        a, weight = ctx.saved_tensors
        if ctx.bf16:
            return _bf16_gram_backward(a, grad), None
        with torch.autocast(a.device.type, enabled=False):
            unrolled = _weighted(a, weight)
            out = _times(grad + grad.transpose(1, 2), unrolled, a)
            del unrolled  # freed before the next layer-sized tensor: this runs at backward's peak, in block1
            if weight is not None:
                out.mul_(weight.to(out.dtype))  # in place, for the same reason
        return out.to(a.dtype), None


def _fp32_gram(a: torch.Tensor, ctx: Any, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The Gram of ``a`` (times ``weight``) in fp32 arithmetic; ``ctx`` is told that backward must match."""
    ctx.bf16 = False
    unrolled = _weighted(a, weight)
    return unrolled @ unrolled.transpose(1, 2)


def _bf16_kernels(a: torch.Tensor) -> bool:
    """Whether the Gram of ``a`` takes the bf16 path: bf16 activations on a GPU (``torch.bmm``'s ``out_dtype`` is
    CUDA-only in torch 2.11), unless turned off."""
    return a.is_cuda and a.dtype == torch.bfloat16 and accel.bf16_gram.on


def _fp32_out_bmm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x @ y`` of bf16 batches with an fp32 result (bf16 products are exact in fp32; the sums are fp32)."""
    return torch.bmm(x, y, out_dtype=torch.float32)


def _bf16_gram(a: torch.Tensor, ctx: Any) -> torch.Tensor:
    """The Gram of bf16 ``a`` without an fp32 copy of it: the same products and fp32 sums as the fp32 path."""
    n, c, h, w = a.shape
    unrolled = a.reshape(n, c, h * w)  # a view in both layouts (channels_last: (N, nH·nW, nC) rows)
    return _fp32_out_bmm(unrolled, unrolled.transpose(1, 2))


def _bf16_gram_backward(a: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``(gG + gGᵀ)·A`` as a bf16 matmul, in ``a``'s layout and dtype: the gradient the network's bf16 backward
    takes anyway, with no fp32 copy of ``a`` and no cast of the result."""
    n, c, h, w = a.shape
    return _times((grad + grad.transpose(1, 2)).to(a.dtype), a.reshape(n, c, h * w), a)


def _times(sym: torch.Tensor, unrolled: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``sym @ unrolled`` in ``a``'s shape and layout: (N, nH·nW, nC) rows are the channels_last layout, so the
    gradient comes out in it without a copy."""
    n, c, h, w = a.shape
    if a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous():
        return (unrolled.transpose(1, 2) @ sym.transpose(1, 2)).transpose(1, 2).view(n, c, h, w)
    return (sym @ unrolled).view(n, c, h, w)


def _weighted(a: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``a`` in fp32 (or wider), times ``weight`` if given, unrolled to (N, nC, nH·nW) (a view where it can be)."""
    n, c, h, w = a.shape
    x = a.to(torch.promote_types(a.dtype, torch.float32))
    return (x if weight is None else x * weight.to(x.dtype)).reshape(n, c, h * w)


def gram(a: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``G = A·Aᵀ`` of the activations unrolled to ``A`` of shape ``(nC, nH·nW)``; shape (N, nC, nC)."""
    with torch.autocast(a.device.type, enabled=False):  # autocast would run the matmul in bf16/fp16
        return _Gram.apply(a, None)


def weighted_gram(a: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``Σ_p w_p² a_p a_pᵀ``: the Gram of ``a · weight`` (``weight`` (1, 1, H, W)), un-normalised; its sum over the
    tiles of a picture is the picture's (:mod:`.tiling`)."""
    with torch.autocast(a.device.type, enabled=False):
        return _Gram.apply(a, weight)


def normalized_gram(a: torch.Tensor) -> torch.Tensor:
    """``G / (nH·nW)``: the Gram divided by its own spatial size, so images of different sizes are comparable."""
    _, _, h, w = a.shape
    return gram(a) / float(h * w)


def masked_normalized_gram(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gram of the activations weighted by ``mask`` (1, 1, H, W) in [0, 1], divided by the mask's area.

    With a mask of ones this equals :func:`normalized_gram`; a region's style statistics are compared as if that
    region were the whole image. An empty mask gives a zero Gram.
    """
    with torch.autocast(a.device.type, enabled=False):
        return _Gram.apply(a, mask) / mask.sum().clamp_min(1e-8)


def style_layer_cost(target_ngram: torch.Tensor, a_g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 2 for one layer: ``1/(4·nC²·(nH·nW)²) · Σ(G_S − G_G)²``.

    ``target_ngram`` is the style image's :func:`normalized_gram`. Writing eq. 2 as
    ``1/(4·nC²) · Σ(G_S/(nH·nW) − G_G/(nH·nW))²`` is the same number when both images have the same size, and
    stays meaningful when the style image has another size (each Gram divided by its own nH·nW).
    """
    n_c = a_g.shape[1]
    generated = normalized_gram(a_g) if mask is None else masked_normalized_gram(a_g, mask)
    return (target_ngram - generated).pow(2).sum() / (4.0 * n_c * n_c)


def style_cost(
    targets: Sequence[torch.Tensor],
    activations: Sequence[torch.Tensor],
    weights: Sequence[float],
    masks: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Weighted sum over layers of :func:`style_layer_cost` (the seed weights each of its 5 layers 0.2).

    ``masks`` (one per layer, at that layer's resolution) restrict the style to a region.
    """
    total = activations[0].new_zeros((), dtype=torch.float32)
    layer_masks = masks if masks is not None else [None] * len(targets)
    for target, a_g, weight, mask in zip(targets, activations, weights, layer_masks, strict=True):
        if weight:
            total = total + weight * style_layer_cost(target, a_g, mask)
    return total


def tv_cost(image: torch.Tensor) -> torch.Tensor:
    """Total variation: squared differences between neighbouring pixels (in [0, 1]), summed over the channels and
    both directions, averaged over the ``H·W`` positions. It smooths Adam's pixel-level speckle.

    Averaged like eq. 1 and eq. 2 (whose per-pixel gradients also shrink as ``1/(H·W)``), so one weight keeps the
    same balance at every output size and every scale of a coarse-to-fine run.
    """
    _, _, height, width = image.shape
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return (dx.float().pow(2).sum() + dy.float().pow(2).sum()) / float(height * width)


def temporal_cost(image: torch.Tensor, target: torch.Tensor, reliability: torch.Tensor) -> torch.Tensor:
    """Short-term temporal cost of a video frame (Ruder et al. 2016, eq. 7): ``1/D · Σ c · (x − ω)²`` over the
    ``D`` = C·H·W values, where ``ω`` is the previous stylised frame warped onto this one and ``c`` in [0, 1] how
    much each pixel's warp is trusted (0 where the previous frame did not see it). Averaged like the other costs;
    the style's pull on a pixel still grows faster than this one's as the size shrinks, so a small clip needs a
    larger weight (README, "Video and animated GIF")."""
    diff = image.float() - target.float()
    return (reliability.float() * diff.pow(2)).sum() / float(image.numel())
