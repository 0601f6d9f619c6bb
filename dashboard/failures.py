"""Where orders fail, which compensations ran, and the needs_attention queue with Retry."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import actions
from dashboard.data import read
from dashboard.style import coloured, status_color
from storage.dashboard_queries import attention_queue, compensation_runs, failure_points
from storage.models import OrderStatus

QUEUE_SHOWN = 10


def render() -> None:
    """Failure points and compensations side by side, the queue below."""
    points, compensations = st.columns(2)
    with points:
        st.markdown("**Where orders fail** (step where the forward path stopped)")
        counts = read(failure_points)
        if counts:
            frame = pd.DataFrame({"step": list(counts), "orders": list(counts.values())})
            chart = (
                alt.Chart(frame)
                .mark_bar(color=status_color(OrderStatus.FAILED))
                .encode(
                    y=alt.Y("step:N", sort="-x", title=None),
                    x=alt.X("orders:Q", title="orders"),
                    tooltip=["step", "orders"],
                )
                .properties(height=40 * len(frame) + 30)
            )
            st.altair_chart(chart, width="stretch")
        else:
            st.caption("No order has failed.")
    with compensations:
        st.markdown("**Compensations that ran**")
        runs = read(compensation_runs)
        if runs:
            st.dataframe(coloured(runs), hide_index=True, width="stretch")
        else:
            st.caption("No compensation has run.")
    _queue()


def _queue() -> None:
    queue, total = read(attention_queue, limit=QUEUE_SHOWN)
    st.markdown(f"**Needs attention** ({total})")
    if not queue:
        st.success("Nothing waits for a person.")
        return
    for order in queue:
        text, button = st.columns([6, 1], vertical_alignment="center")
        text.markdown(
            f"`{order['order_id']}` · {order['lines']}  \n"
            f":red[{order['failure_reason'] or 'no error recorded'}]"
        )
        button.button(
            "Retry",
            key=f"retry-{order['order_id']}",
            on_click=actions.retry,
            args=(order["order_id"],),
            type="primary",
        )
    if total > len(queue):
        st.caption(f"The newest {len(queue)} of {total}.")
