"""The Space through gradio_client: one public streaming endpoint, clear errors, and a sane ZeroGPU duration."""

from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from space import params
from space.request import engine_settings, mask_from_editor
from style_transfer.config import MAX_STEPS, MIN_SIZE, STRENGTH_DEFAULT, StyleConfig, strength_multiplier

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "content" / "cat.jpg"
STYLE = ROOT / "examples" / "styles" / "starry_night.jpg"


def _submit(client, **kw):
    args = {
        "content": handle_file(str(CONTENT)),
        "style": handle_file(str(STYLE)),
        "size": 48,
        "steps": 6,
        "preview_every": 2,
        **kw,
    }
    return client.submit(api_name="/stylize", **args)


def test_only_stylize_is_public(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/stylize", "/stylize_video"]  # the still image, the Video tab
    assert api["unnamed_endpoints"] == {}
    names = [p["parameter_name"] for p in api["named_endpoints"]["/stylize"]["parameters"]]
    assert names == [
        "content",
        "style",
        "size",
        "steps",
        "style_strength",
        "learning_rate",
        "preview_every",
        "seed",
        "content_weight",
        "style_weight",
        "tv_weight",
        "init",
        "style_2",
        "style_3",
        "style_1_blend",
        "style_2_blend",
        "style_3_blend",
        "preserve_colors",
        "style_scale",
        "scales",
        "optimizer",
        "pooling",
        "precision",
        "mask",
        "background_style",
        "output_format",
    ]


def test_stylize_streams_frames_and_ends_with_a_png(client, app_url):
    job = _submit(client)
    updates = list(job)
    assert len(updates) >= 3  # steps 0, 2, 4, 6
    statuses = [u[3] for u in updates]
    assert statuses[0].startswith("Starting: step 0 of 6") and statuses[-1].startswith("Done: 6 steps in ")
    assert all(status.startswith("Step ") and " s left" in status for status in statuses[1:-1])
    final = job.result()
    image = final[0]
    assert image["url"].endswith(".png")
    import httpx

    data = httpx.get(image["url"]).content
    import io

    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.size == (48, 32)  # cat.jpg is 451x300
    before, after = final[1]
    assert before["url"] != after["url"]
    plot = final[2]
    # total J, α·content, β·style and the default smoothing term, for every update
    assert plot["columns"] == ["step", "term", "log10 cost"] and len(plot["data"]) == 4 * len(updates)
    assert {row[1] for row in plot["data"]} == {"total J", "α·content", "β·style", "smoothness (TV)"}
    # The before/after pair comes with the final update only (previews would rewrite the photo in Gradio's cache);
    # the first update empties it, so a new run never shows the last run's pair beside its own picture.
    assert updates[0][1] is None
    assert all(u[1] == {"__type__": "update"} for u in updates[1:-1])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"style": None}, "Please add a style image"),
        ({"content": None}, "Please add a content image"),
        ({"size": 0}, f"less than minimum value {MIN_SIZE}"),
        ({"steps": MAX_STEPS + 1}, f"greater than maximum value {MAX_STEPS}"),
        ({"init": "zeros"}, "zeros"),
        ({"style_weight": 1e6, "style_strength": 10}, "style_weight"),
        ({"background_style": handle_file(str(STYLE))}, "background_style: .* no region is marked"),
        (
            {"style_2": handle_file(str(STYLE)), "style_1_blend": 0, "style_2_blend": 0},
            "style_blend_weights: at least one style's blend weight must be above 0",
        ),
    ],
)
def test_bad_input_gives_a_clear_error_and_server_keeps_answering(client, changes, message):
    with pytest.raises(AppError, match=message):
        _submit(client, **changes).result()
    assert _submit(client, steps=1, size=32).result()[3].startswith("Done: 1 step in ")


def test_text_file_as_image(client, tmp_path):
    fake = tmp_path / "picture.png"
    fake.write_text("this is not an image")
    with pytest.raises(AppError, match="style image: not an image"):
        _submit(client, style=handle_file(str(fake))).result()
    # The mask editor's layers are opened by Gradio itself (before our code): named too, not a bare server error.
    mask = {"background": None, "layers": [handle_file(str(fake))], "composite": None}
    with pytest.raises(AppError, match="mask: a layer or the background is not a readable image") as info:
        _submit(client, mask=mask).result()
    assert info.value.title == "Invalid input"
    assert _submit(client, steps=1, size=32).result()[3].startswith("Done: 1 step in ")


def test_strength_maps_to_style_weight():
    assert strength_multiplier(STRENGTH_DEFAULT) == 1.0
    assert strength_multiplier(0) == pytest.approx(0.01) and strength_multiplier(10) == pytest.approx(100)
    values = (64, 10, 7.5, 0.02, 5, 0, 1e4, 2.0, 0.0, "content")
    cfg = StyleConfig().replace(**engine_settings(dict(zip(params.NAMES[2:12], values, strict=True))))
    assert cfg.style_strength == 7.5 and cfg.style_weight == 2.0 and cfg.content_weight == 1e4
    assert cfg.effective_style_weight == pytest.approx(20.0)


def test_readme_client_snippet_runs_as_written(app_url, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- client-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'Client("http://127.0.0.1:7860/")' in block
    monkeypatch.chdir(ROOT)  # the snippet uses paths relative to the repository
    exec(compile(block.replace("http://127.0.0.1:7860/", app_url), "README snippet", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    steps = [line for line in out if line.startswith(("Starting: ", "Step ", "Done: "))]
    assert len(steps) >= 3 and steps[0].startswith("Starting: step 0 of 40") and steps[-1].startswith("Done: 40 steps")
    assert out[-1].startswith("result:") and out[-1].endswith(".png")


def test_features_through_the_api(client, tmp_path):
    from style_transfer.output import read_settings

    mask = Image.new("L", (451, 300), 0)
    mask.paste(255, (225, 0, 451, 300))  # paint the right half
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    job = _submit(
        client,
        style_2=handle_file(str(ROOT / "examples" / "styles" / "autumn.jpg")),
        style_2_blend=0.5,
        preserve_colors="luminance",
        optimizer="lbfgs",
        scales=2,
        mask={"background": None, "layers": [handle_file(str(mask_path))], "composite": None},
        output_format="webp",
        size=64,
    )
    updates = list(job)
    final = job.result()
    assert final[3].startswith("Done: 6 steps")
    assert all(u[4] is None for u in updates[:-1])
    download = final[4]
    assert download["url"].endswith(".webp")
    import httpx

    data = httpx.get(download["url"]).content
    settings = read_settings(data)
    assert settings["optimizer"] == "lbfgs" and settings["preserve_colors"] == "luminance"
    assert settings["scales"] == 2 and settings["style_blend_weights"] == [1.0, 0.5]
    with Image.open(__import__("io").BytesIO(data)) as img:
        assert img.size == (64, 43)


def test_mask_from_editor_layers():
    painted = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    painted.paste((255, 255, 255, 255), (20, 0, 40, 30))
    mask = mask_from_editor({"background": None, "layers": [painted], "composite": None}, (40, 30))
    assert mask.getpixel((5, 5)) == 0 and mask.getpixel((30, 5)) == 255
    empty = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    assert mask_from_editor({"background": None, "layers": [empty], "composite": None}, (40, 30)) is None
    assert mask_from_editor(None, (40, 30)) is None
    opaque = Image.new("RGB", (80, 60), (0, 0, 0))
    opaque.paste((255, 255, 255), (0, 0, 40, 60))  # an uploaded black-and-white mask: brightness counts
    mask = mask_from_editor({"background": None, "layers": [opaque], "composite": None}, (40, 30))
    assert mask.getpixel((5, 5)) == 255 and mask.getpixel((35, 5)) == 0


def test_a_cached_example_gives_the_cost_plot_data_not_text(tmp_path, monkeypatch):
    """Clicking a cached example loads the plot's value from Gradio's cache; a LinePlot gets its JSON *text* back,
    on which the browser's plot fails and the page stops updating. The cost plot must get the data."""
    import gradio as gr
    import pandas as pd

    from space.costplot import CostPlot

    monkeypatch.chdir(tmp_path)  # the example cache is written under the working directory

    def fn(text):
        yield pd.DataFrame({"step": [0], "term": ["total J"], "log10 cost": [9.0]}), "step 0/1"
        yield pd.DataFrame({"step": [0, 1], "term": ["total J", "α·content"], "log10 cost": [9.0, None]}), "step 1/1"

    with gr.Blocks():
        text = gr.Textbox()
        plot = CostPlot(x="step", y="log10 cost", color="term")
        status = gr.Textbox()
        examples = gr.Examples([["x"]], [text], [plot, status], fn=fn, cache_examples=True, cache_mode="lazy")
    value, shown = examples.load_from_cache(0)
    assert shown == "step 1/1"
    assert value["columns"] == ["step", "term", "log10 cost"]
    assert value["data"] == [[0, "total J", 9.0], [1, "α·content", None]]
    assert plot.get_block_name() == gr.LinePlot().get_block_name()  # the browser draws it as a LinePlot


def test_a_tiff_download_has_16_bits_from_the_run(client, tmp_path):
    """The Space offers TIFF for print: the download holds the optimised image at 16 bits per channel (not an 8-bit
    picture scaled up), with the settings embedded."""
    import httpx
    import tifffile

    from style_transfer.output import read_settings

    final = _submit(client, output_format="tiff").result()
    download = final[4]
    assert download["url"].endswith(".tif")
    path = tmp_path / "download.tif"
    path.write_bytes(httpx.get(download["url"]).content)
    pixels = tifffile.imread(path)
    assert pixels.dtype.name == "uint16" and pixels.shape == (32, 48, 3)
    assert (pixels % 257 != 0).mean() > 0.5  # most values fall between the 8-bit levels
    assert read_settings(path)["steps"] == 6
