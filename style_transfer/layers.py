"""Names of VGG-19's convolution layers, and the default layer choice.

We name layers the way the seed and Keras do (``block5_conv2``). The PyTorch/Caffe community's names are
accepted as aliases: ``conv5_2`` and ``relu5_2`` mean the same layer. A layer's activation is taken *after* its
ReLU, as Keras' ``block5_conv2`` output (which the seed uses) is.
"""

from __future__ import annotations

# Channels of each conv layer per block; "M" (max-pool) ends each block.
VGG19_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256, 256), (512,) * 4, (512,) * 4)

LAYER_NAMES: tuple[str, ...] = tuple(
    f"block{b}_conv{i}" for b, convs in enumerate(VGG19_BLOCKS, start=1) for i in range(1, len(convs) + 1)
)

# Content at block4_conv2, as in Gatys et al. and most peers (the seed, after the TensorFlow tutorial, took
# block5_conv2: at 512 px it blurred faces and fine shapes; README, "Defaults"). Style at the first conv of every
# block, weighted equally, as in the seed.
DEFAULT_CONTENT_LAYER = "block4_conv2"
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def canonical_layer(name: str) -> str:
    """Map ``block4_conv2``, ``conv4_2`` or ``relu4_2`` (any case) to the canonical ``block4_conv2``."""
    key = name.strip().lower()
    if key in LAYER_NAMES:
        return key
    for prefix in ("conv", "relu"):
        if key.startswith(prefix) and "_" in key:
            block, _, index = key[len(prefix) :].partition("_")
            candidate = f"block{block}_conv{index}"
            if candidate in LAYER_NAMES:
                return candidate
    raise KeyError(f"unknown VGG-19 layer {name!r}; use block1_conv1 … block5_conv4 (or conv1_1 … conv5_4)")


def short_name(name: str) -> str:
    """``block4_conv2`` -> ``conv4_2`` (for compact display)."""
    block, conv = canonical_layer(name).split("_")
    return f"conv{block[5:]}_{conv[4:]}"
