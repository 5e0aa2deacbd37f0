"""The business at a glance: MRR and ARR, revenue by month, customer movements, retention,
failed payments, receivables by age, the dunning pipeline and top plans, each as a chart with
its numbers beside it. The figures come from engine.console.overview (pure functions over the
facts the sales, payments and dunning read functions return)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from engine.console.figures import Overview, compute
from engine.console.overview import choices, currencies, no_cycle_collection, read_facts
from engine.store import Database
from engine.system.console_readers import overview_readers
from views import common
from views.fmt import count, day, money, month, percent

ALL = "All catalogs"


def render(db: Database, user: dict[str, Any]) -> None:
    st.header("Overview")
    today = common.today()
    st.caption(f"Today is {day(today)} on the engine's clock.")
    c1, c2, c3 = st.columns([2, 1, 1])
    picked = c1.date_input("Range", (date(today.year, today.month, 1) - timedelta(days=150), today),
                           key="ov_range", format="YYYY-MM-DD")
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.info("Pick the range's first and last day.")
        return
    start, end = picked
    with db.read_session() as s:
        offered = currencies(s, overview_readers(), start, end)
    if not offered:
        st.info("No invoices in this range yet.")
        return
    currency = c2.selectbox("Currency", offered, key="ov_currency")
    # Only that currency's rows: the figures never add two.
    with db.read_session() as s, no_cycle_collection():
        facts = read_facts(s, overview_readers(), start, end, currency=currency, with_catalogs=True)
    catalog = c3.selectbox("Catalog", [ALL, *choices(facts).catalogs], key="ov_catalog")
    with no_cycle_collection():
        o = compute(facts, start, end, today, currency, None if catalog == ALL else catalog)
    _headline(o)
    _mrr(o)
    _revenue(o)
    _movements(o)
    _payments(o)
    _dunning_and_plans(o)


def _headline(o: Overview) -> None:
    a, b, c = st.columns(3)
    a.metric("MRR", money(o.mrr, o.currency))
    b.metric("ARR", money(o.arr, o.currency))
    c.metric("Net revenue retention", percent(o.net_revenue_retention),
             help="What the customers paying the day before the range pay on its last day, in percent.")


def _beside(title: str, chart: alt.Chart, table: pd.DataFrame) -> None:
    st.subheader(title)
    left, right = st.columns([3, 2])
    left.altair_chart(chart, width="stretch")
    right.dataframe(table, hide_index=True, width="stretch")


def _mrr(o: Overview) -> None:
    data = pd.DataFrame({"month": [month(m) for m, _ in o.mrr_by_month],
                         "MRR": [float(v) for _, v in o.mrr_by_month]})  # floats only to draw
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("month:O", sort=None, title=None), y=alt.Y("MRR:Q", title=f"MRR ({o.currency})"))
    _beside("MRR at each month's end", chart,
            pd.DataFrame({"Month": data["month"], "MRR": [money(v, o.currency) for _, v in o.mrr_by_month]}))


def _revenue(o: Overview) -> None:
    rows = [{"month": month(r.month), "kind": kind, "amount": float(v)}
            for r in o.revenue for kind, v in (("invoiced", r.invoiced), ("collected", r.collected),
                                                ("refunded", r.refunded))]
    chart = alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        x=alt.X("month:O", sort=None, title=None), xOffset="kind:N",
        y=alt.Y("amount:Q", title=o.currency), color=alt.Color("kind:N", title=None))
    _beside("Revenue by month", chart, pd.DataFrame(
        [{"Month": month(r.month), "Invoiced": money(r.invoiced, o.currency),
          "Collected": money(r.collected, o.currency), "Refunded": money(r.refunded, o.currency)}
         for r in o.revenue]))


def _movements(o: Overview) -> None:
    rows = [{"month": month(m.month), "movement": kind, "customers": n if kind != "churned" else -n}
            for m in o.movements for kind, n in (("new", m.new), ("upgraded", m.upgraded),
                                                 ("downgraded", m.downgraded), ("churned", m.churned))]
    chart = alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        x=alt.X("month:O", sort=None, title=None), xOffset="movement:N",
        y=alt.Y("customers:Q", title="customers (churned below 0)"), color=alt.Color("movement:N", title=None))
    _beside("New, upgraded, downgraded and churned customers", chart, pd.DataFrame(
        [{"Month": month(m.month), "New": f"{count(m.new)} · {money(m.new_mrr, o.currency)}",
          "Upgraded": f"{count(m.upgraded)} · +{money(m.expansion_mrr, o.currency)}",
          "Downgraded": f"{count(m.downgraded)} · -{money(m.contraction_mrr, o.currency)}",
          "Churned": f"{count(m.churned)} · -{money(m.churned_mrr, o.currency)}"} for m in o.movements]))


def _payments(o: Overview) -> None:
    failed = pd.DataFrame({"month": [month(f.month) for f in o.failed_payments],
                           "failed": [f.count for f in o.failed_payments]})
    _beside("Failed payments", alt.Chart(failed).mark_bar(color="#d62728").encode(
        x=alt.X("month:O", sort=None, title=None), y=alt.Y("failed:Q", title="failed attempts")),
        pd.DataFrame([{"Month": month(f.month), "Failed attempts": count(f.count),
                       "Amount": money(f.amount, o.currency)} for f in o.failed_payments]))
    ages = pd.DataFrame({"age": [b.name for b in o.receivables], "amount": [float(b.amount) for b in o.receivables]})
    _beside("Receivables by age", alt.Chart(ages).mark_bar().encode(
        x=alt.X("age:O", sort=None, title="days past due"), y=alt.Y("amount:Q", title=f"open ({o.currency})")),
        pd.DataFrame([{"Age": b.name, "Invoices": count(b.count), "Open": money(b.amount, o.currency)}
                      for b in o.receivables]))


def _dunning_and_plans(o: Overview) -> None:
    states = pd.DataFrame({"state": [s for s, _ in o.dunning], "customers": [n for _, n in o.dunning]})
    _beside("Dunning pipeline", alt.Chart(states).mark_bar().encode(
        x=alt.X("state:O", sort=None, title=None), y=alt.Y("customers:Q")),
        pd.DataFrame({"State": states["state"], "Customers": [count(n) for _, n in o.dunning]}))
    plans = pd.DataFrame({"plan": [p.plan for p in o.top_plans], "MRR": [float(p.mrr) for p in o.top_plans]})
    _beside("Top plans by MRR", alt.Chart(plans).mark_bar().encode(
        y=alt.Y("plan:O", sort=None, title=None), x=alt.X("MRR:Q", title=f"MRR ({o.currency})")),
        pd.DataFrame([{"Plan": p.plan, "Customers": count(p.customers), "MRR": money(p.mrr, o.currency)}
                      for p in o.top_plans]))
