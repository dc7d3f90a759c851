"""A run may be resumed on any thread (Gradio advances a generator with ``next()`` on worker threads).

Grad mode is thread-local: a ``yield`` inside ``torch.no_grad()`` left the thread that entered it with gradients
off for good, and every later request on that thread failed in ``backward()`` (issue 9). These tests move every
``next()`` to another thread and then check that every thread is left as it was and still runs a full request.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
from PIL import Image

from style_transfer import stylize


class Workers:
    """N plain threads; ``call(i, fn)`` runs ``fn`` on thread ``i % N`` and returns its result (or raises)."""

    def __init__(self, count: int) -> None:
        self.inboxes: list[queue.Queue] = [queue.Queue() for _ in range(count)]
        self.threads = [threading.Thread(target=self._serve, args=(q,), daemon=True) for q in self.inboxes]
        for t in self.threads:
            t.start()

    @staticmethod
    def _serve(inbox: queue.Queue) -> None:
        while (job := inbox.get()) is not None:
            fn, reply = job
            try:
                reply.put((True, fn()))
            except BaseException as exc:  # handed back to the caller
                reply.put((False, exc))

    def call(self, index: int, fn: Callable[[], Any]) -> Any:
        reply: queue.Queue = queue.Queue()
        self.inboxes[index % len(self.inboxes)].put((fn, reply))
        ok, value = reply.get(timeout=120)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for t in self.threads:
            t.join(timeout=10)


@pytest.fixture
def workers():
    pool = Workers(3)
    yield pool
    pool.close()


def _mask(path) -> Image.Image:
    with Image.open(path) as img:
        mask = Image.new("L", img.size, 0)
    mask.paste(255, (0, 0, mask.width // 2, mask.height))
    return mask


CASES = {
    "adam": {},
    "lbfgs": {"optimizer": "lbfgs"},
    "scales": {"scales": 2, "size": 64},
    "mask": {"mask": "half"},
    "colour": {"preserve_colors": "luminance"},
}


def _drive(workers: Workers, gen, start: int = 0, limit: int | None = None) -> list:
    """Advance ``gen`` with each ``next()`` on the next worker thread; stop after ``limit`` frames if given."""
    frames = []
    index = start
    while limit is None or len(frames) < limit:
        try:
            frames.append(workers.call(index, lambda: next(gen)))
        except StopIteration:
            break
        index += 1
    return frames


@pytest.mark.parametrize("case", list(CASES))
def test_run_resumed_on_other_threads_leaves_every_thread_able_to_run(case, workers, content_path, style_path, model):
    kw = {"model": model, "size": 48, "steps": 6, "preview_every": 2, **CASES[case]}
    if kw.get("mask") == "half":
        kw["mask"] = _mask(content_path)

    frames = _drive(workers, stylize(content_path, style_path, **kw))
    assert frames[-1].done and frames[-1].step == 6
    assert len(frames) >= 4  # step 0, 2, 4 and the final frame, each fetched on another thread

    # A run closed after its first frame (a user's Stop), closed from yet another thread.
    stopped = stylize(content_path, style_path, **kw)
    assert _drive(workers, stopped, start=1, limit=1)[0].step == 0
    workers.call(2, stopped.close)

    # Every thread is left with gradients on, and a fresh run on each of them succeeds.
    assert [workers.call(i, torch.is_grad_enabled) for i in range(3)] == [True, True, True]
    assert torch.is_grad_enabled()  # the test's own thread too
    for i in range(3):
        final = workers.call(i, lambda: list(stylize(content_path, style_path, model=model, size=32, steps=2))[-1])
        assert final.done


def test_run_works_when_the_caller_has_gradients_off(content_path, style_path, model):
    """A caller inside ``torch.no_grad()`` (common in inference code) still gets a real optimisation."""
    with torch.no_grad():
        frames = list(stylize(content_path, style_path, model=model, size=32, steps=4, preview_every=1))
    assert frames[-1].losses["total"] < frames[0].losses["total"]
    assert not torch.is_inference_mode_enabled()
