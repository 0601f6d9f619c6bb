"""Mode (g)'s client keeps its schedule whatever the service answers, both clients long-poll the
status, and the sweep reports the highest rate sustained."""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx
import pytest

from bench import http_load, open_load, sweep
from bench.meter import Usage
from bench.modes import MODES, Measured, open_loop
from bench.report import Result
from bench.workload import Books, orders


def test_the_open_loop_posts_on_schedule_however_slow_the_answers() -> None:
    sent: list[float] = []
    lock = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            sent.append(time.perf_counter())
        time.sleep(0.5)  # a service slower than the offered rate
        body = json.loads(request.content)
        return httpx.Response(200, json={"order_id": body["order_id"], "created": True})

    specs = orders(8)
    with httpx.Client(base_url="http://bench", transport=httpx.MockTransport(slow)) as client:
        began = time.perf_counter()
        posts = open_load.offer(client, specs, per_second=20)
    assert len(sent) == len(specs)
    assert max(sent) - began < 0.45  # the 8th left at 0.35 s, before the first was answered
    assert max(lag for lag, _ in posts) < 0.1
    assert sum(retries for _, retries in posts) == 0


def test_a_client_waits_with_a_long_poll() -> None:
    asked: list[httpx.URL] = []

    def status(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(200, json={"status": "running"})

    with httpx.Client(base_url="http://bench", transport=httpx.MockTransport(status)) as client:
        assert http_load.wait_for_change(client, "bench-00001") == "running"
    assert asked[0].path == "/orders/bench-00001/status"
    assert asked[0].params["wait"] == str(http_load.WAIT_SECONDS)


def test_rates_are_parsed_and_bounded() -> None:
    assert sweep.rates("9, 6,12,6") == [6.0, 9.0, 12.0]
    for bad in ("0", "-1", "x", "nan", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            sweep.rates(bad)


def test_the_open_loop_runs_once_per_rate() -> None:
    picked = sweep.at_rates(list(MODES), [6.0, 9.0])
    assert [mode.letter for mode in picked] == [mode.letter for mode in MODES] + ["g"]
    assert [(mode.name, mode.rate) for mode in picked if mode.letter == "g"] == [
        ("service-open-6", 6.0),
        ("service-open-9", 9.0),
    ]


def run_at(rate: float, latencies: list[float], lags: list[float], status: str = "ok") -> Result:
    measured = Measured(1.0, Usage(), other_latencies={"post_lag_s": lags})
    result = Result(open_loop(rate), len(latencies), {}, status=status, measured=measured)
    result.books = Books(latencies=latencies)
    return result


def test_the_highest_rate_sustained_is_reported() -> None:
    fast, late = [0.1] * 20, [0.1] * 18 + [0.9] * 2
    found = sweep.sustained(
        [
            run_at(12, fast, [0.0], status="FAILED"),  # its books did not balance
            run_at(6, fast, [0.0]),
            run_at(10, fast, [0.7] * 20),  # the client fell behind: not offered
            run_at(9, fast, [0.0]),
            run_at(11, late, [0.0]),  # p95 0.9 s
        ]
    )
    assert found is not None
    assert found["highest_sustained_rate"] == 9
    assert [rate for rate, row in found["rates"].items() if row["sustained"]] == ["6", "9"]
    assert "9/s of 6, 9, 10, 11, 12 orders/s" in sweep.summary(found)
    assert sweep.sustained([]) is None
