"""Publish a checked draft (a catalog also simulated) with a comment; history with diffs; rollback.
Catalogs and rulesets alike: rulesets go through the rules runtime's publish path (validated
against the published catalogs, compiled and smoke-tested) that `billing publish` takes."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.console import checksum, history, publish, rollback
from engine.console import rulesets as crules
from engine.console import store as cstore
from engine.store import Database
from engine.system.console_operations import console_operations
from engine.users import can, list_audit
from views.common import EXPECTED, clock, message, need


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Publish & history")
    kind = st.radio("Kind", ["catalog", "ruleset"], horizontal=True, key="pub_kind")
    _publish(db, user, kind)
    st.divider()
    _history(db, user, kind)


def _publish(db: Database, user: dict[str, Any], kind: str) -> None:
    st.subheader(f"Publish a {kind} draft")
    with db.read_session() as s:
        drafts = {d["name"]: d for d in cstore.list_drafts(s, kind)}
    if not drafts:
        st.info(f"No saved {kind} drafts. Save one in the Editor.")
        return
    name = st.selectbox("Draft", list(drafts), key="pub_draft")
    with db.read_session() as s:
        row = cstore.get_draft(s, kind, name)
        text = row.text if row else ""
        simulated = row is not None and row.simulated_checksum == checksum(text)
        summary = row.simulated_summary if row else ""
        diff = cstore.draft_diff(s, kind, text)
        check = cstore.check_stored(s, kind, text, ops=console_operations())
    st.markdown(f"- {'✅' if check.ok else '❌'} validates" + ("" if check.ok else f" ({len(check.errors)} errors)"))
    for p in check.errors:
        st.markdown(f"    - line {p.line} · `{p.path}`: {p.message}")
    st.markdown(f"- {'✅' if not check.warnings else '⚠️'} lint: {len(check.warnings)} warning(s)")
    for p in check.warnings:
        st.markdown(f"    - line {p.line} · `{p.path}`: {p.message}")
    if kind == "catalog":
        st.markdown(f"- {'✅' if simulated else '❌'} simulated" + (f" ({summary})" if simulated and summary else ""))
    else:
        st.markdown("- the rules runtime compiles and smoke-tests it when it is published")
    with st.expander("Changes against the published version", expanded=kind == "ruleset"):
        st.code(diff or "(no published version, or no change)", language="diff")
    if not can(user["role"], "publish"):
        need(user, "publish", "Publishing")
        return
    accept = st.checkbox("I accept the lint warnings", key="pub_accept") if check.warnings else False
    comment = st.text_input("Comment (why this version)", key="pub_comment")
    if st.button("Publish", key="pub_go", type="primary"):
        try:
            with st.spinner("Publishing…"), db.session() as s:
                out = publish(s, user, kind, text, comment, accept_warnings=accept, ops=console_operations(),
                              clock=clock())
        except EXPECTED as exc:  # shown here, so the history below still draws
            st.error(message(exc))
        else:
            st.success(f"Published {out['name']} v{out['version']}.")


def _history(db: Database, user: dict[str, Any], kind: str) -> None:
    st.subheader("History")
    done = st.session_state.pop("rb_done", None)
    if done:
        st.success(done)
    with db.read_session() as s:
        names = list(cstore.published_catalogs(s) if kind == "catalog" else crules.published_rulesets(s))
    if not names:
        st.info(f"No {kind} published yet.")
        return
    name = st.selectbox(kind.capitalize(), names, key=f"hist_{kind}")
    with db.read_session() as s:
        versions = history(s, name, kind)
        audit = {a["version"]: a for a in list_audit(s, name) if a["kind"] == kind}
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
            out = rollback(s, user, name, int(target), why, kind=kind, ops=console_operations(), clock=clock())
        # Drawn again so the history above lists the new version; the message survives the rerun.
        st.session_state["rb_done"] = f"Rolled back: v{out['version']} now has the content of v{out['restored']}."
        st.rerun()
