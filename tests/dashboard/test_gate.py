"""With FLOWFORGE_DASHBOARD_PASSWORD set, the page shows nothing and offers no button until the
password is given."""

from __future__ import annotations

from tests.dashboard.helpers import kpis, render, rerun


def test_the_page_asks_for_the_password_first(filled, monkeypatch):
    monkeypatch.setenv("FLOWFORGE_DASHBOARD_PASSWORD", "s3cret")
    page = render()
    assert kpis(page) == {} and not page.button and not page.dataframe
    page.text_input(key="password").input("wrong")
    rerun(page)
    assert [e.value for e in page.error] == ["wrong password"] and kpis(page) == {}
    page.text_input(key="password").input("s3cret")
    rerun(page)
    assert kpis(page)["Orders"] == str(len(filled.orders))


def test_without_a_password_the_page_opens(filled, monkeypatch):
    monkeypatch.delenv("FLOWFORGE_DASHBOARD_PASSWORD", raising=False)
    assert kpis(render())["Orders"] == str(len(filled.orders))
