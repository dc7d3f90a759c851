"""The queue past its capacity (``python -m bench.soak --overflow N`` runs the same): with the worker busy and every
waiting place taken, further requests get a clear "Queue is full" at once instead of hanging, and the waiting ones
still complete. (Many requests and concurrent clients: tests/test_soak.py.)"""

from __future__ import annotations

from bench.soak import make_inputs, overflow, percentile, summary
from space import limits


def test_beyond_capacity_is_refused_at_once_and_the_rest_completes(app_url, tmp_path):
    import app

    queue = limits.queue_limits(on_zerogpu=False)
    assert app.demo._queue.max_size == queue.max_size  # the test exercises the app's real settings
    outcomes = overflow(app_url, make_inputs(tmp_path), extra=2)
    counts = summary(outcomes)
    assert (counts["cancelled"], counts["clear_error"], counts["ok"], counts["failed"]) == (
        queue.concurrency,
        2,
        queue.max_size,
        0,
    ), [(o.kind, o.outcome, o.message) for o in outcomes]
    refused = [o for o in outcomes if o.outcome == "clear_error"]
    assert all("Queue is full" in o.message for o in refused)
    # "At once": answered long before any job could have finished (a functional bound, not a speed goal).
    assert all(o.latency < 60 for o in refused)


def test_percentiles():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and percentile([3.0, 1.0, 2.0, 4.0], 95) == 4.0
    assert percentile([5.0], 95) == 5.0
