"""Helpers for the dashboard tests: the page under Streamlit's AppTest, and DB lookups."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
RENDER_TIMEOUT = 60


def render() -> AppTest:
    """Run the page once, with no cache left over from another test; fail on any exception."""
    st.cache_data.clear()
    st.cache_resource.clear()
    page = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT).run()
    assert not page.exception, [e.value for e in page.exception]
    return page


def rerun(page: AppTest) -> AppTest:
    """Run the page again after a widget change; fail on any exception."""
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    return page


def kpis(page: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in page.metric}


def markdown(page: AppTest) -> list[str]:
    return [element.value for element in page.markdown]


def table(page: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page that has `column`."""
    return next(frame.value for frame in page.dataframe if column in frame.value.columns)
