"""Every publish, rollback and user change with who and why, each publish's diff; user
management for admins (add, change a role, disable or enable), recorded in the audit."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine import sales
from engine.console.audit import audit_entries
from engine.store import Database
from engine.users import ROLES, UserError, can, change_role, create_user, list_users, set_disabled
from views.common import clock
from views.fmt import day


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Audit & users")
    _audit(db)
    st.subheader("Users")
    with db.read_session() as s:
        users = list_users(s)
    st.dataframe(pd.DataFrame([{"user": u["name"], "role": u["role"], "status": "disabled" if u["disabled"] else
                                "active", "since": day(u["created_at"][:10])} for u in users]), hide_index=True)
    if can(user["role"], "manage_users"):
        _manage(db, user, [u["name"] for u in users if u["name"] != user["name"]])
    else:
        st.caption(f"Roles: {', '.join(ROLES)}. Managing users needs the admin role "
                   f"(or `billing user add NAME --role ROLE`).")


def _audit(db: Database) -> None:
    st.subheader("Publishes, rollbacks and user changes")
    with db.read_session() as s:
        entries = audit_entries(s, sales.get_customer)
    if not entries:
        st.write("Nothing published or changed from the console yet.")
        return
    st.dataframe(pd.DataFrame([{"when": day(e["at"]), "who": e["user"], "role": e["role"],
                                "what": e["summary"].split(": ", 1)[0].split(") ", 1)[-1], "why": e["why"]}
                               for e in entries]), hide_index=True, width="stretch")
    for e in entries:
        if e["diff"]:
            with st.expander(e["summary"]):
                st.code(e["diff"], language="diff")


def _manage(db: Database, admin: dict[str, Any], others: list[str]) -> None:
    st.subheader("Manage users")
    done = st.session_state.pop("users_done", None)
    if done:
        st.success(done)
    action = st.radio("Change", ["Add a user", "Change a role", "Disable or enable"], horizontal=True,
                      key="users_action")
    why = st.text_input("Why (kept in the audit)", key="users_why")
    if action == "Add a user":
        name = st.text_input("User name", key="users_name")
        role = st.selectbox("Role", ROLES, key="users_role")
        password = st.text_input("First password (8 characters or more)", type="password", key="users_password")
        go = st.button("Add user", key="users_add")
        call = (lambda s: create_user(s, admin, name, role, password, why, clock=clock())) if go else None
        message = f"Added {name} as {role}."
    elif action == "Change a role":
        name = st.selectbox("User", others, key="users_pick")
        role = st.selectbox("New role", ROLES, key="users_new_role")
        go = st.button("Change role", key="users_change")
        call = (lambda s: change_role(s, admin, name, role, why, clock=clock())) if go else None
        message = f"{name} is now a {role}."
    else:
        name = st.selectbox("User", others, key="users_pick_disable")
        disable = st.radio("Set", ["disabled", "enabled"], horizontal=True, key="users_state") == "disabled"
        go = st.button("Apply", key="users_disable")
        call = (lambda s: set_disabled(s, admin, name, disable, why, clock=clock())) if go else None
        message = f"{name} is now {'disabled' if disable else 'enabled'}."
    if call is not None:
        try:
            with db.session() as s:
                call(s)
        except UserError as exc:
            st.error(f"{exc.field}: {exc.message}")
            return
        st.session_state["users_done"] = message
        st.rerun()

