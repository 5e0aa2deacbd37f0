"""The console's Overview figures on 100,000 invoices on PostgreSQL, against the raw SQL of the
same figures in the same run.

Ours: `engine.console.overview.overview` (the sales, payments and dunning read functions, then
the pure figures in Python). Baseline: hand-written PostgreSQL that computes the same figures
in the database (MRR at each month's end with a join on the service periods, the customer
movements with a full join of consecutive points, revenue, failed payments, receivables by
age, the dunning pipeline and top plans by GROUP BY). Both are checked to agree, figure by
figure. ratio = baseline_time / our_time (higher is better); target >= 0.5, and the issue asks
for under 5 s here and under 2 s on the demo data (`--demo`: 50 customers x 12 months, SQLite).

    .venv/bin/python benchmarks/console.py [--invoices 100000] [--repeat 3] [--pg-admin-url URL]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from engine.console.figures import Overview
from engine.console.overview import overview
from engine.dunning.models import Account
from engine.payments.models import Payment, Receivable, Refund
from engine.sales.models import Customer, Invoice, PlanOwner
from engine.store import Database
from engine.system.console_readers import overview_readers

FIRST = date(2025, 1, 1)
START, END = date(2025, 7, 1), date(2025, 12, 31)  # the range shown: six months
AS_OF = date(2025, 12, 31)
PLANS = (("starter", "29.00"), ("pro", "99.00"), ("business", "299.00"))
STATES = ("warning", "suspended", "cancelled")


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 6, tzinfo=UTC)


def month(n: int) -> date:
    y, m = divmod(FIRST.month - 1 + n, 12)
    return date(FIRST.year + y, m + 1, 1)


def history(invoices: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Customers on monthly plans for up to 12 months: some upgrade, downgrade or churn; one
    payment a month (5 % decline once, then pay), a few refunds, the unpaid ones open."""
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ("customers", "invoices", "payments", "refunds",
                                                             "receivables", "accounts")}
    n = 0
    while n < invoices:
        cid = f"cus_{len(rows['customers']):06d}"
        rows["customers"].append({"id": cid, "name": f"Customer {cid}", "tags": [], "attributes": {}, "channels": [],
                                  "timezone": "UTC", "credit_balance": Decimal(0), "created_at": at(FIRST)})
        first, months = rng.randrange(0, 12), rng.randint(1, 12)
        plan = rng.randrange(len(PLANS))
        currency = "EUR" if rng.random() < 0.05 else "USD"
        for m in range(first, min(first + months, 12)):
            if n >= invoices:
                break
            if rng.random() < 0.04:
                plan = min(plan + 1, len(PLANS) - 1) if rng.random() < 0.7 else max(plan - 1, 0)
            _month(rows, rng, cid, n, month(m), PLANS[plan], currency, first == m)
            n += 1
        if rng.random() < 0.03:
            rows["accounts"].append({"customer_id": cid, "state": rng.choice(STATES), "since": at(date(2025, 12, 1)),
                                     "reason": "bench"})
    return rows


def _month(rows: dict[str, list[dict[str, Any]]], rng: random.Random, cid: str, n: int, start: date,
           plan: tuple[str, str], currency: str, new: bool) -> None:
    end = month((start.year - FIRST.year) * 12 + start.month)
    subtotal = Decimal(plan[1])
    discount = (subtotal * Decimal("0.2")).quantize(Decimal("0.01")) if rng.random() < 0.1 else Decimal(0)
    tax = ((subtotal - discount) * Decimal("0.081")).quantize(Decimal("0.01"))
    total = subtotal - discount + tax
    iid = f"in_{n:07d}"
    unpaid = start >= date(2025, 11, 1) and rng.random() < 0.08
    rows["invoices"].append({
        "id": iid, "number": f"INV-{n:07d}", "customer_id": cid, "billing_key": f"period:{start}",
        "reason": "start" if new else "cycle", "status": "finalized" if unpaid else "paid", "currency": currency,
        "plan_id": plan[0], "period_start": start, "period_end": end, "subtotal": subtotal, "discount": discount,
        "tax": tax, "total": total, "credit_applied": Decimal(0), "amount_due": total,
        "amount_paid": Decimal(0) if unpaid else total, "tax_rate": Decimal("8.1"), "reverse_charge": False,
        "discounts": [], "created_at": at(start), "issued_at": at(start)})
    attempts = ["failed"] if unpaid else (["failed", "succeeded"] if rng.random() < 0.05 else ["succeeded"])
    for k, status in enumerate(attempts):
        day = start + timedelta(days=3 * k)
        rows["payments"].append({
            "id": f"pay_{n:07d}_{k}", "idempotency_key": f"{iid}:{k + 1}", "invoice_id": iid, "customer_id": cid,
            "attempt": k + 1, "provider": "sandbox", "method_type": "card", "amount": total, "currency": currency,
            "status": status, "decline_code": None if status == "succeeded" else "insufficient_funds",
            "needs_lookup": False, "refunded_amount": Decimal(0),
            "captured_at": at(day) if status == "succeeded" else None, "created_at": at(day), "updated_at": at(day)})
    if not unpaid and rng.random() < 0.01:
        day = start + timedelta(days=10)
        rows["refunds"].append({
            "id": f"re_{n:07d}", "idempotency_key": f"refund:{iid}", "payment_id": rows["payments"][-1]["id"],
            "customer_id": cid, "provider": "sandbox", "amount": (total / 2).quantize(Decimal("0.01")),
            "currency": currency, "status": "succeeded", "needs_lookup": False, "created_at": at(day),
            "updated_at": at(day)})
    if unpaid:
        rows["receivables"].append({
            "invoice_id": iid, "customer_id": cid, "currency": currency, "amount_due": total, "amount_paid": Decimal(0),
            "credit_applied": Decimal(0), "payment_reference": f"RF{n:07d}", "collection_method": "automatic",
            "status": "open", "due_at": at(start), "last_attempt": 1, "created_at": at(start)})


def seed(db: Database, rows: dict[str, list[dict[str, Any]]]) -> None:
    tables = ((Customer, "customers"), (Invoice, "invoices"), (Payment, "payments"), (Refund, "refunds"),
              (Receivable, "receivables"), (Account, "accounts"))
    with db.session() as s:
        s.execute(sa.insert(PlanOwner), [{"plan_id": p, "catalog": "bench"} for p, _ in PLANS])
        for model, key in tables:
            for i in range(0, len(rows[key]), 5000):
                s.execute(sa.insert(model), rows[key][i:i + 5000])


# The recurring spans and each customer's MRR at each point, as the database computes them,
# kept in indexed temporary tables (one CTE joined to itself made PostgreSQL nest loops over
# 160,000 x 160,000 rows: 243 s); then every figure in one statement.
SETUP = (
    """CREATE TEMP TABLE pts ON COMMIT DROP AS
       SELECT i::int AS i, p::date AS p FROM unnest(CAST(:points AS date[])) WITH ORDINALITY AS t(p, i)""",
    """CREATE TEMP TABLE rec ON COMMIT DROP AS
       SELECT customer_id, plan_id, period_start, period_end,
              (subtotal - discount) / CASE WHEN period_end - period_start >= 28
                   THEN round((period_end - period_start) / 30.4375) ELSE (period_end - period_start) / 30.4375 END AS mv
       FROM sales_invoices
       WHERE status IN ('finalized', 'paid', 'uncollectible') AND reason IN ('start', 'cycle') AND currency = :cur
         AND issued_at < :hi AND (issued_at >= :lo OR period_end >= :lo_day)""",
    """CREATE TEMP TABLE cm ON COMMIT DROP AS
       SELECT pts.i, rec.customer_id, sum(rec.mv) AS v
       FROM pts JOIN rec ON rec.period_start <= pts.p AND pts.p < rec.period_end GROUP BY pts.i, rec.customer_id""",
    "CREATE INDEX ON cm (customer_id, i)",
    "ANALYZE cm",
)

SQL = """
SELECT 'mrr' AS k, i::text AS a, round(sum(v), 2)::text AS b, NULL AS c FROM cm GROUP BY i
UNION ALL
SELECT 'move', idx::text || ':' || kind, count(*)::text, round(sum(abs(nv - ov)), 2)::text
FROM (SELECT coalesce(b.i, a.i) AS idx, coalesce(b.v, 0) AS nv, coalesce(a.v, 0) AS ov
      FROM cm b FULL JOIN (SELECT i + 1 AS i, customer_id, v FROM cm) a ON a.i = b.i AND a.customer_id = b.customer_id
     ) x
CROSS JOIN LATERAL (SELECT CASE WHEN nv > ov THEN CASE WHEN ov = 0 THEN 'new' ELSE 'upgraded' END
                                WHEN nv < ov THEN CASE WHEN nv = 0 THEN 'churned' ELSE 'downgraded' END END AS kind) k
WHERE kind IS NOT NULL AND idx BETWEEN 2 AND :last_i
GROUP BY idx, kind
UNION ALL
SELECT 'nrr', NULL, round(sum(coalesce(e.v, 0)) * 100 / nullif(sum(s.v), 0), 1)::text, NULL
FROM cm s LEFT JOIN cm e ON e.customer_id = s.customer_id AND e.i = :last_i WHERE s.i = 1 AND s.v > 0
UNION ALL
SELECT 'plan', plan_id, count(DISTINCT customer_id)::text, round(sum(mv), 2)::text
FROM rec JOIN pts ON pts.i = :last_i AND rec.period_start <= pts.p AND pts.p < rec.period_end GROUP BY plan_id
UNION ALL
SELECT 'invoiced', to_char(date_trunc('month', issued_at), 'YYYY-MM'), sum(total)::text, NULL FROM sales_invoices
WHERE status IN ('finalized', 'paid', 'uncollectible') AND currency = :cur AND issued_at >= :lo AND issued_at < :hi
GROUP BY 2
UNION ALL
SELECT 'collected', to_char(date_trunc('month', coalesce(captured_at, created_at)), 'YYYY-MM'), sum(amount)::text, NULL
FROM pay_payments WHERE status IN ('succeeded', 'refunded') AND currency = :cur AND created_at >= :lo
  AND created_at < :hi AND coalesce(captured_at, created_at) < :hi GROUP BY 2
UNION ALL
SELECT 'failed', to_char(date_trunc('month', created_at), 'YYYY-MM'), count(*)::text, sum(amount)::text
FROM pay_payments WHERE status = 'failed' AND currency = :cur AND created_at >= :lo AND created_at < :hi GROUP BY 2
UNION ALL
SELECT 'refunded', to_char(date_trunc('month', created_at), 'YYYY-MM'), sum(amount)::text, NULL FROM pay_refunds
WHERE status = 'succeeded' AND currency = :cur AND created_at >= :lo AND created_at < :hi GROUP BY 2
UNION ALL
SELECT 'age', CASE WHEN d <= 0 THEN 'not yet due' WHEN d <= 30 THEN '1–30 days' WHEN d <= 60 THEN '31–60 days'
                   WHEN d <= 90 THEN '61–90 days' ELSE 'over 90 days' END, count(*)::text, sum(o)::text
FROM (SELECT :as_of - coalesce(due_at, created_at)::date AS d, amount_due - amount_paid - credit_applied AS o
      FROM pay_receivables WHERE status = 'open' AND currency = :cur) r WHERE o > 0 GROUP BY 2
UNION ALL
SELECT 'dunning', coalesce(a.state, 'active'), count(*)::text, NULL
FROM (SELECT customer_id FROM sales_invoices WHERE status IN ('finalized', 'paid', 'uncollectible') AND currency = :cur
        AND issued_at < :hi AND (issued_at >= :lo OR period_end >= :lo_day)
      UNION SELECT customer_id FROM pay_receivables WHERE status = 'open' AND currency = :cur) c
LEFT JOIN dunning_accounts a ON a.customer_id = c.customer_id GROUP BY 2
"""


def points() -> list[date]:
    """The day before the range, then each month's last day (capped at AS_OF)."""
    out, m = [START - timedelta(days=1)], START
    while m <= END:
        nxt = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        out.append(min(nxt - timedelta(days=1), AS_OF))
        m = nxt
    return out


def raw_sql(db: Database) -> dict[tuple[str, str | None], tuple[str, str | None]]:
    pts = points()
    params = {"points": pts, "cur": "USD", "lo": at(START - timedelta(days=1)).replace(hour=0),
              "hi": at(END + timedelta(days=1)).replace(hour=0), "lo_day": START - timedelta(days=1),
              "last_i": len(pts), "as_of": AS_OF}
    with db.session() as s:
        for statement in SETUP:
            s.execute(sa.text(statement), {k: v for k, v in params.items() if f":{k}" in statement})
        rows = s.execute(sa.text(SQL), {k: v for k, v in params.items() if f":{k}" in SQL}).all()
    return {(k, a): (b, c) for k, a, b, c in rows}


def ours(db: Database) -> Overview:
    with db.read_session() as s:
        return overview(s, overview_readers(), START, END, as_of=AS_OF, currency="USD")


def check(o: Overview, sql: dict[tuple[str, str | None], tuple[str, str | None]]) -> None:
    """The two computations agree on every figure (the benchmark compares like with like)."""
    assert [str(v) for _, v in o.mrr_by_month] == [sql[("mrr", str(i + 2))][0] for i in range(len(o.mrr_by_month))]
    for i, m in enumerate(o.movements):
        for kind, n, amount in (("new", m.new, m.new_mrr), ("upgraded", m.upgraded, m.expansion_mrr),
                                ("downgraded", m.downgraded, m.contraction_mrr), ("churned", m.churned, m.churned_mrr)):
            got = sql.get(("move", f"{i + 2}:{kind}"), ("0", "0.00"))
            assert (str(n), Decimal(got[1] or 0)) == (got[0], amount), (m.month, kind, n, amount, got)
    assert str(o.net_revenue_retention) == sql[("nrr", None)][0]
    for r in o.revenue:
        key = r.month.strftime("%Y-%m")
        for kind, v in (("invoiced", r.invoiced), ("collected", r.collected), ("refunded", r.refunded)):
            assert Decimal(sql.get((kind, key), ("0", None))[0]) == v, (kind, key, v)
    for b in o.receivables:
        got = sql.get(("age", b.name), ("0", "0"))
        assert (str(b.count), Decimal(got[1] or 0)) == (got[0], b.amount), b
    assert {s: n for s, n in o.dunning if n} == {a: int(b) for (k, a), (b, _) in sql.items() if k == "dunning"}
    assert {p.plan: p.mrr for p in o.top_plans} == {a: Decimal(c or 0) for (k, a), (_, c) in sql.items() if k == "plan"}


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def demo_seconds() -> float:
    """The overview on demo-sized data (50 customers x 12 months) on SQLite."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/demo.db")
        db.migrate()
        seed(db, history(600))
        seconds, _ = timed(lambda: ours(db), 3)
        db.dispose()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--invoices", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg-admin-url", default=os.environ.get(
        "BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    name = f"billing_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = args.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    try:
        db.migrate()
        rows = history(args.invoices)
        t0 = time.perf_counter()
        seed(db, rows)
        print(f"seeded {len(rows['invoices']):,} invoices, {len(rows['payments']):,} payments, "
              f"{len(rows['customers']):,} customers in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        with db.session() as s:
            s.execute(sa.text("ANALYZE"))
        load_before = os.getloadavg()[0]
        sql_s, sql = timed(lambda: raw_sql(db), args.repeat)
        ours_s, o = timed(lambda: ours(db), args.repeat)
        load_after = os.getloadavg()[0]
        check(o, sql)
        demo_s = demo_seconds()
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    print(json.dumps({"invoices": len(rows["invoices"]), "ours_s": round(ours_s, 3), "raw_sql_s": round(sql_s, 3),
                      "demo_s": round(demo_s, 3), "mrr": str(o.mrr), "load_1m": [load_before, load_after],
                      "ratio": round(sql_s / ours_s, 3), "target": 0.5}))


if __name__ == "__main__":
    main()
