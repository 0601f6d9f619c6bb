"""The dashboard's door: with `FLOWFORGE_DASHBOARD_PASSWORD` set, nothing is shown (and no
button works) until the password is given; without it the page trusts whoever reaches it,
which is why it binds to 127.0.0.1 by default."""

from __future__ import annotations

import hmac
import os

import streamlit as st

PASSWORD_ENV = "FLOWFORGE_DASHBOARD_PASSWORD"
SIGNED_IN_KEY = "signed_in"


def signed_in() -> bool:
    """True when the page may render; otherwise show the password form."""
    password = os.environ.get(PASSWORD_ENV, "")
    if not password or st.session_state.get(SIGNED_IN_KEY):
        return True
    st.title("FlowForge")
    given = st.text_input("Password", type="password", key="password")
    if given and hmac.compare_digest(given.encode(), password.encode()):
        st.session_state[SIGNED_IN_KEY] = True
        st.session_state.pop("password", None)
        st.rerun()
    elif given:
        st.error("wrong password")
    return False
