"""Promotion builder: forms that write pricing rules (who, what, when), access and notification
rules for the common cases into a ruleset draft, and coupons (expiry, redemption limit, usage
so far) into a catalog draft. Each form's problems are shown under their fields; nothing is
written while there is one. The text written is the Editor's, shown below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from engine import sales
from engine.console import save_draft
from engine.console import yaml_edit as ye
from engine.console.fields import FieldProblem, FormInvalid
from engine.console.rule_builder import (
    CHANNELS,
    ENGINE_EVENTS,
    AccessRuleSpec,
    CouponSpec,
    NotificationRuleSpec,
    PromotionSpec,
    update_coupon_limits,
    write_access_rule,
    write_coupon,
    write_notification_rule,
    write_promotion,
)
from engine.store import Database
from engine.system.console_operations import console_operations
from engine.users import can
from views.common import SEGMENTS, clock, need, today
from views.editor import TEXT, open_sources

FORMS = ("Pricing rule", "Coupon", "Access rule", "Notification rule")
NEW_COUPON = "New coupon"
PROBLEMS = "pr_problems"


def _v(key: str, default: Any = "") -> Any:
    return st.session_state.get(key, default)


def _split(value: str) -> list[str]:
    return [x.strip() for x in str(value or "").split(",") if x.strip()]


def _attributes(value: str) -> dict[str, str]:
    out = {}
    for pair in _split(value):
        k, _, v = pair.partition("=")
        out[k.strip()] = v.strip()
    return out


def _apply(write: Callable[[str], str], what: str) -> None:
    """A form's callback: write into the draft's text, or keep every problem for the fields."""
    try:
        st.session_state[TEXT] = write(st.session_state.get(TEXT, ""))
    except FormInvalid as exc:
        st.session_state[PROBLEMS] = exc.problems
        st.session_state["pr_message"] = ("error", f"Not written: {len(exc.problems)} problem(s), marked above.")
        return
    except ye.EditError as exc:
        st.session_state["pr_message"] = ("error", str(exc))
        return
    st.session_state[PROBLEMS] = []
    st.session_state["pr_message"] = ("success", f"{what} written to the draft's YAML.")


def _marks(field: str) -> None:
    for p in st.session_state.get(PROBLEMS, []):
        if isinstance(p, FieldProblem) and (p.field == field or p.field.startswith(f"{field}[")):
            st.error(p.message, icon="⚠️")


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Promotions, coupons and rules")
    form = st.radio("Form", FORMS, horizontal=True, key="pr_form")
    kind = "catalog" if form == "Coupon" else "ruleset"
    if st.session_state.get("editor_kind", "catalog") != kind or not _v(TEXT).strip():
        st.info(f"A {form.lower()} is written into a {kind} draft: open one.")
        open_sources(db, kind, key=f"pr_source_{kind}")
        return
    if not can(user["role"], "edit"):
        need(user, "edit", "Writing promotions and rules")
    else:
        with db.read_session() as s:
            refs = console_operations().references(s)
            # Redemptions of this catalog's codes only: another catalog's code is another coupon.
            used = sales.coupon_redemptions(s, str(ye.load(_v(TEXT)).get("catalog") or ""))
        if form == "Coupon":
            _coupon(used)
        else:
            {"Pricing rule": _pricing, "Access rule": _access, "Notification rule": _notification}[form](refs)
        msg = st.session_state.pop("pr_message", None)
        if msg:
            getattr(st, msg[0])(msg[1])
        if st.button("Save draft", key="pr_save"):
            name = str(ye.load(_v(TEXT)).get(kind) or "")
            with db.session() as s:
                save_draft(s, user, kind, name, _v(TEXT), ops=console_operations(), clock=clock())
            st.success(f"Saved draft {name}.")
        if form == "Coupon":
            _coupon_table(used)
    with st.expander("The draft's YAML (the source of truth)", expanded=False):
        st.code(_v(TEXT), language="yaml", line_numbers=True)


def _pricing(refs: Any) -> None:
    st.subheader("Who")
    a, b = st.columns(2)
    a.text_input("Rule id", key="pr_id", help="e.g. edu-spring")
    with a:
        _marks("id")
    b.text_input("Description", key="pr_description")
    a.multiselect("Segments", SEGMENTS, key="pr_segments", accept_new_options=True)
    b.text_input("Customer tags (comma separated, all must be present)", key="pr_tags")
    a.multiselect("Plans (none: every plan)", sorted(refs.plans or []), key="pr_plans")
    with a:
        _marks("plans")
    b.text_input("Countries (comma separated, e.g. DE, FR)", key="pr_countries")
    with b:
        _marks("countries")
    b.text_input("Customer attributes (name=value, comma separated)", key="pr_attributes")
    with b:
        _marks("attributes")
    st.subheader("What")
    c, d = st.columns(2)
    c.radio("Discount", ["percent", "amount", "coupon"], horizontal=True, key="pr_kind")
    c.text_input("Percent off, amount off, or the coupon code", key="pr_value")
    with c:
        _marks("value")
    d.multiselect("On prices (none: the whole bill)", sorted(refs.prices or []), key="pr_prices")
    d.text_input("For how many periods (empty: every period)", key="pr_periods")
    with d:
        _marks("prices")
        _marks("periods")
    st.subheader("When")
    e, f = st.columns(2)
    e.text_input("Valid from (YYYY-MM-DD, empty: now)", key="pr_valid_from")
    with e:
        _marks("valid_from")
    f.text_input("Valid until (YYYY-MM-DD, empty: no end)", key="pr_valid_until")
    with f:
        _marks("valid_until")
    st.button(
        "Write pricing rule",
        key="pr_write_pricing",
        type="primary",
        on_click=_apply,
        args=(lambda t: write_promotion(t, _promotion_spec(), refs), "Pricing rule"),
    )


def _promotion_spec() -> PromotionSpec:
    return PromotionSpec(
        id=str(_v("pr_id")).strip(),
        description=_v("pr_description"),
        segments=list(_v("pr_segments", [])),
        tags=_split(_v("pr_tags")),
        plans=list(_v("pr_plans", [])),
        countries=_split(_v("pr_countries")),
        attributes=_attributes(_v("pr_attributes")),
        kind=_v("pr_kind", "percent"),
        value=str(_v("pr_value")),
        prices=list(_v("pr_prices", [])),
        periods=str(_v("pr_periods")),
        valid_from=str(_v("pr_valid_from")),
        valid_until=str(_v("pr_valid_until")),
        reason=_v("pr_description"),
    )


def _coupon(used: dict[str, int]) -> None:
    codes = [str(c) for c in ye.load(_v(TEXT)).get("coupons") or {}]
    pick = st.selectbox("Write a new coupon or change one", [NEW_COUPON, *codes], key="cp_pick", on_change=_fill_limits)
    if pick in codes:
        _coupon_limits(pick, used.get(pick, 0))
        return
    plans = sorted(ye.load(_v(TEXT)).get("plans") or {})
    a, b = st.columns(2)
    a.text_input("Code", key="cp_code", help="e.g. SPRING25")
    with a:
        _marks("code")
    a.radio("Discount", ["percent", "amount"], horizontal=True, key="cp_kind")
    a.text_input("Percent or amount off", key="cp_value")
    with a:
        _marks("value")
    b.selectbox("Lasts", ["once", "repeating", "forever"], key="cp_duration")
    b.text_input("Periods (repeating)", key="cp_periods")
    with b:
        _marks("periods")
    b.multiselect("Applies to plans (none: every plan)", plans, key="cp_applies_to")
    a.text_input("Expires (YYYY-MM-DD, empty: never)", key="cp_expires")
    with a:
        _marks("expires")
    b.text_input("Redemption limit (empty: none)", key="cp_max_redemptions")
    with b:
        _marks("max_redemptions")
    st.button(
        "Write coupon",
        key="cp_write",
        type="primary",
        on_click=_apply,
        args=(lambda t: write_coupon(t, _coupon_spec(), today(), used.get(_coupon_spec().code, 0)), "Coupon"),
    )


def _fill_limits() -> None:
    """Picking a coupon fills its limit and expiry in, to be changed."""
    coupon = (ye.load(_v(TEXT)).get("coupons") or {}).get(_v("cp_pick")) or {}
    st.session_state["cp_edit_max_redemptions"] = str(coupon.get("max_redemptions") or "")
    st.session_state["cp_edit_expires"] = str(coupon.get("expires") or "")


def _used_words(used: int, limit: Any) -> str:
    return f"{used:,} of {int(limit):,} used" if limit else f"{used:,} used (no limit)"


def _coupon_limits(code: str, used: int) -> None:
    """An existing coupon: its usage so far, and its limit and expiry to change."""
    coupon = (ye.load(_v(TEXT)).get("coupons") or {}).get(code) or {}
    st.markdown(f"**{code}**: {_used_words(used, coupon.get('max_redemptions'))} so far")
    a, b = st.columns(2)
    a.text_input("Expires (YYYY-MM-DD, empty: never)", key="cp_edit_expires")
    with a:
        _marks("expires")
    b.text_input("Redemption limit (empty: none)", key="cp_edit_max_redemptions")
    with b:
        _marks("max_redemptions")
    st.button(
        "Update coupon",
        key="cp_update",
        type="primary",
        on_click=_apply,
        args=(
            lambda t: update_coupon_limits(
                t, code, str(_v("cp_edit_max_redemptions")), str(_v("cp_edit_expires")), used, today()
            ),
            f"Coupon {code}",
        ),
    )


# The specs are read when a button is clicked (not when drawn): a value typed just before counts.


def _coupon_spec() -> CouponSpec:
    return CouponSpec(
        code=str(_v("cp_code")).strip(),
        kind=_v("cp_kind", "percent"),
        value=str(_v("cp_value")),
        duration=_v("cp_duration", "once"),
        periods=str(_v("cp_periods")),
        applies_to=list(_v("cp_applies_to", [])),
        max_redemptions=str(_v("cp_max_redemptions")),
        expires=str(_v("cp_expires")),
    )


def _coupon_table(used: dict[str, int]) -> None:
    st.subheader("Coupons of this catalog")
    rows = []
    for code, c in (ye.load(_v(TEXT)).get("coupons") or {}).items():
        off = f"{c.get('percent_off')} %" if c.get("percent_off") is not None else f"{c.get('amount_off')} off"
        limit = c.get("max_redemptions")
        rows.append(
            {
                "code": code,
                "discount": off,
                "lasts": c.get("duration"),
                "expires": str(c.get("expires") or "never"),
                "limit": f"{int(limit):,}" if limit else "none",
                "used so far": _used_words(used.get(str(code), 0), limit),
                "left": "unlimited" if not limit else f"{max(int(limit) - used.get(str(code), 0), 0):,}",
            }
        )
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _access(refs: Any) -> None:
    case = st.radio("Case", ["Allow a feature for a tag", "Deny while suspended"], key="ac_case")
    st.text_input("Rule id", key="ac_id")
    _marks("id")
    features = sorted(refs.features or [])
    if case == "Allow a feature for a tag":
        st.selectbox("Feature", features, key="ac_feature")
        _marks("feature")
        st.text_input("Customer tag", key="ac_tag")
        _marks("tag")
    else:
        st.multiselect("Features that stay open (e.g. the data export)", features, key="ac_except")
        _marks("except_features")
    st.text_input("Reason (shown in the answer)", key="ac_reason")
    st.button(
        "Write access rule",
        key="ac_write",
        type="primary",
        on_click=_apply,
        args=(lambda t: write_access_rule(t, _access_spec(), refs), "Access rule"),
    )


def _access_spec() -> AccessRuleSpec:
    allow = str(_v("ac_case", "Allow")).startswith("Allow")
    return AccessRuleSpec(
        id=str(_v("ac_id")).strip(),
        case="allow_tag" if allow else "deny_suspended",
        feature=_v("ac_feature") or "",
        tag=str(_v("ac_tag")),
        except_features=list(_v("ac_except", [])),
        reason=str(_v("ac_reason")),
    )


def _notification(refs: Any) -> None:
    st.text_input("Rule id", key="nt_id")
    _marks("id")
    st.selectbox("When this happens", ENGINE_EVENTS, key="nt_event")
    st.selectbox("Send the message", sorted(refs.templates or []), key="nt_template")
    _marks("template")
    st.multiselect("On channels", CHANNELS, default=["email"], key="nt_channels")
    _marks("channels")
    st.button(
        "Write notification rule",
        key="nt_write",
        type="primary",
        on_click=_apply,
        args=(lambda t: write_notification_rule(t, _notification_spec(), refs), "Notification rule"),
    )


def _notification_spec() -> NotificationRuleSpec:
    return NotificationRuleSpec(
        id=str(_v("nt_id")).strip(),
        event=_v("nt_event", ""),
        template=_v("nt_template") or "",
        channels=list(_v("nt_channels", [])),
    )
