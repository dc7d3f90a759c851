"""Load test of the Space on loopback: N concurrent gradio_client jobs, then the queue filled past its max_size.

    python -m bench.load                      # starts app.py on 127.0.0.1, 8 concurrent jobs, then the overflow
    python -m bench.load --jobs 4 --no-overflow --json out.json
    python -m bench.load --url http://127.0.0.1:7860/ --max-size 8 --concurrency 1

Phase 1 submits ``--jobs`` tiny runs at once (one client each, like separate users) and reports how many completed
or failed, their queue waits (submit -> running) and latencies (submit -> final image), p50/p95/max.
Phase 2 keeps the worker(s) busy with long runs, fills the queue's ``max_size`` waiting places, then submits
``--extra`` more: each must be refused with "Queue is full" at once rather than hang; then it cancels the long runs.

Bounded: at most 64 jobs, every wait has a deadline (``--timeout``), and only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_JOBS = 64
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class JobResult:
    """One job's timeline, seconds after its submission."""

    index: int
    outcome: str = "pending"  # completed, queue_full, error, timeout, cancelled
    message: str = ""
    queue_wait: float | None = None  # submit -> running
    first_frame: float | None = None  # submit -> first preview
    latency: float | None = None  # submit -> final image (or refusal / error)
    frames: int = 0


@dataclass
class Report:
    jobs: list[JobResult] = field(default_factory=list)
    wall: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(j.outcome == outcome for j in self.jobs)

    def summary(self) -> dict:
        done = [j for j in self.jobs if j.outcome == "completed"]
        return {
            "jobs": len(self.jobs),
            "completed": len(done),
            "queue_full": self.count("queue_full"),
            "failed": len(self.jobs) - len(done) - self.count("queue_full") - self.count("cancelled"),
            "cancelled": self.count("cancelled"),
            "queue_wait_s": _stats([j.queue_wait for j in done]),
            "latency_s": _stats([j.latency for j in done]),
            "refusal_s": _stats([j.latency for j in self.jobs if j.outcome == "queue_full"]),
            "wall_s": round(self.wall, 2),
        }


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported time is one a job really had)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def _stats(values: list[float | None]) -> dict | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return {
        k: round(v, 2) for k, v in (("p50", _percentile(got, 50)), ("p95", _percentile(got, 95)), ("max", max(got)))
    }


def check_loopback(url: str) -> str:
    host = urllib.parse.urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"--url must be a loopback address (127.0.0.1), got {host!r}")
    return url if url.endswith("/") else url + "/"


def _inputs(tmp: Path) -> tuple[str, str]:
    """Two tiny synthetic images (no downloads)."""
    from PIL import Image

    tmp.mkdir(parents=True, exist_ok=True)
    content, style = tmp / "content.png", tmp / "style.png"
    Image.radial_gradient("L").resize((48, 36)).convert("RGB").save(content)
    Image.effect_mandelbrot((48, 48), (-2, -1.5, 1, 1.5), 50).convert("RGB").save(style)
    return str(content), str(style)


class Runner:
    """Submits jobs to one server and records their timelines."""

    def __init__(self, url: str, images: tuple[str, str], size: int, steps: int, timeout: float) -> None:
        self.url, self.images, self.size, self.steps, self.timeout = url, images, size, steps, timeout

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False)

    def submit(self, client, *, steps: int | None = None):
        from gradio_client import handle_file

        content, style = self.images
        return client.submit(
            content=handle_file(content),
            style=handle_file(style),
            size=self.size,
            steps=steps or self.steps,
            preview_every=max(1, min(50, (steps or self.steps) // 4)),
            api_name="/stylize",
        )

    def follow(self, job, result: JobResult, start: float) -> JobResult:
        """Poll ``job`` until it ends (or the deadline); fill in ``result``."""
        from gradio_client.client import Status
        from gradio_client.exceptions import AppError
        from gradio_client.utils import QueueError

        deadline = start + self.timeout
        while not job.done():
            now = time.perf_counter()
            code = job.status().code
            if result.queue_wait is None and code in (Status.PROCESSING, Status.ITERATING):
                result.queue_wait = now - start
            if result.first_frame is None and job.outputs():
                result.first_frame = now - start
            if now > deadline:
                job.cancel()
                result.outcome, result.message = "timeout", f"no answer within {self.timeout:.0f} s"
                return result
            time.sleep(0.01)
        end = time.perf_counter() - start
        try:
            final = job.result(timeout=5)
        except QueueError as exc:
            result.outcome, result.message = "queue_full", str(exc)
        except AppError as exc:
            result.outcome, result.message = "error", f"{exc.title}: {exc.message}"
        except Exception as exc:  # a cancelled job, a dropped connection: report it, keep going
            cancelled = job.status().code == Status.CANCELLED
            result.outcome, result.message = ("cancelled" if cancelled else "error"), f"{type(exc).__name__}: {exc}"
        else:
            ok = isinstance(final, (list, tuple)) and str(final[3]).startswith(f"step {self.steps}/")
            result.outcome = "completed" if ok else "error"
            result.message = str(final[3]).splitlines()[0] if final else "no output"
        result.latency = end
        result.frames = len(job.outputs())
        if result.queue_wait is None and result.outcome == "completed":
            result.queue_wait = result.first_frame or end
        return result

    def concurrent(self, n: int) -> Report:
        """``n`` jobs submitted together, one client each; waits for all of them."""
        n = min(n, MAX_JOBS)
        clients = [self.client() for _ in range(n)]
        report = Report([JobResult(i) for i in range(n)])
        barrier = threading.Barrier(n)

        def one(i: int) -> None:
            barrier.wait()
            start = time.perf_counter()
            try:
                self.follow(self.submit(clients[i]), report.jobs[i], start)
            except Exception as exc:
                report.jobs[i].outcome, report.jobs[i].message = "error", f"{type(exc).__name__}: {exc}"

        t0 = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.timeout + 30)
        report.wall = time.perf_counter() - t0
        return report

    def overflow(self, max_size: int, concurrency: int, extra: int) -> Report:
        """Busy workers + a full queue, then ``extra`` more jobs: each must get "Queue is full" at once."""
        from gradio_client.client import Status

        t0 = time.perf_counter()
        blockers = []
        for _ in range(concurrency):  # long runs that hold every worker while the queue fills
            job = self.submit(self.client(), steps=5000)
            blockers.append(job)
            _wait(job, (Status.PROCESSING, Status.ITERATING), self.timeout, "a long run to start")
        report = Report()
        followers = []
        for i in range(min(max_size, MAX_JOBS)):
            start = time.perf_counter()
            job = self.submit(self.client())
            report.jobs.append(JobResult(i))
            followers.append(threading.Thread(target=self.follow, args=(job, report.jobs[-1], start), daemon=True))
            followers[-1].start()
            _wait(job, (Status.IN_QUEUE,), self.timeout, "a place in the queue")
        for i in range(min(extra, MAX_JOBS)):  # the queue is full now: each of these must be refused at once
            start = time.perf_counter()
            report.jobs.append(self.follow(self.submit(self.client()), JobResult(max_size + i), start))
        for job in blockers:
            job.cancel()
        for thread in followers:
            thread.join(self.timeout + 30)
        report.wall = time.perf_counter() - t0
        return report


def _wait(job, codes: tuple, timeout: float, what: str) -> None:
    """Until ``job``'s status is one of ``codes``; an error if it ends first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while job.status().code not in codes:
        if job.done():
            try:
                job.result(timeout=1)
            except Exception as exc:
                raise RuntimeError(f"job ended while waiting for {what}: {exc}") from None
            raise RuntimeError(f"job ended while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_server(timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free loopback port, in its own process group (killed whole by :func:`stop_server`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "NST_MCP": "0",
        "NST_CACHE_EXAMPLES": "0",
    }
    env.pop("SPACES_ZERO_GPU", None)
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise TimeoutError(f"app.py did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _print(title: str, report: Report) -> None:
    s = report.summary()
    print(f"\n== {title}: {s['jobs']} jobs in {s['wall_s']} s")
    print(
        f"   completed {s['completed']}, queue full {s['queue_full']}, failed {s['failed']}, cancelled {s['cancelled']}"
    )
    for key in ("queue_wait_s", "latency_s", "refusal_s"):
        if s[key]:
            p50, p95, top = s[key]["p50"], s[key]["p95"], s[key]["max"]
            print(f"   {key[:-2].replace('_', ' '):10s} p50 {p50:7.2f} s  p95 {p95:7.2f} s  max {top:7.2f} s")
    for j in sorted(report.jobs, key=lambda j: j.index):
        wait = f"{j.queue_wait:6.2f}" if j.queue_wait is not None else "     -"
        latency = f"{j.latency:6.2f}" if j.latency is not None else "     -"
        times = f"wait {wait} s  total {latency} s  {j.frames:2d} frames"
        print(f"   job {j.index:2d}  {j.outcome:10s} {times}  {j.message[:70]}")


def main(argv: list[str] | None = None) -> int:
    from space import limits

    cpu = limits.queue_limits(on_zerogpu=False)
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app on loopback (default: start app.py on 127.0.0.1)")
    parser.add_argument("--jobs", type=int, default=8, help=f"concurrent jobs in phase 1 (at most {MAX_JOBS})")
    parser.add_argument("--size", type=int, default=32, help="output size of each job (px)")
    parser.add_argument("--steps", type=int, default=10, help="steps of each job")
    parser.add_argument("--timeout", type=float, default=300, help="deadline for any one job or wait (s)")
    parser.add_argument("--no-overflow", action="store_true", help="skip phase 2")
    parser.add_argument("--extra", type=int, default=3, help="jobs submitted beyond the queue's capacity")
    parser.add_argument("--max-size", type=int, default=cpu.max_size, help="the server's queue max_size")
    parser.add_argument("--concurrency", type=int, default=cpu.concurrency, help="the server's concurrency limit")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs must be 1..{MAX_JOBS}")

    import tempfile

    proc = None
    try:
        if args.url:
            url = check_loopback(args.url)
        else:
            print("starting app.py on 127.0.0.1 ...", flush=True)
            proc, url = start_server()
        with tempfile.TemporaryDirectory() as tmp:
            runner = Runner(url, _inputs(Path(tmp)), args.size, args.steps, args.timeout)
            runner.submit(runner.client(), steps=1).result(timeout=args.timeout)  # warm-up (first run's start-up)
            reports = {"concurrent": runner.concurrent(args.jobs)}
            _print(f"phase 1: {args.jobs} concurrent jobs ({args.size} px, {args.steps} steps)", reports["concurrent"])
            if not args.no_overflow:
                reports["overflow"] = runner.overflow(args.max_size, args.concurrency, args.extra)
                _print(
                    f"phase 2: {args.concurrency} busy + {args.max_size} waiting + {args.extra} extra",
                    reports["overflow"],
                )
    finally:
        if proc is not None:
            stop_server(proc)
    if args.json:
        args.json.write_text(
            json.dumps(
                {k: {"summary": r.summary(), "jobs": [asdict(j) for j in r.jobs]} for k, r in reports.items()}, indent=2
            )
        )
    ok = reports["concurrent"].count("completed") == args.jobs
    if "overflow" in reports:
        o = reports["overflow"]
        ok = ok and o.count("queue_full") == min(args.extra, MAX_JOBS) and o.count("completed") == args.max_size
    print("\nOK" if ok else "\nNOT OK: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
