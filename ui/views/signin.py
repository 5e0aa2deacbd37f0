from __future__ import annotations

import streamlit as st

from engine.store import Database
from engine.users import authenticate


def render(db: Database) -> None:
    st.title("Billing console")
    st.caption("Sign in to edit, simulate and publish catalogs and rules.")
    with st.form("sign_in"):
        name = st.text_input("User name", key="signin_name")
        password = st.text_input("Password", type="password", key="signin_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        with db.session() as s:
            user = authenticate(s, name, password)
        if user is None:
            st.error("Wrong user name or password.")
        else:
            st.session_state["user"] = user
            st.rerun()
