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
from style_transfer.config import STRENGTH_DEFAULT, STRENGTH_MAX, STRENGTH_MIN, StyleConfig, default_of, field_spec
from style_transfer.model import load_model

HERE = Path(__file__).parent
CONTENT_EXAMPLES = sorted((HERE / "examples" / "content").glob("*.jpg"))
STYLE_EXAMPLES = sorted((HERE / "examples" / "styles").glob("*.jpg"))

# ZeroGPU wants the model on CUDA at import time (its CUDA emulation moves it into the worker); no CUDA op runs here.
ON_ZEROGPU = os.getenv("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MODEL = load_model("caffe", DEVICE)
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
        init: starting image, "content" or "noise".

    Returns:
        A stream of (result image, (before, after) pair, loss table, status text); the last item is the final result.
    """
    settings = (
        size,
        steps,
        style_strength,
        learning_rate,
        preview_every,
        seed,
        content_weight,
        style_weight,
        tv_weight,
        init,
    )
    request = space.check_request(content, style, *settings)  # in the main process: bad input costs no GPU time
    yield from run_on_gpu(request, space.gpu_duration(request) if ON_ZEROGPU else None)


@spaces.GPU(duration=space.gpu_duration)
def run_on_gpu(request: space.Request, time_budget_s: float | None) -> Iterator[tuple]:
    """The whole optimisation loop in one GPU allocation (a forked worker on ZeroGPU; yields are CPU objects)."""
    yield from space.stream(request, MODEL, time_budget_s=time_budget_s)


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
            content_gallery = gr.Gallery(
                value=[(str(p), p.stem) for p in CONTENT_EXAMPLES],
                label="Example photos",
                columns=4,
                height=150,
                allow_preview=False,
                elem_id="content-gallery",
            )
        with gr.Column():
            style_in = gr.Image(
                type="filepath", label="Style image", sources=["upload", "clipboard"], elem_id="style", height=300
            )
            style_gallery = gr.Gallery(
                value=[(str(p), p.stem) for p in STYLE_EXAMPLES],
                label="Example styles",
                columns=5,
                height=150,
                allow_preview=False,
                elem_id="style-gallery",
            )
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
            init = gr.Radio(
                list(field_spec("init").metadata["choices"]),
                value=StyleConfig().init,
                label="Start from",
                info=field_spec("init").metadata["help"],
            )
    with gr.Row():
        compare = gr.ImageSlider(type="pil", format="png", label="Before / after", elem_id="compare", height=360)
        losses = gr.LinePlot(x="step", y="log10 cost", color="term", label="Cost (log10)", elem_id="losses", height=360)

    space.guard_image_input(content_in, "content image")
    space.guard_image_input(style_in, "style image")
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
    space.guard_settings(dict(zip(space.SETTINGS, inputs[2:], strict=True)))  # range errors name the parameter
    outputs = [result, compare, losses, status]
    pairs = [(c, s) for c, s in zip(CONTENT_EXAMPLES, STYLE_EXAMPLES[: len(CONTENT_EXAMPLES)], strict=False)][:4]
    gr.Examples(
        examples=[[str(c), str(s), *[component.value for component in inputs[2:]]] for c, s in pairs],
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

    content_gallery.select(_pick(CONTENT_EXAMPLES), None, content_in, api_visibility="private")
    style_gallery.select(_pick(STYLE_EXAMPLES), None, style_in, api_visibility="private")
    run_event = run_btn.click(
        stylize, inputs, outputs, api_name="stylize", concurrency_limit=limits.queue_limits(ON_ZEROGPU).concurrency
    )
    stop_btn.click(None, None, None, cancels=[run_event], api_visibility="private")

# Explicit queue: ZeroGPU would otherwise shrink it to max_size=1 (see README, "Limits and errors").
demo.queue(max_size=limits.queue_limits(ON_ZEROGPU).max_size)

if __name__ == "__main__":
    demo.launch(
        max_file_size=limits.MAX_UPLOAD,
        footer_links=["api", "gradio", "settings"],
        mcp_server=os.getenv("NST_MCP", "1") == "1",
    )
