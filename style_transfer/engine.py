"""The optimisation loop: the pixels of the generated image are optimised (Adam or L-BFGS), streamed as frames.

``stylize`` yields a :class:`Frame` right after the first forward pass (step 0, the starting image), then every
``preview_every`` steps, at the start of every scale of a coarse-to-fine run, and always the final image.
Closing the generator (a UI's Stop, a client that leaves) raises ``GeneratorExit`` at the pending ``yield``, so
no further step runs. Between previews the loop never copies to the host: costs are read only when a frame is made.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import accel, colour, graphs, losses, memory
from .config import StyleConfig
from .images import (
    ImageError,
    ImageSource,
    check_input_side,
    check_min_side,
    load_image,
    longest_fit,
    pil_to_tensor,
    resize_longest,
    to_pixels,
    to_pixels16,
)
from .limits import UPSCALE_NOTE_FACTOR
from .model import VGGFeatures, load_model, resolve_device
from .terms import Term, TermValue, active_terms
from .tiling import TiledObjective


@dataclass
class Frame:
    """One streamed state of a run: the image after ``step`` of ``total_steps`` steps and its cost terms."""

    step: int
    total_steps: int
    image: Image.Image
    losses: dict[str, float] = field(default_factory=dict)  # each term's value unweighted (by name), and total J
    elapsed: float = 0.0  # seconds since stylize() was called
    scale: int = 0  # index of the current scale in a coarse-to-fine run
    num_scales: int = 1
    terms: tuple[TermValue, ...] = ()  # the terms of J, each with its label, weight and weighted value
    stopped: bool = False  # the run ended here, before its last step, because ``should_stop`` said so
    # The final frame's pixels at 16 bits, (H, W, 3) uint16, rounded once from the optimised image (for 16-bit
    # files; ``image`` is rounded to 8 bits). None on the other frames.
    image16: np.ndarray | None = None

    @property
    def total(self) -> float:
        """The total cost J (the sum of the weighted terms)."""
        return self.losses["total"]

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
        content=_load_picture(content, "content image"),
        styles=[_load_picture(s, _style_name(i, len(styles))) for i, s in enumerate(styles)],
    )
    if mask is not None:
        loaded.mask = load_image(mask, name="mask", matte=0).convert("L")  # transparent = not painted
    if background_style is not None:
        loaded.background_styles = [_load_picture(s, "background style image") for s in _as_list(background_style)]
    return loaded


def _shrunk(img: Image.Image, side: int) -> Image.Image:
    """``img`` with its longest side at most ``side`` (never enlarged)."""
    return resize_longest(img, side) if max(img.size) > side else img


def _load_picture(source: ImageSource, name: str) -> Image.Image:
    img = load_image(source, name=name)
    check_input_side(img, name)
    return img


@dataclass
class Prepared:
    """The checked inputs of one run: the settings validated and every image loaded (once), ready for
    :func:`stylize`. ``notes`` are what a user should know before the run (e.g. a small photo is enlarged)."""

    config: StyleConfig
    inputs: Inputs
    notes: tuple[str, ...] = ()

    def fitted(self) -> Prepared:
        """The same run with every image no larger than the run uses it (a small copy to send to another process):
        the photo at most at the output size, each style at most at its largest working side. The last scale sees
        the same pixels as with the full images (with a ``style_scale`` below 1, a style is resampled once more);
        earlier scales of a coarse-to-fine run are resized from the fitted photo."""
        size, cfg = self.config.size, self.config

        def style(img: Image.Image) -> Image.Image:
            own = max(img.size)
            base = min(size, own)  # style_side's base at every scale is min(scale size, own): kept by this side
            return _shrunk(img, min(own, max(base, style_side(size, cfg, own))))

        inputs = Inputs(
            _shrunk(self.inputs.content, size),
            [style(s) for s in self.inputs.styles],
            self.inputs.mask,
            [style(s) for s in self.inputs.background_styles],
        )
        return dataclasses.replace(self, inputs=inputs)


def prepare(
    content: ImageSource | Prepared,
    style: StyleSource | None = None,
    config: StyleConfig | None = None,
    *,
    mask: ImageSource | None = None,
    background_style: StyleSource | None = None,
    **overrides: object,
) -> Prepared:
    """Check a run's settings and inputs and load every image once; raises :class:`ConfigError`,
    :class:`ImageError` or ``ValueError`` with a message that names the problem, before any network work.

    Takes what :func:`stylize` takes; ``stylize(prepare(...))`` runs it without loading or checking again.
    """
    if isinstance(content, Prepared):
        if style is not None or config is not None or mask is not None or background_style is not None or overrides:
            raise TypeError("a Prepared run carries its images and settings: pass it alone")
        return content
    if style is None:
        raise ValueError("style: give at least one style image")
    if config is not None and not isinstance(config, StyleConfig):
        raise TypeError(
            f"config: expected a StyleConfig, got {type(config).__name__} (pass single settings as keywords instead)"
        )
    cfg = (config if config is not None else StyleConfig()).replace(**overrides)  # unknown names are refused by name
    if background_style is not None and mask is None:
        raise ValueError(BACKGROUND_WITHOUT_MASK)
    inputs = load_inputs(content, style, mask, background_style)
    if cfg.style_blend_weights and len(cfg.style_blend_weights) != len(inputs.styles):
        raise ValueError(
            f"style_blend_weights: {len(cfg.style_blend_weights)} weights given for {len(inputs.styles)} style images"
        )
    if inputs.mask is not None and not inputs.background_styles and inputs.mask.getextrema()[1] == 0:
        raise ImageError("mask: it is black everywhere, so nothing would be painted (white = paint here)")
    _check_sides(inputs, cfg, cfg.scale_sizes()[0][0])  # the smallest scale must still fit through VGG's poolings
    return Prepared(cfg, inputs, _notes(inputs, cfg))


BACKGROUND_WITHOUT_MASK = (
    "background_style: it paints the region outside the mask, and no region is marked; mark the region to style "
    "(a mask, white = paint here), or leave the background style out."
)


def _notes(inputs: Inputs, cfg: StyleConfig) -> tuple[str, ...]:
    """What the user should know before the run: a photo far smaller than the output is enlarged (and looks soft)."""
    width, height = inputs.content.size
    factor = cfg.size / max(width, height)
    if factor < UPSCALE_NOTE_FACTOR:
        return ()
    return (
        f"The content image ({width}x{height} px) was enlarged {factor:.1f}x to the {cfg.size} px output, so the "
        "result will look soft; a larger photo or a smaller output size gives a sharper picture.",
    )


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
    above 1 still enlarges it, as asked). Measured against enlarging it (``python -m bench.scale``, 128 vs 1024 px
    with a 192 px painting, the proportions of 512 vs 4096 px with a 768 px one): the large result shrunk looks as
    much like the small one either way (coarse-to-fine starts it at the small size: SSIM 0.61 vs 0.63), while the
    enlarged painting left it 33x less sharp at full size.
    """
    base = size if own is None else min(size, own)
    return max(16, round(base * cfg.style_scale))


class Objective:
    """The total cost J at one scale, with every target computed once, without gradients.

    ``J = Σ weight · value`` over the terms that count in this config (``terms.TERMS``; :attr:`terms` holds each
    with its weight). ``styles`` are blended by ``blend`` (normalised): the target Gram of each layer is the
    weighted mean of the styles' Grams. With a ``mask`` (1, 1, H, W) the style cost is measured on the masked region
    only, and the optional ``background`` styles are matched on the rest.
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
        self.terms: tuple[tuple[Term, float], ...] = active_terms(cfg, self)

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
        """J of ``image`` and each term's unweighted value by name, then ``"total"`` (tensors, no host sync)."""
        acts = self.features(image, self.layers)
        values: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for term, weight in self.terms:
            values[term.name] = term.cost(self, image, acts)
            total = weight * values[term.name] if total is None else total + weight * values[term.name]
        values["total"] = total
        return total, values

    def describe(self, values: dict[str, float]) -> tuple[TermValue, ...]:
        """The terms of a frame whose unweighted ``values`` (by name) were read back: each with label and weight."""
        return tuple(TermValue(term.name, term.label, weight, values[term.name]) for term, weight in self.terms)


def stylize(
    content: ImageSource | Prepared,
    style: StyleSource | None = None,
    config: StyleConfig | None = None,
    *,
    model: VGGFeatures | None = None,
    mask: ImageSource | None = None,
    background_style: StyleSource | None = None,
    should_stop: Callable[[], bool] | None = None,
    init_image: torch.Tensor | None = None,
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    **overrides: object,
) -> Iterator[Frame]:
    """Paint ``content`` in the style of ``style`` (Gatys et al.), yielding :class:`Frame` objects as it goes.

    ``style`` may be one image or a list (blended by ``style_blend_weights``). ``mask`` (white = paint here)
    limits the style to a region; outside it the photo is kept, or painted in ``background_style`` if given.
    ``config`` holds the settings (defaults: :class:`StyleConfig`); keyword ``overrides`` change single fields,
    e.g. ``stylize("a.jpg", "b.jpg", size=256, steps=200)``. Settings and inputs are validated by the call itself
    (:class:`ConfigError`, :class:`ImageError`, ``ValueError``), before any network work; ``content`` may instead
    be a :class:`Prepared` run from :func:`prepare` (checked and loaded already), passed alone.
    Pass ``model`` to reuse a loaded :class:`VGGFeatures` (its device is then used). ``should_stop`` is asked
    before every step (keep it cheap: a clock reading); once it returns True the run ends with a frame of the image
    so far, marked ``stopped``.
    ``init_image`` (1, 3, H, W) in [0, 1] replaces ``cfg.init`` as the starting image (resized to each run's
    first scale); ``temporal`` = (target, reliability), (1, 3, H, W) and (1, 1, H, W), adds the cost
    ``temporal_weight`` · mean(reliability · (image − target)²): how a video's frame is tied to the previous one.
    """
    start = time.perf_counter()
    # At the call, so a bad setting, image or memory budget fails there, not at the first next().
    prepared = prepare(content, style, config, mask=mask, background_style=background_style, **overrides)
    _check_budget(prepared.inputs, prepared.config, model)
    return _frames(prepared.inputs, prepared.config, model, start, should_stop, init_image, temporal)


def _check_budget(inputs: Inputs, cfg: StyleConfig, model: VGGFeatures | None) -> None:
    """A ``memory_limit`` too small for the output size fails at the call (MemoryBudgetError names what works)."""
    limit = memory.parse_size(cfg.memory_limit)
    if limit is None:
        return
    device = model.device() if model is not None else resolve_device(cfg.device)
    width, height = longest_fit(inputs.content.size, cfg.size)  # the size alone: no resize at the call
    memory.plan(height, width, cfg, accel.use_bf16(cfg, device), limit, masked=inputs.mask is not None)


def _frames(
    inputs: Inputs,
    cfg: StyleConfig,
    model: VGGFeatures | None,
    start: float,
    should_stop: Callable[[], bool] | None = None,
    init_image: torch.Tensor | None = None,
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Iterator[Frame]:
    """The run itself, for :func:`stylize`: every scale's optimisation, then the final frame."""
    if model is None:
        model = load_model(cfg.weights, resolve_device(cfg.device), cfg.pooling)
    accel.configure_backends(model.device())  # constant, process-wide values: the same for every request
    schedule = cfg.scale_sizes()
    image: torch.Tensor | None = None
    last: Frame | None = None
    done_steps = 0
    try:
        for scale, (size, steps) in enumerate(schedule):
            stage = _Stage(model, inputs, cfg, size, scale, len(schedule), start, temporal)
            image = stage.start_image(image if image is not None or init_image is None else init_image)
            for frame in _optimise(stage, image, steps, done_steps, should_stop):
                last = frame
                yield frame  # a consumer that closes us here stops the run: no further step
                if frame.stopped:
                    return
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
        # Only their mean colours outlive the targets (the ``style-mean`` start): the memory plan counts the
        # picture's pixels, not the paintings'.
        self.style_means = [s.mean(dim=(2, 3)) for s in styles]
        mask = _mask_tensor(inputs.mask, self.content) if inputs.mask is not None else None
        amp = accel.use_bf16(cfg, device)
        if temporal is not None:  # at this scale's size, on its device
            temporal = tuple(_upscale(t.to(device), self.content) for t in temporal)  # type: ignore[assignment]
        height, width = self.content.shape[-2:]
        plan = memory.plan(height, width, cfg, amp, memory.budget(cfg, device), masked=mask is not None)
        blend = cfg.style_blend_weights or None
        self.objective: Objective | TiledObjective
        if plan.tiled:  # the same J and gradient, the network's memory bounded by one tile
            if temporal is not None:
                raise ValueError(
                    "memory_limit: a video frame is not computed in tiles; raise the memory limit or lower the size"
                )
            tiles = functools.partial(memory.tiles, cfg=cfg, rows=plan.rows, cols=plan.cols)
            sums = functools.partial(memory.tiles, cfg=cfg, rows=plan.sum_rows, cols=plan.sum_cols)
            self.objective = TiledObjective(
                model, self.content, styles, cfg, tiles, blend, mask, background, amp, sum_plan=sums
            )
        else:
            self.objective = Objective(
                model, self.content, styles, cfg, blend, mask, background, amp=amp, temporal=temporal
            )
        # Outside the mask the photo is kept exactly (unless a background style paints it).
        self.keep = (1.0 - mask) if mask is not None and not background else None

    @property
    def tiled(self) -> bool:
        """Whether this scale computes its objective over tiles."""
        return isinstance(self.objective, TiledObjective)

    def value_and_grad(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """J at ``image`` and its terms, with ``∂J/∂image`` accumulated into the leaf ``image`` comes from (call with
        gradients on). Tiled or not, the same numbers to float error."""
        if isinstance(self.objective, TiledObjective):
            return self.objective.backward(image)
        total, terms = self.objective(image)
        total.backward()
        return total, terms

    def start_image(self, previous: torch.Tensor | None) -> torch.Tensor:
        """The first scale starts from ``cfg.init`` (or the given image); later ones from the previous result,
        upscaled."""
        if previous is None:
            image = _initial_image(self.content, self.style_means, self.cfg)
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
        precise = _to_host(to_pixels16(shown)) if step >= self.cfg.steps else None
        return _PendingFrame(self, step, list(terms), _to_host(costs), _to_host(to_pixels(shown)), precise)


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
    pixels16: torch.Tensor | None = None
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
            terms=stage.objective.describe(values),
            image16=None if self.pixels16 is None else self.pixels16.numpy(),
        )


def _optimise(
    stage: _Stage, image: torch.Tensor, steps: int, offset: int, should_stop: Callable[[], bool] | None = None
) -> Iterator[Frame]:
    """``steps`` optimiser steps on ``image`` (in place), yielding a frame at its first step and at every multiple
    of ``preview_every`` of the whole run (``offset`` is the steps done at earlier scales). When ``should_stop()``
    turns True before a step, the last frame is the image so far, marked ``stopped``.

    Grad mode is thread-local and a consumer may resume this generator on another thread (Gradio does), so no
    mode is held across a ``yield``: each step turns gradients on for itself (:func:`_adam_step`,
    :func:`_lbfgs_step`), each preview turns them off for itself (:meth:`_Stage.evaluate_frame`).
    """
    cfg = stage.cfg
    lbfgs = cfg.optimizer == "lbfgs"
    graphed = graphs.wanted(cfg.cuda_graphs, image.device) and not stage.tiled  # a graph would hold every tile
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
        if should_stop is not None and should_stop():
            frame = stage.evaluate_frame(stage.project(image.detach()), offset + local)
            frame.stopped = True
            yield frame
            return
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
        _, terms = stage.value_and_grad(image)
        if preview_step is not None:
            frame = stage.frame(image, terms, preview_step)
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
    total, _ = stage.value_and_grad(stage.project(image))
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
    its later ones: building the first optimiser imports ``torch._dynamo`` (about a second, more than the first frame
    of a 256 px request on a CPU), and the first JPEG loads PIL's plugins. On ZeroGPU the
    forked GPU worker inherits them.
    """
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    Image.init()


def _initial_image(content: torch.Tensor, style_means: Sequence[torch.Tensor], cfg: StyleConfig) -> torch.Tensor:
    if cfg.init == "content":
        return content.clone()
    generator = torch.Generator().manual_seed(cfg.seed)
    noise = torch.rand(content.shape, generator=generator).to(content.device)
    if cfg.init == "noise":
        return noise
    base = 0.5 if cfg.init == "gray" else torch.stack(list(style_means)).mean(0)[..., None, None]
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
