"""Usage ingestion with real-time credit burn-down, in events per second, against the same
ingestion without wallets, in the same run (issue 20).

Each batch of 1,000 usage events is ingested (`engine.sales.ingest_events`) and then, as the
access service's watcher does after new usage, every customer it touched has its snapshot's
usage read again, the batch's customers at once (`engine.access.snapshot.reload_usages`: each
one's usage, the wallets of all of them in one ask). On the burn side the customers are on a plan
with `credits: {on_exhausted: hard_stop}` and hold two grants, so each reload also prices the
period's accrued usage and reads the wallet (what the hard stop decides on); on the baseline
side the same plan without the hard stop, no wallet. A third side, `tokens`, holds token
wallets (a custom unit, docs/credits.md Token wallets) that the batch's `sum` metric burns: each
of its batches is ingested (ingestion adds to the customers' burn totals), then burned as the
bus's sales consumer does (`engine.sales.handle_token_burn` on the batch's usage.recorded),
then reloaded (the snapshot's spendable tokens). The sides alternate batch by batch, so all
see the same machine load. Target: burn / baseline >= 0.7 and tokens / baseline >= 0.7 (on
PostgreSQL); `ratio` is the lower of the two.

    .venv/bin/python benchmarks/credits.py [--events 20000] [--pg-admin URL] [--no-pg]

The last line printed is one JSON object with the figures, `ratio` (PostgreSQL's when it ran:
the lower of `money_ratio` and `token_ratio`) and `target`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine import credits, sales
from engine.access.snapshot import load_snapshot, reload_usages
from engine.clock import TestClock
from engine.store import Database
from engine.system import access_readers

TARGET = 0.7
BATCH = 1000
READERS = access_readers()  # the sales and dunning queries access reads with
CUSTOMERS = 100  # per side
START = datetime(2026, 3, 1, tzinfo=UTC)

CATALOG = """\
catalog: bench-credits
currency: USD
metrics:
  calls: {event: api.request, aggregation: count}
features:
  calls: {name: Calls, type: metered, metric: calls}
plans:
  %(plan)s:
    name: Bench
    interval: month
    prices:
      - {id: calls, model: graduated, metric: calls, tiers: [{up_to: 10, unit_amount: "0"}, {up_to: null, unit_amount: "0.01"}]}
    entitlements:
      calls: {limit: null, period: month, overage: allow}
%(credits)s"""

# The token side: the same event, its `tokens` summed and burning a token wallet one for one.
# The metered feature counts calls, as the other sides' does: the snapshot's quota usage costs
# the same on every side, so the ratio is the wallet's cost alone (a feature on a `sum` metric
# reads the period's events on every reload, wallet or not).
TOKENS = """\
catalog: bench-tokens
currency: USD
metrics:
  calls: {event: api.request, aggregation: count}
  llm: {event: api.request, aggregation: sum, field: tokens}
features:
  calls: {name: Calls, type: metered, metric: calls}
plans:
  tokens:
    name: Bench tokens
    interval: month
    prices:
      - {id: base, model: flat, amount: "5.00"}
    entitlements:
      calls: {limit: null, period: month, overage: allow}
    credits: {on_exhausted: hard_stop}
credits:
  unit: tokens
  rate: "0.002"
  burn: {llm: "1"}
"""
SIDES = ("base", "burn", "tok")
TOKENS_EACH = Decimal(10**9)  # never runs out: every batch burns


def envelopes(side: str, n: int, offset: int) -> list[dict[str, Any]]:
    at = START + timedelta(days=1)
    return [{"id": f"evt-{side}-{offset + i:09d}", "type": "api.request", "customer_id": f"{side}-{i % CUSTOMERS}",
             "time": (at + timedelta(seconds=offset + i)).isoformat(), "properties": {"tokens": 3}} for i in range(n)]


def setup(db: Database, clock: TestClock, tmp: str) -> None:
    for plan, extra in (("plain", ""), ("stop", "    credits: {on_exhausted: hard_stop}\n")):
        path = f"{tmp}/{plan}.yaml"
        with open(path, "w") as f:
            f.write((CATALOG % {"plan": plan, "credits": extra}).replace("bench-credits", f"bench-{plan}"))
        with db.session() as s:
            sales.publish_catalog(s, path, "bench", clock=clock)
    with open(f"{tmp}/tokens.yaml", "w") as f:
        f.write(TOKENS)
    with db.session() as s:
        sales.publish_catalog(s, f"{tmp}/tokens.yaml", "bench", clock=clock)
    with db.session() as s:
        for c in range(CUSTOMERS):
            sales.create_customer(s, {"id": f"tok-{c}", "name": f"tok-{c}", "currency": "USD"}, clock=clock)
            sales.create_subscription(s, f"tok-{c}", "tokens", clock=clock, trial_days=0)
            sales.grant_credit(s, f"tok-{c}", {"amount": TOKENS_EACH, "unit": "tokens", "reason": "bench"}, clock=clock)
    with db.session() as s:  # the bus's credits.granted: the first burn counts the (empty) history
        for c in range(CUSTOMERS):
            sales.burn_tokens(s, f"tok-{c}", clock.now())
    with db.session() as s:
        for side, plan in (("base", "plain"), ("burn", "stop")):
            for c in range(CUSTOMERS):
                cid = f"{side}-{c}"
                sales.create_customer(s, {"id": cid, "name": cid, "currency": "USD"}, clock=clock)
                sales.create_subscription(s, cid, plan, clock=clock, trial_days=0)
                if side == "burn":
                    for amount, priority in (("5.00", 10), ("100.00", 50)):
                        sales.grant_credit(s, cid, {"amount": amount, "priority": priority, "reason": "bench"},
                                           clock=clock)


def side_batch(db: Database, clock: TestClock, batch: list[dict[str, Any]], snaps: dict[str, Any]) -> None:
    with db.session() as s:
        recorded = sales.ingest_events(s, batch, clock=clock).recorded_event_id
    if batch[0]["customer_id"].startswith("tok-"):  # the bus's sales consumer burns the wallets
        with db.session() as s:
            sales.handle_token_burn(s, {"id": recorded, "type": "usage.recorded", "time": clock.now().isoformat(),
                                        "properties": {"customers": {e["customer_id"]: 1 for e in batch}}})
    touched = sorted({e["customer_id"] for e in batch})
    with db.read_session() as s:  # as the access service's watcher reloads a batch's customers
        snaps.update(zip(touched, reload_usages(s, [snaps[c] for c in touched], clock.now(), READERS), strict=True))


def measure(url: str, n: int) -> dict[str, Any]:
    db = Database(url)
    db.drop_all()
    db.migrate()
    clock = TestClock(START)
    with tempfile.TemporaryDirectory() as tmp:
        setup(db, clock, tmp)
    clock.set(START + timedelta(days=2))
    with db.read_session() as s:
        snaps = {f"{side}-{c}": load_snapshot(s, f"{side}-{c}", clock.now(), READERS)
                 for side in SIDES for c in range(CUSTOMERS)}
    # As `billing serve` settles its heap once started (engine/cli/commands/serve.py,
    # settle_heap): what setup built leaves the collector's sight, so a full collection scans
    # only what the batches made. Unsettled, one ~150 ms collection of the setup's objects
    # lands on whichever side happens to allocate then, moving a run's ratio by 0.1 or more.
    gc.collect()
    gc.freeze()
    seconds = dict.fromkeys(SIDES, 0.0)
    for offset in range(0, n, BATCH):
        for side in SIDES:
            batch = envelopes(side, BATCH, offset)
            t0 = time.perf_counter()
            side_batch(db, clock, batch, snaps)
            seconds[side] += time.perf_counter() - t0
    # What the hard stop reads: each burn customer's spendable credit went down with usage.
    spent = snaps["burn-0"].spendable
    assert spent is not None and spent < Decimal("105.00"), spent
    assert snaps["base-0"].spendable is None
    with db.read_session() as s:
        assert Decimal(credits.wallet(s, "burn-0", clock.now())["balances"][0]["available"]) == Decimal(105)
        # Every token event burned once: 3 tokens each, n / CUSTOMERS events per customer.
        assert credits.burned(s, "tok-0", "tokens") == 3 * n // CUSTOMERS
    assert snaps["tok-0"].spendable == TOKENS_EACH - 3 * n // CUSTOMERS, snaps["tok-0"].spendable
    db.dispose()
    gc.unfreeze()
    money, tokens = round(seconds["base"] / seconds["burn"], 3), round(seconds["base"] / seconds["tok"], 3)
    return {"events_per_side": n, "batch": BATCH, "customers_per_side": CUSTOMERS,
            "baseline_events_per_s": round(n / seconds["base"]), "burn_events_per_s": round(n / seconds["burn"]),
            "token_burn_events_per_s": round(n / seconds["tok"]), "spendable_burn_0": str(spent),
            "money_ratio": money, "token_ratio": tokens, "ratio": min(money, tokens)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pg-admin", default=os.environ.get(
        "BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/credits.db", args.events)
        print("sqlite", results["sqlite"], flush=True)
    if not args.no_pg:
        admin = sa.create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
        name = f"bench_credits_{secrets.token_hex(4)}"
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
    ratio = results.get("postgres", results["sqlite"])["ratio"]
    print(json.dumps({"benchmark": "credits", **results, "ratio": ratio, "target": TARGET, "ok": ratio >= TARGET}))


if __name__ == "__main__":
    main()
