"""One order: its saga timeline, its records, a link to its flow run, and what can be done."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import actions
from dashboard.data import read
from dashboard.style import coloured, money_text, status_badge
from dashboard.timeline import attempts, timeline_chart
from flows.fulfill import order_summary
from storage.dashboard_queries import order_records
from storage.models import ChargeRequestStatus, StepKind
from storage.views import OrderSummary, cart_text

RECORDS = (
    ("reservation", "Reservations (a line each)"),
    ("payment", "Payment"),
    ("warehouse", "Shipment (a line each)"),
)
REQUEST_NOTES = {
    ChargeRequestStatus.SENDING: "Sent, no answer yet: it may have charged.",
    ChargeRequestStatus.IN_DOUBT: "In doubt: it may have charged. The next attempt or the refund"
    " learns the truth from Stripe by retrieving the PaymentIntent.",
    ChargeRequestStatus.UNREACHABLE: "Stripe could not be reached: nothing charged yet.",
    ChargeRequestStatus.CANCELED: "The PaymentIntent was cancelled: nothing charged, and a late"
    " confirmation cannot charge it.",
}


def render(order_id: str) -> None:
    """Show everything about one order."""
    summary = order_summary(order_id)
    status = summary.status
    st.markdown(f"#### Order `{order_id}` {status_badge(status)}")
    _facts(summary)
    _controls(summary)
    _saga(summary)
    _records(order_id)


def _facts(summary: OrderSummary) -> None:
    finished = summary.finished_at
    st.caption(
        f"{cart_text(summary.lines)} for `{summary.customer_id}`,"
        f" {money_text(summary.amount)} · created {_when(summary.created_at)}"
        + (f" · finished {_when(finished)}" if finished else "")
    )
    if summary.failure_reason:
        st.error(f"**{summary.failure_point or 'failure'}**: {summary.failure_reason}")


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") + " UTC"


def _saga(summary: OrderSummary) -> None:
    rows = attempts(summary)
    if not rows:
        st.info("No step has started yet.")
        return
    steps = [r.name for r in summary.saga if r.kind == StepKind.STEP and r.attempts]
    st.markdown("**Steps:** " + " → ".join(steps))
    if summary.compensations:
        st.markdown(
            "**Compensations, in the order they ran:** " + " → ".join(summary.compensations)
        )
    st.altair_chart(timeline_chart(rows, summary.failure_point), width="stretch")
    with st.expander(f"Every attempt ({len(rows)})"):
        st.dataframe(
            coloured(rows, "outcome"),
            hide_index=True,
            column_config={
                "start_s": st.column_config.NumberColumn("start (s)", format="%.3f"),
                "end_s": st.column_config.NumberColumn("end (s)", format="%.3f"),
                "duration_ms": st.column_config.NumberColumn("duration (ms)", format="%.1f"),
            },
        )


def _records(order_id: str) -> None:
    records = read(order_records, order_id=order_id)
    for column, (key, title) in zip(st.columns(len(RECORDS)), RECORDS, strict=True):
        with column:
            st.markdown(f"**{title}**")
            _record_table(records[key])
            if key == "payment":
                _charge_requests(records["charge_request"])


def _record_table(rows: list[dict[str, Any]]) -> None:
    """Records as one column each, their fields as rows ("none" without any)."""
    if not rows:
        st.caption("none")
        return
    frame = pd.DataFrame(rows).T.astype(str)
    frame.columns = [f"#{n}" for n in range(1, len(frame.columns) + 1)]
    st.dataframe(frame, width="stretch")


def _charge_requests(requests: list[dict[str, Any]]) -> None:
    """Each charge request to Stripe: status, attempts, last error, record."""
    for request in requests:
        status, attempts = request["status"], request["attempts"]
        st.markdown(
            f"**Charge request** {status_badge(status)} · {attempts}"
            f" attempt{'' if attempts == 1 else 's'}"
        )
        if status in REQUEST_NOTES:
            st.caption(REQUEST_NOTES[status])
        if request["message"]:
            st.caption(f"Last error: {request['message']}")
        _record_table([request])


def _controls(summary: OrderSummary) -> None:
    order_id, status = summary.order_id, summary.status
    link, retry, cancel = st.columns([3, 1, 1])
    kind, run_id = actions.order_run(summary)
    url = actions.run_url(kind, run_id)
    if url:
        link.link_button(f"Open the {kind} in the Prefect UI", url, icon=":material/open_in_new:")
    elif run_id:
        link.caption(f"{kind} `{run_id}` (no Prefect server configured)")
    if actions.can_retry(status):
        retry.button(
            "Retry", key=f"saga-retry-{order_id}", on_click=actions.retry, args=(order_id,)
        )
    if actions.can_cancel(status):
        with cancel.popover("Cancel…"):
            st.markdown(f"Cancel order `{order_id}`? What it did is undone: refund, release.")
            st.button(
                f"Yes, cancel {order_id}",
                key=f"cancel-{order_id}",
                on_click=actions.cancel_order,
                args=(order_id,),
                type="primary",
            )
