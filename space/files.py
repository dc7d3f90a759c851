"""The downloadable result: the final image in the requested format, settings embedded, in a swept folder."""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from pathlib import Path

from style_transfer.config import StyleConfig
from style_transfer.engine import Frame
from style_transfer.output import save_image, suffix_for

from .limits import DELETE_CACHE

RESULTS_DIR = Path(tempfile.gettempdir()) / "style_transfer_results"


def save_result(frame: Frame, cfg: StyleConfig, output_format: str) -> str:
    """Write the frame in the requested format, settings (and a unique ``result_id``) embedded; old files are
    swept (limits.DELETE_CACHE)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    cutoff = time.time() - DELETE_CACHE[1]
    for old in RESULTS_DIR.glob("stylized-*"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    result_id = uuid.uuid4().hex[:12]
    path = RESULTS_DIR / f"stylized-{result_id}{suffix_for(output_format)}"
    # The id makes every result's bytes unique: Gradio names the file it serves after its content, so two runs with
    # the same photo and settings would otherwise share one download.
    settings = {**cfg.to_dict(), "steps_done": frame.step, "result_id": result_id}
    save_image(frame.image, path, output_format, settings, image16=frame.image16)  # tiff: 16 bits from the run
    return str(path)
