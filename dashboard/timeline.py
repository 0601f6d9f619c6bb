"""One order's saga as attempts on a time axis: every attempt of every step and compensation
is a bar, retries sit side by side on their step's row, failed attempts are red and the point
where the forward path stopped is a dashed line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd

from dashboard.style import status_color
from storage.models import EventStatus, OrderStatus, StepKind, StepStatus
from storage.views import OrderSummary

BEGINS = {EventStatus.STARTED, EventStatus.COMPENSATING}
ENDS = {EventStatus.COMPLETED, EventStatus.COMPENSATED, EventStatus.FAILED}
RUNNING = StepStatus.RUNNING  # an attempt that has begun and not ended
OUTCOME_COLORS = {
    EventStatus.COMPLETED: status_color(EventStatus.COMPLETED),
    EventStatus.COMPENSATED: status_color(EventStatus.COMPENSATED),
    EventStatus.FAILED: status_color(OrderStatus.NEEDS_ATTENTION),
    RUNNING: status_color(RUNNING),
}
FAILED_COLOR = OUTCOME_COLORS[EventStatus.FAILED]
MIN_BAR_SHARE = 0.025  # of the time span, so a 1 ms attempt is still visible


def attempts(summary: OrderSummary) -> list[dict[str, Any]]:
    """Pair each attempt's begin and end events, in the order the attempts started."""
    kinds = {row.name: row.kind for row in summary.saga}
    events = summary.events
    if not events:
        return []
    origin = datetime.fromisoformat(events[0].timestamp)
    rows: list[dict[str, Any]] = []
    running: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        key = (event.step, event.attempt)
        at = (datetime.fromisoformat(event.timestamp) - origin).total_seconds()
        if event.status in BEGINS:
            running[key] = {
                "step": event.step,
                "kind": kinds.get(event.step, StepKind.STEP),
                "attempt": event.attempt,
                "outcome": RUNNING,
                "start_s": at,
                "end_s": None,
                "duration_ms": None,
                "message": "",
            }
            rows.append(running[key])
        elif event.status in ENDS and key in running:
            row = running.pop(key)
            row.update(
                outcome=event.status,
                end_s=at,
                duration_ms=round((at - row["start_s"]) * 1000, 1),
                message=event.message,
            )
    return rows


def timeline_chart(rows: list[dict[str, Any]], failure_point: str | None) -> alt.LayerChart:
    """The Gantt chart: rows in run order (steps, then compensations), one bar per attempt."""
    frame = pd.DataFrame(rows)
    last = frame[["start_s", "end_s"]].max().max()
    frame["end_s"] = frame["end_s"].fillna(last)
    width = max(last * MIN_BAR_SHARE, 0.001)
    frame["bar_end_s"] = frame["end_s"].clip(lower=frame["start_s"] + width)
    frame["row"] = frame["step"] + frame["kind"].map(
        {StepKind.COMPENSATION: " ↩", StepKind.STEP: ""}
    )
    order = list(dict.fromkeys(frame["row"]))
    bars = (
        alt.Chart(frame)
        .mark_bar(cornerRadius=2)
        .encode(
            y=alt.Y("row:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)),
            yOffset=alt.YOffset("attempt:O", title="attempt"),
            x=alt.X("start_s:Q", title="seconds since the saga started"),
            x2="bar_end_s:Q",
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=list(OUTCOME_COLORS), range=list(OUTCOME_COLORS.values())),
                legend=alt.Legend(title="attempt"),
            ),
            tooltip=["step", "kind", "attempt", "outcome", "duration_ms", "message"],
        )
    )
    layers = [bars]
    failed_at = frame[(frame["step"] == failure_point) & (frame["outcome"] == EventStatus.FAILED)]
    if not failed_at.empty:
        marker = pd.DataFrame(
            {"x": [failed_at["end_s"].max()], "label": [f"failed: {failure_point}"]}
        )
        rule = alt.Chart(marker).mark_rule(color=FAILED_COLOR, strokeDash=[4, 3]).encode(x="x:Q")
        text = (
            alt.Chart(marker)
            .mark_text(align="left", dx=4, dy=-6, color=FAILED_COLOR, fontWeight="bold")
            .encode(x="x:Q", y=alt.value(0), text="label:N")
        )
        layers += [rule, text]
    return alt.layer(*layers).properties(height=40 * len(order) + 20)
