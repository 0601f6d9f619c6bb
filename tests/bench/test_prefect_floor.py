"""Prefect's floor (f): declared as the engine declares its tasks, one no-op task per step of the
step table; in a bench sitting (tests/bench/conftest.py) it runs a few orders, reports them (its
audit n/a: it writes no books) and what the batch costs over it. The smoke test runs it on
SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from bench import prefect_floor
from flows.pipeline import fulfill_order_task
from tasks.saga_task import with_current_retries
from tasks.steps import STEPS

OPTIONS = ("name", "task_run_name", "retries", "retry_delay_seconds", "persist_result")


def options(task: Any) -> dict[str, Any]:
    """The task options the floor must share with the engine's."""
    found = {name: getattr(task, name) for name in OPTIONS}
    return found | {"cache_policy": type(task.cache_policy).__name__}


def mode(report: dict[str, Any], letter: str) -> dict[str, Any]:
    """The report's entry for mode `letter`."""
    return next(found for found in report["modes"] if found["mode"] == letter)


def test_floor_declares_the_engines_tasks() -> None:
    assert [options(task) for task in prefect_floor.STEP_TASKS] == [
        options(with_current_retries(step.task)) for step in STEPS
    ]
    assert {task.retry_condition_fn for task in prefect_floor.STEP_TASKS} == {
        with_current_retries(STEPS[0].task).retry_condition_fn
    }
    assert options(prefect_floor.fulfill_order_floor) == options(fulfill_order_task)


@pytest.mark.e2e
@pytest.mark.postgres
def test_prefect_floor_runs_and_reports(sitting: tuple[Any, dict[str, Any]]) -> None:
    done, report = sitting
    assert done.returncode == 0, done.stderr[-2000:]
    floor = mode(report, "f")
    assert floor["status"] == "ok", floor["reason"]
    assert floor["audit"] == "n/a" and floor["problems"] == []
    assert floor["counts"] == floor["expected"] == {"completed": report["orders"]}
    assert floor["db_latency_s"] is None and floor["latency_s"]["p50"] > 0
    assert floor["orders_per_s"] > 0 and floor["peak_rss_mb"] > 0
    assert set(floor["cpu_ms_per_order_by_group"]) == {"client", "prefect_server"}
    assert floor["over_prefect_floor"] is None
    assert "f Prefect floor" in done.stdout


@pytest.mark.e2e
@pytest.mark.postgres
def test_batch_overhead_over_the_floor(sitting: tuple[Any, dict[str, Any]]) -> None:
    done, report = sitting
    batch = mode(report, "b")
    assert batch["status"] == "ok" and batch["audit"] == "clean", batch["reason"]
    over = batch["over_prefect_floor"]
    assert set(over) == {"orders_per_s", "cpu_ms_per_order", "client_cpu", "prefect_server_cpu"}
    assert all(ratio > 0 for ratio in over.values()), over
    assert batch["ratios"]["cpu_vs_f"] == over["cpu_ms_per_order"]
    table = done.stdout[done.stdout.index("over Prefect floor (f)") :].splitlines()
    assert table[1].startswith("f Prefect floor") and table[2].startswith("b batch")
