"""Process and machine helpers: a subprocess's wall time and own peak RSS (via :mod:`bench.rss`; no psutil needed),
thread settings for child processes, the CPU, and git."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that sets a child's CPU threads (OpenMP and MKL); empty for torch's default."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {}


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (``model name``, ``cpu family``, ``model``, ``flags`` ...)."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        return {"model name": platform.processor()}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def cpu_count() -> int | None:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def git(args: list[str]) -> str | None:
    """Output of ``git ARGS`` in the repository (None without git)."""
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
