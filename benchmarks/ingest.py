"""Usage ingestion in events per second: batches of 1,000 envelopes through
`engine.sales.ingest_events` (validation, a known-customer check, INSERT ... ON CONFLICT
(id) DO NOTHING RETURNING id) against a baseline in the same run: a plain `executemany`
INSERT of the same rows, already serialised, into an identical table, with no checks
(the two interleaved batch by batch, so both see the same machine load).
Target (issue 3): the engine's rate is at least 0.5 of the baseline's, on SQLite and on
PostgreSQL. A second pass re-sends every batch to show duplicates cost no more.

    .venv/bin/python benchmarks/ingest.py [--events 50000] [--pg-admin URL] [--no-pg]

The last line printed is one JSON object with the figures, `ratio` (the worst backend's)
and `target`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

import engine.sales.models  # noqa: F401  (tables on Base)
from engine.clock import TestClock
from engine.sales import create_customer, ingest_events
from engine.sales.models import UsageRecord
from engine.store import Database

TARGET = 0.5
BATCH = 1000
CUSTOMERS = 200


def envelopes(n: int, offset: int = 0) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": f"evt-{offset + i:09d}",
            "type": "api.request",
            "customer_id": f"cus-{i % CUSTOMERS}",
            "time": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "properties": {"endpoint": "/v1/search", "region": "eu"},
        }
        for i in range(n)
    ]


def baseline_rows(envs: list[dict[str, Any]], received: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": e["id"],
            "customer_id": e["customer_id"],
            "type": e["type"],
            "time": datetime.fromisoformat(e["time"].replace("Z", "+00:00")),
            "properties": e["properties"],
            "received_at": received,
        }
        for e in envs
    ]


def measure(url: str, n: int) -> dict[str, Any]:
    db = Database(url)
    db.drop_all()
    db.migrate()
    # The baseline table: the same columns and indexes, a different name.
    meta = sa.MetaData()
    baseline = UsageRecord.__table__.to_metadata(meta, name="bench_usage_baseline")  # type: ignore[attr-defined]
    for index in list(baseline.indexes):
        index.name = f"bench_{index.name}"
    meta.drop_all(db.engine)
    meta.create_all(db.engine)
    clock = TestClock(datetime(2026, 2, 1, tzinfo=UTC))
    with db.session() as s:
        for c in range(CUSTOMERS):
            create_customer(s, {"id": f"cus-{c}", "name": f"Customer {c}"}, clock=clock)
    envs = envelopes(n)
    batches = [envs[i : i + BATCH] for i in range(0, n, BATCH)]
    rows = [baseline_rows(b, clock.now()) for b in batches]

    # Interleaved, batch by batch, so both sides see the same machine load.
    base_s = engine_s = 0.0
    accepted = 0
    for batch_rows, batch in zip(rows, batches, strict=True):
        t0 = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(baseline.insert(), batch_rows)
        t1 = time.perf_counter()
        with db.session() as s:
            accepted += ingest_events(s, batch, clock=clock).accepted
        t2 = time.perf_counter()
        base_s += t1 - t0
        engine_s += t2 - t1

    t0 = time.perf_counter()
    duplicates = 0
    for batch in batches:
        with db.session() as s:
            duplicates += ingest_events(s, batch, clock=clock).duplicates
    dup_s = time.perf_counter() - t0
    assert accepted == n and duplicates == n, (accepted, duplicates)
    with db.session() as s:
        stored = s.scalar(sa.select(sa.func.count()).select_from(UsageRecord))
    assert stored == n
    meta.drop_all(db.engine)
    db.dispose()
    return {
        "events": n,
        "batch": BATCH,
        "baseline_events_per_s": round(n / base_s),
        "engine_events_per_s": round(n / engine_s),
        "resend_duplicates_per_s": round(n / dup_s),
        "ratio": round(base_s / engine_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/ingest.db", args.events)
        print("sqlite", results["sqlite"], flush=True)
    if not args.no_pg:
        admin = sa.create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
        name = f"bench_ingest_{secrets.token_hex(4)}"
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.OperationalError as exc:
            print(f"postgres skipped: {exc.__class__.__name__}", flush=True)
        else:
            try:
                results["postgres"] = measure(args.pg_admin.rsplit("/", 1)[0] + f"/{name}", args.events)
                print("postgres", results["postgres"], flush=True)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    ratio = min(r["ratio"] for r in results.values())
    print(json.dumps({"benchmark": "ingest", **results, "ratio": ratio, "target": TARGET, "ok": ratio >= TARGET}))


if __name__ == "__main__":
    main()
