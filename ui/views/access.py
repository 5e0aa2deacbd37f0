"""May customer X use feature Y, quantity N? The live API's decision (plan, usage, dunning state
and the published access rules) with its explanation, read-only (a test here publishes no
access.denied and logs no decision)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
import streamlit as st

from engine.access import UnknownFeature
from engine.console import AccessTester
from engine.console import store as cstore
from engine.store import Database
from engine.system import access_readers
from views.common import clock
from views.fmt import number


@st.cache_resource(show_spinner=False)
def _tester(url: str, _db: Database) -> AccessTester:
    # One compiled rules runtime per console process; each check swaps in newer versions.
    return AccessTester(_db, clock(), access_readers())


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Access tester")
    with db.read_session() as s:
        names = cstore.customer_labels(s, 5000)
    ids = list(names)
    if not ids:
        st.info("The store has no customers yet.")
        return
    cid = st.selectbox("Customer", ids, key="acc_customer", format_func=lambda c: names.get(c) or c)
    feature = st.text_input("Feature", key="acc_feature", placeholder="sso, api, projects…").strip()
    qty = st.text_input("Quantity", value="1", key="acc_qty")
    if not st.button("Check", key="acc_go"):
        return
    try:
        quantity = Decimal(qty)
    except InvalidOperation:
        st.error("Quantity: a number above zero.")
        return
    if not quantity.is_finite() or quantity <= 0 or not feature:
        st.error("Give a feature and a quantity above zero.")
        return
    try:
        explained = _tester(db.url, db).check(cid, feature, quantity)
    except UnknownFeature as exc:
        st.error(str(exc)[0].upper() + str(exc)[1:] + ".")
        return
    d = explained.to_dict()
    (st.success if d["allowed"] else st.error)(f"{'Allowed' if d['allowed'] else 'Denied'}: {d['reason']}")
    for line in explained.explanation():
        st.markdown(f"- {line}")
    st.table(pd.DataFrame([_facts(d)]).set_index("Feature"))
    st.caption("The same decision as POST /v1/access/check, without its side effects.")


def _facts(d: dict[str, Any]) -> dict[str, str]:
    """The decision's figures in words (never its JSON): the same fields as the API's answer."""
    def num(v: Any) -> str:
        return "—" if v is None else number(v)

    offer = d.get("offer") or {}
    return {"Feature": str(d["feature"]), "Plan": str(d.get("plan") or "—"), "Limit": num(d.get("limit")),
            "Used": num(d.get("used")), "Remaining": num(d.get("remaining")),
            "Rules": ", ".join(map(str, d.get("rules") or [])) or "none",
            "Offer": f"upgrade to {offer['plan']}" if offer.get("plan") else "—"}
