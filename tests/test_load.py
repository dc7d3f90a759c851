"""A small load test in CI (the bigger one is ``python -m bench.load``): concurrent jobs all complete, and jobs beyond
the queue's capacity get a clear "Queue is full" at once instead of hanging."""

from __future__ import annotations

import pytest

from bench.load import Runner, _inputs, _percentile, check_loopback
from space import limits


@pytest.fixture(scope="module")
def runner(app_url, tmp_path_factory) -> Runner:
    return Runner(app_url, _inputs(tmp_path_factory.mktemp("load")), size=32, steps=4, timeout=180)


def test_four_concurrent_jobs_complete(runner):
    report = runner.concurrent(4)
    summary = report.summary()
    assert summary["completed"] == 4, [(j.outcome, j.message) for j in report.jobs]
    assert summary["failed"] == 0 and summary["queue_full"] == 0
    waits = sorted(j.queue_wait for j in report.jobs)
    assert all(w >= 0 for w in waits) and all(j.latency >= j.queue_wait for j in report.jobs)
    assert summary["latency_s"]["p50"] <= summary["latency_s"]["p95"] <= summary["latency_s"]["max"]


def test_beyond_capacity_is_refused_at_once_and_the_rest_completes(runner, app_url):
    import app

    queue = limits.queue_limits(on_zerogpu=False)
    assert app.demo._queue.max_size == queue.max_size  # the test exercises the app's real settings
    report = runner.overflow(queue.max_size, queue.concurrency, extra=2)
    outcomes = sorted(j.outcome for j in report.jobs)
    assert outcomes == ["completed"] * queue.max_size + ["queue_full"] * 2, [
        (j.outcome, j.message) for j in report.jobs
    ]
    refused = [j for j in report.jobs if j.outcome == "queue_full"]
    assert all("Queue is full" in j.message for j in refused)
    # "At once": answered long before any job could have finished (a functional bound, not a speed goal).
    assert all(j.latency < 60 for j in refused)
    assert runner.concurrent(1).summary()["completed"] == 1  # the server still answers


def test_loopback_only_and_percentiles():
    assert check_loopback("http://127.0.0.1:7860") == "http://127.0.0.1:7860/"
    with pytest.raises(SystemExit, match="loopback"):
        check_loopback("https://example.org/")
    assert _percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and _percentile([3.0, 1.0, 2.0, 4.0], 95) == 4.0
    assert _percentile([5.0], 95) == 5.0
