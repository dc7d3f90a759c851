"""A stand-in for ZeroGPU's device API: what ``spaces`` (0.51.3) calls to get, announce and give back a GPU.

    POST /startup-report               -> 200
    POST /schedule?durationSeconds&... -> 200 {idle, nvidiaIndex, nvidiaUUID, allowToken}; 429 {left, wait} with
                                          X-Approve-Result (quota-exceeded, or illegal-duration when wait < 0);
                                          any other status (503: no GPU; 500: platform trouble)
    POST /allow?allowToken&pid         -> 200 (the worker announces itself)
    POST /release?allowToken&fail      -> 200, and the worker is killed (the platform reclaims the GPU)

Options (:meth:`DeviceAPI.set`): ``status`` (answer /schedule with it), ``quota_left`` (answer 429 when a run asks for
more seconds), ``max_duration`` (429 illegal duration above it), ``abort_after`` (kill a worker that many seconds
after it announced itself, as the platform does when a run's time is up). :meth:`stop` makes it unreachable.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class DeviceAPI:
    """The stand-in, served on a thread of the test process at :attr:`url`; :attr:`calls` logs every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.options: dict[str, Any] = {}
        self._pids: dict[str, int] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DeviceAPI:
        """Serve (again, on the same port once it has one)."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                status, body, headers = api.answer(parts.path, dict(parse_qsl(parts.query)))
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop answering: connections are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set(self, **options: Any) -> None:
        """Replace the options (none: a platform that grants every request)."""
        self.options = options

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) for one call."""
        opts = self.options
        with self._lock:
            self.calls.append({"ep": path, **query})
        if path == "/schedule":
            seconds = int(query.get("durationSeconds", "60"))
            if opts.get("status"):
                return opts["status"], {}, {}
            if opts.get("max_duration") is not None and seconds > opts["max_duration"]:
                return 429, {"left": 600, "wait": -1}, {"X-Approve-Result": "illegal-duration"}
            if opts.get("quota_left") is not None and seconds > opts["quota_left"]:
                left = {"left": opts["quota_left"], "wait": 3600}
                return 429, left, {"X-Approve-Result": "quota-exceeded"}
            token = f"token{next(self._tokens)}"
            return 200, {"idle": False, "nvidiaIndex": 0, "nvidiaUUID": "GPU-standin", "allowToken": token}, {}
        if path == "/allow":
            pid = int(query["pid"])
            with self._lock:
                self._pids[query["allowToken"]] = pid
            if opts.get("abort_after") is not None:
                threading.Timer(opts["abort_after"], _kill, (pid,)).start()
            return 200, {}, {}
        if path == "/release":
            with self._lock:
                pid = self._pids.pop(query.get("allowToken", ""), None)
            if pid is not None:
                _kill(pid)
            return 200, {}, {}
        return 200, {}, {}

    def count(self, endpoint: str) -> int:
        """How many calls reached ``endpoint`` ("/schedule", "/release", ...)."""
        with self._lock:
            return sum(call["ep"] == endpoint for call in self.calls)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
