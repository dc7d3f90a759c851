"""The optimisation loop: Adam on the pixels of the generated image, streamed as a generator of frames.

``stylize`` yields a :class:`Frame` right after the first forward pass (step 0, the starting image), then every
``preview_every`` steps, and always the final image. Closing the generator (a UI's Stop, a client that leaves)
raises ``GeneratorExit`` at the pending ``yield``, so no further step runs. Between previews the loop never
copies to the host: the loss values are read only when a frame is made.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image

from . import losses
from .config import StyleConfig
from .images import ImageSource, load_image, pil_to_tensor, resize_longest, tensor_to_pil
from .model import VGGFeatures, load_model, resolve_device


@dataclass
class Frame:
    """One streamed state of a run: the image after ``step`` of ``total_steps`` steps and its cost terms."""

    step: int
    total_steps: int
    image: Image.Image
    losses: dict[str, float] = field(default_factory=dict)  # content, style, tv (unweighted) and total J
    elapsed: float = 0.0  # seconds since stylize() was called

    @property
    def done(self) -> bool:
        """True for the final frame of a run."""
        return self.step >= self.total_steps


class NonFiniteLossError(RuntimeError):
    """The cost became NaN or infinite; ``last_frame`` holds the last good frame (or None)."""

    def __init__(self, message: str, last_frame: Frame | None) -> None:
        super().__init__(message)
        self.last_frame = last_frame


def prepare_images(content: ImageSource, style: ImageSource, cfg: StyleConfig) -> tuple[Image.Image, Image.Image]:
    """Load both inputs as RGB and resize them to the run's size (longest side ``cfg.size``)."""
    content_img = resize_longest(load_image(content, name="content image"), cfg.size)
    style_img = resize_longest(load_image(style, name="style image"), cfg.size)
    return content_img, style_img


class Objective:
    """The total cost J for one content/style pair, with the targets computed once, without gradients."""

    def __init__(self, model: VGGFeatures, content: torch.Tensor, style: torch.Tensor, cfg: StyleConfig) -> None:
        self.model = model
        self.cfg = cfg
        self.style_layers = cfg.style_layers
        self.layer_weights = cfg.layer_weights
        self.layers = tuple(dict.fromkeys((cfg.content_layer, *cfg.style_layers)))
        with torch.no_grad():
            self.content_target = model(content, (cfg.content_layer,))[cfg.content_layer].float()
            style_acts = model(style, cfg.style_layers)
            self.style_targets = [losses.normalized_gram(style_acts[name]) for name in cfg.style_layers]

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total cost of ``image`` and its unweighted terms (tensors, no host sync)."""
        acts = self.model(image, self.layers)
        j_content = losses.content_cost(self.content_target, acts[self.cfg.content_layer])
        j_style = losses.style_cost(self.style_targets, [acts[n] for n in self.style_layers], self.layer_weights)
        j_tv = losses.tv_cost(image) if self.cfg.tv_weight else None
        total = losses.total_cost(
            j_content, j_style, self.cfg.content_weight, self.cfg.style_weight, j_tv, self.cfg.tv_weight
        )
        terms = {"content": j_content, "style": j_style, "total": total}
        if j_tv is not None:
            terms["tv"] = j_tv
        return total, terms


def stylize(
    content: ImageSource,
    style: ImageSource,
    config: StyleConfig | None = None,
    *,
    model: VGGFeatures | None = None,
    **overrides: object,
) -> Iterator[Frame]:
    """Paint ``content`` in the style of ``style`` (Gatys et al.), yielding :class:`Frame` objects as it goes.

    ``config`` holds the settings (defaults: :class:`StyleConfig`); keyword ``overrides`` change single fields,
    e.g. ``stylize("a.jpg", "b.jpg", size=256, steps=200)``. Inputs and settings are validated before any
    network work. Pass ``model`` to reuse a loaded :class:`VGGFeatures` (its device is then used).
    """
    start = time.perf_counter()
    cfg = dataclasses.replace(config or StyleConfig(), **overrides).validate()
    content_img, style_img = prepare_images(content, style, cfg)
    if model is None:
        model = load_model(cfg.weights, resolve_device(cfg.device))
    device = model.device()

    content_t = pil_to_tensor(content_img, device)
    objective = Objective(model, content_t, pil_to_tensor(style_img, device), cfg)
    image = _initial_image(content_t, cfg).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)

    def frame(step: int, terms: dict[str, torch.Tensor], last: Frame | None) -> Frame:
        values = {k: float(v.detach()) for k, v in terms.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLossError(
                f"The optimisation diverged at step {step} (the cost became NaN or infinite). "
                "Try a lower learning rate or style weight.",
                last,
            )
        return Frame(step, cfg.steps, tensor_to_pil(image), values, time.perf_counter() - start)

    last: Frame | None = None
    for step in range(cfg.steps):
        optimizer.zero_grad(set_to_none=True)
        total, terms = objective(image)
        if step % cfg.preview_every == 0:
            last = frame(step, terms, last)
            yield last  # a consumer that closes us here stops the run: no further step
        total.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0.0, 1.0)

    with torch.no_grad():
        _, terms = objective(image)
    yield frame(cfg.steps, terms, last)


def _initial_image(content: torch.Tensor, cfg: StyleConfig) -> torch.Tensor:
    if cfg.init == "noise":
        generator = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(content.shape, generator=generator).to(content.device)
    return content.clone()


def run(content: ImageSource, style: ImageSource, config: StyleConfig | None = None, **overrides: object) -> Frame:
    """Run :func:`stylize` to the end and return the final frame (``.image`` is the result)."""
    frames = stylize(content, style, config, **overrides)
    final = next(frames)
    for final in frames:  # noqa: B007 - we want the last one
        pass
    return final
