"""`FAIL_AT` / `CRASH_AT` parsing, including the per-order `@GLOB` form."""

from __future__ import annotations

import pytest

from tasks import faults
from tasks.faults import Failure, FaultSpecError, InjectedFault


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
