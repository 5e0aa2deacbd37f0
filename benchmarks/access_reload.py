"""Reloading one customer's access snapshot when the customer has a month of heavy usage:
the engine (a `count` metric counted by the database) against a baseline in the same run,
the same window's usage aggregated in Python from its events (what the reload did before).

    .venv/bin/python benchmarks/access_reload.py [--events 100000] [--database-url URL]

The last line printed is one JSON object with the figures, `ratio` (the engine's reloads
per second / the baseline's) and `target` (10: a heavy customer must not cost a second a
reload).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import sales  # noqa: E402
from engine.access.snapshot import quota_window  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.pricing import aggregate  # noqa: E402
from engine.sales.usage import load_usage  # noqa: E402
from engine.system import build_system  # noqa: E402

TARGET = 10.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database-url", default="", help="an empty database (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/reload.db"
    system = build_system(Settings(database_url=url, test_clock="2026-11-01T00:00:00Z"))
    clock = system.clock
    with system.db.session() as s:
        sales.publish_catalog(s, ROOT / "catalogs/saas.yaml", "bench", clock=clock)
        sales.create_customer(s, {"id": "heavy", "name": "Heavy", "email": "h@x.io"}, clock=clock)
        sales.create_subscription(s, "heavy", "pro", clock=clock)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for first in range(0, args.events, 5000):
        batch = [
            {
                "id": f"e{i}",
                "type": "api.request",
                "customer_id": "heavy",
                "time": (start + timedelta(seconds=i * 13 % 1_500_000)).isoformat(),
            }
            for i in range(first, min(first + 5000, args.events))
        ]
        with system.db.session() as s:
            sales.ingest_events(s, batch, clock=clock)
    clock.set(datetime(2026, 11, 20, tzinfo=UTC))  # all of it in this month's window
    access = system.access
    snapshot = access.snapshot("heavy")
    assert snapshot.subscription is not None and snapshot.catalog is not None and snapshot.plan is not None
    metric = snapshot.catalog.metrics["api_calls"]
    window = quota_window(snapshot.subscription, snapshot.plan.entitlements["api"].period, clock.now().date())

    def engine_reload() -> float:
        access.view.invalidate("heavy")
        began = time.perf_counter()
        used = access.snapshot("heavy").usage["api_calls"]
        took = time.perf_counter() - began
        assert used == args.events, used
        return took

    def baseline_reload() -> float:  # the window's events read and aggregated in Python
        began = time.perf_counter()
        with system.db.read_session() as s:
            events = load_usage(s, ["heavy"], {metric.event}, window.start_at, window.end_at)["heavy"]
        used = aggregate(metric, events, window).quantity
        took = time.perf_counter() - began
        assert used == args.events, used
        return took

    engine_s, baseline_s = [], []
    for _ in range(args.repeat):  # interleaved: both see the same machine
        engine_s.append(engine_reload())
        baseline_s.append(baseline_reload())
    engine_ms = statistics.median(engine_s) * 1000
    baseline_ms = statistics.median(baseline_s) * 1000
    print(
        f"reload with {args.events:,} events this month: engine {engine_ms:.1f} ms, Python aggregation {baseline_ms:.1f} ms"
    )
    print(
        json.dumps(
            {
                "benchmark": "access_reload",
                "database": "postgresql" if system.db.is_postgres else "sqlite",
                "events": args.events,
                "engine_ms": round(engine_ms, 1),
                "baseline_ms": round(baseline_ms, 1),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "ratio": round(baseline_ms / engine_ms, 1),
                "target": TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
