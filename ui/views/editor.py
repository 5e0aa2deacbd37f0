"""Drafts of catalogs and rulesets: the text is the source of truth; checks beside it; forms
that write the same YAML; the diff against what is published."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.console import rulesets as crules
from engine.console import save_draft
from engine.console import store as cstore
from engine.console import yaml_edit as ye
from engine.console.plain import plain
from engine.console.yaml_edit import EditError
from engine.store import Database
from engine.system.console_operations import console_operations
from engine.users import can
from views.common import clock, example_files, need

TEXT = "editor_text"


def _apply(fn: Any) -> None:
    """A form's callback: rewrite the text, or say why not (runs before the rerun, so the
    text area may be changed here)."""
    try:
        st.session_state[TEXT] = fn(st.session_state.get(TEXT, ""))
        st.session_state["edit_message"] = ("success", "Applied to the YAML.")
    except EditError as exc:
        st.session_state["edit_message"] = ("error", str(exc))


def _open(text: str, name: str) -> None:
    st.session_state[TEXT] = text
    st.session_state["draft_name"] = name
    st.session_state["edit_message"] = ("info", f"Opened {name}.")


def _sources(db: Database, kind: str) -> dict[str, tuple[str, str]]:
    """label -> (text, name)"""
    out: dict[str, tuple[str, str]] = {}
    with db.session() as s:
        for d in cstore.list_drafts(s, kind):
            row = cstore.get_draft(s, kind, d["name"])
            if row is not None:
                out[f"draft: {d['name']} (saved by {d['author']})"] = (row.text, d["name"])
        if kind == "catalog":
            for name, v in cstore.published_catalogs(s).items():
                doc = cstore.published_document(s, name)
                if doc is not None:
                    out[f"published: {name} v{v['version']}"] = (cstore.document_yaml(doc), name)
        else:
            for name, version in crules.published_rulesets(s).items():
                source = crules.published_source(s, name, version)
                if source is not None:
                    out[f"published: {name} v{version}"] = (source, name)
    for path in example_files(kind):
        out[f"file: {path.name}"] = (path.read_text(encoding="utf-8"), path.stem)
    return out


def open_sources(db: Database, kind: str, *, key: str) -> None:
    """Open a draft, a published version or an example file of `kind` into the editor's text
    (for the builder pages: the text they write is the one the Editor shows)."""
    sources = _sources(db, kind)
    c1, c2 = st.columns([4, 1])
    choice = c1.selectbox(f"Open a {kind}", list(sources) or ["(nothing to open)"], key=key)
    if c2.button("Open", key=f"{key}_open", disabled=not sources):
        text, name = sources[choice]
        _open(text, name)
        st.session_state["editor_kind"] = kind
        st.rerun()


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Editor")
    kind = st.radio("Kind", ["catalog", "ruleset"], horizontal=True, key="editor_kind")
    editable = can(user["role"], "edit")
    sources = _sources(db, kind)
    c1, c2 = st.columns([4, 1])
    choice = c1.selectbox("Start from", list(sources) or ["(nothing to open)"], key="editor_source")
    if c2.button("Open", key="editor_open", disabled=not sources):
        text, name = sources[choice]
        _open(text, name)
        st.rerun()
    st.session_state.setdefault(TEXT, "")

    left, right = st.columns([3, 2])
    with left:
        st.text_area(
            "YAML (the source of truth)",
            key=TEXT,
            height=520,
            disabled=not editable,
            help="Edit freely: the checks on the right run on every change.",
        )
        if st.session_state[TEXT].strip():
            with st.expander("The YAML with line numbers (the checks name these lines)"):
                st.code(st.session_state[TEXT], language="yaml", line_numbers=True)
    text = st.session_state[TEXT]
    check = None
    if text.strip():
        # A ruleset is checked against the published catalogs (the plans, features it names).
        with db.read_session() as s:
            check = cstore.check_stored(s, kind, text, ops=console_operations())
    with right:
        st.subheader("Checks")
        if check is None:
            st.info("Open a draft, a published version or an example file, or paste YAML.")
        else:
            if check.errors:
                st.error(f"{len(check.errors)} error(s): this draft cannot be published or simulated")
            else:
                st.success(f"Valid: {check.summary}" if check.summary else "Valid")
            if check.warnings:
                st.warning(f"{len(check.warnings)} lint warning(s)")
            _problems(text, [*check.errors, *check.warnings])

    msg = st.session_state.pop("edit_message", None)
    if msg:
        getattr(st, msg[0])(msg[1])

    if not editable:
        need(user, "edit", "Editing drafts")
    else:
        name = (check.name if check and check.name else None) or st.session_state.get("draft_name") or ""
        if st.button("Save draft", key="save_draft", disabled=not text.strip()):
            with db.session() as s:
                save_draft(s, user, kind, name, text, ops=console_operations(), clock=clock())
            st.success(f"Saved draft {name}.")
        if check is not None and check.document is not None and isinstance(check.document.data, dict):
            if kind == "catalog":
                _catalog_forms(text)
            else:
                _ruleset_forms(text)

    if check is not None and check.document is not None:
        with st.expander("Diff against the published version", expanded=False):
            with db.session() as s:
                d = cstore.draft_diff(s, kind, text)
            if d:
                st.code(d, language="diff")
            else:
                st.write("No difference from the published version (or nothing published under this name).")


def _problems(text: str, problems: list[Any]) -> None:
    """Each finding at its line, in plain words, with the line it is about."""
    lines = text.splitlines()
    for p in map(plain, problems):
        label = "Error" if p.severity == "error" else "Warning"
        st.markdown(f"- **line {p.line}** · {p.where} (`{p.path}`) · {label}: {p.message}")
        if 0 < p.line <= len(lines) and lines[p.line - 1].strip():
            st.caption(f"line {p.line}: `{lines[p.line - 1].strip()[:120]}`")


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """Tier 1 first, in every table and picker alike (edits are read by row position)."""
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="tier")
    return frame


def _state(key: str, default: Any = "") -> Any:
    return st.session_state.get(key, default)


def _tiered(data: Any) -> list[tuple[str, str]]:
    out = []
    for pl, plan in (data.get("plans") or {}).items():
        for p in (plan or {}).get("prices") or []:
            if isinstance(p, dict) and "id" in p and isinstance(p.get("tiers"), list):
                out.append((str(pl), str(p["id"])))
    return out


def _label(pl: str, pid: str) -> str:
    return f"{pl} · {pid}"


def _unlabel(label: str) -> tuple[str, str]:
    pl, _, pid = label.partition(" · ")
    return pl, pid


# Form actions: they read the form's widgets when clicked (not when drawn), so a value typed
# just before the click counts.


def _price_change(t: str) -> str:
    return ye.set_price_field(
        t, _state("f_price_plan"), _state("f_price_id"), _state("f_price_field"), _state("f_price_value")
    )


def _tier_change(t: str) -> str:
    pl, pid = _unlabel(_state("f_tier_price"))
    n = int(_state("f_tier_no", 1))
    rows = ye.get_tiers(t, pl, pid)
    if not 1 <= n <= len(rows):
        raise EditError(f"tier {n}: the price has {len(rows)} tiers")
    unit, flat = str(_state("f_tier_unit")).strip(), str(_state("f_tier_flat")).strip()
    if not unit and not flat:
        raise EditError("give a new unit amount or flat amount")
    if unit:
        key = "rate" if rows[n - 1]["rate"] and not rows[n - 1]["unit_amount"] else "unit_amount"
        rows[n - 1][key] = unit
    if flat:
        rows[n - 1]["flat_amount"] = flat
    return ye.set_tiers(t, pl, pid, rows)


def _tiers_table(t: str) -> str:
    pl, pid = _unlabel(_state("f_tiers_price"))
    rows = ye.get_tiers(t, pl, pid)
    edits = _state(f"f_tiers_{pl}_{pid}", {}) or {}
    for idx, change in (edits.get("edited_rows") or {}).items():
        rows[int(idx)].update({k: ("" if v is None else str(v)) for k, v in change.items()})
    for added in edits.get("added_rows") or []:
        rows.append({k: ("" if v is None else str(v)) for k, v in added.items()})
    deleted = {int(i) for i in edits.get("deleted_rows") or []}
    return ye.set_tiers(t, pl, pid, [r for i, r in enumerate(rows) if i not in deleted])


def _add_plan(t: str) -> str:
    return ye.add_plan(
        t, _state("f_plan_id"), _state("f_plan_name"), _state("f_plan_interval", "month"), _state("f_plan_fee")
    )


def _add_coupon(t: str) -> str:
    percent = _state("f_coupon_type", "percent off") == "percent off"
    duration = _state("f_coupon_duration", "once")
    return ye.add_coupon(
        t,
        _state("f_coupon_code"),
        percent_off=_state("f_coupon_value") if percent else None,
        amount_off=None if percent else _state("f_coupon_value"),
        duration=duration,
        periods=int(_state("f_coupon_periods", 1)) if duration == "repeating" else None,
        applies_to=list(_state("f_coupon_plans", [])),
    )


def _toggle_rule(t: str) -> str:
    rid = _state("f_rule_id")
    current = next((r["enabled"] for r in ye.rules_of(t) if str(r["id"]) == rid), True)
    return ye.toggle_rule(t, rid, not current)


def _catalog_forms(text: str) -> None:
    try:
        data = ye.load(text)
    except EditError as exc:
        st.info(str(exc))
        return
    plans = data.get("plans") or {}
    plan_ids = [str(p) for p in plans]
    st.subheader("Common edits")
    # A radio, not tabs: it keeps its choice when the page reruns after each input.
    form = st.radio(
        "Form",
        ["Change a price", "Change a tier", "Edit tiers (table)", "Add a plan", "Add a coupon"],
        horizontal=True,
        key="f_form",
        label_visibility="collapsed",
    )

    def prices_of(plan_id: str) -> list[dict[str, Any]]:
        p = plans.get(plan_id) or {}
        return [x for x in (p.get("prices") or []) if isinstance(x, dict) and "id" in x]

    if form == "Change a price":
        plan = st.selectbox("Plan", plan_ids, key="f_price_plan")
        prices = prices_of(plan) if plan else []
        pid = st.selectbox("Price", [str(p["id"]) for p in prices], key="f_price_id")
        price = next((p for p in prices if str(p["id"]) == pid), {})
        fields = [f for f in (*ye.MONEY_FIELDS, "rate", "package_size", "free_units") if f in price] or ["amount"]
        field = st.selectbox("Field", fields, key="f_price_field")
        st.caption(f"Now: {price.get(field, '—')}")
        st.text_input("New value", key="f_price_value")
        st.button(
            "Apply price change",
            key="f_price_apply",
            on_click=_apply,
            args=(_price_change,),
            disabled=not (plan and pid),
        )

    tiered = _tiered(data)
    labels = [_label(pl, pid) for pl, pid in tiered]
    if form == "Change a tier":
        if not tiered:
            st.write("No tiered prices in this draft.")
        else:
            which = st.selectbox("Tiered price", labels, key="f_tier_price")
            pl, pid = _unlabel(which)
            rows = ye.get_tiers(text, pl, pid)
            st.selectbox("Tier", list(range(1, len(rows) + 1)), key="f_tier_no")
            st.dataframe(_numbered(pd.DataFrame(rows).replace({None: "∞"})), hide_index=False)
            st.text_input("Unit amount", key="f_tier_unit")
            st.text_input("Flat amount (empty: unchanged)", key="f_tier_flat")
            st.button("Apply tier change", key="f_tier_apply", on_click=_apply, args=(_tier_change,))

    if form == "Edit tiers (table)":
        if not tiered:
            st.write("No tiered prices in this draft.")
        else:
            which = st.selectbox("Tiered price", labels, key="f_tiers_price")
            pl, pid = _unlabel(which)
            table = pd.DataFrame(ye.get_tiers(text, pl, pid), columns=["up_to", "unit_amount", "flat_amount", "rate"])
            st.data_editor(_numbered(table.fillna("").astype(str)), num_rows="dynamic", key=f"f_tiers_{pl}_{pid}")
            st.caption("Tiers are numbered from 1, as in *Change a tier*. Leave up_to empty for the open last tier.")
            st.button("Apply tiers", key="f_tiers_apply", on_click=_apply, args=(_tiers_table,))

    if form == "Add a plan":
        st.text_input("Plan id", key="f_plan_id")
        st.text_input("Name", key="f_plan_name")
        st.selectbox("Interval", ["month", "year", "week", "day", "once"], key="f_plan_interval")
        st.text_input("Base fee (empty: none)", key="f_plan_fee")
        st.button("Add plan", key="f_plan_apply", on_click=_apply, args=(_add_plan,))

    if form == "Add a coupon":
        st.text_input("Code", key="f_coupon_code")
        st.radio("Discount", ["percent off", "amount off"], horizontal=True, key="f_coupon_type")
        st.text_input("Value", key="f_coupon_value")
        st.selectbox("Duration", ["once", "repeating", "forever"], key="f_coupon_duration")
        st.number_input("Periods (repeating)", min_value=1, max_value=120, value=3, key="f_coupon_periods")
        st.multiselect("Applies to (none: every plan)", plan_ids, key="f_coupon_plans")
        st.button("Add coupon", key="f_coupon_apply", on_click=_apply, args=(_add_coupon,))


def _ruleset_forms(text: str) -> None:
    try:
        rules = ye.rules_of(text)
    except EditError as exc:
        st.info(str(exc))
        return
    if not rules:
        return
    st.subheader("Common edits")
    ids = [str(r["id"]) for r in rules]
    rid = st.selectbox("Rule", ids, key="f_rule_id")
    current = next(r["enabled"] for r in rules if str(r["id"]) == rid)
    st.caption(f"Now: {'enabled' if current else 'disabled'}")
    st.button("Disable rule" if current else "Enable rule", key="f_rule_toggle", on_click=_apply, args=(_toggle_rule,))
