"""One customer at a glance for support: who they are, their subscriptions, invoices, payments,
dunning state, messages and the decision log (why they were charged, denied, dunned or
messaged: the entries of GET /v1/customers/{id}/decisions), each in words, names, formatted
money and dates: never a JSON block or an internal id (the Customers page has the full card)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.console import customer_card as cards
from engine.console import explain
from engine.store import Database
from engine.system.console_readers import card_readers
from views.fmt import day, money, number

KINDS = {"access": "Access", "charge": "Charge", "dunning": "Dunning", "message": "Message"}


def _table(rows: list[dict[str, Any]], empty: str) -> None:
    if rows:
        # A plain table: every reason readable at once, and searchable on the page.
        st.table(pd.DataFrame(rows).set_index(next(iter(rows[0]))))
    else:
        st.write(empty)


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Inspect")
    text = st.text_input("Search by name, email or id", key="insp_search")
    with db.read_session() as s:
        found = cards.search_customers(s, text, limit=200)
    if not found:
        st.info("No customer matches." if text else "The store has no customers yet.")
        return
    names = {c["id"]: f"{c['name'] or c['email'] or c['id']} · {c['email'] or 'no email'}" for c in found}
    cid = st.selectbox("Customer", list(names), format_func=names.__getitem__, key="insp_customer")
    with db.read_session() as s:
        card = cards.customer_card(s, card_readers(), cid)
    c = card.customer
    st.subheader(c.get("name") or c.get("email") or "Customer")
    facts = [c.get("email") or "no email", c.get("country") or "no country", f"segment {c.get('segment') or '—'}"]
    if c.get("tags"):
        facts.append("tags: " + ", ".join(c["tags"]))
    facts.append(f"credit balance {money(c.get('credit_balance') or '0', c.get('currency') or '')}")
    st.caption(" · ".join(facts))
    _records(card)
    st.markdown(f"**Dunning state**: {card.dunning_state}")
    st.markdown("**Decision log**")
    st.caption("Why this customer was charged, denied, dunned or messaged, newest first.")
    _table([{"When": day(w.time), "About": KINDS.get(w.kind, w.kind), "Why": w.sentence} for w in card.decisions],
           "No decisions.")


def _records(card: cards.CustomerCard) -> None:
    st.markdown("**Subscriptions**")
    _table([{"Plan": f"{s.plan_name} ({s.catalog})", "Status": s.status, "Quantity": number(s.quantity),
             "Since": day(s.started), "Coupon": s.coupon or "—"} for s in card.subscriptions], "No subscription.")
    st.markdown("**Invoices**")
    _table([{"Number": i["number"], "Issued": day(i.get("issued_at")), "Status": i["status"],
             "Total": money(i["total"], i["currency"]), "Due": money(i["amount_due"], i["currency"])}
            for i in card.invoices if i.get("number")], "No invoices.")
    st.markdown("**Payments**")
    _table([{"Invoice": p["invoice"], "Attempt": str(p.get("attempt") or ""), "Status": p.get("status") or "",
             "Amount": money(p.get("amount"), p.get("currency") or ""), "Declined": p.get("decline_code") or "",
             "When": day(p.get("captured_at") or p.get("created_at"))} for p in card.payments],
           "No payments recorded.")
    st.markdown("**Messages**")
    _table([{"When": day(m["created_at"]), "Message": m["template"],
             "Channel": explain.CHANNELS.get(m["channel"], m["channel"]), "Status": m["status"]}
            for m in card.messages], "None sent.")
