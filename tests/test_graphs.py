"""The CUDA-graph paths (style_transfer/graphs.py) checked on a CPU, with the two CUDA calls replaced by stand-ins.

A capture is emulated by running the body once; a replay runs it again and copies its outputs into the captured
ones, as a replay rewrites a graph's static buffers. What this checks is the logic around the graph: the warm-up is
undone, previews show the pre-step state, L-BFGS gets its cost and gradient, capture failures fall back. With the
stand-ins the graphed run must equal the eager run exactly. What only a GPU can check (that the captured kernels do
the same) is ``python -m bench.gpu``'s graphed-vs-eager comparison.
"""

import logging

import pytest
import torch

from style_transfer import StyleConfig, graphs, stylize


def _outputs(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _outputs(v)]
    return [t for v in tree for t in _outputs(v)]


def _emulated_record(captures: list[int], factor: float = 1.0):
    """A stand-in for graphs.record: each replay reruns the body into the captured outputs (times ``factor``)."""

    def record(body):
        outputs = body()
        captures.append(1)

        def replay() -> None:
            with torch.no_grad():
                for static, fresh in zip(_outputs(outputs), _outputs(body()), strict=True):
                    static.copy_(fresh * factor)

        return replay, outputs

    return record


@pytest.fixture
def emulated(monkeypatch) -> list[int]:
    """Graphs "on" the CPU: returns the list of captures made (one entry each)."""
    captures: list[int] = []
    monkeypatch.setattr(graphs, "disabled", None)  # a test's failed capture must not switch graphs off for the next
    monkeypatch.setattr(graphs, "counts", graphs.collections.Counter())
    monkeypatch.setattr(graphs, "wanted", lambda setting, device: setting == "on")
    monkeypatch.setattr(graphs, "warm_up", lambda body, calls=graphs.WARMUP_CALLS: [body() for _ in range(calls)])
    monkeypatch.setattr(graphs, "record", _emulated_record(captures))
    return captures


def _run(content, style, model, **settings) -> list[tuple[int, dict, bytes]]:
    cfg = StyleConfig(**{"size": 32, "steps": 6, "preview_every": 1, "precision": "fp32", **settings})
    return [(f.step, f.losses, f.image.tobytes()) for f in stylize(content, style, cfg, model=model)]


CASES = {
    "adam": {},
    "adam, bf16": {"precision": "auto"},
    "adam, two scales": {"scales": 2, "size": 64},
    "adam, previews every 4": {"preview_every": 4},
    "lbfgs": {"optimizer": "lbfgs"},
    "lbfgs, two scales": {"optimizer": "lbfgs", "scales": 2, "size": 64},
}


@pytest.mark.parametrize("case", CASES)
def test_graphed_run_equals_the_eager_run(case, emulated, content_path, style_path, model):
    settings = CASES[case]
    eager = _run(content_path, style_path, model, cuda_graphs="off", **settings)
    assert not emulated
    graphed = _run(content_path, style_path, model, cuda_graphs="on", **settings)
    assert len(emulated) == settings.get("scales", 1)  # one capture per scale
    assert graphs.counts["captured"] == len(emulated) and "capture_ms" in graphs.counts  # what bench.gpu reports
    assert [f[:2] for f in graphed] == [f[:2] for f in eager]  # the same steps and costs, bit for bit
    assert [f[2] for f in graphed] == [f[2] for f in eager]  # the same pictures


def test_graphed_run_with_a_mask_equals_the_eager_run(emulated, content_path, style_path, model):
    from PIL import Image

    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 32, 48))
    cfg = StyleConfig(size=32, steps=4, preview_every=1, precision="fp32")
    eager = [f.losses for f in stylize(content_path, style_path, cfg, model=model, mask=mask)]
    graphed = [
        f.losses for f in stylize(content_path, style_path, cfg.replace(cuda_graphs="on"), model=model, mask=mask)
    ]
    assert graphed == eager and emulated


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_failed_capture_falls_back_to_the_eager_run(
    optimizer, emulated, monkeypatch, caplog, content_path, style_path, model
):
    eager = _run(content_path, style_path, model, cuda_graphs="off", optimizer=optimizer)

    def broken(body):
        body()  # a capture that fails after recording part of the work
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs, "record", broken)
    with caplog.at_level(logging.WARNING, logger=graphs.__name__):
        fallen = _run(content_path, style_path, model, cuda_graphs="on", optimizer=optimizer)
    assert fallen == eager
    assert "CUDA graph capture failed (RuntimeError" in caplog.text
    assert graphs.counts == {"fallback": 1}


def test_after_a_failed_capture_the_process_captures_no_more(emulated, monkeypatch, content_path, style_path, model):
    """A capture that fails at its end can leave CUDA's allocator in capture mode and leak its pool: once is enough."""
    eager = _run(content_path, style_path, model, cuda_graphs="off")
    monkeypatch.setattr(graphs, "record", lambda body: (_ for _ in ()).throw(RuntimeError("capture invalidated")))
    _run(content_path, style_path, model, cuda_graphs="on")
    monkeypatch.setattr(graphs, "record", _emulated_record(emulated))
    later = [_run(content_path, style_path, model, cuda_graphs="on", optimizer=o) for o in ("adam", "lbfgs")]
    assert not emulated and later[0] == eager  # never tried again; eager steps, the same run
    assert graphs.counts == {"fallback": 1, "skipped": 2} and graphs.disabled == "RuntimeError: capture invalidated"


def test_captures_never_overlap(emulated, monkeypatch, content_path, style_path, model):
    """torch.cuda.graph shares one capture stream per process and synchronises the device on entry: two requests
    capturing at once would record into each other's graphs. Steps and replays may overlap; captures may not."""
    import threading
    import time

    inside, most = [0], [0]
    record = _emulated_record(emulated)

    def slow_record(body):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.2)  # long enough for the other thread to reach its capture
        try:
            return record(body)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(graphs, "record", slow_record)
    runs = [threading.Thread(target=_run, args=(content_path, style_path, model), kwargs={"cuda_graphs": "on"})]
    runs.append(threading.Thread(target=_run, args=(content_path, style_path, model), kwargs={"cuda_graphs": "on"}))
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert len(emulated) == 2 and most[0] == 1


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_graph_that_computes_wrong_numbers_is_not_used(
    optimizer, emulated, monkeypatch, caplog, content_path, style_path, model
):
    """The first replay is checked against the eager cost of the same image; a graph that is off by 1% is dropped."""
    eager = _run(content_path, style_path, model, cuda_graphs="off", optimizer=optimizer)

    monkeypatch.setattr(graphs, "record", _emulated_record([], factor=1.01))
    with caplog.at_level(logging.WARNING, logger=graphs.__name__):
        checked = _run(content_path, style_path, model, cuda_graphs="on", optimizer=optimizer)
    assert checked == eager
    assert "GraphMismatch: first replay gave J" in caplog.text


def test_the_step_after_a_preview_is_queued_before_the_host_waits_for_the_picture(
    emulated, monkeypatch, content_path, style_path, model
):
    """With graphs a GPU would otherwise idle while the host converts, copies and sends each preview: the next
    step is queued first (unless it is itself a preview), and the pictures stay those of the eager run."""
    from style_transfer import engine

    events: list[str] = []
    record = graphs.record

    def counting_record(body):
        replay, outputs = record(body)
        return (lambda: (events.append("step"), replay())), outputs

    result = engine._PendingFrame.result
    monkeypatch.setattr(graphs, "record", counting_record)
    monkeypatch.setattr(engine._PendingFrame, "result", lambda self: (events.append("wait"), result(self))[1])
    eager = _run(content_path, style_path, model, cuda_graphs="off", steps=6, preview_every=4)
    events.clear()
    graphed = _run(content_path, style_path, model, cuda_graphs="on", steps=6, preview_every=4)
    checked = events.index("step")  # the capture's checked replay, then the run's steps
    assert events[checked + 1 :] == ["step", "step", "wait", "step", "step", "step", "step", "wait", "wait"]
    assert graphed == eager


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_fast_paths_run_through_whole_runs_graphed_as_eager(
    emulated, fused_on_cpu, bf16_gram_on_cpu, precision, content_path, style_path, model
):
    """The CUDA-only fast paths (fused conv + ReLU, bf16 Gram; CPU stand-ins here) inside whole runs: two scales,
    queued previews, graphs emulated. The graphed run equals the eager run, frame by frame."""
    from style_transfer import accel

    settings = {"scales": 2, "size": 64, "preview_every": 2, "precision": precision}
    eager = _run(content_path, style_path, model, cuda_graphs="off", **settings)
    graphed = _run(content_path, style_path, model, cuda_graphs="on", **settings)
    assert graphed == eager and len(emulated) == 2
    assert not accel.fused_conv_relu.failures
    bf16 = precision == "bf16" and accel.bf16_supported(torch.device("cpu"))
    assert bool(bf16_gram_on_cpu) == bf16  # the bf16 Gram runs where the network runs in bf16, and only there
    # In fp32 every conv is fused; a CPU model has no bf16 weight copy, so under bf16 autocast none is (on a GPU the
    # bf16 copy takes bf16 inputs: tests/test_model.py)
    assert len(fused_on_cpu) > 0 if not bf16 else not fused_on_cpu
