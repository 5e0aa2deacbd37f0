"""The books, read-only: the trial balance through the chart of accounts for a date range, the
journal as CSV or beancount, and revenue recognised vs billed per month and plan (a chart and
the table). The same figures as GET /v1/books/... (engine.payments.books)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from engine.config import get_settings
from engine.payments import UnbalancedEntry, books
from engine.store import Database


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _trial_balance(db: Database, chart: books.ChartOfAccounts, start: date, end: date) -> None:
    with db.read_session() as s:
        tb = books.trial_balance(s, chart, _at(start), _at(end))
        lines = books.book_lines(s, chart, _at(start), _at(end))
    st.subheader("Trial balance")
    if not tb.rows:
        st.write("No journal entries in this range.")
        return
    st.dataframe(pd.DataFrame([{"account": r.account, "currency": r.currency, "debit": str(r.debit),
                                "credit": str(r.credit), "balance": str(r.balance)} for r in tb.rows]),
                 hide_index=True, width="stretch")
    totals = ", ".join(f"{c}: debits {d} = credits {k}" for c, (d, k) in sorted(tb.totals().items()))
    (st.success if tb.balanced else st.error)(f"{'Balanced' if tb.balanced else 'NOT balanced'}: {totals}")
    csv_out, bean_out = io.StringIO(), io.StringIO()
    books.write_csv(lines, csv_out)
    books.write_beancount(lines, bean_out, title=f"journal {start} to {end}")
    left, right = st.columns(2)
    left.download_button("Journal (CSV)", csv_out.getvalue(), f"journal-{start}-{end}.csv", "text/csv",
                         key="books_csv")
    right.download_button("Journal (beancount)", bean_out.getvalue(), f"journal-{start}-{end}.beancount",
                          "text/plain", key="books_beancount")


def _revenue(db: Database, start: date, end: date) -> None:
    st.subheader("Revenue: recognised vs billed")
    with db.read_session() as s:
        rows = books.revenue_report(s, start, end - timedelta(days=1))
    if not rows:
        st.write("No revenue schedules in this range.")
        return
    frame = pd.DataFrame([r.as_dict() for r in rows])
    for col in ("billed", "recognised", "deferred"):
        frame[col] = frame[col].astype(float)  # for drawing only; the table keeps the exact text
    long = frame.melt(id_vars=["month", "plan", "currency"], value_vars=["billed", "recognised"],
                      var_name="figure", value_name="amount")
    st.altair_chart(alt.Chart(long).mark_bar().encode(
        x=alt.X("month:N"), xOffset="figure:N", y=alt.Y("sum(amount):Q", title="amount"),
        color="figure:N", tooltip=["month", "plan", "currency", "figure", "amount"]), width="stretch")
    st.dataframe(pd.DataFrame([r.as_dict() for r in rows]), hide_index=True, width="stretch")


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Books")
    try:
        chart = books.chart_for(get_settings().chart_of_accounts or None)
    except Exception as exc:  # a bad chart file: say which, with its line
        st.error(f"The chart of accounts does not load: {exc}")
        return
    today = datetime.now(UTC).date()
    start = st.date_input("From", today.replace(day=1) - timedelta(days=365), key="books_from")
    end = st.date_input("To (exclusive)", today + timedelta(days=1), key="books_to")
    if not isinstance(start, date) or not isinstance(end, date) or start >= end:
        st.warning("Pick a range whose first day comes before its end.")
        return
    st.caption(f"Chart of accounts: {chart.name}")
    try:
        _trial_balance(db, chart, start, end)
    except (books.UnmappedAccount, UnbalancedEntry) as exc:
        st.error(str(exc))
        return
    _revenue(db, start.replace(day=1), end)
