"""Customers: find one by id, name or email and read their card: subscriptions with the next
invoice line by line, invoices with why each line has its amount (and the PDF/HTML), payments
and refunds, dunning state and history, messages with what they said, and every decision in
a sentence. Operators change the subscription from here (views/customer_actions.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from engine import rules, sales
from engine.config import get_settings
from engine.console import customer_card as cards
from engine.console import explain
from engine.pdf import Seller, invoice_pdf
from engine.pdf.instructions import payment_instructions
from engine.store import Database
from engine.system.console_readers import card_readers
from views import common, customer_actions, customer_wallet
from views.fmt import day, money, number

KINDS = {"access": "Access", "charge": "Charge", "dunning": "Dunning", "message": "Message"}


@st.cache_resource(show_spinner=False)
def _promotions(versions: str, _db: Database) -> Any:
    """The pricing rules in force, compiled once per set of published versions."""
    with _db.read_session() as s:
        return cards.live_promotions(s)


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Customers")
    if done := st.session_state.pop("act_done", None):
        st.success(done)
    text = st.text_input("Search by id, name or email", key="cust_search")
    with db.read_session() as s:
        found = cards.search_customers(s, text, limit=50)
    if not found:
        st.info("No customer matches." if text else "The store has no customers yet.")
        return
    names = {c["id"]: f"{c['name'] or c['id']} · {c['email'] or 'no email'}" for c in found}
    cid = st.selectbox("Customer", list(names), format_func=names.__getitem__, key="cust_pick")
    with db.read_session() as s:
        promotions = _promotions(repr(sorted(rules.live_versions(s).items())), db)
        card = cards.customer_card(s, card_readers(), cid, promotions=promotions)
    _head(card)
    _subscriptions(card)
    _invoices(db, card)
    _payments(card)
    _dunning(card)
    _messages(db, card)
    _decisions(card)
    customer_wallet.render(db, user, card)
    customer_actions.render(db, user, card)


def _table(rows: list[dict[str, Any]], empty: str) -> None:
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption(empty)


def _head(card: cards.CustomerCard) -> None:
    c = card.customer
    st.subheader(c["name"] or c["id"])
    facts = [c.get("email") or "no email", c.get("country") or "no country", f"segment {c.get('segment') or '—'}",
             f"customer since {day(c['created_at'][:10])}"]
    if c.get("tags"):
        facts.append("tags: " + ", ".join(c["tags"]))
    st.caption(" · ".join(facts))
    if c.get("credit_balance") not in (None, "0", "0.00"):
        st.caption(f"Credit balance: {money(c['credit_balance'], c.get('currency') or '')}")


def _subscriptions(card: cards.CustomerCard) -> None:
    st.markdown("#### Subscriptions")
    if not card.subscriptions:
        st.caption("No subscription.")
    for sub in card.subscriptions:
        period = f" · period {day(sub.period[0])} – {day(sub.period[1])}" if sub.period else ""
        extra = (f" · coupon {sub.coupon}" if sub.coupon else "") + (" · cancels at period end"
                                                                    if sub.cancel_at_period_end else "")
        extra += " · pauses at period end" if sub.pause_at_period_end else ""
        extra += f" · paused since {day(sub.paused_at[:10])}" if sub.paused_at else ""
        st.markdown(f"**{sub.plan_name}** ({sub.catalog}) · {sub.status} · quantity {number(sub.quantity)} · "
                    f"since {day(sub.started)}{period}{extra}")
        if sub.period and sub.status in cards.LIVE:
            st.caption(f"Next invoice on {day(sub.period[1])} ({_from_today(sub.period[1])})")
        if sub.preview:
            st.caption("Next invoice for this period, priced as the invoice will be (before usage still to come):")
            _table([{"Line": x.name, "Quantity": number(x.quantity), "Amount": money(x.amount, sub.currency),
                     "Discount": money(x.discount, sub.currency), "Tax": money(x.tax, sub.currency),
                     "Total": money(x.total, sub.currency)} for x in sub.preview], "")
            st.markdown(f"Next invoice total: **{money(sub.preview_total, sub.currency)}**")
        elif sub.preview_note:
            st.caption(sub.preview_note)


def _from_today(when: str) -> str:
    """Days from the engine's today (its test clock when it runs on one), never the wall's."""
    days = (date.fromisoformat(when[:10]) - common.today()).days
    return "today" if days == 0 else f"in {days:,} days" if days > 0 else f"{-days:,} days ago"


def _invoices(db: Database, card: cards.CustomerCard) -> None:
    st.markdown("#### Invoices")
    invoices = [i for i in card.invoices if i.get("number")]
    _table([{"Number": i["number"], "Issued": day(i.get("issued_at")), "Period": _period(i), "Status": i["status"],
             "Total": money(i["total"], i["currency"]), "Due": money(i["amount_due"], i["currency"])}
            for i in invoices], "No invoices.")
    if not invoices:
        return
    by_number = {i["number"]: i["id"] for i in invoices}
    number_ = st.selectbox("Invoice", list(by_number), key="cust_invoice")
    with db.read_session() as s:
        invoice, reasons = cards.explain_invoice(s, by_number[number_])
        html = sales.render_invoice_html(s, invoice["id"])
        pdf = invoice_pdf(s, invoice["id"], Seller.from_settings(get_settings()), payment_instructions)
    cur = invoice["currency"]
    for line, why in zip(invoice["lines"], reasons, strict=True):
        st.markdown(f"**{line['name']}** · {money(line['total'], cur)}")
        st.markdown("\n".join(f"- {w}" for w in why))
    st.markdown(f"Subtotal {money(invoice['subtotal'], cur)} · discounts {money(invoice['discount'], cur)} · "
                f"tax {money(invoice['tax'], cur)} · **total {money(invoice['total'], cur)}**")
    a, b = st.columns(2)
    a.download_button("Download PDF", pdf.data, file_name=pdf.filename, mime="application/pdf", key="cust_pdf")
    b.download_button("Download HTML", html, file_name=f"invoice-{number_}.html", mime="text/html", key="cust_html")


def _period(i: dict[str, Any]) -> str:
    p = i.get("period") or {}
    return f"{day(p['start'])} – {day(p['end'])}" if p.get("start") and p.get("end") else "—"


def _payments(card: cards.CustomerCard) -> None:
    st.markdown("#### Payments and refunds")
    _table([{"Invoice": p["invoice"], "Attempt": p.get("attempt"), "Status": p.get("status"),
             "Amount": money(p.get("amount"), p.get("currency") or ""), "Method": p.get("method") or "—",
             "Declined": p.get("decline_code") or "", "When": day(p.get("captured_at") or p.get("created_at"))}
            for p in card.payments], "No payment attempts.")
    _table([{"Invoice": r["invoice"], "Status": r["status"], "Amount": money(r["amount"], r["currency"]),
             "Reason": r.get("reason") or "", "When": day(r["created_at"])} for r in card.refunds], "No refunds.")


def _dunning(card: cards.CustomerCard) -> None:
    st.markdown("#### Dunning")
    st.markdown(f"State: **{card.dunning_state}**")
    _table([{"When": day(w.time), "What happened": w.sentence} for w in card.dunning_history],
           "No dunning history.")


def _messages(db: Database, card: cards.CustomerCard) -> None:
    st.markdown("#### Messages")
    _table([{"When": day(m["created_at"]), "Message": m["template"], "Channel": _channel(m["channel"]),
             "Status": m["status"], "To": _recipient(m)} for m in card.messages], "No messages.")
    if not card.messages:
        return
    labels = {m["id"]: f"{day(m['created_at'])} · {m['template']} · {_channel(m['channel'])}" for m in card.messages}
    picked = st.selectbox("Show what was sent", list(labels), format_func=labels.__getitem__, key="cust_message")
    with db.read_session() as s:
        content = cards.message_content(s, card_readers(), picked)
    if not content:
        st.caption("This message was not rendered (it waits for a digest, or was skipped).")
    elif content.get("html"):
        st.markdown(f"**{content.get('subject', '')}**")
        st.html(content["html"])
    else:
        st.markdown(f"**{content.get('subject') or content.get('title') or ''}**")
        st.text(content.get("text") or content.get("body") or "")


def _channel(channel: str) -> str:
    return explain.CHANNELS.get(channel, channel)


def _recipient(m: dict[str, Any]) -> str:
    # An in-app message goes to the customer's feed: its recipient is the customer itself.
    return "in the product" if m["channel"] == "in_app" else str(m.get("recipient") or "")


def _decisions(card: cards.CustomerCard) -> None:
    st.markdown("#### Why")
    st.caption("Every decision the engine took for this customer, newest first, in words.")
    rows = [{"When": day(w.time), "About": KINDS.get(w.kind, w.kind), "Why": w.sentence} for w in card.decisions]
    if rows:  # a plain table: every sentence readable whole, and found by the browser's search
        st.table(pd.DataFrame(rows).set_index("When"))
    else:
        st.caption("No decisions yet.")
