"""Every hyperparameter of a run, with its default, allowed range and help text.

This module is the single source of truth: the CLI's flags, the UI's sliders and the API's validation are all
generated from :class:`StyleConfig`'s field metadata, so a default or a range is changed here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .layers import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, canonical_layer

INIT_CHOICES = ("content", "noise", "gray", "style-mean")

# Limits that are not fields of one run but bound them (also used by the UI and the image loader).
MIN_SIZE = 32
# 8192 px: beyond what any machine holds untiled, so a run over the memory budget is computed in tiles (memory.py).
MAX_SIZE = 8192
MAX_STEPS = 5000
# The most frames one video run stylises (a minute at 30 fps); longer clips are cut with start/duration/max_frames.
MAX_VIDEO_FRAMES = 1800
# Automatic coarse-to-fine (scales=0) starts at about this size: 1024 px runs at 512 then 1024, 2048 px at 512,
# 1024, 2048; up to ~720 px is one scale (smaller starts lost the photo's layout on the quality harness).
AUTO_SCALE_START = 512
# Videos: the temporal cost's weight (measured with bench/video.py, README "Video").
TEMPORAL_WEIGHT_DEFAULT = 1e12
# Weights of terms that count only where a run is given their data (a video frame's warped previous frame).
PER_FRAME = ("temporal_weight",)


# The single "style strength" knob (StyleConfig.style_strength): it multiplies style_weight (and tv_weight, which
# holds the style's speckle in check, so their balance stays) by 10 ** ((strength - 5) / 2.5): 5 keeps the
# configured weights, every 2.5 steps is a factor of 10, and 0 / 10 mean x0.01 / x100. With the smoothing weight
# left fixed, a low strength let it dominate and the picture came out blurred (lake_boats x Starry Night, 160 px,
# strength 0 and 2.5).
STRENGTH_MIN, STRENGTH_MAX, STRENGTH_DEFAULT = 0.0, 10.0, 5.0
STRENGTH_SCALED = ("style_weight", "tv_weight")


# Average pooling's features are weaker than max pooling's, and so are the content and style costs: the style cost
# at the start was 25-45x smaller on five example pairs at 256 px (lake_boats x Starry Night 42x; content cost after
# 100 steps 33x). The pixel-level smoothing term is not, so at the same tv_weight it dominated and the picture came
# out blurred; with average pooling it is weighted this much less (StyleConfig.effective_tv_weight).
AVG_POOLING_TV_SCALE = 1 / 35


def strength_multiplier(strength: float) -> float:
    """Factor applied to ``style_weight`` and ``tv_weight`` for a style strength in [0, 10] (5 -> 1, 0 -> 0.01,
    10 -> 100)."""
    return 10.0 ** ((float(strength) - STRENGTH_DEFAULT) / 2.5)


class ConfigError(ValueError):
    """A setting is out of range or of the wrong kind; the message names the field and what is allowed."""


def _field(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    advanced: bool = False,
    **kw: Any,
) -> Any:
    meta = {"help": help, "min": min, "max": max, "choices": choices, "advanced": advanced}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class StyleConfig:
    """Settings of one style-transfer run (Gatys et al.), defaults from the seed project.

    The total cost is ``J = content_weight * J_content + style_weight * J_style + tv_weight * J_tv``, the last two
    weights scaled by the style strength and the last for average pooling (``effective_style_weight``,
    ``effective_tv_weight``); its terms are listed in ``terms.py``. A field named ``*_weight`` is the weight of a
    cost term.
    Pixels live in [0, 1]; Adam updates them, never the network.
    """

    size: int = _field(512, "Longest side of the output image, in pixels.", min=MIN_SIZE, max=MAX_SIZE)
    steps: int = _field(300, "Number of optimisation steps (Adam or L-BFGS).", min=1, max=MAX_STEPS)
    learning_rate: float = _field(0.02, "Adam learning rate on pixels in [0, 1] (the seed's 0.02).", min=1e-4, max=1.0)
    # alpha 1e3 at block4_conv2 takes about as much style as the seed's 1e4 at block5_conv2 and keeps more of the
    # photo; beta is 100x the seed's 1e-2 so that the style shows clearly within 300 Adam steps (README, "Defaults").
    content_weight: float = _field(1e3, "alpha: weight of the content cost J_content.", min=0.0, max=1e8)
    style_weight: float = _field(
        1.0, "beta: weight of the style cost J_style (before the style strength).", min=0.0, max=1e6
    )
    # On by default: without it Adam leaves coloured pixel-level speckle (noise figure 1.2 vs 0.1-0.3 with it on
    # the quality harness, README "Defaults and how they were chosen"). Size-independent (losses.tv_cost).
    tv_weight: float = _field(
        5e9,
        "Weight of the total-variation (smoothness) term, before the style strength: removes pixel-level speckle; "
        "0 turns it off.",
        min=0.0,
        max=1e12,
    )
    style_strength: float = _field(
        STRENGTH_DEFAULT,
        "How strongly the style is painted: 5 keeps style_weight and tv_weight; every 2.5 more or less multiplies "
        "or divides both by 10 (0 = x0.01, 10 = x100).",
        min=STRENGTH_MIN,
        max=STRENGTH_MAX,
    )
    content_layer: str = _field(DEFAULT_CONTENT_LAYER, "VGG-19 layer whose activations define content.", advanced=True)
    style_layers: tuple[str, ...] = _field(
        DEFAULT_STYLE_LAYERS, "VGG-19 layers whose Gram matrices define style.", advanced=True
    )
    style_layer_weights: tuple[float, ...] = _field(
        (), "Weight of each style layer (same order); empty = equal weights summing to 1.", advanced=True
    )
    init: str = _field(
        "content",
        "Starting image: the content photo, seeded noise, flat grey or the style's mean colour (both lightly noised).",
        choices=INIT_CHOICES,
        advanced=True,
    )
    style_blend_weights: tuple[float, ...] = _field(
        (), "Blend weight of each style image (normalised to sum 1); empty = equal.", advanced=True
    )
    style_scale: float = _field(
        1.0, "Size of the style image relative to the output (smaller = finer brush strokes).", min=0.25, max=4.0
    )
    preserve_colors: str = _field(
        "none",
        "Keep the photo's colours: 'luminance' transfers only brightness; 'histogram' recolours the style "
        "image with the photo's colour statistics first.",
        choices=("none", "luminance", "histogram"),
    )
    pooling: str = _field(
        "max", "VGG-19 pooling: max (as trained) or avg (smoother).", choices=("max", "avg"), advanced=True
    )
    optimizer: str = _field(
        "adam",
        "Adam (the seed's) or L-BFGS (fewer steps to the same cost, more work per step).",
        choices=("adam", "lbfgs"),
        advanced=True,
    )
    lbfgs_history: int = _field(
        10, "L-BFGS memory (pairs kept); bounded so memory stays small.", min=2, max=100, advanced=True
    )
    scales: int = _field(
        0,
        "Coarse-to-fine: number of sizes, each twice the last, ending at the output size; the steps are shared "
        "between them (the last gets half). 1 = single size, 0 = automatic (from about 512 px up).",
        min=0,
        max=4,
    )
    seed: int = _field(
        0, "Random seed (noise init and any randomness); runs are reproducible on CPU.", min=0, max=2**31 - 1
    )
    preview_every: int = _field(
        20, "Yield a preview frame every N steps (the final image is always yielded).", min=1, max=500
    )
    beta1: float = _field(0.9, "Adam beta1 (momentum).", min=0.0, max=0.9999, advanced=True)
    beta2: float = _field(0.999, "Adam beta2.", min=0.0, max=0.99999, advanced=True)
    eps: float = _field(1e-8, "Adam epsilon.", min=1e-12, max=1.0, advanced=True)
    precision: str = _field(
        "auto",
        "Network arithmetic: fp32, or bf16 autocast (Gram and costs stay fp32); auto = bf16 where the hardware "
        "has it (CUDA, AVX-512-BF16/AMX CPUs) with Adam, else fp32.",
        choices=("auto", "fp32", "bf16"),
        advanced=True,
    )
    cuda_graphs: str = _field(
        "on",
        "On a CUDA GPU, capture each Adam step (or L-BFGS evaluation) in a CUDA graph: one launch instead of "
        "hundreds per step (several times faster at 512 px, the same result); falls back to eager steps when "
        "capture fails. No effect on a CPU.",
        choices=("off", "on"),
        advanced=True,
    )
    weights: str = _field(
        "caffe",
        "Network weights: 'caffe' (bundled original VGG-19, offline), "
        "'torchvision' (ImageNet, downloads once) or a path to a state-dict file.",
        advanced=True,
    )
    device: str = _field(
        "auto", "Where to run: auto (CUDA when available), cpu or cuda.", choices=("auto", "cpu", "cuda"), advanced=True
    )
    memory_limit: str = _field(
        "auto",
        "Most memory the run may use for the picture, the optimiser and the network's activations (the weights "
        "aside), e.g. 512M, 2G or 3.5G: a picture that would not fit is computed in tiles, with the same result. "
        "auto = the free memory on a GPU, no limit on a CPU.",
        advanced=True,
    )
    # Videos: ties each frame to the previous stylised one, warped by optical flow (Ruder et al. 2016); no effect on
    # a still image.
    temporal_weight: float = _field(
        TEMPORAL_WEIGHT_DEFAULT,
        "Video: weight of the temporal cost that ties each frame to the previous one (less flicker); "
        "0 = every frame on its own. No effect on a still image.",
        min=0.0,
        max=1e14,
    )

    def validate(self) -> StyleConfig:
        """Check every field against its range; raise :class:`ConfigError` naming the field. Returns ``self``."""
        for f in dataclasses.fields(self):
            value = _coerce(f, getattr(self, f.name))
            _check_field(f, value)
            setattr(self, f.name, value)
        try:
            self.content_layer = canonical_layer(self.content_layer)
        except KeyError as exc:
            raise ConfigError(f"content_layer: {exc.args[0]}") from None
        try:
            self.style_layers = tuple(canonical_layer(name) for name in self.style_layers)
        except KeyError as exc:
            raise ConfigError(f"style_layers: {exc.args[0]}") from None
        if not self.style_layers:
            raise ConfigError("style_layers: give at least one layer.")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(
                f"style_layer_weights: {len(self.style_layer_weights)} weights given for "
                f"{len(self.style_layers)} style layers; give one per layer or none."
            )
        if self.style_layer_weights and not sum(self.style_layer_weights) > 0:
            raise ConfigError("style_layer_weights: at least one weight must be above 0.")
        if self.style_blend_weights and not sum(self.style_blend_weights) > 0:
            raise ConfigError("style_blend_weights: at least one style's blend weight must be above 0.")
        from .memory import parse_size  # here: memory reads this module

        try:
            parse_size(self.memory_limit)
        except ValueError as exc:
            raise ConfigError(f"memory_limit: {exc}") from None
        # The cost terms' weights; the temporal term counts only in a video's frames (it needs the previous one).
        weights = [f.name for f in dataclasses.fields(self) if f.name.endswith("_weight") and f.name not in PER_FRAME]
        if not any(getattr(self, name) for name in weights):
            raise ConfigError(f"{', '.join(weights)}: at least one must be above 0.")
        factor = strength_multiplier(self.style_strength)
        for name in STRENGTH_SCALED:  # a product the user never typed: say where it comes from
            top = field_spec(name).metadata["max"]
            if getattr(self, name) * factor > top:
                raise ConfigError(
                    f"{name}: {getattr(self, name):g} × {factor:g} (style strength {self.style_strength:g}) is above "
                    f"the maximum {top:g}; lower one of them"
                )
        return self

    def replace(self, **changes: Any) -> StyleConfig:
        """A validated copy with some fields changed (unknown names are refused)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validate()

    @property
    def effective_style_weight(self) -> float:
        """The style term's weight in J: ``style_weight`` times the style strength's factor."""
        return self.style_weight * strength_multiplier(self.style_strength)  # one of STRENGTH_SCALED

    @property
    def effective_tv_weight(self) -> float:
        """The smoothing term's weight in J: ``tv_weight`` times the style strength's factor (the smoothing keeps
        its balance with the style), scaled for average pooling (AVG_POOLING_TV_SCALE)."""
        weight = self.tv_weight * strength_multiplier(self.style_strength)  # one of STRENGTH_SCALED
        return weight * (AVG_POOLING_TV_SCALE if self.pooling == "avg" else 1.0)

    @property
    def layer_weights(self) -> tuple[float, ...]:
        """Per-style-layer weights: the given ones, or equal weights summing to 1 (the seed uses 0.2 each)."""
        if self.style_layer_weights:
            return tuple(float(w) for w in self.style_layer_weights)
        return tuple(1.0 / len(self.style_layers) for _ in self.style_layers)

    def scale_sizes(self) -> list[tuple[int, int]]:
        """The coarse-to-fine schedule: ``(size, steps)`` per scale, ending at ``(self.size, …)``.

        Sizes double from scale to scale. Automatic (``scales=0``) starts at about ``AUTO_SCALE_START`` px: below
        that the content layer (block4, 1/8 of the size) is too coarse to hold the photo's layout, and a run of at
        most that size is one scale. The last scale gets half the steps, so it has time to repair the blur of the
        upscaled picture with strokes of its own; the earlier scales share the rest equally.
        """
        count = self.scales or 1 + max(0, int(math.log2(max(self.size, 1) / AUTO_SCALE_START + 1e-9)))
        count = max(1, min(count, 4, self.steps))
        while count > 1 and self.size / 2 ** (count - 1) < MIN_SIZE:
            count -= 1
        sizes = [max(MIN_SIZE, round(self.size / 2 ** (count - 1 - i))) for i in range(count)]
        last = self.steps if count == 1 else (self.steps + 1) // 2
        base, extra = divmod(self.steps - last, max(1, count - 1))
        return [(size, base + (1 if i < extra else 0)) for i, size in enumerate(sizes[:-1])] + [(sizes[-1], last)]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (tuples as lists), e.g. for metadata or JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


OUTPUT_FORMATS = ("png", "jpeg", "webp")
VIDEO_OUTPUT_FORMATS = ("mp4", "gif", "webp")
FLOW_CHOICES = ("ultrafast", "fast", "medium")


@dataclass
class VideoConfig:
    """Settings of a video run that a still image does not have: which frames, how many steps after the first,
    the optical flow. The per-frame settings (size, steps of the first frame, weights including
    ``temporal_weight``) are the :class:`StyleConfig`'s."""

    frame_steps: int = _field(
        100,
        "Video: optimisation steps of every frame after the first (which gets --steps); each starts from the "
        "previous stylised frame, so it needs fewer.",
        min=1,
        max=MAX_STEPS,
    )
    start: float = _field(0.0, "Video: where to start in the clip, in seconds.", min=0.0, max=86400.0)
    duration: float = _field(0.0, "Video: how many seconds to stylise; 0 = to the end.", min=0.0, max=86400.0)
    max_frames: int = _field(
        0,
        f"Video: stylise at most this many frames; 0 = up to the limit ({MAX_VIDEO_FRAMES}).",
        min=0,
        max=MAX_VIDEO_FRAMES,
    )
    loop: bool = _field(False, "Video: make the last frame flow into the first (for a looping GIF).")
    # DIS presets on a pan and a zoom of a 256 px photo (bench/video.py --flow): end-point error 0.08 / 0.31 px
    # (ultrafast), 0.06 / 0.24 (fast), 0.03 / 0.10 (medium) for 0.5, 0.9 and 3.7 ms a flow: all negligible beside
    # the optimisation (seconds a frame), so the most accurate is the default.
    flow: str = _field(
        "medium", "Video: optical-flow quality (OpenCV DIS preset): ultrafast, fast or medium.", choices=FLOW_CHOICES
    )

    def validate(self) -> VideoConfig:
        """Check every field against its range; raise :class:`ConfigError` naming the field. Returns ``self``."""
        for f in dataclasses.fields(self):
            value = _coerce(f, getattr(self, f.name))
            _check_field(f, value)
            setattr(self, f.name, value)
        return self

    def replace(self, **changes: Any) -> VideoConfig:
        """A validated copy with some fields changed (unknown names are refused)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown video setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings."""
        return dataclasses.asdict(self)


def video_field_specs() -> list[dataclasses.Field]:
    """The fields of :class:`VideoConfig` in order (metadata as for :func:`field_specs`)."""
    return list(dataclasses.fields(VideoConfig))


# Named settings that change several controls at once (UI dropdown, CLI --preset); unnamed fields keep defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "subtle": {"style_weight": 0.1, "steps": 200, "tv_weight": 0.0},
    "balanced": {},
    "bold": {"style_weight": 10.0, "steps": 400, "style_scale": 0.75},
    "high-res": {"size": 1024, "steps": 400, "scales": 0, "optimizer": "lbfgs"},
    # The seed project exactly (its Streamlit app: TensorFlow's Adam with beta1 0.99 and epsilon 0.1, fp32, 10
    # epochs of 100 steps at 512 px, alpha 1e4, beta 1e-2, no smoothing, one scale), for comparison.
    "seed": {
        "size": 512,
        "steps": 1000,
        "learning_rate": 0.02,
        "beta1": 0.99,
        "beta2": 0.999,
        "eps": 0.1,
        "content_weight": 1e4,
        "content_layer": "block5_conv2",
        "style_weight": 1e-2,
        "tv_weight": 0.0,
        "scales": 1,
        "init": "content",
        "pooling": "max",
        "optimizer": "adam",
        "precision": "fp32",
        "style_scale": 1.0,
    },
}


def preset(name: str) -> dict[str, Any]:
    """The settings of a named preset (see :data:`PRESETS`); a clear error for unknown names."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ConfigError(f"preset: {name!r} is not one of {', '.join(PRESETS)}") from None


def field_specs() -> list[dataclasses.Field]:
    """The fields of :class:`StyleConfig` in order; each has ``metadata`` with help, min, max, choices, advanced."""
    return list(dataclasses.fields(StyleConfig))


def field_spec(name: str) -> dataclasses.Field:
    """The field of :class:`StyleConfig` called ``name``."""
    for f in dataclasses.fields(StyleConfig):
        if f.name == name:
            return f
    raise KeyError(name)


def default_of(f: dataclasses.Field) -> Any:
    """The default value of a config field (also for tuple fields built by a factory)."""
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _type_of(f: dataclasses.Field) -> type:
    return type(default_of(f))


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Convert strings/lists from the CLI or the API to the field's type; refuse what does not convert."""
    name = f.name
    kind = _type_of(f)
    if kind is tuple:
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if name.endswith("weights"):
            try:
                return tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name}: expected numbers, got {value!r}") from None
        return tuple(str(v) for v in value)
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        return bool(value)
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if kind is int:
            if not math.isfinite(number) or number != int(number):
                raise ConfigError(f"{name}: expected a whole number, got {value!r}")
            return int(number)
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected text, got {value!r}")
    return value


def number(value: float) -> str:
    """A limit as people write it: integers in full (2147483647, not 2.14748e+09), floats short (1e+06, 0.02)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _check_field(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    name = f.name
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{name}: must be a finite number, got {value!r}")
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{name}: {value!r} is outside the allowed range [{number(lo)}, {number(hi)}]")
    elif isinstance(value, tuple):
        for item in value:
            if isinstance(item, float) and (not math.isfinite(item) or item < 0):
                raise ConfigError(f"{name}: weights must be finite and >= 0, got {item!r}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")
