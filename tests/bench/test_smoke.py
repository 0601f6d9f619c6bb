"""`python -m bench --quick`: every mode runs the workload, its audit is clean and its orders
end as planned (most completed, the `…-fail` ones failed and compensated; Prefect's floor (f),
which writes no books, reports every order completed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.modes import MODES
from tests.support import ROOT, run_module

pytestmark = pytest.mark.e2e  # starts servers or processes

RUN_SECONDS = 300
DOCS_CHART = ROOT / "docs" / "bench.png"


def stamp(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick bench run (outputs in a temp dir): its exit code, output and JSON report."""
    out = tmp_path_factory.mktemp("bench")
    docs_chart = stamp(DOCS_CHART)
    done = run_module(
        "bench",
        "--quick",
        "--json",
        str(out / "bench.json"),
        "--chart",
        str(out / "bench.png"),
        timeout=RUN_SECONDS,
    )
    report = json.loads((out / "bench.json").read_text())
    chart = out / "bench.png"
    return {
        "done": done,
        "report": report,
        "chart": chart,
        "docs_untouched": docs_chart == stamp(DOCS_CHART),
    }


def mode_report(smoke: dict[str, Any], letter: str) -> dict[str, Any]:
    return next(mode for mode in smoke["report"]["modes"] if mode["mode"] == letter)


@pytest.mark.parametrize("letter", [mode.letter for mode in MODES])
def test_mode_balances_its_books(smoke: dict[str, Any], letter: str) -> None:
    mode = mode_report(smoke, letter)
    if letter == "a" and "extra_forbidden" in mode["reason"] and "order_id" in mode["reason"]:
        pytest.xfail("POST /orders does not accept order_id yet: mode (a) cannot name the orders")
    assert mode["status"] == "ok", mode["reason"]
    assert mode["problems"] == []
    assert mode["counts"] == mode["expected"]
    if mode["audit"] == "n/a":  # no books: nothing fails on purpose
        assert mode["expected"] == {"completed": smoke["report"]["orders"]}
    else:
        assert mode["audit"] == "clean"
        assert mode["expected"]["failed"] >= 1 and mode["expected"]["completed"] >= 1
    assert mode["orders_per_s"] > 0 and mode["cpu_ms_per_order"] > 0
    assert mode["peak_rss_mb"] > 0 and mode["latency_s"]["p50"] > 0


def test_exit_code_table_and_chart(smoke: dict[str, Any]) -> None:
    done, report = smoke["done"], smoke["report"]
    failed = [mode["mode"] for mode in report["modes"] if mode["status"] == "FAILED"]
    assert done.returncode == (1 if failed else 0), done.stderr[-2000:]
    assert [mode["mode"] for mode in report["modes"]] == [mode.letter for mode in MODES]
    assert report["orders"] == 10 and report["workload"]["fail_at"] == "warehouse@*-fail"
    for mode in MODES:
        assert f"{mode.letter} {mode.title}"[:20] in done.stdout
    assert smoke["chart"].stat().st_size > 0
    assert smoke["docs_untouched"]
