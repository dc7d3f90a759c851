"""Soak benchmark of the served app: many requests with a fixed mix through the real ``app.py`` on loopback.

    python -m bench.soak --requests 500 --clients 4 --out bench/results-soak

Starts ``python app.py`` on a free 127.0.0.1 port (its own process group, private Gradio cache and temp folder),
sends the first ``--warmup`` requests one after another from one client, then the rest over ``--clients``
concurrent clients. The mix (:data:`MIX`) cycles through Adam, L-BFGS, coarse-to-fine, two styles, a mask, colour
preservation, a cancel after the first preview, and bad inputs. Every answer is checked: a good request must end
with its final frame ("Done: N steps", the right size, pixels changed from the photo), a bad one with an ``AppError``
that names the problem. Reports ok / cancelled / clear-error / failed counts, latency percentiles, the server's
RSS and open file descriptors (its whole process tree) and the files left in its caches, as ``report.md`` and
``results.json`` in ``--out``. ``tests/test_soak.py`` runs the same code with fewer requests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .procs import REPO_ROOT, cpu_count, cpuinfo, git


# ---------------------------------------------------------------------------------------------------- the server
@dataclass
class Server:
    """``python app.py`` on a free loopback port, in its own session; ``tmp`` holds its Gradio cache and temp files."""

    proc: subprocess.Popen
    url: str
    tmp: Path

    @classmethod
    def start(cls, tmp: Path, timeout: float = 180, log: Path | None = None) -> Server:
        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for sub in ("gradio", "tmp"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(tmp / "gradio"),
            "TMPDIR": str(tmp / "tmp"),  # the app's own files (results in the download format) land here
            "NST_CACHE_EXAMPLES": "0",
            "NST_MCP": "0",
        }
        env.pop("SPACES_ZERO_GPU", None)
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = cls(proc, f"http://127.0.0.1:{port}/", tmp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with code {proc.returncode}")
            try:
                if httpx.get(server.url, timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        server.stop()
        raise TimeoutError(f"app.py did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """End the whole process group (the app and anything it started)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=30)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def sample(self) -> dict:
        """RSS (MB) and open file descriptors of the server's process tree, and the files in its caches."""
        pids = _tree(self.proc.pid)
        return {
            "t": time.time(),
            "processes": len(pids),
            "rss_mb": round(sum(_rss_kb(p) for p in pids) / 1024, 1),
            "fds": sum(_fds(p) for p in pids),
            "gradio_cache": _usage(self.tmp / "gradio"),
            "app_tmp": _usage(self.tmp / "tmp"),
        }


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/TID/children)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):  # the task ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _usage(folder: Path) -> dict:
    """Number and total size of the files below ``folder``, and per top-level entry."""
    total = {"files": 0, "bytes": 0, "by_entry": {}}
    for path in folder.rglob("*"):
        try:
            if not path.is_file():
                continue
            size = path.stat().st_size
        except OSError:  # removed meanwhile
            continue
        entry = total["by_entry"].setdefault(path.relative_to(folder).parts[0], {"files": 0, "bytes": 0})
        for counts in (total, entry):
            counts["files"] += 1
            counts["bytes"] += size
    if len(total["by_entry"]) > 8:  # Gradio's cache has one folder per file hash: not worth listing
        total.pop("by_entry")
    return total


# ----------------------------------------------------------------------------------------------- the request mix
@dataclass(frozen=True)
class Inputs:
    content: str
    style: str
    style_2: str
    mask: str
    not_image: str


def make_inputs(folder: Path) -> Inputs:
    """Tiny synthetic images (48x36 photo, two 48x48 styles, a half mask) and a text file named ``.png``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    ramp = Image.linear_gradient("L")
    photo = Image.merge("RGB", (ramp, Image.radial_gradient("L"), ramp.rotate(90))).resize((48, 36))
    fractal = Image.effect_mandelbrot((48, 48), (-2, -1.5, 1, 1.5), 50)
    style = Image.merge("RGB", (fractal, Image.effect_noise((48, 48), 80).convert("L"), fractal.rotate(90)))
    stripes = ramp.resize((48, 48)).point(lambda v: 255 * ((v // 24) % 2))
    style_2 = Image.merge("RGB", (stripes, stripes.rotate(90), ramp.resize((48, 48))))
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (24, 0, 48, 36))  # paint the right half
    images = {"content.png": photo, "style.png": style, "style2.png": style_2, "mask.png": mask}
    for name, image in images.items():
        image.save(folder / name)
    (folder / "x.png").write_text("this is not an image")
    return Inputs(*(str(folder / name) for name in (*images, "x.png")))


@dataclass(frozen=True)
class Kind:
    """One kind of request: keyword arguments on top of the defaults, and what must come back.

    Values naming a field of :class:`Inputs` (``"@style_2"``) become uploaded files; ``"@mask"`` an editor value.
    """

    name: str
    args: dict = field(default_factory=dict)
    error: str | None = None  # a bad request: the AppError must contain this
    cancel: bool = False  # cancel after the first preview


DEFAULTS = {"content": "@content", "style": "@style", "size": 32, "steps": 2, "preview_every": 1}
MIX = (
    Kind("adam"),
    Kind("lbfgs", {"optimizer": "lbfgs", "steps": 3}),
    Kind("bad: no style", {"style": None}, error="Please add a style image"),
    Kind("two scales", {"scales": 2, "size": 48, "steps": 4, "preview_every": 2}),
    Kind("two styles", {"style_2": "@style_2", "style_2_blend": 0.5, "size": 40}),
    Kind("cancel", {"steps": 500}, cancel=True),
    Kind("mask", {"mask": "@mask", "background_style": "@style_2"}),
    Kind("bad: size", {"size": 0}, error="less than minimum value"),
    Kind("colours", {"preserve_colors": "luminance", "output_format": "webp"}),
    Kind("bad: not an image", {"style": "@not_image"}, error="style image: not an image"),
    Kind("lbfgs, mask, colours", {"optimizer": "lbfgs", "mask": "@mask", "preserve_colors": "histogram"}),
    Kind("bad: init", {"init": "zeros"}, error="zeros"),
)


def arguments(kind: Kind, inputs: Inputs) -> dict:
    from gradio_client import handle_file

    args = {**DEFAULTS, **kind.args}
    for key, value in args.items():
        if isinstance(value, str) and value.startswith("@"):
            path = handle_file(getattr(inputs, value[1:]))
            args[key] = {"background": None, "layers": [path], "composite": None} if key == "mask" else path
    return args


# --------------------------------------------------------------------------------------------------- one request
@dataclass
class Outcome:
    index: int
    kind: str
    outcome: str = "failed"  # ok, cancelled, clear_error, failed
    message: str = ""
    latency: float | None = None  # submit -> final answer (or error, or the first preview for a cancel)
    frames: int = 0
    cut_short: int = 0  # image downloads cut short and fetched again (see _image)


class Call:
    """One request: submitted when made, checked by :meth:`finish` (which never raises)."""

    def __init__(self, client, kind: Kind, inputs: Inputs, index: int = 0) -> None:
        self.kind, self.outcome, self.job, self.error = kind, Outcome(index, kind.name), None, None
        self.start = time.perf_counter()
        try:
            self.args = arguments(kind, inputs)
            self.job = client.submit(api_name="/stylize", **self.args)
        except Exception as exc:  # e.g. an upload refused
            self.error = exc

    def finish(self, timeout: float) -> Outcome:
        kind, outcome, job = self.kind, self.outcome, self.job
        try:
            if self.error:
                raise self.error
            _follow(job, timeout, kind.cancel, outcome)
            outcome.latency = time.perf_counter() - self.start
            outcome.frames = len(job.outputs())
            if kind.cancel:
                job.cancel()
                ok = outcome.frames > 0 and str(job.outputs()[0][3]).startswith("Starting: step 0 of ")
                outcome.outcome, outcome.message = ("cancelled", "") if ok else ("failed", "no first preview")
                return outcome
            problem = _check_final(job.result(timeout=timeout), self.args, outcome)
        except Exception as exc:
            from gradio_client.exceptions import AppError
            from gradio_client.utils import QueueError

            outcome.latency = outcome.latency or time.perf_counter() - self.start
            outcome.message = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, (AppError, QueueError)) and kind.error and kind.error in str(exc):
                outcome.outcome = "clear_error"
            return outcome
        outcome.outcome, outcome.message = ("failed", problem) if problem else ("ok", "")
        if kind.error:
            outcome.outcome, outcome.message = "failed", f"expected an error with {kind.error!r}, got a result"
        return outcome


def run_request(client, index: int, inputs: Inputs, timeout: float) -> Outcome:
    """Send request ``index`` of the mix and check its answer; never raises."""
    return Call(client, MIX[index % len(MIX)], inputs, index).finish(timeout)


def _follow(job, timeout: float, first: bool, outcome: Outcome) -> None:
    """Until ``job`` is done (or, with ``first``, has its first preview), fetching each preview image as it comes,
    as a browser does (those downloads run on the server's worker threads alongside the run); TimeoutError past
    ``timeout``."""
    deadline, seen = time.monotonic() + timeout, 0
    while not (job.done() or (first and seen)):
        outputs = job.outputs()
        for output in outputs[seen:]:
            _image(output[0]["url"], outcome)
        seen = len(outputs)
        if time.monotonic() > deadline:
            job.cancel()
            raise TimeoutError(f"no answer within {timeout:.0f} s")
        time.sleep(0.01)


def _image(url: str, outcome: Outcome):
    """The image at ``url`` as an RGB float array.

    Gradio saves an output image under the hash of its bytes and writes the file again, in place, whenever the same
    image recurs (the photo is the step-0 preview and the "before" image of every frame; equal runs give equal
    frames), so a download at that moment can come back empty or cut short. Such a download is counted in
    ``outcome.cut_short`` and tried again (up to three times).
    """
    import httpx
    import numpy as np
    from PIL import Image

    def fetch():
        data = httpx.get(url, timeout=30).raise_for_status().content
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)

    for retry in range(3):
        try:
            return fetch()
        except (httpx.RemoteProtocolError, OSError):  # OSError: PIL's "cannot identify image file", "truncated"
            outcome.cut_short += 1
            time.sleep(0.2 * (retry + 1))
    return fetch()


def _check_final(final, args: dict, outcome: Outcome) -> str | None:
    """None if ``final`` is the last frame of a real run of ``args``; otherwise what is wrong."""
    image, (before, _after), _losses, status, download = final
    steps = args["steps"]
    if not str(status).startswith(f"Done: {steps} step"):
        return f"not the final frame: {str(status).splitlines()[0]!r}"
    if download is None:
        return "no download file"
    result, photo = (_image(f["url"], outcome) for f in (image, before))
    if result.shape != photo.shape or max(result.shape[:2]) != args["size"]:
        return (
            f"result {result.shape[1]}x{result.shape[0]}, photo {photo.shape[1]}x{photo.shape[0]}, size {args['size']}"
        )
    change = float(abs(result - photo).mean())
    return None if change > 0.5 else f"the result is the photo (mean change {change:.2f} of 255)"


# ------------------------------------------------------------------------------------------------------- driving
def run_sequence(url: str, indexes, inputs: Inputs, timeout: float = 120) -> list[Outcome]:
    """Requests ``indexes`` of the mix one after another from one client."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    return [run_request(client, i, inputs, timeout) for i in indexes]


def run_clients(url: str, clients: int, indexes, inputs: Inputs, timeout: float = 120) -> list[Outcome]:
    """Requests ``indexes`` spread over ``clients`` threads, each with its own client, taking the next one free."""
    todo = iter(list(indexes))
    lock = threading.Lock()
    outcomes: list[Outcome] = []

    def next_index() -> int | None:
        with lock:
            return next(todo, None)

    def worker() -> None:
        from gradio_client import Client

        client = Client(url, verbose=False, download_files=False)
        while (i := next_index()) is not None:
            result = run_request(client, i, inputs, timeout)
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes, key=lambda o: o.index)


def overflow(url: str, inputs: Inputs, extra: int, timeout: float = 120) -> list[Outcome]:
    """The queue past its capacity: long runs hold every worker, the queue's ``max_size`` waiting places fill with
    good requests, then ``extra`` more must each be refused at once with "Queue is full"; then the long runs are
    cancelled and the waiting requests must complete. Returns the long runs, the refused and the waiting ones."""
    from gradio_client import Client
    from gradio_client.client import Status

    from space.limits import queue_limits

    limits = queue_limits(on_zerogpu=False)

    def call(kind: Kind, index: int) -> Call:
        return Call(Client(url, verbose=False, download_files=False), kind, inputs, index)

    long_runs = [call(Kind("long run", {"steps": 5000}, cancel=True), i) for i in range(limits.concurrency)]
    for c in long_runs:
        _until(c, (Status.PROCESSING, Status.ITERATING), timeout)
    waiting = [call(MIX[0], len(long_runs) + i) for i in range(limits.max_size)]
    for c in waiting:
        _until(c, (Status.IN_QUEUE,), timeout)
    first = len(long_runs) + len(waiting)
    refused = [call(Kind("queue full", error="Queue is full"), first + i).finish(timeout) for i in range(extra)]
    return [c.finish(timeout) for c in long_runs] + refused + [c.finish(timeout) for c in waiting]


def _until(call: Call, codes: tuple, timeout: float) -> None:
    """Until ``call``'s job has one of the status ``codes``; an error if it ends first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while call.error is None and call.job.status().code not in codes:
        if call.job.done() or time.monotonic() > deadline:
            raise RuntimeError(f"{call.kind.name}: never reached {codes} ({call.finish(1).message})")
        time.sleep(0.02)
    if call.error is not None:
        raise RuntimeError(f"{call.kind.name}: {call.error}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported time is one a request really had)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def stats(values: list[float | None]) -> dict | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return {k: round(v, 2) for k, v in (("p50", percentile(got, 50)), ("p95", percentile(got, 95)), ("max", max(got)))}


def summary(outcomes: list[Outcome]) -> dict:
    counts = {name: sum(o.outcome == name for o in outcomes) for name in ("ok", "cancelled", "clear_error", "failed")}
    return {
        "requests": len(outcomes),
        **counts,
        "downloads_cut_short": sum(o.cut_short for o in outcomes),
        "latency_ok_s": stats([o.latency for o in outcomes if o.outcome == "ok"]),
        "latency_clear_error_s": stats([o.latency for o in outcomes if o.outcome == "clear_error"]),
    }


# ----------------------------------------------------------------------------------------------------- benchmark
def _cpu() -> str:
    """The CPU model, family and model number, whether under a hypervisor, and the cores this process may use."""
    info = cpuinfo()
    vm = ", virtual machine" if "hypervisor" in info.get("flags", "").split() else ""
    family = f"family {info.get('cpu family')}, model {info.get('model')}{vm}"
    return f"{info.get('model name')} ({family}); {cpu_count()} cores"


def _report(result: dict) -> str:
    s, samples = result["summary"], result["samples"]
    lines = [
        "# Soak benchmark of the served app",
        "",
        f"`{result['command']}`  ",
        f"{result['cpu']}; commit {result['commit']}; {result['wall_s']:.0f} s in all.",
        "",
        f"Requests: {s['requests']} (mix of {len(MIX)} kinds; first {result['warmup']} from one client, the rest over "
        f"{result['clients']} concurrent clients)",
        "",
        "| ok | cancelled | clear error | failed | image downloads cut short (then fetched again) |",
        "|---|---|---|---|---|",
        f"| {s['ok']} | {s['cancelled']} | {s['clear_error']} | {s['failed']} | {s['downloads_cut_short']} |",
        "",
        "| latency (s) | p50 | p95 | max |",
        "|---|---|---|---|",
    ]
    for key in ("latency_ok_s", "latency_clear_error_s"):
        if s[key]:
            lines.append(f"| {key[8:-2].replace('_', ' ')} | {s[key]['p50']} | {s[key]['p95']} | {s[key]['max']} |")
    lines += [
        "",
        "| server | processes | RSS MB | fds | Gradio cache files | bytes | app temp files | bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("start", "after warm-up", "peak", "end"):
        x = samples[name]
        g, a = x["gradio_cache"], x["app_tmp"]
        cells = (name, x["processes"], x["rss_mb"], x["fds"], g["files"], g["bytes"], a["files"], a["bytes"])
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    if result.get("overflow"):
        q = result["overflow"]["summary"]
        lines += [
            "",
            f"Queue past its capacity: {q['cancelled']} long runs holding the worker(s) cancelled, {q['clear_error']} "
            f'extra requests refused with "Queue is full" (max {q["latency_clear_error_s"]["max"]} s), '
            f"{q['ok']} waiting requests completed, {q['failed']} failed.",
        ]
    failed = [
        o for o in result["outcomes"] + (result["overflow"] or {}).get("outcomes", []) if o["outcome"] == "failed"
    ]
    if failed:
        lines += ["", "Failures (first 20):", ""] + [
            f"- #{o['index']} {o['kind']}: {o['message'][:200]}" for o in failed[:20]
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests in all (default 500)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients after the warm-up (default 4)")
    parser.add_argument("--warmup", type=int, default=len(MIX), help="requests first sent from one client")
    parser.add_argument("--timeout", type=float, default=300, help="deadline of any one request (s)")
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between RSS/fd samples")
    parser.add_argument("--overflow", type=int, default=0, help="then fill the queue and send N more (default 0: skip)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results-soak", help="report folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    commit = git(["rev-parse", "--short", "HEAD"])
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    t0 = time.perf_counter()
    server = Server.start(tmp, log=args.out / "server.log")
    try:
        inputs = make_inputs(tmp / "inputs")
        samples = {"start": server.sample(), "during": []}
        warm = min(args.warmup, args.requests)
        outcomes = run_sequence(server.url, range(warm), inputs, args.timeout)
        samples["after warm-up"] = server.sample()
        print(f"warm-up: {summary(outcomes)}", flush=True)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(args.sample_every):
                samples["during"].append(server.sample())

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        outcomes += run_clients(server.url, args.clients, range(warm, args.requests), inputs, args.timeout)
        stop.set()
        thread.join()
        samples["end"] = server.sample()
        samples["peak"] = max([*samples["during"], samples["end"]], key=lambda x: x["rss_mb"])
        queue = overflow(server.url, inputs, args.overflow, args.timeout) if args.overflow else []
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "command": "python -m bench.soak " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": _cpu(),
        "commit": commit or "unknown",
        "clients": args.clients,
        "warmup": warm,
        "wall_s": time.perf_counter() - t0,
        "summary": summary(outcomes),
        "samples": samples,
        "outcomes": [asdict(o) for o in outcomes],
        "overflow": {"summary": summary(queue), "outcomes": [asdict(o) for o in queue]} if queue else None,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    report = _report(result)
    (args.out / "report.md").write_text(report)
    print(report)
    return 0 if result["summary"]["failed"] == 0 and not (queue and result["overflow"]["summary"]["failed"]) else 1


if __name__ == "__main__":
    sys.exit(main())
