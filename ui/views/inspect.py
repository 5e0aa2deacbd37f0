"""Customers with their subscriptions, invoices, payments, dunning state, notifications and
decisions, read through each subsystem's public functions (a part whose subsystem does not
offer it yet says so)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine import sales
from engine.console import store as cstore
from engine.store import Database


def _optional(module: str, name: str) -> Any:
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError:
        return None
    return getattr(mod, name, None)


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
            summary_fn = _optional("engine.payments", "invoice_payment_summary")
            pay = summary_fn(s, inv_id) if summary_fn else None
        st.html(html)
        st.markdown("**Payments**")
        if summary_fn is None:
            st.info("Payments are not available in this build.")
        else:
            st.json(pay or {"payments": "none recorded"}, expanded=False)
    else:
        st.write("No invoices.")

    st.markdown("**Dunning state**")
    get_state = _optional("engine.dunning", "get_state")
    if get_state is None:
        st.info("Dunning is not available in this build.")
    else:
        with db.session() as s:
            st.write(get_state(s, cid))

    st.markdown("**Notifications**")
    list_notifications = _optional("engine.messaging", "list_notifications")
    if list_notifications is None:
        st.info("Messaging is not available in this build.")
    else:
        with db.session() as s:
            notes = list_notifications(s, customer_id=cid, limit=50)
        st.dataframe(
            pd.DataFrame([{k: str(v) for k, v in n.items()} for n in notes]), hide_index=True
        ) if notes else st.write("None sent.")

    st.markdown("**Decision log**")
    decisions = _optional("engine.rules", "list_decisions")
    if decisions is None:
        st.info("The rules runtime does not offer a decision log yet.")
    else:
        with db.session() as s:
            rows = decisions(s, customer_id=cid, limit=50)
        st.dataframe(
            pd.DataFrame([{k: str(v) for k, v in r.items()} for r in rows]), hide_index=True
        ) if rows else st.write("No decisions.")
