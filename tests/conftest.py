"""Shared fixtures: tiny synthetic images (no downloads) and the bundled VGG-19 loaded once; every test file's layer.

Layers (pytest markers, registered in pyproject.toml) let one run part of the suite:

- ``engine``: the package ``style_transfer`` in-process (and its CLI), no Gradio;
- ``space``: the Space's modules and ``app.py``, at most one in-process server reached through ``gradio_client``;
- ``system``: real processes and browsers: ``python app.py`` under load, Chromium, the benchmark harness run end to
  end, many requests in a row.

``slow`` (the ``SLOW`` table) marks single tests within a faster layer that take many seconds; a test may also
carry ``@pytest.mark.system`` itself (a browser check in a ``space`` file). The fast layer is
``python -m pytest -m "not system and not slow"`` (README). A test file missing from ``LAYERS`` stops the run
with a message naming it: a new file decides its layer once, here, instead of landing silently in one.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, torch.get_num_threads()))

# Test file name pattern -> layer (the first pattern that matches wins).
LAYERS: dict[str, str] = {
    "test_accel.py": "engine",
    "test_cli.py": "engine",
    "test_config.py": "engine",
    "test_engine.py": "engine",
    "test_features.py": "engine",
    "test_first_request.py": "engine",
    "test_graphs.py": "engine",
    "test_images.py": "engine",
    "test_losses.py": "engine",
    "test_memory.py": "engine",
    "test_model.py": "engine",
    "test_package.py": "engine",
    "test_threads.py": "engine",
    "test_tiff.py": "engine",
    "test_tiling.py": "engine",
    "test_video.py": "engine",
    "test_app.py": "space",
    "test_fuzz.py": "space",
    "test_layout.py": "space",
    "test_security.py": "space",
    "test_video_space.py": "space",
    "test_zerogpu_platform.py": "system",  # the real app on ZeroGPU's path: servers and forked workers (~40 s)
    "test_zerogpu*.py": "space",
    "test_bench.py": "system",
    "test_browser.py": "system",
    "test_gpu_check.py": "system",
    "test_load.py": "system",
    "test_mcp.py": "system",
    "test_robustness.py": "system",
    "test_soak.py": "system",
}


# Single tests that take many seconds each (timed on 2 busy cores), left out of the fast layer: "file::test" (every
# parameter of it) or a whole file, with the reason.
SLOW: dict[str, str] = {
    "test_memory.py": "profiles a dozen runs at two sizes (~4 min)",
    "test_accel.py::test_bf16_fast_path_scores_within_2_percent_of_fp32": "two full runs and the judge (~30 s)",
    "test_first_request.py": "fresh interpreters that import torch and gradio (~20 s)",
    "test_layout.py::test_python_app_py_starts_cleanly": "starts python app.py (~15 s)",
    "test_cli.py::test_cli_end_to_end_in_a_subprocess": "a fresh interpreter runs the CLI (~10 s)",
    "test_package.py::test_the_wheel_holds_only_the_engine": "pip builds a wheel in isolation (~6 s)",
    "test_tiling.py::test_a_budgeted_cpu_run_keeps_the_process_memory_within_its_budget": (
        "two fresh interpreters run a tiled picture (~25 s)"
    ),
}


def layer_of(file_name: str) -> str | None:
    """The layer of a test file (by its name), or None when ``LAYERS`` has no pattern for it."""
    return next((layer for pattern, layer in LAYERS.items() if fnmatch.fnmatch(file_name, pattern)), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its file's layer; refuse a file that has none, so that no test escapes every layer."""
    missing = sorted({item.path.name for item in items if layer_of(item.path.name) is None})
    if missing:
        raise pytest.UsageError(
            f"tests/conftest.py LAYERS has no layer for {', '.join(missing)}: add each file there "
            "(engine, space or system)."
        )
    here = Path(__file__).parent
    for key in SLOW:  # a renamed test would otherwise silently rejoin the fast layer
        file, _, name = key.partition("::")
        if not (here / file).is_file() or (name and f"def {name}(" not in (here / file).read_text()):
            raise pytest.UsageError(f"tests/conftest.py SLOW names {key}, which does not exist")
    for item in items:
        item.add_marker(layer_of(item.path.name))
        if item.path.name in SLOW or f"{item.path.name}::{item.originalname}" in SLOW:
            item.add_marker("slow")


def make_content(width: int = 64, height: int = 48) -> Image.Image:
    """A smooth 'photo': colour gradients with a bright disc (content with edges and flat areas)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = x / (width - 1)
    g = y / (height - 1)
    b = ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2).astype(np.float32)
    rgb = np.stack([r, g, 0.3 + 0.6 * b], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8), "RGB")


def make_style(width: int = 64, height: int = 64) -> Image.Image:
    """A strongly textured 'painting': saturated diagonal stripes and a checker pattern."""
    y, x = np.mgrid[0:height, 0:width]
    stripes = ((x + y) // 4) % 2
    checker = ((x // 8) + (y // 8)) % 2
    rgb = np.stack([255 * stripes, 255 * checker, 255 * (1 - stripes)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("images")
    make_content().save(d / "content.png")
    make_style().save(d / "style.png")
    return d


@pytest.fixture(scope="session")
def content_path(image_dir: Path) -> Path:
    return image_dir / "content.png"


@pytest.fixture(scope="session")
def style_path(image_dir: Path) -> Path:
    return image_dir / "style.png"


@pytest.fixture(scope="session")
def model():
    """The bundled Caffe VGG-19 on CPU, shared by the tests (load_model caches it per process anyway)."""
    from style_transfer.model import load_model

    return load_model("caffe", "cpu")


@pytest.fixture(scope="session")
def app_url():
    """The Space (app.py) served in-process on a free loopback port; closed at the end of the session."""
    import os
    import socket

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["NST_CACHE_EXAMPLES"] = "0"  # never write the example cache from tests
    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.LAUNCH,
    )
    yield f"http://127.0.0.1:{port}/"
    app.demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=False)


@pytest.fixture
def fused_on_cpu(monkeypatch):
    """The GPU's fused conv + bias + ReLU path, run on the CPU: ``torch.cudnn_convolution_relu`` is cuDNN-only, so a
    stand-in computes the same thing. Counts its calls."""
    import torch.nn.functional as F

    from style_transfer import accel
    from style_transfer import model as model_module

    calls = []

    def kernel(x, weight, bias):
        calls.append(x.shape)
        return F.relu(F.conv2d(x, weight, bias, padding=1))

    monkeypatch.setattr(model_module, "_fuses", model_module._fusable)  # as if on a GPU
    monkeypatch.setattr(model_module, "conv_relu_kernel", kernel)
    monkeypatch.setattr(accel.fused_conv_relu, "on", True)
    monkeypatch.setattr(accel.fused_conv_relu, "failures", {})
    return calls


@pytest.fixture
def bf16_gram_on_cpu(monkeypatch):
    """The GPU's bf16 Gram path, run on the CPU: ``bmm(out_dtype=fp32)`` is CUDA-only, so a stand-in computes the
    same products (bf16 values are exact in fp32) with fp32 sums. Counts its calls."""
    from style_transfer import accel, losses

    calls = []

    def fp32_out_bmm(x, y):
        assert x.dtype == y.dtype == torch.bfloat16  # it never gets an fp32 copy
        calls.append(x.shape)
        return torch.bmm(x.float(), y.float())

    monkeypatch.setattr(losses, "_bf16_kernels", lambda a: a.dtype == torch.bfloat16 and accel.bf16_gram.on)
    monkeypatch.setattr(losses, "_fp32_out_bmm", fp32_out_bmm)
    monkeypatch.setattr(accel.bf16_gram, "on", True)
    monkeypatch.setattr(accel.bf16_gram, "failures", {})
    return calls
