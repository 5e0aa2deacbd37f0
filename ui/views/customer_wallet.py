"""The customer's wallet and spend budget on the customer card: balances per unit, grants with
what is left and when they expire, the ledger page by page; operators grant credit with a
reason and set or remove the budget (engine/console/wallet.py: the services the HTTP API uses,
recorded in the audit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from engine import credits, sales
from engine.console import customer_card as cards
from engine.console import wallet
from engine.store import Database
from engine.system.console_readers import wallet_readers
from engine.system.operations import wallet_changes
from engine.users import PermissionDenied, UserError, can
from views import common
from views.fmt import day, money, number

SOURCES = {"operator": "Operator", "promotion": "Promotion", "pack": "Credit pack", "top_up": "Automatic top-up"}
ENTRIES = {"grant": "Granted", "consumption": "Paid an invoice", "expiry": "Expired", "void": "Voided"}
STATUS = {"active": "active", "pending": "waiting for payment", "void": "voided", "expired": "expired"}
ERRORS = (sales.SalesError, credits.CreditsError, UserError, PermissionDenied)


def amount(v: str | None, unit: str) -> str:
    """Money in a currency (USD, EUR: three capitals), else a count of the custom unit."""
    return money(v, unit) if len(unit) == 3 and unit.isupper() else f"{number(v)} {unit}"


def render(db: Database, user: dict[str, Any], card: cards.CustomerCard) -> None:
    cid = str(card.customer["id"])
    if done := st.session_state.pop("wal_done", None):
        st.success(done)
    with db.read_session() as s:
        view = wallet.wallet_view(s, wallet_readers(), cid, common.clock().now())
    _balances(view)
    _grants(view)
    _ledger(db, cid, view, {i["id"]: i.get("number") or "a draft" for i in card.invoices})
    _budget(view)
    if not can(user["role"], "operate"):
        st.caption(f"Granting credit and changing the budget need the operator role; you are signed in as a "
                   f"{user['role']}.")
        return
    _grant_form(db, user, cid, view.units)
    _budget_form(db, user, cid, view)


def _balances(view: wallet.WalletView) -> None:
    st.markdown("#### Wallet")
    if not view.balances:
        st.caption("No credit granted yet.")
        return
    for b in view.balances:
        u = b["unit"]
        pending = f" · {amount(b['pending'], u)} waiting for payment" if b["pending"] not in ("0", "0.00") else ""
        st.markdown(f"Balance **{amount(b['balance'], u)}** · available now {amount(b['available'], u)}{pending}")


def _grants(view: wallet.WalletView) -> None:
    if not view.grants:
        return
    rows = [{"Granted": day(g["effective_at"]), "Source": SOURCES.get(g["source"], g["source"]),
             "Reason": g.get("reason") or "—", "Amount": amount(g["amount"], g["unit"]),
             "Left": amount(g["remaining"], g["unit"]), "Priority": g["priority"],
             "Expires": day(g["expires_at"]) if g.get("expires_at") else "never", "Status": STATUS.get(g["status"],
                                                                                                          g["status"])}
            for g in view.grants]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _ledger(db: Database, cid: str, view: wallet.WalletView, numbers: dict[str, str]) -> None:
    if not view.grants:
        return
    st.markdown("##### Ledger")
    cursors: list[int] = st.session_state.setdefault(f"wal_pages_{cid}", [0])
    with db.read_session() as s:
        page = wallet.ledger(s, wallet_readers(), cid, after=cursors[-1])
    names = {g["id"]: f"{SOURCES.get(g['source'], g['source'])}: {g.get('reason') or day(g['effective_at'])}"
             for g in view.grants}
    rows = [{"When": day(e["created_at"]), "What": _what(e),
             "Amount": amount(e["amount"], e["unit"]), "Grant": names.get(e["grant_id"], "—"),
             "Invoice": numbers.get(e["invoice_id"], "—") if e.get("invoice_id") else "—"} for e in page["entries"]]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"Page {len(cursors)}, {len(rows)} {'entry' if len(rows) == 1 else 'entries'}, oldest first.")
    a, b = st.columns(2)
    if len(cursors) > 1 and a.button("Earlier entries", key="wal_prev"):
        cursors.pop()
        st.rerun()
    if page["next_after"] is not None and b.button("Later entries", key="wal_next"):
        cursors.append(int(page["next_after"]))
        st.rerun()


def _what(e: dict[str, Any]) -> str:
    """A token wallet's usage consumption names no invoice: usage burned it."""
    if e["kind"] == "consumption" and not e.get("invoice_id") and e.get("note") == "usage":
        return "Burned by usage"
    return ENTRIES.get(e["kind"], e["kind"])


def _budget(view: wallet.WalletView) -> None:
    st.markdown("#### Spend budget")
    b = view.budget
    if b is None:
        st.caption("No spend budget.")
        return
    cur = str(b["currency"])
    alerts = ", ".join(f"{p} %" for p in b["alerts"]) or "none"
    stop = "stops metered use when spent" if b["hard_stop"] else "alerts only"
    st.markdown(f"Budget **{money(b['amount'], cur)}** per billing period · alerts at {alerts} · {stop}")
    if b.get("period"):
        reached = ", ".join(f"{p} %" for p in b["alerts_reached"]) or "none yet"
        st.caption(f"Spent {money(b['spent'], cur)} from {day(b['period']['start'])} to {day(b['period']['end'])}"
                   f" · alerts reached: {reached}" + (" · exhausted: metered use is stopped" if b["exhausted"] else ""))


def _grant_form(db: Database, user: dict[str, Any], cid: str, units: list[str]) -> None:
    with st.form("wal_grant"):
        st.markdown("##### Grant credit")
        if len(units) > 1:  # a token catalog: money pays invoices, tokens are burned by usage
            unit = st.selectbox("Grant in", units, key="wal_unit",
                                format_func=lambda u: f"{u} (paid invoices)" if u.isupper() else f"{u} (burned by usage)")
            value = st.text_input("Amount (in the unit chosen above)", key="wal_amount")
        else:
            unit = None
            value = st.text_input("Amount (in the customer's currency)", key="wal_amount")
        last = st.date_input("Usable through (empty: never expires)", value=None, key="wal_last_day")
        reason = st.text_input("Reason (kept on the grant and in the audit)", key="wal_reason")
        done = st.form_submit_button("Grant credit")
    if done:
        _change(db, lambda s: _granted(wallet_changes.grant_credit(s, user, cid, value, reason, clock=common.clock(),
                                                            last_day=last, unit=unit)))


def _granted(g: dict[str, Any]) -> str:
    return f"Granted {amount(g['amount'], g['unit'])}: {g['reason']}."


def _budget_form(db: Database, user: dict[str, Any], cid: str, view: wallet.WalletView) -> None:
    b = view.budget or {}
    with st.form("wal_budget"):
        st.markdown("##### Set the spend budget")
        value = st.text_input("Budget per billing period", value=str(b.get("amount") or ""), key="wal_budget_amount")
        alerts = st.text_input("Alerts at (percent, comma separated; empty: the plan's)",
                               value=", ".join(str(p) for p in b.get("alerts") or []), key="wal_budget_alerts")
        stop = st.checkbox("Stop metered use once spent", value=bool(b.get("hard_stop")), key="wal_budget_stop")
        why = st.text_input("Why the budget changes (recorded in the audit)", key="wal_budget_why")
        a, c = st.columns(2)
        save = a.form_submit_button("Save budget")
        remove = c.form_submit_button("Remove budget", disabled=not b)
    clock = common.clock()
    if save:
        _change(db, lambda s: _budget_set(wallet_changes.set_budget(s, user, cid, value, alerts, stop, why, clock=clock)))
    elif remove:
        _change(db, lambda s: "Budget removed." if wallet_changes.delete_budget(s, user, cid, why, clock=clock)
                else "There was no budget.")


def _budget_set(b: dict[str, Any]) -> str:
    return f"Budget set to {money(b['amount'], str(b['currency']))} per billing period."


def _change(db: Database, act: Callable[[Any], str]) -> None:
    """Run one change in a transaction; a refusal is shown in words and nothing is written."""
    try:
        with db.session() as s:
            said = act(s)
    except ERRORS as exc:
        st.error(common.message(exc))
        return
    st.session_state["wal_done"] = said
    st.rerun()
