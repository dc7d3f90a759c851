"""The Gradio Space: paint a photo in the style of a painting, and watch the optimisation live.

UI wiring only: layout first, then events, then launch. The engine is ``style_transfer``; the endpoint's
parameters, request checks, ZeroGPU duration and frame formatting are the ``space`` package beside this file.
"""

import spaces  # noqa: I001 - must be imported before torch on ZeroGPU

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import torch

from space import limits, params
from space import video as video_space
from space.costplot import CostPlot
from space.errors import answered
from space.platform import on_gpu
from space.request import Request, check_request, mask_editor_value
from space.stop import complete, finish, remember
from space.stream import COST_LINE, StreamItem, stream
from space.zerogpu import ON_ZEROGPU, Allocation, allocation, estimate_note, requested_seconds
from style_transfer.accel import bf16_supported
from style_transfer.config import TEMPORAL_WEIGHT_DEFAULT
from style_transfer.engine import preload
from style_transfer.model import load_model
from style_transfer.video import preload as preload_video

HERE = Path(__file__).parent
CONTENT_EXAMPLES = sorted((HERE / "examples" / "content").glob("*.jpg"))
STYLE_EXAMPLES = sorted((HERE / "examples" / "styles").glob("*.jpg"))
# The complete examples (cached on first use): pairs measured on the quality harness (README, "Defaults").
EXAMPLE_PAIRS = [
    (HERE / "examples" / "content" / photo, HERE / "examples" / "styles" / painting)
    for photo, painting in (
        ("lake_boats.jpg", "starry_night.jpg"),
        ("astronaut.jpg", "the_scream.jpg"),
        ("architecture.jpg", "great_wave.jpg"),
        ("dune.jpg", "autumn.jpg"),
    )
]

# ZeroGPU wants the model on CUDA at import time (its CUDA emulation moves it into the worker); no CUDA op runs here.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MODELS = {pooling: load_model("caffe", DEVICE, pooling) for pooling in ("max", "avg")}
preload()  # the first request would otherwise pay ~1 s of lazy imports (torch.optim's first use)
preload_video()  # and a first clip ~0.4 s more (PyAV, OpenCV)
# On a CPU start at 256 px, with the steps that finish in under a minute on 2 cores (README, "Defaults"): 150 with
# native bf16, 100 in fp32, which is ~1.7x slower per step.
CPU_STEPS = 150 if bf16_supported(torch.device("cpu")) else 100
endpoint = params.Endpoint({} if DEVICE == "cuda" else {"size": 256, "steps": CPU_STEPS, "preview_every": 10})
# Complete examples are cached on first use where a run takes seconds (a GPU); on a CPU a first click would sit for
# a minute with no previews (Gradio's lazy cache shows only the final result), so there a click fills the inputs
# and Generate streams the run as usual. NST_CACHE_EXAMPLES=1/0 forces either.
CACHE_EXAMPLES = os.getenv("NST_CACHE_EXAMPLES", "1" if DEVICE == "cuda" else "0") == "1"
# MCP needs the gradio[mcp] extra; without it the app serves the UI and the API only (README, "MCP").
MCP_WANTED = os.getenv("NST_MCP", "1") == "1"
MCP = MCP_WANTED and importlib.util.find_spec("mcp") is not None


def run(values: dict) -> Iterator[tuple]:
    """The endpoint's body: check the request in this process (bad input costs no GPU time), then run it.

    Yields the outputs' values and, last, the run in progress for Stop (a ``gr.State``, hidden from the API).
    """
    with answered("checking the request"):
        request = check_request(values)
    yield from remember(gpu_run(request), request)


def run_example(values: dict) -> Iterator[tuple]:
    """A complete example's run: the same outputs, without the state for Stop (an example has no Stop); only a
    run that reached its last step ends without an error, so Gradio caches nothing less."""
    with answered("checking the request"):
        request = check_request(values)
    yield from complete(gpu_run(request))


def gpu_run(request: Request) -> Iterator[StreamItem]:
    """The run's stream as the outputs get it (space/platform.py); on ZeroGPU within its allocation."""
    plan = allocation(request) if ON_ZEROGPU else None
    return on_gpu(run_on_gpu(request, plan), request, plan)


@spaces.GPU(duration=requested_seconds)
def run_on_gpu(request: Request, plan: Allocation | None) -> Iterator[StreamItem]:
    """The whole optimisation loop in one GPU allocation (a forked worker on ZeroGPU; yields are CPU objects)."""
    yield from stream(request, MODELS, time_budget_s=plan.budget_s if plan is not None else None)


# The public endpoint: parameters, defaults and docs from the table in space/params.py.
stylize = endpoint.function(run)


def _gallery(paths: list[Path], label: str, columns: int, elem_id: str) -> gr.Gallery:
    """A gallery of example images, all in view (its height follows its rows); selecting one fills an input."""
    return gr.Gallery(
        value=[(str(p), p.stem.replace("_", " ")) for p in paths],  # spaces let a long caption wrap (CSS)
        label=label,
        columns=columns,
        height="auto",
        object_fit="cover",
        allow_preview=False,
        elem_id=elem_id,
        elem_classes="examples",
    )


# What Gradio 6.31's own options cannot set (passed to launch(); tests/test_layout.py checks the first screen):
# - a gallery's height="auto" still means at least 450 px and at most 55% of the window, scrolling inside: the box
#   takes its rows' height instead, below its label (which otherwise covers the first row's top);
# - its grid gives every cell at least 100 px, so a third of a laptop screen holds 3 columns and the rest overflows
#   sideways: cells shrink to fit the columns asked for;
# - a caption is one line cut at 80% of its cell: it spans the cell's foot and wraps between words, so the whole
#   name shows;
# - an image is shown at most at its own size, so a 256 px result sat small in a large box: the result fills it.
CSS = """
.examples .grid-wrap { min-height: 0 !important; max-height: none !important; overflow: visible !important;
  padding-top: 28px !important; }
.examples .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; }
.examples .caption-label { left: 0 !important; right: 0 !important; bottom: 0 !important; max-width: none !important;
  white-space: normal !important; text-align: center !important; font-size: 11px !important; line-height: 1.2;
  padding: 1px 2px !important; border-radius: 0 !important; border: none !important; opacity: 0.85 !important; }
#result img { object-fit: contain !important; }
"""
LAUNCH = {"max_file_size": limits.MAX_UPLOAD, "css": CSS}  # what every launch of the Space needs


def _pick(paths: list[Path]):
    def pick(evt: gr.SelectData) -> str:
        return str(paths[evt.index])

    return pick


with gr.Blocks(title="Neural Style Transfer", delete_cache=limits.DELETE_CACHE) as demo:
    ui = endpoint.component  # makes a parameter's component here, in the layout
    gr.Markdown(
        "# Neural Style Transfer\n"
        "Repaint a photo in the style of any painting with the original optimisation method of Gatys et al. "
        "(VGG-19, Adam on the pixels). Pick or upload a **content** photo and a **style** image, press "
        "**Generate**, and watch the picture change step by step."
    )
    # Two pages: a picture, and a clip (the Video tab, added below with its endpoint). Each page's controls are looked
    # up inside its tab (#picture-tab, #video-tab): both have a Generate, a Stop and steps.
    with gr.Tabs(elem_id="tabs") as tabs, gr.Tab("Picture", id="picture", elem_id="picture-tab"):
        with gr.Row():
            with gr.Column():
                content_in = ui("content")
                content_gallery = _gallery(CONTENT_EXAMPLES, "Example photos", 4, "content-gallery")
            with gr.Column():
                style_in = ui("style")
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
                # The endpoint's status (hidden): the page shows its words as Progress and its cost line apart.
                status = gr.Textbox(visible=False, elem_id="status-api")
                progress = gr.Textbox(label="Progress", elem_id="status", lines=1, max_lines=4, interactive=False)
                with gr.Accordion("Cost details", open=False):
                    cost_detail = gr.Textbox(show_label=False, elem_id="cost-detail", lines=1, interactive=False)
                with gr.Row():
                    run_btn = gr.Button("Generate", variant="primary", elem_id="run")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
        with gr.Row():
            size_in = ui("size")
            steps_in = ui("steps")
            ui("style_strength")
        # The GPU seconds a run will ask for, before it starts (ZeroGPU's quota is a few minutes a day); no GPU, no
        # quota.
        estimate = gr.Markdown(elem_id="estimate", visible=DEVICE == "cuda")
        with gr.Accordion("Advanced settings", open=False):
            with gr.Row():
                ui("learning_rate")
                ui("preview_every")
                ui("seed")
            with gr.Row():
                ui("content_weight")
                ui("style_weight")
                ui("tv_weight")
                ui("init")
            with gr.Row():
                optimizer_in = ui("optimizer")
                scales_in = ui("scales")
                ui("pooling")
                ui("precision")
        with gr.Accordion("More styles, colours, region and output", open=False):
            with gr.Row():
                preset_in = gr.Dropdown(
                    list(params.UI_PRESETS),
                    value="balanced",
                    label="Preset",
                    elem_id="preset",
                    info="Sets size, steps, weights, scales and optimiser at once.",
                )
                ui("preserve_colors")
                ui("style_scale")
                ui("output_format")
            with gr.Row():
                ui("style_1_blend")
                ui("style_2")
                ui("style_2_blend")
                ui("style_3")
                ui("style_3_blend")
            with gr.Row():
                mask = ui("mask")
                ui("background_style")
            endpoint.remaining()  # a parameter added to space/params.py appears here until it gets its own place
        with gr.Row():
            compare = gr.ImageSlider(type="pil", format="png", label="Before / after", elem_id="compare", height=360)
            # No height: with one, Gradio 6.31 cuts the legend (which line is which cost) off below the chart.
            losses = CostPlot(x="step", y="log10 cost", color="term", label="Cost (log10)", elem_id="losses")
        download = gr.File(label="Download the result (settings embedded)", elem_id="download")
        # The run in progress and its latest frame, which Stop keeps (space/stop.py).
        running = gr.State(None, time_to_live=limits.STOP_STATE_TTL_S)

        inputs = endpoint.inputs()  # every parameter's component, in the endpoint's order
        outputs = [result, compare, losses, status, download]
        examples = gr.Examples(
            examples=[endpoint.example(str(c), str(s)) for c, s in EXAMPLE_PAIRS],
            inputs=endpoint.inputs(endpoint.example_names()),  # the optional images have no example value
            outputs=outputs,
            fn=endpoint.function(run_example, name="stylize_example", names=endpoint.example_names()),
            cache_examples=CACHE_EXAMPLES,
            cache_mode="lazy",
            visible_columns=[0, 1],
            label="Complete examples "
            + ("(results are cached after the first run)" if CACHE_EXAMPLES else "(click one, then Generate)"),
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
        stylize,
        inputs,
        [*outputs, running],
        api_name="stylize",
        concurrency_limit=limits.queue_limits(ON_ZEROGPU).concurrency,
    )
    # Stop cancels the run at once, then shows its latest image as the result (download, before/after, status).
    stop_btn.click(None, None, None, cancels=[run_event], api_visibility="private").then(
        finish, running, [result, compare, status, download, running], api_visibility="private", queue=False
    )
    preset_in.change(
        endpoint.apply_preset,
        preset_in,
        endpoint.inputs(params.PRESET_FIELDS),
        api_visibility="private",
        queue=False,
    )
    content_in.change(mask_editor_value, content_in, mask, api_visibility="private", queue=False)
    if DEVICE == "cuda":
        estimated = [content_in, size_in, steps_in, optimizer_in, scales_in]
        gr.on(
            [demo.load, *(c.change for c in estimated)],
            lambda content, size, steps, optimizer, scales: estimate_note(
                content, size=size, steps=steps, optimizer=optimizer, scales=scales
            ),
            estimated,
            estimate,
            api_visibility="private",
            queue=False,
        )
    # In the browser alone (no request): the status's cost line goes to "Cost details", the rest to Progress.
    status.change(
        None,
        status,
        [progress, cost_detail],
        js=f"""(s) => {{ const lines = (s || "").split("\\n"), cost = (l) => l.startsWith({COST_LINE!r});
        return [lines.filter((l) => !cost(l)).join("\\n"), lines.filter(cost).join("\\n")]; }}""",
        api_visibility="private",
        queue=False,
    )

# ===== Video tab: the /stylize_video endpoint and its layout (begin) ================================================
# Self-contained: the still-image layout above and its endpoint are untouched; space/video.py holds the logic.
VIDEO_EXAMPLES = sorted((HERE / "examples" / "video").glob("*.mp4"))
VIDEO_STYLES = {
    "lake_boats_pan": HERE / "examples" / "styles" / "starry_night.jpg",
    "forest_path_zoom": HERE / "examples" / "styles" / "great_wave.jpg",
}
VIDEO_DEFAULTS = {"size": 256, "steps": 100, "frame_steps": 40}


@spaces.GPU(duration=video_space.video_gpu_duration)
def run_video_on_gpu(request: video_space.VideoRequest, budget_s: float | None) -> Iterator[tuple]:
    """The whole clip in one GPU allocation (yields CPU objects; failures come out as gr.Error)."""
    with answered("running the optimisation"):
        yield from video_space.stream_video(request, MODELS[request.config.pooling], budget_s)


def stylize_video(
    video: str,
    style: str,
    size: float = VIDEO_DEFAULTS["size"],
    steps: float = VIDEO_DEFAULTS["steps"],
    frame_steps: float = VIDEO_DEFAULTS["frame_steps"],
    temporal_weight: float = TEMPORAL_WEIGHT_DEFAULT,
    max_frames: float = limits.VIDEO_MAX_FRAMES,
    loop: bool = False,
) -> Iterator[tuple]:
    """Stylise every frame of a clip (MP4, WebM, MOV, animated GIF or WebP) in the style of an image, without flicker.

    Streams (latest frame, status "frame 12 of 60 ... about 40 s left", video): the MP4 comes with the last frame,
    with the clip's frame count, frame rate and audio.

    Args:
        video: the clip (at most 60 frames are stylised; pick max_frames for fewer).
        style: the style image (the painting).
        size: longest side of the frames, in pixels (32-512).
        steps: optimisation steps of the first frame.
        frame_steps: steps of every later frame (each starts from the previous stylised frame).
        temporal_weight: how strongly each frame keeps to the previous one (0 = every frame on its own).
        max_frames: stylise at most this many frames.
        loop: make the last frame flow into the first (a looping GIF).
    """
    with answered("checking the request"):
        request = video_space.check_video_request(
            video, style, size, steps, frame_steps, temporal_weight, max_frames, loop
        )
    seconds = video_space.video_gpu_duration(request) if ON_ZEROGPU else None
    budget = video_space.video_budget_s(seconds) if seconds is not None else None
    yield from video_space.run_video(request, run_video_on_gpu(request, budget), seconds)


with demo, tabs, gr.Tab("Video", id="video", elem_id="video-tab"):
    gr.Markdown(
        "Repaint a short clip (MP4, WebM, MOV, animated GIF or WebP) frame by frame. Each frame starts "
        "from the previous one moved along the motion, so the strokes follow the picture instead of flickering."
    )
    with gr.Row():
        with gr.Column():
            video_in = gr.File(
                label="Clip", file_types=[".mp4", ".webm", ".mov", ".mkv", ".gif", ".webp"], elem_id="video-in"
            )
            video_style_in = gr.Image(type="filepath", label="Style image", elem_id="video-style", height=200)
        with gr.Column():
            video_frame = gr.Image(type="pil", label="Latest frame", interactive=False, height=260)
            video_status = gr.Textbox(label="Progress", lines=1, interactive=False, elem_id="video-status")
            with gr.Row():
                video_run = gr.Button("Generate", variant="primary", elem_id="video-run")
                video_stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
        video_out = gr.Video(label="Result", elem_id="video-out", interactive=False)
    with gr.Row():
        video_size = gr.Slider(
            32, limits.VIDEO_MAX_SIZE, value=VIDEO_DEFAULTS["size"], step=16, label="Size (px)", elem_id="video-size"
        )
        video_steps = gr.Slider(
            *video_space.slider_range("steps"),
            value=VIDEO_DEFAULTS["steps"],
            step=1,
            label="Steps (first frame)",
            elem_id="video-steps",
        )
        video_frame_steps = gr.Slider(
            *video_space.slider_range("frame_steps"),
            value=VIDEO_DEFAULTS["frame_steps"],
            step=1,
            label="Steps (each later frame)",
            elem_id="video-frame-steps",
        )
        video_temporal = gr.Number(value=TEMPORAL_WEIGHT_DEFAULT, label="Temporal weight (0 = frames on their own)")
        video_max_frames = gr.Slider(
            1, limits.VIDEO_MAX_FRAMES, value=limits.VIDEO_MAX_FRAMES, step=1, label="Frames", elem_id="video-frames"
        )
        video_loop = gr.Checkbox(value=False, label="Loop (last frame leads to the first)")
    video_running = gr.State(None, time_to_live=limits.STOP_STATE_TTL_S)
    video_inputs = [
        video_in,
        video_style_in,
        video_size,
        video_steps,
        video_frame_steps,
        video_temporal,
        video_max_frames,
        video_loop,
    ]
    if VIDEO_EXAMPLES:
        gr.Examples(
            examples=[[str(clip), str(VIDEO_STYLES.get(clip.stem, STYLE_EXAMPLES[0]))] for clip in VIDEO_EXAMPLES],
            inputs=[video_in, video_style_in],
            label="Example clips (made from the example photos; click one, then Generate)",
            api_visibility="private",
        )
    video_event = video_run.click(
        stylize_video,
        video_inputs,
        [video_frame, video_status, video_out, video_running],
        api_name="stylize_video",
        concurrency_limit=limits.queue_limits(ON_ZEROGPU).concurrency,
    )
    # Stop cancels the run, then the frames done become a shorter video.
    video_stop.click(None, None, None, cancels=[video_event], api_visibility="private").then(
        video_space.finish_video, video_running, [video_out, video_status, video_running], api_visibility="private"
    )
# ===== Video tab (end) =============================================================================================

# Explicit queue: ZeroGPU would otherwise shrink it to max_size=1 (see README, "Limits and errors").
demo.queue(max_size=limits.queue_limits(ON_ZEROGPU).max_size)

if __name__ == "__main__":
    # The Space's own log lines (requests, GPU speed, platform failures) at INFO; libraries stay at WARNING.
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("space").setLevel(logging.INFO)
    if MCP_WANTED and not MCP:
        print("MCP server off: the optional mcp package is not installed (pip install 'gradio[mcp]==6.31.0').")
    demo.launch(**LAUNCH, footer_links=["api", "gradio", "settings"], mcp_server=MCP)
