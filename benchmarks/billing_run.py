"""The billing run in invoices per second: N subscriptions on catalogs/saas.yaml's `pro` plan
(base fee, 3 seats, graduated API calls), each with usage in the closed month, all due at
the same boundary; `run_due_billing` closes January and opens February for every one of
them (arrears + in-advance lines, tax, gapless numbers, outbox events).

Target (issue 3): 10,000 subscriptions invoiced in under 60 s on PostgreSQL. `ratio` is
target_seconds / actual_seconds for that case (>= 1 meets it); the growth from 1,000 to
10,000 (and 100,000 with --big) is reported as seconds per 1,000 subscriptions.

Issue 15: invoices apply the published pricing rules. Each size is also billed with two
promotion rules live (half price for the edu segment, a quarter of the customers; 20 % off
the base fee for 3 periods on `pro`), evaluated per subscription and period as the engine
does; `promotions_cost` is seconds with them / seconds without (1.0: no slower).

    .venv/bin/python benchmarks/billing_run.py [--sizes 1000,10000] [--big] [--events 5]
                                               [--pg-admin URL] [--no-pg]

The last line printed is one JSON object with the figures, `ratio` and `target`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.clock import TestClock
from engine.rules import RulePromotions, RulesRuntime, load_ruleset_text
from engine.sales import ingest_events, publish_catalog, run_due_billing
from engine.sales.models import Customer, Invoice, Subscription
from engine.store import Database

TARGET_SECONDS = 60.0
CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "saas.yaml"
PROMOTIONS = """
ruleset: promotions
rules:
  - id: edu-50
    on: price.calculate
    when: {customer.segment: edu}
    then:
      - discount: {percent: 50, reason: Education discount}
  - id: launch
    on: price.calculate
    when: {plan: pro}
    then:
      - discount: {percent: 20, prices: [base], periods: 3, reason: Launch promotion}
"""


def promotions() -> RulePromotions:
    runtime = RulesRuntime(TestClock(datetime(2026, 2, 1, tzinfo=UTC)))
    runtime.install(load_ruleset_text(PROMOTIONS, "promotions.yaml"))
    return RulePromotions(runtime)


def seed(db: Database, n: int, events_per_sub: int) -> None:
    clock = TestClock(datetime(2026, 1, 1, tzinfo=UTC))
    with db.session() as s:
        version = publish_catalog(s, CATALOG, "bench", "billing benchmark", clock=clock)
    now = clock.now()
    customers = [
        {
            "id": f"cus-{i:06d}",
            "name": f"Customer {i}",
            "country": ("DE", "CH", "US", "FR")[i % 4],
            "segment": "edu" if i % 4 == 1 else None,
            "tags": [],
            "attributes": {},
            "channels": [],
            "timezone": "UTC",
            "credit_balance": Decimal(0),
            "created_at": now,
        }
        for i in range(n)
    ]
    subs = [
        {
            "id": f"sub-{i:06d}",
            "customer_id": f"cus-{i:06d}",
            "plan_id": "pro",
            "catalog": "acme-analytics",
            "catalog_version_id": version.id,
            "interval": "month",
            "quantity": Decimal(3),
            "status": "active",
            "created_at": now,
            "start_date": date(2026, 1, 1),
            "trial_notice_sent": True,
            "anchor": date(2026, 1, 1),
            "period_index": 0,
            "cycle": 0,
            "period_start": date(2026, 1, 1),
            "period_end": date(2026, 2, 1),
            "next_run_at": datetime(2026, 2, 1, tzinfo=UTC),
            "last_billed_at": now,
            "cancel_at_period_end": False,
            "changes": 0,
        }
        for i in range(n)
    ]
    chunk = 5000
    with db.session() as s:
        for i in range(0, n, chunk):
            s.execute(sa.insert(Customer), customers[i : i + chunk])
        for i in range(0, n, chunk):
            s.execute(sa.insert(Subscription), subs[i : i + chunk])
    clock.set(datetime(2026, 1, 20, tzinfo=UTC))
    events = []
    for i in range(n):
        for k in range(events_per_sub):
            events.append(
                {
                    "id": f"evt-{i:06d}-{k}",
                    "type": "api.request",
                    "customer_id": f"cus-{i:06d}",
                    "time": (datetime(2026, 1, 2, tzinfo=UTC) + timedelta(hours=k + i % 500)).isoformat(),
                    "properties": {},
                }
            )
    for i in range(0, len(events), 1000):
        with db.session() as s:
            ingest_events(s, events[i : i + 1000], clock=clock, check_customers=False)


def measure(url: str, n: int, events_per_sub: int, *, with_rules: bool = False) -> dict[str, Any]:
    db = Database(url)
    db.drop_all()
    db.migrate()
    t0 = time.perf_counter()
    seed(db, n, events_per_sub)
    seed_s = time.perf_counter() - t0
    clock = TestClock(datetime(2026, 2, 1, tzinfo=UTC))
    t0 = time.perf_counter()
    report = run_due_billing(db, clock, promotions=promotions() if with_rules else None)
    run_s = time.perf_counter() - t0
    with db.session() as s:
        issued = s.scalar(sa.select(sa.func.count()).select_from(Invoice))
        last = s.scalar(sa.select(sa.func.max(Invoice.number)))
    assert issued == n and not report.failures, (issued, report.failures[:3])
    assert last == f"INV-2026-{n:06d}"
    with db.session() as s:
        discounted = s.scalar(sa.select(sa.func.count()).select_from(Invoice).where(Invoice.discount > 0))
    assert (discounted == n) if with_rules else (discounted == 0), discounted
    db.drop_all()
    db.dispose()
    return {
        "subscriptions": n,
        "events": n * events_per_sub,
        "seconds": round(run_s, 2),
        "invoices_per_s": round(n / run_s, 1),
        "seconds_per_1000": round(run_s / n * 1000, 3),
        "seed_seconds": round(seed_s, 1),
    }


def _pg(admin_url: str) -> tuple[str, Any] | None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_billing_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"postgres skipped: {exc.__class__.__name__}", flush=True)
        admin.dispose()
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def _both(url: str, n: int, events_per_sub: int) -> dict[str, Any]:
    """Without pricing rules, then with the two promotion rules live, in the same process."""
    plain = measure(url, n, events_per_sub)
    ruled = measure(url, n, events_per_sub, with_rules=True)
    return {**plain, "with_promotions_seconds": ruled["seconds"],
            "promotions_cost": round(ruled["seconds"] / plain["seconds"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--big", action="store_true", help="also 100,000 subscriptions")
    parser.add_argument("--events", type=int, default=5, help="usage events per subscription")
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")] + ([100_000] if args.big else [])
    results: dict[str, dict[str, Any]] = {"sqlite": {}, "postgres": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"][str(n)] = _both(f"sqlite:///{tmp}/billing.db", n, args.events)
            print("sqlite", results["sqlite"][str(n)], flush=True)
        if not args.no_pg:
            pg = _pg(args.pg_admin)
            if pg is not None:
                url, drop = pg
                try:
                    results["postgres"][str(n)] = _both(url, n, args.events)
                    print("postgres", results["postgres"][str(n)], flush=True)
                finally:
                    drop()
    growth = {}
    for backend, rows in results.items():
        if "1000" in rows and "10000" in rows:
            growth[backend] = {
                "1k_to_10k_time_factor": round(rows["10000"]["seconds"] / rows["1000"]["seconds"], 2),
            }
            if "100000" in rows:
                growth[backend]["10k_to_100k_time_factor"] = round(
                    rows["100000"]["seconds"] / rows["10000"]["seconds"], 2
                )
    key = "postgres" if results["postgres"].get("10000") else "sqlite"
    biggest = results[key].get("10000") or results[key][str(max(sizes))]
    scaled = biggest["seconds"] * 10000 / biggest["subscriptions"]
    ratio = round(TARGET_SECONDS / scaled, 2)
    print(
        json.dumps(
            {
                "benchmark": "billing_run",
                **results,
                "growth": growth,
                "ratio_backend": key,
                "ratio": ratio,
                "target": 1,
                "target_seconds_for_10000": TARGET_SECONDS,
                "ok": ratio >= 1,
            }
        )
    )


if __name__ == "__main__":
    main()
