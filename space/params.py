"""The ``/stylize`` endpoint's parameters: one table, in API order, each with its component and description.

Everything positional comes from :data:`PARAMS`: the endpoint function's signature and docstring (which Gradio
turns into the API docs, the ``gradio_client`` parameter names and defaults, and the MCP tool's schema), the
event's input components, the example rows and the preset updates. A parameter that is a :class:`StyleConfig`
field takes its range, default and help from there, so adding a setting is one config field plus one line here.

The order is public: ``gradio_client`` users may pass arguments by position, so new parameters go at the end.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr
import torch

from style_transfer.config import PRESETS, default_of, field_spec, number, preset
from style_transfer.output import FILE_FORMATS

from .guards import guard_image_input, guard_region, guard_setting
from .limits import max_size

REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One parameter of the endpoint."""

    name: str
    doc: str  # its description in the API docs and the MCP tool
    make: Callable[[Any], gr.components.Component]  # its component, given the default value
    annotation: Any
    default: Any  # when a caller leaves it out; REQUIRED for the two images
    kind: Literal["image", "setting", "region"] = "setting"  # how its component's input is guarded
    what: str = ""  # for images and the region: how messages name it ("style image 2", "mask")


def _spec(name: str) -> tuple[dict, Any]:
    f = field_spec(name)
    return dict(f.metadata), default_of(f)


def _doc(meta: dict, top: float | None = None) -> str:
    """A setting's API description: the config's help, with its range (up to ``top``, the Space's own maximum, when
    given) or choices."""
    if meta["choices"]:
        return f"{meta['help']} One of: {', '.join(meta['choices'])}."
    if meta["min"] is not None:
        return f"{meta['help']} Range {number(meta['min'])}-{number(meta['max'] if top is None else top)}."
    return meta["help"]


def slider(name: str, label: str, step: float, maximum: float | None = None) -> Param:
    """A StyleConfig field as a slider: range, default and help from the config (``maximum``: the Space's own)."""
    meta, default = _spec(name)
    top = meta["max"] if maximum is None else maximum

    def make(value):
        return gr.Slider(meta["min"], top, value=value, step=step, label=label, info=meta["help"])

    return Param(name, _doc(meta, top), make, type(default), default)


def number_box(name: str, label: str, **kw: Any) -> Param:
    """A StyleConfig field as a number box: range, default and help from the config."""
    meta, default = _spec(name)

    def make(value):
        return gr.Number(value=value, minimum=meta["min"], maximum=meta["max"], info=meta["help"], label=label, **kw)

    return Param(name, _doc(meta), make, type(default), default)


def radio(name: str, label: str) -> Param:
    """A StyleConfig field with choices as radio buttons: choices, default and help from the config."""
    meta, default = _spec(name)

    def make(value):
        return gr.Radio(list(meta["choices"]), value=value, label=label, info=meta["help"])

    return Param(name, _doc(meta), make, str, default)


def image(name: str, what: str, doc: str, label: str, height: int, elem_id: str, required: bool = False, **kw) -> Param:
    """An image input (a file path for our loader, see guards.guard_image_input); optional unless ``required``."""

    def make(value):
        sources = kw.get("sources", ["upload", "clipboard"])
        return gr.Image(type="filepath", label=label, sources=sources, height=height, elem_id=elem_id)

    default, annotation = (REQUIRED, str) if required else (None, str | None)
    return Param(name, doc, make, annotation, default, kind="image", what=what)


def blend(number: int, label: str, doc: str) -> Param:
    """The blend weight of a style image (not a config field: the engine takes one tuple of weights)."""
    return Param(
        f"style_{number}_blend",
        doc,
        lambda value: gr.Slider(0, 10, value=value, step=0.1, label=label),
        float,
        1,
    )


def _output_format(value: str) -> gr.Radio:
    info = "The settings are embedded in the file; tiff has 16 bits per channel, for print."
    return gr.Radio(list(FILE_FORMATS), value=value, label="Download format", info=info)


def _mask(value: None) -> gr.ImageEditor:
    return gr.ImageEditor(
        type="pil",
        label="Region: paint where the style goes (leave empty for everywhere)",
        sources=["upload"],
        brush=gr.Brush(colors=["#ffffff"], default_size=40, color_mode="fixed"),
        layers=False,
        height=360,
        elem_id="mask",
    )


# fmt: off
PARAMS: tuple[Param, ...] = (
    image("content", "content image", "the photo to repaint (image file or URL).", "Content image", 300, "content",
          required=True, sources=["upload", "clipboard", "webcam"]),
    image("style", "style image", "the painting whose style to copy (image file or URL).", "Style image", 300, "style",
          required=True),
    slider("size", "Output size (px)", 16, maximum=max_size(torch.cuda.is_available())),
    slider("steps", "Steps", 1),
    slider("style_strength", "Style strength", 0.5),
    slider("learning_rate", "Learning rate", 0.001),
    slider("preview_every", "Preview every N steps", 1),
    number_box("seed", "Seed", precision=0),
    number_box("content_weight", "Content weight α"),
    number_box("style_weight", "Style weight β (before strength)"),
    number_box("tv_weight", "Total-variation weight (before strength)"),
    radio("init", "Start from"),
    image("style_2", "style image 2", "optional second style image, blended with the first.",
          "Second style (optional)", 220, "style2"),
    image("style_3", "style image 3", "optional third style image.", "Third style (optional)", 220, "style3"),
    blend(1, "Blend weight of the style image", "blend weight of the first style (weights are normalised)."),
    blend(2, "Blend weight of the second style", "blend weight of the second style."),
    blend(3, "Blend weight of the third style", "blend weight of the third style."),
    radio("preserve_colors", "Keep the photo's colours"),
    slider("style_scale", "Style scale (brush size)", 0.05),
    slider("scales", "Coarse-to-fine scales (0 = auto)", 1),
    radio("optimizer", "Optimiser"),
    radio("pooling", "Pooling"),
    radio("precision", "Precision"),
    Param("mask", 'region to paint, as an image-editor value {"background", "layers", "composite"}: the painted '
          "layers' opacity (or an opaque black-and-white layer's brightness) marks where the style goes.",
          _mask, dict | None, None, kind="region", what="mask"),
    image("background_style", "background style image",
          "optional style for the unpainted region (otherwise the photo is kept there).",
          "Style for the unpainted region (optional)", 360, "background-style"),
    Param("output_format", 'format of the downloadable file: "png", "jpeg", "webp" or "tiff" (16 bits per channel, '
          "for print); the settings are embedded.", _output_format, str, FILE_FORMATS[0]),
)
# fmt: on
BY_NAME = {p.name: p for p in PARAMS}
NAMES = tuple(BY_NAME)
# The parameters that a preset sets, in table order.
PRESET_FIELDS = tuple(name for name in NAMES if any(name in values for values in PRESETS.values()))
# The presets the UI can apply in full (every setting they name is a parameter here); e.g. "seed" also sets Adam's
# beta1 and epsilon, which only the CLI and the Python API expose.
UI_PRESETS = tuple(name for name, values in PRESETS.items() if set(values) <= set(NAMES))

SUMMARY = "Paint the content image in the style of the style image (Gatys et al.), streaming intermediate results."
RETURNS = (
    "A stream of (result image, (before, after) pair, loss table, status text, download file or None); the last\n"
    "item is the final result."
)


def docstring(names: Sequence[str] = NAMES) -> str:
    """The endpoint's docstring: Gradio reads the summary and the ``Args:`` lines (one line each) for its docs."""
    args = "\n".join(f"    {name}: {BY_NAME[name].doc}" for name in names)
    returns = "\n".join("    " + line for line in RETURNS.splitlines())
    return f"{SUMMARY}\n\nArgs:\n{args}\n\nReturns:\n{returns}\n"


class Endpoint:
    """The endpoint as one app serves it: the table with the app's defaults, and the components made from it.

    ``defaults`` overrides some parameters' defaults (e.g. a smaller size on a CPU); the override is the default
    of the function, of its component and so of the API.
    """

    def __init__(self, defaults: Mapping[str, Any] | None = None) -> None:
        overrides = dict(defaults or {})
        unknown = set(overrides) - set(NAMES)
        if unknown:
            raise KeyError(f"not parameters of the endpoint: {', '.join(sorted(unknown))}")
        self.overrides = overrides
        self.defaults = {name: overrides.get(name, BY_NAME[name].default) for name in NAMES}
        self.components: dict[str, gr.components.Component] = {}

    def component(self, name: str) -> gr.components.Component:
        """Make the parameter's component where it is called (inside app.py's layout), with its input guard."""
        param = BY_NAME[name]
        value = self.defaults[name]
        component = param.make(None if value is REQUIRED else value)
        if param.kind == "image":
            guard_image_input(component, param.what)
        elif param.kind == "setting":
            guard_setting(component, name)
        else:
            guard_region(component, param.what)
        self.components[name] = component
        return component

    def remaining(self) -> list[gr.components.Component]:
        """Make the components of the parameters not laid out yet, in a row here (a new setting shows up until
        it is given its own place); nothing when every parameter has its component."""
        names = [name for name in NAMES if name not in self.components]
        if not names:
            return []
        with gr.Row():
            return [self.component(name) for name in names]

    def inputs(self, names: Sequence[str] = NAMES) -> list[gr.components.Component]:
        """The components of ``names`` (all parameters by default) in table order: an event's ``inputs``."""
        missing = [name for name in names if name not in self.components]
        if missing:
            raise LookupError(f"no component was laid out for: {', '.join(missing)}")
        return [self.components[name] for name in names]

    def signature(self, names: Sequence[str] = NAMES) -> inspect.Signature:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [inspect.Parameter(n, kind, default=self.defaults[n], annotation=BY_NAME[n].annotation) for n in names],
            return_annotation=Iterator[tuple],
        )

    def function(
        self, run: Callable[[dict[str, Any]], Iterator[tuple]], name: str = "stylize", names: Sequence[str] = NAMES
    ) -> Callable[..., Iterator[tuple]]:
        """The endpoint function: takes ``names`` (all parameters) by position or name, calls ``run(values)``.

        ``values`` maps every parameter to its value (the default where it was not given). Gradio reads the
        function's ``__signature__`` and ``__doc__`` for the API's parameter names, defaults and descriptions.
        """
        signature = self.signature(names)
        missing = [n for n in NAMES if n not in names and self.defaults[n] is REQUIRED]
        if missing:
            raise ValueError(f"required parameters left out: {', '.join(missing)}")

        def endpoint(*args: Any, **kwargs: Any) -> Iterator[tuple]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            yield from run({**self.defaults, **bound.arguments})

        endpoint.__name__ = endpoint.__qualname__ = name
        endpoint.__signature__ = signature
        endpoint.__doc__ = docstring(names)
        endpoint.__module__ = run.__module__
        return endpoint

    def example_names(self) -> tuple[str, ...]:
        """The parameters an example row fills: all those with a default value (not the optional images)."""
        return tuple(name for name in NAMES if self.defaults[name] is not None)

    def example(self, content: str, style: str) -> list[Any]:
        """An example row for :meth:`example_names`: the two images, every setting at its default."""
        values = {**self.defaults, "content": content, "style": style}
        return [values[name] for name in self.example_names()]

    def apply_preset(self, name: str) -> list[Any]:
        """Values of :data:`PRESET_FIELDS` for a named preset (fields it does not name go back to their defaults)."""
        values = {field: self.defaults[field] for field in PRESET_FIELDS}
        values.update(preset(name))
        return [values[field] for field in PRESET_FIELDS]
