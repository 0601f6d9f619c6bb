"""`FAIL_AT` / `CRASH_AT` parsing, including the per-order `@GLOB` form."""

from __future__ import annotations

import subprocess

import pytest

from tasks import faults
from tasks.faults import Failure, FaultSpecError, InjectedFault
from tests.support import PYTHON, child_env


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("warehouse", [Failure("warehouse")]),
        ("payment:2", [Failure("payment", 2)]),
        ("warehouse, refund", [Failure("warehouse"), Failure("refund")]),
        ("warehouse@*-fail", [Failure("warehouse", None, "*-fail")]),
        ("payment:1@ord:7?", [Failure("payment", 1, "ord:7?")]),
        ("warehouse@a*,refund:3", [Failure("warehouse", None, "a*"), Failure("refund", 3)]),
    ],
)
def test_fail_at_forms(monkeypatch: pytest.MonkeyPatch, value: str, expected: list) -> None:
    monkeypatch.setenv("FAIL_AT", value)
    assert faults.fail_at() == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FAIL_AT", "moon", "unknown point 'moon'"),
        ("FAIL_AT", "moon@*", "unknown point 'moon'"),
        ("FAIL_AT", "payment:0", "needs a positive attempt count"),
        ("FAIL_AT", "payment:x@*", "needs a positive attempt count"),
        ("FAIL_AT", "warehouse@", "needs an order id pattern after '@'"),
        ("FAIL_AT", "warehouse:2@ ", "needs an order id pattern after '@'"),
        ("CRASH_AT", "payment", "needs ':before' or ':after'"),
        ("CRASH_AT", "payment:after@*-x", "takes no '@' order pattern"),
    ],
)
def test_malformed_spec_is_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(FaultSpecError, match=message) as raised:
        faults.validate()
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "point", "attempt", "order_id", "fails"),
    [
        ("warehouse", "warehouse", 9, "any", True),
        ("warehouse", "payment", 1, "any", False),
        ("warehouse:2", "warehouse", 2, "any", True),
        ("warehouse:2", "warehouse", 3, "any", False),
        ("warehouse@*-fail", "warehouse", 4, "bench-00010-fail", True),
        ("warehouse@*-fail", "warehouse", 1, "bench-00011", False),
        ("warehouse@*-FAIL", "warehouse", 1, "bench-00010-fail", False),
        ("warehouse:1@b-?", "warehouse", 1, "b-7", True),
        ("warehouse:1@b-?", "warehouse", 2, "b-7", False),
        ("warehouse@x,warehouse@y", "warehouse", 1, "y", True),
    ],
)
def test_maybe_fail_targets_point_attempt_and_order(
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    point: str,
    attempt: int,
    order_id: str,
    fails: bool,
) -> None:
    monkeypatch.setenv("FAIL_AT", value)
    if fails:
        with pytest.raises(InjectedFault, match=f"at {point} \\(attempt {attempt}\\)"):
            faults.maybe_fail(point, attempt, order_id)
    else:
        faults.maybe_fail(point, attempt, order_id)


def test_points_are_the_saga_tasks_in_saga_order() -> None:
    from tasks.steps import STEPS

    tasks = [step.task for step in STEPS] + [step.undo for step in STEPS if step.undo]
    assert list(faults.points().values()) == [task.name for task in tasks]
    assert list(faults.points()) == [
        "inventory-check",
        "inventory",
        "payment",
        "warehouse",
        "release",
        "refund",
        "revert",
    ]


@pytest.mark.e2e
def test_validate_with_only_faults_imported() -> None:
    """A process that imports nothing but `tasks.faults` still knows every point, in order."""
    result = subprocess.run(
        [PYTHON, "-c", "from tasks import faults; faults.validate()"],
        env=child_env(FAIL_AT="moon"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        "FaultSpecError: FAIL_AT: unknown point 'moon' (expected one of inventory-check, "
        "inventory, payment, warehouse, release, refund, revert)"
    ) in result.stderr


@pytest.mark.parametrize(
    ("alias", "point"),
    [("reserve_inventory", "inventory"), ("refund_payment", "refund"), ("inventory", "inventory")],
)
def test_a_point_may_be_named_by_its_task(
    alias: str, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_AT", f"{alias}:1")
    assert faults.fail_at() == [faults.Failure(point, 1)]
    monkeypatch.setenv("CRASH_AT", f"{alias}:after")
    assert faults.crash_at() == {point: "after"}
