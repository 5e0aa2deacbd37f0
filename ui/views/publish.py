"""Publish a checked, simulated draft with a comment; history with diffs; rollback."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.console import check_draft, checksum, history, publish, rollback
from engine.console import store as cstore
from engine.store import Database
from engine.users import can, list_audit
from views.common import clock, need


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Publish & history")
    _publish(db, user)
    st.divider()
    _history(db, user)


def _publish(db: Database, user: dict[str, Any]) -> None:
    st.subheader("Publish a draft")
    with db.session() as s:
        drafts = {d["name"]: d for d in cstore.list_drafts(s, "catalog")}
    if not drafts:
        st.info("No saved catalog drafts. Save one in the Editor.")
        return
    name = st.selectbox("Draft", list(drafts), key="pub_draft")
    with db.session() as s:
        row = cstore.get_draft(s, "catalog", name)
        text = row.text if row else ""
        simulated = row is not None and row.simulated_checksum == checksum(text)
        summary = row.simulated_summary if row else ""
        diff = cstore.draft_diff(s, "catalog", text)
    check = check_draft("catalog", text)
    st.markdown(f"- {'✅' if check.ok else '❌'} validates" + ("" if check.ok else f" ({len(check.errors)} errors)"))
    st.markdown(f"- {'✅' if not check.warnings else '⚠️'} lint: {len(check.warnings)} warning(s)")
    for p in check.warnings:
        st.markdown(f"    - line {p.line} · `{p.path}`: {p.message}")
    st.markdown(f"- {'✅' if simulated else '❌'} simulated" + (f" ({summary})" if simulated and summary else ""))
    with st.expander("Changes against the published version"):
        st.code(diff or "(no published version, or no change)", language="diff")
    if not can(user["role"], "publish"):
        need(user, "publish", "Publishing")
        return
    accept = st.checkbox("I accept the lint warnings", key="pub_accept") if check.warnings else False
    comment = st.text_input("Comment (why this version)", key="pub_comment")
    if st.button("Publish", key="pub_go", type="primary"):
        with db.session() as s:
            out = publish(s, user, "catalog", text, comment, accept_warnings=accept, clock=clock())
        st.success(f"Published {out['catalog']} v{out['version']}.")


def _history(db: Database, user: dict[str, Any]) -> None:
    st.subheader("History")
    with db.session() as s:
        catalogs = cstore.published_catalogs(s)
    if not catalogs:
        st.info("Nothing published yet.")
        return
    name = st.selectbox("Catalog", list(catalogs), key="hist_catalog")
    with db.session() as s:
        versions = history(s, name)
        audit = {(a["version"]): a for a in list_audit(s, name)}
    rows = []
    for v in versions:
        a = audit.get(v["version"])
        rows.append(
            {
                "version": v["version"],
                "published_at": v["published_at"],
                "by": v["author"],
                "comment": v["comment"],
                "console action": a["action"] if a else "",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for v in versions:
        if v["diff"]:
            with st.expander(f"v{v['version']}: what changed"):
                st.code(v["diff"], language="diff")
    if len(versions) < 2:
        return
    if not can(user["role"], "rollback"):
        need(user, "rollback", "Rolling back")
        return
    current = versions[0]["version"]
    older = [v["version"] for v in versions if v["version"] != current]
    target = st.selectbox("Roll back to version", older, key="rb_version")
    why = st.text_input("Why", key="rb_why")
    if st.button("Roll back", key="rb_go"):
        with db.session() as s:
            out = rollback(s, user, name, int(target), why, clock=clock())
        st.success(f"Rolled back: v{out['version']} now has the content of v{out['restored']}.")
