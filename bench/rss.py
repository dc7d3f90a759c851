"""``python -m bench.rss RESULT.json [--timeout S] -- CMD ...``: run CMD and record its wall time and its own peak RSS.

Why a separate, small launcher: a child's ``ru_maxrss`` (from ``wait4``) also counts the memory it inherited at
``fork``/``vfork`` before ``exec``; started straight from the benchmark process (which has torch loaded, ~0.5 GB),
every child would show at least that much. Started from this launcher (a bare interpreter, ~10 MB), the figure is
the child's own. The launcher imports nothing heavy; its stdout/stderr are the child's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time


def main(argv: list[str]) -> int:
    result_path = argv[0]
    sep = argv.index("--")
    timeout = float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv[:sep] else None
    cmd = argv[sep + 1 :]
    timed_out = threading.Event()
    t_launch = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if timer:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    record = {
        "t_launch": t_launch,
        "wall_s": wall,
        "rc": proc.returncode,
        "timed_out": timed_out.is_set(),
        "peak_rss_mb": usage.ru_maxrss / 1024.0,  # KiB on Linux
        "cpu_user_s": usage.ru_utime,
        "cpu_sys_s": usage.ru_stime,
    }
    with open(result_path, "w") as fh:
        json.dump(record, fh)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
