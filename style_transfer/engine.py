"""The optimisation loop: the pixels of the generated image are optimised (Adam or L-BFGS), streamed as frames.

``stylize`` yields a :class:`Frame` right after the first forward pass (step 0, the starting image), then every
``preview_every`` steps, at the start of every scale of a coarse-to-fine run, and always the final image.
Closing the generator (a UI's Stop, a client that leaves) raises ``GeneratorExit`` at the pending ``yield``, so
no further step runs. Between previews the loop never copies to the host: costs are read only when a frame is made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from . import accel, colour, graphs, losses
from .config import StyleConfig
from .images import ImageError, ImageSource, check_min_side, load_image, pil_to_tensor, resize_longest, to_pixels
from .model import VGGFeatures, load_model, resolve_device


@dataclass
class Frame:
    """One streamed state of a run: the image after ``step`` of ``total_steps`` steps and its cost terms."""

    step: int
    total_steps: int
    image: Image.Image
    losses: dict[str, float] = field(default_factory=dict)  # content, style (, tv) unweighted, and total J
    elapsed: float = 0.0  # seconds since stylize() was called
    scale: int = 0  # index of the current scale in a coarse-to-fine run
    num_scales: int = 1

    @property
    def done(self) -> bool:
        """True for the final frame of a run."""
        return self.step >= self.total_steps


class NonFiniteLossError(RuntimeError):
    """The cost became NaN or infinite; ``last_frame`` holds the last good frame (or None)."""

    def __init__(self, message: str, last_frame: Frame | None) -> None:
        super().__init__(message)
        self.last_frame = last_frame


StyleSource = ImageSource | Sequence[ImageSource]


@dataclass
class Inputs:
    """The loaded, full-resolution inputs of a run (resized per scale later)."""

    content: Image.Image
    styles: list[Image.Image]
    mask: Image.Image | None = None  # "L": white where the style applies
    background_styles: list[Image.Image] = field(default_factory=list)


def load_inputs(
    content: ImageSource,
    style: StyleSource,
    mask: ImageSource | None = None,
    background_style: StyleSource | None = None,
) -> Inputs:
    """Load every input image (validating each, with its role in error messages)."""
    styles = _as_list(style)
    if not styles:
        raise ValueError("style: give at least one style image")
    loaded = Inputs(
        content=load_image(content, name="content image"),
        styles=[load_image(s, name=_style_name(i, len(styles))) for i, s in enumerate(styles)],
    )
    if mask is not None:
        loaded.mask = load_image(mask, name="mask", matte=0).convert("L")  # transparent = not painted
    if background_style is not None:
        loaded.background_styles = [load_image(s, name="background style image") for s in _as_list(background_style)]
    return loaded


def prepare_images(content: ImageSource, style: ImageSource, cfg: StyleConfig) -> tuple[Image.Image, Image.Image]:
    """Load both inputs as RGB at the run's size (content: longest side ``cfg.size``; style: × ``style_scale``)."""
    content_img = resize_longest(load_image(content, name="content image"), cfg.size)
    check_min_side(content_img, "content image")
    return content_img, prepare_style(style, cfg, "style image")


def prepare_style(style: ImageSource, cfg: StyleConfig, name: str) -> Image.Image:
    """Load one style image as RGB at the size the run measures it (:func:`style_side`); ``name`` for messages."""
    img = load_image(style, name=name)
    img = resize_longest(img, style_side(cfg.size, cfg, max(img.size)))
    check_min_side(img, name)
    return img


def _check_sides(inputs: Inputs, cfg: StyleConfig, size: int) -> None:
    check_min_side(resize_longest(inputs.content, size), "content image")
    for i, style in enumerate([*inputs.styles, *inputs.background_styles]):
        name = _style_name(i, len(inputs.styles)) if i < len(inputs.styles) else "background style image"
        check_min_side(resize_longest(style, style_side(size, cfg, max(style.size))), name)


def _as_list(style: StyleSource) -> list[ImageSource]:
    return list(style) if isinstance(style, (list, tuple)) else [style]


def _style_name(index: int, count: int) -> str:
    return "style image" if count == 1 else f"style image {index + 1}"


def style_side(size: int, cfg: StyleConfig, own: int | None = None) -> int:
    """Longest side of a style image for an output of ``size`` px: ``style_scale`` × the output size.

    With ``own`` (the style image's own longest side) the base is never above it: a 500 px painting is measured
    at 500 px for a 2048 px output instead of being blown up 4x into blurred blocks (an explicit ``style_scale``
    above 1 still enlarges it, as asked).
    """
    base = size if own is None else min(size, own)
    return max(16, round(base * cfg.style_scale))


class Objective:
    """The total cost J at one scale, with every target computed once, without gradients.

    ``styles`` are blended by ``blend`` (normalised): the target Gram of each layer is the weighted mean of the
    styles' Grams. With a ``mask`` (1, 1, H, W) the style cost is measured on the masked region only, and the
    optional ``background`` styles are matched on the rest.
    """

    def __init__(
        self,
        model: VGGFeatures,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        cfg: StyleConfig,
        blend: Sequence[float] | None = None,
        mask: torch.Tensor | None = None,
        background: Sequence[torch.Tensor] = (),
        amp: bool = False,
        temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.amp = amp  # bf16 autocast for the network; the targets use it too, so both sides match
        self.cfg = cfg
        self.style_layers = cfg.style_layers
        self.layer_weights = cfg.layer_weights
        self.layers = tuple(dict.fromkeys((cfg.content_layer, *cfg.style_layers)))
        with torch.no_grad():
            self.content_target = self.features(content, (cfg.content_layer,))[cfg.content_layer].float()
            self.style_targets = self._blended_grams(styles, blend)
            self.background_targets = self._blended_grams(background, None) if background else None
            self.masks = self._layer_masks(mask, content) if mask is not None else None
        self.temporal = temporal  # (target image, per-pixel reliability) at this scale, or None

    def _blended_grams(self, images: Sequence[torch.Tensor], blend: Sequence[float] | None) -> list[torch.Tensor]:
        weights = list(blend) if blend else [1.0] * len(images)
        if len(weights) != len(images):
            raise ValueError(f"style_blend_weights: {len(weights)} weights given for {len(images)} style images")
        total = float(sum(weights))
        grams = [0.0] * len(self.style_layers)
        for image, weight in zip(images, weights, strict=True):
            if weight == 0:
                continue
            acts = self.features(image, self.style_layers)
            for i, name in enumerate(self.style_layers):
                grams[i] = grams[i] + (weight / total) * losses.normalized_gram(acts[name])
        return grams

    def _layer_masks(self, mask: torch.Tensor, content: torch.Tensor) -> list[torch.Tensor]:
        """The mask at each style layer's resolution (area-averaged, so soft edges stay soft).

        A layer of block b sees the image after b - 1 poolings of 2 (each rounding down): no forward pass needed.
        """
        masks = []
        for name in self.style_layers:
            height, width = content.shape[-2:]
            for _ in range(int(name[5]) - 1):  # "block4_conv1" -> 3 poolings
                height, width = height // 2, width // 2
            masks.append(F.adaptive_avg_pool2d(mask, (height, width)))
        return masks

    def features(self, image: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The network's activations, under bf16 autocast when enabled."""
        with accel.autocast(image.device, self.amp):
            return self.model(image, layers)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total cost of ``image`` and its unweighted terms (tensors, no host sync)."""
        acts = self.features(image, self.layers)
        style_acts = [acts[n] for n in self.style_layers]
        j_content = losses.content_cost(self.content_target, acts[self.cfg.content_layer])
        j_style = losses.style_cost(self.style_targets, style_acts, self.layer_weights, self.masks)
        if self.background_targets is not None and self.masks is not None:
            inverse = [1.0 - m for m in self.masks]
            j_style = j_style + losses.style_cost(self.background_targets, style_acts, self.layer_weights, inverse)
        j_tv = losses.tv_cost(image) if self.cfg.tv_weight else None
        total = losses.total_cost(
            j_content, j_style, self.cfg.content_weight, self.cfg.style_weight, j_tv, self.cfg.effective_tv_weight
        )
        terms = {"content": j_content, "style": j_style, "total": total}
        if j_tv is not None:
            terms["tv"] = j_tv
        if self.temporal is not None and self.cfg.temporal_weight:
            terms["temporal"] = losses.temporal_cost(image, *self.temporal)
            terms["total"] = total = total + self.cfg.temporal_weight * terms["temporal"]
        return total, terms


def stylize(
    content: ImageSource,
    style: StyleSource,
    config: StyleConfig | None = None,
    *,
    model: VGGFeatures | None = None,
    mask: ImageSource | None = None,
    background_style: StyleSource | None = None,
    init_image: torch.Tensor | None = None,
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    **overrides: object,
) -> Iterator[Frame]:
    """Paint ``content`` in the style of ``style`` (Gatys et al.), yielding :class:`Frame` objects as it goes.

    ``style`` may be one image or a list (blended by ``style_blend_weights``). ``mask`` (white = paint here)
    limits the style to a region; outside it the photo is kept, or painted in ``background_style`` if given.
    ``config`` holds the settings (defaults: :class:`StyleConfig`); keyword ``overrides`` change single fields,
    e.g. ``stylize("a.jpg", "b.jpg", size=256, steps=200)``. Settings and inputs are validated by the call itself
    (:class:`ConfigError`, :class:`ImageError`, ``ValueError``), before any network work.
    Pass ``model`` to reuse a loaded :class:`VGGFeatures` (its device is then used).
    ``init_image`` (1, 3, H, W) in [0, 1] replaces ``cfg.init`` as the starting image (resized to each run's
    first scale); ``temporal`` = (target, reliability), (1, 3, H, W) and (1, 1, H, W), adds the cost
    ``temporal_weight`` · mean(reliability · (image − target)²): how a video's frame is tied to the previous one.
    """
    start = time.perf_counter()
    if config is not None and not isinstance(config, StyleConfig):
        raise TypeError(
            f"config: expected a StyleConfig, got {type(config).__name__} (pass single settings as keywords instead)"
        )
    cfg = (config if config is not None else StyleConfig()).replace(**overrides)  # unknown names are refused by name
    inputs = load_inputs(content, style, mask, background_style)
    if cfg.style_blend_weights and len(cfg.style_blend_weights) != len(inputs.styles):
        raise ValueError(
            f"style_blend_weights: {len(cfg.style_blend_weights)} weights given for {len(inputs.styles)} style images"
        )
    if inputs.background_styles and inputs.mask is None:
        raise ValueError("background_style: it paints the region outside a mask; give a mask too, or leave it out")
    if inputs.mask is not None and not inputs.background_styles and inputs.mask.getextrema()[1] == 0:
        raise ImageError("mask: it is black everywhere, so nothing would be painted (white = paint here)")
    # Everything above runs at the call, so a bad setting or image fails there, not at the first next().
    return _frames(inputs, cfg, model, start, init_image, temporal)


def _frames(
    inputs: Inputs,
    cfg: StyleConfig,
    model: VGGFeatures | None,
    start: float,
    init_image: torch.Tensor | None = None,
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Iterator[Frame]:
    """The run itself, for :func:`stylize`: every scale's optimisation, then the final frame."""
    if model is None:
        model = load_model(cfg.weights, resolve_device(cfg.device), cfg.pooling)
    accel.configure_backends(model.device())  # constant, process-wide values: the same for every request
    schedule = cfg.scale_sizes()
    _check_sides(inputs, cfg, schedule[0][0])  # the smallest scale must still fit through VGG's four poolings
    image: torch.Tensor | None = None
    last: Frame | None = None
    done_steps = 0
    try:
        for scale, (size, steps) in enumerate(schedule):
            stage = _Stage(model, inputs, cfg, size, scale, len(schedule), start, temporal)
            image = stage.start_image(image if image is not None or init_image is None else init_image)
            for frame in _optimise(stage, image, steps, done_steps):
                last = frame
                yield frame  # a consumer that closes us here stops the run: no further step
            done_steps += steps
            image = stage.project(image.detach())
        yield stage.evaluate_frame(image, cfg.steps)
    except NonFiniteLossError as exc:
        exc.last_frame = last
        raise


class _Stage:
    """Everything for one scale of a run: inputs at that size, the objective, and the region to keep."""

    def __init__(
        self,
        model: VGGFeatures,
        inputs: Inputs,
        cfg: StyleConfig,
        size: int,
        scale: int,
        num_scales: int,
        start: float,
        temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        device = model.device()
        self.cfg, self.scale, self.num_scales, self.start = cfg, scale, num_scales, start
        self.layout = accel.memory_format(device)

        def tensor(img: Image.Image, side: int) -> torch.Tensor:
            return pil_to_tensor(resize_longest(img, side), device).contiguous(memory_format=self.layout)

        self.content = tensor(inputs.content, size)
        styles = [tensor(s, style_side(size, cfg, max(s.size))) for s in inputs.styles]
        background = [tensor(s, style_side(size, cfg, max(s.size))) for s in inputs.background_styles]
        if cfg.preserve_colors == "histogram":
            styles = [colour.match_colour_statistics(s, self.content) for s in styles]
            background = [colour.match_colour_statistics(s, self.content) for s in background]
        self.styles = styles
        mask = _mask_tensor(inputs.mask, self.content) if inputs.mask is not None else None
        amp = accel.use_bf16(cfg, device)
        if temporal is not None:  # at this scale's size, on its device
            temporal = tuple(_upscale(t.to(device), self.content) for t in temporal)  # type: ignore[assignment]
        self.objective = Objective(
            model,
            self.content,
            styles,
            cfg,
            cfg.style_blend_weights or None,
            mask,
            background,
            amp=amp,
            temporal=temporal,
        )
        # Outside the mask the photo is kept exactly (unless a background style paints it).
        self.keep = (1.0 - mask) if mask is not None and not background else None

    def start_image(self, previous: torch.Tensor | None) -> torch.Tensor:
        """The first scale starts from ``cfg.init`` (or the given image); later ones from the previous result,
        upscaled."""
        if previous is None:
            image = _initial_image(self.content, self.styles, self.cfg)
        else:
            image = _upscale(previous, self.content)
        return self.project(image).contiguous(memory_format=self.layout).requires_grad_(True)

    def project(self, image: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], and the photo itself outside the mask (a new tensor: L-BFGS differentiates it)."""
        image = image.clamp(0.0, 1.0)
        return image if self.keep is None else image.lerp(self.content, self.keep)

    def project_(self, image: torch.Tensor) -> None:
        """:meth:`project` in place, allocating nothing (after every Adam step)."""
        image.clamp_(0.0, 1.0)
        if self.keep is not None:
            image.lerp_(self.content, self.keep)

    def evaluate_frame(self, image: torch.Tensor, step: int) -> Frame:
        """A frame of ``image`` with its costs evaluated now, without gradients (returns; never yields)."""
        with torch.no_grad():
            return self.frame(image, self.objective(image)[1], step)

    def frame(self, image: torch.Tensor, terms: dict[str, torch.Tensor], step: int) -> Frame:
        """A frame of ``image`` (the only host copy, awaited now); refuses NaN/inf costs."""
        return self.start_frame(image, terms, step).result()

    def start_frame(self, image: torch.Tensor, terms: dict[str, torch.Tensor], step: int) -> _PendingFrame:
        """Start the frame of ``image``: its pixels and costs are queued for the host behind the work already
        queued, and :meth:`_PendingFrame.result` waits for them. Later steps may be queued in between (they write
        other buffers in stream order), so a GPU keeps working while the host makes the picture."""
        shown = image.detach()
        if self.cfg.preserve_colors == "luminance":
            shown = colour.keep_content_colours(shown, self.content)
        costs = torch.stack([v.detach().float() for v in terms.values()])  # one host copy for all the costs
        return _PendingFrame(self, step, list(terms), _to_host(costs), _to_host(to_pixels(shown)))


def _to_host(tensor: torch.Tensor) -> torch.Tensor:
    """A copy on the host, queued (to pinned memory) without waiting when ``tensor`` is on a GPU."""
    return tensor.to("cpu", non_blocking=True) if tensor.is_cuda else tensor


@dataclass
class _PendingFrame:
    """A frame whose host copies were queued; :meth:`result` waits for them and builds the :class:`Frame`."""

    stage: _Stage
    step: int
    names: list[str]
    costs: torch.Tensor
    pixels: torch.Tensor
    copied: torch.cuda.Event | None = None

    def __post_init__(self) -> None:
        if torch.cuda.is_available() and self.pixels.is_pinned():
            self.copied = torch.cuda.Event()
            self.copied.record()

    def result(self) -> Frame:
        """The frame (waits for its copies); refuses NaN/inf costs."""
        if self.copied is not None:
            self.copied.synchronize()
        values = dict(zip(self.names, self.costs.tolist(), strict=True))
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLossError(
                f"The optimisation diverged at step {self.step} (the cost became NaN or infinite). "
                "Try a lower learning rate or style weight.",
                None,
            )
        stage = self.stage
        return Frame(
            self.step,
            stage.cfg.steps,
            Image.fromarray(self.pixels.numpy(), "RGB"),  # RGB from an array is copied: the pinned block may go
            values,
            time.perf_counter() - stage.start,
            stage.scale,
            stage.num_scales,
        )


def _optimise(stage: _Stage, image: torch.Tensor, steps: int, offset: int) -> Iterator[Frame]:
    """``steps`` optimiser steps on ``image`` (in place), yielding a frame at its first step and at every multiple
    of ``preview_every`` of the whole run (``offset`` is the steps done at earlier scales).

    Grad mode is thread-local and a consumer may resume this generator on another thread (Gradio does), so no
    mode is held across a ``yield``: each step turns gradients on for itself (:func:`_adam_step`,
    :func:`_lbfgs_step`), each preview turns them off for itself (:meth:`_Stage.evaluate_frame`).
    """
    cfg = stage.cfg
    lbfgs = cfg.optimizer == "lbfgs"
    graphed = graphs.wanted(cfg.cuda_graphs, image.device)
    optimizer = _make_optimizer(cfg, image, capturable=graphed)
    step_graph = closure_graph = None
    if graphed and lbfgs:
        closure_graph = graphs.capture_closure(image, lambda x: _lbfgs_loss(stage, x))
    elif graphed:
        step_graph = graphs.capture_step(image, optimizer, stage.objective, stage.project_)

    def preview_at(local: int) -> bool:  # every preview_every steps of the whole run, and at each scale's start
        return local == 0 or (offset + local) % cfg.preview_every == 0

    local = 0
    while local < steps:
        preview = preview_at(local)
        if lbfgs:
            if preview:
                yield stage.evaluate_frame(stage.project(image.detach()), offset + local)
            _lbfgs_step(stage, optimizer, image, closure_graph)
        elif step_graph is not None:
            step_graph.step()
            if preview:  # the graph's buffers hold the pre-step image and its costs, as in the eager step
                pending = stage.start_frame(step_graph.shown, step_graph.terms, offset + local)
                if local + 1 < steps and not preview_at(local + 1):
                    step_graph.step()  # queued now: the GPU runs it while the host makes (and sends) the picture
                    local += 1
                yield pending.result()
        else:
            frame = _adam_step(stage, optimizer, image, offset + local if preview else None)
            if frame is not None:
                yield frame
        local += 1


def _adam_step(
    stage: _Stage, optimizer: torch.optim.Optimizer, image: torch.Tensor, preview_step: int | None
) -> Frame | None:
    """One Adam step on ``image`` in place, gradients on for the step alone.

    With ``preview_step`` the frame of the image *before* the step is returned (its costs come from this step's
    forward pass, so a preview costs no extra pass); otherwise None.
    """
    frame = None
    with torch.enable_grad():
        optimizer.zero_grad(set_to_none=True)
        total, terms = stage.objective(image)
        if preview_step is not None:
            frame = stage.frame(image, terms, preview_step)
        total.backward()
    optimizer.step()
    with torch.no_grad():
        stage.project_(image)
    return frame


# The most a pixel may move in one L-BFGS step: 0.10-0.26 measured in normal runs (128-160 px, max and avg pooling),
# 7e6 in one that blew up (temple x great_wave, avg pooling).
LBFGS_MAX_MOVE = 0.5


def _lbfgs_loss(stage: _Stage, image: torch.Tensor) -> torch.Tensor:
    """J of the projected image, back-propagated to ``image`` (what an L-BFGS evaluation computes)."""
    # L-BFGS sees J(project(x)): clamping x in place after its step would break its curvature pairs.
    total, _ = stage.objective(stage.project(image))
    total.backward()
    return total


def _lbfgs_step(
    stage: _Stage, optimizer: torch.optim.LBFGS, image: torch.Tensor, graphed: graphs.GraphedClosure | None = None
) -> None:
    """One L-BFGS iteration (one cost evaluation, no line search) on the unconstrained pixels; ``graphed`` replays
    the evaluation as a CUDA graph."""

    def closure() -> torch.Tensor:
        if graphed is not None:
            return graphed()
        optimizer.zero_grad(set_to_none=True)
        total = _lbfgs_loss(stage, image)
        image.grad = image.grad.contiguous()  # L-BFGS flattens it with .view(-1)
        return total

    before = image.detach().clone()
    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        move = image.detach().sub(before)
        largest = float(move.abs().max())  # L-BFGS synchronises in every step anyway
        if largest > LBFGS_MAX_MOVE:
            # Without a line search one step can jump far outside [0, 1], where J(project(x)) has no gradient and
            # the run would stay stuck on a saturated picture: shorten it, and tell L-BFGS (its next curvature pair
            # is s = t·d, so t must match the step taken).
            factor = LBFGS_MAX_MOVE / largest
            image.copy_(before.add_(move, alpha=factor))
            optimizer.state[image]["t"] *= factor


def _make_optimizer(cfg: StyleConfig, image: torch.Tensor, capturable: bool = False) -> torch.optim.Optimizer:
    """The run's optimiser on ``image``; ``capturable`` (Adam on CUDA) keeps its state on the GPU for a graph."""
    if cfg.optimizer == "lbfgs":
        # Bounded history keeps memory at 2 * history * pixels floats; tolerances 0 so it never stops early.
        return torch.optim.LBFGS(
            [image], lr=1.0, max_iter=1, history_size=cfg.lbfgs_history, tolerance_grad=0.0, tolerance_change=0.0
        )
    return torch.optim.Adam(
        [image],
        lr=cfg.learning_rate,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        **accel.adam_kwargs(image.device, capturable),
    )


def preload() -> None:
    """Import now what a run would otherwise import on first use, so that a server's first request is as fast as
    its later ones: building the first optimiser imports ``torch._dynamo`` (on a 2-core EPYC the first frame of a
    first 256 px request took 1.37 s instead of 0.54 s), and the first JPEG loads PIL's plugins. On ZeroGPU the
    forked GPU worker inherits them.
    """
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    Image.init()


def _initial_image(content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: StyleConfig) -> torch.Tensor:
    if cfg.init == "content":
        return content.clone()
    generator = torch.Generator().manual_seed(cfg.seed)
    noise = torch.rand(content.shape, generator=generator).to(content.device)
    if cfg.init == "noise":
        return noise
    base = 0.5 if cfg.init == "gray" else torch.stack([s.mean(dim=(2, 3)) for s in styles]).mean(0)[..., None, None]
    return (base + 0.1 * (noise - 0.5)).clamp(0.0, 1.0)


def _upscale(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The previous scale's result, resized to the next scale's size (bicubic)."""
    return F.interpolate(image, size=like.shape[-2:], mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def _mask_tensor(mask: Image.Image, like: torch.Tensor) -> torch.Tensor:
    height, width = like.shape[-2:]
    resized = mask.resize((width, height), Image.Resampling.BILINEAR)
    return pil_to_tensor(resized.convert("RGB"), like.device)[:, :1]


def run(content: ImageSource, style: StyleSource, config: StyleConfig | None = None, **overrides: object) -> Frame:
    """Run :func:`stylize` to the end and return the final frame (``.image`` is the result)."""
    frames = stylize(content, style, config, **overrides)
    final = next(frames)
    for final in frames:  # noqa: B007 - we want the last one
        pass
    return final
