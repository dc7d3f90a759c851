"""The Gradio Space: paint a photo in the style of a painting, and watch the optimisation live.

UI wiring only: layout first, then events, then launch. The engine is ``style_transfer``; request handling
(validation, strength mapping, ZeroGPU duration, frame formatting) is ``style_transfer.space``.
"""

import spaces  # noqa: I001 - must be imported before torch on ZeroGPU

import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import torch

from style_transfer import limits, space
from style_transfer.config import (
    OUTPUT_FORMATS,
    PRESETS,
    STRENGTH_DEFAULT,
    STRENGTH_MAX,
    STRENGTH_MIN,
    default_of,
    field_spec,
    preset,
)
from style_transfer.model import load_model

HERE = Path(__file__).parent
CONTENT_EXAMPLES = sorted((HERE / "examples" / "content").glob("*.jpg"))
STYLE_EXAMPLES = sorted((HERE / "examples" / "styles").glob("*.jpg"))

# ZeroGPU wants the model on CUDA at import time (its CUDA emulation moves it into the worker); no CUDA op runs here.
ON_ZEROGPU = os.getenv("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MODELS = {pooling: load_model("caffe", DEVICE, pooling) for pooling in ("max", "avg")}
# A CPU takes ~0.5 s per step at 256 px (README, Performance), so start smaller there.
UI_DEFAULTS = {} if DEVICE == "cuda" else {"size": 256, "steps": 150, "preview_every": 10}


def stylize(
    content: str,
    style: str,
    size: int,
    steps: int,
    style_strength: float,
    learning_rate: float,
    preview_every: int,
    seed: int,
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    init: str,
    style_2: str | None = None,
    style_3: str | None = None,
    style_1_blend: float = 1.0,
    style_2_blend: float = 1.0,
    style_3_blend: float = 1.0,
    preserve_colors: str = "none",
    style_scale: float = 1.0,
    scales: int = 1,
    optimizer: str = "adam",
    pooling: str = "max",
    precision: str = "auto",
    mask: dict | None = None,
    background_style: str | None = None,
    output_format: str = "png",
) -> Iterator[tuple]:
    """Paint the content image in the style of the style image (Gatys et al.), streaming intermediate results.

    Args:
        content: the photo to repaint (image file or URL).
        style: the painting whose style to copy (image file or URL).
        size: longest side of the output in pixels.
        steps: number of Adam optimisation steps.
        style_strength: 0-10; 5 keeps style_weight, each 2.5 multiplies it by 10.
        learning_rate: Adam learning rate on pixels in [0, 1].
        preview_every: stream an intermediate image every N steps.
        seed: random seed (for noise initialisation).
        content_weight: alpha, weight of the content cost.
        style_weight: beta, weight of the style cost before the strength factor.
        tv_weight: weight of the total-variation smoothing term (0 = off).
        init: starting image: "content", "noise", "gray" or "style-mean".
        style_2: optional second style image, blended with the first.
        style_3: optional third style image.
        style_1_blend: blend weight of the first style (weights are normalised).
        style_2_blend: blend weight of the second style.
        style_3_blend: blend weight of the third style.
        preserve_colors: "none", "luminance" (keep the photo's colours) or "histogram".
        style_scale: size of the style image relative to the output (smaller = finer strokes).
        scales: coarse-to-fine sizes (1 = off, 0 = automatic).
        optimizer: "adam" or "lbfgs".
        pooling: VGG-19 pooling, "max" or "avg".
        precision: "auto", "fp32" or "bf16".
        mask: region to paint, as an image-editor value {"background", "layers", "composite"}: the painted
            layers' opacity (or an opaque black-and-white layer's brightness) marks where the style goes.
        background_style: optional style for the unpainted region (otherwise the photo is kept there).
        output_format: format of the downloadable file: "png", "jpeg" or "webp" (settings embedded).

    Returns:
        A stream of (result image, (before, after) pair, loss table, status text, download file or None); the last
        item is the final result.
    """
    args = locals()  # the parameters, by name: the same names as space.SETTINGS and space.FEATURES
    settings = tuple(args[name] for name in space.SETTINGS)
    features = {name: args[name] for name in space.FEATURES}
    # In the main process: bad input costs no GPU time.
    request = space.check_request(
        content,
        style,
        *settings,
        features=features,
        style_2=style_2,
        style_3=style_3,
        mask=mask,
        background_style=background_style,
    )
    yield from run_on_gpu(request, space.gpu_duration(request) if ON_ZEROGPU else None)


@spaces.GPU(duration=space.gpu_duration)
def run_on_gpu(request: space.Request, time_budget_s: float | None) -> Iterator[tuple]:
    """The whole optimisation loop in one GPU allocation (a forked worker on ZeroGPU; yields are CPU objects)."""
    yield from space.stream(request, MODELS, time_budget_s=time_budget_s)


def _slider(name: str, **kw) -> gr.Slider:
    """A slider whose range, default and help come from StyleConfig (one source of truth)."""
    f = field_spec(name)
    meta = f.metadata
    value = UI_DEFAULTS.get(name, default_of(f))
    return gr.Slider(
        meta["min"],
        meta["max"],
        value=value,
        label=kw.pop("label", name.replace("_", " ").capitalize()),
        info=meta["help"],
        **kw,
    )


def _number(name: str, **kw) -> gr.Number:
    f = field_spec(name)
    meta = f.metadata
    return gr.Number(value=default_of(f), minimum=meta["min"], maximum=meta["max"], info=meta["help"], **kw)


def _radio(name: str, label: str) -> gr.Radio:
    f = field_spec(name)
    return gr.Radio(list(f.metadata["choices"]), value=default_of(f), label=label, info=f.metadata["help"])


PRESET_FIELDS = ("size", "steps", "style_weight", "tv_weight", "style_scale", "scales", "optimizer")


def apply_preset(name: str) -> list:
    """Control values for a named preset (fields it does not name go back to their defaults)."""
    values = {f: UI_DEFAULTS.get(f, default_of(field_spec(f))) for f in PRESET_FIELDS}
    values.update(preset(name))
    return [values[f] for f in PRESET_FIELDS]


def _gallery(paths: list[Path], label: str, columns: int, elem_id: str) -> gr.Gallery:
    """A gallery of example images; selecting one fills an input (see _pick)."""
    return gr.Gallery(
        value=[(str(p), p.stem) for p in paths],
        label=label,
        columns=columns,
        height=150,
        allow_preview=False,
        elem_id=elem_id,
    )


def _optional_style(label: str, height: int, elem_id: str) -> gr.Image:
    """An optional extra style image input (second/third style, background style)."""
    return gr.Image(type="filepath", label=label, sources=["upload", "clipboard"], height=height, elem_id=elem_id)


def _pick(paths: list[Path]):
    def pick(evt: gr.SelectData) -> str:
        return str(paths[evt.index])

    return pick


with gr.Blocks(title="Neural Style Transfer", delete_cache=limits.DELETE_CACHE) as demo:
    gr.Markdown(
        "# Neural Style Transfer\n"
        "Repaint a photo in the style of any painting with the original optimisation method of Gatys et al. "
        "(VGG-19, Adam on the pixels). Pick or upload a **content** photo and a **style** image, press "
        "**Generate**, and watch the picture change step by step."
    )
    with gr.Row():
        with gr.Column():
            content_in = gr.Image(
                type="filepath",
                label="Content image",
                sources=["upload", "clipboard", "webcam"],
                elem_id="content",
                height=300,
            )
            content_gallery = _gallery(CONTENT_EXAMPLES, "Example photos", 4, "content-gallery")
        with gr.Column():
            style_in = gr.Image(
                type="filepath", label="Style image", sources=["upload", "clipboard"], elem_id="style", height=300
            )
            style_gallery = _gallery(STYLE_EXAMPLES, "Example styles", 5, "style-gallery")
        with gr.Column():
            result = gr.Image(
                type="pil",
                format="png",
                label="Result",
                elem_id="result",
                height=300,
                interactive=False,
                buttons=["download", "fullscreen"],
            )
            status = gr.Textbox(label="Progress", elem_id="status", lines=2, interactive=False)
            with gr.Row():
                run_btn = gr.Button("Generate", variant="primary", elem_id="run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
    with gr.Row():
        size = _slider("size", step=16, label="Output size (px)")
        steps = _slider("steps", step=1, label="Steps")
        strength = gr.Slider(
            STRENGTH_MIN,
            STRENGTH_MAX,
            value=STRENGTH_DEFAULT,
            step=0.5,
            label="Style strength",
            info="5 = default balance; each 2.5 multiplies the style weight by 10.",
        )
    with gr.Accordion("Advanced settings", open=False):
        with gr.Row():
            learning_rate = _slider("learning_rate", step=0.001, label="Learning rate")
            preview_every = _slider("preview_every", step=1, label="Preview every N steps")
            seed = _number("seed", precision=0, label="Seed")
        with gr.Row():
            content_weight = _number("content_weight", label="Content weight α")
            style_weight = _number("style_weight", label="Style weight β (before strength)")
            tv_weight = _number("tv_weight", label="Total-variation weight")
            init = _radio("init", "Start from")
        with gr.Row():
            optimizer = _radio("optimizer", "Optimiser")
            scales = _slider("scales", step=1, label="Coarse-to-fine scales (0 = auto)")
            pooling = _radio("pooling", "Pooling")
            precision = _radio("precision", "Precision")
    with gr.Accordion("More styles, colours, region and output", open=False):
        with gr.Row():
            preset_in = gr.Dropdown(
                list(PRESETS),
                value="balanced",
                label="Preset",
                elem_id="preset",
                info="Sets size, steps, weights, scales and optimiser at once.",
            )
            preserve_colors = _radio("preserve_colors", "Keep the photo's colours")
            style_scale = _slider("style_scale", step=0.05, label="Style scale (brush size)")
            output_format = gr.Radio(
                list(OUTPUT_FORMATS),
                value="png",
                label="Download format",
                info="The settings are embedded in the file.",
            )
        with gr.Row():
            style_1_blend = gr.Slider(0, 10, value=1, step=0.1, label="Blend weight of the style image")
            style_2 = _optional_style("Second style (optional)", 160, "style2")
            style_2_blend = gr.Slider(0, 10, value=1, step=0.1, label="Blend weight of the second style")
            style_3 = _optional_style("Third style (optional)", 160, "style3")
            style_3_blend = gr.Slider(0, 10, value=1, step=0.1, label="Blend weight of the third style")
        with gr.Row():
            mask = gr.ImageEditor(
                type="pil",
                label="Region: paint where the style goes (leave empty for everywhere)",
                sources=["upload"],
                brush=gr.Brush(colors=["#ffffff"], default_size=40, color_mode="fixed"),
                layers=False,
                height=360,
                elem_id="mask",
            )
            background_style = _optional_style("Style for the unpainted region (optional)", 360, "background-style")
    with gr.Row():
        compare = gr.ImageSlider(type="pil", format="png", label="Before / after", elem_id="compare", height=360)
        losses = gr.LinePlot(x="step", y="log10 cost", color="term", label="Cost (log10)", elem_id="losses", height=360)
    download = gr.File(label="Download the result (settings embedded)", elem_id="download")

    space.guard_image_input(content_in, "content image")
    space.guard_image_input(style_in, "style image")
    space.guard_image_input(style_2, "style image 2")
    space.guard_image_input(style_3, "style image 3")
    space.guard_image_input(background_style, "background style image")
    inputs = [
        content_in,
        style_in,
        size,
        steps,
        strength,
        learning_rate,
        preview_every,
        seed,
        content_weight,
        style_weight,
        tv_weight,
        init,
    ]
    feature_inputs = {
        "style_1_blend": style_1_blend,
        "style_2_blend": style_2_blend,
        "style_3_blend": style_3_blend,
        "preserve_colors": preserve_colors,
        "style_scale": style_scale,
        "scales": scales,
        "optimizer": optimizer,
        "pooling": pooling,
        "precision": precision,
        "output_format": output_format,
    }
    # Order = stylize()'s parameters after init.
    inputs += [style_2, style_3, *[feature_inputs[name] for name in space.FEATURES[:3]]]
    inputs += [feature_inputs[name] for name in space.FEATURES[3:9]] + [mask, background_style, output_format]
    space.guard_settings(dict(zip(space.SETTINGS, inputs[2:12], strict=True)))  # range errors name the parameter
    space.guard_settings(feature_inputs)
    outputs = [result, compare, losses, status, download]
    pairs = [(c, s) for c, s in zip(CONTENT_EXAMPLES, STYLE_EXAMPLES[: len(CONTENT_EXAMPLES)], strict=False)][:4]
    gr.Examples(
        examples=[[str(c), str(s), *[getattr(component, "value", None) for component in inputs[2:]]] for c, s in pairs],
        inputs=inputs,
        outputs=outputs,
        fn=stylize,
        cache_examples=os.getenv("NST_CACHE_EXAMPLES", "1") == "1",
        cache_mode="lazy",
        visible_columns=[0, 1],
        label="Complete examples (results are cached after the first run)",
        api_visibility="private",
    )
    gr.Markdown(
        "**Tips**: a larger style strength paints more boldly; more steps refine the texture. "
        "The API is documented under *Use via API* below (endpoint `/stylize`)."
    )

    # queue=False: picking an example still works while the queue is full.
    content_gallery.select(_pick(CONTENT_EXAMPLES), None, content_in, api_visibility="private", queue=False)
    style_gallery.select(_pick(STYLE_EXAMPLES), None, style_in, api_visibility="private", queue=False)
    run_event = run_btn.click(
        stylize, inputs, outputs, api_name="stylize", concurrency_limit=limits.queue_limits(ON_ZEROGPU).concurrency
    )
    stop_btn.click(None, None, None, cancels=[run_event], api_visibility="private")
    preset_in.change(
        apply_preset,
        preset_in,
        [size, steps, style_weight, tv_weight, style_scale, scales, optimizer],
        api_visibility="private",
        queue=False,
    )
    content_in.change(space.mask_editor_value, content_in, mask, api_visibility="private", queue=False)

# Explicit queue: ZeroGPU would otherwise shrink it to max_size=1 (see README, "Limits and errors").
demo.queue(max_size=limits.queue_limits(ON_ZEROGPU).max_size)

if __name__ == "__main__":
    demo.launch(
        max_file_size=limits.MAX_UPLOAD,
        footer_links=["api", "gradio", "settings"],
        mcp_server=os.getenv("NST_MCP", "1") == "1",
    )
