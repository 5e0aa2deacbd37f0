"""Bank lines a person must finish: what reconciliation could not match, with suggested
invoices; an editor or publisher confirms a line to one invoice, splits it over several, or
dismisses it, always saying why. Recorded as `console:<user>` (the same decision as
POST /v1/reconciliation/lines/{id}/confirm|split|dismiss)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
import streamlit as st

from engine.clock import SystemClock
from engine.payments import PaymentError, PaymentService, bank
from engine.store import Database

DECIDERS = ("editor", "publisher")


def _allocations(text: str) -> list[tuple[str, Decimal | None]]:
    """One `INVOICE` or `INVOICE=AMOUNT` per line."""
    out: list[tuple[str, Decimal | None]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        invoice, _, amount = raw.strip().partition("=")
        if not invoice:
            continue
        try:
            out.append((invoice.strip(), Decimal(amount.strip()) if amount.strip() else None))
        except InvalidOperation:
            raise PaymentError(f"line {n}: {amount.strip()!r} is not an amount", "allocations") from None
    return out


def _decide(db: Database, user: dict[str, Any], line: dict[str, Any]) -> None:
    action = st.radio("Decision", ["confirm", "split", "dismiss"], horizontal=True, key="bank_action")
    text = "" if action == "dismiss" else st.text_area(
        "Invoices (one per line: INVOICE or INVOICE=AMOUNT)", key="bank_allocations",
        placeholder=line["suggestions"][0]["invoice_id"] if line["suggestions"] else "inv_...")
    reason = st.text_input("Why (kept with the decision)", key="bank_reason")
    if not st.button("Record the decision", key="bank_decide"):
        return
    try:
        with db.session() as s:
            done = bank.decide(s, line["id"], action=action, allocations=_allocations(text), reason=reason,
                               actor=f"console:{user['name']}", service=PaymentService((), SystemClock()))
    except PaymentError as exc:
        st.error(f"{exc.field or 'decision'}: {exc.message}")
        return
    st.success(f"Line {done['id']} is {done['status']}.")


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Bank lines")
    with db.read_session() as s:
        lines = bank.list_lines(s, status="open", limit=200)
    if not lines:
        st.info("No open bank lines: everything imported was matched or decided.")
        return
    st.dataframe(pd.DataFrame([{k: ln[k] for k in ("id", "booked_on", "amount", "currency", "reference", "text",
                                                    "debtor", "outcome", "detail")} for ln in lines]),
                 hide_index=True, width="stretch")
    chosen = st.selectbox("Line", [ln["id"] for ln in lines], key="bank_line")
    line = next(ln for ln in lines if ln["id"] == chosen)
    st.subheader("Suggestions")
    if line["suggestions"]:
        st.table(pd.DataFrame([{"invoice": x.get("invoice_id"), "amount due": x.get("amount_due", ""),
                                "why": ", ".join(x.get("reasons", []))} for x in line["suggestions"]]))
    else:
        st.write("No open invoice looks like it.")
    if user["role"] in DECIDERS:
        _decide(db, user, line)
    else:
        st.caption("Viewers see the lines; editors and publishers decide them.")
