"""May customer X use feature Y, quantity N? The plan's answer with its explanation, read-only
(a test here publishes no access.denied)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import streamlit as st

from engine.console import store as cstore
from engine.store import Database
from views.common import clock


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Access tester")
    try:
        from engine.access import load_snapshot, plan_decision
    except ImportError:
        st.info("Access decisions are not available in this build.")
        return
    with db.session() as s:
        ids = cstore.list_customer_ids(s, 5000)
    if not ids:
        st.info("The store has no customers yet.")
        return
    cid = st.selectbox("Customer", ids, key="acc_customer")
    feature = st.text_input("Feature", key="acc_feature", placeholder="sso, api, projects…")
    qty = st.text_input("Quantity", value="1", key="acc_qty")
    if st.button("Check", key="acc_go"):
        try:
            quantity = Decimal(qty)
        except InvalidOperation:
            st.error("Quantity: a number above zero.")
            return
        if quantity <= 0 or not feature.strip():
            st.error("Give a feature and a quantity above zero.")
            return
        with db.session() as s:
            snapshot = load_snapshot(s, cid, clock().now())
        if snapshot.catalog is not None and feature not in snapshot.catalog.features:
            st.error(
                f"Unknown feature {feature!r}; the customer's catalog has {', '.join(sorted(snapshot.catalog.features))}."
            )
            return
        decision = plan_decision(snapshot, feature.strip(), quantity, None)
        d = decision.to_dict()
        (st.success if d.get("allowed") else st.error)(
            f"{'Allowed' if d.get('allowed') else 'Denied'}: {d.get('reason') or 'the plan decides'}"
        )
        st.json(d)
        st.caption("The plan's answer; access rules join it once the rules runtime is wired in.")
