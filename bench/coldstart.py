"""Cold start: how long a fresh process takes before it can stylize anything.

Each probe runs in a new interpreter (``python -c ...``), timed from outside (wall time from launch to exit, peak
RSS via ``os.wait4``) and from inside (``perf_counter`` stamps printed as JSON):

* ``python``: an empty interpreter (the floor under every other probe);
* ``import torch``;
* ``engine``: ``import style_transfer`` then ``load_model("caffe", device)`` (reads and de-quantises the bundled
  weights; on CUDA also initialises CUDA and copies the weights);
* ``app``: ``import app`` (the Gradio Space's module), only when ``app.py`` exists in the repository root. A module
  that starts a server at import never exits; it is stopped at the timeout and reported as such.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from .procs import REPO_ROOT, launch, thread_env

_ENGINE = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import style_transfer
from style_transfer.model import load_model
t2 = time.perf_counter()
model = load_model("caffe", {device!r})
if {device!r}.startswith("cuda"):
    torch.cuda.synchronize()
t3 = time.perf_counter()
print(json.dumps({{"import_torch_s": t1 - t0, "import_style_transfer_s": t2 - t1, "load_model_s": t3 - t2,
                  "inside_total_s": t3 - t0}}))
"""

_APP = """
import json, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
print(json.dumps({"import_app_s": t1 - t0}))
"""

_TORCH = """
import json, time
t0 = time.perf_counter()
import torch
print(json.dumps({"import_torch_s": time.perf_counter() - t0}))
"""


def _last_json(log: Path) -> dict:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
    except (OSError, json.JSONDecodeError):
        return {}


def measure(out_dir: Path, device: str, repeats: int, threads: int | None = None, timeout: float = 300.0) -> dict:
    """Run every probe ``repeats`` times (interleaved) and return the raw runs and medians."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probes = {"python": "pass", "import_torch": _TORCH, "engine": _ENGINE.format(device=device)}
    app_path = REPO_ROOT / "app.py"
    if app_path.is_file():
        probes["app"] = _APP
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **thread_env(threads)}
    raw: dict[str, list[dict]] = {name: [] for name in probes}
    for rep in range(repeats):
        for name, code in probes.items():
            log = out_dir / f"{name}_{rep}.log"
            proc = launch([sys.executable, "-c", code], log, cwd=REPO_ROOT, timeout=timeout, extra_env=env)
            raw[name].append({**proc, **_last_json(log)})
    summary: dict[str, dict] = {}
    for name, runs in raw.items():
        ok = [r for r in runs if r["rc"] == 0]
        entry: dict = {"n_ok": len(ok), "n": len(runs)}
        if ok:
            keys = {k for r in ok for k, v in r.items() if isinstance(v, float) and k != "t_launch"}
            for key in sorted(keys):
                values = [r[key] for r in ok if key in r]
                entry[f"{key}_median"] = statistics.median(values)
        else:
            entry["error"] = (
                "timed out (does app.py start a server at import?)"
                if runs[-1]["timed_out"]
                else (f"exit code {runs[-1]['rc']}; see {out_dir}")
            )
        summary[name] = entry
    if not app_path.is_file():
        summary["app"] = {"skipped": f"{app_path} does not exist"}
    return {"device": device, "repeats": repeats, "runs": raw, "summary": summary, "cwd": os.fspath(REPO_ROOT)}
