"""The VGG-19 feature extractor: frozen, truncated at the deepest layer a run uses, loaded once per process."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import accel
from .layers import LAYER_NAMES, VGG19_BLOCKS
from .weights import Preprocessing, WeightsError, load_conv_params


class _MaxPool2x2(torch.autograd.Function):
    """2×2 max pooling that keeps no indices for backward: they are recomputed there from the input, which backward
    holds anyway (the in-place ReLU before the pooling saved it). The int64 indices took 2 bytes per input element
    through every step's backward, about a fifth of the activations; recomputing them is one pooling pass per layer.
    The gradients are the same as ``nn.MaxPool2d``'s, bit for bit."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return F.max_pool2d(x, 2, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        args = ([2, 2], [2, 2], [0, 0], [1, 1], False)  # kernel, stride, padding, dilation, ceil_mode
        _, indices = torch.ops.aten.max_pool2d_with_indices(x, *args)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, *args, indices)


class LeanMaxPool2d(nn.MaxPool2d):
    """VGG's 2×2 max pooling, with :class:`_MaxPool2x2` when a gradient will flow through it.

    ``keep_indices_on_cuda`` (process-wide) trades the memory back for the recomputation on a GPU: the GPU check
    measures both.
    """

    keep_indices_on_cuda = False

    def __init__(self) -> None:
        super().__init__(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lean = torch.is_grad_enabled() and x.requires_grad and not (x.is_cuda and self.keep_indices_on_cuda)
        return _MaxPool2x2.apply(x) if lean else super().forward(x)


_STRIDE = _PADDING = _DILATION = (1, 1)  # every VGG conv: 3×3, stride 1, padding 1


def _cudnn_conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.cudnn_convolution_relu(x, weight, bias, _STRIDE, _PADDING, _DILATION, 1)


class _ConvReLU(torch.autograd.Function):
    """``relu(conv(x) + bias)`` in one kernel (:data:`conv_relu_kernel`), differentiated with respect to ``x``
    only (the weights are frozen), with the same two calls autograd makes for a conv and an in-place ReLU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out = _checked_conv_relu(x, weight, bias)
        ctx.save_for_backward(x, weight, out)  # what the conv and the ReLU would save: no extra memory
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, weight, out = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        args = (_STRIDE, _PADDING, _DILATION, False, (0, 0), 1, (True, False, False))
        return torch.ops.aten.convolution_backward(grad, x, weight, None, *args)[0], None, None


conv_relu_kernel = _cudnn_conv_relu  # the fused forward (a test puts a CPU stand-in here)
_checked: set[tuple] = set()  # (input shape, dtype, device, weight shape) whose fused result was checked


def _checked_conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """:data:`conv_relu_kernel`, checked against the plain conv at the first use of each shape (cuDNN picks its
    kernel per shape and keeps it); a disagreement raises, and ``accel.fused_conv_relu`` then turns itself off there.

    ``torch.cudnn_convolution_relu`` hands cuDNN its own uninitialised output as a term to add with weight 0: a
    kernel that read it would turn a NaN left there into a wrong pixel. On a GPU the check therefore also runs the
    same cuDNN plan (its cache key holds the conv, the alignments and that weight) with that term full of NaN.
    """
    fused = conv_relu_kernel(x, weight, bias)
    key = (tuple(x.shape), x.dtype, x.device, tuple(weight.shape))
    if key in _checked:
        return fused
    plain = _conv_relu(x, weight, bias)
    # bf16 rounds the plain conv's output, then its sum with the bias; the fused kernel rounds once. A NaN fails.
    bound = plain.mul(2**-6).add_(2**-6 * float(bias.abs().max()))
    outputs = {"fused": fused}
    if x.is_cuda:
        nan = torch.full_like(plain, float("nan"))
        outputs["fused, given NaN to add with weight 0"] = torch.cudnn_convolution_add_relu(
            x, weight, nan, 0.0, bias, _STRIDE, _PADDING, _DILATION, 1
        )
    for what, out in outputs.items():
        if not bool(plain.sub(out).abs_().le_(bound).all()):
            raise RuntimeError(f"{what} conv + ReLU differs from the plain conv at {list(x.shape)}")
    _checked.add(key)
    return fused


def _fuses(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether ``conv`` and its ReLU run as one kernel: on a GPU, when :func:`_fusable`."""
    return x.is_cuda and _fusable(x, conv)


def _fusable(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """The weights are in the input's dtype (the bf16 copy in a bf16 run) and, under autocast, so is the input (the
    fused call is not autocast's: it would compute in whatever it is given), and the path is on."""
    device = x.device.type
    autocast_ok = not torch.is_autocast_enabled(device) or x.dtype == torch.get_autocast_dtype(device)
    return x.dtype == conv.weight.dtype and autocast_ok and accel.fused_conv_relu.on


def _conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The same as two modules: a conv, then an in-place ReLU."""
    return F.relu_(F.conv2d(x, weight, bias, _STRIDE, _PADDING, _DILATION))


def build_vgg19_features(pooling: str = "max") -> tuple[nn.Sequential, dict[str, int]]:
    """VGG-19's conv stack in torchvision's ``features`` numbering, and each layer's post-ReLU index."""
    layers: list[nn.Module] = []
    relu_index: dict[str, int] = {}
    names = iter(LAYER_NAMES)
    in_ch = 3
    for convs in VGG19_BLOCKS:
        for out_ch in convs:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
            relu_index[next(names)] = len(layers) - 1
            in_ch = out_ch
        layers.append(LeanMaxPool2d() if pooling == "max" else nn.AvgPool2d(2, 2))
    return nn.Sequential(*layers), relu_index


class VGGFeatures(nn.Module):
    """Maps an RGB batch in [0, 1] to the post-ReLU activations of the requested VGG-19 layers.

    The forward pass stops after the deepest requested layer, so deeper layers cost nothing. Parameters are
    frozen: gradients flow to the input image only.
    """

    def __init__(
        self,
        params: list[tuple[torch.Tensor, torch.Tensor]],
        prep: Preprocessing,
        pooling: str = "max",
        bf16_copy: bool = False,
    ) -> None:
        super().__init__()
        self.features, self.relu_index = build_vgg19_features(pooling)
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            for conv, (weight, bias) in zip(convs, params, strict=True):
                if conv.weight.shape != weight.shape:
                    raise WeightsError(
                        f"Weights file is not a VGG-19 state dict: a conv weight of shape {tuple(weight.shape)} where "
                        f"VGG-19 has {tuple(conv.weight.shape)}."
                    )
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
        # A bf16 copy for bf16 autocast runs: autocast would cast every weight and bias again on every forward (26
        # extra kernels per step on a GPU); the copy gives the same numbers without them. Not on a CPU, where it
        # saved no measurable time (60-step CLI runs at 128 px) and cost 60 MB per model.
        self.features_bf16 = copy.deepcopy(self.features).to(torch.bfloat16) if bf16_copy else None
        self.prep = prep
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the network's input convention (Caffe: BGR 0–255 minus mean; torchvision: mean/std)."""
        x = image * self.prep.scale
        if self.prep.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def forward(
        self,
        image: torch.Tensor,
        layers: tuple[str, ...],
        trim: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Activations ``{layer_name: (N, C, H, W)}`` for ``layers`` (canonical names).

        ``trim(block, x)``, if given, may crop the activations entering each block after the first (``block`` 2-5,
        after each pooling): a tile's halo is needed only as far as the layers still to come can see
        (:mod:`.tiling`)."""
        wanted = {self.relu_index[name]: name for name in layers}
        last = max(wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(image)
        features = self.features
        device = x.device.type
        bf16 = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16
        if bf16 and self.features_bf16 is not None:
            features, x = self.features_bf16, x.to(torch.bfloat16)  # what autocast would give conv1, cast once
        relu_done = False  # the ReLU after a fused conv was applied with it
        pools = 0
        for index, module in enumerate(features):
            if relu_done:
                relu_done = False
            elif isinstance(module, nn.Conv2d) and _fuses(x, module):  # the conv and the ReLU after it, in one call
                key = (x.dtype, module.in_channels, module.out_channels)
                x = accel.fused_conv_relu(key, _ConvReLU.apply, _conv_relu, x, module.weight, module.bias)
                relu_done = True
            else:
                x = module(x)
                if trim is not None and isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
                    pools += 1
                    x = trim(pools + 1, x)
            if index in wanted:
                out[wanted[index]] = x
                if index == last:
                    break
        return out

    def device(self) -> torch.device:
        """Where the parameters live."""
        return self.mean.device


_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached(weights: str, device: str, pooling: str) -> VGGFeatures:
    params, prep = load_conv_params(weights)
    # The layout is chosen once here: the model is shared by concurrent requests and must not change under them.
    cuda = torch.device(device).type == "cuda"
    model = VGGFeatures(params, prep, pooling, bf16_copy=cuda and accel.bf16_supported(torch.device(device)))
    return model.to(device).to(memory_format=accel.memory_format(torch.device(device)))


def load_model(weights: str = "caffe", device: str | torch.device = "cpu", pooling: str = "max") -> VGGFeatures:
    """The VGG-19 feature extractor for ``weights`` on ``device``, built once per process and then reused."""
    with _lock:  # two first requests at once must not both read the file
        return _cached(weights, str(torch.device(device)), pooling)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error with a clear message."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use device 'cpu' or 'auto'.")
    return torch.device(name)
