"""An operator's changes on the customer card: change plan, apply a coupon, cancel, pause and
resume. The same engine operations as the HTTP API, allowed by the `operate` permission,
recorded in the audit."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import sales
from engine.console import customer_card as cards
from engine.store import Database
from engine.system.operations import subscription_changes as operations
from engine.users import PermissionDenied, UserError, can
from views import common
from views.fmt import day

ACTIONS = ("Change plan", "Apply a coupon", "Cancel", "Pause", "Resume")


def render(db: Database, user: dict[str, Any], card: cards.CustomerCard) -> None:
    live = [s for s in card.subscriptions if (s.status in cards.LIVE and s.plans) or s.status == cards.PAUSED]
    if not live:
        return
    st.markdown("#### Change the subscription")
    if not can(user["role"], "operate"):
        st.caption(f"Changing a subscription needs the operator role; you are signed in as a {user['role']}.")
        return
    labels = {s.id: f"{s.plan_name} ({s.catalog}) since {day(s.started)}" + (" · paused" if s.paused_at else "")
              for s in live}
    with st.form("cust_action"):
        sid = st.selectbox("Subscription", list(labels), format_func=labels.__getitem__, key="act_sub")
        sub = next(s for s in live if s.id == sid)
        action = st.radio("Action", ACTIONS, horizontal=True, key="act_kind",
                          help="Pause: at the end of the period paid for; nothing is invoiced while paused and "
                               "the plan grants no feature. Resume: a new period from today, invoiced now.")
        plan = st.selectbox("New plan", [p for p in sub.plans if p != sub.plan], format_func=sub.plans.__getitem__,
                            key="act_plan")
        coupon = st.selectbox("Coupon", sub.coupons, key="act_coupon")
        at = st.radio("Cancel", ("at the period end", "now"), horizontal=True, key="act_at")
        why = st.text_input("Why (recorded in the audit)", key="act_why")
        done = st.form_submit_button("Apply")
    if done:
        _apply(db, user, sub.id, action, plan, coupon, at, why)


def _apply(db: Database, user: dict[str, Any], sid: str, action: str, plan: str | None, coupon: str | None,
           at: str, why: str) -> None:
    try:
        said = _run(db, user, sid, action, plan, coupon, at, why)
    except (sales.SalesError, UserError, PermissionDenied) as exc:  # nothing was changed
        st.error(common.message(exc))
        return
    st.session_state["act_done"] = said
    st.rerun()


def _run(db: Database, user: dict[str, Any], sid: str, action: str, plan: str | None, coupon: str | None,
         at: str, why: str) -> str:
    clock = common.clock()
    with db.session() as s:
        promotions = cards.live_promotions(s)
        if action == "Change plan":
            sub = operations.change_plan(s, user, sid, plan or "", why, clock=clock, promotions=promotions)
            pending = (sub.get("pending") or {}).get("plan")
            said = f"Moves to {pending} at the period end." if pending else f"Plan changed to {sub['plan']} now."
        elif action == "Apply a coupon":
            operations.apply_coupon(s, user, sid, coupon or "", why, clock=clock, promotions=promotions)
            said = f"Coupon {coupon} applies from the next period."
        elif action in ("Pause", "Resume"):
            said = _pause_or_resume(s, user, sid, action, why, clock, promotions)
        else:
            operations.cancel(s, user, sid, "now" if at == "now" else "period_end", why, clock=clock,
                              promotions=promotions)
            said = "Cancelled now." if at == "now" else "Cancels at the period end."
    return said


def _pause_or_resume(s: Any, user: dict[str, Any], sid: str, action: str, why: str, clock: Any,
                     promotions: Any) -> str:
    if action == "Pause":
        sub = operations.pause(s, user, sid, why, clock=clock, promotions=promotions)
        return f"Pauses on {day(sub['current_period']['end'])}, when the period paid for ends."
    sub = operations.resume(s, user, sid, why, clock=clock, promotions=promotions)
    if sub.get("document"):
        return f"Resumed: a new period from {day(sub['current_period']['start'])}, invoiced now."
    return "The pause is withdrawn: the subscription renews as usual."
