"""The reference loop, written the plain way a first implementation would be (the baseline, not a straw man).

Same weights (bundled Caffe VGG-19), same preprocessing (BGR, 0–255, minus the mean pixel), same layers, same
alpha/beta and the same init (the content image) as our engine's defaults, Adam(lr=0.02) on the pixels with a clamp.
What makes it "naive" is only how it runs:

* the FULL ``vgg19().features`` module (37 layers, through pool5) runs every step, whatever layers are used;
* the weights are left trainable (``requires_grad=True``): backward also computes (and accumulates) weight
  gradients, and ``optimizer.zero_grad()`` only clears the image's;
* activations are captured with forward hooks; the losses are the seed's equations written out inline;
* ``loss.item()`` is appended to a list every step (a host sync per step on a GPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from style_transfer.config import StyleConfig
from style_transfer.model import build_vgg19_features
from style_transfer.weights import load_conv_params

LEARNING_RATE = 0.02


def build_naive_vgg(device: str | torch.device) -> tuple[nn.Sequential, dict[str, int], torch.Tensor]:
    """torchvision's ``vgg19().features`` layout (all 37 modules) with the Caffe weights; nothing frozen."""
    params, prep = load_conv_params("caffe")
    features, relu_index = build_vgg19_features("max")
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    for conv, (weight, bias) in zip(convs, params, strict=True):
        conv.weight.data = weight.clone()
        conv.bias.data = bias.clone()
    mean_bgr = torch.tensor(prep.mean).view(1, 3, 1, 1)
    return features.to(device), relu_index, mean_bgr.to(device)


def naive_stylize(
    content: torch.Tensor,
    style: torch.Tensor,
    steps: int,
    device: str | torch.device = "cpu",
    snapshot_steps: frozenset[int] = frozenset(),
    clock: Callable[[], float] = time.time,
) -> dict:
    """Run the naive loop; ``content``/``style`` are (1, 3, H, W) RGB tensors in [0, 1].

    Returns the final image, the per-step losses, loop timestamps (``clock()`` at the first step and after the
    last) and ``snapshots``: ``(step, clock(), image copy)`` after the listed steps (0 = the initial image).
    Snapshots are copies on the device (no host transfer, no extra sync).
    """
    defaults = StyleConfig()
    content_layer = defaults.content_layer
    style_layers = list(defaults.style_layers)
    style_weights = list(defaults.layer_weights)
    alpha, beta = defaults.content_weight, defaults.style_weight

    vgg, relu_index, mean_bgr = build_naive_vgg(device)
    content, style = content.to(device), style.to(device)
    network = "full vgg19 features (37 modules, through pool5), weights trainable, forward hooks"
    if min(content.shape[-2:]) < 32 or min(style.shape[-2:]) < 32:
        # pool5 needs at least 32 px on the short side; only tiny test images get here.
        vgg = vgg[:-1]
        network = network.replace("37 modules, through pool5", "36 modules: pool5 dropped, image < 32 px")

    activations = {}

    def save_output(name):
        def hook(module, inputs, output):
            activations[name] = output

        return hook

    for name in [content_layer, *style_layers]:
        vgg[relu_index[name]].register_forward_hook(save_output(name))

    def preprocess(img):
        x = img * 255.0
        x = x[:, [2, 1, 0], :, :]  # RGB -> BGR
        return x - mean_bgr

    def gram_matrix(a):
        # G = A·Aᵀ divided by the image's own nH·nW: eq. 2's 1/(nH·nW)² factor moved inside the square, so that a
        # style image of another size (aspect) than the content still gives the seed's number (as the engine does).
        _, n_c, n_h, n_w = a.shape
        a = a.view(n_c, n_h * n_w)
        return torch.matmul(a, a.t()) / (n_h * n_w)

    def content_cost(a_c, a_g):
        _, n_c, n_h, n_w = a_g.shape
        return torch.sum((a_c - a_g) ** 2) / (4 * n_h * n_w * n_c)

    def style_layer_cost(g_s, a_g):
        n_c = a_g.shape[1]
        g_g = gram_matrix(a_g)
        return torch.sum((g_s - g_g) ** 2) / (4 * n_c**2)

    # Targets.
    vgg(preprocess(content))
    a_c = activations[content_layer].detach()
    vgg(preprocess(style))
    style_grams = [gram_matrix(activations[name]).detach() for name in style_layers]

    generated = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([generated], lr=LEARNING_RATE)
    losses: list[float] = []
    snapshots = []
    if 0 in snapshot_steps:
        snapshots.append((0, clock(), generated.detach().clone()))

    t_start, cpu_start = clock(), time.process_time()
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        vgg(preprocess(generated))
        j_content = content_cost(a_c, activations[content_layer])
        j_style = 0
        for weight, g_s, name in zip(style_weights, style_grams, style_layers, strict=True):
            j_style = j_style + weight * style_layer_cost(g_s, activations[name])
        loss = alpha * j_content + beta * j_style
        loss.backward()
        optimizer.step()
        generated.data.clamp_(0, 1)
        losses.append(loss.item())
        if step in snapshot_steps:
            snapshots.append((step, clock(), generated.detach().clone()))
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    t_end, cpu_end = clock(), time.process_time()
    return {
        "image": generated.detach(),
        "losses": losses,
        "t_loop_start": t_start,
        "t_loop_end": t_end,
        "cpu_loop_s": cpu_end - cpu_start,
        "snapshots": snapshots,
        "config": {
            "content_layer": content_layer,
            "style_layers": style_layers,
            "style_layer_weights": style_weights,
            "alpha": alpha,
            "beta": beta,
            "learning_rate": LEARNING_RATE,
            "optimizer": "torch.optim.Adam defaults (betas 0.9/0.999, eps 1e-8)",
            "network": network,
        },
    }
