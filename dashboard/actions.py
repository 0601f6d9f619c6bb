"""What the buttons do: retry, cancel and place orders through the same functions the CLI
uses. Every saga run in this process is serialised by one lock, because `FAIL_AT` is read from
the process environment: a demo fault set for one order must never leak into another run."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st
from prefect.settings import get_current_settings

from dashboard.data import audit_problems
from flows.cancel import cancel
from flows.cli import BadOrder, order_line, valid_order
from flows.fulfill import record_order, run_order
from flows.outcome import Outcome
from flows.prefect_api import run_ui_url
from flows.reconcile import retry_order
from storage.models import (
    ACTIVE_STATUSES,
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    OrderStatus,
)
from storage.views import OrderSummary
from tasks import faults

NOTICE_KEY = "notice"
ALLOW_FAULTS_ENV = "FLOWFORGE_ALLOW_FAULTS"
FAULT_CHOICES = ("", *faults.points(), "payment:1", "warehouse,refund")
_runs = threading.Lock()


def faults_allowed() -> bool:
    """True when the page may offer fault injection (`FLOWFORGE_ALLOW_FAULTS=1`)."""
    return os.environ.get(ALLOW_FAULTS_ENV) == "1"


def can_retry(status: str) -> bool:
    return status == OrderStatus.NEEDS_ATTENTION


def can_cancel(status: str) -> bool:
    """In flight, completed, or stuck in needs_attention: there is something to unwind."""
    return status in ACTIVE_STATUSES or status in TERMINAL_STATUSES - SETTLED_STATUSES


def prefect_api_url() -> str | None:
    """The configured Prefect API, or None when each process would start a temporary one."""
    return get_current_settings().api.url


def order_run(summary: OrderSummary) -> tuple[str, str | None]:
    """The Prefect run that drove the order: the intake's task run, else its flow run."""
    if summary.task_run_id:
        return "task run", summary.task_run_id
    return "flow run", summary.flow_run_id


def run_url(kind: str, run_id: str | None) -> str | None:
    """The Prefect UI page of a `flow run` or `task run`, when a Prefect server is configured."""
    if not (run_id and prefect_api_url()):
        return None
    return run_ui_url(kind.replace(" ", "-"), run_id)


@contextmanager
def exclusive(fail_at: str = "") -> Iterator[None]:
    """Hold the run lock; with `fail_at`, inject that fault for the duration."""
    with _runs:
        saved = os.environ.get("FAIL_AT")
        if fail_at:
            os.environ["FAIL_AT"] = fail_at
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("FAIL_AT", None)
            else:
                os.environ["FAIL_AT"] = saved


def notify(kind: str, message: str) -> None:
    """Keep a message (success, info or error) for the next render; re-run the audit then."""
    st.session_state[NOTICE_KEY] = (kind, message)
    audit_problems.clear()


def act(action: Callable[[str], Outcome], order_id: str) -> None:
    """Button callback: run a retry or a cancel and keep its message for the page."""
    try:
        with exclusive():
            outcome = action(order_id)
    except Exception as exc:  # shown to the operator on the page
        notify("error", f"{order_id}: {type(exc).__name__}: {exc}")
        return
    notify("success" if outcome.changed else "info", outcome.message)


def retry(order_id: str) -> None:
    """Retry callback: re-run the pending compensations of a needs_attention order."""
    act(retry_order, order_id)


def cancel_order(order_id: str) -> None:
    """Cancel callback: compensate the order and end it cancelled."""
    act(cancel, order_id)


def _run_in_background(order_id: str, owner: str, fail_at: str) -> None:
    with exclusive(fail_at):
        run_order(order_id, lease_owner=owner)


def cart_lines(first: tuple[str, int], more: str) -> list[dict[str, object]]:
    """The form's cart: its first line, then `PRODUCT:UNITS` lines separated by commas."""
    product_id, quantity = first
    lines: list[dict[str, object]] = [{"product_id": product_id, "quantity": quantity}]
    return lines + [order_line(text.strip()) for text in more.split(",") if text.strip()]


def place_order(
    *, lines: list[dict[str, object]], customer_id: str, payment_method: str, fail_at: str = ""
) -> str | None:
    """Record an order and start its saga: the intake runs it when a Prefect server is
    configured (the stack) and no fault is injected, otherwise a background thread of this
    process does. Returns the order id; None (with the reason shown) for a bad order."""
    try:
        order = valid_order(lines=lines, customer_id=customer_id, payment_method=payment_method)
    except BadOrder as exc:
        notify("error", f"order not placed: {exc}")
        return None
    in_process = bool(fail_at) or not prefect_api_url()
    owner = f"dashboard:{uuid.uuid4().hex}" if in_process else None
    order_id, _ = record_order(order, lease_owner=owner)
    if owner is None:
        notify("success", f"order {order_id} recorded: the intake runs it")
        return order_id
    threading.Thread(
        target=_run_in_background,
        args=(order_id, owner, fail_at),
        name=f"order-{order_id}",
        daemon=True,
    ).start()
    fault = f" with FAIL_AT={fail_at}" if fail_at else ""
    notify("success", f"order {order_id} placed{fault}: running in the dashboard's process")
    return order_id
