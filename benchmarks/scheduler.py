"""A scheduler tick over many accounts: the daily dunning sweep of rules/dunning.yaml
(`schedule: "0 6 * * *"`, `for_each: invoice`) over N customers, each with a subscription and
an open invoice, on PostgreSQL.

Invoices are 0..39 days overdue (evenly spread) and each account is already in the state the
rules gave it yesterday, so a tick does what a real day does: the 3/40 that crossed day 7, 14
or 30 today act (warning + 2 notifications, suspension + 2 notifications, cancellation of the
subscription + uncollectible invoice + 1 notification). The tick is the scheduler's job run
(`Jobs.run`), slot key and all: the rules' conditions filter the invoices in SQL, the due
ones are read in pages and act in batches. Also timed: the same slot again (taken: nothing
runs) and a sweep of another slot the same day, where every account is already where the
rules put it (nothing due: what most ticks cost).

Target (issue 8): the tick over 100,000 accounts in under 30 s. `ratio` = target seconds /
measured seconds (above 1 is within target).

    .venv/bin/python benchmarks/scheduler.py [--n 100000] [--pg-admin URL]

The data is bulk-loaded into a fresh database (not through the API: seeding is not what is
measured). The last line printed is one JSON object with the figures, `ratio` and `target`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

import engine.models  # noqa: F401  (every table on the metadata)
from engine import messaging, sales
from engine.clock import TestClock
from engine.rules import RulesRuntime, publish_ruleset, sync_runtime
from engine.store import Base, Database
from engine.system import build_automation, scheduler_jobs

TARGET_SECONDS = 30.0
NOW = datetime(2026, 6, 10, 6, 0, tzinfo=UTC)
CATALOG = {
    "catalog": "bench", "currency": "USD",
    "features": {"reports": {"name": "Reports", "type": "boolean"}},
    "plans": {"basic": {"name": "Basic", "interval": "month",
                        "prices": [{"id": "base", "model": "flat", "amount": "20.00"}],
                        "entitlements": {"reports": True}}},
}


def yesterday_state(days: int) -> str | None:
    if days - 1 >= 30:
        return "cancelled"
    if days - 1 >= 14:
        return "suspended"
    if days - 1 >= 7:
        return "warning"
    return None


def seed(db: Database, n: int, version_id: int) -> None:
    t = Base.metadata.tables
    customers, subs, invoices, accounts = (t["sales_customers"], t["sales_subscriptions"],
                                           t["sales_invoices"], t["dunning_accounts"])
    batch = 5000
    with db.engine.begin() as conn:
        for start in range(0, n, batch):
            cs, ss, ins, acc = [], [], [], []
            for i in range(start, min(n, start + batch)):
                days = i % 40
                issued = NOW.replace(hour=0) - timedelta(days=days)
                cid, sid = f"cus_{i:07d}", f"sub_{i:07d}"
                period_start = issued.date()
                cs.append({"id": cid, "name": f"Customer {i}", "email": f"c{i}@example.com",
                           "tags": [], "attributes": {}, "channels": [], "timezone": "UTC",
                           "credit_balance": Decimal(0), "created_at": issued - timedelta(days=60)})
                ss.append({"id": sid, "customer_id": cid, "plan_id": "basic", "catalog": "bench",
                           "catalog_version_id": version_id, "interval": "month",
                           "quantity": Decimal(1), "status": "active", "created_at": issued,
                           "start_date": period_start, "anchor": period_start, "period_index": 0,
                           "period_start": period_start,
                           "period_end": date(period_start.year + (period_start.month // 12),
                                              period_start.month % 12 + 1, 1)
                           if period_start.day > 28 else period_start.replace(
                               month=period_start.month % 12 + 1,
                               year=period_start.year + (period_start.month // 12)),
                           "next_run_at": NOW + timedelta(days=400), "trial_notice_sent": False,
                           "cancel_at_period_end": False, "cycle": 0, "changes": 0})
                ins.append({"id": f"in_{i:07d}", "number": f"INV-2026-{i:07d}", "customer_id": cid,
                            "subscription_id": sid, "billing_key": f"period:{period_start}",
                            "reason": "cycle", "status": "finalized", "currency": "USD",
                            "plan_id": "basic", "subtotal": Decimal("20.00"),
                            "discount": Decimal(0), "tax": Decimal(0), "total": Decimal("20.00"),
                            "credit_applied": Decimal(0), "amount_due": Decimal("20.00"),
                            "amount_paid": Decimal(0), "tax_rate": Decimal(0),
                            "reverse_charge": False, "discounts": [], "created_at": issued,
                            "issued_at": issued, "period_start": period_start})
                state = yesterday_state(days)
                if state:
                    acc.append({"customer_id": cid, "state": state, "since": issued, "reason": ""})
            conn.execute(customers.insert(), cs)
            conn.execute(subs.insert(), ss)
            conn.execute(invoices.insert(), ins)
            if acc:
                conn.execute(accounts.insert(), acc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--pg-admin", default=os.environ.get(
        "BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    name = f"billing_bench_sched_{secrets.token_hex(4)}"
    admin = sa.create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = args.pg_admin.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    try:
        db.migrate()
        clock = TestClock(NOW)
        with db.session() as s:
            version = sales.publish_catalog(s, CATALOG, "bench", clock=clock)
            publish_ruleset(s, "rules/dunning.yaml", "bench", smoke=False, clock=clock)
        version_id = int(version.id)
        t0 = time.perf_counter()
        seed(db, args.n, version_id)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        seed_s = time.perf_counter() - t0

        runtime = RulesRuntime(clock)
        sync_runtime(runtime, db)
        auto = build_automation(db, clock, runtime)
        jobs = scheduler_jobs(db, clock, auto, messaging.Channels([messaging.InAppChannel()]))
        job = "rules:invoice:0 6 * * *"
        assert job in jobs.jobs, list(jobs.jobs)
        t1 = time.perf_counter()
        result = jobs.run(job, NOW)
        tick_s = time.perf_counter() - t1
        assert result is not None and result.status == "done", result
        t2 = time.perf_counter()
        again = jobs.run(job, NOW)
        again_s = time.perf_counter() - t2
        assert again is not None and again.status == "taken"
        t3 = time.perf_counter()
        idle = auto.sweep(db, "invoice", auto.scheduled_rules(), NOW, slot="nothing-due")
        idle_s = time.perf_counter() - t3
        assert idle.matched == 0, idle

        with db.session() as s:
            states: dict[str, int] = dict(s.execute(sa.text(
                "SELECT state, count(*) FROM dunning_accounts GROUP BY state")).all())
            notes = s.scalar(sa.text("SELECT count(*) FROM notifications")) \
                if "notifications" in Base.metadata.tables else None
            canceled = s.scalar(sa.text(
                "SELECT count(*) FROM sales_subscriptions WHERE status = 'canceled'"))
        detail = result.detail or {}
        expected_matches = sum(1 for i in range(args.n) if i % 40 in (7, 14, 30))
        if detail.get("matched") != expected_matches or detail.get("errors"):
            raise SystemExit(f"the tick acted on {detail}, expected {expected_matches} subjects")
        print(f"seeded {args.n} accounts in {seed_s:.1f} s; tick {tick_s:.2f} s "
              f"({detail}); same slot again {again_s:.3f} s; nothing due {idle_s:.3f} s "
              f"({idle.subjects} read)")
        print(json.dumps({
            "benchmark": "scheduler",
            "database": "postgresql",
            "accounts": args.n,
            "tick_seconds": round(tick_s, 2),
            "accounts_per_s": round(args.n / tick_s, 1),
            "subjects_acted_on": detail.get("matched"),
            "actions": detail.get("actions"),
            "states_after": {k: int(v) for k, v in states.items()},
            "subscriptions_cancelled": int(canceled or 0),
            "notifications": int(notes) if notes is not None else None,
            "same_slot_again_seconds": round(again_s, 3),
            "nothing_due_seconds": round(idle_s, 3),
            "subjects_read": detail.get("subjects"),
            "ratio": round(TARGET_SECONDS / tick_s, 3),
            "target": f"tick over {args.n} accounts < {TARGET_SECONDS:.0f} s (ratio >= 1)",
            "ok": tick_s < TARGET_SECONDS,
        }))
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
