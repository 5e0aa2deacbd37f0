"""Customers with their subscriptions, invoices, payments, dunning state, messages and the
decision log (why they were charged, denied, dunned or messaged: the same entries as
GET /v1/customers/{id}/decisions), read through each subsystem's public functions."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine import dunning, messaging, payments, rules, sales
from engine.console import store as cstore
from engine.store import Database


def _table(rows: list[dict[str, Any]], empty: str) -> None:
    if rows:
        # A plain table: every reason readable at once, and searchable on the page.
        st.table(pd.DataFrame([{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]))
    else:
        st.write(empty)


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Inspect")
    with db.session() as s:
        ids = cstore.list_customer_ids(s, 5000)
    if not ids:
        st.info("The store has no customers yet.")
        return
    cid = st.selectbox("Customer", ids, key="insp_customer")
    with db.session() as s:
        customer = sales.get_customer(s, cid)
        subs = sales.list_subscriptions(s, cid)
        invoices = sales.list_invoices(s, cid, per_page=100)["items"]
    st.subheader(f"{customer.get('name') or cid}")
    st.json(
        {k: customer[k] for k in ("id", "email", "country", "segment", "tags", "credit_balance") if k in customer},
        expanded=False,
    )

    st.markdown("**Subscriptions**")
    st.dataframe(
        pd.DataFrame(
            [
                {k: str(s.get(k)) for k in ("id", "plan", "catalog", "quantity", "status", "start_date", "coupon")}
                for s in subs
            ]
        ),
        hide_index=True,
    )
    st.markdown("**Invoices**")
    if invoices:
        st.dataframe(
            pd.DataFrame([{k: str(v) for k, v in i.items() if not isinstance(v, (list, dict))} for i in invoices]),
            hide_index=True,
        )
        inv_id = st.selectbox("Show invoice", [i["id"] for i in invoices], key="insp_invoice")
        with db.session() as s:
            html = sales.render_invoice_html(s, inv_id)
            summaries = [payments.invoice_payment_summary(s, i["id"]) for i in invoices]
        st.html(html)
        st.markdown("**Payments**")
        _table([{"invoice_id": summary["invoice_id"], **{k: p[k] for k in
                ("id", "attempt", "status", "amount", "method", "decline_code", "captured_at")}}
                for summary in summaries if summary for p in summary["payments"]], "No payments recorded.")
    else:
        st.write("No invoices.")

    with db.session() as s:
        state = dunning.get_state(s, cid)
        notes = messaging.list_notifications(s, customer_id=cid, limit=50)
        decisions = rules.customer_decisions(s, cid, limit=100)
    st.markdown("**Dunning state**")
    st.write(state)

    st.markdown("**Messages**")
    _table(notes, "None sent.")

    st.markdown("**Decision log**")
    st.caption("Why this customer was charged, denied, dunned or messaged, newest first.")
    _table(decisions, "No decisions.")
