"""Starting a subprocess and reading its wall time and its own peak RSS (via :mod:`bench.rss`; no psutil needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def launch(
    cmd: list[str],
    log_path: Path,
    *,
    cwd: Path,
    timeout: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict:
    """Run ``cmd`` to the end (stdout+stderr into ``log_path``); return its wall time, exit code and peak RSS.

    The command runs under the small launcher :mod:`bench.rss`, which reads the child's own ``wait4`` rusage (a
    child forked straight from this torch-loaded process would report this process's RSS as its own peak).
    ``t_launch`` is the launcher's ``time.time()`` just before the child is created, so the child's own
    ``time.time()`` stamps can be measured from its launch; ``wall_s`` is measured there too.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rss_path = log_path.with_name(log_path.stem + ".rusage.json")
    rss_path.unlink(missing_ok=True)
    wrapper = [sys.executable, "-m", "bench.rss", str(rss_path)]
    if timeout:
        wrapper += ["--timeout", str(timeout)]
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*wrapper, "--", *cmd], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=(timeout + 120) if timeout else None)
        except subprocess.TimeoutExpired:  # the launcher itself hangs: end its whole session (it and its child)
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    outer_wall = time.perf_counter() - start
    try:
        record = json.loads(rss_path.read_text())
    except (OSError, json.JSONDecodeError):
        record = {"t_launch": None, "wall_s": outer_wall, "rc": rc, "timed_out": True, "peak_rss_mb": None}
    return {"cmd": cmd, **record, "outer_wall_s": outer_wall, "log": str(log_path)}


def log_tail(path: str | Path, chars: int = 1500) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return ""
