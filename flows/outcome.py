"""How a saga's end is reported: the Prefect final state, the markdown artifact on the run,
the CLI's exit code and its human summary."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

import httpx
from prefect import Flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import PrefectException
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Cancelled, Completed, Failed, State

from flows.prefect_api import prefect_api
from storage.models import OrderStatus, StepKind
from storage.views import OrderSummary, cart_text

# what a call to the Prefect server can raise when the server is down, slow or refuses
PREFECT_ERRORS = (httpx.HTTPError, PrefectException, OSError)


class ExitCode(IntEnum):
    """The exit codes of the order commands (`flows.fulfill`, `flows.cancel`, `flows.batch`)."""

    COMPLETED = 0
    FAILED = 1  # failed or cancelled (and compensated)
    BAD_INPUT = 2  # one line on stderr, nothing recorded (argparse's usage error)
    NEEDS_ATTENTION = 3
    IN_PROGRESS = 4  # driven by another process right now, or no Prefect server


EXIT_CODES = {
    OrderStatus.COMPLETED: ExitCode.COMPLETED,
    OrderStatus.FAILED: ExitCode.FAILED,
    OrderStatus.CANCELLED: ExitCode.FAILED,
    OrderStatus.NEEDS_ATTENTION: ExitCode.NEEDS_ATTENTION,
}
HANDED_OVER = "HandedOver"
# a run's final state name -> the order status it reports (see `prefect_state`)
STATE_STATUSES = {
    "Completed": OrderStatus.COMPLETED,
    "Compensated": OrderStatus.FAILED,
    "NeedsAttention": OrderStatus.NEEDS_ATTENTION,
    "Cancelled": OrderStatus.CANCELLED,
    HANDED_OVER: "handed_over",
}


@dataclass(frozen=True)
class Outcome:
    """What a cancel or a retry did: the order's summary after it, whether anything changed."""

    summary: OrderSummary
    changed: bool
    message: str


def run_locally(flow: Flow, **parameters: Any) -> Any:
    """Run a flow in this process (on the server `prefect_api` picks), without the ~1 s
    heartbeat-thread join at exit."""
    with prefect_api(), temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow(**parameters)


def exit_code(status: str) -> ExitCode:
    return EXIT_CODES.get(status, ExitCode.IN_PROGRESS)


def prefect_state(summary: OrderSummary) -> State:
    """The flow run's final state, named so the Prefect UI tells the saga's outcome."""
    status, reason = summary.status, summary.failure_reason or ""
    if status == OrderStatus.COMPLETED:
        return completed_state(summary.order_id)
    if status == OrderStatus.FAILED:
        return Failed(name="Compensated", message=reason or "failed and compensated")
    if status == OrderStatus.NEEDS_ATTENTION:
        return Failed(name="NeedsAttention", message=reason)
    if status == OrderStatus.CANCELLED:
        return Cancelled(message=reason or "cancelled and compensated")
    raise ValueError(f"order {summary.order_id} is still {status}")


def completed_state(order_id: str) -> State:
    """The final state of a run whose order completed (what `prefect_state` gives it)."""
    return Completed(message=f"order {order_id} completed")


def status_of_state(state: State | None) -> str:
    """The order status a run's final state reports; `error` when the run itself broke off
    (the order stays in progress for the sweep)."""
    return STATE_STATUSES.get(state.name if state else "", "error")


def handed_over(summary: OrderSummary) -> State:
    """The state of a run that found the order held or settled by someone else."""
    return Completed(
        name=HANDED_OVER,
        message=f"order {summary.order_id} is {summary.status}; left to its current owner",
    )


def timeline_markdown(summary: OrderSummary) -> str:
    lines = [
        f"# Order `{summary.order_id}`: **{summary.status}**",
        "",
        f"{cart_text(summary.lines)} for customer `{summary.customer_id}`,"
        f" {summary.amount / 100:.2f}",
        "",
    ]
    if summary.failure_reason:
        lines += [f"Failure: {summary.failure_reason}", ""]
    if summary.compensations:
        lines += [
            "Compensations, in the order they ran: " + " → ".join(summary.compensations),
            "",
        ]
    lines += ["| # | time (UTC) | step | status | attempt | message |", "|---|---|---|---|---|---|"]
    for number, event in enumerate(summary.events or [], 1):
        time = event.timestamp[11:23]
        message = event.message.replace("|", "\\|")
        lines.append(
            f"| {number} | {time} | {event.step} | {event.status} | {event.attempt} | {message} |"
        )
    return "\n".join(lines)


def publish_artifact(summary: OrderSummary) -> None:
    """Attach the saga's timeline to the current run when the order did not complete (a
    completed order's run states say it all; the dashboard has every timeline); best effort
    (the order is settled in the database already, a Prefect hiccup must not make its run
    look broken)."""
    if summary.status == OrderStatus.COMPLETED:
        return
    key = "saga-" + re.sub(r"[^a-z0-9-]+", "-", summary.order_id.lower()).strip("-")
    try:
        create_markdown_artifact(
            key=key[:100],
            markdown=timeline_markdown(summary),
            description=f"Saga timeline of order {summary.order_id} ({summary.status})",
        )
    except PREFECT_ERRORS as exc:
        logging.getLogger(__name__).warning("no artifact for %s: %s", summary.order_id, exc)


def publish_run_table(ended: list[tuple[str, str]]) -> None:
    """Attach to the current flow run one table with a row per order it ran (its status);
    best effort, like `publish_artifact`."""
    if not ended:
        return
    rows = [{"order": order_id, "status": status} for order_id, status in ended]
    counts = Counter(status for _, status in ended)
    try:
        create_table_artifact(
            table=rows,
            description=", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
        )
    except PREFECT_ERRORS as exc:
        logging.getLogger(__name__).warning("no run table: %s", exc)


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return f"{delta.total_seconds() * 1000:.0f} ms"


def human_summary(summary: OrderSummary) -> str:
    """A few lines for a person: the verdict, then each step and compensation with its outcome."""
    lines = [
        f"order {summary.order_id} ({summary.workflow_id}): {summary.status}",
        f"  {cart_text(summary.lines)}, {summary.amount / 100:.2f}",
    ]
    if summary.failure_reason:
        lines.append(f"  reason: {summary.failure_reason}")
    rows = {row.name: row for row in summary.saga}
    ran = [r for r in summary.saga if r.kind == StepKind.STEP and r.attempts]
    ran += [rows[name] for name in summary.compensations if name in rows]
    for row in ran:
        retries = f", {row.attempts} attempts" if row.attempts > 1 else ""
        lines.append(
            f"  {row.kind:<12} {row.name:<18} {row.status:<12}"
            f" {_duration(row.started_at, row.finished_at):>8}{retries}"
        )
    if summary.flow_run_id:
        lines.append(f"  flow run: {summary.flow_run_id}")
    return "\n".join(lines)
