"""The seed's cost functions (eq. 1 and eq. 2 of its README), plus an optional total-variation term.

Activations are ``(N, C, H, W)`` tensors (N = 1). The Gram matrix and the costs are computed in float32 even when
the network runs in lower precision: an fp16 Gram overflows and bf16 loses the small residuals near the optimum.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def content_cost(a_c: torch.Tensor, a_g: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``J_content = 1/(4·nH·nW·nC) · Σ(a_C − a_G)²`` for one layer."""
    _, n_c, n_h, n_w = a_g.shape
    return (a_c.float() - a_g.float()).pow(2).sum() / (4.0 * n_h * n_w * n_c)


def gram(a: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``G = A·Aᵀ`` of the activations unrolled to ``A`` of shape ``(nC, nH·nW)``; shape (N, nC, nC)."""
    n, c, h, w = a.shape
    unrolled = a.float().reshape(n, c, h * w)
    return unrolled @ unrolled.transpose(1, 2)


def normalized_gram(a: torch.Tensor) -> torch.Tensor:
    """``G / (nH·nW)``: the Gram divided by its own spatial size, so images of different sizes are comparable."""
    _, _, h, w = a.shape
    return gram(a) / float(h * w)


def style_layer_cost(target_ngram: torch.Tensor, a_g: torch.Tensor) -> torch.Tensor:
    """Eq. 2 for one layer: ``1/(4·nC²·(nH·nW)²) · Σ(G_S − G_G)²``.

    ``target_ngram`` is the style image's :func:`normalized_gram`. Writing eq. 2 as
    ``1/(4·nC²) · Σ(G_S/(nH·nW) − G_G/(nH·nW))²`` is the same number when both images have the same size, and
    stays meaningful when the style image has another size (each Gram divided by its own nH·nW).
    """
    n_c = a_g.shape[1]
    return (target_ngram - normalized_gram(a_g)).pow(2).sum() / (4.0 * n_c * n_c)


def style_cost(
    targets: Sequence[torch.Tensor], activations: Sequence[torch.Tensor], weights: Sequence[float]
) -> torch.Tensor:
    """Weighted sum over layers of :func:`style_layer_cost` (the seed weights each of its 5 layers 0.2)."""
    total = activations[0].new_zeros((), dtype=torch.float32)
    for target, a_g, weight in zip(targets, activations, weights, strict=True):
        if weight:
            total = total + weight * style_layer_cost(target, a_g)
    return total


def tv_cost(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference between neighbouring pixels (smooths high-frequency noise)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def total_cost(
    j_content: torch.Tensor,
    j_style: torch.Tensor,
    alpha: float,
    beta: float,
    j_tv: torch.Tensor | None = None,
    tv_weight: float = 0.0,
) -> torch.Tensor:
    """``J = α·J_content + β·J_style (+ tv_weight·J_tv)``."""
    total = alpha * j_content + beta * j_style
    if j_tv is not None and tv_weight:
        total = total + tv_weight * j_tv
    return total
