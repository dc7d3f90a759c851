"""The real app.py served on loopback keeps answering: 40+ mixed requests in a row, then 4 concurrent clients.

Issue 9: the served app failed every request after the fifth, because generators resumed on other worker threads
found gradients switched off there. Only many requests through one server show that; ``python -m bench.soak`` runs
the same mix (``bench.soak.MIX``) at length and measures it.
"""

from __future__ import annotations

import pytest

from bench.soak import MIX, Server, make_inputs, run_clients, run_sequence, summary

IN_A_ROW = 4 * len(MIX)  # 48: every kind of request four times


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server.start(tmp_path_factory.mktemp("soak-server"))
    yield server
    server.stop()


def _failures(outcomes) -> str:
    return "\n".join(f"#{o.index} {o.kind}: {o.message[:120]}" for o in outcomes if o.outcome == "failed")


def test_many_requests_in_a_row_then_concurrent_clients(server, tmp_path):
    inputs = make_inputs(tmp_path)
    kinds = {k.name for k in MIX}
    assert {"adam", "lbfgs", "two scales", "two styles", "mask", "colours", "cancel"} <= kinds

    in_a_row = run_sequence(server.url, range(IN_A_ROW), inputs, timeout=90)
    assert not _failures(in_a_row), _failures(in_a_row)
    bad = sum(k.error is not None for k in MIX) * IN_A_ROW // len(MIX)
    cancels = sum(k.cancel for k in MIX) * IN_A_ROW // len(MIX)
    counts = summary(in_a_row)
    assert (counts["ok"], counts["cancelled"], counts["clear_error"]) == (IN_A_ROW - bad - cancels, cancels, bad)
    # Each cancel is followed by a good request, which must have completed (no stuck run left behind).
    for o in in_a_row:
        if o.outcome == "cancelled":
            assert in_a_row[o.index + 1].outcome == "ok"

    concurrent = run_clients(server.url, 4, range(IN_A_ROW, IN_A_ROW + 20), inputs, timeout=120)
    assert len(concurrent) == 20 and not _failures(concurrent), _failures(concurrent)
    assert server.proc.poll() is None
