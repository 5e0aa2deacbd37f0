"""Revenue recognition schedules for 100,000 invoices of a year paid in advance (12 months each:
1,200,000 rows) on PostgreSQL.

Baseline, in the same run: the same rows, computed beforehand, written by a plain COPY into the
same table (indexes and constraints as migrated). Ours: build each invoice's schedule from the
line invoice.finalized carries (daily straight-line, cumulative rounding per month) and write
it the way the engine does (engine.payments.books.schedules: invoice_rows + write_rows), commit.
ratio = baseline_time / our_time (higher is better); target >= 0.3 and ours < 30 s.

    .venv/bin/python benchmarks/revrec.py [--invoices 100000] [--pg-admin-url URL]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from engine.payments import CollectableInvoice
from engine.payments.books.schedules import invoice_rows, write_rows
from engine.payments.models import RevenueScheduleRow
from engine.store import Database

BILLED = date(2026, 1, 1)


def create_database(admin_url: str) -> str:
    name = f"billing_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    admin.dispose()


def invoices(n: int) -> list[tuple[CollectableInvoice, list[dict[str, Any]]]]:
    """Annual Pro invoices: amounts vary so rounding does real work."""
    out = []
    for i in range(n):
        amount = f"{1200 + i % 997}.{i % 100:02d}"
        line = {"plan": ("pro", "enterprise")[i % 2], "price_type": "subscription", "amount": amount,
                "period_start": "2026-01-01", "period_end": "2027-01-01"}
        out.append((CollectableInvoice(f"inv_{i:07d}", f"cus_{i % 5000:05d}", Decimal(amount),
                                       "USD"), [line]))
    return out


def empty(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE pay_revenue_schedule")


def ours(db: Database, data: list[tuple[CollectableInvoice, list[dict[str, Any]]]]) -> tuple[float, int]:
    start = time.perf_counter()
    with db.session() as s:
        rows = [r for inv, lines in data for r in invoice_rows(inv, lines, BILLED)]
        write_rows(s, rows)
    return time.perf_counter() - start, len(rows)


def baseline(db: Database, rows: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    with db.session() as s:
        write_rows(s, rows)
    return time.perf_counter() - start


def count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(RevenueScheduleRow)) or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "BILLING_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    url = create_database(args.pg_admin_url)
    db = Database(url)
    try:
        db.migrate()
        data = invoices(args.invoices)
        prepared = [r for inv, lines in data for r in invoice_rows(inv, lines, BILLED)]
        load_before = os.getloadavg()[0]
        gc.collect()
        base = baseline(db, prepared)
        assert count(db) == len(prepared)
        empty(db)
        mine, rows = ours(db, data)
        assert count(db) == rows == len(prepared)
        load_after = os.getloadavg()[0]
        ratio = base / mine
        print(f"{args.invoices} invoices, {rows} schedule rows: ours {mine:.2f} s, baseline COPY {base:.2f} s; "
              f"ratio {ratio:.3f} (target >= 0.3, ours < 30 s); load {load_before:.1f} -> {load_after:.1f}")
        print(json.dumps({"benchmark": "revrec", "invoices": args.invoices, "rows": rows,
                          "ours_s": round(mine, 3), "baseline_s": round(base, 3), "ratio": round(ratio, 4),
                          "target": 0.3, "time_target_s": 30, "met": bool(ratio >= 0.3 and mine < 30),
                          "load": [round(load_before, 2), round(load_after, 2)]}))
    finally:
        db.dispose()
        drop_database(args.pg_admin_url, url)


if __name__ == "__main__":
    main()
